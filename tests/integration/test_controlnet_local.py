"""ControlNet on the local backend, with a random ControlNet made from the tiny model's UNet (tests/support/
tiny_controlnet.py): it changes the image (the same seed without it gives another), the three file layouts (diffusers
folder, one diffusers file, A1111's original layout through from_single_file) are the same weights and give the same
pixels, weight 0 gives exactly the image without it, a later guidance start changes less, it works with image to
image, inpaint (every pixel outside the mask kept) and the hires fix, the checkpoint is loaded once, the PNG records
sd-webui-controlnet's entry, and every bad input is a sentence."""
from __future__ import annotations

from dataclasses import replace

import asyncio

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.events import Failed, Progress
from engine.limits import Limits
from engine.manager import AIModelManager
from engine.outputs import parse_a1111_parameters, read_parameters
from engine.png_info import png_info
from tests.conftest import CPU
from tests.support.tiny_controlnet import write_tiny_controlnet
from tests.unit.test_model_files import CONTROL_SD15, CONTROL_SDXL, SD15, SDXL, write

RUN = dict(width=64, height=64, num_inference_steps=4, seed=3, model="tiny")
UNIT = dict(controlnet="tinyCanny")


def control_picture(size: int = 64) -> Image.Image:
    """A black square on white: canny makes its outline."""
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill="black")
    return image


@pytest.fixture
async def cn_manager(settings, tiny_model_dir):
    """A manager whose models folder holds the tiny ControlNet three ways, an SD 1.5 and an SDXL ControlNet header,
    and an SD 1.5 and an SDXL checkpoint header."""
    models = settings.models_dir
    write_tiny_controlnet(models, tiny_model_dir)
    write(models / "ControlNet" / "control_v11p_sd15_canny.safetensors", CONTROL_SD15)
    write(models / "ControlNet" / "diffusers_xl_canny_mid.safetensors", CONTROL_SDXL)
    write(models / "Stable-diffusion" / "myMix_v2.safetensors", SD15)
    write(models / "Stable-diffusion" / "xlMix.safetensors", SDXL)
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    yield manager
    manager.shutdown()


def pixels(result) -> np.ndarray:
    assert result.status == "success", result.error
    return np.asarray(result.image).astype(int)


async def test_the_controlnet_steers_and_every_layout_is_the_same_weights(cn_manager):
    manager = cn_manager
    plain = pixels(await manager.generate_image("a fox", **RUN))
    steered = {name: pixels(await manager.generate_image("a fox", control_image=control_picture(), controlnet=name,
                                                         **RUN))
               for name in ("tinyCanny", "tinyCanny-file", "tinyCanny-diffusers")}
    assert np.abs(steered["tinyCanny"] - plain).mean() > 1  # the same seed without it is another picture
    assert all(np.array_equal(steered["tinyCanny"], other) for other in steered.values())
    other_map = pixels(await manager.generate_image("a fox", control_image=control_picture().rotate(45), **UNIT,
                                                    **RUN))
    assert not np.array_equal(other_map, steered["tinyCanny"])  # the map itself matters
    assert manager.backends["diffusers"].loads == 1  # the checkpoint was never reloaded
    listed = {entry["name"]: entry for entry in manager.available_controlnets()}
    assert set(listed) == {"tinyCanny", "tinyCanny-file", "tinyCanny-diffusers", "control_v11p_sd15_canny",
                           "diffusers_xl_canny_mid"}
    assert listed["control_v11p_sd15_canny"]["family_label"] == "SD 1.5"
    assert manager.status()["controlnets"] == manager.available_controlnets()


async def test_weight_zero_is_exactly_no_controlnet_and_a_late_start_steers_less(cn_manager):
    manager = cn_manager
    plain = pixels(await manager.generate_image("a fox", **RUN))
    zero = pixels(await manager.generate_image("a fox", control_image=control_picture(), controlnet_weight=0, **UNIT,
                                               **RUN))
    full = pixels(await manager.generate_image("a fox", control_image=control_picture(), **UNIT, **RUN))
    late = pixels(await manager.generate_image("a fox", control_image=control_picture(), controlnet_start=0.5,
                                               **UNIT, **RUN))
    assert np.array_equal(zero, plain)  # exactly: the ControlNet ran, its residuals scaled to nothing
    assert 0 < np.abs(late - plain).mean() < np.abs(full - plain).mean()
    after = pixels(await manager.generate_image("a fox", **RUN))
    assert np.array_equal(after, plain)  # nothing stays on the pipeline for the next request


async def test_with_image_to_image_inpaint_and_the_hires_fix(cn_manager):
    manager = cn_manager
    init = control_picture(64).rotate(90)
    plain = pixels(await manager.generate_image("a fox", init_image=init, strength=0.7, **RUN))
    steered = await manager.generate_image("a fox", init_image=init, strength=0.7, control_image=control_picture(),
                                           **UNIT, **RUN)
    assert np.abs(pixels(steered) - plain).mean() > 1 and steered.strength == 0.7
    mask = Image.new("L", (64, 64))
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=255)
    inpainted = await manager.generate_image("a fox", init_image=init, mask=mask, mask_blur=0,
                                             control_image=control_picture(), **UNIT, **RUN)
    assert np.array_equal(pixels(inpainted)[:, 32:], np.asarray(init).astype(int)[:, 32:])  # outside: the original
    events = [e async for e in manager.stream_image("a fox", control_image=control_picture(), hires_scale=2, **UNIT,
                                                    **RUN)]
    done = events[-1].result
    assert (done.width, done.height) == (128, 128) and done.controlnet == "tinyCanny", done.error
    stages = [e.stage for e in events if isinstance(e, Progress)]
    assert len(stages) == 4 + 2 and stages[-1] == "Hires fix"  # both passes stream their steps (4 x 0.5)


