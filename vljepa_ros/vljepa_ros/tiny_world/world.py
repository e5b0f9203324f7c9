"""World state of the tiny world and the actions that change it (pure, numpy RNG only).

Positions are in units of the frame height, x relative to the frame centre, so one scene renders alike at
any resolution. A scene holds at most `MAX_OBJECTS` objects of distinct (colour, shape) types; an object
either rests on the floor (possibly lifted, before it falls) or sits on a cube (`on`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vljepa_ros.tiny_world.vocabulary import (
    ACTION_KINDS,
    COLOURS,
    MAX_OBJECTS,
    SHAPES,
    STACKABLE_SHAPES,
    action_text,
    caption_text,
)

X_LIMIT = 0.24  # |x| of an object's centre; keeps even a grown object inside the model's centre crop
MIN_GAP = 0.03  # free floor between two loose objects
SCALE_RANGE = (0.85, 1.15)
GROW_FACTOR = 1.5
SCALE_LIMITS = (0.5, 1.6)
MOVE_RANGE = (0.12, 0.20)
LIFT_RANGE = (0.20, 0.30)
BASE_SIZE = 0.17  # object width at scale 1, in frame heights
FLOOR_STYLES = 4
WALL_STYLES = 4


@dataclass(frozen=True)
class WorldObject:
    """One object; `oid` is its identity across a transition (a recoloured object keeps it)."""

    oid: int
    colour: str
    shape: str
    x: float
    scale: float
    lift: float = 0.0
    on: int | None = None

    @property
    def kind(self) -> tuple[str, str]:
        """(colour, shape), the object's type as the vocabulary names it."""
        return self.colour, self.shape

    @property
    def width(self) -> float:
        """Width in frame heights."""
        return BASE_SIZE * self.scale


@dataclass(frozen=True)
class Scene:
    """A world state: objects, lights and the (caption-irrelevant) floor and wall styles."""

    objects: tuple[WorldObject, ...]
    lights_on: bool = True
    floor: int = 0
    wall: int = 0

    def get(self, oid: int) -> WorldObject:
        """The object with identity `oid`."""
        for obj in self.objects:
            if obj.oid == oid:
                return obj
        raise KeyError(f"no object with oid {oid}")

    def carries(self, oid: int) -> bool:
        """True when another object sits on object `oid`."""
        return any(obj.on == oid for obj in self.objects)

    def loose(self) -> list[WorldObject]:
        """Objects on the floor with nothing on top of them."""
        return [o for o in self.objects if o.on is None and not self.carries(o.oid)]

    @property
    def caption(self) -> str:
        """The ground-truth caption of this state."""
        stacks = [(o.kind, self.get(o.on).kind) for o in self.objects if o.on is not None]
        stacked = {o.oid for o in self.objects if o.on is not None} | {o.on for o in self.objects}
        loose = [o.kind for o in self.objects if o.oid not in stacked]
        return caption_text(loose, stacks, self.lights_on)


@dataclass(frozen=True)
class ActionSpec:
    """An action named structurally: kind, subject and other object ids, new colour (or, for `appear`, the
    new object's colour and shape)."""

    kind: str
    subject: int | None = None
    other: int | None = None
    colour: str | None = None
    shape: str | None = None

    def text(self, scene: Scene) -> str:
        """The action's text, naming objects as they are in `scene` (the state before the action)."""
        subject = scene.get(self.subject).kind if self.subject is not None else None
        other = scene.get(self.other).kind if self.other is not None else None
        if self.kind == "appear":
            return action_text("appear", (self.colour, self.shape))
        return action_text(self.kind, subject, other, self.colour)


@dataclass(frozen=True)
class Transition:
    """Two states and the action between them."""

    before: Scene
    after: Scene
    action: ActionSpec
    text: str

    @property
    def changes_caption(self) -> bool:
        """True when the action changes what the scene's caption says."""
        return self.before.caption != self.after.caption


