"""PNG info through the running app: drop an A1111 or ComfyUI PNG, read its parameters, Send to Image fills
the form; the same through /png_info."""
from __future__ import annotations

import json

from gradio_client import Client, handle_file

from engine.workflows import bind, load_template
from tests.ui.conftest import needs_chromium, open_app, wait_text
from tests.unit.test_png_info import A1111_TEXT, png_with


@needs_chromium
def test_a_dropped_a1111_png_fills_the_form(desktop, local_app, tmp_path):
    page = desktop
    open_app(page, local_app.url)
    page.locator("#png-info-box").get_by_text("PNG info").click()
    page.locator("#png-info-image input[type=file]").set_input_files(str(png_with(tmp_path / "a.png",
                                                                                  parameters=A1111_TEXT)))
    text = wait_text(page, "png-info-text", "Read from the A1111 parameters text")
    assert "a castle on a hill" in text and "1234" in text
    page.click("#png-info-send")
    wait_text(page, "png-info-text", "loaded into the settings")
    assert page.locator("#prompt textarea").input_value() == "a castle on a hill, <lora:detail:0.6>"
    assert page.locator("#seed input").input_value() == "1234"
    assert page.locator("#width input").input_value() == "512"


HIRES_TEXT = ("a castle\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x64, Denoising strength: 0.5, "
              "Hires upscale: 2, Hires upscaler: Lanczos, Hires checkpoint: {checkpoint}")


@needs_chromium
def test_send_to_image_sets_the_hires_checkpoint_or_says_it_is_not_here(desktop, local_app, tmp_path):
    page = desktop
    open_app(page, local_app.url)
    page.locator("#png-info-box").get_by_text("PNG info").click()
    drop = page.locator("#png-info-image input[type=file]")
    checkpoint = page.locator("#hires-checkpoint input")
    drop.set_input_files(str(png_with(tmp_path / "here.png", parameters=HIRES_TEXT.format(checkpoint="tiny [0a1b]"))))
    wait_text(page, "png-info-text", "checkpoint tiny")  # A1111's "name [hash]" read as the name
    page.click("#png-info-send")
    wait_text(page, "png-info-text", "loaded into the settings")
    assert checkpoint.input_value().startswith("Tiny demo model")
    drop.set_input_files(str(png_with(tmp_path / "gone.png", parameters=HIRES_TEXT.format(checkpoint="farXL [9f]"))))
    wait_text(page, "png-info-text", "checkpoint farXL")
    page.click("#png-info-send")
    note = wait_text(page, "png-info-text", "loaded into the settings")
    assert "its hires checkpoint farXL is not here: Use same checkpoint instead" in note
    assert checkpoint.input_value() == "Use same checkpoint"


def test_the_api_reads_a_comfyui_png(local_app, tmp_path):
    graph = bind(load_template("checkpoint_generic"), {"prompt": "a red fox", "seed": 77, "steps": 18,
                                                       "ckpt_name": "sd15.safetensors"})
    path = png_with(tmp_path / "comfy.png", prompt=json.dumps(graph))
    info = Client(local_app.url, verbose=False).predict(handle_file(str(path)), api_name="/png_info")
    assert info["source"] == "comfyui workflow" and info["prompt"] == "a red fox" and info["seed"] == 77
