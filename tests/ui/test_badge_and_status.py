"""The live backend badge and the System status tab against the fake ComfyUI (a real server on a port)."""
from __future__ import annotations

import pytest

from engine.config import Settings
from tests.support.fake_comfyui import FakeComfyUI
from tests.ui.conftest import (fill_image_form, needs_chromium, open_app, progress_text, start_app, stop_app,
                               wait_progress, wait_step)

pytestmark = needs_chromium

BADGE_FLIP_S = 6.0  # health interval 0.5 s, down after 2 failed polls, badge refreshed every second


@pytest.fixture(scope="module")
def fake():
    server = FakeComfyUI(step_delay_s=0.01).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def comfy_app(fake, tmp_path_factory, tiny_model_dir):
    settings = Settings(comfyui_urls=[fake.url], output_dir=tmp_path_factory.mktemp("ui-comfy-outputs"),
                        tiny_model_dir=tiny_model_dir, models_dir=tmp_path_factory.mktemp("no-models"),
                        health_interval_s=0.5, health_timeout_s=0.5, comfyui_timeout_s=5.0)
    app = start_app(settings)
    yield app
    stop_app(app)


def badge_text(page) -> str:
    return page.locator("#backend-badge").inner_text()


def wait_badge(page, needle: str, timeout_s: float = BADGE_FLIP_S) -> str:
    page.wait_for_function("(n) => (document.querySelector('#backend-badge') || {}).innerText.includes(n)",
                           arg=needle, timeout=timeout_s * 1000)
    return badge_text(page)


def test_badge_flips_when_comfyui_stops_and_returns(ui_page, comfy_app, fake):
    page = ui_page
    open_app(page, comfy_app.url)
    assert wait_badge(page, "ComfyUI ·").startswith("ComfyUI ·")
    assert page.locator("#backend-badge").get_attribute("data-backend") == "comfyui"
    # a long local generation keeps running while the badge flips twice
    # 150 steps (the most) at 256 px: about 10 s here, still running after both flips even on a busy machine
    fill_image_form(page, "a windmill in a storm", width=256, height=256, steps=150, seed=3, backend="diffusers")
    page.click("#generate")
    wait_step(page, 2)
    try:
        fake.stop()
        text = wait_badge(page, "unreachable")
        assert "ComfyUI unreachable" in text and page.locator("#backend-badge").get_attribute("data-tone") == "demo"
        assert "Step" in progress_text(page) and "Done" not in progress_text(page)
    finally:
        fake.restart()
    wait_badge(page, "ComfyUI ·")
    assert "Done" not in progress_text(page), "the generation should still be running while the badge flipped back"
    page.click("#stop")
    wait_progress(page, "Stopped", 10_000)


def test_comfyui_models_appear_in_the_model_list(ui_page, comfy_app, fake):
    page = ui_page
    open_app(page, comfy_app.url)
    wait_badge(page, "ComfyUI ·")
    page.locator("#model input").click()
    options = page.locator("ul[role=listbox] li").all_inner_texts()
    assert any("ComfyUI" in o for o in options), options
    assert any("Tiny demo model" in o for o in options), options
    page.keyboard.press("Escape")
    # auto goes to ComfyUI while it is up
    fill_image_form(page, "a quiet harbour", steps=3, seed=9)
    page.click("#generate")
    text = wait_progress(page, "Done")
    assert "comfyui" in text


def test_status_tab_shows_servers_machine_and_switches(ui_page, comfy_app, fake):
    page = ui_page
    open_app(page, comfy_app.url)
    page.get_by_role("tab", name="System status").click()
    page.wait_for_selector("#status-servers")
    page.wait_for_selector("#status-servers .gator-up")
    servers = page.locator("#status-servers").inner_text()
    assert fake.url in servers and "cpu" in servers and "ms" in servers
    assert "tiny-sd15.safetensors" in servers
    local = page.locator("#status-local").inner_text()
    assert "cpu" in local and "GiB" in local
    assert str(comfy_app.output_dir) in page.locator("#status-output-dir").inner_text()
    fake.stop()
    try:
        page.wait_for_selector("#status-servers .gator-down", timeout=BADGE_FLIP_S * 1000)
        page.wait_for_function("() => (document.querySelector('#status-switches') || {}).innerText"
                               ".includes('is down')", timeout=BADGE_FLIP_S * 1000)
    finally:
        fake.restart()
    page.wait_for_selector("#status-servers .gator-up", timeout=BADGE_FLIP_S * 1000)
    rows = page.locator("#status-switches tbody tr").all_inner_texts()
    assert "is up" in rows[0], rows
    assert any("is down" in row and "connection refused" in row.lower() for row in rows), rows
