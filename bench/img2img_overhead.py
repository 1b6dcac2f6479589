"""Image-to-image and inpaint overhead: `generate_image(init_image=...[, mask=...])` through AIModelManager vs
the raw diffusers pipeline over the same loaded weights (`AutoPipelineForImage2Image.from_pipe`,
`AutoPipelineForInpainting.from_pipe`).

Same tiny model, init image, mask, strength, steps and seed; measured side by side in one run, interleaved,
medians. The engine's share: reading and fitting the init image (and the mask: blur, and compositing the
result back over the kept pixels), validation, planning, the from_pipe wrapper per request, step previews
(on/off) and saving the PNG with its parameters.
Run: .venv/bin/python bench/img2img_overhead.py [--repeat 5] [--strength 0.75] [--workflow img2img|inpaint|both]
"""
from __future__ import annotations

import argparse
import asyncio

import numpy as np
import torch
from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting
from PIL import Image

from common import CPU, interleaved, row, tiny_settings

from engine.manager import AIModelManager
from engine.registry import find_model

PIPELINES = {"img2img": AutoPipelineForImage2Image, "inpaint": AutoPipelineForInpainting}


def init_image(size: int) -> Image.Image:
    ramp = (np.indices((size, size)).sum(0) * 255 // (2 * size)).astype(np.uint8)
    return Image.fromarray(np.stack([ramp, 255 - ramp, ramp // 2], axis=-1))


def left_half_mask(size: int) -> Image.Image:
    """White (repaint) on the left half, black (keep) on the right."""
    mask = np.zeros((size, size), np.uint8)
    mask[:, : size // 2] = 255
    return Image.fromarray(mask)


def measure(manager: AIModelManager, loop: asyncio.AbstractEventLoop, raw_pipe, workflow: str, repeat: int,
            strength: float) -> None:
    """One table: raw pipeline vs the manager, previews on and off, at 64 and 256 px, 4 and 20 steps."""
    print(f"\n<!-- {workflow}: tiny model on CPU, torch threads {torch.get_num_threads()}; strength {strength}; "
          f"{repeat} runs per variant, interleaved -->")
    print(row("size", "steps", f"raw {workflow} pipeline (s)", "manager, previews on (s)",
              "manager, previews off (s)", "ratio on", "ratio off"))
    print(row(*["---"] * 7))
    for size in (64, 256):
        image = init_image(size)
        masks = {"mask": left_half_mask(size)} if workflow == "inpaint" else {}
        raw_masks = {"mask_image": masks["mask"], "width": size, "height": size} if masks else {}
        for steps in (4, 20):
            common = dict(num_inference_steps=steps, guidance_scale=5.0, strength=strength)
            loop.run_until_complete(manager.generate_image("warm", init_image=image, seed=0, **masks, **common))

            def raw():
                raw_pipe("a red fox", image=image, generator=torch.Generator("cpu").manual_seed(1), **raw_masks,
                         **common).images[0]

            def managed(previews: bool):
                result = loop.run_until_complete(manager.generate_image(
                    "a red fox", init_image=image, seed=1, previews=previews, **masks, **common))
                assert result.status == "success", result.error

            times = interleaved({"raw": raw, "on": lambda: managed(True), "off": lambda: managed(False)}, repeat)
            print(row(f"{size} px", steps, f"{times['raw']:.4f}", f"{times['on']:.4f}", f"{times['off']:.4f}",
                      f"{times['on'] / times['raw']:.3f}x", f"{times['off'] / times['raw']:.3f}x"), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--strength", type=float, default=0.75)
    parser.add_argument("--workflow", choices=(*PIPELINES, "both"), default="both")
    args = parser.parse_args()

    manager = AIModelManager(tiny_settings(), hardware=CPU)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(manager.initialize_models())
    local = manager.router.last_resort
    pipe = local.pipeline(find_model("tiny"), local.weights["tiny"])  # the very weights it runs
    for workflow, auto_class in PIPELINES.items():
        if args.workflow in (workflow, "both"):
            raw_pipe = auto_class.from_pipe(pipe)
            raw_pipe.set_progress_bar_config(disable=True)
            measure(manager, loop, raw_pipe, workflow, args.repeat, args.strength)
    manager.shutdown()


if __name__ == "__main__":
    main()
