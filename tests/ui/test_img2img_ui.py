"""Image to image in the browser at 1440x900: a result sent from the history becomes the init image and is
redrawn; an uploaded image is redrawn at its own size; Vary (Fooocus's) redraws a picked result in one click."""
from __future__ import annotations

import re

from engine.outputs import read_parameters
from tests.integration.test_img2img_local import init_image
from tests.ui.conftest import (fill_image_form, generate_one, needs_chromium, open_app, send_first_result, set_number,
                               set_slider, wait_progress, wait_text, wait_until)

pytestmark = needs_chromium


def test_a_result_sent_from_the_history_is_redrawn(desktop, local_app):
    page = desktop
    generate_one(page, local_app.url, "a lighthouse", steps=2, seed=12)
    send_first_result(page, "send-to-img2img", "is the init image now")
    page.locator("#init-image img").first.wait_for()  # the box opened with the picture in it
    set_slider(page, "strength", 0.5)  # the box has just opened with the picture
    set_number(page, "steps", 4)
    page.click("#generate")
    wait_progress(page, "Done")
    details = wait_text(page, "result-details", "Denoising strength")
    assert "Denoising strength 0.5" in details and "64×64" in details, details


def test_vary_redraws_the_picked_result_with_its_settings_and_a_new_seed(desktop, local_app):
    page = desktop
    generate_one(page, local_app.url, "a red barn", steps=4, seed=21)
    first = read_parameters(re.search(r"Saved to (\S+\.png)", page.locator("#result-details").inner_text()).group(1))
    page.locator("#prompt textarea").fill("something else")  # the form is refilled from the picked image
    send_first_result(page, "vary-strong", "Varying")
    wait_progress(page, "Done")
    details = wait_text(page, "result-details", "Denoising strength 0.85")
    varied = read_parameters(re.search(r"Saved to (\S+\.png)", details).group(1))
    assert varied["prompt"] == first["prompt"] == "a red barn" and varied["strength"] == 0.85
    assert (varied["width"], varied["height"], varied["num_inference_steps"]) == (64, 64, 4)
    assert varied["seed"] != first["seed"] and page.locator("#strength input[type=number]").input_value() == "0.85"


def test_an_uploaded_image_is_redrawn_at_its_own_size(desktop, local_app, tmp_path):
    page = desktop
    init_image(100, 70).save(tmp_path / "init.png")
    open_app(page, local_app.url)
    fill_image_form(page, "a harbour", steps=4, seed=13)
    page.locator("#img2img-box").get_by_text("Image to image").click()
    page.locator("#init-image input[type=file]").set_input_files(str(tmp_path / "init.png"))
    page.locator("#init-image img").first.wait_for()
    page.click("#generate")
    wait_progress(page, "Done")
    assert "96×64" in wait_text(page, "result-details", "Denoising strength")


def test_upscale_puts_a_larger_copy_first_in_the_history(desktop, local_app):
    page = desktop
    generate_one(page, local_app.url, "a lantern", steps=2, seed=14)
    send_first_result(page, "upscale-picked", "upscaled to 128×128")
    page.locator("#history .thumbnail-item").nth(1).wait_for()

    def pick_first() -> bool:  # (a click while the gallery is still being redrawn may land on the old first item)
        page.locator("#history .thumbnail-item").first.click()
        return wait_until(lambda: "Upscaled ×2 with Lanczos" in page.locator("#picked-params").inner_text(), 2)

    assert wait_until(pick_first, 10), page.locator("#picked-params").inner_text()
