"""Small fixes from the UI issue (items 6, 7, 13 and 14), each through the running app: the browser, or
gradio_client for sentences the engine writes."""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pytest
from gradio_client import Client

from engine.config import Settings
from engine.outputs import read_parameters
from tests.support.fake_comfyui import FakeComfyUI
from tests.ui.conftest import (RunningApp, fill_image_form, free_port, needs_chromium, open_app, set_number,
                               start_app, stop_app, wait_progress, wait_text, wait_until)
from tests.ui.test_video_tab import open_video_tab, paste_prompts, set_cell, small_settings, wait_video_progress

SMALL = dict(width=64, height=64, num_inference_steps=2, seed=5)
FLIP_S = 8.0  # health interval 0.5 s, down after 2 failed polls, badge and status refreshed every 1-2 s

# Every distinct progress line, as it is painted (innerText: what a screen reader or a copy gets).
WATCH_LINES = """
() => {
  window.__lines = [];
  const grab = () => {
    const line = document.querySelector('#progress-line').innerText.trim();
    if (line && window.__lines[window.__lines.length - 1] !== line) window.__lines.push(line);
  };
  new MutationObserver(grab).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                     characterData: true});
}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeComfyUI]:
    server = FakeComfyUI(step_delay_s=0.15).start()  # slow enough steps for the browser to see ComfyUI's
    yield server
    server.close()


def _settings(tmp_path_factory, tiny_model_dir, urls: list[str], name: str) -> Settings:
    return Settings(comfyui_urls=urls, output_dir=tmp_path_factory.mktemp(name), tiny_model_dir=tiny_model_dir,
                    models_dir=tmp_path_factory.mktemp(f"{name}-no-models"), health_interval_s=0.5,
                    health_timeout_s=0.5, comfyui_timeout_s=5.0)


@pytest.fixture(scope="module")
def comfy_app(fake, tmp_path_factory, tiny_model_dir) -> Iterator[RunningApp]:
    """The app with the fake ComfyUI, up at start."""
    app = start_app(_settings(tmp_path_factory, tiny_model_dir, [fake.url], "fixes-comfy"))
    yield app
    stop_app(app)


@pytest.fixture(scope="module")
def silent_app(tmp_path_factory, tiny_model_dir) -> Iterator[RunningApp]:
    """The app with a ComfyUI URL where nothing ever answers (a user without ComfyUI)."""
    app = start_app(_settings(tmp_path_factory, tiny_model_dir, [f"http://127.0.0.1:{free_port()}"], "fixes-silent"))
    yield app
    stop_app(app)


def comfy_up(app: RunningApp) -> bool:
    return bool(app.manager.status()["servers"][0]["up"])


def wait_badge(page, needle: str, timeout_s: float = FLIP_S) -> str:
    return wait_text(page, "backend-badge", needle, int(timeout_s * 1000))


def open_status(page) -> None:
    page.get_by_role("tab", name="System status").click()
    page.wait_for_selector("#status-servers, #status-active")


def generate(page, prompt: str, **form: Any) -> str:
    """Fill the Image tab, generate, wait for Done; the result's details."""
    fill_image_form(page, prompt, **form)
    page.click("#generate")
    wait_progress(page, "Done")
    return page.locator("#result-details").inner_text()


def switch_rows(page) -> list[str]:
    page.click("#status-refresh")
    page.wait_for_timeout(300)
    return page.locator("#status-switches tbody tr").all_inner_texts()


def api_error(client: Client, **kwargs: Any) -> str:
    with pytest.raises(Exception) as err:
        client.predict(**kwargs)
    return str(err.value)


# -- item 6: the status tab while a server is down; one switch row per change, not per request ----------------

@needs_chromium
def test_a_down_server_shows_no_old_numbers_as_current(ui_page, comfy_app, fake):
    page = ui_page
    open_app(page, comfy_app.url)
    open_status(page)
    page.wait_for_selector("#status-servers .gator-up", timeout=FLIP_S * 1000)
    assert re.search(r"\d+ ms", page.locator("#status-servers").inner_text())
    fake.stop()
    try:
        page.wait_for_selector("#status-servers .gator-down", timeout=FLIP_S * 1000)
        # a refresh after the flip (it replaces the marked table): the row is what the tab keeps showing
        page.evaluate("() => { document.querySelector('#status-servers').dataset.seen = '1'; }")
        page.click("#status-refresh")
        page.wait_for_function("() => !document.querySelector('#status-servers').dataset.seen")
        cells = page.locator("#status-servers tbody tr").first.locator("td").all_inner_texts()
        _url, _state, latency, _device, vram, queue, models, error = cells
        assert latency == "–" and queue == "–", cells
        assert vram.startswith("last seen") and "ago" in vram, cells
        assert models.startswith("last seen") and "tiny-sd15.safetensors" in models, cells
        assert "connection refused" in error.lower()
    finally:
        fake.restart()
    page.wait_for_selector("#status-servers .gator-up", timeout=FLIP_S * 1000)
    assert re.search(r"\d+ ms", page.locator("#status-servers").inner_text())


