"""Compiled UNet after a restart: a cached compilation (torch.compile finding Inductor's code on disk, which still
traces the UNet) vs a saved graph (engine/precompiled.py: loaded, no trace).

Each measurement is a fresh process, as a restart is: it builds the UNet from the family's published config (random
weights: compiled code does not depend on them) and compiles one shape through the engine's own path
(`compiled_functions` + `compile_shape`, the background compiler's calls), timing that call. The first process of
each kind fills its own cache folder (a cold compilation); the next ones are restarts.

Run: .venv/bin/python bench/compile_restart.py [--family sd15] [--size 256] [--restarts 3]
     python bench/compile_restart.py --family sdxl --size 1024 --device cuda --dtype float16     # on a GPU
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, row

KINDS = {"cached": "torch.compile, Inductor's cache", "saved": "saved graph"}
PROBE = """
import json, sys, time
started = time.perf_counter()
from pathlib import Path
import torch
from diffusers import UNet2DConditionModel
from engine.compiled import compile_shape, compiled_functions, shape_key, trace_before_requests, use_compile_cache

family, size, device, dtype, cache, kind = sys.argv[1:7]
use_compile_cache(Path(cache))
config = UNet2DConditionModel.load_config(str(Path("presets/pipelines") / family / "unet"))
torch.manual_seed(0)
with torch.device(device):
    unet = UNet2DConditionModel.from_config(config).to(dtype=getattr(torch, dtype)).eval().requires_grad_(False)
trace_before_requests()
compiling, running = compiled_functions(unet, "unet", "inductor", Path(cache) / "graphs" if kind == "saved" else None,
                                        save_graphs=kind == "saved")  # its own UNet, as a child compiler has
key = ((2, unet.config.in_channels, int(size) // 8, int(size) // 8), (2, 77, unet.config.cross_attention_dim),
       str(unet.dtype))
ready_s = time.perf_counter() - started
began = time.perf_counter()
compile_shape(compiling, unet, key)
compile_s = time.perf_counter() - began
from engine.compiled import zeros_for
sample, timestep, text, added = zeros_for(unet, key)
steps = []
with torch.no_grad():
    for _ in range(5):
        began = time.perf_counter()
        running(sample, timestep, encoder_hidden_states=text, timestep_cond=None, cross_attention_kwargs=None,
                added_cond_kwargs=added, return_dict=False)
        if device == "cuda":
            torch.cuda.synchronize()
        steps.append(time.perf_counter() - began)
step_s = sorted(steps)[2]
print(json.dumps({"compile_s": compile_s, "step_s": step_s, "start_s": ready_s}))
"""


def measure(family: str, size: int, device: str, dtype: str, cache: Path, kind: str) -> dict[str, float]:
    """One fresh process: its UNet compiled (or loaded) for `size`; the seconds it took."""
    done = subprocess.run([sys.executable, "-c", PROBE, family, str(size), device, dtype, str(cache), kind],
                          capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if done.returncode:
        raise SystemExit(f"the {KINDS[kind]} probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=("sd15", "sdxl"), default="sd15")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels (square)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gator-compile-restart-"))
    results: dict[str, dict[str, list[float]]] = {}
    for kind in KINDS:
        cache = work / kind
        cold = measure(args.family, args.size, args.device, args.dtype, cache, kind)
        restarts = [measure(args.family, args.size, args.device, args.dtype, cache, kind)
                    for _ in range(args.restarts)]
        results[kind] = {"cold": [cold["compile_s"]], "restart": [r["compile_s"] for r in restarts],
                         "step": [r["step_s"] for r in restarts], "start": [r["start_s"] for r in restarts]}

    def med(kind: str, part: str) -> float:
        return statistics.median(results[kind][part])

    print(f"{args.family} UNet, {args.size}x{args.size}, {args.device} {args.dtype}; medians of {args.restarts} "
          f"restarts, each a fresh process ({time.strftime('%Y-%m-%d')})")
    print(row("kind", "cold compile (s)", "restart: compile or load, with its first step (s)",
              "process start to UNet built (s)",
              "one compiled step after, median of 5 (s)"))
    print(row(*["---"] * 5))
    for kind, label in KINDS.items():
        print(row(label, f"{med(kind, 'cold'):.2f}", f"{med(kind, 'restart'):.2f}", f"{med(kind, 'start'):.2f}",
                  f"{med(kind, 'step'):.4f}"))
    print(f"restart, saved graph vs cache: {med('saved', 'restart') / med('cached', 'restart'):.3f}x the time; "
          f"step after: {med('saved', 'step') / med('cached', 'step'):.3f}x")


if __name__ == "__main__":
    main()
