"""The user's own checkpoints through AIModelManager: listed by file name with their family, a bad file a
sentence (never a crash, never another model's picture when it was named), a failed load remembered until
the file changes, and a rescan that sees new files."""
from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest
from PIL import Image

from engine.manager import AIModelManager
from engine.registry import Hardware
from tests.unit.test_model_files import KOHYA_SD15, KOHYA_SDXL, SD15, SDXL, write

CPU = Hardware("cpu", "CPU", 0.0, 64.0)


@pytest.fixture
async def a1111(settings, tmp_path):
    """A manager whose model folders include an A1111 install with a few files in it."""
    install = tmp_path / "stable-diffusion-webui"
    write(install / "models/Stable-diffusion/myMix_v2.safetensors", SD15)  # a header, not loadable weights
    write(install / "models/Stable-diffusion/bigXL.safetensors", SDXL)
    write(install / "models/Lora/detail.safetensors", KOHYA_SD15)
    cut = install / "models/Stable-diffusion/halfDownloaded.safetensors"
    cut.write_bytes(write(tmp_path / "whole.safetensors", SD15).read_bytes()[:-500])
    (install / "models/Stable-diffusion/notes.safetensors").write_text("my prompts\n" * 50)
    manager = AIModelManager(replace(settings, model_folders=(install,)), hardware=CPU)
    await manager.initialize_models()
    yield manager, install
    manager.shutdown()


def entry(manager: AIModelManager, model_id: str) -> dict:
    return next(m for m in manager.available_models() if m["id"] == model_id)


async def test_checkpoints_are_listed_by_file_name_with_family_defaults(a1111):
    manager, install = a1111
    mix, xl = entry(manager, "myMix_v2"), entry(manager, "bigXL")
    assert (mix["family"], mix["available"], mix["backend"]) == ("sd15", True, "diffusers")
    assert (xl["family"], xl["native_size"]) == ("sdxl", 1024)
    assert manager.model_defaults("myMix_v2.safetensors")["width"] == 512  # with its extension too
    assert "detail" not in {m["id"] for m in manager.available_models()}  # a LoRA is not a model
    bad = {m["id"]: m for m in manager.available_models() if not m["available"]}
    assert "truncated" in bad["halfDownloaded"]["note"] and "not a safetensors file" in bad["notes"]["note"]
    assert str(install) in manager.status()["model_folders"]


async def test_a_named_bad_file_is_a_sentence_not_the_tiny_model(a1111):
    manager, _ = a1111
    result = await manager.generate_image("a fox", model="halfDownloaded", width=64, height=64,
                                          num_inference_steps=2, seed=1)
    assert result["status"] == "error" and "truncated" in result["error"], result  # refused before any work


async def test_a_failed_load_is_remembered_until_the_file_changes(a1111):
    manager, install = a1111
    first = await manager.generate_image("a fox", model="myMix_v2", width=64, height=64, num_inference_steps=2,
                                         seed=1)
    assert first["status"] == "error", first
    assert "myMix_v2.safetensors could not be loaded as a SD 1.5 checkpoint" in first["error"]
    assert first.get("model") != "Tiny demo model"
    started = time.perf_counter()
    again = await manager.generate_image("a fox", model="myMix_v2", width=64, height=64, num_inference_steps=2,
                                         seed=1)
    assert again["status"] == "error" and again["error"] == first["error"]
    assert time.perf_counter() - started < 1.0  # not loaded again
    assert not entry(manager, "myMix_v2")["available"]
    await manager.rescan_models()  # unchanged file: still remembered
    assert not entry(manager, "myMix_v2")["available"]
    path = install / "models/Stable-diffusion/myMix_v2.safetensors"
    os.utime(path, (time.time() + 5, time.time() + 5))  # the user replaced the file
    await manager.rescan_models()
    assert entry(manager, "myMix_v2")["available"]


async def test_a_broken_model_folder_is_tried_once_until_a_rescan(settings, tiny_model_dir, tmp_path):
    """A diffusers folder whose UNet weights are missing (an interrupted copy): tried once, then said without
    another load on each request; a rescan tries it again."""
    import shutil

    folder = settings.models_dir / "stable-diffusion-v1-5"
    shutil.copytree(tiny_model_dir, folder)
    for weights in (folder / "unet").glob("*.safetensors"):
        weights.unlink()
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    try:
        backend = manager.backends["diffusers"]
        for _ in range(2):
            result = await manager.generate_image("a fox", model="stable-diffusion-v1-5", width=64, height=64,
                                                  num_inference_steps=1, seed=1)
            assert result["status"] == "success" and result["model"] == "Tiny demo model", result
            assert any(w.startswith("Stable Diffusion 1.5 could not be loaded from stable-diffusion-v1-5 (")
                       for w in result["warnings"]), result["warnings"]
            assert backend.loads == 1  # the tiny model, loaded once: the broken folder is not tried again
        listed = entry(manager, "stable-diffusion-v1-5")
        assert not listed["available"] and listed["note"].startswith("Stable Diffusion 1.5 could not be loaded")
        await manager.rescan_models()  # the user may have mended it: offered again, and tried on the next request
        assert entry(manager, "stable-diffusion-v1-5")["available"]
        await manager.generate_image("a fox", model="stable-diffusion-v1-5", width=64, height=64,
                                     num_inference_steps=1, seed=1)
        assert backend.loads == 2 and backend.loaded_model == "tiny"  # tried (still broken): the tiny model again
    finally:
        manager.shutdown()


