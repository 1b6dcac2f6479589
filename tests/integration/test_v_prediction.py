"""Checkpoints that predict v (NoobAI-XL V-Pred and the like), as ComfyUI recognises them: a `v_pred` marker tensor in
the file (and `ztsnr` for a zero terminal SNR schedule). Locally the scheduler is told, for every sampler; the status
tab says so; the same weights without the markers sample as an ordinary (noise-predicting) model. And a sampler's
options never outlive its request (DPM++ 2M Karras, then DPM++ 2M)."""
from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from engine.model_files import inspect
from tests.support.ldm_checkpoint import cached_checkpoint

RUN = dict(width=64, height=64, num_inference_steps=2, seed=4)


def with_markers(source, target, *markers: str):
    tensors = load_file(str(source))
    tensors.update({marker: torch.tensor([]) for marker in markers})  # empty, as the released files have them
    save_file(tensors, str(target))
    return target


async def test_a_v_prediction_checkpoint_samples_as_one(tmp_path, small_sdxl_manager):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "plainXL.safetensors").symlink_to(cached_checkpoint("sdxl-small"))
    with_markers(cached_checkpoint("sdxl-small"), folder / "vpredXL.safetensors", "v_pred", "ztsnr")
    with_markers(cached_checkpoint("sdxl-small"), folder / "vonlyXL.safetensors", "v_pred")
    assert (inspect(folder / "vpredXL.safetensors").v_prediction, inspect(folder / "vpredXL.safetensors").zero_snr) \
        == (True, True)
    assert not inspect(folder / "plainXL.safetensors").v_prediction
    manager = await small_sdxl_manager(folder)
    listed = {m["id"]: m for m in manager.available_models()}
    assert listed["vpredXL"]["family_label"] == "SDXL (v-prediction, zero terminal SNR)"
    assert listed["vonlyXL"]["family_label"] == "SDXL (v-prediction)" and listed["plainXL"]["family_label"] == "SDXL"
    worker = manager.backends["diffusers"].pool[0]
    made = {}
    for model, sampler in (("vpredXL", "dpmpp_2m_karras"), ("vpredXL", "euler"), ("plainXL", "euler"),
                           ("vonlyXL", "euler")):
        result = await manager.generate_image("a fox", model=model, sampler=sampler, **RUN)
        assert result.status == "success", result.error
        made[model, sampler] = np.asarray(result.image).astype(int)
        config = worker.pipe.scheduler.config
        expected = "v_prediction" if model != "plainXL" else "epsilon"
        assert config.prediction_type == expected, (model, sampler)
        assert bool(config.get("rescale_betas_zero_snr")) == (model == "vpredXL"), (model, sampler)
        assert config.timestep_spacing == ("trailing" if model == "vpredXL" else "leading"), (model, sampler)
        assert bool(config.get("use_karras_sigmas")) == (sampler == "dpmpp_2m_karras"), (model, sampler)
    # the same weights: what the markers change is how the steps are taken
    assert np.abs(made["vpredXL", "euler"] - made["plainXL", "euler"]).mean() > 1
    assert np.abs(made["vonlyXL", "euler"] - made["plainXL", "euler"]).mean() > 1


async def test_a_samplers_options_do_not_outlive_its_request(manager):
    pipe = None
    for sampler, karras in (("dpmpp_2m_karras", True), ("dpmpp_2m", False), ("dpmpp_2m_karras", True)):
        result = await manager.generate_image("a fox", sampler=sampler, model="tiny", **RUN)
        assert result.status == "success", result.error
        pipe = manager.backends["diffusers"].pool[0].pipe
        assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
        assert bool(pipe.scheduler.config.get("use_karras_sigmas")) is karras, sampler
