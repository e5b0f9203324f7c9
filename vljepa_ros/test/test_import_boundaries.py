"""The package's layers, checked on its source: which folder may import what, no cycles, no private imports.

The static checks read every module's imports with `ast` (imports inside functions count: a lazy import is still
a dependency). The dynamic checks import the modules in a fresh interpreter whose import system refuses the
forbidden packages, so an import that slips past the parser (e.g. through a third-party module) fails too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import vljepa_ros

PACKAGE = "vljepa_ros"
PACKAGE_ROOT = Path(vljepa_ros.__file__).resolve().parent

TORCH = ("torch", "torchvision", "transformers", "sentence_transformers")
TORCH_SIDE = ("vljepa_ros.export", "vljepa_ros.torch_models", "vljepa_ros.training")
# Plain-Python layers shared by the nodes, the tools and the benchmarks.
CORE = ("vljepa_ros.runtime", "vljepa_ros.perception", "vljepa_ros.decoding", "vljepa_ros.world_model")
CORE_FORBIDDEN = ("rclpy", *TORCH, "vljepa_ros.nodes", "vljepa_ros.tools", *TORCH_SIDE)
RULES = {
    **dict.fromkeys(CORE, CORE_FORBIDDEN),
    # The runtime is the bottom layer: it serves perception and decoding, never the other way round.
    "vljepa_ros.runtime": (*CORE_FORBIDDEN, "vljepa_ros.perception", "vljepa_ros.decoding", "vljepa_ros.bags"),
    # The world model sits on the runtime beside perception: a planner or node uses it without the camera core.
    "vljepa_ros.world_model": (*CORE_FORBIDDEN, "vljepa_ros.perception", "vljepa_ros.decoding", "vljepa_ros.bags"),
    "vljepa_ros.nodes": (*TORCH, *TORCH_SIDE, "vljepa_ros.tools"),
    "vljepa_ros.bags": (*TORCH, *TORCH_SIDE, "vljepa_ros.nodes", "vljepa_ros.tools"),
    # The recording index is a library for the fleet tools: no ROS, no torch, no Ray.
    "vljepa_ros.index": ("rclpy", "ray", *TORCH, *TORCH_SIDE, "vljepa_ros.nodes", "vljepa_ros.tools"),
}
LAYER_FOLDERS = {"runtime", "perception", "decoding", "world_model", "bags", "nodes", "export", "tools", "index"}
OTHER_FOLDERS = {"torch_models", "training", "tiny_world"}


@dataclass(frozen=True)
class Import:
    """One imported name: the module it comes from, the name, and where the import statement is."""

    importer: str
    module: str
    name: str | None
    line: int


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under `root`, by dotted name (packages by their `__init__`)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join([package, *parts])] = path
    return names


def imports_of(name: str, path: Path) -> list[Import]:
    """The imports in one module's source, relative ones resolved to absolute module names."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([module] if module else []))
            found += [Import(name, module, alias.name, node.lineno) for alias in node.names]
    return found


def dependencies(modules: dict[str, Path]) -> dict[str, set[str]]:
    """For each package module, the package modules it imports (a `from a import b` of a submodule means `a.b`)."""
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imp in imports_of(name, path):
            submodule = f"{imp.module}.{imp.name}" if imp.name else None
            if submodule in modules:
                targets.add(submodule)
            elif imp.module in modules:
                targets.add(imp.module)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def rule_violations(modules: dict[str, Path], rules: dict[str, tuple[str, ...]]) -> list[str]:
    """`importer:line imports target` for every import a folder's rule forbids."""
    found = []
    for name, path in modules.items():
        forbidden = [banned for folder, banned in rules.items() if _within(name, folder)]
        for imp in imports_of(name, path):
            target = f"{imp.module}.{imp.name}" if imp.name and f"{imp.module}.{imp.name}" in modules else imp.module
            if any(_within(target, banned) for group in forbidden for banned in group):
                found.append(f"{name}:{imp.line} imports {target}")
    return found


def private_imports(modules: dict[str, Path]) -> list[str]:
    """`importer:line imports module._name` for every private name taken from another package module."""
    found = []
    for name, path in modules.items():
        for imp in imports_of(name, path):
            if imp.module in modules and imp.module != name and imp.name and imp.name.startswith("_"):
                found.append(f"{name}:{imp.line} imports {imp.module}.{imp.name}")
    return found


MODULES = module_names(PACKAGE_ROOT, PACKAGE)


def test_every_module_lives_in_a_folder():
    flat = sorted(p.name for p in PACKAGE_ROOT.glob("*.py") if p.name != "__init__.py")
    assert not flat, f"modules outside the layer folders: {flat}"
    folders = {p.name for p in PACKAGE_ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert folders == LAYER_FOLDERS | OTHER_FOLDERS, f"unexpected sub-packages: {sorted(folders)}"


def test_folders_import_only_what_their_layer_allows():
    assert not rule_violations(MODULES, RULES), "\n".join(rule_violations(MODULES, RULES))


def test_no_import_cycles():
    found = cycles(dependencies(MODULES))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_private_names_imported_from_other_modules():
    found = private_imports(MODULES)
    assert not found, "\n".join(found)


def test_the_checks_catch_what_they_look_for(tmp_path):
    root = tmp_path / "pkg"
    for folder, source in {
        "runtime": "import rclpy\nfrom ..tools import cli\n",
        "tools": "def main():\n    from pkg.runtime import _helper\n    from pkg.tools.cli import run\n",
    }.items():
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
        (root / folder / ("cli.py" if folder == "tools" else "core.py")).write_text(source)
    (root / "__init__.py").write_text("")
    modules = module_names(root, "pkg")
    assert rule_violations(modules, {"pkg.runtime": ("rclpy", "pkg.tools")}) == [
        "pkg.runtime.core:1 imports rclpy",
        "pkg.runtime.core:2 imports pkg.tools.cli",
    ]
    (root / "runtime" / "__init__.py").write_text("from pkg.tools.cli import main\n_helper = 1\n")
    modules = module_names(root, "pkg")
    assert cycles(dependencies(modules)) == [["pkg.runtime", "pkg.tools.cli"]]
    assert private_imports(modules) == ["pkg.tools.cli:2 imports pkg.runtime._helper"]


BLOCKER = """
import importlib, importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {forbidden!r}:
            raise ImportError('forbidden import: ' + name)
sys.meta_path.insert(0, Refuse())
for name in {modules!r}:
    importlib.import_module(name)
print('imported', len({modules!r}))
"""


def _import_with_blocked(modules: list[str], forbidden: set[str]) -> subprocess.CompletedProcess:
    code = BLOCKER.format(forbidden=forbidden, modules=modules)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("selection", "forbidden"),
    [
        pytest.param(
            lambda m: not any(_within(m, side) for side in TORCH_SIDE), set(TORCH), id="all-but-export-without-torch"
        ),
        pytest.param(
            lambda m: any(_within(m, core) for core in CORE), {"rclpy", *TORCH}, id="core-without-rclpy-or-torch"
        ),
    ],
)
def test_modules_really_import_without_forbidden_packages(selection, forbidden):
    chosen = sorted(m for m in MODULES if selection(m))
    assert len(chosen) > 10, chosen
    result = _import_with_blocked(chosen, forbidden)
    assert result.returncode == 0, result.stderr[-3000:]


def test_blocker_really_blocks():
    result = _import_with_blocked(["vljepa_ros"], {"vljepa_ros"})
    assert result.returncode != 0 and "forbidden import" in result.stderr
