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
    compiled = report["variants"]["engine compiled, previews on"]
    assert compiled["beside"] == "raw, again beside the compiled runs" and compiled["vs_raw_paired"] > 0
    assert "vs_raw_paired" not in report["variants"]["raw, regional compile (repeated blocks)"]  # not interleaved
    assert report["unet_parameters"] > 0 and "| engine, previews on |" in done.stdout


def test_ratios_are_taken_against_the_raw_run_beside_and_round_by_round():
    """A slow spell in one round (both runs of round 2 slow) moves the medians' ratio but not the per-round one."""
    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_sdxl import compared

    table = compared({"raw": [2.0, 4.0, 2.2], "engine": [2.2, 4.4, 2.42], "raw again": [3.0, 3.0, 3.0],
                      "compiled": [1.5, 1.6, 1.5], "alone": [1.0]},
                     {"raw": "raw", "engine": "raw", "raw again": "raw again", "compiled": "raw again"})
    assert table["engine"]["vs_raw_paired"] == 1.1 and table["engine"]["vs_raw_fastest"] == 1.1
    assert table["compiled"]["beside"] == "raw again" and table["compiled"]["vs_raw"] == 0.5
    assert table["alone"]["beside"] == "raw" and table["alone"]["vs_raw"] == round(1.0 / 2.2, 3)
    assert "vs_raw_paired" not in table["alone"] and table["raw"]["fastest_s"] == 2.0
