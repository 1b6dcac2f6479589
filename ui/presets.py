"""Styles, quality and aspect-ratio presets (presets/*.yaml) and what applying each one means."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import yaml

from engine.config import PRESETS_DIR
from engine.params import WIDTH

NO_STYLE = "None"
CUSTOM_SIZE = "Custom"


def _load(name: str) -> dict[str, Any]:
    path = PRESETS_DIR / name
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


@lru_cache(maxsize=None)
def styles() -> dict[str, dict[str, str]]:
    """Style name -> {"prompt": template with {prompt}, "negative": text}; "None" always first."""
    loaded = {str(k): {"prompt": str(v.get("prompt") or "{prompt}"), "negative": str(v.get("negative") or "")}
              for k, v in _load("styles.yaml").items()}
    return {NO_STYLE: {"prompt": "{prompt}", "negative": ""}, **{k: v for k, v in loaded.items() if k != NO_STYLE}}


@lru_cache(maxsize=None)
def quality_presets() -> dict[str, dict[str, Any]]:
    """Quality name -> {"steps": int, "guidance": float | None}."""
    return {str(k): {"steps": int(v["steps"]), "guidance": v.get("guidance")} for k, v in _load("quality.yaml").items()}


@lru_cache(maxsize=None)
def aspect_ratios() -> dict[str, tuple[int, int]]:
    """Aspect name -> (w, h) ratio."""
    return {str(k): (int(v[0]), int(v[1])) for k, v in _load("aspect_ratios.yaml").items()}


def apply_style(style: str | None, prompt: str, negative: str) -> tuple[str, str]:
    """The prompt and negative prompt with `style` applied (unknown or "None" leaves them unchanged)."""
    spec = styles().get(style or NO_STYLE)
    if spec is None or style == NO_STYLE or not (prompt or "").strip():
        return prompt, negative
    styled = spec["prompt"].replace("{prompt}", prompt.strip())
    return styled, merge_negative(negative, spec["negative"])


def _terms(text: str) -> list[str]:
    """The comma-separated terms of a negative prompt, stripped, blanks dropped."""
    return [term.strip() for term in (text or "").split(",") if term.strip()]


def merge_negative(negative: str, extra: str) -> str:
    """`negative` followed by the terms of `extra` it does not have yet (compared without case): no term twice."""
    have = {term.lower() for term in _terms(negative)}
    added = []
    for term in _terms(extra):
        if term.lower() not in have:
            have.add(term.lower())
            added.append(term)
    if not added:
        return negative
    kept = (negative or "").strip().rstrip(",").strip()
    return ", ".join([kept, *added] if kept else added)


def _round_side(value: float, step: int) -> int:
    return int(min(WIDTH.maximum, max(WIDTH.minimum, round(value / step) * step)))


def size_for_aspect(aspect: str, width: Any, height: Any) -> tuple[int, int] | None:
    """A width and height with the preset's ratio and about as many pixels as width x height.

    None for an unknown preset ("Custom"). Sides are multiples of 8 (of 64 from 512 px up), within the
    schema's limits.
    """
    ratio = aspect_ratios().get(aspect)
    if ratio is None:
        return None
    try:
        area = float(width) * float(height)
    except (TypeError, ValueError):
        area = 0.0
    if not area or area != area or area <= 0:
        area = 1024.0 * 1024.0
    base = math.sqrt(area)
    step = 64 if base >= 512 else 8
    rw, rh = ratio
    w = base * math.sqrt(rw / rh)
    h = base * math.sqrt(rh / rw)
    return _round_side(w, step), _round_side(h, step)