def random_scene(
    rng: np.random.Generator, n_objects: int | None = None, stack_probability: float = 0.25, tries: int = 50
) -> Scene:
    """A random valid scene with `n_objects` (default: 0..MAX_OBJECTS, mostly 1 or 2) objects."""
    if n_objects is None:
        n_objects = int(rng.choice(MAX_OBJECTS + 1, p=[0.1, 0.4, 0.5]))
    if not 0 <= n_objects <= MAX_OBJECTS:
        raise ValueError(f"n_objects must be in 0..{MAX_OBJECTS}, got {n_objects}")
    lights_on = bool(rng.random() < 0.7)
    floor, wall = int(rng.integers(FLOOR_STYLES)), int(rng.integers(WALL_STYLES))
    types = [(c, s) for s in SHAPES for c in COLOURS]
    for _ in range(tries):
        picks = rng.choice(len(types), size=n_objects, replace=False)
        kinds = [types[i] for i in picks]
        objects = [WorldObject(i, c, s, 0.0, float(rng.uniform(*SCALE_RANGE))) for i, (c, s) in enumerate(kinds)]
        if n_objects == 2 and objects[1].shape in STACKABLE_SHAPES and rng.random() < stack_probability:
            x = float(rng.uniform(-X_LIMIT, X_LIMIT))
            objects = [replace(objects[0], x=x, on=1), replace(objects[1], x=x)]
            return Scene(tuple(objects), lights_on, floor, wall)
        placed = _place_loose(rng, objects, [])
        if placed is not None:
            return Scene(tuple(placed), lights_on, floor, wall)
    raise RuntimeError("could not place objects without overlap")


def _place_loose(
    rng: np.random.Generator, new: list[WorldObject], fixed: list[WorldObject], tries: int = 50
) -> list[WorldObject] | None:
    for _ in range(tries):
        placed = [replace(o, x=float(rng.uniform(-X_LIMIT, X_LIMIT))) for o in new]
        if _no_overlap([o for o in fixed if o.on is None] + placed):
            return placed
    return None


def _no_overlap(floor_objects: list[WorldObject]) -> bool:
    for i, a in enumerate(floor_objects):
        for b in floor_objects[i + 1 :]:
            if abs(a.x - b.x) < (a.width + b.width) / 2 + MIN_GAP:
                return False
    return True


def possible_actions(scene: Scene) -> list[ActionSpec]:
    """Every action that structurally applies to `scene` (geometry may still refuse one; see `apply_action`)."""
    specs = [ActionSpec("lights_off" if scene.lights_on else "lights_on")]
    present = {o.kind for o in scene.objects}
    if len(scene.objects) < MAX_OBJECTS:
        specs += [ActionSpec("appear", colour=c, shape=s) for s in SHAPES for c in COLOURS if (c, s) not in present]
    loose = scene.loose()
    for obj in scene.objects:
        if not scene.carries(obj.oid):
            specs.append(ActionSpec("disappear", obj.oid))
        specs += [
            ActionSpec("recolour", obj.oid, colour=c)
            for c in COLOURS
            if c != obj.colour and (c, obj.shape) not in present
        ]
        specs += [ActionSpec("grow", obj.oid), ActionSpec("shrink", obj.oid)]
    for obj in loose:
        if obj.lift > 0:
            specs.append(ActionSpec("fall", obj.oid))
            continue
        specs += [ActionSpec("move_left", obj.oid), ActionSpec("move_right", obj.oid)]
        for other in loose:
            if other.oid == obj.oid or other.lift > 0:
                continue
            specs.append(ActionSpec("push", obj.oid, other.oid))
            if other.shape in STACKABLE_SHAPES:
                specs.append(ActionSpec("stack", obj.oid, other.oid))
    return specs


def apply_action(scene: Scene, spec: ActionSpec, rng: np.random.Generator) -> Scene | None:
    """The state after `spec`, or None when the geometry does not allow it (no room to move, too big...)."""
    objects = list(scene.objects)
    index = {o.oid: i for i, o in enumerate(objects)}
    kind = spec.kind
    if kind in ("lights_off", "lights_on"):
        return replace(scene, lights_on=kind == "lights_on")
    if kind == "appear":
        new = WorldObject(max(index, default=-1) + 1, spec.colour, spec.shape, 0.0, float(rng.uniform(*SCALE_RANGE)))
        placed = _place_loose(rng, [new], objects)
        return None if placed is None else replace(scene, objects=tuple(objects + placed))
    subject = objects[index[spec.subject]]
    if kind == "disappear":
        return replace(scene, objects=tuple(o for o in objects if o.oid != spec.subject))
    if kind == "recolour":
        objects[index[spec.subject]] = replace(subject, colour=spec.colour)
    elif kind in ("grow", "shrink"):
        scale = subject.scale * (GROW_FACTOR if kind == "grow" else 1 / GROW_FACTOR)
        if not SCALE_LIMITS[0] <= scale <= SCALE_LIMITS[1]:
            return None
        objects[index[spec.subject]] = replace(subject, scale=scale)
    elif kind == "fall":
        objects[index[spec.subject]] = replace(subject, lift=0.0)
    elif kind in ("move_left", "move_right"):
        step = float(rng.uniform(*MOVE_RANGE)) * (-1 if kind == "move_left" else 1)
        objects[index[spec.subject]] = replace(subject, x=subject.x + step)
    elif kind == "push":
        other = objects[index[spec.other]]
        direction = 1.0 if other.x > subject.x else -1.0
        pushed_x = other.x + direction * float(rng.uniform(*MOVE_RANGE))
        contact = (subject.width + other.width) / 2 + 0.005
        objects[index[spec.other]] = replace(other, x=pushed_x)
        objects[index[spec.subject]] = replace(subject, x=pushed_x - direction * contact)
    elif kind == "stack":
        base = objects[index[spec.other]]
        objects[index[spec.subject]] = replace(subject, x=base.x, on=base.oid)
    else:
        raise ValueError(f"unknown action kind {kind!r}")
    after = replace(scene, objects=tuple(objects))
    # A push leaves the two objects touching; anything else keeps the usual free floor between them.
    return after if _valid_geometry(after, gap=0.0 if kind == "push" else MIN_GAP) else None


