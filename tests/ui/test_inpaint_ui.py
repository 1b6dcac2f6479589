"""Inpaint and outpaint in the browser at 1440x900: a result sent to inpaint, a mask painted on it with the
editor's brush, and only the painted part changes; outpaint a side."""
from __future__ import annotations

import numpy as np
from PIL import Image

from tests.ui.conftest import (fill_image_form, generate_one, history_count, needs_chromium, open_app,
                               send_first_result, set_number, set_number_settled, wait_progress, wait_text,
                               wait_until)

pytestmark = needs_chromium


def newest_png(app) -> Image.Image:
    return Image.open(max(app.output_dir.rglob("*.png"), key=lambda p: p.stat().st_mtime)).convert("RGB")


def open_inpaint(page) -> None:
    page.locator("#inpaint-box").get_by_text("Inpaint / outpaint").click()
    page.locator("#mask-editor").wait_for()


def paint_left_middle(page) -> None:
    """A short white stroke on the left of the picture, with the editor's brush."""
    page.locator("#mask-editor button[aria-label=Brush]").click()
    box = page.locator("#mask-editor canvas").last.bounding_box()
    x, y = box["x"] + box["width"] / 2 - box["height"] * 0.3, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(10):
        page.mouse.move(x + i * 2, y + (i % 2))
    page.mouse.up()


def test_a_painted_mask_redraws_only_what_was_painted(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    fill_image_form(page, "a stone wall", width=256, height=256, steps=2, seed=31)
    page.click("#generate")
    wait_progress(page, "Done")
    assert wait_until(lambda: history_count(page) == 1, 10)
    picture = newest_png(local_app)
    send_first_result(page, "send-to-inpaint", "is in the inpaint box")  # on the editor's canvas, its own size
    page.locator("#mask-editor button[aria-label=Brush]").wait_for()
    page.wait_for_timeout(500)
    paint_left_middle(page)
    set_number(page, "mask-blur", 0)
    set_number(page, "steps", 4)
    page.locator("#masked-content").get_by_text("fill", exact=True).click()  # A1111's: the colours around it
    page.click("#generate")
    wait_progress(page, "Done", 60_000)
    assert wait_until(lambda: history_count(page) == 2, 30)  # the gallery redraw can lag on a busy machine
    newest = max(local_app.output_dir.rglob("*.png"), key=lambda p: p.stat().st_mtime)
    assert "Masked content: fill" in Image.open(newest).text["parameters"]
    result = np.asarray(newest_png(local_app)).astype(int)
    original = np.asarray(picture).astype(int)
    assert result.shape == original.shape
    assert np.array_equal(result[:, 192:], original[:, 192:])  # the right quarter was never painted
    assert not np.array_equal(result[:, :128], original[:, :128])  # the stroke's side was redrawn
    assert "Denoising strength 0.75" in wait_text(page, "result-details", "Denoising strength")


def test_send_to_inpaint_then_outpaint_a_side(desktop, local_app):
    page = desktop
    generate_one(page, local_app.url, "a meadow", steps=2, seed=32)
    send_first_result(page, "send-to-inpaint", "is in the inpaint box")
    set_number_settled(page, "outpaint-right", 32)  # the box has just opened with the picture
    page.click("#generate")
    wait_progress(page, "Done", 60_000)
    assert "96×64" in wait_text(page, "result-details", "96×64")
