"""What saving a result costs: Pillow's default PNG writer (what the app used before) vs engine/png_encoding.py
(the Sub filter, ISA-L's deflate at level 1), both with the same `parameters` and `gator` text chunks, on a
photo-like image (smooth gradients plus noise, as real outputs compress) at 512 and 1024 px; interleaved, medians.
Run: .venv/bin/python bench/save_cost.py [--repeat 9]
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from common import interleaved, row

from engine.png_encoding import encode_png, pillow_png

TEXTS = {"parameters": "a red fox in the snow\nNegative prompt: blurry\nSteps: 30, Sampler: Euler, CFG scale: 7, "
                       "Seed: 1, Size: 1024x1024, Model: sdxl-1.0", "gator": '{"prompt": "a red fox in the snow"}'}


def photo_like(size: int) -> Image.Image:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([(x * 0.2 + y * 0.05) % 256, (y * 0.2) % 256, ((x + y) * 0.1) % 256], -1)
    return Image.fromarray((base + rng.normal(0, 6, base.shape)).clip(0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    print(f"<!-- photo-like RGB image, {args.repeat} runs per variant, interleaved, medians -->")
    print(row("size", "Pillow default (ms)", "KB", "fast encoder (ms)", "KB", "ratio"))
    print(row(*["---"] * 6))
    for size in (512, 1024):
        image = photo_like(size)
        times = interleaved({"pillow": lambda: pillow_png(image, TEXTS), "fast": lambda: encode_png(image, TEXTS)},
                            args.repeat)
        print(row(f"{size} px", f"{times['pillow'] * 1000:.1f}", len(pillow_png(image, TEXTS)) // 1024,
                  f"{times['fast'] * 1000:.1f}", len(encode_png(image, TEXTS)) // 1024,
                  f"{times['fast'] / times['pillow']:.3f}x"), flush=True)


if __name__ == "__main__":
    main()
