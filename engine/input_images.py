"""Images a request starts from (img2img's init image): read from a PIL image or a file path, checked
against the size cap, and fitted to the output size with A1111's resize modes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidRequest
from .limits import Limits

JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL = "just resize", "crop and resize", "resize and fill"
RESIZE_MODES = (JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL)  # A1111's names, in A1111's order


def read_input_image(value: Any, limits: Limits, what: str = "init image") -> Image.Image:
    """`value` (a PIL image, or a path from a trusted caller) as an RGB image; InvalidRequest with a sentence
    for anything that is not an image or is over the pixel cap."""
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, (str, Path)):
        try:
            with Image.open(value) as opened:
                problem = limits.input_image_problem(opened.width, opened.height, what)
                if problem:
                    raise InvalidRequest(problem)
                image = opened.copy()
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            raise InvalidRequest(f"The {what} could not be read as an image: use a PNG, JPEG or WebP file.") from None
    else:
        raise InvalidRequest(f"The {what} must be an image (got {type(value).__name__}).")
    problem = limits.input_image_problem(image.width, image.height, what)
    if problem:
        raise InvalidRequest(problem)
    return eight_bit(ImageOps.exif_transpose(image)).convert("RGB")


def eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit or 32-bit greyscale image (a depth map's "I;16", "I" or "F") as 8-bit greyscale, its range scaled
    (Pillow's own convert would clip every value above 255 to white); any other image as it is."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if values.max(initial=0) <= 1 else 255.0 if values.max(initial=0) <= 255 else values.max()
        else:
            top = 65535.0 if values.max(initial=0) <= 65535 else float(values.max())
        return Image.fromarray(np.clip(np.round(values * 255.0 / top), 0, 255).astype(np.uint8), "L")
    return image


def output_size(image: Image.Image, width: int | None, height: int | None, multiple: int) -> tuple[int, int]:
    """The size an img2img result gets: the one asked for, or the init image's own (each side rounded down to
    a multiple of `multiple`, and a missing side keeping the init's aspect ratio)."""
    if width is None and height is None:
        width, height = image.width, image.height
    elif width is None:
        width = round(image.width * height / image.height)
    elif height is None:
        height = round(image.height * width / image.width)
    return max(multiple, int(width) // multiple * multiple), max(multiple, int(height) // multiple * multiple)


def fit(image: Image.Image, width: int, height: int, mode: str) -> Image.Image:
    """`image` at width x height, as A1111's resize modes make it: stretched ("just resize"), filling the
    frame and cropped at the centre ("crop and resize"), or whole inside the frame with the empty bands
    filled by its stretched edges ("resize and fill")."""
    if image.size == (width, height):
        return image
    if mode == CROP_AND_RESIZE:
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    if mode == RESIZE_AND_FILL:
        inside = ImageOps.contain(image, (width, height), Image.Resampling.LANCZOS)
        return filled_around(inside, width, height, ((width - inside.width) // 2, (height - inside.height) // 2))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def filled_around(image: Image.Image, width: int, height: int, at: tuple[int, int]) -> Image.Image:
    """A width x height canvas with `image` pasted unchanged at `at`, the rest filled by the image stretched
    behind it (its edges carried outwards): "resize and fill" bands and outpaint's new area."""
    canvas = image.resize((width, height), Image.Resampling.LANCZOS)
    canvas.paste(image, at)
    return canvas
