"""A VAE file instead of the checkpoint's own, on the local backend: it changes the decoded image, auto
gives the checkpoint's own back, and an unknown or misfit VAE is a sentence."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from engine.manager import AIModelManager
from tests.conftest import CPU
from tests.support.tiny_vae import write_tiny_vae
from tests.unit.test_model_files import VAE_KEYS, write

SIZE = dict(width=64, height=64, num_inference_steps=2, seed=9, model="tiny")


@pytest.fixture
async def vae_manager(settings, tiny_model_dir):
    write_tiny_vae(settings.models_dir / "VAE" / "tinyBright.safetensors", tiny_model_dir)
    write(settings.models_dir / "VAE" / "wrongShape.safetensors", VAE_KEYS)
    manager = AIModelManager(replace(settings), hardware=CPU)
    await manager.initialize_models()
    yield manager
    manager.shutdown()


def pixels(result) -> np.ndarray:
    assert result.status == "success", result.error
    return np.asarray(result.image, dtype=np.int16)


async def test_a_vae_file_decodes_instead_of_the_checkpoints_own(vae_manager):
    manager = vae_manager
    assert manager.available_vaes() == ["tinyBright", "wrongShape"]
    assert [manager.vae_named(name) for name in ("tinybright.safetensors", "TINYBRIGHT", "vae-ft-mse", None)] == \
        ["tinyBright", "tinyBright", None, None]  # as A1111 writes it (the file's name) or as typed; one not here
    own = pixels(await manager.generate_image("a fox", **SIZE))
    bright = await manager.generate_image("a fox", vae="tinyBright", **SIZE)
    assert pixels(bright).mean() > own.mean() + 20  # the shifted decoder brightens the very same latents
    assert bright.vae == "tinyBright"
    assert "VAE: tinyBright" in Image.open(bright.path).text["parameters"]
    again = pixels(await manager.generate_image("a fox", vae="auto", **SIZE))
    assert np.array_equal(own, again)  # auto: the checkpoint's own VAE again
    assert manager.backends["diffusers"].loads == 1


async def test_unknown_and_misfit_vaes_are_sentences(vae_manager):
    manager = vae_manager
    unknown = await manager.generate_image("a fox", vae="nope", **SIZE)
    assert unknown.status == "error" and "Unknown VAE 'nope'" in unknown.error and "tinyBright" in unknown.error
    misfit = await manager.generate_image("a fox", vae="wrongShape", **SIZE)
    assert misfit.status == "error" and "The VAE wrongShape does not fit Tiny demo model" in misfit.error
    fine = await manager.generate_image("a fox", vae="tinyBright", **SIZE)
    assert fine.status == "success", fine.error


async def test_comfyui_decodes_with_a_vae_loader_of_the_file(comfy_manager, fake):
    fake.vaes.append("sdxl_vae.safetensors")
    monitor = comfy_manager.backends["comfyui"].monitor
    monitor.refresh_models(fake.url)  # the next poll re-reads the installed files
    monitor.poll_now()
    assert "sdxl_vae" in comfy_manager.available_vaes()
    small = dict(width=64, height=64, num_inference_steps=2, seed=4)
    result = await comfy_manager.generate_image("a cat", backend="comfyui", vae="sdxl_vae", **small)
    assert result.status == "success" and result.vae == "sdxl_vae", result.error
    graph = fake.prompts[-1]
    (loader_id, loader), = [(k, n) for k, n in graph.items() if n["class_type"] == "VAELoader"]
    assert loader["inputs"] == {"vae_name": "sdxl_vae.safetensors"}
    assert all(n["inputs"]["vae"] == [loader_id, 0] for n in graph.values() if n["class_type"] == "VAEDecode")
    missing = await comfy_manager.generate_image("a cat", backend="comfyui", vae="nope", **small)
    assert missing.status == "error" and "The VAE 'nope' is not installed" in missing.error
