"""A1111's Tiling: a seamless image. With every padded convolution of the UNet and the VAE padding from the opposite
edge, the whole generation commutes with a shift: starting noise rolled by some latent pixels gives the image rolled
by 8 times as many, pixel for pixel, so the right edge continues the left and the image tiles. The layers are put
back after the call; the router keeps tiling on this machine (ComfyUI's core nodes cannot pad circularly)."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.backends.tiling import seamless
from engine.outputs import read_parameters

RUN = dict(width=64, height=64, num_inference_steps=3, seed=5)


async def test_a_tiled_generation_commutes_with_a_shift_so_its_edges_meet(manager):
    await manager.generate_image("a brick wall", **RUN)  # loads the pipeline
    pipe = manager.backends["diffusers"].pool[0].pipe
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    shift = 4  # latent pixels, a multiple of the tiny UNet's downsampling (2)

    def draw(latents, tiled: bool) -> np.ndarray:
        with seamless(pipe, on=tiled):
            image = pipe("a brick wall", latents=latents, num_inference_steps=3, output_type="np").images[0]
        return image

    tiled, tiled_shifted = draw(noise, True), draw(torch.roll(noise, (shift, shift), (2, 3)), True)
    assert np.abs(np.roll(tiled, (8 * shift, 8 * shift), (0, 1)) - tiled_shifted).max() < 1e-4
    untiled, untiled_shifted = draw(noise, False), draw(torch.roll(noise, (shift, shift), (2, 3)), False)
    assert np.abs(np.roll(untiled, (8 * shift, 8 * shift), (0, 1)) - untiled_shifted).max() > 0.05  # zeros: no
    assert {layer.padding_mode for part in (pipe.unet, pipe.vae) for layer in part.modules()
            if isinstance(layer, torch.nn.Conv2d)} == {"zeros"}  # put back


async def test_tiling_through_the_engine_is_recorded_and_leaves_the_next_image_alone(manager):
    plain = await manager.generate_image("a brick wall", **RUN)
    tiled = await manager.generate_image("a brick wall", tiling=True, **RUN)
    assert tiled.status == "success" and tiled.tiling is True and tiled.backend == "diffusers", tiled.error
    assert np.abs(np.asarray(tiled.image).astype(int) - np.asarray(plain.image).astype(int)).mean() > 1
    assert "Tiling: True" in Image.open(tiled.path).text["parameters"] and read_parameters(tiled.path)["tiling"]
    again = await manager.generate_image("a brick wall", **RUN)
    assert again.tiling is None and np.array_equal(np.asarray(again.image), np.asarray(plain.image))
    bad = await manager.generate_image("a brick wall", tiling="yes", **RUN)
    assert bad.status == "error" and "Tiling" in bad.error, bad.error


async def test_the_router_keeps_tiling_on_this_machine(comfy_manager, fake):
    sent = len(fake.prompts)
    auto = await comfy_manager.generate_image("a brick wall", tiling=True, **RUN)
    assert auto.status == "success" and auto.backend == "diffusers" and auto.tiling, auto.error
    assert len(fake.prompts) == sent  # ComfyUI was not asked
    forced = await comfy_manager.generate_image("a brick wall", tiling=True, backend="comfyui", **RUN)
    assert forced.status == "error" and "ComfyUI cannot make seamless (tiling) images." in forced.error, forced.error
