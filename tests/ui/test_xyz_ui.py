"""The X/Y/Z plot in the browser: the box's axes, Plot through the Image tab's queue, a progress line per cell,
the grid and the four images in the history."""
from __future__ import annotations

from PIL import Image

from engine.xyz_plot import GRID_SUFFIX
from tests.ui.conftest import (SCREENSHOTS, choose, fill_image_form, history_count, needs_chromium, open_app,
                               progress_seen, wait_progress, wait_text, wait_until, watch_progress)


def set_values(page, axis: str, text: str) -> None:
    page.locator(f"#xyz-{axis}-values textarea, #xyz-{axis}-values input").first.fill(text)


@needs_chromium
def test_steps_by_seed_makes_a_grid_and_four_images_in_the_history(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    fill_image_form(page, "a castle on a hill", steps=2)
    page.locator("#xyz-box").get_by_text("X/Y/Z plot").click()
    choose(page, "xyz-x-type", "Steps")
    set_values(page, "x", "2,3")
    choose(page, "xyz-y-type", "Seed")
    set_values(page, "y", "1,2")
    watch_progress(page)
    page.click("#xyz-plot")
    wait_progress(page, "X/Y/Z plot done: 4 images", 60_000)
    lines = progress_seen(page)
    assert any(line.startswith("Cell 4/4") for line in lines), lines[-8:]
    assert wait_until(lambda: history_count(page) == 5, 10)  # the grid first, then the cells, newest first
    details = wait_text(page, "result-details", "X/Y/Z plot of 4 images")
    assert "Steps 2,3" in details and "Seed 1,2" in details, details
    grid = max((p for p in local_app.saved_images() if GRID_SUFFIX in p.name), key=lambda p: p.stat().st_mtime)
    assert Image.open(grid).size[0] > 128 and "X Type: Steps" in Image.open(grid).text["parameters"]
    shown = page.locator("#image-output img").first  # the grid, not the last cell, is the picture on show
    assert wait_until(lambda: shown.evaluate("img => img.naturalWidth") == Image.open(grid).width, 10)
    page.screenshot(path=str(SCREENSHOTS / "xyz_plot_grid.png"), full_page=True)

