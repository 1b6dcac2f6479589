"""Inpaint and outpaint, the same for every backend: the engine prepares what a backend draws (the init image and
a blurred mask, white = repaint, at the size to draw) and puts the drawing back into the original picture, so that
every pixel outside the blurred mask is the original's exactly.

Outpaint extends the init image's canvas (the new area filled with the image's stretched edges, as "resize and
fill" fills) and paints the new area: white in the mask. "only masked" draws just the mask's box plus padding,
grown to the width:height aspect, at width x height (more detail), and pastes it back, as A1111 does.

A1111's "masked content" says what the masked part starts from: "original" the picture as it is; "fill" the colours
around the mask, blurred into it (done here, so every backend draws from the same filled picture); "latent noise" and
"latent nothing" the filled picture too, with its encoded latents then replaced under the mask by the seed's noise or
by zeros (each backend does that step: engine/backends/masked_latents.py, workflows.use_inpaint).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from PIL import Image, ImageFilter, ImageOps

from .controlnet import NONE, control_map
from .input_images import filled_around, fit

if TYPE_CHECKING:
    from .request import GenerationRequest

logger = logging.getLogger(__name__)

WHOLE_PICTURE, ONLY_MASKED = "whole picture", "only masked"
INPAINT_AREAS = (WHOLE_PICTURE, ONLY_MASKED)  # A1111's names, in A1111's order
Box = tuple[int, int, int, int]  # left, top, right, bottom
FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING = "fill", "original", "latent noise", "latent nothing"
MASKED_CONTENTS = (FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING)  # A1111's names, in A1111's order
LATENT_FILLS = (LATENT_NOISE, LATENT_NOTHING)  # the ones a backend finishes in latent space
FILL_BLURS = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))  # A1111's fill: (blur radius, layers), coarse first


def filled(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's "fill": the picture with its masked part (white) painted in the colours around it, layer upon layer
    of ever less blurred copies of the kept part; the kept part itself stays as it is."""
    kept = Image.new("RGBa", image.size)  # premultiplied: a blur spreads the kept colours, never the masked ones
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    out = Image.new("RGBA", image.size)
    for radius, layers in FILL_BLURS:
        blurred = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(layers):
            out.alpha_composite(blurred)
    return out.convert("RGB")


def fitted_mask(mask: Image.Image, init_size: tuple[int, int], width: int, height: int, mode: str) -> Image.Image:
    """The mask ("L", white = repaint) over the fitted init image: first stretched to the init image's own size
    when it has another (A1111 does the same, silently), then fitted to width x height as the init image is."""
    mask = mask.convert("L")
    if mask.size != init_size:
        mask = mask.resize(init_size, Image.Resampling.LANCZOS)
    return fit(mask, width, height, mode)


def outpainted(image: Image.Image, mask: Image.Image | None,
               amounts: tuple[int, int, int, int]) -> tuple[Image.Image, Image.Image]:
    """(the canvas, its mask): `image` extended by (left, right, up, down) pixels, the new area filled with its
    stretched edges and white in the mask; over the image itself the mask is `mask` (none: black, kept)."""
    left, right, up, down = amounts
    width, height = image.width + left + right, image.height + up + down
    canvas = filled_around(image, width, height, (left, up))
    full = Image.new("L", (width, height), 255)
    full.paste(mask if mask is not None else Image.new("L", image.size, 0), (left, up))
    return canvas, full


def masked_box(mask: Image.Image, padding: int, width: int, height: int) -> Box:
    """The part of the picture "only masked" draws: the mask's box plus `padding`, grown to the width:height
    aspect (as far as the picture allows), inside the picture."""
    left, top, right, bottom = mask.getbbox() or (0, 0, mask.width, mask.height)
    left, right = _grown(left - padding, right + padding, 0, mask.width)
    top, bottom = _grown(top - padding, bottom + padding, 0, mask.height)
    if (right - left) * height < (bottom - top) * width:  # too narrow for width:height
        left, right = _grown(left, right, round((bottom - top) * width / height), mask.width)
    else:
        top, bottom = _grown(top, bottom, round((right - left) * height / width), mask.height)
    return left, top, right, bottom


def _grown(low: int, high: int, length: int, limit: int) -> tuple[int, int]:
    """[low, high) grown about its centre to `length` (at most `limit`), moved inside [0, limit)."""
    length = min(max(length, high - low), limit)
    start = min(max(low - (length - (high - low)) // 2, 0), limit - length)
    return start, start + length


@dataclass(frozen=True)
class InpaintJob:
    """What a backend draws (`request`: its init image and blurred mask at its width x height) and how the
    drawing goes back into the picture (`composite`)."""

    request: "GenerationRequest"
    original: Image.Image  # the whole picture (outpainted), which the result is made of outside the mask
    alpha: Image.Image  # the blurred mask over `original`: where, and how much, the drawing shows
    box: Box  # the part of `original` the drawing covers (all of it but for "only masked")

    def composite(self, drawn: Image.Image) -> Image.Image:
        """The drawing over the original with the blurred mask as alpha: outside the mask, the original's pixels
        exactly; only the blur band at the seam mixes the two."""
        left, top, right, bottom = self.box
        if drawn.size != (right - left, bottom - top):
            drawn = drawn.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
        if drawn.size != self.original.size:
            part, drawn = drawn, self.original.copy()
            drawn.paste(part, (left, top))
        return Image.composite(drawn.convert("RGB"), self.original, self.alpha)


def prepare_inpaint(req: "GenerationRequest") -> InpaintJob:
    """The inpaint job of a validated request with a mask or outpaint amounts (see the module's docstring)."""
    image, mask = req.init_image, req.mask
    if any(req.outpaint):
        image, mask = outpainted(image, mask, req.outpaint)
    alpha = mask.filter(ImageFilter.GaussianBlur(req.mask_blur)) if req.mask_blur else mask
    done = dict(outpaint=(0, 0, 0, 0))  # what the backend gets is already extended
    if req.inpaint_area == ONLY_MASKED:
        box = masked_box(alpha, req.only_masked_padding, req.width, req.height)
        size = (req.width, req.height)
        drawn = replace(req, init_image=image.crop(box).resize(size, Image.Resampling.LANCZOS),
                        mask=alpha.crop(box).resize(size, Image.Resampling.LANCZOS), **done)
    else:
        box = (0, 0, image.width, image.height)
        drawn = replace(req, init_image=image, mask=alpha, width=image.width, height=image.height, **done)
    if req.masked_content != ORIGINAL:  # A1111 fills for latent noise and latent nothing too
        drawn = replace(drawn, init_image=filled(drawn.init_image, drawn.mask))
    if req.uses_controlnet:  # the control map follows the picture: extended as it is, cut to the box drawn
        control = control_map(req)
        if any(req.outpaint):
            canvas = Image.new("RGB", image.size)  # nothing to follow in the new area
            canvas.paste(control, (req.outpaint[0], req.outpaint[2]))
            control = canvas
        control = control.crop(box).resize((drawn.width, drawn.height), Image.Resampling.LANCZOS)
        drawn = replace(drawn, control_image=control, controlnet_module=NONE)
    logger.info("Inpaint %s (%s): %dx%d picture, drawing %s at %dx%d", req.inpaint_area, req.masked_content,
                image.width, image.height, box, drawn.width, drawn.height)
    return InpaintJob(drawn, image, alpha, box)
