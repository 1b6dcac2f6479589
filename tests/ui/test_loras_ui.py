"""LoRAs and VAEs in the browser: the picker adds A1111's <lora:name:weight> tag to the prompt (a second
pick of the same LoRA changes its weight), the image is made with it (the same pixels as the API's
`loras`), the details and Reuse carry it, and the status tab lists the LoRAs; a VAE file is chosen from
its own list."""
from __future__ import annotations

import numpy as np
import pytest
from diffusers import UNet2DConditionModel
from gradio_client import Client
from PIL import Image

from engine.config import Settings
from tests.support.tiny_lora import write_tiny_lora
from tests.support.tiny_vae import write_tiny_vae
from tests.ui.conftest import (choose, fill_image_form, needs_chromium, open_app, set_number, start_app, stop_app,
                               wait_progress, wait_text)

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def lora_app(tmp_path_factory, tiny_model_dir):
    models = tmp_path_factory.mktemp("lora-models")
    write_tiny_lora(models / "Lora" / "tinyDetail.safetensors",
                    UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet"), seed=1)
    write_tiny_vae(models / "VAE" / "tinyBright.safetensors", tiny_model_dir)
    app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path_factory.mktemp("out"),
                             tiny_model_dir=tiny_model_dir, models_dir=models))
    yield app
    stop_app(app)


def prompt_text(page) -> str:
    return page.locator("#prompt textarea").input_value()


def test_the_picker_adds_the_tag_and_the_image_is_made_with_it(desktop, lora_app):
    page = desktop
    open_app(page, lora_app.url)
    fill_image_form(page, "a fox in the snow", steps=3, seed=21)
    choose(page, "lora-pick", "tinyDetail · unknown family")
    set_number(page, "lora-weight", 0.8)
    page.click("#lora-add")
    page.wait_for_function("() => document.querySelector('#prompt textarea').value.includes('<lora:tinyDetail:0.8>')")
    set_number(page, "lora-weight", 0.5)
    page.click("#lora-add")  # the same LoRA again: its weight changes, no second tag
    page.wait_for_function("() => document.querySelector('#prompt textarea').value.includes('<lora:tinyDetail:0.5>')")
    assert prompt_text(page) == "a fox in the snow <lora:tinyDetail:0.5>"
    page.click("#generate")
    wait_progress(page, "Done", 60_000)
    assert "tinyDetail (0.5)" in wait_text(page, "result-details", "LoRAs")
    browser_png = max(lora_app.output_dir.rglob("*.png"), key=lambda p: p.stat().st_mtime)

    path, info = Client(lora_app.url, verbose=False).predict(
        "a fox in the snow", width=64, height=64, num_inference_steps=3, seed=21,
        loras=[{"name": "tinyDetail", "weight": 0.5}], api_name="/generate_image")
    assert info["loras"] == [{"name": "tinyDetail", "weight": 0.5}]
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")),
                          np.asarray(Image.open(browser_png).convert("RGB")))

    # Reuse puts the LoRA back into the prompt as its tag
    page.locator("#prompt textarea").fill("something else")
    page.locator("#history .thumbnail-item").first.click()
    wait_text(page, "picked-params", "tinyDetail (0.5)")
    page.click("#reuse-parameters")
    page.wait_for_function("() => document.querySelector('#prompt textarea').value.includes('<lora:tinyDetail:0.5>')")
    assert prompt_text(page) == "a fox in the snow <lora:tinyDetail:0.5>"

    page.get_by_role("tab", name="System status").click()
    assert "tinyDetail" in wait_text(page, "status-loras", "tinyDetail")


def test_an_unknown_lora_tag_is_a_sentence(desktop, lora_app):
    page = desktop
    open_app(page, lora_app.url)
    fill_image_form(page, "a fox <lora:missingOne:1>", steps=2, seed=3)
    page.click("#generate")
    line = wait_progress(page, "Unknown LoRA", 30_000)
    assert "missingOne" in line and "tinyDetail" in line, line


def test_a_vae_file_is_chosen_from_its_list(desktop, lora_app):
    page = desktop
    open_app(page, lora_app.url)
    fill_image_form(page, "a fox", steps=2, seed=5)
    choose(page, "vae", "tinyBright")
    page.click("#generate")
    wait_progress(page, "Done", 60_000)
    assert "VAE tinyBright" in wait_text(page, "result-details", "tinyBright")
