"""Prompts from file or textbox in the browser: a job of the queue that makes an image per line (a line's A1111
options for it alone), each line labelled on the progress line and saved into the history; a text file opens into
the list."""
from __future__ import annotations

from engine.outputs import read_parameters
from tests.ui.conftest import (fill_image_form, history_count, needs_chromium, open_app, wait_progress, wait_text,
                               wait_until)
from tests.ui.test_image_tab import WATCH_JS

pytestmark = needs_chromium


def test_a_list_makes_an_image_per_line(ui_page, local_app, tmp_path):
    page = ui_page
    open_app(page, local_app.url)
    fill_image_form(page, "watercolor", steps=2, seed=11)
    page.locator("#prompt-list-box").get_by_text("Prompts from file or textbox").click()
    page.locator("#prompt-list textarea").fill('a listed fox\n\n--prompt "a listed boat" --steps 3 --seed 90')
    page.locator("#list-position").get_by_text("the start").click()
    page.evaluate(WATCH_JS)
    page.click("#generate-list")
    wait_progress(page, "Prompt 2/2 · Done", timeout_ms=60_000)
    lines = page.evaluate("window.__seen.lines")
    assert any(line.startswith("Prompt 1/2 · a listed fox watercolor") for line in lines), lines
    assert wait_until(lambda: history_count(page) == 2, 10)
    saved = {read_parameters(p)["prompt"]: read_parameters(p) for p in local_app.saved_images()
             if "a-listed" in p.name}
    assert saved["a listed fox watercolor"]["seed"] == 11 and saved["a listed fox watercolor"]["num_inference_steps"] == 2
    assert saved["a listed boat watercolor"]["seed"] == 90 and saved["a listed boat watercolor"]["num_inference_steps"] == 3
    (tmp_path / "prompts.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    page.locator("#prompt-list-file input[type=file]").set_input_files(str(tmp_path / "prompts.txt"))
    wait_text(page, "progress-line", "3 prompts read from the file.")
    assert page.locator("#prompt-list textarea").input_value() == "one\ntwo\nthree\n"
    page.locator("#prompt-list textarea").fill("--steps lots")
    page.click("#generate-list")
    wait_progress(page, "Line 1: --steps must be a whole number (got 'lots').")


def test_the_api_makes_an_image_per_line(local_app):
    from gradio_client import Client

    path, info = Client(local_app.url, verbose=False).predict(
        prompts="an api fox\n--prompt \"an api boat\" --seed 5", width=64, height=64, num_inference_steps=1, seed=3,
        api_name="/prompt_list")
    assert info["status"] == "success" and [(item["prompt"], item["seed"]) for item in info["batch"]] == [
        ("an api fox", 3), ("an api boat", 5)]
    assert path.endswith(".png")
