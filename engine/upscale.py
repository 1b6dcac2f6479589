"""Making an image larger: the hires fix's upscale between its two passes (and the size it lands on)."""
from __future__ import annotations

from PIL import Image

from .errors import InvalidRequest

HIRES_STAGE = "Hires fix"  # how the hires fix's second pass names its steps
LANCZOS = "Lanczos"
UPSCALERS = (LANCZOS,)  # the ones every backend has; model upscalers (ESRGAN family) are not offered yet


def hires_size(width: int, height: int, scale: float, multiple: int) -> tuple[int, int]:
    """The hires fix's output size: width and height times `scale`, each rounded down to a multiple."""
    return int(width * scale) // multiple * multiple, int(height * scale) // multiple * multiple


def upscale(image: Image.Image, width: int, height: int, upscaler: str = LANCZOS) -> Image.Image:
    """`image` resized to width x height with `upscaler`."""
    if upscaler != LANCZOS:
        raise InvalidRequest(f"Unknown upscaler {upscaler!r}; upscalers here: {', '.join(UPSCALERS)}.")
    return image.resize((width, height), Image.Resampling.LANCZOS)
