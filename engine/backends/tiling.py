"""A1111's Tiling: a seamless image, whose right edge continues its left and whose bottom continues its top, so it
tiles as a texture. Every padded convolution of the UNet and the VAE pads circularly (from the opposite edge)
instead of with zeros, for one call, as A1111 patches its model's Conv2d layers; the attention layers already see
the whole image. The VAE encoder's own zero padding before a strided convolution (image to image) stays as it is."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def seamless(pipe: Any, on: bool = True) -> Iterator[None]:
    """`pipe`'s UNet and VAE convolutions pad circularly inside the block (nothing changes when not `on`)."""
    import torch

    convs = [layer for part in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)) if part is not None
             for layer in part.modules()
             if on and isinstance(layer, torch.nn.Conv2d) and any(side > 0 for side in layer.padding)]
    before = [layer.padding_mode for layer in convs]
    for layer in convs:
        layer.padding_mode = "circular"
    try:
        yield
    finally:
        for layer, mode in zip(convs, before):
            layer.padding_mode = mode
