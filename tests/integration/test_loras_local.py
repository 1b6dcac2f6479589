"""LoRAs on the local backend, with a kohya-format LoRA made for the tiny model: it changes the image; the
prompt tag and the parameter give the same pixels; weight 0 is no LoRA; nothing leaks into the next
request; the checkpoint is loaded once; bad or foreign LoRAs are sentences; the PNG lists the LoRAs."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from diffusers import UNet2DConditionModel
from PIL import Image

from engine.manager import AIModelManager
from engine.outputs import read_parameters
from tests.conftest import CPU
from tests.support.tiny_lora import write_tiny_lora
from tests.unit.test_model_files import KOHYA_SDXL, SD15, write

SIZE = dict(width=64, height=64, num_inference_steps=3, seed=5)


@pytest.fixture
async def lora_manager(settings, tiny_model_dir):
    """A manager whose models folder holds two LoRAs for the tiny model, an SD 1.5-sized one, an SDXL one
    and an SD 1.5 checkpoint header."""
    models = settings.models_dir
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    write_tiny_lora(models / "Lora" / "tinyDetail.safetensors", unet, seed=1)
    write_tiny_lora(models / "Lora" / "tinyStyle.safetensors", unet, seed=2)
    write(models / "Lora" / "xlPixels.safetensors", KOHYA_SDXL)
    write(models / "Stable-diffusion" / "myMix_v2.safetensors", SD15)
    manager = AIModelManager(replace(settings, models_dir=models), hardware=CPU)
    await manager.initialize_models()
    yield manager
    manager.shutdown()


def pixels(result) -> np.ndarray:
    assert result.status == "success", result.error
    return np.asarray(result.image)


async def test_a_lora_changes_the_image_and_leaves_nothing_behind(lora_manager):
    manager = lora_manager
    first = pixels(await manager.generate_image("a fox", model="tiny", **SIZE))
    with_param = await manager.generate_image("a fox", model="tiny", loras=[{"name": "tinyDetail", "weight": 0.8}],
                                              **SIZE)
    with_tag = await manager.generate_image("a fox <lora:tinyDetail:0.8>", model="tiny", **SIZE)
    weight_zero = await manager.generate_image("a fox, <lora:tinyDetail:0>", model="tiny", **SIZE)
    after = pixels(await manager.generate_image("a fox", model="tiny", **SIZE))
    assert not np.array_equal(first, pixels(with_param))  # the LoRA changes the picture
    assert np.array_equal(pixels(with_param), pixels(with_tag))  # the tag and the parameter are one thing
    assert np.array_equal(first, pixels(weight_zero))
    assert np.array_equal(first, after)  # nothing leaks into the next request
    assert manager.backends["diffusers"].loads == 1  # the checkpoint was never reloaded
    assert with_tag.prompt == "a fox" and with_tag.loras == [{"name": "tinyDetail", "weight": 0.8}]
    saved = read_parameters(with_tag.path)
    assert saved["loras"] == [{"name": "tinyDetail", "weight": 0.8}]
    assert Image.open(with_tag.path).text["parameters"].startswith("a fox <lora:tinyDetail:0.8>\n")


async def test_two_loras_and_weights_mix(lora_manager):
    manager = lora_manager
    one = pixels(await manager.generate_image("a fox <lora:tinyDetail:0.8>", model="tiny", **SIZE))
    both = pixels(await manager.generate_image("a fox <lora:tinyDetail:0.8> <lora:tinyStyle:0.6>", model="tiny",
                                               **SIZE))
    weaker = pixels(await manager.generate_image("a fox <lora:tinyDetail:0.3>", model="tiny", **SIZE))
    assert not np.array_equal(one, both) and not np.array_equal(one, weaker)
    again = pixels(await manager.generate_image("a fox", model="tiny", loras=["tinyDetail:0.5", "tinydetail:0.3"],
                                                **SIZE))
    assert np.array_equal(one, again)  # named twice: the weights add up (names are case-insensitive)


async def test_bad_loras_are_sentences_and_the_app_goes_on(lora_manager):
    manager = lora_manager
    unknown = await manager.generate_image("a fox <lora:nope:1>", model="tiny", **SIZE)
    assert unknown.status == "error" and "Unknown LoRA 'nope'" in unknown.error and "tinyDetail" in unknown.error
    foreign = await manager.generate_image("a fox", model="myMix_v2", loras=[{"name": "xlPixels", "weight": 1}],
                                           **SIZE)
    assert foreign.status == "error" and "xlPixels is for SDXL models; myMix_v2 is SD 1.5" in foreign.error
    misfit = await manager.generate_image("a fox <lora:xlPixels>", model="tiny", **SIZE)
    assert misfit.status == "error" and "does not fit Tiny demo model" in misfit.error, misfit.error
    bad_weight = await manager.generate_image("a fox <lora:tinyDetail:lots>", model="tiny", **SIZE)
    assert bad_weight.status == "error" and "not a number" in bad_weight.error
    too_strong = await manager.generate_image("a fox", model="tiny", loras=[{"name": "tinyDetail", "weight": 9}],
                                              **SIZE)
    assert too_strong.status == "error" and "between -4 and 4" in too_strong.error
    fine = await manager.generate_image("a fox <lora:tinyDetail:0.8>", model="tiny", **SIZE)
    assert fine.status == "success", fine.error


async def test_a_lora_loaded_before_another_fails_is_off_for_the_next_request(lora_manager):
    manager = lora_manager
    plain = pixels(await manager.generate_image("a fox", model="tiny", **SIZE))
    failed = await manager.generate_image("a fox <lora:tinyDetail:1> <lora:xlPixels:1>", model="tiny", **SIZE)
    assert failed.status == "error" and "xlPixels does not fit" in failed.error, failed.error
    after = pixels(await manager.generate_image("a fox", model="tiny", **SIZE))
    assert np.array_equal(plain, after)  # tinyDetail, loaded first, does not draw into it
