"""Making an image larger: the upscaler names (Lanczos, which needs no file, then model upscalers of the ESRGAN
family that a backend has), the hires fix's size, and the tiling rule every local model upscale follows."""
from __future__ import annotations

from typing import Iterable

from PIL import Image

HIRES_STAGE = "Hires fix"  # how the hires fix's second pass names its steps
LANCZOS = "Lanczos"
UPSCALERS = (LANCZOS,)  # the ones every install has; model upscalers come from the backends (their file names)
WHERE_MODELS_GO = "model upscalers are .pth or .safetensors files in an ESRGAN/ or upscale_models/ folder"
TILE = 256  # the longest side, in input pixels, of the piece of an image a model upscaler works on at once
TILE_OVERLAP = 16  # input pixels each piece shares with its neighbour; the two are blended across it


def hires_size(width: int, height: int, scale: float, multiple: int) -> tuple[int, int]:
    """The hires fix's output size: width and height times `scale`, each rounded down to a multiple."""
    return int(width * scale) // multiple * multiple, int(height * scale) // multiple * multiple


def hires_target(width: int, height: int, scale: float, resize_width: int, resize_height: int,
                 multiple: int) -> tuple[int, int]:
    """The hires fix's output size. Without a resize size: width and height times `scale` (`hires_size`). With
    A1111's "Resize width/height to": that size, a side left 0 following the other in the first pass's shape; each
    rounded down to a multiple (the image is cropped to its shape first, `cropped_to_shape`)."""
    if not resize_width and not resize_height:
        return hires_size(width, height, scale, multiple)
    if not resize_height:
        resize_height = resize_width * height // width
    elif not resize_width:
        resize_width = resize_height * width // height
    return max(multiple, resize_width // multiple * multiple), max(multiple, resize_height // multiple * multiple)


def cropped_to_shape(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` cropped at the centre to the shape of width x height (unchanged when it has it): what A1111's hires
    fix keeps of the first pass when "Resize width/height to" asks for another shape."""
    if image.width * height > image.height * width:  # wider than asked: keep the middle columns
        kept = max(1, round(image.height * width / height))
        left = (image.width - kept) // 2
        return image.crop((left, 0, left + kept, image.height))
    if image.width * height < image.height * width:  # taller: keep the middle rows
        kept = max(1, round(image.width * height / width))
        top = (image.height - kept) // 2
        return image.crop((0, top, image.width, top + kept))
    return image


def lanczos(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` resized to width x height with Lanczos."""
    return image.resize((width, height), Image.Resampling.LANCZOS)


def upscaler_named(name: object, names: Iterable[str]) -> str | None:
    """The upscaler of `names` that `name` means (case-insensitive, with or without the file's extension); None
    when it is none of them."""
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    for candidate in names:
        if key in (candidate.lower(), *(candidate.lower() + ext for ext in (".pth", ".safetensors"))):
            return candidate
    return None


def unknown_upscaler(name: object, names: Iterable[str]) -> str:
    """The sentence for an upscaler name that none of `names` is."""
    return f"Unknown upscaler {name!r}; upscalers here: {', '.join(names)} ({WHERE_MODELS_GO})."


def tile_starts(length: int, tile: int = TILE, overlap: int = TILE_OVERLAP) -> list[int]:
    """Where the pieces along one side of `length` pixels start: every `tile - overlap` pixels, the last one flush
    with the end (so it may share more than `overlap` with the one before); one piece when the side fits in a tile."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    return [*range(0, length - tile, stride), length - tile]


def tile_boxes(width: int, height: int, tile: int = TILE, overlap: int = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """The pieces (left, top, right, bottom) an image of width x height is upscaled in, row by row."""
    return [(x, y, min(x + tile, width), min(y + tile, height))
            for y in tile_starts(height, tile, overlap) for x in tile_starts(width, tile, overlap)]
