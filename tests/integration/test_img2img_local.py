"""Image-to-image on the local backend (the tiny model): the init image's size unless one is asked, A1111's
denoising strength (0 keeps the image, more changes more), A1111's resize modes, progress over the steps
that run, the strength in the PNG, and a sentence for every bad input."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from engine.events import Progress
from engine.input_images import fit
from engine.limits import Limits
from engine.manager import AIModelManager
from tests.conftest import CPU

STEPS = dict(num_inference_steps=10, seed=5, model="tiny")


def init_image(width: int = 100, height: int = 70) -> Image.Image:
    ramp = (np.indices((height, width)).sum(0) * 3 % 256).astype(np.uint8)
    return Image.fromarray(np.stack([ramp, 255 - ramp, ramp // 2], axis=-1))


async def test_strength_changes_the_image_and_zero_keeps_it(manager):
    init = init_image()
    light = await manager.generate_image("a fox", init_image=init, strength=0.3, **STEPS)
    strong = await manager.generate_image("a fox", init_image=init, strength=0.8, **STEPS)
    kept = await manager.generate_image("a fox", init_image=init, strength=0.0, **STEPS)
    assert light.status == strong.status == kept.status == "success", (light.error, strong.error, kept.error)
    assert (light.width, light.height) == (96, 64)  # the init's size, each side a multiple of 8
    assert not np.array_equal(np.asarray(light.image), np.asarray(strong.image))
    assert np.array_equal(np.asarray(kept.image), np.asarray(fit(init, 96, 64, "just resize")))
    assert light.strength == 0.3 and "Denoising strength: 0.3" in Image.open(light.path).text["parameters"]


async def test_progress_counts_the_steps_that_run_and_an_asked_size_is_kept(manager):
    events = [e async for e in manager.stream_image("a fox", init_image=init_image(), strength=0.5, width=64,
                                                    height=72, resize_mode="crop and resize", **STEPS)]
    steps = [(e.step, e.total) for e in events if isinstance(e, Progress)]
    assert steps == [(i, 5) for i in range(1, 6)]  # 10 steps x strength 0.5
    done = events[-1].result
    assert (done.width, done.height) == (64, 72)


def test_resize_modes_fill_the_frame_as_a1111_does():
    wide = init_image(120, 60)
    assert fit(wide, 64, 64, "just resize").size == (64, 64)
    cropped = np.asarray(fit(wide, 64, 64, "crop and resize"))
    filled = np.asarray(fit(wide, 64, 64, "resize and fill"))
    assert cropped.shape == filled.shape == (64, 64, 3)
    # "resize and fill" keeps the whole picture in the middle band; "crop and resize" shows only its centre
    middle = np.asarray(wide.resize((64, 32), Image.Resampling.LANCZOS))
    assert np.abs(filled[16:48].astype(int) - middle.astype(int)).mean() < 3


async def test_bad_inputs_are_sentences(manager, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    cases = {
        "could not be read as an image": dict(init_image=str(notes)),
        "must be an image": dict(init_image=42),
        "Denoising strength must be between 0 and 1": dict(init_image=init_image(), strength=1.5),
        "Resize mode must be one of just resize, crop and resize, resize and fill": dict(
            init_image=init_image(), resize_mode="stretch", width=64, height=64),
    }
    for needle, extra in cases.items():
        result = await manager.generate_image("a fox", **STEPS, **extra)
        assert result.status == "error" and needle in result.error, (needle, result.error)


async def test_a_huge_init_image_is_refused_with_the_cap(settings):
    manager = AIModelManager(replace(settings, limits=Limits(max_input_pixels=64 * 64)), hardware=CPU)
    await manager.initialize_models()
    try:
        result = await manager.generate_image("a fox", init_image=init_image(100, 70), **STEPS)
        assert result.status == "error" and "The init image is too large: 100×70" in result.error
        assert "GATOR_MAX_INPUT_PIXELS" in result.error
    finally:
        manager.shutdown()
