"""Inpaint and outpaint on the local backend (the tiny model): outside the blurred mask the result is the init
image's pixels exactly (mask blur 0: everywhere outside the mask), outpaint extends the canvas and keeps the
original where it was, "only masked" redraws just the mask's box, the values are recorded in the PNG, and every bad
input is a sentence."""
from __future__ import annotations

import numpy as np
from PIL import Image

from engine.events import Progress
from engine.inpaint import masked_box, outpainted
from engine.outputs import parse_a1111_parameters
from engine.params import outpaint_amounts
from tests.integration.test_img2img_local import init_image

RUN = dict(num_inference_steps=6, seed=5, model="tiny", strength=0.9)


def left_half(width: int = 64, height: int = 64) -> Image.Image:
    mask = np.zeros((height, width), np.uint8)
    mask[:, : width // 2] = 255
    return Image.fromarray(mask)


def array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(int)


async def test_the_unmasked_half_is_kept_exactly_and_the_masked_half_redrawn(manager):
    init = init_image(64, 64)
    blurred = await manager.generate_image("a fox", init_image=init, mask=left_half(), mask_blur=4, **RUN)
    sharp = await manager.generate_image("a fox", init_image=init, mask=left_half(), mask_blur=0, **RUN)
    assert blurred.status == sharp.status == "success", (blurred.error, sharp.error)
    start, soft, exact = array(init), array(blurred.image), array(sharp.image)
    assert soft.shape == exact.shape == (64, 64, 3)
    band = 16  # the blur band reaches past the seam at x = 32; beyond it, the original exactly
    assert np.array_equal(soft[:, 32 + band:], start[:, 32 + band:])
    assert not np.array_equal(soft[:, 32:32 + band], start[:, 32:32 + band])  # the seam mixes
    assert np.array_equal(exact[:, 32:], start[:, 32:])  # no blur: exact right up to the seam
    assert np.abs(exact[:, :32] - start[:, :32]).mean() > 10  # the left half was redrawn
    assert (blurred.mask_blur, blurred.inpaint_area, blurred.outpaint) == (4, "whole picture", None)
    text = Image.open(blurred.path).text["parameters"]
    assert "Mask blur: 4" in text and "Inpaint area: whole picture" in text and "Masked area padding" not in text


async def test_outpaint_extends_the_canvas_and_keeps_the_original_where_it_was(manager):
    init = init_image(64, 64)
    events = [e async for e in manager.stream_image("a fox", init_image=init, outpaint={"right": 32}, mask_blur=0,
                                                    **RUN)]
    result = events[-1].result
    assert result.status == "success", result.error
    assert (result.width, result.height) == (96, 64) and result.image.size == (96, 64)
    made = array(result.image)
    assert np.array_equal(made[:, :64], array(init))
    assert np.abs(made[:, 64:] - array(init)[:, -1:]).mean() > 5  # the new area is painted, not the edge stretched
    assert [(e.step, e.total) for e in events if isinstance(e, Progress)] == [(i, 5) for i in range(1, 6)]
    assert result.outpaint == {"left": 0, "right": 32, "up": 0, "down": 0}
    saved = parse_a1111_parameters(Image.open(result.path).text["parameters"])
    assert saved["outpaint"] == "right 32" and outpaint_amounts(saved["outpaint"]) == (0, 32.0, 0, 0)
    assert (saved["width"], saved["height"]) == (96, 64)


async def test_outpaint_with_a_mask_repaints_both_and_blur_mixes_only_at_the_seams(manager):
    init = init_image(64, 64)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 16, 64))  # the left quarter
    result = await manager.generate_image("a fox", init_image=init, mask=mask, outpaint=[0, 0, 16, 0], mask_blur=2,
                                          **RUN)
    assert result.status == "success" and result.image.size == (64, 80), result.error
    made, start = array(result.image), array(init)
    assert np.array_equal(made[16 + 8:, 16 + 8:], start[8:, 16 + 8:])  # the original, shifted down by 16
    assert np.abs(made[:16] - start[:1]).mean() > 5


async def test_only_masked_redraws_the_masks_box_and_keeps_the_rest(manager):
    init = init_image(64, 64)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (8, 8, 24, 24))
    result = await manager.generate_image("a fox", init_image=init, mask=mask, mask_blur=0,
                                          inpaint_area="only masked", only_masked_padding=4, width=64, height=64,
                                          **RUN)
    assert result.status == "success", result.error
    made, start = array(result.image), array(init)
    outside = np.asarray(mask) == 0
    assert np.array_equal(made[outside], start[outside])
    assert np.abs(made[8:24, 8:24] - start[8:24, 8:24]).mean() > 10
    assert result.only_masked_padding == 4
    assert "Masked area padding: 4" in Image.open(result.path).text["parameters"]


