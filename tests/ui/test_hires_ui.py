"""The hires fix in the browser: its steps are marked on the progress line and the result is the larger size."""
from __future__ import annotations

from tests.ui.conftest import (fill_image_form, needs_chromium, open_app, progress_seen, send_first_result,
                               set_number, set_slider, wait_progress, wait_text, watch_progress)

pytestmark = needs_chromium


def test_the_hires_pass_says_so_and_doubles_the_size(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    fill_image_form(page, "a castle on a hill", steps=4, seed=21)
    page.locator("#hires-box").get_by_text("Hires fix").click()
    for elem_id, value in (("hires-scale", 2), ("hires-steps", 40)):  # 40 x 0.5 = 20 steps: long enough to be seen
        set_slider(page, elem_id, value)
    page.locator("#hires-prompt textarea").fill("a castle on a hill at night")  # A1111's hires prompt
    watch_progress(page)
    page.click("#generate")
    wait_progress(page, "Done", 60_000)
    lines = progress_seen(page)
    assert any("Hires fix · Step" in line for line in lines), lines[-5:]
    details = wait_text(page, "result-details", "128×128")
    assert "Denoising strength 0.5" in details, details
    # Reuse gives this image again: the size asked for (64) with its hires fix, not 128 without one
    set_slider(page, "hires-scale", 1)
    set_number(page, "width", 512)
    page.locator("#hires-prompt textarea").fill("")
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    assert page.locator("#width input[type=number]").input_value() == "64"
    assert page.locator("#hires-scale input[type=number]").input_value() == "2"
    assert page.locator("#hires-steps input[type=number]").input_value() == "40"
    assert page.locator("#hires-prompt textarea").input_value() == "a castle on a hill at night"
