"""PNG info through the running app: drop an A1111 or ComfyUI PNG, read its parameters, Send to Image fills
the form; the same through /png_info."""
from __future__ import annotations

import json

from gradio_client import Client, handle_file

from engine.workflows import bind, load_template
from tests.ui.conftest import needs_chromium, open_app, wait_progress, wait_text
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


def opened_png_info(page, url: str):
    """The app at `url` with its PNG info box open; the box's file input."""
    open_app(page, url)
    page.locator("#png-info-box").get_by_text("PNG info").click()
    return page.locator("#png-info-image input[type=file]")


def send_to_image(page, drop, path, shows: str) -> str:
    """Drop the PNG at `path`, wait until PNG info shows `shows`, press Send to Image; the sentence it says."""
    drop.set_input_files(str(path))
    wait_text(page, "png-info-text", shows)
    page.click("#png-info-send")
    return wait_text(page, "png-info-text", "loaded into the settings")


HIRES_TEXT = ("a castle\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x64, Denoising strength: 0.5, "
              "Hires upscale: 2, Hires upscaler: Lanczos, Hires checkpoint: {checkpoint}")


@needs_chromium
def test_send_to_image_sets_the_hires_checkpoint_or_says_it_is_not_here(desktop, local_app, tmp_path):
    page = desktop
    drop = opened_png_info(page, local_app.url)
    checkpoint = page.locator("#hires-checkpoint input")
    here = png_with(tmp_path / "here.png", parameters=HIRES_TEXT.format(checkpoint="tiny [0a1b]"))
    send_to_image(page, drop, here, "checkpoint tiny")  # A1111's "name [hash]" read as the name
    assert checkpoint.input_value().startswith("Tiny demo model")
    gone = png_with(tmp_path / "gone.png", parameters=HIRES_TEXT.format(checkpoint="farXL [9f]"))
    note = send_to_image(page, drop, gone, "checkpoint farXL")
    assert "its hires checkpoint farXL is not here: Use same checkpoint instead" in note
    assert checkpoint.input_value() == "Use same checkpoint"


@needs_chromium
def test_send_to_image_sets_a1111s_hires_resize_size_and_then_turns_it_off(desktop, local_app, tmp_path):
    page = desktop
    drop = opened_png_info(page, local_app.url)
    resized = ("a castle\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x96, Denoising strength: 0.5, "
               "Hires resize: 128x128, Hires upscaler: Lanczos")
    send_to_image(page, drop, png_with(tmp_path / "resized.png", parameters=resized), "Hires fix to 128×128")
    assert page.locator("#hires-resize-width input[type=number]").input_value() == "128"
    assert page.locator("#hires-resize-height input[type=number]").input_value() == "128"
    assert page.locator("#hires-scale input[type=number]").input_value() == "1"
    send_to_image(page, drop, png_with(tmp_path / "plain.png", parameters=A1111_TEXT), "a castle on a hill")
    assert page.locator("#hires-resize-width input[type=number]").input_value() == "0"  # an image without: off


@needs_chromium
def test_send_to_image_puts_a_default_in_place_of_a_sampler_or_vae_this_app_lacks(desktop, local_app, tmp_path):
    page = desktop
    drop = opened_png_info(page, local_app.url)
    foreign = ("a castle\nSteps: 4, Sampler: DPM adaptive, CFG scale: 7, Seed: 5, Size: 64x64, "
               "VAE: vae-ft-mse-840000-ema-pruned")
    note = send_to_image(page, drop, png_with(tmp_path / "foreign.png", parameters=foreign), "DPM adaptive")
    assert "its sampler DPM adaptive is not here: euler instead" in note
    assert "its vae vae-ft-mse-840000-ema-pruned is not here: auto instead" in note
    assert page.locator("#seed input").input_value() == "5"  # the rest is loaded as usual
    page.click("#generate")  # a form the dropdowns accept: Generate runs
    wait_progress(page, "Done")


def test_the_api_reads_a_comfyui_png(local_app, tmp_path):
    graph = bind(load_template("checkpoint_generic"), {"prompt": "a red fox", "seed": 77, "steps": 18,
                                                       "ckpt_name": "sd15.safetensors"})
    path = png_with(tmp_path / "comfy.png", prompt=json.dumps(graph))
    info = Client(local_app.url, verbose=False).predict(handle_file(str(path)), api_name="/png_info")
    assert info["source"] == "comfyui workflow" and info["prompt"] == "a red fox" and info["seed"] == 77
