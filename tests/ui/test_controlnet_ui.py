"""ControlNet in the browser: a control image uploaded into the ControlNet box shows its canny map, the ControlNet is
picked from its list, Generate makes the image with it (the same pixels as /controlnet), the details and the PNG say
so, and Reuse parameters puts the ControlNet's values back."""
from __future__ import annotations

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

from tests.integration.test_controlnet_local import control_picture
from tests.ui.conftest import fill_image_form, needs_chromium, open_app, set_number, wait_progress, wait_text
from tests.ui.test_loras_ui import choose

pytestmark = needs_chromium


def test_an_uploaded_control_image_steers_the_picture(desktop, controlnet_app, tmp_path):
    page = desktop
    control_picture().save(tmp_path / "control.png")
    open_app(page, controlnet_app.url)
    fill_image_form(page, "a fox in the snow", steps=3, seed=31)
    page.locator("#controlnet-box").get_by_text("ControlNet").first.click()
    page.locator("#control-image input[type=file]").set_input_files(str(tmp_path / "control.png"))
    page.locator("#control-map img").first.wait_for()  # the canny map is shown beside it
    choose(page, "controlnet-model", "tinyCanny · unknown family")
    set_number(page, "controlnet-weight", 0.8)
    page.click("#generate")
    wait_progress(page, "Done", 60_000)
    details = wait_text(page, "result-details", "ControlNet")
    assert "tinyCanny (canny, weight 0.8, steps 0 to 1)" in details, details
    made = max(controlnet_app.output_dir.rglob("*.png"), key=lambda p: p.stat().st_mtime)
    text = Image.open(made).text["parameters"]
    assert 'ControlNet 0: "Module: canny, Model: tinyCanny, Weight: 0.8' in text
    # the browser's picture is the API's for the same values
    path, info = Client(controlnet_app.url, verbose=False).predict(
        handle_file(str(tmp_path / "control.png")), "a fox in the snow", "tinyCanny", controlnet_weight=0.8,
        width=64, height=64, num_inference_steps=3, seed=31, api_name="/controlnet")
    assert info["controlnet"] == "tinyCanny" and np.array_equal(np.asarray(Image.open(path)), np.asarray(
        Image.open(made)))
    # Reuse parameters: the ControlNet's values come back (the control image is not in the PNG)
    set_number(page, "controlnet-weight", 1.5)
    page.locator("#history .thumbnail-item").first.click()
    page.click("#reuse-parameters")
    wait_text(page, "picked-info", f"Parameters of {made.name} loaded into the settings")
    page.wait_for_function("() => document.querySelector('#controlnet-weight input[type=number]').value === '0.8'")
    assert page.locator("#controlnet-model input").input_value() == "tinyCanny · unknown family"
