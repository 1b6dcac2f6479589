"""Image-to-image overhead: `generate_image(init_image=...)` through AIModelManager vs the raw diffusers
img2img pipeline over the same loaded weights (`AutoPipelineForImage2Image.from_pipe`).

Same tiny model, init image, strength, steps and seed; measured side by side in one run, interleaved,
medians. The engine's share: reading and fitting the init image, validation, planning, the from_pipe
wrapper per request, step previews (on/off) and saving the PNG with its parameters.
Run: .venv/bin/python bench/img2img_overhead.py [--repeat 5] [--strength 0.75]
"""
from __future__ import annotations

import argparse
import asyncio

import numpy as np
import torch
from diffusers import AutoPipelineForImage2Image
from PIL import Image

from common import CPU, interleaved, row, tiny_settings

from engine.manager import AIModelManager
from engine.registry import find_model


def init_image(size: int) -> Image.Image:
    ramp = (np.indices((size, size)).sum(0) * 255 // (2 * size)).astype(np.uint8)
    return Image.fromarray(np.stack([ramp, 255 - ramp, ramp // 2], axis=-1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--strength", type=float, default=0.75)
    args = parser.parse_args()

    manager = AIModelManager(tiny_settings(), hardware=CPU)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(manager.initialize_models())
    local = manager.router.last_resort
    pipe = local.pipeline(find_model("tiny"), local.weights["tiny"])  # the very weights it runs
    raw_pipe = AutoPipelineForImage2Image.from_pipe(pipe)
    raw_pipe.set_progress_bar_config(disable=True)

    print(f"<!-- tiny model on CPU, torch threads {torch.get_num_threads()}; strength {args.strength}; "
          f"{args.repeat} runs per variant, interleaved -->")
    print(row("size", "steps", "raw img2img pipeline (s)", "manager, previews on (s)", "manager, previews off (s)",
              "ratio on", "ratio off"))
    print(row(*["---"] * 7))
    for size in (64, 256):
        image = init_image(size)
        for steps in (4, 20):
            common = dict(num_inference_steps=steps, guidance_scale=5.0, strength=args.strength)
            loop.run_until_complete(manager.generate_image("warm", init_image=image, seed=0, **common))

            def raw():
                raw_pipe("a red fox", image=image, generator=torch.Generator("cpu").manual_seed(1), **common).images[0]

            def managed(previews: bool):
                result = loop.run_until_complete(manager.generate_image(
                    "a red fox", init_image=image, seed=1, previews=previews, **common))
                assert result.status == "success", result.error

            times = interleaved({"raw": raw, "on": lambda: managed(True), "off": lambda: managed(False)}, args.repeat)
            print(row(f"{size} px", steps, f"{times['raw']:.4f}", f"{times['on']:.4f}", f"{times['off']:.4f}",
                      f"{times['on'] / times['raw']:.3f}x", f"{times['off'] / times['raw']:.3f}x"), flush=True)
    manager.shutdown()


if __name__ == "__main__":
    main()