def test_the_masked_box_is_padded_grown_to_the_aspect_and_kept_inside():
    mask = Image.new("L", (100, 60), 0)
    mask.paste(255, (10, 20, 20, 30))
    assert masked_box(mask, 5, 64, 64) == (5, 15, 25, 35)
    left, top, right, bottom = masked_box(mask, 5, 128, 64)  # twice as wide as high
    assert (right - left, bottom - top) == (40, 20) and left == 0  # grown, then moved inside the picture
    assert masked_box(mask, 200, 64, 64) == (0, 0, 100, 60)  # no larger than the picture (never cut smaller)


def test_outpaint_fills_the_new_area_with_the_stretched_image_and_paints_it():
    image = init_image(32, 16)
    canvas, mask = outpainted(image, None, (8, 0, 0, 8))
    assert canvas.size == mask.size == (40, 24)
    assert np.array_equal(array(canvas)[:16, 8:], array(image))
    m = np.asarray(mask)
    assert (m[:16, 8:] == 0).all() and (m[:, :8] == 255).all() and (m[16:] == 255).all()


async def test_a_mask_of_another_size_is_stretched_to_the_init_image(manager):
    mask = left_half(64, 32)  # half the init's size, the same proportions
    result = await manager.generate_image("a fox", init_image=init_image(128, 64), mask=mask, mask_blur=0,
                                          **RUN)
    assert result.status == "success", result.error
    assert np.array_equal(array(result.image)[:, 72:], array(init_image(128, 64))[:, 72:])  # past resampling


async def test_bad_inputs_are_sentences(manager, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    init = init_image(64, 64)
    cases = {
        "A mask or outpaint needs an init image": dict(mask=left_half()),
        "The mask must be an image (got int)": dict(init_image=init, mask=7),
        "The mask could not be read as an image": dict(init_image=init, mask=str(notes)),
        "The mask is all black": dict(init_image=init, mask=Image.new("L", (64, 64), 0)),
        "Outpaint right must be between 0 and 1024 pixels (got 2000)": dict(init_image=init, outpaint={"right": 2000}),
        "Outpaint up must be a multiple of 8 (got 12; try 8)": dict(init_image=init, outpaint=[0, 0, 12, 0]),
        "Outpaint must be the pixels to add on each side": dict(init_image=init, outpaint={"north": 8}),
        "Outpainting would make 2112×64 pixels; the largest side is 2048": dict(
            init_image=init, outpaint={"left": 1024, "right": 1024}),
        "Mask blur must be between 0 and 64 pixels (got 99)": dict(init_image=init, mask=left_half(), mask_blur=99),
        "Masked area padding must be between 0 and 256 pixels": dict(init_image=init, mask=left_half(),
                                                                      only_masked_padding=-1),
        "Inpaint area must be one of whole picture, only masked (got 'masked')": dict(
            init_image=init, mask=left_half(), inpaint_area="masked"),
    }
    for needle, extra in cases.items():
        result = await manager.generate_image("a fox", **{**dict(num_inference_steps=2, seed=1, model="tiny"),
                                                          **extra})
        assert result.status == "error" and needle in result.error, (needle, result.error)


async def test_an_inpainting_checkpoint_inpaints_and_is_never_used_for_anything_else(tmp_path, small_sdxl_manager):
    """A random SDXL-shaped inpainting checkpoint (UNet of 9 input channels) in a ComfyUI layout: listed and
    available, loaded as diffusers' SDXL inpaint pipeline for an inpaint request (the kept half exact), never
    picked by auto, and a sentence when named for text to image or image to image."""
    from tests.support.ldm_checkpoint import cached_checkpoint

    folder = tmp_path / "ComfyUI" / "models" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "tinyXL_inpainting.safetensors").symlink_to(cached_checkpoint("sdxl-small-inpainting"))
    manager = await small_sdxl_manager(tmp_path / "ComfyUI")
    entry = next(m for m in manager.available_models() if m["id"] == "tinyXL_inpainting")
    assert entry["available"] and entry["family"] == "sdxl", entry
    auto = await manager.generate_image("a fox", width=64, height=64, num_inference_steps=1, seed=1)
    assert auto.status == "success" and auto.model_id != "tinyXL_inpainting", auto.model_id

    init = init_image(64, 64)
    made = await manager.generate_image("a fox", init_image=init, mask=left_half(), mask_blur=0,
                                        **{**RUN, "model": "tinyXL_inpainting", "num_inference_steps": 2})
    assert made.status == "success" and made.model_id == "tinyXL_inpainting", made.error
    local = manager.router.last_resort
    pipe = local.pipeline(local.find("tinyXL_inpainting"), local.weights["tinyXL_inpainting"])  # the loaded one
    assert type(pipe).__name__ == "StableDiffusionXLInpaintPipeline" and pipe.unet.config.in_channels == 9
    assert local.loads == 2  # the tiny model, then this checkpoint: loaded once
    assert np.array_equal(array(made.image)[:, 32:], array(init)[:, 32:])

    for extra in ({}, {"init_image": init}):
        refused = await manager.generate_image("a fox", width=64, height=64, num_inference_steps=1,
                                               model="tinyXL_inpainting", **extra)
        assert refused.status == "error" and "tinyXL_inpainting is an inpainting checkpoint" in refused.error
