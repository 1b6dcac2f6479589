"""Quality and aspect-ratio presets (presets/*.yaml) and what applying each one means (styles: engine/styles.py)."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import yaml

from engine.config import PRESETS_DIR
from engine.params import WIDTH

CUSTOM_SIZE = "Custom"


def _load(name: str) -> dict[str, Any]:
    path = PRESETS_DIR / name
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


@lru_cache(maxsize=None)
def quality_presets() -> dict[str, dict[str, Any]]:
    """Quality name -> {"steps": int, "guidance": float | None}."""
    return {str(k): {"steps": int(v["steps"]), "guidance": v.get("guidance")} for k, v in _load("quality.yaml").items()}


@lru_cache(maxsize=None)
def aspect_ratios() -> dict[str, tuple[int, int]]:
    """Aspect name -> (w, h) ratio."""
    return {str(k): (int(v[0]), int(v[1])) for k, v in _load("aspect_ratios.yaml").items()}


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