def _valid_geometry(scene: Scene, gap: float) -> bool:
    for obj in scene.objects:
        if abs(obj.x) > X_LIMIT + 1e-9 or not SCALE_LIMITS[0] <= obj.scale <= SCALE_LIMITS[1]:
            return False
    floor_objects = [o for o in scene.objects if o.on is None]
    return all(
        abs(a.x - b.x) >= (a.width + b.width) / 2 + gap
        for i, a in enumerate(floor_objects)
        for b in floor_objects[i + 1 :]
    )


def lift_object(scene: Scene, oid: int, rng: np.random.Generator) -> Scene:
    """The same scene with loose object `oid` held in the air (the state before it falls)."""
    objects = tuple(replace(o, lift=float(rng.uniform(*LIFT_RANGE))) if o.oid == oid else o for o in scene.objects)
    return replace(scene, objects=objects)


def sample_transition(rng: np.random.Generator, kind: str | None = None, tries: int = 200) -> Transition:
    """A random transition; `kind` (default: uniform over ACTION_KINDS) balances the action types."""
    if kind is None:
        kind = ACTION_KINDS[int(rng.integers(len(ACTION_KINDS)))]
    if kind not in ACTION_KINDS:
        raise ValueError(f"unknown action kind {kind!r}; expected one of {ACTION_KINDS}")
    for _ in range(tries):
        before = random_scene(rng, n_objects=_objects_needed(kind, rng), stack_probability=0.15)
        if kind == "lights_on" and before.lights_on or kind == "lights_off" and not before.lights_on:
            before = replace(before, lights_on=not before.lights_on)
        if kind == "fall":
            loose = before.loose()
            if not loose:
                continue
            before = lift_object(before, loose[int(rng.integers(len(loose)))].oid, rng)
        specs = [s for s in possible_actions(before) if s.kind == kind]
        if not specs:
            continue
        spec = specs[int(rng.integers(len(specs)))]
        after = apply_action(before, spec, rng)
        if after is not None:
            return Transition(before, after, spec, spec.text(before))
    raise RuntimeError(f"could not sample a {kind!r} transition in {tries} tries")


def _objects_needed(kind: str, rng: np.random.Generator) -> int:
    if kind in ("push", "stack"):
        return 2
    if kind == "appear":
        return int(rng.integers(0, MAX_OBJECTS))
    if kind in ("lights_off", "lights_on"):
        return int(rng.integers(0, MAX_OBJECTS + 1))
    return int(rng.integers(1, MAX_OBJECTS + 1))


def distractor_actions(transition: Transition, rng: np.random.Generator, count: int = 3) -> list[str]:
    """`count` distinct action texts that also apply to the initial state but are not what happened.

    As in WorldPrediction-WM the candidates are plausible for the initial state; different kinds of action
    are preferred, so the choice tests what changed rather than which words name the object.
    """
    truth = transition.text
    texts = {s.text(transition.before): s.kind for s in possible_actions(transition.before)}
    texts.pop(truth, None)
    other_kind = sorted(t for t, k in texts.items() if k != transition.action.kind)
    same_kind = sorted(t for t, k in texts.items() if k == transition.action.kind)
    picks: list[str] = []
    for pool in (other_kind, same_kind):
        order = rng.permutation(len(pool))
        picks += [pool[i] for i in order[: count - len(picks)]]
        if len(picks) == count:
            return picks
    raise RuntimeError(f"only {len(picks)} distractors for {truth!r}")
