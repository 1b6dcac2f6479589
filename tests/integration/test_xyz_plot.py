"""The X/Y/Z plot through the manager: each cell a single image saved with its own parameters, the labelled grid
saved as its own PNG with A1111's script text, Z side by side, Stop mid-grid, bad input as sentences, and on the
fake ComfyUI the varied values in the graphs it received and a fallback mid-grid that still finishes."""
from __future__ import annotations

import asyncio
import random

import numpy as np
from PIL import Image

from engine.events import Done, Failed, Fallback, PlotCell, Progress
from engine.outputs import PARTIAL_SUFFIXES, read_parameters
from engine.xyz_plot import GRID_SUFFIX
from tests.integration.test_loras_local import lora_manager  # noqa: F401  (a fixture: LoRAs made for the tiny model)

SMALL = dict(width=64, height=64, num_inference_steps=2, model="tiny")


def saved(manager) -> list:
    return sorted(manager.output_dir.rglob("*.png"))


async def test_a_2x2_grid_of_steps_and_seeds(manager):
    events = [e async for e in manager.stream_xyz_plot("a lighthouse", "steps", "2,3", "seed", "1, 2", **SMALL)]
    cells = [e for e in events if isinstance(e, PlotCell)]
    assert [(c.number, c.total, c.label) for c in cells] == [
        (1, 4, "Steps: 2, Seed: 1"), (2, 4, "Steps: 3, Seed: 1"), (3, 4, "Steps: 2, Seed: 2"), (4, 4, "Steps: 3, Seed: 2")]
    # each cell streams like an image: its own steps, then its Done; the grid's Done comes last
    kinds = [type(e).__name__ for e in events if not isinstance(e, Progress)]
    assert kinds == ["PlotCell", "Started", "Done"] * 4 + ["Done"]
    assert [e.total for e in events if isinstance(e, Progress)] == [2, 2, 3, 3, 3, 2, 2, 3, 3, 3]
    dones = [e.result for e in events if isinstance(e, Done)]
    singles, grid = dones[:4], dones[4]
    assert [(r.num_inference_steps, r.seed) for r in singles] == [(2, 1), (3, 1), (2, 2), (3, 2)]
    for result in singles:  # each saved with its own parameters
        params = read_parameters(result.path)
        assert (params["num_inference_steps"], params["seed"], params["plot"]) == \
               (result.num_inference_steps, result.seed, None)
    assert grid.plot is not None and [r.path for r in grid.batch] == [r.path for r in singles]
    assert len(saved(manager)) == 5 and grid.path.endswith(f"{GRID_SUFFIX}.png")
    image = Image.open(grid.path)
    top, left = image.height - 128, image.width - 128
    assert top > 0 and left > 0  # a band of X labels above, of Y labels on the left
    pixels = np.asarray(image.convert("RGB"))
    for band in (pixels[:top, left:], pixels[top:, :left]):
        assert (band == 255).all(axis=-1).any() and (band < 100).all(axis=-1).any()  # dark text on white
    for number, single in enumerate(singles):  # each cell at its place, pixel for pixel
        x, y = number % 2, number // 2
        cell = pixels[top + 64 * y:top + 64 * (y + 1), left + 64 * x:left + 64 * (x + 1)]
        assert (cell == np.asarray(Image.open(single.path).convert("RGB"))).all()
    text = image.text["parameters"]
    assert text.startswith("a lighthouse\nSteps: 2, Sampler: Euler") and "Seed: 1, Size: 64x64" in text
    assert text.endswith('Script: X/Y/Z plot, X Type: Steps, X Values: "2,3", Y Type: Seed, Y Values: "1, 2", '
                         'Fixed Y Values: "1, 2"')
    assert read_parameters(grid.path)["plot"]["x_type"] == "Steps"


async def test_a_z_axis_puts_its_grids_side_by_side_in_one_png(manager):
    result = await manager.xyz_plot("a lighthouse", "guidance", "3, 9", "Nothing", "", "sampler", "euler, ddim",
                                    seed=4, **SMALL)
    assert result.status == "success", result.error
    assert [(r.guidance_scale, r.sampler) for r in result.batch] == [(3.0, "euler"), (9.0, "euler"), (3.0, "ddim"),
                                                                     (9.0, "ddim")]
    assert {r.seed for r in result.batch} == {4}
    grid = Image.open(result.path)
    assert grid.width > 4 * 64 and grid.height > 64  # two 2x1 grids side by side, labels above them
    assert len([p for p in saved(manager) if GRID_SUFFIX in p.name]) == 1
    assert "Z Type: Sampler, Z Values: \"euler, ddim\"" in grid.text["parameters"]


async def test_a_random_seed_is_drawn_once_for_the_whole_plot(manager):
    result = await manager.xyz_plot("a lighthouse", "steps", "1, 2", seed=-1, rng=random.Random(3), **SMALL)
    assert result.status == "success" and len({r.seed for r in result.batch}) == 1


