"""Storyboards: scenes, global video settings, seed policies, quality presets, YAML/JSON files.

A storyboard is data only; engine/video.py turns one into keyframes and an mp4.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from .config import PRESETS_DIR
from .errors import InvalidRequest
from .params import GUIDANCE, HEIGHT, SEED, STEPS, WIDTH, Param, concrete_seed, is_number, seed_after

TRANSITIONS = ("cut", "crossfade", "seed_travel")
SEED_POLICIES = ("fixed", "per_scene", "increment")
TRANSITION_ALIASES = {
    "none": "cut", "hard_cut": "cut",
    "fade": "crossfade", "cross_fade": "crossfade", "dissolve": "crossfade", "blend": "crossfade",
    "travel": "seed_travel", "interpolate": "seed_travel", "interpolation": "seed_travel",
    "latent_interpolation": "seed_travel", "latent": "seed_travel",
}
POLICY_ALIASES = {"perscene": "per_scene", "scene": "per_scene", "same": "fixed", "incremental": "increment"}

MAX_TOTAL_S = 600.0  # ten minutes
DEFAULT_DURATION_S = 2.0
# the storyboard's own parameters, declared like the image ones (engine/params.py): validation and the video tab
FPS = Param("fps", "float", None, "Frames per second",
            "{minimum} to {maximum}; empty: the quality preset's.", minimum=1, maximum=60, step=1, optional=True)
TRANSITION_DURATION = Param("transition_duration", "float", 0.5, "Transition seconds",
                            "How long each crossfade or seed travel lasts, {minimum} to {maximum} s "
                            "(never longer than its scene).", minimum=0.0, maximum=10.0, step=0.25)
DEFAULT_TRANSITION_S = TRANSITION_DURATION.default
DEFAULT_QUALITY = "standard"
IGNORED_KEYS = ("render", "version")  # written beside a video; not part of the storyboard itself


@lru_cache(maxsize=None)
def quality_presets() -> dict[str, dict[str, Any]]:
    """presets/video_quality.yaml: name -> {steps, width, height, fps, crf_quality, max_travel_inbetweens}."""
    data = yaml.safe_load((PRESETS_DIR / "video_quality.yaml").read_text())
    return {str(name): dict(values) for name, values in data.items()}


def _canonical(name: Any, aliases: dict[str, str]) -> Any:
    """Lower-case, `-`/space to `_`, then the alias table; non-strings pass through for validate()."""
    if not isinstance(name, str):
        return name
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return aliases.get(key, key)


def _seconds(total: float) -> str:
    if total < 60:
        return f"{total:g} s"
    minutes, secs = divmod(total, 60)
    return f"{int(minutes)} min" + (f" {secs:.0f} s" if round(secs) else "")


def transition_name(name: str) -> str:
    """A transition as the UI shows it: "seed travel" for seed_travel."""
    return name.replace("_", " ")


def _one_of(names: Sequence[str]) -> str:
    """ "cut, crossfade or seed travel": names as the UI shows them."""
    shown = [transition_name(n) for n in names]
    return ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else "".join(shown)


def _unknown_fields(mapping: dict[Any, Any], known: Iterable[str]) -> str | None:
    """The keys of `mapping` that are not field names, as "x, 1. Known fields: ..."; None when there are none."""
    names = sorted(known)
    unknown = sorted(key if isinstance(key, str) else json.dumps(key, default=str)
                     for key in mapping if not isinstance(key, str) or key not in names)
    if not unknown:
        return None
    text_only = "" if all(isinstance(key, str) for key in mapping) else " Field names are text."
    return f"{', '.join(unknown)}. Known fields: {', '.join(names)}.{text_only}"


def _policy_problem(policy: Any) -> str | None:
    if policy in SEED_POLICIES:
        return None
    return f"Seed policy must be one of {', '.join(SEED_POLICIES)} (got {policy!r})."


def scene_seeds(policy: str, base: Any, own: Sequence[Any], rng: random.Random | None = None) -> list[int]:
    """One concrete seed per scene under a seed policy: fixed gives every scene the base seed, increment gives
    scene n base + n, per_scene gives each scene its `own` seed. A random (-1 or None) seed is drawn from `rng`."""
    rng = rng or random.Random()
    if policy == "per_scene":
        return [concrete_seed(seed, rng) for seed in own]
    if problem := _policy_problem(policy):
        raise InvalidRequest(problem)
    first = concrete_seed(base, rng)
    return [first if policy == "fixed" else seed_after(first, n) for n in range(len(own))]


def frame_counts(durations: Iterable[float], fps: float) -> list[int]:
    """Frames per scene, rounded on the running total so the whole video lasts exactly sum(durations)."""
    counts, elapsed, start = [], 0.0, 0
    for duration in durations:
        elapsed += duration
        end = math.floor(elapsed * fps + 0.5)
        counts.append(end - start)
        start = end
    return counts


@dataclass
class Scene:
    """One shot: what it shows, how long it lasts, and how it hands over to the next scene."""

    prompt: str
    negative_prompt: str = ""
    duration: float = DEFAULT_DURATION_S
    transition: str = "cut"  # to the next scene: cut | crossfade | seed_travel
    transition_duration: float = DEFAULT_TRANSITION_S
    seed: int | None = None  # used by the per_scene seed policy; None or -1 is random

    def __post_init__(self) -> None:
        self.transition = _canonical(self.transition, TRANSITION_ALIASES)


@dataclass
class Storyboard:
    """Scenes plus global settings; None fields come from the quality preset."""

    scenes: list[Scene] = field(default_factory=list)
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    quality: str = DEFAULT_QUALITY  # draft | standard | high (presets/video_quality.yaml)
    seed_policy: str = "increment"  # fixed | per_scene | increment
    seed: int | None = None  # base seed of fixed/increment; None or -1 is random
    steps: int | None = None
    guidance_scale: float | None = None
    model: str | None = None
    title: str = ""

    def __post_init__(self) -> None:
        self.seed_policy = _canonical(self.seed_policy, POLICY_ALIASES)
        self.quality = _canonical(self.quality, {})

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_prompts(cls, prompts: str | Iterable[str], *, duration: float = DEFAULT_DURATION_S,
                     transition: str = "crossfade", transition_duration: float = DEFAULT_TRANSITION_S,
                     negative_prompt: str = "", **settings: Any) -> "Storyboard":
        """One scene per prompt (a string is split into lines, blank ones dropped); `settings` are Storyboard fields."""
        if isinstance(prompts, str):
            prompts = [line for line in prompts.splitlines() if line.strip()]
        elif prompts is None:
            prompts = []
        scenes = [Scene(prompt=p, negative_prompt=negative_prompt, duration=duration, transition=transition,
                        transition_duration=transition_duration) for p in prompts]
        return cls(scenes=scenes, **settings)

    @classmethod
    def from_dict(cls, data: Any) -> "Storyboard":
        """Build from a parsed YAML/JSON mapping; scenes may be mappings or plain prompt strings.

        Raises InvalidRequest for a wrong shape or an unknown field (values are checked by validate()).
        """
        if not isinstance(data, dict):
            raise InvalidRequest("A storyboard must be a mapping with a 'scenes' list.")
        known = {f.name for f in fields(cls)}
        unknown = _unknown_fields({k: v for k, v in data.items() if k not in IGNORED_KEYS}, known)
        if unknown:
            raise InvalidRequest(f"Unknown storyboard field(s): {unknown}")
        raw_scenes = data.get("scenes")
        if not isinstance(raw_scenes, list):
            raise InvalidRequest("A storyboard needs a 'scenes' list (one entry per scene).")
        scene_fields = {f.name for f in fields(Scene)}
        scenes = []
        for number, item in enumerate(raw_scenes, start=1):
            if isinstance(item, str):
                item = {"prompt": item}
            if not isinstance(item, dict):
                raise InvalidRequest(f"Scene {number} must be a prompt or a mapping with a 'prompt'.")
            unknown = _unknown_fields(item, scene_fields)
            if unknown:
                raise InvalidRequest(f"Scene {number} has unknown field(s): {unknown}")
            scenes.append(Scene(**{"prompt": "", **item}))
        settings = {k: v for k, v in data.items() if k in known and k != "scenes"}
        return cls(scenes=scenes, **settings)

    def with_seeds(self, seeds: Sequence[int]) -> "Storyboard":
        """A copy whose resolve_seeds gives exactly `seeds` (drawn random seeds written out), under the same policy:
        per_scene sets each scene's seed, fixed and increment the base seed."""
        if self.seed_policy == "per_scene":
            return replace(self, scenes=[replace(s, seed=seed) for s, seed in zip(self.scenes, seeds)])
        return replace(self, scenes=[replace(s) for s in self.scenes], seed=seeds[0] if seeds else self.seed)

    def with_overrides(self, **overrides: Any) -> "Storyboard":
        """A copy with these settings replaced (any field but scenes); the original is left alone.

        Raises InvalidRequest naming unknown settings (values are checked by validate()).
        """
        known = {f.name for f in fields(self)} - {"scenes"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidRequest(f"Unknown video option(s): {', '.join(unknown)}. "
                                 f"Known options: {', '.join(sorted(known))}.")
        return replace(self, scenes=[replace(s) for s in self.scenes], **overrides)

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping that from_dict reads back to an equal storyboard."""
        return asdict(self)

    # -- files ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "Storyboard":
        """Read YAML or JSON text (JSON is YAML, so one parser reads both)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise InvalidRequest(f"The storyboard is not valid YAML or JSON: {err}") from err
        if isinstance(data, str):  # one line of text: maybe a file name, which is never opened
            raise InvalidRequest("The storyboard must be YAML or JSON text with a 'scenes' list; a file name is "
                                 "not opened: paste the file's text or upload the file.")
        return cls.from_dict(data)

    def dumps(self, fmt: str = "yaml") -> str:
        """The storyboard as YAML (default) or JSON text."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def load(cls, path: str | Path) -> "Storyboard":
        """Load a .yaml/.yml/.json storyboard file (also the JSON saved beside a video)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise InvalidRequest(f"Could not read the storyboard {path}: {err.strerror or err}.") from err
        if path.suffix.lower() == ".json":
            try:
                return cls.from_dict(json.loads(text))
            except json.JSONDecodeError as err:
                raise InvalidRequest(f"The storyboard {path.name} is not valid JSON: {err}.") from err
        return cls.parse(text)

    def save(self, path: str | Path) -> Path:
        """Write as JSON for a .json path, else YAML; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps("json" if path.suffix.lower() == ".json" else "yaml"), encoding="utf-8")
        return path

    # -- settings ------------------------------------------------------------------------------
    @property
    def preset(self) -> dict[str, Any]:
        presets = quality_presets()
        name = self.quality if isinstance(self.quality, str) else DEFAULT_QUALITY  # problems() names a bad one
        return presets.get(name, presets[DEFAULT_QUALITY])

    def resolved(self) -> "Storyboard":
        """A copy with fps, size and steps filled in from the quality preset where they were None."""
        preset = self.preset
        return replace(
            self, scenes=[replace(s) for s in self.scenes],
            fps=preset["fps"] if self.fps is None else self.fps,
            width=preset["width"] if self.width is None else self.width,
            height=preset["height"] if self.height is None else self.height,
            steps=preset["steps"] if self.steps is None else self.steps,
        )

    @property
    def total_duration(self) -> float:
        return float(sum(s.duration for s in self.scenes if is_number(s.duration)))

    def frame_counts(self) -> list[int]:
        """Frames per scene at this storyboard's (resolved) fps."""
        return frame_counts([s.duration for s in self.scenes], float(self.resolved().fps))

    def validate(self) -> "Storyboard":
        """Return the resolved storyboard, or raise InvalidRequest naming every problem found."""
        problems = self.problems()
        if problems:
            raise InvalidRequest(" ".join(problems))
        return self.resolved()

    def problems(self) -> list[str]:
        """Every problem with this storyboard, each as a sentence; empty when it can be rendered."""
        out: list[str] = []
        if not isinstance(self.quality, str) or self.quality not in quality_presets():
            out.append(f"Quality must be one of {', '.join(quality_presets())} (got {self.quality!r}).")
        if problem := _policy_problem(self.seed_policy):
            out.append(problem)
        board = self.resolved()
        fps_problem = FPS.problem(board.fps)  # the preset always gives one: None is not "the preset's" here
        fps_ok = board.fps is not None and not fps_problem
        if not fps_ok:
            out.append(fps_problem or f"Frames per second must be a number (got {board.fps!r}).")
        out += [problem for problem in (WIDTH.problem(board.width), HEIGHT.problem(board.height),
                                        STEPS.problem(board.steps), GUIDANCE.problem(board.guidance_scale),
                                        SEED.problem(self.seed, "The storyboard seed")) if problem]
        if not isinstance(self.title, str):
            out.append("The title must be text.")
        if self.model is not None and not isinstance(self.model, str):
            out.append("The model must be a model name.")
        if not self.scenes:
            out.append("The storyboard has no scenes: add at least one scene with a prompt.")
            return out
        out += self._scene_problems(board.fps if fps_ok else None)
        total = self.total_duration
        too_long = any(is_number(s.duration) and s.duration > MAX_TOTAL_S for s in self.scenes)
        if total > MAX_TOTAL_S and not too_long:  # a scene over the limit already said so: one message
            out.append(f"The storyboard lasts {_seconds(total)}; the longest video is "
                       f"{_seconds(MAX_TOTAL_S)}. Shorten or remove scenes.")
        return out

    def _scene_problems(self, fps: float | None) -> list[str]:
        out: list[str] = []
        for number, scene in enumerate(self.scenes, start=1):
            if not isinstance(scene.prompt, str) or not scene.prompt.strip():
                out.append(f"Scene {number} has an empty prompt: describe what the scene shows.")
            if not isinstance(scene.negative_prompt, str):
                out.append(f"Scene {number}'s negative prompt must be text.")
            if not is_number(scene.duration):
                out.append(f"Scene {number}'s duration must be a number of seconds (got {scene.duration!r}).")
            elif scene.duration <= 0:
                out.append(f"Scene {number}'s duration must be more than 0 seconds (got {scene.duration:g}).")
            elif scene.duration > MAX_TOTAL_S:
                out.append(f"Scene {number} lasts {_seconds(scene.duration)}; the longest video is "
                           f"{_seconds(MAX_TOTAL_S)}.")
            elif fps is not None and scene.duration * fps < 1:
                out.append(f"Scene {number} lasts {scene.duration:g} s, shorter than one frame at {fps:g} fps; "
                           f"make it at least {1 / fps:.3g} s.")
            if scene.transition not in TRANSITIONS:
                out.append(f"Scene {number}'s transition must be one of {_one_of(TRANSITIONS)} "
                           f"(got {scene.transition!r}).")
            if problem := TRANSITION_DURATION.problem(scene.transition_duration,
                                                      f"Scene {number}'s transition duration"):
                out.append(problem)
            if problem := SEED.problem(scene.seed, f"Scene {number}'s seed"):
                out.append(problem)
        return out

    # -- seeds ---------------------------------------------------------------------------------
    def resolve_seeds(self, rng: random.Random | None = None) -> list[int]:
        """One concrete seed per scene under this storyboard's seed policy (see scene_seeds)."""
        return scene_seeds(self.seed_policy, self.seed, [scene.seed for scene in self.scenes], rng)
