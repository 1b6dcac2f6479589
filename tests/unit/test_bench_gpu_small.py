"""bench/gpu_sdxl.py stays runnable: its --small form (an SDXL-shaped model on the CPU) runs end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_benchmark_runs_small_on_the_cpu(tmp_path):
    out = tmp_path / "small.json"
    done = subprocess.run([sys.executable, "bench/gpu_sdxl.py", "--small", "--sections", "eager,regional,compiled",
                           "--compile-scope", "blocks", "--compile-backend", "eager", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["small"] and report["size"] == 64 and report["steps"] == 2 and not report["errors"]
    assert set(report["variants"]) == {"raw", "engine, previews on", "engine, previews off",
                                       "raw, again beside the compiled runs", "engine compiled, previews on",
                                       "engine compiled, previews off", "raw, regional compile (repeated blocks)"}
    assert report["compile_state"]["scope"] == "blocks" and report["compile_state"]["status"] == "ready"
    assert report["regional_first_call_s"] > 0
    assert report["variants"]["raw"]["vs_raw"] == 1.0 and all(v["median_s"] > 0 for v in report["variants"].values())
    assert report["unet_parameters"] > 0 and "| engine, previews on |" in done.stdout