async def test_stop_mid_grid_ends_it_and_leaves_nothing_half_written(manager):
    cancel = asyncio.Event()
    events = []
    async for event in manager.stream_xyz_plot("a lighthouse", "steps", "3, 60", "seed", "1, 2", cancel=cancel,
                                               **SMALL):
        events.append(event)
        if isinstance(event, Progress) and event.total == 60 and event.step == 2:
            cancel.set()
    final = events[-1]
    assert isinstance(final, Failed) and final.error.startswith("Cancelled"), final
    assert [e.number for e in events if isinstance(e, PlotCell)] == [1, 2]
    assert [r.num_inference_steps for r in final.result.batch] == [3]
    files = list(manager.output_dir.rglob("*"))
    assert [p for p in files if p.is_file()] == [p for p in saved(manager)]  # no partial file anywhere
    assert not any(p.name.endswith(PARTIAL_SUFFIXES) for p in files)
    (only,) = saved(manager)
    assert GRID_SUFFIX not in only.name and read_parameters(only)["num_inference_steps"] == 3


async def test_bad_plots_are_sentences_before_any_work(manager):
    cases = [(dict(x_type="steps", x_values=""), "The X axis (Steps) has no values"),
             (dict(x_type="steps", x_values="1-9", y_type="seed", y_values="1-8"), "This plot would make 72 images"),
             (dict(x_type="angle", x_values="1"), "Unknown X axis type 'angle'"),
             (dict(x_type="steps", x_values="2, 151"), "Steps on the X axis must be a whole number from 1 to 150"),
             (dict(x_type="sampler", x_values="euler, magic"), "Sampler on the X axis must be one of"),
             (dict(x_type="model", x_values="tiny, nowhere"), "The X axis (Model): Unknown model 'nowhere'"),
             (dict(x_type="lora_weight", x_values="0.5, 1"), "the request's first LoRA, and it has none"),
             (dict(x_type="strength", x_values="0.5, 1"), "The Denoising strength axis needs an init image"),
             (dict(x_type="steps", x_values="150, 150", width=1024, height=1024), "This plot is too large"),
             (dict(x_type="steps", x_values="2", batch_count=2), "one image per cell"),
             (dict(x_type="steps", x_values="2", prompt=""), "The prompt is empty")]
    for kwargs, needle in cases:
        values = {**SMALL, **kwargs}
        result = await manager.xyz_plot(values.pop("prompt", "a lighthouse"), **values)
        assert result.status == "error" and needle in result.error, (kwargs, result.error)
        assert not result.batch
    assert saved(manager) == []


async def test_a_clip_skip_axis_as_a1111_names_it(manager):
    result = await manager.xyz_plot("a lighthouse", x_type="Clip skip", x_values="1-2", **SMALL)
    assert result.status == "success", result.error
    assert [cell.clip_skip for cell in result.batch] == [None, 2]  # 1 is the encoder's last layer: not recorded
    assert not np.array_equal(np.asarray(result.batch[0].image), np.asarray(result.batch[1].image))
    assert "X Type: Clip skip" in Image.open(result.path).text["parameters"]


async def test_the_lora_weight_axis_varies_the_first_lora_only(lora_manager):
    """tinyDetail (from the prompt's tag) at 0, 0.8; tinyStyle stays as it was; weight 0 is the plain model."""
    result = await lora_manager.xyz_plot("a fox <lora:tinyDetail:1> <lora:tinyStyle:0.5>", "lora_weight", "0, 0.8",
                                         seed=5, **SMALL)
    assert result.status == "success", result.error
    off, on = result.batch
    assert off.loras == [{"name": "tinyStyle", "weight": 0.5}]
    assert on.loras == [{"name": "tinyDetail", "weight": 0.8}, {"name": "tinyStyle", "weight": 0.5}]
    alone = await lora_manager.generate_image("a fox <lora:tinyStyle:0.5>", seed=5, **SMALL)
    assert np.array_equal(np.asarray(off.image), np.asarray(alone.image))
    assert Image.open(on.path).text["parameters"].startswith("a fox <lora:tinyDetail:0.8> <lora:tinyStyle:0.5>\n")
    missing = await lora_manager.xyz_plot("a fox <lora:nowhere:0.5>", "lora_weight", "0.2, 1", **SMALL)
    assert missing.status == "error" and "nowhere" in missing.error and missing.error.startswith("Cell 1/2")


