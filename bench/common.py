"""Shared pieces of the benchmarks: timing, the tiny model, a manager without ComfyUI."""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.config import Settings  # noqa: E402
from engine.registry import Hardware  # noqa: E402
from engine.tiny_model import ensure_tiny_model  # noqa: E402

CPU = Hardware(device="cpu", device_name="CPU", vram_gb=0.0, ram_gb=16.0)


def tiny_settings(**overrides) -> Settings:
    """Local-only settings with outputs in a temporary folder and the cached tiny model."""
    workdir = Path(tempfile.mkdtemp(prefix="gator-bench-"))
    tiny = ensure_tiny_model(Path(os.environ.get("GATOR_TINY_MODEL_DIR", ROOT / ".cache" / "tiny-model")))
    base = dict(comfyui_urls=[], enable_comfyui=False, output_dir=workdir / "outputs", tiny_model_dir=tiny)
    return Settings(**{**base, **overrides})


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of `fn()` over `repeat` runs (after one warm-up run)."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median times of several variants measured in alternation, so drift hits them all alike."""
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
