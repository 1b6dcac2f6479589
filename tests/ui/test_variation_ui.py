"""The variation seed in the browser: the box's seed and strength reach the engine, the details and the PNG say
them, and Reuse puts them back (an image made without one sets the strength back to 0)."""
from __future__ import annotations

from tests.ui.conftest import (fill_image_form, generate_and_read, needs_chromium, open_app, send_first_result,
                               set_number, set_number_settled, set_slider, wait_text)

pytestmark = needs_chromium


def strength(page) -> str:
    return page.locator("#variation-strength input[type=number]").input_value()


def test_a_variation_is_made_recorded_and_reused(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    fill_image_form(page, "a paper boat", steps=2, seed=51)
    page.locator("#variation-box").get_by_text("Variation seed").first.click()
    page.locator("#variation-seed input").wait_for(state="visible")
    set_number_settled(page, "variation-seed", 77)
    set_slider(page, "variation-strength", 0.25)
    assert "Variation seed: 77, Variation seed strength: 0.25" in generate_and_read(
        page, local_app, "Variation seed 77 at 0.25", "-51-a-paper-boat")

    set_slider(page, "variation-strength", 0)
    set_number(page, "variation-seed", 1)
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    assert page.locator("#variation-seed input").input_value() == "77" and strength(page) == "0.25"

    set_slider(page, "variation-strength", 0)
    fill_image_form(page, "a plain boat", steps=2, seed=52)
    page.click("#generate")
    wait_text(page, "result-details", "Seed 52")
    assert "Variation" not in page.locator("#result-details").inner_text()
    set_slider(page, "variation-strength", 0.5)
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    assert strength(page) == "0"  # made without one: none again
