"""Wildcards through the engine on the tiny model: each image of a batch gets the prompt its seed picks (a LoRA
tag inside a wildcard line applies to the images that picked it), the same seed gives the same prompt and picture
again, the PNG keeps the template beside the filled-in prompt, and a bad template is a sentence before any work."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from diffusers import UNet2DConditionModel
from PIL import Image

from engine.config import PRESETS_DIR
from engine.manager import AIModelManager
from engine.outputs import read_parameters
from engine.png_info import png_info
from engine.wildcards import Wildcards
from tests.conftest import CPU
from tests.support.tiny_lora import write_tiny_lora

SIZE = dict(width=64, height=64, num_inference_steps=2, model="tiny")
TEMPLATE = "__subject__ {in snow|in rain}"


@pytest.fixture
async def wildcard_manager(settings, tiny_model_dir):
    models = settings.models_dir
    write_tiny_lora(models / "Lora" / "tinyDetail.safetensors",
                    UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet"), seed=1)
    (models / "wildcards").mkdir(parents=True)
    (models / "wildcards" / "subject.txt").write_text("a fox\nan owl <lora:tinyDetail:0.8>\na __animal__\n")
    manager = AIModelManager(replace(settings, models_dir=models), hardware=CPU)
    await manager.initialize_models()
    yield manager
    manager.shutdown()


async def test_each_image_of_a_batch_gets_its_seeds_prompt(wildcard_manager, settings):
    manager = wildcard_manager
    result = await manager.generate_image(TEMPLATE, negative_prompt="blurry, {dark|flat}", seed=10, batch_count=4,
                                          **SIZE)
    assert result.status == "success", result.error
    wildcards = Wildcards([settings.models_dir / "wildcards", PRESETS_DIR / "wildcards"])
    for item, seed in zip(result.batch, range(10, 14)):
        expected = wildcards.expand(TEMPLATE, "blurry, {dark|flat}", seed)
        assert item.seed == seed and item.prompt == expected.prompt.replace(" <lora:tinyDetail:0.8>", "")
        assert item.negative_prompt == expected.negative_prompt and item.negative_prompt in ("blurry, dark",
                                                                                              "blurry, flat")
        assert item.prompt_template == TEMPLATE and item.negative_template == "blurry, {dark|flat}"
        assert item.loras == ([{"name": "tinyDetail", "weight": 0.8}] if "<lora:" in expected.prompt else [])
        saved = read_parameters(item.path)
        assert saved["prompt"] == item.prompt and saved["prompt_template"] == TEMPLATE
        text = Image.open(item.path).text["parameters"]
        assert f'Template: "{TEMPLATE}"' not in text and f"Template: {TEMPLATE}" in text  # no comma: not quoted
        assert 'Negative Template: "blurry, {dark|flat}"' in text
    assert png_info(result.batch[0].path)["prompt_template"] == TEMPLATE

    again = await manager.generate_image(TEMPLATE, negative_prompt="blurry, {dark|flat}", seed=12, **SIZE)
    assert again.prompt == result.batch[2].prompt
    assert np.array_equal(np.asarray(again.image), np.asarray(result.batch[2].image))


async def test_a_template_that_cannot_be_filled_in_is_a_sentence_and_makes_nothing(wildcard_manager, settings):
    result = await wildcard_manager.generate_image("a __mood__ fox", seed=1, batch_count=2, **SIZE)
    assert result.status == "error" and result.error.startswith("No wildcard named 'mood'")
    assert "subject" in result.error and "animal" in result.error  # the names a prompt can use
    assert not list(settings.output_dir.rglob("*.png"))
    plain = await wildcard_manager.generate_image("a fox", seed=1, **SIZE)
    assert plain.status == "success" and plain.prompt_template is None
    assert "Template" not in Image.open(plain.path).text["parameters"]
    assert "subject" in wildcard_manager.available_wildcards() and "subject" in wildcard_manager.status()["wildcards"]


async def test_a_seed_travel_in_between_gets_the_picks_of_both_keyframes(wildcard_manager):
    """A storyboard's in-between frame is drawn from scene A's prompt (its seed) toward scene B's (seed_b): both
    are filled in as the keyframes were, so the frames between two keyframes show what the keyframes show."""
    from engine.request import GenerationRequest

    manager = wildcard_manager
    keyframe_a = await manager.generate_image("__subject__", seed=3, **SIZE)
    keyframe_b = await manager.generate_image("__subject__, {night|day}", seed=4, **SIZE)
    travel = {"seed_b": 4, "prompt_b": "__subject__, {night|day}", "negative_prompt_b": "", "t": 0.5}
    request = GenerationRequest.from_arguments("__subject__", seed=3, extra={"interpolate": travel}, **SIZE)
    (between,) = manager._batch_requests(request)
    assert between.prompt == keyframe_a.prompt and between.seed == 3
    assert between.extra["interpolate"]["prompt_b"].replace(" <lora:tinyDetail:0.8>", "") == keyframe_b.prompt
    assert travel["prompt_b"] == "__subject__, {night|day}"  # the caller's storyboard is left as it was


async def test_lora_tags_inside_options_are_checked_once_picked(wildcard_manager):
    """Only the picked option's tag counts: two weights that together pass the limit, or a weight that is itself
    an option, are fine; the request's own LoRAs still are checked before any work."""
    manager = wildcard_manager
    result = await manager.generate_image("a fox {<lora:tinyDetail:2.5>|<lora:tinyDetail:3>}", seed=1, **SIZE)
    assert result.status == "success", result.error
    assert result.loras in ([{"name": "tinyDetail", "weight": 2.5}], [{"name": "tinyDetail", "weight": 3.0}])
    weighted = await manager.generate_image("a fox <lora:tinyDetail:{0.5|0.8}>", seed=2, **SIZE)
    assert weighted.status == "success" and weighted.loras[0]["weight"] in (0.5, 0.8), weighted.error
    refused = await manager.generate_image("a {red|blue} fox", seed=2, loras=[{"name": "tinyDetail", "weight": 9}],
                                           **SIZE)
    assert refused.status == "error" and "LoRA" in refused.error


async def test_an_xyz_plot_fills_the_template_in_each_cell(wildcard_manager):
    manager = wildcard_manager
    plot = await manager.xyz_plot("a fox {<lora:tinyDetail:0.8> in snow|in rain}", "Steps", "1, 2", seed=10, **SIZE)
    assert plot.status == "success", plot.error
    first, second = plot.batch
    assert first.prompt == second.prompt and "{" not in first.prompt and "<lora" not in first.prompt
    assert first.loras == second.loras == ([{"name": "tinyDetail", "weight": 0.8}] if "snow" in first.prompt else [])
    assert first.prompt_template == "a fox {<lora:tinyDetail:0.8> in snow|in rain}"
