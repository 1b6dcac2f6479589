"""Wildcards in the browser: a batch from a template, each image's filled-in prompt in the PNG, the template shown
as written (not read as markdown) beside the image and in the picked view, Reuse bringing back the filled-in
prompt, and an unknown wildcard as a sentence."""
from __future__ import annotations

from engine.outputs import read_parameters
from tests.ui.conftest import (fill_image_form, history_count, needs_chromium, open_app, send_first_result, set_number,
                               wait_progress, wait_text, wait_until)

pytestmark = needs_chromium
TEMPLATE = "a {red|blue} __animal__ in __season__"


def test_a_template_fills_in_each_image_and_reuse_brings_back_the_picks(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    fill_image_form(page, TEMPLATE, steps=2, seed=41)
    set_number(page, "batch", 2)
    page.click("#generate")
    wait_text(page, "result-details", f"Template {TEMPLATE}")  # as written: no bold "animal"

    def made_from_template() -> list[dict]:
        found = (read_parameters(p) for p in local_app.saved_images())
        return sorted((p for p in found if p.get("prompt_template") == TEMPLATE), key=lambda p: p["seed"])
    assert wait_until(lambda: len(made_from_template()) == 2, 30)
    made = made_from_template()
    assert [p["seed"] for p in made] == [41, 42]
    for params in made:
        assert "__" not in params["prompt"] and "{" not in params["prompt"]
        assert params["prompt"].startswith(("a red ", "a blue ")) and " in " in params["prompt"]
    assert wait_until(lambda: history_count(page) >= 2, 10)
    page.locator("#prompt textarea").fill("something else")
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    newest = made[-1]  # the history shows the newest first
    wait_text(page, "picked-params", f"Template {TEMPLATE}")
    assert page.locator("#prompt textarea").input_value() == newest["prompt"]


def test_an_unknown_wildcard_is_a_sentence(desktop, local_app):
    page = desktop
    open_app(page, local_app.url)
    fill_image_form(page, "a __no_such_list__ fox", steps=2, seed=5)
    page.click("#generate")
    text = wait_progress(page, "No wildcard named 'no_such_list'")
    assert "animal" in text and "Traceback" not in text
