"""Inpaint and outpaint on ComfyUI, against the fake ComfyUI (real sockets): the init image and the mask are uploaded,
the graph starts from LoadImage -> VAEEncode -> SetLatentNoiseMask (the mask from LoadImageMask's red channel), the
strength as the denoise; the fake returns the unmasked area a little changed, as a real VAE does, and the engine's
composite gives back the original's pixels there exactly."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from engine.comfyui import ComfyUIClient
from engine.workflows import use_inpaint
from tests.integration.test_comfyui_img2img import RUN, by_class, init_picture, pixels, sd_graph


def left_half(width: int = 64, height: int = 64) -> Image.Image:
    mask = np.zeros((height, width), np.uint8)
    mask[:, : width // 2] = 255
    return Image.fromarray(mask)


def the_inpaint_start(graph: dict) -> tuple[str, str, dict]:
    """(uploaded image name, uploaded mask name, KSampler inputs), checking the links between the nodes."""
    (load_id, load), = by_class(graph, "LoadImage").items()
    (encode_id, encode), = by_class(graph, "VAEEncode").items()
    (mask_id, load_mask), = by_class(graph, "LoadImageMask").items()
    (noise_id, noise_mask), = by_class(graph, "SetLatentNoiseMask").items()
    (sampler,) = by_class(graph, "KSampler").values()
    assert encode["pixels"] == [load_id, 0] and noise_mask == {"samples": [encode_id, 0], "mask": [mask_id, 0]}
    assert sampler["latent_image"] == [noise_id, 0] and load_mask["channel"] == "red"
    return load["image"], load_mask["image"], sampler


async def test_the_graph_inpaints_from_the_uploads_and_the_unmasked_half_is_exact(comfy_manager, fake):
    init = init_picture(64, 64)
    result = await comfy_manager.generate_image("a fox", init_image=init, mask=left_half(), mask_blur=0,
                                                strength=0.7, **RUN)
    made = pixels(result)
    image_name, mask_name, sampler = the_inpaint_start(fake.prompts[-1])
    assert sorted(fake.uploads) == sorted([image_name, mask_name]) and sampler["denoise"] == 0.7
    assert "-mask-" in mask_name and "-init-" in image_name
    uploaded_mask = np.asarray(Image.open(io.BytesIO(fake.uploads[mask_name])).convert("RGB"))
    assert (uploaded_mask[:, :32] == 255).all() and (uploaded_mask[:, 32:] == 0).all()
    assert not by_class(fake.prompts[-1], "EmptyLatentImage")
    start = np.asarray(init).astype(int)
    assert np.array_equal(made[:, 32:], start[:, 32:])  # the fake's VAE drift there was composited away
    assert np.abs(made[:, :32] - start[:, :32]).mean() > 10
    assert (result.mask_blur, result.server) == (0, fake.url)


async def test_outpaint_on_comfyui_uploads_the_canvas_and_keeps_the_original(comfy_manager, fake):
    init = init_picture(64, 64)
    result = await comfy_manager.generate_image("a fox", init_image=init, outpaint={"left": 32}, mask_blur=4,
                                                strength=1.0, **RUN)
    made = pixels(result)
    assert made.shape == (64, 96, 3)
    image_name, mask_name, sampler = the_inpaint_start(fake.prompts[-1])
    assert Image.open(io.BytesIO(fake.uploads[image_name])).size == (96, 64) and sampler["denoise"] == 1.0
    assert np.array_equal(made[:, 32 + 16:], np.asarray(init).astype(int)[:, 16:])  # past the blur band: exact


async def test_only_masked_uploads_the_box_at_the_full_size(comfy_manager, fake):
    init = init_picture(64, 64)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (40, 40, 56, 56))
    result = await comfy_manager.generate_image("a fox", init_image=init, mask=mask, mask_blur=0, width=64,
                                                height=64, inpaint_area="only masked", only_masked_padding=8, **RUN)
    made = pixels(result)
    image_name, mask_name, _ = the_inpaint_start(fake.prompts[-1])
    assert Image.open(io.BytesIO(fake.uploads[image_name])).size == (64, 64)  # the box, drawn at width x height
    outside = np.asarray(mask) == 0
    assert np.array_equal(made[outside], np.asarray(init).astype(int)[outside])
    assert result.only_masked_padding == 8


async def test_the_fake_renders_only_where_the_mask_is_white(fake):
    client = ComfyUIClient(fake.url)
    init = init_picture(32, 16)
    name = await client.upload_image(init, "t")
    mask_name = await client.upload_image(left_half(32, 16).convert("RGB"), "m")
    info = await client.object_info("LoadImageMask")
    assert mask_name in info["input"]["required"]["image"][0] and info["output"] == ["MASK"]
    assert (await client.object_info("SetLatentNoiseMask"))["output"] == ["LATENT"]
    events = [e async for e in client.run(use_inpaint(sd_graph(), name, mask_name, 1.0))]
    made = np.asarray(events[-1].image.convert("RGB")).astype(int)
    start = np.asarray(init).astype(int)
    assert len(np.unique(made[:, :16].reshape(-1, 3), axis=0)) == 1  # denoise 1: the plain render there
    assert np.abs(made[:, 16:] - start[:, 16:]).max() == 1  # the rest as a VAE returns it: close, not exact


def test_use_inpaint_adds_the_mask_nodes_after_the_encoder():
    out = use_inpaint(sd_graph(), "in.png", "mask.png", 0.5)
    assert out["10"] == {"class_type": "LoadImage", "inputs": {"image": "in.png"}}
    assert out["12"] == {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "red"}}
    assert out["13"] == {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["11", 0], "mask": ["12", 0]}}
    assert out["3"]["inputs"]["latent_image"] == ["13", 0] and out["3"]["inputs"]["denoise"] == 0.5 and "5" not in out
