"""What a new user sees first at 1440x900: the primary action and the live preview without scrolling;
Ctrl+Enter generates; a second click during a run is not lost; Stop leaves no noisy preview behind."""
from __future__ import annotations

from tests.ui.conftest import (fill_image_form, history_count, needs_chromium, open_app, wait_progress, wait_step,
                               wait_until)

pytestmark = needs_chromium


def on_screen(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 120) <= 900


def test_generate_and_the_preview_are_visible_without_scrolling(desktop, local_app):
    open_app(desktop, local_app.url)
    for selector in ("#prompt", "#generate", "#stop", "#progress-line", "#image-output"):
        assert on_screen(desktop, selector), selector
    assert "Ctrl+Enter" in desktop.locator("#prompt").inner_text()
    # ComfyUI and the cloud are off in this app: the backend choice offers neither
    assert [radio.get_attribute("value") for radio in desktop.locator("#backend input").all()] == ["auto", "diffusers"]
    desktop.get_by_role("tab", name="Video storyboard").click()
    desktop.wait_for_selector("#video-render")
    for selector in ("#video-render", "#video-stop", "#video-progress", "#video-preview"):
        assert on_screen(desktop, selector), selector


def test_ctrl_enter_in_the_prompt_generates_once(desktop, local_app):
    open_app(desktop, local_app.url)
    fill_image_form(desktop, "a lantern by the sea", steps=2, seed=8)
    desktop.locator("#prompt textarea").press("Control+Enter")
    wait_progress(desktop, "Done")
    desktop.wait_for_timeout(800)
    assert history_count(desktop) == 1


def test_a_second_click_during_a_run_makes_a_second_image(desktop, local_app):
    open_app(desktop, local_app.url)
    fill_image_form(desktop, "two lanterns", steps=12, seed=9)
    desktop.click("#generate")
    wait_step(desktop, 1)
    desktop.click("#generate")  # while the first runs
    assert wait_until(lambda: history_count(desktop) == 2, 60), history_count(desktop)


def test_stop_leaves_no_noisy_preview(desktop, local_app):
    open_app(desktop, local_app.url)
    fill_image_form(desktop, "an endless staircase", width=256, height=256, steps=150, seed=5)  # about 10 s
    desktop.click("#generate")
    wait_step(desktop, 3)
    assert desktop.locator("#image-output img").count() == 1  # the step preview is showing
    desktop.click("#stop")
    wait_progress(desktop, "Stopped")
    assert wait_until(lambda: desktop.locator("#image-output img").count() == 0, 5)
