"""The closed, compositional vocabulary of the tiny world: object types, caption and action texts.

Every scene maps to exactly one caption and every transition to exactly one action text, and both sets are
enumerable, so a retrieval bank built from `caption_bank()` / `action_bank()` covers all ground truth.
"""

from __future__ import annotations

from itertools import combinations

# Saturated object colours (RGB) far from the muted floor and wall colours, so they stay apart in the dark.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 175, 55),
    "blue": (40, 75, 225),
    "yellow": (240, 205, 30),
}
SHAPES: tuple[str, ...] = ("cube", "ball", "cone")
# Only a flat top can carry another object.
STACKABLE_SHAPES: tuple[str, ...] = ("cube",)
MAX_OBJECTS = 2

ACTION_KINDS: tuple[str, ...] = (
    "appear",
    "disappear",
    "move_left",
    "move_right",
    "fall",
    "push",
    "stack",
    "recolour",
    "lights_off",
    "lights_on",
    "grow",
    "shrink",
)


def object_types() -> list[tuple[str, str]]:
    """All (colour, shape) pairs in canonical order: shape first, then colour."""
    return [(colour, shape) for shape in SHAPES for colour in COLOURS]


def object_label(colour: str, shape: str) -> str:
    """'red cube'."""
    return f"{colour} {shape}"


def _canonical_key(colour: str, shape: str) -> tuple[int, int]:
    return SHAPES.index(shape), list(COLOURS).index(colour)


def caption_text(
    loose: list[tuple[str, str]], stacks: list[tuple[tuple[str, str], tuple[str, str]]], lights_on: bool
) -> str:
    """Caption of a scene from its loose objects and its (top, bottom) stacked pairs.

    Loose objects are listed in canonical type order, so a scene has one caption however it is laid out.
    """
    phrases = [f"a {object_label(*top)} on a {object_label(*bottom)}" for top, bottom in stacks]
    phrases += [f"a {object_label(*obj)}" for obj in sorted(loose, key=lambda o: _canonical_key(*o))]
    if not phrases:
        text = "an empty floor"
    elif stacks:
        text = " and ".join(phrases)
    else:
        text = " and ".join(phrases) + " on the floor"
    return text if lights_on else text + " in the dark"


def action_text(
    kind: str, subject: tuple[str, str] | None = None, other: tuple[str, str] | None = None, colour: str | None = None
) -> str:
    """Text of one action; `other` is the pushed object or the stack base, `colour` the new colour."""
    if kind == "lights_off":
        return "the lights turn off"
    if kind == "lights_on":
        return "the lights turn on"
    if subject is None:
        raise ValueError(f"action {kind!r} needs a subject object")
    name = object_label(*subject)
    simple = {
        "appear": f"a {name} appears",
        "disappear": f"the {name} disappears",
        "move_left": f"the {name} moves left",
        "move_right": f"the {name} moves right",
        "fall": f"the {name} falls",
        "grow": f"the {name} grows",
        "shrink": f"the {name} shrinks",
    }
    if kind in simple:
        return simple[kind]
    if kind == "push":
        if other is None:
            raise ValueError("action 'push' needs the pushed object")
        return f"the {name} pushes the {object_label(*other)}"
    if kind == "stack":
        if other is None:
            raise ValueError("action 'stack' needs the base object")
        return f"the {name} is put on the {object_label(*other)}"
    if kind == "recolour":
        if colour is None:
            raise ValueError("action 'recolour' needs the new colour")
        return f"the {name} turns {colour}"
    raise ValueError(f"unknown action kind {kind!r}; expected one of {ACTION_KINDS}")


def caption_bank() -> list[str]:
    """Every caption a scene of the tiny world can have (no duplicates, deterministic order)."""
    types = object_types()
    layouts: list[tuple[list, list]] = [([], [])]
    layouts += [([obj], []) for obj in types]
    layouts += [(list(pair), []) for pair in combinations(types, 2)]
    layouts += [
        ([], [(top, bottom)]) for bottom in types if bottom[1] in STACKABLE_SHAPES for top in types if top != bottom
    ]
    texts = [caption_text(loose, stacks, lights) for lights in (True, False) for loose, stacks in layouts]
    return _unique(texts)


def action_bank() -> list[str]:
    """Every action text a transition of the tiny world can have (no duplicates, deterministic order)."""
    types = object_types()
    texts = ["the lights turn off", "the lights turn on"]
    for obj in types:
        for kind in ("appear", "disappear", "move_left", "move_right", "fall", "grow", "shrink"):
            texts.append(action_text(kind, obj))
        texts += [action_text("recolour", obj, colour=c) for c in COLOURS if c != obj[0]]
        texts += [action_text("push", obj, other) for other in types if other != obj]
        texts += [action_text("stack", obj, base) for base in types if base != obj and base[1] in STACKABLE_SHAPES]
    return _unique(texts)


def _unique(texts: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for text in texts:
        seen.setdefault(text, None)
    return list(seen)
