"""The Image tab in a real browser against the real app on the tiny model."""
from __future__ import annotations

import re
import time

from tests.ui.conftest import (fill_image_form, history_count, needs_chromium, open_app, progress_text,
                               run_into_second_image, wait_progress, wait_step, wait_text, wait_until)

pytestmark = needs_chromium

# Records every distinct src the image output shows, and every progress line, as they happen.
WATCH_JS = """
() => {
  window.__seen = {srcs: [], lines: []};
  const grab = () => {
    const img = document.querySelector('#image-output img');
    const src = img ? img.getAttribute('src') : null;
    if (src && window.__seen.srcs[window.__seen.srcs.length - 1] !== src) window.__seen.srcs.push(src);
    const line = document.querySelector('#progress-line').innerText.trim();
    if (line && window.__seen.lines[window.__seen.lines.length - 1] !== line) window.__seen.lines.push(line);
  };
  new MutationObserver(grab).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                     characterData: true});
}
"""


def test_generate_streams_previews_then_the_final_image(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    assert "tiny demo model" in page.locator("#backend-badge").inner_text()
    # 256 px: steps slow enough (~80 ms) that a busy browser still paints most of them
    fill_image_form(page, "a lighthouse at dusk", width=256, height=256, steps=24, seed=77)
    page.evaluate(WATCH_JS)
    page.click("#generate")
    text = wait_progress(page, "Done")
    assert "diffusers" in text and "seed 77" in text
    seen = page.evaluate("window.__seen")
    steps_seen = sorted({int(m.group(1)) for line in seen["lines"] for m in [re.search(r"Step (\d+)/24", line)] if m})
    assert len(steps_seen) >= 6, seen["lines"]
    assert any("diffusers" in line for line in seen["lines"] if "Step" in line)
    # one preview per observed step, then the final image: the picture changed many times
    assert len(seen["srcs"]) >= 5, seen["srcs"]
    final = page.locator("#image-output img").get_attribute("src")
    assert final == seen["srcs"][-1] and final.endswith(".png")
    assert history_count(page) == 1
    assert "Seed" in page.locator("#result-details").inner_text() and "77" in page.locator("#result-details").inner_text()
    assert page.locator("#download").is_visible()


def test_stop_cancels_within_a_step(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    # 150 steps at 256 px (about 10 s here): still running when a busy machine's Stop click arrives (150 steps at
    # 64 px can end in 2.6 s, before it)
    fill_image_form(page, "a stopped staircase", width=256, height=256, steps=150, seed=5)
    page.click("#generate")
    wait_step(page, 3)
    page.click("#stop")
    wait_progress(page, "Stopped", timeout_ms=10_000)
    time.sleep(1.0)
    last = progress_text(page)
    assert "Stopped" in last and "Done" not in last
    assert not [p for p in local_app.saved_images() if "a-stopped-staircase" in p.name]  # nothing saved
    assert history_count(page) == 0
    # the engine is free again: a new request runs to the end at once
    fill_image_form(page, "a small boat", steps=2, seed=6)
    page.click("#generate")
    wait_progress(page, "Done")


def test_bad_input_shows_a_clear_message(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    fill_image_form(page, "", steps=2)
    page.click("#generate")
    text = wait_progress(page, "prompt is empty")
    assert "describe the image" in text
    fill_image_form(page, "a cat", width=100, steps=2)
    page.click("#generate")
    text = wait_progress(page, "multiple of 8")
    assert "Width" in text and "96" in text
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "Error" not in page.locator("#progress-line").inner_text()
    assert history_count(page) == 0


def test_reuse_parameters_of_a_picked_image(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    fill_image_form(page, "a teapot on a hill", steps=3, seed=4242)
    page.locator("#negative-prompt textarea").fill("fog")
    page.click("#generate")
    wait_progress(page, "Done")
    # change everything, then bring it back from the picked image
    fill_image_form(page, "something else", width=128, height=96, steps=7, seed=1)
    page.locator("#negative-prompt textarea").fill("")
    page.locator("#history .thumbnail-item").first.click()
    wait_until(lambda: "seed" in page.locator("#picked-info").inner_text(), 5)
    page.click("#reuse-parameters")
    assert wait_until(lambda: page.locator("#prompt textarea").input_value() == "a teapot on a hill", 5)
    assert page.locator("#negative-prompt textarea").input_value() == "fog"
    assert page.locator("#seed input").input_value() == "4242"
    assert page.locator("#width input").input_value() == "64"
    assert page.locator("#height input").input_value() == "64"
    assert page.locator("#steps input[type=number]").input_value() == "3"
    assert "Parameters of " in page.locator("#picked-info").inner_text()
    assert "a-teapot-on-a-hill.png loaded into the settings" in page.locator("#picked-info").inner_text()


def test_reuse_last_seed_button(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    fill_image_form(page, "a paper crane", steps=2, seed=-1)
    page.click("#generate")
    text = wait_progress(page, "Done")
    seed = re.search(r"seed (\d+)", text).group(1)
    page.click("#seed-reuse")
    assert wait_until(lambda: page.locator("#seed input").input_value() == seed, 5)
    page.click("#seed-random")
    assert wait_until(lambda: page.locator("#seed input").input_value() == "-1", 5)


def test_two_pages_never_see_each_others_results(new_page, local_app):
    a, b = new_page(), new_page()
    open_app(a, local_app.url)
    open_app(b, local_app.url)
    fill_image_form(a, "page A: a red barn", steps=12, seed=111)
    fill_image_form(b, "page B: a blue whale", steps=12, seed=222)
    a.click("#generate")
    b.click("#generate")
    text_a = wait_progress(a, "Done", 60_000)
    text_b = wait_progress(b, "Done", 60_000)
    assert "seed 111" in text_a and "seed 222" in text_b
    time.sleep(0.5)
    assert history_count(a) == 1 and history_count(b) == 1
    details_a, details_b = a.locator("#result-details").inner_text(), b.locator("#result-details").inner_text()
    # (the saved file names carry a time of day, which may contain any digits: compare the seed lines)
    assert "Seed 111" in details_a and "Seed 222" not in details_a and "page-b" not in details_a
    assert "Seed 222" in details_b and "Seed 111" not in details_b and "page-a" not in details_b
    assert a.locator("#image-output img").get_attribute("src") != b.locator("#image-output img").get_attribute("src")
    # a third visitor starts with an empty history
    c = new_page()
    open_app(c, local_app.url)
    assert history_count(c) == 0 and "Ready" in progress_text(c)


def pick_option(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).click()


def test_aspect_and_quality_presets_and_the_outputs_folder(new_page, local_app):
    page = new_page()
    open_app(page, local_app.url)
    fill_image_form(page, "a tall lighthouse", width=1024, height=1024, steps=3)
    pick_option(page, "aspect", "16:9 widescreen")
    assert wait_until(lambda: page.locator("#width input").input_value() == "1344", 5)
    assert page.locator("#height input").input_value() == "768"
    pick_option(page, "quality", "High")
    assert wait_until(lambda: page.locator("#steps input[type=number]").input_value() == "30", 5)
    fill_image_form(page, "a saved harbour", steps=2, seed=31337)
    page.click("#generate")
    wait_progress(page, "Done")
    # another visitor finds it in the outputs folder and takes its parameters from there
    other = new_page()
    open_app(other, local_app.url)
    other.get_by_role("tab", name="Outputs folder").click()
    other.click("#load-outputs")
    other.wait_for_selector("#outputs-gallery .thumbnail-item")
    other.locator("#outputs-gallery .thumbnail-item").first.click()
    assert wait_until(lambda: "31337" in other.locator("#picked-info").inner_text(), 5)
    other.click("#reuse-parameters")
    assert wait_until(lambda: other.locator("#prompt textarea").input_value() == "a saved harbour", 5)
    assert other.locator("#seed input").input_value() == "31337"


def test_stop_during_a_batch_keeps_the_finished_image_and_says_stopped(ui_page, local_app):
    page = ui_page
    # long images: image 2 still runs when Stop arrives (at 64 px the batch could end first, leaving nothing to stop)
    run_into_second_image(page, local_app.url, "a row of lanterns", count=3, seed=9)
    page.click("#stop")
    wait_progress(page, "Stopped", timeout_ms=10_000)
    time.sleep(1.5)  # nothing that arrives late may replace the line
    last = progress_text(page)
    assert "Stopped" in last and "Done" not in last, last
    # the first image was finished and saved (counted by name: another test's late job may save meanwhile)
    assert len([p for p in local_app.saved_images() if "a-row-of-lanterns" in p.name]) == 1
    assert history_count(page) == 1


@needs_chromium
def test_reuse_and_last_seed_with_nothing_yet_say_so_without_error_overlays(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    page.click("#reuse-parameters")
    wait_text(page, "picked-info", "Pick an image in the history (or the outputs folder) first")
    page.click("#seed-reuse")
    wait_progress(page, "No image yet in this session: the seed stays as it is.")
    page.wait_for_timeout(500)
    assert page.locator(".error").count() == 0 and page.get_by_text("Error", exact=True).count() == 0
    # and a run afterwards is not marked with stale errors either
    fill_image_form(page, "after the clicks", steps=2, seed=5)
    page.click("#generate")
    wait_progress(page, "Done")
    assert page.locator(".error").count() == 0 and page.get_by_text("Error", exact=True).count() == 0
