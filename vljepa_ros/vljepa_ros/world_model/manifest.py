"""The world model's manifest (`world_model.yaml`): what `export_model --vjepa2-ac` wrote and the runtime reads.

One step's image (3, S, S) goes through `encoder` -> (H*W, D) tokens; `predictor` takes tokens (B, T*H*W, D),
actions (B, T, A) and states (B, T, A) and returns (B, T*H*W, D) predictions, block t predicting step t + 1.
Files are checked by sha256 (graph + external weights) when loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from vljepa_ros.runtime.manifest import ManifestError, sha256_of_graph

KIND = "vjepa2-ac"
FORMAT = 1
MANIFEST_NAME = "world_model.yaml"


@dataclass(frozen=True)
class WorldModelManifest:
    """Shapes, preprocessing and files of one exported action-conditioned world model."""

    model_id: str
    encoder: str  # graph file, relative to the manifest's folder
    encoder_sha256: str
    predictor: str
    predictor_sha256: str
    crop_size: int
    grid_height: int
    grid_width: int
    embed_dim: int
    action_dim: int
    max_steps: int  # the predictor's sequence limit (context + rollout steps)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    root: Path = Path(".")

    @property
    def tokens_per_step(self) -> int:
        return self.grid_height * self.grid_width

    def path_of(self, name: str) -> Path:
        return self.root / name

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw.pop("root")
        raw["mean"], raw["std"] = list(self.mean), list(self.std)
        return {"format": FORMAT, "kind": KIND, **raw}


POSITIVE_INTS = ("crop_size", "grid_height", "grid_width", "embed_dim", "action_dim", "max_steps")
STRINGS = ("model_id", "encoder", "encoder_sha256", "predictor", "predictor_sha256")


def parse_world_model_manifest(raw: Any, root: Path, source: str) -> WorldModelManifest:
    """Validated manifest from parsed YAML; ManifestError naming the field otherwise."""
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{source}: expected a mapping, got {type(raw).__name__}")
    if raw.get("kind") != KIND or raw.get("format") != FORMAT:
        raise ManifestError(
            f"{source}: not a world model manifest (kind {raw.get('kind')!r}, format {raw.get('format')!r}; "
            f"expected {KIND!r}, {FORMAT})"
        )
    values: dict[str, Any] = {}
    for name in POSITIVE_INTS:
        value = raw.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ManifestError(f"{source}: {name} must be a positive integer, got {value!r}")
        values[name] = value
    for name in STRINGS:
        value = raw.get(name)
        if not isinstance(value, str) or not value:
            raise ManifestError(f"{source}: {name} must be a non-empty string, got {value!r}")
        values[name] = value
    for name in ("mean", "std"):
        value = raw.get(name)
        if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, int | float) for v in value):
            raise ManifestError(f"{source}: {name} must be three numbers, got {value!r}")
        if name == "std" and min(value) <= 0:
            raise ManifestError(f"{source}: std must be positive, got {value!r}")
        values[name] = tuple(float(v) for v in value)
    return WorldModelManifest(root=root, **values)


def load_world_model_manifest(path: str | Path, check_files: bool = True) -> WorldModelManifest:
    """Read and validate a manifest; with `check_files`, each graph must exist and match its sha256."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ManifestError(f"{path}: cannot read ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    manifest = parse_world_model_manifest(raw, path.parent, str(path))
    if check_files:
        for name, digest in (
            (manifest.encoder, manifest.encoder_sha256),
            (manifest.predictor, manifest.predictor_sha256),
        ):
            graph = manifest.path_of(name)
            if not graph.is_file():
                raise ManifestError(f"{path}: {name} does not exist")
            if sha256_of_graph(graph) != digest:
                raise ManifestError(f"{path}: {name} does not match its sha256 in the manifest")
    return manifest


def write_world_model_manifest(manifest: WorldModelManifest, folder: str | Path) -> Path:
    """Write `world_model.yaml` into `folder`."""
    path = Path(folder) / MANIFEST_NAME
    path.write_text(yaml.safe_dump(manifest.to_dict(), sort_keys=False))
    return path
