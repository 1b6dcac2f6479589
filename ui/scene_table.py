"""The Video tab's scene table as plain data: rows of text cells <-> an engine storyboard mapping.

A row is [prompt, negative prompt, seconds, transition, seed], every cell text as the table holds it.
Values are not checked here: whatever cannot be read as a number is passed on as typed, so the
engine's storyboard check names the scene and says what to fix.
"""
from __future__ import annotations

import random
from typing import Any, Iterable

from engine.params import SEED as SEED_PARAM
from engine.params import concrete_seed, is_random_seed, seed_input
from engine.storyboard import Storyboard, scene_seeds

HEADERS = ["prompt", "negative prompt", "seconds", "transition", "seed"]
PROMPT, NEGATIVE, SECONDS, TRANSITION, SEED = range(len(HEADERS))
TRANSITION_NAMES = {"cut": "cut", "crossfade": "crossfade", "seed_travel": "seed travel"}
DEFAULT_SECONDS = 2.0
DEFAULT_TRANSITION = "crossfade"

Row = list[str]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN: an empty cell in a pandas frame
            return ""
        return f"{value:g}"
    return str(value).strip()


def rows_of(value: Any, keep_empty: bool = False) -> list[Row]:
    """The table's value (list of lists, a {"data": ...} mapping or a pandas frame) as rows of five texts;
    rows with every cell empty are left out (kept with `keep_empty`)."""
    if value is None:
        return []
    if hasattr(value, "values") and hasattr(value, "columns"):  # pandas
        value = value.values.tolist()
    elif isinstance(value, dict):
        value = value.get("data") or []
    rows = []
    for raw in value or []:
        cells = [_text(c) for c in list(raw)[:len(HEADERS)]]
        cells += [""] * (len(HEADERS) - len(cells))
        if keep_empty or any(cells):
            rows.append(cells)
    return rows


def clicked_scene(value: Any, index: Any) -> int | None:
    """The scene (an index into rows_of(value)) a click on the table picked: `index` is the clicked row's place in
    the table's value, empty rows included (sorted in the browser or not); None for an empty row."""
    raw = rows_of(value, keep_empty=True)
    at = index[0] if isinstance(index, (list, tuple)) and index else index
    if not isinstance(at, int) or not 0 <= at < len(raw) or not any(raw[at]):
        return None
    return sum(1 for row in raw[:at] if any(row))  # its place among the scenes (empty rows are none)


def new_row(prompt: str = "", seconds: Any = DEFAULT_SECONDS, transition: str = DEFAULT_TRANSITION) -> Row:
    return [prompt.strip(), "", _text(seconds), _text(transition), ""]


def rows_from_prompts(text: str, seconds: Any = DEFAULT_SECONDS, transition: str = DEFAULT_TRANSITION) -> list[Row]:
    """One row per non-blank line."""
    return [new_row(line, seconds, transition) for line in (text or "").splitlines() if line.strip()]


# -- editing: each returns (rows, selected row or None) -------------------------------------------

def _index(rows: list[Row], selected: Any) -> int | None:
    try:
        i = int(selected)
    except (TypeError, ValueError):
        return None
    return i if 0 <= i < len(rows) else None


def add_row(rows: list[Row], selected: Any = None) -> tuple[list[Row], int]:
    """A new scene after the selected one (at the end when none is selected); it becomes the selection."""
    i = _index(rows, selected)
    at = len(rows) if i is None else i + 1
    return rows[:at] + [new_row()] + rows[at:], at


def remove_row(rows: list[Row], selected: Any = None) -> tuple[list[Row], int | None]:
    """Remove the selected scene (the last one when none is selected)."""
    if not rows:
        return rows, None
    i = _index(rows, selected)
    at = len(rows) - 1 if i is None else i
    rows = rows[:at] + rows[at + 1:]
    if not rows:
        return rows, None
    return rows, min(at, len(rows) - 1) if i is not None else None


def move_row(rows: list[Row], selected: Any, delta: int) -> tuple[list[Row], int | None]:
    """Move the selected scene `delta` places (clamped at the ends); the selection follows it."""
    i = _index(rows, selected)
    if i is None:
        return rows, None
    j = max(0, min(len(rows) - 1, i + delta))
    rows = list(rows)
    rows.insert(j, rows.pop(i))
    return rows, j


# -- table <-> storyboard --------------------------------------------------------------------------

def _number(cell: str) -> Any:
    """A cell as a number; empty -> None; anything else is kept as typed for the engine to name."""
    if cell == "":
        return None
    try:
        value = float(cell)
    except ValueError:
        return cell
    return int(value) if value.is_integer() and "." not in cell and "e" not in cell.lower() else value


def _seed(cell: str) -> Any:
    """A seed cell: None for random (empty, -1), whole numbers as ints, anything else as typed."""
    return seed_input(_number(cell))


def scenes_of(rows: Iterable[Row], negative: str = "", transition_duration: Any = None) -> list[dict[str, Any]]:
    """Scene mappings for Storyboard.from_dict; `negative` fills rows without a negative prompt of their own."""
    scenes = []
    for row in rows:
        scene: dict[str, Any] = {"prompt": row[PROMPT]}
        if row[NEGATIVE] or (negative or "").strip():
            scene["negative_prompt"] = row[NEGATIVE] or negative.strip()
        seconds = _number(row[SECONDS])
        if seconds is not None:
            scene["duration"] = seconds
        if row[TRANSITION]:
            scene["transition"] = row[TRANSITION]
        if transition_duration not in (None, ""):
            scene["transition_duration"] = transition_duration
        scene["seed"] = _seed(row[SEED])
        scenes.append(scene)
    return scenes


def apply_seed_policy(scenes: list[dict[str, Any]], base: Any, policy: str,
                      rng: random.Random | None = None) -> tuple[Any, str]:
    """A seed typed in a row wins; the other rows take theirs from `policy` and the base seed.

    The engine uses scene seeds only with the per_scene policy, so when any row has one the board
    becomes per_scene and the empty rows get the seeds engine.storyboard.scene_seeds gives them under the
    chosen policy (a random base seed is drawn here for that). Returns the board's (seed, seed_policy).
    """
    if not any(s.get("seed") is not None for s in scenes):
        return base, policy
    if policy not in ("fixed", "increment") or SEED_PARAM.problem(base):
        return base, "per_scene"  # per_scene: empty rows stay random; a bad base seed is the engine's to name
    base = concrete_seed(base, rng or random.Random())
    for scene, seed in zip(scenes, scene_seeds(policy, base, [None] * len(scenes))):
        if scene.get("seed") is None:
            scene["seed"] = seed
    return base, "per_scene"


def rows_from_storyboard(board: Storyboard) -> list[Row]:
    """The table for a parsed storyboard (scene seeds only where the board uses them)."""
    rows = []
    for scene in board.scenes:
        seed = scene.seed if board.seed_policy == "per_scene" and not is_random_seed(scene.seed) else ""
        transition = TRANSITION_NAMES.get(scene.transition, scene.transition)
        rows.append([_text(scene.prompt), _text(scene.negative_prompt), _text(scene.duration), _text(transition),
                     _text(seed)])
    return rows