async def test_auto_mode_never_fails_on_a_bad_checkpoint(a1111):
    manager, _ = a1111
    result = await manager.generate_image("a fox", width=64, height=64, num_inference_steps=2, seed=1)
    assert result["status"] == "success", result  # bigXL (auto's pick) fails to load: the tiny model, said so
    assert result["model"] == "Tiny demo model"
    assert any("bigXL.safetensors could not be loaded" in w for w in result["warnings"]), result["warnings"]


async def test_the_tiny_model_standing_in_leaves_out_the_files_made_for_the_model_asked(a1111):
    """A LoRA for the model that could not be used is left out (the tiny model cannot load it), said, and not recorded
    as used; the reason the model could not be used stays the first warning."""
    manager, install = a1111
    write(install / "models/Lora/xlDetail.safetensors", KOHYA_SDXL)
    await manager.rescan_models()
    for lora, asked in (("xlDetail", {}), ("detail", {"model": "sdxl-1.0"})):  # auto's pick (bigXL) fails to load;
        result = await manager.generate_image(f"a fox <lora:{lora}:0.8>", width=64, height=64,  # a catalogue model
                                              num_inference_steps=1, seed=1, **asked)  # not installed
        assert result["status"] == "success" and result["model"] == "Tiny demo model", result
        assert "Used the tiny demo model instead." in result["warnings"][0], result["warnings"]
        assert f"Left out for the tiny demo model: the LoRA {lora} (made for the model asked for)." in \
            result["warnings"], result["warnings"]
        assert result["loras"] == [] and "<lora:" not in Image.open(result["path"]).text["parameters"]


async def test_a_rescan_finds_a_new_checkpoint(a1111):
    manager, install = a1111
    assert "freshMix" not in {m["id"] for m in manager.available_models()}
    write(install / "models/Stable-diffusion/freshMix.safetensors", SD15)
    models = await manager.rescan_models()
    assert any(m["id"] == "freshMix" and m["available"] for m in models)


async def test_a_rescan_reads_comfyuis_models_again_at_once(comfy_manager, fake):
    assert "comfyui:freshMix.safetensors" not in {m["id"] for m in comfy_manager.available_models()}
    fake.checkpoints.append("freshMix.safetensors")  # put in ComfyUI's folder: listed by Rescan, not 30 s later
    models = {m["id"]: m for m in await comfy_manager.rescan_models()}
    assert models["comfyui:freshMix.safetensors"]["available"]


async def test_a_checkpoint_both_backends_have_is_one_entry_either_can_run(fake, tmp_path, tiny_model_dir):
    """The user's tiny-sd15.safetensors is also installed on the (fake) ComfyUI server: one entry, named by
    its plain file name; auto runs it on ComfyUI and keeps the same local model as the fallback."""
    from engine.config import Settings
    from engine.request import GenerationRequest

    write(tmp_path / "models" / "Stable-diffusion" / "tiny-sd15.safetensors", SD15)
    settings = Settings(comfyui_urls=[fake.url], output_dir=tmp_path / "outputs", tiny_model_dir=tiny_model_dir,
                        models_dir=tmp_path / "models", health_interval_s=0.2, health_timeout_s=0.5)
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    try:
        def entries() -> list:
            return [m for m in manager.available_models() if "tiny-sd15" in m["id"]]
        deadline = time.monotonic() + 10  # the health monitor reads the server's model list in the background
        while time.monotonic() < deadline and entries()[0]["backends"] != ["comfyui", "diffusers"]:
            time.sleep(0.05)
        assert len(entries()) == 1, entries()
        assert entries()[0]["id"] == "tiny-sd15" and entries()[0]["backends"] == ["comfyui", "diffusers"]
        plan = manager.router.plan(GenerationRequest("a fox", model="tiny-sd15", width=64, height=64).validated())
        assert [(t.backend, t.model.id) for t in plan.targets] == [("comfyui", "comfyui:tiny-sd15.safetensors"),
                                                                   ("diffusers", "tiny-sd15")]
        result = await manager.generate_image("a fox", model="tiny-sd15", width=64, height=64,
                                              num_inference_steps=2, seed=1)
        assert result.status == "success" and result.backend == "comfyui", result.error
    finally:
        manager.shutdown()
