"""The X/Y/Z plot in the browser: the box's axes, Plot through the Image tab's queue, a progress line per cell,
the grid and the four images in the history; and /xyz_plot through the API."""
from __future__ import annotations

import pytest
from gradio_client import Client
from PIL import Image

from engine.xyz_plot import GRID_SUFFIX
from tests.ui.conftest import (SCREENSHOTS, choose, fill_image_form, history_count, needs_chromium, open_app,
                               progress_seen, send_first_result, wait_progress, wait_text, wait_until, watch_progress)


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
    # Reuse of the grid puts its axes back for Plot (as A1111's paste does)
    choose(page, "xyz-x-type", "Seed")
    set_values(page, "x", "7")
    send_first_result(page, "reuse-parameters", "loaded into the settings")  # the grid is the newest
    assert page.locator("#xyz-x-type input").input_value() == "Steps"
    assert page.locator("#xyz-x-values textarea, #xyz-x-values input").first.input_value() == "2,3"
    assert page.locator("#xyz-y-type input").input_value() == "Seed"


def test_the_api_endpoint_returns_the_grid_and_its_cells(local_app):
    client = Client(local_app.url, verbose=False)
    path, info = client.predict("a fox", x_type="Steps", x_values="1-2", y_type="CFG Scale", y_values="2, 4",
                                width=64, height=64, seed=9, api_name="/xyz_plot")
    assert info["status"] == "success" and Image.open(path).size[0] > 128
    assert [(cell["num_inference_steps"], cell["guidance_scale"], cell["seed"]) for cell in info["batch"]] == [
        (1, 2.0, 9), (2, 2.0, 9), (1, 4.0, 9), (2, 4.0, 9)]
    assert info["plot"]["x_type"] == "Steps" and info["plot"]["y_type"] == "CFG Scale"
    with pytest.raises(Exception, match="Steps on the X axis must be a whole number from 1 to 150"):
        client.predict("a fox", x_type="steps", x_values="2, 500", width=64, height=64, api_name="/xyz_plot")
    with pytest.raises(Exception, match="The Y axis \\(Seed\\) has no values"):
        client.predict("a fox", x_type="steps", x_values="2", y_type="seed", y_values=" ", api_name="/xyz_plot")
    _, info = client.predict("a red fox", x_type="Prompt S/R", x_values="red, blue", width=64, height=64, seed=9,
                             num_inference_steps=1, api_name="/xyz_plot")
    assert [cell["prompt"] for cell in info["batch"]] == ["a red fox", "a blue fox"]
    with pytest.raises(Exception, match='Prompt S/R did not find "green"'):
        client.predict("a red fox", x_type="Prompt S/R", x_values="green, blue", api_name="/xyz_plot")