async def test_prompt_search_and_replace_as_a1111s(manager):
    """The first value is the search; each cell has its value in its place, in both prompts; labels are the values."""
    result = await manager.xyz_plot("a red fox, red sky", "Prompt S/R", 'red, "blue, cold", green', "seed", "3, 4",
                                    negative_prompt="red blur", **SMALL)
    assert result.status == "success", result.error
    assert [(cell.prompt, cell.negative_prompt, cell.seed) for cell in result.batch[:3]] == [
        ("a red fox, red sky", "red blur", 3), ("a blue, cold fox, blue, cold sky", "blue, cold blur", 3),
        ("a green fox, green sky", "green blur", 3)]
    same = await manager.generate_image("a green fox, green sky", negative_prompt="green blur", seed=4, **SMALL)
    assert np.array_equal(np.asarray(result.batch[5].image), np.asarray(same.image))
    text = Image.open(result.path).text["parameters"]
    assert text.endswith('X Type: Prompt S/R, X Values: "red, \\"blue, cold\\", green", Y Type: Seed, '
                         'Y Values: "3, 4", Fixed Y Values: "3, 4"')
    missing = await manager.xyz_plot("a fox", "prompt_sr", "wolf, dog", **SMALL)
    assert missing.status == "error" and 'Prompt S/R did not find "wolf"' in missing.error and not missing.batch
    empty = await manager.xyz_plot("a fox", "prompt_sr", ["", "x"], **SMALL)
    assert empty.status == "error" and "it cannot be empty" in empty.error
    both = await manager.xyz_plot("a red fox in the snow", "Prompt S/R", "red, blue", "Prompt S/R", "snow, rain",
                                  **{**SMALL, "num_inference_steps": 1})  # as A1111: one search on each axis
    assert both.status == "success", both.error
    assert [cell.prompt for cell in both.batch] == ["a red fox in the snow", "a blue fox in the snow",
                                                    "a red fox in the rain", "a blue fox in the rain"]


async def test_styles_go_on_after_the_search_and_replace(manager):
    """As A1111: each cell's prompt is replaced first, then styled, so a style's own words are never replaced."""
    result = await manager.xyz_plot("a photo of a fox", "Prompt S/R", "photo, painting", style=["Photographic"],
                                    **SMALL)
    assert result.status == "success", result.error
    assert [cell.prompt.split(",")[0] for cell in result.batch] == ["photograph of a photo of a fox",
                                                                    "photograph of a painting of a fox"]
    assert all("drawing" in cell.negative_prompt for cell in result.batch)
    missing = await manager.xyz_plot("a fox", "Prompt S/R", "photograph, drawing", style="Photographic", **SMALL)
    assert missing.status == "error" and 'did not find "photograph"' in missing.error  # not in the user's text
    unknown = await manager.xyz_plot("a fox", "steps", "1, 2", style="Vaporwave", **SMALL)
    assert unknown.status == "error" and "Unknown style 'Vaporwave'" in unknown.error


async def test_prompt_search_and_replace_reaches_lora_tags(lora_manager):
    result = await lora_manager.xyz_plot("a fox <lora:tinyDetail:0.2>", "Prompt S/R", "0.2, 0.9", seed=5, **SMALL)
    assert result.status == "success", result.error
    assert [cell.loras for cell in result.batch] == [[{"name": "tinyDetail", "weight": 0.2}],
                                                     [{"name": "tinyDetail", "weight": 0.9}]]
    assert [cell.prompt for cell in result.batch] == ["a fox", "a fox"]


async def test_on_comfyui_each_graph_carries_its_cells_values(comfy_manager, fake):
    sent = len(fake.prompts)
    result = await comfy_manager.xyz_plot("a lighthouse", "sampler", "euler, DPM++ 2M Karras", "steps", "2, 3",
                                          backend="comfyui", width=64, height=64, seed=5)
    assert result.status == "success", result.error
    samplers = [next(n["inputs"] for n in graph.values() if n["class_type"] == "KSampler")
                for graph in fake.prompts[sent:]]
    assert [(s["sampler_name"], s["steps"], s["seed"]) for s in samplers] == [
        ("euler", 2, 5), ("dpmpp_2m", 2, 5), ("euler", 3, 5), ("dpmpp_2m", 3, 5)]
    assert samplers[1]["scheduler"] == "karras"
    assert {r.backend for r in result.batch} == {"comfyui"} and {r.prompt_id for r in result.batch} <= \
           set(fake.prompt_ids)
    assert Image.open(result.path).text["parameters"].endswith(
        'X Type: Sampler, X Values: "euler, DPM++ 2M Karras", Y Type: Steps, Y Values: "2, 3"')


async def test_a_fallback_mid_grid_still_finishes_locally(comfy_manager, fake):
    fake.drop_socket_after_step(1)  # the first cell's socket drops after its first step
    events = [e async for e in comfy_manager.stream_xyz_plot("a lighthouse", "steps", "3, 2", width=64, height=64,
                                                             seed=5)]
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("Fallback") < kinds.index("Done") and isinstance(events[-1], Done)
    grid = events[-1].result
    assert grid.status == "success" and [r.backend for r in grid.batch] == ["diffusers", "comfyui"]
    assert "stopped answering" in grid.batch[0].fallback_reason
    assert any("Cell 1 (Steps: 3) was made on diffusers" in w for w in grid.warnings)
    width, height = Image.open(grid.path).size
    assert any(isinstance(e, Fallback) for e in events) and width == 128 and height > 64  # X labels, no Y band
