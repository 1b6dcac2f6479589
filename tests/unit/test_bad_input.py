"""Every bad input gives a clear error dict: nothing raised, nothing saved."""
from __future__ import annotations

import pytest

from tests.support.bad_inputs import BAD_INPUTS, GOOD


@pytest.mark.parametrize("label,change,message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
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
