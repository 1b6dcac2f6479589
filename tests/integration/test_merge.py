"""A1111's Checkpoint merger on small SDXL single files made from the published configs: weighted sum and add
difference tensor for tensor, A1111's recipe in the metadata, the merged file listed and drawing, and what cannot be
merged a sentence with nothing written."""
from __future__ import annotations

import json
import shutil
import signal

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.errors import InvalidRequest, OutputError
from tests.support.ldm_checkpoint import cached_checkpoint

RUN = dict(width=64, height=64, num_inference_steps=1, seed=2)


@pytest.fixture
async def merging(tmp_path, small_sdxl_manager):
    """A manager whose models folder holds two small SDXL checkpoints with different weights and an inpainting one."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "baseXL.safetensors").symlink_to(cached_checkpoint("sdxl-small"))
    other = {key: (-tensor if tensor.is_floating_point() else tensor)
             for key, tensor in load_file(str(cached_checkpoint("sdxl-small"))).items()}
    save_file(other, str(folder / "otherXL.safetensors"))
    (folder / "paintXL.safetensors").symlink_to(cached_checkpoint("sdxl-small-inpainting"))
    return await small_sdxl_manager(folder), folder


def tensors(path, keys):
    with safe_open(str(path), framework="pt") as f:
        return {key: f.get_tensor(key) for key in keys}


async def test_weighted_sum_and_add_difference_tensor_for_tensor(merging):
    manager, folder = merging
    assert {"baseXL", "otherXL", "paintXL"} <= set(manager.mergeable_checkpoints())
    note = await manager.merge_checkpoints("baseXL", "otherXL", 0.25, "mixXL")
    assert note == "Merged baseXL and otherXL (weighted sum, multiplier 0.25) into mixXL.safetensors: it is in the " \
                   "model list as mixXL."
    with safe_open(str(folder / "mixXL.safetensors"), framework="pt") as f:
        keys = [key for key in f.keys() if "weight" in key][:5]
        recipe = json.loads(f.metadata()["sd_merge_recipe"])
    a, b, mixed = (tensors(folder / name, keys) for name in ("baseXL.safetensors", "otherXL.safetensors",
                                                               "mixXL.safetensors"))
    for key in keys:
        expected = (a[key].float() * 0.75 + b[key].float() * 0.25).to(a[key].dtype)
        assert torch.equal(mixed[key], expected), key  # B is -A here: half of A
    assert recipe["interp_method"] == "Weighted sum" and recipe["multiplier"] == 0.25
    assert recipe["primary_model_name"] == "baseXL" and recipe["secondary_model_name"] == "otherXL"
    await manager.merge_checkpoints("baseXL", "otherXL", 0.25, "diffXL", method="add_difference", tertiary="baseXL")
    diff = tensors(folder / "diffXL.safetensors", keys)
    for key in keys:  # A + (B - A) x M is the weighted sum
        assert torch.allclose(diff[key].float(), mixed[key].float(), atol=1e-3), key
    listed = {m["id"]: m for m in manager.available_models()}
    assert listed["mixXL"]["available"] and listed["mixXL"]["family"] == "sdxl"
    result = await manager.generate_image("a fox", model="mixXL", **RUN)
    assert result.status == "success" and result.model_id == "mixXL", result.error
    half = await manager.merge_checkpoints("baseXL", "otherXL", 0.5, "halfXL", half=True)
    assert "halfXL.safetensors" in half
    assert {t.dtype for t in tensors(folder / "halfXL.safetensors", keys).values()} == {torch.float16}


async def test_what_cannot_be_merged_is_a_sentence_and_nothing_is_written(merging):
    manager, folder = merging
    before = sorted(p.name for p in folder.iterdir())
    cases = [(dict(primary="baseXL", secondary="paintXL", multiplier=0.5, name="x1"), "cannot be merged: "),
             (dict(primary="baseXL", secondary="nowhere", multiplier=0.5, name="x2"),
              "'nowhere' is not a checkpoint file on this machine; the merger takes these: "),
             (dict(primary="baseXL", secondary="tiny", multiplier=0.5, name="x3"), "'tiny' is not a checkpoint file"),
             (dict(primary="baseXL", secondary="otherXL", multiplier=1.5, name="x4"), "Multiplier (M) must be between"),
             (dict(primary="baseXL", secondary="otherXL", multiplier=0.5, name="../x5"), "needs a name of 1 to 100"),
             (dict(primary="baseXL", secondary="otherXL", multiplier=0.5, name="BASExl"), "A model named BASExl is "
                                                                                          "already listed"),
             (dict(primary="baseXL", secondary="otherXL", multiplier=0.5, name="sd_xl_base_1.0"),  # SDXL 1.0's file
              "A model named sd_xl_base_1.0 is already listed"),
             (dict(primary="baseXL", secondary="otherXL", multiplier=0.5, name="x6", method="add_difference"),
              "'' is not a checkpoint file")]
    for kwargs, sentence in cases:
        with pytest.raises(InvalidRequest) as err:
            await manager.merge_checkpoints(**kwargs)
        assert sentence in str(err.value), (kwargs, str(err.value))
    (folder / "Stable-diffusion").mkdir()
    shutil.copy(folder / "otherXL.safetensors", folder / "Stable-diffusion" / "deepXL.safetensors")
    await manager.rescan_models()
    with pytest.raises(InvalidRequest, match="A model named deepXL is already listed"):  # in a subfolder
        await manager.merge_checkpoints("baseXL", "otherXL", 0.5, "deepXL")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*before, "Stable-diffusion"])  # no partial file


async def test_a_write_that_fails_is_a_sentence_and_leaves_nothing(merging):
    import resource

    manager, folder = merging
    before = sorted(p.name for p in folder.iterdir())
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (10 * 1024 * 1024, limit[1]))
    try:
        with pytest.raises(OutputError, match="The merged checkpoint could not be written"):
            await manager.merge_checkpoints("baseXL", "otherXL", 0.5, "bigXL")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, previous)
    assert sorted(p.name for p in folder.iterdir()) == before
