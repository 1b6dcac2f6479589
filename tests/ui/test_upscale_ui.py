"""Upscale in the browser with a model upscaler: the Upscaler list offers the ESRGAN-family file of the model
folder beside Lanczos (so does the Hires upscaler list), and a picked result upscaled with it lands first in the
history at the exact size, its PNG naming the upscaler."""
from __future__ import annotations

import pytest
from PIL import Image

from engine.config import Settings
from tests.support.tiny_upscaler import write_compact
from tests.ui.conftest import (generate_one, history_count, needs_chromium, send_first_result, set_number, start_app,
                               stop_app, wait_text, wait_until)
from tests.ui.test_loras_ui import choose

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def upscaler_app(tmp_path_factory, tiny_model_dir):
    models = tmp_path_factory.mktemp("upscaler-models")
    write_compact(models / "ESRGAN" / "4x_tiny.safetensors")
    app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path_factory.mktemp("out"),
                             tiny_model_dir=tiny_model_dir, models_dir=models))
    yield app
    stop_app(app)


def test_a_picked_result_is_upscaled_with_the_model_upscaler(desktop, upscaler_app):
    page = desktop
    generate_one(page, upscaler_app.url, "a lantern", steps=2, seed=15)
    page.locator("#hires-box").get_by_text("Hires fix").click()
    page.locator("#hires-upscaler input").click()
    assert page.get_by_role("option", name="4x_tiny").count() == 1  # the hires fix may use it too
    page.keyboard.press("Escape")
    send_first_result(page, "reuse-parameters", "loaded into the settings")  # picks the result
    choose(page, "upscaler", "4x_tiny")
    set_number(page, "upscale-by", 3)
    page.click("#upscale-picked")
    wait_text(page, "picked-info", "upscaled to 192×192")
    assert wait_until(lambda: history_count(page) == 2)
    newest = max(upscaler_app.saved_images(), key=lambda p: p.stat().st_mtime)
    assert Image.open(newest).size == (192, 192)
    assert "Postprocess upscale by: 3.0, Postprocess upscaler: 4x_tiny" in Image.open(newest).text["parameters"]
    page.get_by_role("tab", name="System status").click()  # the status tab lists it beside Lanczos
    assert "Lanczos" in wait_text(page, "status-extras", "4x_tiny")
