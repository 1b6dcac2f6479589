"""Where a local model's weights come from: a local diffusers folder, a single .safetensors file,
the Hugging Face cache, or (only when allowed) a download. Every check is offline and instant."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .registry import ModelSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightSource:
    """How to load one model: `kind` is folder | single_file | hub_cache | hub_download | builtin."""

    kind: str
    location: str


@dataclass(frozen=True)
class Missing:
    """Why a model cannot be loaded, as a sentence for the user."""

    reason: str


def _hub_cached(hub_id: str) -> bool:
    """True when the hub model's index is already in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hub_id, "model_index.json")
        return isinstance(found, str)
    except Exception:  # a broken cache is the same as no cache
        return False


def locate_weights(spec: ModelSpec, models_dir: Path | None, tiny_dir: Path,
                   allow_downloads: bool = False) -> WeightSource | Missing:
    """Find `spec`'s weights without touching the network (unless `allow_downloads`)."""
    if spec.builtin:
        return WeightSource("builtin", str(tiny_dir))
    looked: list[str] = []
    if models_dir:
        folder = Path(models_dir) / spec.id
        if (folder / "model_index.json").exists():
            return WeightSource("folder", str(folder))
        looked.append(f"folder {folder}")
        if spec.single_file:
            single = Path(models_dir) / spec.single_file
            if single.is_file():
                return WeightSource("single_file", str(single))
            looked.append(f"file {single}")
    else:
        looked.append("GATOR_MODELS_DIR (not set)")
    if spec.hub_id:
        if _hub_cached(spec.hub_id):
            return WeightSource("hub_cache", spec.hub_id)
        looked.append(f"Hugging Face cache for {spec.hub_id}")
        if allow_downloads:
            return WeightSource("hub_download", spec.hub_id)
    return Missing(f"{spec.label} weights not found (looked in: {'; '.join(looked)}).")
