"""A1111's Skip in the browser: the image being made ends unsaved, the progress line says so, and the batch goes on
with the next images, which are saved and shown; Stop still ends everything."""
from __future__ import annotations

from tests.ui.conftest import (fill_image_form, history_count, needs_chromium, open_app, set_number, wait_progress,
                               wait_step, wait_until)
from tests.ui.test_image_tab import WATCH_JS

pytestmark = needs_chromium


def test_skip_ends_one_image_and_the_batch_goes_on(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    # 60 steps at 256 px (about 4 s an image here): still running when a busy machine's Skip click arrives
    fill_image_form(page, "a skipped harbour", width=256, height=256, steps=60, seed=40)
    set_number(page, "batch", 3)
    page.evaluate(WATCH_JS)
    page.click("#generate")
    wait_step(page, 3)
    page.click("#skip")
    wait_progress(page, "Image 3/3 · Done", timeout_ms=60_000)
    lines = page.evaluate("window.__seen.lines")
    skipped = [line for line in lines if "skipped" in line]
    assert skipped and skipped[0].endswith("skipped, on to the next"), lines
    assert wait_until(lambda: history_count(page) == 2, 10), history_count(page)
    saved = [p for p in local_app.saved_images() if "a-skipped-harbour" in p.name]
    assert len(saved) == 2  # the skipped image left no file


def test_stop_after_skip_ends_the_batch(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    fill_image_form(page, "a stopped lighthouse", width=256, height=256, steps=150, seed=41)
    set_number(page, "batch", 3)
    page.click("#generate")
    wait_step(page, 3)
    page.click("#skip")
    wait_progress(page, "Image 2/3 · Step", timeout_ms=30_000)
    page.click("#stop")
    wait_progress(page, "Stopped", timeout_ms=10_000)
    assert not [p for p in local_app.saved_images() if "a-stopped-lighthouse" in p.name]
    assert history_count(page) == 0
