"""Clip skip in the browser: the slider's value reaches the engine, the details and the PNG say it, and Reuse puts
it back (and an image made without one sets it back to 1)."""
from __future__ import annotations

from tests.ui.conftest import (fill_image_form, generate_and_read, generate_one, needs_chromium, open_app,
                               send_first_result, set_slider)

pytestmark = needs_chromium


def test_clip_skip_is_used_recorded_and_reused(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    fill_image_form(page, "a paper crane", steps=2, seed=31)
    set_slider(page, "clip-skip", 2)
    assert "Clip skip: 2" in generate_and_read(page, local_app, "Clip skip 2", "-31-a-paper-crane")
    set_slider(page, "clip-skip", 1)
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    assert page.locator("#clip-skip input[type=number]").input_value() == "2"
    generate_one(page, local_app.url, "a plain crane", steps=2, seed=32)  # made without one: Reuse sets 1 again
    set_slider(page, "clip-skip", 2)
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    assert page.locator("#clip-skip input[type=number]").input_value() == "1"
