"""FreeU in the browser: the box under Clip skip turns it on, the result says so, and Reuse parameters brings it
back (and clears it for an image made without)."""
from __future__ import annotations

from tests.ui.conftest import (fill_image_form, needs_chromium, open_app, send_first_result, wait_progress, wait_text,
                               wait_until)

pytestmark = needs_chromium


def test_freeu_is_used_recorded_and_reused(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    fill_image_form(page, "a lighthouse at dusk", steps=2, seed=31)
    box = page.locator("#freeu input[type=checkbox]")
    box.check()
    page.click("#generate")
    wait_progress(page, "Done")
    assert "**FreeU** on" not in wait_text(page, "result-details", "FreeU on")  # rendered, not raw markdown
    box.uncheck()
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    assert wait_until(box.is_checked, 5)
