"""Engine overhead: `generate_image` through AIModelManager vs the raw diffusers pipeline call.

Same tiny model, same arguments, same seed; measured side by side in one run.
Run: .venv/bin/python bench/engine_overhead.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import asyncio

import torch

from common import CPU, interleaved, row, tiny_settings

from engine.manager import AIModelManager
from engine.registry import find_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    manager = AIModelManager(tiny_settings(), hardware=CPU)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(manager.initialize_models())
    loop.run_until_complete(manager.generate_image("warm", width=64, height=64, num_inference_steps=1, seed=0))
    local = manager.router.last_resort
    pipe = local.pipeline(find_model("tiny"), local.weights["tiny"])  # the very pipeline it runs

    print(row("size", "steps", "raw pipeline (s)", "manager, previews on (s)", "manager, previews off (s)",
              "ratio on", "ratio off"))
    print(row(*["---"] * 7))
    for size in (64, 256):
        for steps in (4, 20):
            kwargs = dict(width=size, height=size, num_inference_steps=steps, guidance_scale=5.0)

            def raw():
                pipe("a red fox", generator=torch.Generator("cpu").manual_seed(1), **kwargs).images[0]

            def managed(previews: bool):
                result = loop.run_until_complete(manager.generate_image("a red fox", seed=1, previews=previews, **kwargs))
                assert result["status"] == "success", result["error"]

            times = interleaved({"raw": raw, "on": lambda: managed(True), "off": lambda: managed(False)}, args.repeat)
            print(row(f"{size} px", steps, f"{times['raw']:.4f}", f"{times['on']:.4f}", f"{times['off']:.4f}",
                      f"{times['on'] / times['raw']:.3f}x", f"{times['off'] / times['raw']:.3f}x"))
    manager.shutdown()


if __name__ == "__main__":
    main()
