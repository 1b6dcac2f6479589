"""Step previews for display: the engine's previews are a pixel per latent (or, from a TAESD decoder, up to 512 px),
so small ones are scaled up crisply."""
from __future__ import annotations

import math

from PIL import Image

DISPLAY_SIDE = 256


def display_preview(image: Image.Image | None, min_side: int = DISPLAY_SIDE) -> Image.Image | None:
    """`image` scaled by a whole factor (NEAREST) so its longer side is at least `min_side`."""
    if image is None:
        return None
    longest = max(image.width, image.height, 1)
    factor = max(1, math.ceil(min_side / longest))
    if factor == 1:
        return image.convert("RGB")
    return image.convert("RGB").resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
