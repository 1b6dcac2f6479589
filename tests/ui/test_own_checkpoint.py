"""A user's own full-size SD 1.5 checkpoint in an A1111 folder, offline with an empty Hugging Face cache:
listed under its file name with its family, and generating through the API and the browser on that very
model (no fallback to the tiny model); a truncated file and a text file renamed .safetensors beside it are
each a sentence on the status tab and through the API while the app goes on; a small SDXL-shaped file in a
ComfyUI layout beside it, in the same app. The checkpoints are random-weight files in the original LDM layout,
built once per machine (tests/support/ldm_checkpoint.py)."""
from __future__ import annotations

import shutil

import pytest
from gradio_client import Client

from engine.file_hashes import sha256_of
from engine.single_file import PRESETS_DIR as PRESET_PIPELINES
from tests.support.ldm_checkpoint import cached_checkpoint, write_small_sdxl_config
from tests.unit.test_model_files import SD15, write
from tests.unit.test_png_info import png_with
from tests.ui.conftest import AppProcesses, fill_image_form, needs_chromium, open_app, wait_progress, wait_text


def generate_with(page, url: str, model: str) -> None:
    """In the browser: pick the local `model`, make a 64 px image in 2 steps, and see it made by that model."""
    open_app(page, url)
    page.locator("#model input").click()
    page.get_by_role("option", name=f"{model} · diffusers").click()
    fill_image_form(page, "a harbour at dawn", steps=2, seed=4)
    page.click("#generate")
    assert model in wait_progress(page, "Done", 120_000)


@pytest.fixture(scope="module")
def own_checkpoint_app(tmp_path_factory):
    """An A1111 install holding dreamMix_v7.safetensors (and two broken files), a ComfyUI install holding a small
    SDXL-shaped tinyXL_v1.safetensors, pipeline configs for SD 1.5 and that SDXL, and an empty Hugging Face home."""
    install = tmp_path_factory.mktemp("stable-diffusion-webui")
    folder = install / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    (folder / "dreamMix_v7.safetensors").symlink_to(cached_checkpoint("sd15"))
    whole = write(tmp_path_factory.mktemp("whole") / "whole.safetensors", SD15).read_bytes()
    (folder / "halfDownloaded.safetensors").write_bytes(whole[:-400])  # an interrupted copy
    (folder / "notes.safetensors").write_text("my favourite prompts\n" * 40)  # a text file renamed
    comfyui = tmp_path_factory.mktemp("ComfyUI")
    (comfyui / "models" / "checkpoints").mkdir(parents=True)
    (comfyui / "models" / "checkpoints" / "tinyXL_v1.safetensors").symlink_to(cached_checkpoint("sdxl-small"))
    configs = write_small_sdxl_config(tmp_path_factory.mktemp("configs"))
    shutil.copytree(PRESET_PIPELINES / "sd15", configs / "sd15")
    return install, comfyui, configs, tmp_path_factory.mktemp("empty-hf-home")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_model_dir, own_checkpoint_app):
    """app.py in a process of its own, pointed at both installs (--models-dir and GATOR_MODEL_FOLDERS), offline."""
    install, comfyui, configs, hf_home = own_checkpoint_app
    processes = AppProcesses(tmp_path_factory.mktemp("own-checkpoint-app"), tiny_model_dir)
    url, _ = processes.start("--models-dir", str(install), GATOR_MODEL_FOLDERS=str(comfyui),
                             GATOR_PIPELINE_CONFIGS=str(configs), HF_HOME=str(hf_home),
                             HF_HUB_CACHE=str(hf_home / "hub"), HF_HUB_OFFLINE="1")
    yield url
    processes.stop()
    assert not any(hf_home.rglob("*")), "something was written to the Hugging Face cache"


