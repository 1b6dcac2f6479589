"""GATOR_PREFER orders the backends auto mode tries (ComfyUI over this machine or the other way round), and every
model carries its license: the catalogue's, a checkpoint header's, or "unknown"."""
from __future__ import annotations

import shutil

import pytest
from safetensors.torch import load_file, save_file

from engine.backends import auto_order
from engine.config import Settings
from engine.manager import AIModelManager
from engine.model_files import inspect
from tests.conftest import CPU
from tests.support.fake_comfyui import FakeComfyUI
from tests.support.ldm_checkpoint import cached_checkpoint


@pytest.mark.parametrize("prefer, backend", [("", "comfyui"), ("comfyui", "comfyui"), ("local", "diffusers"),
                                             ("diffusers", "diffusers")])
async def test_prefer_picks_the_backend_auto_tries_first(tmp_path, tiny_model_dir, prefer, backend):
    with FakeComfyUI(step_delay_s=0.005) as server:
        settings = Settings(comfyui_urls=[server.url], output_dir=tmp_path / "out", tiny_model_dir=tiny_model_dir,
                            health_interval_s=0.2, health_timeout_s=0.5, comfyui_timeout_s=5.0, prefer=prefer)
        manager = AIModelManager(settings, hardware=CPU)
        await manager.initialize_models()
        try:
            assert manager.active_backend()["backend"] == backend
            result = await manager.generate_image("a harbour", width=64, height=64, num_inference_steps=2, seed=1)
            assert result.backend == backend, result.error
            assert result.fallback_reason is None
        finally:
            manager.shutdown()


def test_an_unknown_preference_is_a_sentence(settings):
    from dataclasses import replace

    manager = AIModelManager(replace(settings, prefer="gpu"), hardware=CPU)
    with pytest.raises(ValueError, match=r"GATOR_PREFER \(--prefer\) must be one of local, .*cloud.* \(got 'gpu'\)"):
        manager._initialize_sync()
    assert auto_order([]) == []


async def test_catalogue_and_checkpoint_licenses_reach_the_model_list_and_the_png(tmp_path, small_sdxl_manager):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(cached_checkpoint("sdxl-small"), models / "plain_one.safetensors")
    save_file(load_file(cached_checkpoint("sdxl-small")), models / "labelled_one.safetensors",
              metadata={"modelspec.license": "CreativeML Open RAIL-M"})
    assert inspect(models / "labelled_one.safetensors").license == "CreativeML Open RAIL-M"
    assert inspect(models / "plain_one.safetensors").license is None
    manager = await small_sdxl_manager(models)
    licenses = {m["id"]: m["license"] for m in manager.available_models()}
    assert licenses["plain_one"] == "unknown" and licenses["labelled_one"] == "CreativeML Open RAIL-M"
    assert licenses["sdxl-1.0"] == "CreativeML Open RAIL++-M"  # listed as missing, with its license
    result = await manager.generate_image("a lighthouse", width=64, height=64, num_inference_steps=2,
                                          model="plain_one")
    assert result.model_license == "unknown", result.error
    assert "Model license: unknown" in open(result.path, "rb").read().decode("latin-1")
