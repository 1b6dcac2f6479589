"""A1111's Skip through the manager on the tiny model: the image being made ends unsaved within a step and the
batch (or X/Y/Z plot) goes on with the next; Stop still ends the whole job; a Skip pressed between two images is
dropped when the next starts."""
from __future__ import annotations

import asyncio

import numpy as np
from PIL import Image

from engine.events import Done, Failed, PlotCell, Progress, Skipped
from engine.outputs import read_parameters
from engine.xyz_plot import GRID_SUFFIX

SMALL = dict(width=64, height=64, seed=11)


async def test_skip_ends_the_image_being_made_and_the_batch_goes_on(manager):
    skip, events = asyncio.Event(), []
    async for event in manager.stream_image("a lighthouse", num_inference_steps=40, batch_count=3, skip=skip,
                                            **SMALL):
        events.append(event)
        if isinstance(event, Progress) and event.step == 2 and not any(isinstance(e, (Done, Skipped)) for e in events):
            skip.set()  # the first image: its third step is never reached
    skipped = [e for e in events if isinstance(e, Skipped)]
    assert [(e.number, e.total) for e in skipped] == [(1, 3)]
    first_steps = [e.step for e in events[:events.index(skipped[0])] if isinstance(e, Progress)]
    assert max(first_steps) <= 3  # within a step
    done = [e.result for e in events if isinstance(e, Done)]
    assert [r.seed for r in done] == [12, 13]  # the batch went on, each image with its own seed
    assert sorted(read_parameters(p)["seed"] for p in manager.output_dir.rglob("*.png")) == [12, 13]
    assert not isinstance(events[-1], Failed)


async def test_the_image_after_a_skip_is_the_one_an_unskipped_batch_makes(manager):
    skip, done = asyncio.Event(), []
    async for event in manager.stream_image("a lighthouse", num_inference_steps=3, batch_count=2, skip=skip, **SMALL):
        if isinstance(event, Progress) and event.step == 1 and not done:
            skip.set()
        if isinstance(event, (Done, Skipped)):
            done.append(event)
    assert isinstance(done[0], Skipped) and isinstance(done[1], Done)
    plain = await manager.generate_image("a lighthouse", num_inference_steps=3, seed=12, width=64, height=64)
    assert np.array_equal(np.asarray(done[1].result.image), np.asarray(plain.image))


async def test_a_skip_between_two_images_is_dropped_when_the_next_starts(manager):
    skip, events = asyncio.Event(), []
    async for event in manager.stream_image("a lighthouse", num_inference_steps=2, batch_count=2, skip=skip, **SMALL):
        events.append(event)
        if isinstance(event, Done):
            skip.set()  # after the first image is saved, before the second starts
    assert [type(e).__name__ for e in events if not isinstance(e, Progress)] == ["Started", "Done", "Started", "Done"]


async def test_stop_after_a_skip_still_ends_the_whole_batch(manager):
    skip, cancel, events = asyncio.Event(), asyncio.Event(), []
    async for event in manager.stream_image("a lighthouse", num_inference_steps=40, batch_count=3, skip=skip,
                                            cancel=cancel, **SMALL):
        events.append(event)
        if isinstance(event, Progress) and event.step == 2:
            (cancel if any(isinstance(e, Skipped) for e in events) else skip).set()
    assert [e.number for e in events if isinstance(e, Skipped)] == [1]
    assert isinstance(events[-1], Failed) and events[-1].error.startswith("Cancelled")
    assert not list(manager.output_dir.rglob("*.png"))


async def test_generate_image_with_every_image_skipped_says_so(manager):
    class HeldDown(asyncio.Event):
        """A Skip held down through the request: it reads set even right after an image clears it."""

        def is_set(self) -> bool:
            return True

    result = await manager.generate_image("a lighthouse", num_inference_steps=5, batch_count=2, skip=HeldDown(),
                                          **SMALL)
    assert result.status == "error" and result.error == "Skipped: no image was finished."


async def test_a_skipped_plot_cell_stays_blank_and_the_grid_is_drawn(manager):
    skip, events = asyncio.Event(), []
    async for event in manager.stream_xyz_plot("a lighthouse", "steps", "2, 40", "seed", "1, 2", skip=skip,
                                               model="tiny", **{**SMALL, "seed": None}):
        events.append(event)
        if isinstance(event, Progress) and event.total == 40 and event.step == 2 and \
                [e.number for e in events if isinstance(e, PlotCell)][-1] == 2:
            skip.set()  # cell 2 (Steps: 40, Seed: 1)
    assert [(e.number, e.total) for e in events if isinstance(e, Skipped)] == [(2, 4)]
    grid = events[-1]
    assert isinstance(grid, Done) and grid.result.plot is not None
    assert [(r.num_inference_steps, r.seed) for r in grid.result.batch] == [(2, 1), (2, 2), (40, 2)]
    assert "Cell 2 (Steps: 40, Seed: 1) was skipped: it is blank in the grid." in grid.result.warnings
    image = np.asarray(Image.open(grid.result.path).convert("RGB"))
    top, left = image.shape[0] - 128, image.shape[1] - 128
    blank = image[top:top + 64, left + 64:]
    made = image[top:top + 64, left:left + 64]
    assert (blank == blank[0, 0]).all() and not (made == made[0, 0]).all()
    assert len([p for p in manager.output_dir.rglob("*.png") if GRID_SUFFIX in p.name]) == 1


async def test_skip_on_comfyui_interrupts_the_server_job_and_the_batch_goes_on(comfy_manager, fake):
    skip, events = asyncio.Event(), []
    async for event in comfy_manager.stream_image("a lighthouse", num_inference_steps=30, batch_count=2, skip=skip,
                                                  backend="comfyui", **SMALL):
        events.append(event)
        if isinstance(event, Progress) and event.step == 2 and not any(isinstance(e, Skipped) for e in events):
            skip.set()
    assert [e.number for e in events if isinstance(e, Skipped)] == [1]
    assert fake.interrupts == [{"prompt_id": fake.prompt_ids[0]}]  # the skipped job, nobody else's
    (done,) = [e.result for e in events if isinstance(e, Done)]
    assert done.backend == "comfyui" and done.seed == 12 and done.prompt_id == fake.prompt_ids[1]