@needs_chromium
def test_requests_that_fall_back_add_no_switch_rows_but_keep_their_reason(ui_page, comfy_app, fake):
    page = ui_page
    open_app(page, comfy_app.url)
    wait_badge(page, "ComfyUI ·")
    fake.stop()
    try:
        wait_badge(page, "unreachable")
        assert wait_until(lambda: not comfy_up(comfy_app))
        open_status(page)
        before = [row for row in switch_rows(page) if "Fell back" in row]
        page.get_by_role("tab", name="Image").click()
        # ComfyUI was up, then failed: every result still says why it ran locally
        details = generate(page, "a harbour in the fog", steps=2, seed=1)
        assert "fell back to diffusers" in details.lower() and "unreachable" in details, details
        client = Client(comfy_app.url, verbose=False)
        for seed in (2, 3):
            _, info = client.predict("a harbour in the fog", **{**SMALL, "seed": seed}, api_name="/generate_image")
            assert info["backend"] == "diffusers" and "unreachable" in info["fallback_reason"], info
        assert "unreachable" in page.locator("#backend-badge").inner_text()  # the badge never changed
        open_status(page)
        rows = switch_rows(page)
    finally:
        fake.restart()
    assert [row for row in rows if "Fell back" in row] == before, rows
    assert "is down" in rows[0], rows
    assert wait_until(lambda: comfy_up(comfy_app), timeout=FLIP_S)


# -- item 7: the progress line and sentences ------------------------------------------------------------------

