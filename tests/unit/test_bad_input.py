"""Every bad input gives a clear error dict: nothing raised, nothing saved."""
from __future__ import annotations

import pytest

GOOD = dict(prompt="a cat", width=64, height=64, num_inference_steps=2, seed=1)

CASES = [
    ("width not a multiple of 8", dict(width=100), "Width must be a multiple of 8"),
    ("height not a multiple of 8", dict(height=65), "Height must be a multiple of 8"),
    ("width below 64", dict(width=32), "Width must be between 64 and 2048"),
    ("height above 2048", dict(height=4096), "Height must be between 64 and 2048"),
    ("width not a number", dict(width="wide"), "Width must be a whole number"),
    ("zero steps", dict(num_inference_steps=0), "Steps must be a whole number from 1 to 150"),
    ("too many steps", dict(num_inference_steps=151), "Steps must be a whole number from 1 to 150"),
    ("negative guidance", dict(guidance_scale=-1), "Guidance scale must be between 0 and 50"),
    ("guidance not a number", dict(guidance_scale="lots"), "Guidance scale must be a number"),
    ("empty prompt", dict(prompt=""), "The prompt is empty"),
    ("blank prompt", dict(prompt="   \n "), "The prompt is empty"),
    ("unknown model", dict(model="no-such-model"), "Unknown model 'no-such-model'"),
    ("unknown backend", dict(backend="cloud"), "Backend must be one of auto, comfyui, diffusers"),
    ("unknown sampler", dict(sampler="magic"), "Sampler must be one of"),
    ("seed out of range", dict(seed=2**40), "Seed must be -1 (random)"),
    ("FLUX forced onto diffusers", dict(model="flux.1-dev", backend="diffusers"), "runs on ComfyUI only"),
    ("local model forced onto ComfyUI", dict(model="tiny", backend="comfyui"), "is a local diffusers model"),
    ("ComfyUI forced while disabled", dict(backend="comfyui"), "ComfyUI is disabled"),
]


@pytest.mark.parametrize("label,change,message", CASES, ids=[c[0] for c in CASES])
async def test_bad_input_gives_a_clear_error(manager, label, change, message):
    result = await manager.generate_image(**{**GOOD, **change})
    assert result["status"] == "error"
    assert message in result["error"], result["error"]
    assert "Traceback" not in result["error"]
    assert result["image"] is None and result["path"] is None
    assert not list(manager.settings.output_dir.rglob("*.png"))


async def test_every_problem_is_reported_at_once(manager):
    result = await manager.generate_image("", width=63, height=5000, num_inference_steps=0)
    for part in ("prompt is empty", "Width", "Height", "Steps"):
        assert part in result["error"]


async def test_unwritable_output_folder_is_a_clear_error(manager, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    manager.settings = manager.settings.__class__(**{**manager.settings.__dict__, "output_dir": blocker})
    result = await manager.generate_image(**GOOD)
    assert result["status"] == "error"
    assert "Could not save the image" in result["error"] and "GATOR_OUTPUT_DIR" in result["error"]


async def test_sampler_by_label_or_key(manager):
    by_label = await manager.generate_image(**{**GOOD, "sampler": "DPM++ 2M Karras"})
    by_key = await manager.generate_image(**{**GOOD, "sampler": "dpmpp_2m_karras"})
    assert by_label["status"] == by_key["status"] == "success"
    assert by_label["sampler"] == by_key["sampler"] == "dpmpp_2m_karras"
