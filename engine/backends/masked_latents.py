"""A1111's "latent noise" and "latent nothing" on a diffusers inpaint pipeline: the encoded init image's latents under
the mask replaced by the seed's noise or by zeros before the pipeline noises them to its strength.

The inpaint pipelines (SD, SDXL, their ControlNet variants) encode the init image in `prepare_latents` through
`_encode_vae_image`, and an inpainting checkpoint's masked image later through the same method. The replacement is
installed on the pipeline object for the `prepare_latents` call only, so the masked-image conditioning of a 9-channel
UNet stays as the pipeline makes it (as in A1111, whose image conditioning is not touched either), and the latents
the steps paste back outside the mask (an ordinary UNet's) are the original's: only the start changes. At strength 1
the start is pure noise, so there the two make no difference (nearly so in A1111 too).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
from PIL import Image

from ..inpaint import LATENT_FILLS, LATENT_NOTHING

logger = logging.getLogger(__name__)


def latent_mask(mask: Image.Image, width: int, height: int) -> np.ndarray:
    """The mask at latent size, rounded to 0 or 1 (1: replaced), as A1111 rounds its latent mask."""
    small = mask.convert("L").resize((width, height), Image.Resampling.BILINEAR)
    return np.around(np.asarray(small, dtype=np.float32) / 255.0)


@contextmanager
def masked_latents(pipe: Any, content: str, mask: Image.Image, seed: int) -> Iterator[None]:
    """While the pipeline runs: `content` (LATENT_NOISE or LATENT_NOTHING; anything else changes nothing) under
    `mask` (white: replaced) in the latents its init image encodes to; the noise is the seed's own."""
    if content not in LATENT_FILLS:
        yield
        return
    import torch

    encode, prepare = pipe._encode_vae_image, pipe.prepare_latents

    def prepare_with_fill(*args: Any, **kwargs: Any) -> Any:
        encoded: list[Any] = []

        def replaced(image: Any, generator: Any) -> Any:
            latents = encode(image=image, generator=generator)
            encoded.append(latents)
            hard = torch.from_numpy(latent_mask(mask, latents.shape[-1], latents.shape[-2]))
            hard = hard.to(latents.device, latents.dtype)[None, None]
            if content == LATENT_NOTHING:
                fill = torch.zeros_like(latents)
            else:
                fill = torch.randn(latents.shape, generator=torch.Generator("cpu").manual_seed(seed)).to(latents)
            return latents * (1 - hard) + fill * hard

        pipe._encode_vae_image = replaced
        try:
            outputs = prepare(*args, **kwargs)
        finally:
            del pipe._encode_vae_image  # the class's own again: the masked image is encoded as it is
        if kwargs.get("return_image_latents") and encoded:  # what the steps paste back outside the mask: the original
            original = encoded[0]
            outputs = (*outputs[:-1], original.repeat(outputs[-1].shape[0] // original.shape[0], 1, 1, 1))
        return outputs

    pipe.prepare_latents = prepare_with_fill
    logger.debug("Masked content %s for %s", content, type(pipe).__name__)
    try:
        yield
    finally:
        del pipe.prepare_latents  # the class's own again
