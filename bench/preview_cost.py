"""Step-preview cost: the latent -> RGB projection per step, per model family and image size.

Run: .venv/bin/python bench/preview_cost.py
"""
from __future__ import annotations

import torch

from common import median_time, row

from engine.previews import latents_to_preview, unpack_flux_latents

CASES = [
    ("sd15", 512, 4),
    ("sdxl", 1024, 4),
    ("flux", 1024, 16),
]


def main() -> None:
    torch.manual_seed(0)
    print(row("family", "image", "latent", "preview (ms/step)"))
    print(row(*["---"] * 4))
    for family, size, channels in CASES:
        side = size // 8
        if family == "flux":  # diffusers hands FLUX latents packed in 2x2 patches
            packed = torch.randn(1, (side // 2) ** 2, channels * 4)
            step = lambda: latents_to_preview(unpack_flux_latents(packed, size, size), family)  # noqa: E731
        else:
            latents = torch.randn(1, channels, side, side)
            step = lambda: latents_to_preview(latents, family)  # noqa: E731
        seconds = median_time(step, repeat=50)
        print(row(family, f"{size} px", f"{channels}x{side}x{side}", f"{seconds * 1000:.2f}"))


if __name__ == "__main__":
    main()