@needs_chromium
def test_the_progress_line_never_carries_gradios_timer(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    page.evaluate(WATCH_LINES)
    generate(page, "a lighthouse at dusk", steps=4, seed=1)
    page.click("#seed-reuse")
    wait_progress(page, "Seed 1")
    page.wait_for_timeout(500)
    lines = page.evaluate("window.__lines")
    assert any(line.startswith("Step 4/4") for line in lines), lines
    assert not [line for line in lines if re.search(r"\b\d+\.\ds\b", line)], lines


@needs_chromium
def test_a_failover_keeps_its_reason_and_never_counts_back(ui_page, comfy_app, fake):
    page = ui_page
    open_app(page, comfy_app.url)
    wait_badge(page, "ComfyUI ·")
    assert wait_until(lambda: comfy_up(comfy_app), timeout=FLIP_S)
    page.evaluate(WATCH_LINES)
    fake.drop_socket_after_step(3)
    details = generate(page, "a lighthouse in a gale", steps=8, seed=4)
    lines = page.evaluate("window.__lines")
    assert "fell back to diffusers" in details.lower(), details
    steps = [(int(m.group(1)), line) for line in lines if (m := re.search(r"Step (\d+)/8", line))]
    assert any("comfyui" in line for _, line in steps), lines  # ComfyUI had stepped before it failed
    assert [n for n, _ in steps] == sorted(n for n, _ in steps), lines  # never backwards within the image
    warned = next(i for i, line in enumerate(lines) if "Continuing on diffusers" in line)
    following = lines[warned:]
    until_steps = following[:next((i for i, line in enumerate(following) if line.startswith(("Step", "Done"))),
                                  len(following))]
    assert until_steps and all("Continuing on diffusers" in line and "stopped answering" in line
                               for line in until_steps), lines


def test_the_tiny_model_gives_no_token_limit_warning(local_app):
    prompt = ("a red fox sitting in deep snow under tall pine trees at golden hour, soft light, sharp focus, "
              "highly detailed")  # ~88 tokens of the tiny model's byte-level vocabulary; ~25 of a real CLIP's
    assert 100 <= len(prompt) <= 110
    _, info = Client(local_app.url, verbose=False).predict(prompt, **SMALL, api_name="/generate_image")
    assert info["status"] == "success" and info["model"] == "Tiny demo model"
    assert info["warnings"] == [], info["warnings"]


@needs_chromium
def test_a_style_never_repeats_a_negative_term(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    page.locator("#negative-prompt textarea").fill("blurry, lowres")
    page.locator("#style input").click()
    page.locator("ul[role=listbox] li", has_text="Cinematic").first.click()
    details = generate(page, "a fox in the snow", steps=2, seed=3)
    path = re.search(r"Saved to (\S+\.png)", details).group(1)
    negative = read_parameters(path)["negative_prompt"]
    terms = [term.strip().lower() for term in negative.split(",")]
    assert terms.count("lowres") == 1 and "cartoon" in terms and terms[:2] == ["blurry", "lowres"], negative
    assert len(terms) == len(set(terms)), negative


@needs_chromium
def test_an_empty_width_says_what_to_enter(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    fill_image_form(page, "a cat", steps=2)
    set_number(page, "width", "")
    page.click("#generate")
    text = wait_progress(page, "Width is empty: enter a number of pixels.")
    assert "None" not in text, text


def test_transition_sentences_name_transitions_as_the_ui_does(local_app):
    client = Client(local_app.url, verbose=False)
    message = api_error(client, storyboard="scenes:\n  - prompt: a fox\n    transition: wipe\n",
                        api_name="/generate_video")
    assert "must be one of cut, crossfade or seed travel (got 'wipe')" in message, message
    assert "seed_travel" not in message, message


def test_a_scene_over_the_limit_gets_one_limit_message(local_app):
    client = Client(local_app.url, verbose=False)
    message = api_error(client, storyboard="scenes:\n  - prompt: a fox\n    duration: 700\n",
                        api_name="/generate_video", use_ai_generation=False)
    assert message.count("the longest video is") == 1, message
    assert "Scene 1 lasts 11 min 40 s; the longest video is 10 min." in message, message


@needs_chromium
def test_video_details_count_every_keyframe_rendered(ui_page, local_app):
    page = ui_page
    open_video_tab(page, local_app.url)
    paste_prompts(page, "a harbour at dawn\nboats leaving the harbour")
    set_cell(page, 0, 3, "seed travel")
    small_settings(page)
    page.click("#video-render")
    wait_video_progress(page, "Video ready", timeout_ms=90_000)
    saved = max(local_app.output_dir.rglob("*.json"), key=lambda p: p.stat().st_mtime)
    render = json.loads(saved.read_text())["render"]
    scenes, inbetweens = len(render["keyframes"]), len(render["inbetweens"])
    assert scenes == 2 and inbetweens >= 1, render
    details = page.locator("#video-details").inner_text()
    assert f"{scenes + inbetweens} keyframes ({scenes} scenes + {inbetweens} in-betweens)" in details, details


# -- item 13: the first run says what to do ---------------------------------------------------------------------

@needs_chromium
def test_the_first_run_badge_points_to_the_status_tab(ui_page, local_app):
    page = ui_page
    open_app(page, local_app.url)
    badge = page.locator("#backend-badge").inner_text().strip()
    assert badge.startswith("tiny demo model") and badge.endswith("see System status"), badge
    open_status(page)
    help_text = page.locator("#status-models-help").inner_text()
    assert "GATOR_MODELS_DIR" in help_text and "AUTOMATIC1111 or ComfyUI install" in help_text
    assert "Rescan model folders" in help_text
    assert "start ComfyUI" in help_text
    assert "see System status" not in page.locator("#status-active").inner_text()


# -- item 14: without ComfyUI, local generation is the normal path ------------------------------------------------

@needs_chromium
@pytest.mark.parametrize("which", ["disabled", "never up"])
def test_without_comfyui_results_carry_no_fallback_warning(ui_page, request, which):
    app = request.getfixturevalue("local_app" if which == "disabled" else "silent_app")
    page = ui_page
    open_app(page, app.url)
    details = generate(page, "a quiet street at night", steps=2, seed=8)
    assert "fell back" not in details.lower() and "Warning" not in details, details
    _, info = Client(app.url, verbose=False).predict("a quiet street", **SMALL, api_name="/generate_image")
    assert info["backend"] == "diffusers" and not info["fallback_reason"] and info["warnings"] == [], info
    open_status(page)
    page.wait_for_selector("#status-normal-path")
    text = page.locator("#system-status").inner_text()
    assert text.count("normal path") == 1, text
    assert ("is off" if which == "disabled" else "has not answered since start-up") in \
        page.locator("#status-normal-path").inner_text()
    assert not [row for row in switch_rows(page) if "Fell back" in row]


@needs_chromium
def test_the_video_progress_line_never_carries_gradios_timer(ui_page, local_app):
    from tests.ui.test_video_tab import open_video_tab, paste_prompts

    page = ui_page
    open_video_tab(page, local_app.url)
    page.evaluate(WATCH_LINES.replace("#progress-line", "#video-progress"))
    paste_prompts(page, "a harbour\nboats at sea")
    page.locator("#video-use-ai input").uncheck()
    page.click("#video-render")
    wait_text(page, "video-progress", "Video ready", 30_000)
    lines = page.evaluate("window.__lines")
    assert not [line for line in lines if re.search(r"\b\d+\.\ds\b", line)], lines
