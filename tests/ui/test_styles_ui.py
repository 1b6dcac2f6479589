"""Prompt styles in the browser and the API: the Styles box offers the app's styles and the user's own (here an
A1111 styles.csv at the top of the models folder), several apply in the order chosen, Reuse clears them (the
saved prompt already holds them), /generate_image takes one name or a list, and an unknown style is a sentence."""
from __future__ import annotations

import re
from typing import Iterator

import pytest
from gradio_client import Client

from engine.config import Settings
from engine.outputs import read_parameters
from tests.ui.conftest import (RunningApp, fill_image_form, needs_chromium, open_app, send_first_result, start_app,
                               stop_app, wait_progress, wait_until)

CSV = 'name,prompt,negative_prompt\nMoody,"{prompt}, moody, low key lighting","bright, blurry"\n'
SMALL = dict(width=64, height=64, num_inference_steps=1, seed=3)


@pytest.fixture(scope="module")
def styles_app(tmp_path_factory, tiny_model_dir) -> Iterator[RunningApp]:
    models = tmp_path_factory.mktemp("a1111-install")
    (models / "styles.csv").write_text(CSV, encoding="utf-8")
    app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path_factory.mktemp("out"),
                             tiny_model_dir=tiny_model_dir, models_dir=models))
    yield app
    stop_app(app)


def pick_style(page, name: str) -> None:
    """Type the style's name in the Styles box (the list narrows to it) and take it."""
    box = page.locator("#style input")
    box.click()
    box.fill(name)
    option = page.locator("#style").get_by_role("option", name=name, exact=True)
    option.wait_for()
    box.press("Enter")
    page.locator("#style .token", has_text=name).wait_for()


@needs_chromium
def test_two_styles_apply_in_the_order_chosen_and_reuse_clears_them(ui_page, styles_app):
    page = ui_page
    open_app(page, styles_app.url)
    fill_image_form(page, "a fox", steps=1, seed=3)
    page.locator("#negative-prompt textarea").fill("blurry")
    pick_style(page, "Moody")
    pick_style(page, "Watercolor")
    page.click("#generate")
    wait_progress(page, "Done")
    details = page.locator("#result-details").inner_text()
    saved = read_parameters(re.search(r"Saved to (\S+\.png)", details).group(1))
    assert saved["prompt"] == "watercolor painting of a fox, moody, low key lighting, soft washes, paper texture, " \
                              "delicate brush strokes", saved["prompt"]
    assert saved["negative_prompt"] == "blurry, bright, photograph, 3d render, harsh edges", saved["negative_prompt"]
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    assert page.locator("#style .token").count() == 0  # the prompt it brings back is already styled
    assert page.locator("#prompt textarea").input_value().startswith("watercolor painting of a fox, moody")


@needs_chromium
def test_a_style_file_added_while_the_app_runs_reaches_the_styles_box(ui_page, styles_app, tmp_path_factory):
    page = ui_page
    open_app(page, styles_app.url)
    folder = styles_app.manager.settings.model_roots[0] / "styles"
    folder.mkdir(exist_ok=True)
    (folder / "late.yaml").write_text("Late light:\n  prompt: '{prompt} at dusk'\n", encoding="utf-8")

    def offered() -> bool:  # the list opened now and then (an open list is not redrawn under the pointer)
        page.locator("#style input").click()
        found = page.locator("#style").get_by_role("option", name="Late light", exact=True).count() > 0
        page.keyboard.press("Escape")
        page.locator("#prompt textarea").click()
        return found
    assert wait_until(offered, 30, interval=2.0)


def test_the_api_takes_a_name_or_a_list_and_says_what_is_unknown(styles_app):
    client = Client(styles_app.url, verbose=False)
    _, info = client.predict("a fox", style="Moody", api_name="/generate_image", **SMALL)
    assert info["prompt"] == "a fox, moody, low key lighting" and info["negative_prompt"] == "bright, blurry"
    _, info = client.predict("a fox", style=["Moody", "Cinematic"], api_name="/generate_image", **SMALL)
    assert info["prompt"].startswith("cinematic film still of a fox, moody, low key lighting")
    with pytest.raises(Exception, match="Unknown style 'Vaporwave'"):
        client.predict("a fox", style="Vaporwave", api_name="/generate_image", **SMALL)
    status = client.predict(api_name="/status")
    assert "Moody" in status["styles"] and "Cinematic" in status["styles"] and "None" not in status["styles"]


@needs_chromium
def test_save_as_style_offers_the_prompt_as_a_style_at_once(ui_page, styles_app):
    page = ui_page
    open_app(page, styles_app.url)
    page.locator("#prompt textarea").fill("{prompt}, neon glow, rain")
    page.locator("#negative-prompt textarea").fill("sunny")
    page.locator("#save-style-box").get_by_text("Save as style").click()
    page.locator("#style-name input").fill("Neon night")
    page.click("#save-style")
    assert wait_until(lambda: "Saved the style 'Neon night'" in page.locator("#style-note").inner_text(), 10)
    pick_style(page, "Neon night")  # offered without a reload
    fill_image_form(page, "a fox", steps=1, seed=3)
    page.locator("#negative-prompt textarea").fill("")
    page.click("#generate")
    wait_progress(page, "Done")
    saved = read_parameters(re.search(r"Saved to (\S+\.png)", page.locator("#result-details").inner_text()).group(1))
    assert (saved["prompt"], saved["negative_prompt"]) == ("a fox, neon glow, rain", "sunny")
    page.locator("#style-name input").fill("")
    page.click("#save-style")
    assert wait_until(lambda: "A style needs a name" in page.locator("#style-note").inner_text(), 10)
    page.locator("#style-name input").fill("Neon night")
    page.click("#delete-style")  # A1111's style editor: the style leaves the file and the box
    assert wait_until(lambda: "Deleted the style 'Neon night'" in page.locator("#style-note").inner_text(), 10)
    page.locator("#style input").click()
    page.locator("#style").get_by_role("option", name="Moody", exact=True).wait_for()  # the list is open
    assert page.locator("#style").get_by_role("option", name="Neon night", exact=True).count() == 0
    page.keyboard.press("Escape")
    before = page.locator("#result-details").inner_text()
    page.click("#generate")  # it was still selected: it leaves the selection too (left there, Generate failed)
    assert wait_until(lambda: page.locator("#result-details").inner_text() != before, 30)
    saved = read_parameters(re.search(r"Saved to (\S+\.png)", page.locator("#result-details").inner_text()).group(1))
    assert saved["prompt"] == "a fox"