def test_listed_and_generated_through_the_api_and_the_browser(app_url, own_checkpoint_app, desktop):
    client = Client(app_url, verbose=False)
    status = client.predict(api_name="/status")
    entry = next(m for m in status["models"] if m["id"] == "dreamMix_v7")
    assert entry["available"] and entry["family"] == "sd15" and entry["backend"] == "diffusers", entry
    _, info = client.predict("a lighthouse at dusk", width=64, height=64, num_inference_steps=2, seed=3,
                             model="dreamMix_v7", api_name="/generate_image")
    assert info["status"] == "success" and info["model"] == "dreamMix_v7", info
    assert not info.get("fallback_reason") and not info.get("warnings"), info

    # bad files: a sentence each on the status list and through the API; the app goes on
    bad = {m["id"]: m for m in status["models"] if not m["available"]}
    assert "truncated" in bad["halfDownloaded"]["note"] and "not a safetensors file" in bad["notes"]["note"]
    with pytest.raises(Exception, match="halfDownloaded.safetensors is truncated"):
        client.predict("a fox", width=64, height=64, num_inference_steps=2, model="halfDownloaded",
                       api_name="/generate_image")

    page = desktop
    generate_with(page, app_url, "dreamMix_v7")
    assert "dreamMix_v7" in wait_text(page, "result-details", "dreamMix_v7")
    # a checkpoint copied in while the app runs: the status tab's Rescan lists it
    install = own_checkpoint_app[0]
    write(install / "models/Stable-diffusion/freshMix_v1.safetensors", SD15)  # an SD 1.5 header is enough
    page.get_by_role("tab", name="System status").click()
    assert "freshMix_v1" not in page.locator("#status-view").inner_text()
    page.click("#status-rescan")
    wait_text(page, "status-models", "freshMix_v1")
    row = page.locator("#status-models tr", has_text="freshMix_v1").inner_text()
    assert "SD 1.5" in row and "yes" in row, row
    row = page.locator("#status-models tr", has_text="halfDownloaded").inner_text()
    assert "no" in row and "is truncated" in row, row


def test_an_sdxl_shaped_checkpoint_is_listed_and_generated_through_the_api_and_the_browser(app_url, desktop):
    """SDXL the same way, with a smaller random SDXL-shaped file in a ComfyUI layout (a full SDXL is 7 GB): the
    key names and layout of SDXL base, narrower layers, loaded with configs of those sizes (GATOR_PIPELINE_CONFIGS)."""
    client = Client(app_url, verbose=False)
    entry = next(m for m in client.predict(api_name="/status")["models"] if m["id"] == "tinyXL_v1")
    assert entry["available"] and entry["family"] == "sdxl", entry
    _, info = client.predict("a lighthouse at dusk", width=64, height=64, num_inference_steps=2, seed=3,
                             model="tinyXL_v1", api_name="/generate_image")
    assert info["status"] == "success" and info["model"] == "tinyXL_v1" and not info.get("fallback_reason"), info
    generate_with(desktop, app_url, "tinyXL_v1")


def test_an_a1111_png_finds_the_checkpoint_by_its_model_hash(app_url, desktop, tmp_path):
    """An A1111 image made with this very file under another name: Send to Image picks tinyXL_v1 by the image's
    Model hash, as A1111 does, once the app has hashed the file (when it first loads; a background read)."""
    digest = sha256_of(cached_checkpoint("sdxl-small"))[:10]
    png = png_with(tmp_path / "theirs.png", parameters=f"a harbour at dawn\nSteps: 2, Sampler: Euler, CFG scale: 7, "
                                                       f"Seed: 4, Size: 64x64, Model hash: {digest}, "
                                                       "Model: harbourMix_final")
    page = desktop
    generate_with(page, app_url, "tinyXL_v1")  # loaded at least once: hashed
    page.locator("#png-info-box").get_by_text("PNG info").click()
    page.locator("#png-info-image input[type=file]").set_input_files(str(png))
    wait_text(page, "png-info-text", "Read from the A1111 parameters text")
    for _ in range(12):  # the hash may still be on its way
        page.click("#png-info-send")
        text = wait_text(page, "png-info-text", "loaded into the settings")
        if "is here as tinyXL_v1" in text:
            break
        page.wait_for_timeout(2_000)
    assert "its model harbourMix_final is here as tinyXL_v1 (the same Model hash)" in text
    assert "tinyXL_v1" in page.locator("#model input").input_value()