async def test_it_streams_its_steps_and_stops_within_one(cn_manager):
    cancel = asyncio.Event()
    events = []
    async for event in cn_manager.stream_image("a fox", control_image=control_picture(), cancel=cancel, **UNIT,
                                               **{**RUN, "num_inference_steps": 30}):
        events.append(event)
        if isinstance(event, Progress) and event.step == 2:
            cancel.set()
    steps = [e.step for e in events if isinstance(e, Progress)]
    assert steps[:2] == [1, 2] and len(steps) <= 3  # stopped within a step
    assert all(e.preview is not None for e in events if isinstance(e, Progress))  # each step's preview, as txt2img
    assert isinstance(events[-1], Failed) and "Stopped at step" in events[-1].error
    assert not list(cn_manager.settings.output_dir.rglob("*.png"))  # nothing saved


async def test_the_png_records_the_controlnet_and_reads_it_back(cn_manager):
    result = await cn_manager.generate_image("a fox", control_image=control_picture(), controlnet="tinyCanny",
                                             controlnet_weight=0.8, controlnet_start=0.1, controlnet_end=0.9,
                                             canny_low=50, canny_high=150, **RUN)
    unit = dict(controlnet="tinyCanny", controlnet_module="canny", controlnet_weight=0.8, controlnet_start=0.1,
                controlnet_end=0.9, canny_low=50, canny_high=150)
    assert {k: getattr(result, k) for k in unit} == unit
    assert {k: read_parameters(result.path)[k] for k in unit} == unit
    assert {k: png_info(result.path)[k] for k in unit} == unit  # what PNG info and Reuse parameters read
    text = Image.open(result.path).text["parameters"]
    assert 'ControlNet 0: "Module: canny, Model: tinyCanny, Weight: 0.8, Threshold A: 50, Threshold B: 150' in text
    assert {k: parse_a1111_parameters(text)[k] for k in unit} == unit  # the A1111 text alone says the same
    lines = await cn_manager.generate_image("a fox", control_image=control_picture(), controlnet="tinyCanny",
                                            controlnet_module="lineart_standard", **RUN)
    assert lines.controlnet_module == "lineart_standard" and lines.canny_low is None
    plain = await cn_manager.generate_image("a fox", **RUN)
    assert plain.controlnet is None and "ControlNet" not in Image.open(plain.path).text["parameters"]


async def test_bad_inputs_are_sentences(cn_manager, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    cases = {
        "Unknown ControlNet 'nope'. ControlNets here: ": dict(controlnet="nope", control_image=control_picture()),
        "The ControlNet control_v11p_sd15_canny is for SD 1.5 models; xlMix is SDXL.": dict(
            controlnet="control_v11p_sd15_canny", control_image=control_picture(), model="xlMix"),
        "The ControlNet diffusers_xl_canny_mid is for SDXL models; myMix_v2 is SD 1.5.": dict(
            controlnet="diffusers_xl_canny_mid", control_image=control_picture(), model="myMix_v2"),
        "The control image could not be read as an image": dict(controlnet="tinyCanny", control_image=str(notes)),
        "Control weight must be between 0 and 2 (got 3)": dict(controlnet="tinyCanny", control_image=control_picture(),
                                                                controlnet_weight=3),
        "Guidance start (0.6) must be before guidance end (0.3)": dict(
            controlnet="tinyCanny", control_image=control_picture(), controlnet_start=0.6, controlnet_end=0.3),
        "The ControlNet tinyCanny needs a control image": dict(controlnet="tinyCanny"),
    }
    for needle, extra in cases.items():
        result = await cn_manager.generate_image("a fox", **{**RUN, **extra})
        assert result.status == "error" and needle in result.error, (needle, result.error)


async def test_a_huge_control_image_is_refused_with_the_cap(settings, tiny_model_dir):
    write_tiny_controlnet(settings.models_dir, tiny_model_dir)
    manager = AIModelManager(replace(settings, limits=Limits(max_input_pixels=64 * 64)), hardware=CPU)
    await manager.initialize_models()
    try:
        result = await manager.generate_image("a fox", control_image=control_picture(100), **UNIT, **RUN)
        assert result.status == "error" and "The control image is too large: 100×100" in result.error
        assert "GATOR_MAX_INPUT_PIXELS" in result.error
    finally:
        manager.shutdown()


async def test_a_hires_resize_to_another_shape_crops_the_control_map_as_it_crops_the_picture(cn_manager, monkeypatch):
    import engine.backends.diffusers as local

    maps = []
    made = local.control_map
    monkeypatch.setattr(local, "control_map", lambda req: maps.append(made(req)) or maps[-1])  # each pass's map, seen
    control = Image.new("RGB", (64, 96), "black")
    ImageDraw.Draw(control).rectangle((0, 20, 63, 27), fill="white")  # a bar at rows 20-27 of 96
    result = await cn_manager.generate_image("a fox", width=64, height=96, num_inference_steps=2, seed=3, model="tiny",
                                             control_image=control, controlnet_module="none", hires_resize_width=128,
                                             hires_resize_height=128, **UNIT)
    assert result.status == "success" and (result.width, result.height) == (128, 128), result.error

    def bar(image: Image.Image) -> tuple[int, int]:
        rows = np.where(np.asarray(image.convert("L")).mean(axis=1) > 60)[0]
        return int(rows.min()), int(rows.max())

    # the first pass is cropped to rows 16-79 and doubled: the bar moves to rows 8-23, in the picture and in its map
    assert bar(maps[0]) == (20, 27) and bar(maps[-1]) == (8, 23)
