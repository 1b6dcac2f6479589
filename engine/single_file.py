"""Load an SD 1.5 / SDXL single-file checkpoint (A1111/ComfyUI layout) with no network and no HF cache.

diffusers' `from_single_file` takes the weights from the file but needs the pipeline's diffusers-format
configs and tokenizer files. They come from presets/pipelines/<family>/ (committed JSON) plus CLIP's
vocabulary (engine/clip_vocab.py), assembled once into a writable cache folder.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .clip_vocab import ensure_tokenizer_files
from .config import user_cache_dir

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline

logger = logging.getLogger(__name__)

FAMILIES = ("sd15", "sdxl")
INPAINTING_IN_CHANNELS = 9  # an inpainting UNet's input: 4 latent + 1 mask + 4 masked-image latent channels
PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets" / "pipelines"


def _default_cache_dir() -> Path:
    """~/.cache/gator-studio/pipelines (XDG_CACHE_HOME respected)."""
    return user_cache_dir("pipelines")


def _digest(folder: Path) -> str:
    """A short hash of every file's relative path and bytes, so changed configs get a fresh folder."""
    sha = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha.update(file.relative_to(folder).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return sha.hexdigest()[:12]


def _assemble_config(source: Path, cache_dir: Path, family: str, inpainting: bool = False) -> Path:
    """The diffusers config folder for `family`: `source` copied into `cache_dir`, tokenizer vocab added (for an
    inpainting checkpoint the UNet takes INPAINTING_IN_CHANNELS).

    Built in a temporary folder and renamed into place, so a folder that exists is complete."""
    target = cache_dir / f"{family}{'-inpainting' if inpainting else ''}-{_digest(source)}"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(source, staging)
        for tokenizer in sorted(staging.glob("tokenizer*")):
            ensure_tokenizer_files(tokenizer)
        if inpainting:
            unet = staging / "unet" / "config.json"
            unet.write_text(json.dumps({**json.loads(unet.read_text()), "in_channels": INPAINTING_IN_CHANNELS},
                                       indent=2) + "\n")
        try:
            os.replace(staging, target)
        except OSError:  # another process put it in place first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Prepared the %s pipeline config in %s", family, target)
    return target


def load_single_file(pipeline_cls: type[DiffusionPipeline], path: str | Path, family: str, *,
                     dtype: torch.dtype | None, config_root: Path | None = None,
                     cache_dir: Path | None = None, inpainting: bool = False) -> DiffusionPipeline:
    """Load the checkpoint at `path` as `pipeline_cls` (e.g. StableDiffusionPipeline), offline.

    `family` is "sd15" or "sdxl"; its configs are read from `config_root/<family>/` (default
    presets/pipelines) and assembled, with the CLIP vocabulary, under `cache_dir` (default
    ~/.cache/gator-studio/pipelines); `inpainting` for an inpainting checkpoint (its UNet's in_channels).
    Errors from diffusers are raised as they are."""
    if family not in FAMILIES:
        raise ValueError(f"Unknown model family {family!r}: single-file checkpoints load as one of {', '.join(FAMILIES)}.")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The checkpoint {path} does not exist.")
    source = Path(config_root or PRESETS_DIR) / family
    if not (source / "model_index.json").is_file():
        raise FileNotFoundError(f"No {family} pipeline config in {source} (model_index.json is missing).")
    config = _assemble_config(source, Path(cache_dir or _default_cache_dir()), family, inpainting)
    started = time.perf_counter()
    pipe = pipeline_cls.from_single_file(str(path), config=str(config), local_files_only=True, torch_dtype=dtype)
    logger.info("Loaded %s as %s (%s) in %.1fs", path.name, pipeline_cls.__name__, family, time.perf_counter() - started)
    return pipe
