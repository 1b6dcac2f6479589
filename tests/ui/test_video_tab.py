"""The Video storyboard tab in a real browser: keyframes stream in, the mp4 plays in Chromium."""
from __future__ import annotations

from tests.ui.conftest import fill_image_form, needs_chromium, open_app, set_number, wait_progress

pytestmark = needs_chromium


def open_video_tab(page, url: str) -> None:
    open_app(page, url)
    page.get_by_role("tab", name="Video storyboard").click()
    page.wait_for_selector("#video-render")


def fill_small_video(page, prompts: str) -> None:
    page.locator("#video-prompts textarea").fill(prompts)
    page.locator("#video-more").get_by_text("More settings").click()
    set_number(page, "video-width", 64)
    set_number(page, "video-height", 64)
    set_number(page, "video-fps", 8)
    set_number(page, "video-steps", 2)
    set_number(page, "video-duration", 1)


def video_progress(page) -> str:
    return page.locator("#video-progress").inner_text()


def test_storyboard_renders_a_playable_video(ui_page, local_app):
    page = ui_page
    open_video_tab(page, local_app.url)
    fill_small_video(page, "a harbour at dawn\nboats leaving the harbour\nthe harbour at night")
    page.evaluate("""() => { window.__lines = [];
        new MutationObserver(() => { const t = document.querySelector('#video-progress').innerText.trim();
            if (window.__lines[window.__lines.length - 1] !== t) window.__lines.push(t); })
        .observe(document.querySelector('#video-progress'), {subtree: true, childList: true, characterData: true}); }""")
    page.click("#video-render")
    page.wait_for_function("() => document.querySelector('#video-progress').innerText.includes('Video ready')",
                           timeout=60_000)
    lines = page.evaluate("window.__lines")
    assert any("Keyframe 3/3" in line for line in lines), lines
    assert any("step" in line for line in lines), lines
    assert "24 frames" in video_progress(page)
    # the <video> element loads and plays the mp4
    page.wait_for_selector("#video-output video")
    state = page.evaluate("""async () => {
        const v = document.querySelector('#video-output video');
        v.muted = true;
        if (v.readyState < 1) await new Promise(r => { v.addEventListener('loadedmetadata', r, {once: true});
                                                        setTimeout(r, 5000); });
        try { await v.play(); } catch (e) { return {error: String(e)}; }
        await new Promise(r => setTimeout(r, 600));
        return {duration: v.duration, time: v.currentTime, width: v.videoWidth, src: v.currentSrc, error: v.error};
    }""")
    assert state.get("error") is None, state
    assert abs(state["duration"] - 3.0) < 0.3 and state["width"] == 64 and state["time"] > 0, state
    assert state["src"].endswith(".mp4")
    assert page.locator("#video-keyframes .thumbnail-item").count() == 3
    assert page.locator("#video-storyboard-download").is_visible()


def test_storyboard_bad_input_and_title_cards(ui_page, local_app):
    page = ui_page
    open_video_tab(page, local_app.url)
    page.click("#video-render")
    page.wait_for_function("() => document.querySelector('#video-progress').innerText.includes('no scenes')")
    assert "Traceback" not in page.locator("body").inner_text()
    # title cards need no model and still give a video
    fill_small_video(page, "Chapter one\nChapter two")
    page.locator("#video-use-ai input").uncheck()
    page.click("#video-render")
    page.wait_for_function("() => document.querySelector('#video-progress').innerText.includes('Video ready')",
                           timeout=30_000)
    assert page.locator("#video-keyframes .thumbnail-item").count() == 2


def test_stop_ends_a_video_render(ui_page, local_app):
    page = ui_page
    open_video_tab(page, local_app.url)
    fill_small_video(page, "scene one\nscene two\nscene three")
    set_number(page, "video-steps", 150)
    before = {p.name for p in local_app.output_dir.rglob("*.mp4")}
    page.click("#video-render")
    page.wait_for_function("() => /step [3-9]\\/150/.test(document.querySelector('#video-progress').innerText)",
                           timeout=30_000)
    page.click("#video-stop")
    page.wait_for_function("() => document.querySelector('#video-progress').innerText.includes('Stopped')",
                           timeout=10_000)
    page.wait_for_timeout(1000)
    assert "Video ready" not in video_progress(page)
    assert {p.name for p in local_app.output_dir.rglob("*.mp4")} == before
    # the render really ended: a short image does not wait behind the remaining ~400 steps
    page.get_by_role("tab", name="Image").click()
    fill_image_form(page, "after the stop", steps=2, seed=1)
    page.click("#generate")
    wait_progress(page, "Done", timeout_ms=5_000)
