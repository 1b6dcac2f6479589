"""FreeU, Tiling and CFG rescale in the browser: the boxes under Clip skip turn FreeU and Tiling on and the slider
beside Clip skip sets the rescale, the result says so, and Reuse parameters brings them back (and clears them for an
image made without)."""
from __future__ import annotations

from tests.ui.conftest import (fill_image_form, needs_chromium, open_app, send_first_result, set_number, wait_progress,
                               wait_text, wait_until)

pytestmark = needs_chromium


def test_freeu_tiling_and_cfg_rescale_are_used_recorded_and_reused(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    fill_image_form(page, "a lighthouse at dusk", steps=2, seed=31)
    box = page.locator("#freeu input[type=checkbox]")
    box.check()
    tiling = page.locator("#tiling input[type=checkbox]")
    tiling.check()
    set_number(page, "cfg-rescale", 0.7)
    page.click("#generate")
    wait_progress(page, "Done")
    assert "**FreeU** on" not in wait_text(page, "result-details", "FreeU on")  # rendered, not raw markdown
    wait_text(page, "result-details", "CFG rescale 0.7")
    wait_text(page, "result-details", "Tiling on")
    box.uncheck()
    tiling.uncheck()
    set_number(page, "cfg-rescale", 0)
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    assert wait_until(box.is_checked, 5) and wait_until(tiling.is_checked, 5)
    rescale = page.locator("#cfg-rescale input[type=number]")
    assert wait_until(lambda: rescale.input_value() == "0.7", 5), rescale.input_value()
