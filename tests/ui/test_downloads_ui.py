"""The System status tab's download panel in the browser (1440x900), against a fake Hugging Face Hub: the
badge's demo-model link opens the Models section; Allow downloads, Download shows a moving progress bar and the
model becomes available without a restart; Cancel stops a download and leaves no file under its final name."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.config import Settings
from tests.support.fake_hub import SD15_FILE, SD15_REPO, SDXL_FILE, catalogue_hub
from tests.ui.conftest import SCREENSHOTS, needs_chromium, open_app, start_app, stop_app, wait_text, wait_until
from ui.downloads_panel import (ADMINS_ONLY, allow_visible, download_refusal, progress_bar, render_download_intro,
                                render_download_row, row_buttons, slug)

pytestmark = needs_chromium

SIZE = 2 * 1024 * 1024
SD15, SDXL = "stable-diffusion-v1-5", "sdxl-1-0"  # the rows' element-id forms of the model ids


@pytest.fixture(scope="module")
def hub():
    server = catalogue_hub(SIZE).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def download_app(tmp_path_factory, tiny_model_dir, hub):
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:  # tests/conftest.py sets HF_HUB_OFFLINE=1 for the suite
        patch.setattr(constants, "HF_HUB_OFFLINE", False)
        settings = Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path_factory.mktemp("dl-outputs"),
                            tiny_model_dir=tiny_model_dir, models_dir=tmp_path_factory.mktemp("dl-models"),
                            hf_endpoint=hub.url)
        app = start_app(settings)
        app.manager.downloads.retry_wait_s = 0.05
        yield app
        stop_app(app)


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def selected_tab(page) -> str:
    return page.evaluate("() => [...document.querySelectorAll('#gator-tabs > .tab-wrapper [role=tab]')]"
                         ".find(t => t.getAttribute('aria-selected') === 'true')?.innerText.trim() ?? ''")


def open_status(page) -> None:
    page.get_by_role("tab", name="System status").click()
    page.wait_for_selector("#status-models-section")


def percent(page, key: str) -> float:
    return float(page.locator(f"#download-bar-{key}").get_attribute("data-percent"))


def test_the_badge_link_opens_the_models_section(desktop, download_app):
    page = desktop
    open_app(page, download_app.url)
    link = page.locator("#backend-badge a.gator-badge-link")
    assert link.inner_text().startswith("tiny demo model") and link.get_attribute("href") == "#status-models-section"
    assert selected_tab(page) == "Image"
    link.click()
    page.wait_for_function("() => { const h = document.getElementById('status-models-section');"
                           " if (!h || h.offsetParent === null) return false;"
                           " const r = h.getBoundingClientRect(); return r.top > -5 && r.top < 200; }")
    assert selected_tab(page) == "System status"
    # downloads are off until allowed: the panel says so and offers the switch, no Download button yet
    assert "Downloads are off" in page.locator("#status-downloads-intro").inner_text()
    assert page.locator("#status-allow-downloads").is_visible()
    assert not page.locator(f"#download-{SD15}").is_visible()
    assert "Not downloaded" in page.locator(f"#download-state-{SD15}").inner_text()
    assert page.evaluate("() => window.scrollY") > 0  # it scrolled down to the section
    shot(page, "downloads-badge-link.png")


def test_allow_and_download_shows_a_moving_progress_bar_and_the_model_becomes_available(desktop, download_app, hub):
    page = desktop
    open_app(page, download_app.url)
    open_status(page)
    page.click("#status-allow-downloads")
    page.wait_for_selector(f"#download-{SD15}", state="visible")
    assert not page.locator("#status-allow-downloads").is_visible()
    assert "Files go to the models folder" in page.locator("#status-downloads-intro").inner_text()

    hub.bytes_per_s = 192 * 1024  # about 11 s for the file: the 2 s refresh sees it move
    page.click(f"#download-{SD15}")
    page.wait_for_selector(f"#download-bar-{SD15}", timeout=10_000)
    page.wait_for_function("(k) => Number(document.getElementById('download-bar-' + k)?.dataset.percent) > 0",
                           arg=SD15, timeout=10_000)
    first = percent(page, SD15)
    text = wait_text(page, f"download-progress-{SD15}", "left", 10_000)
    assert re.search(r"[\d.]+ [KM]iB of 2\.0 MiB \(\d+%\) · [\d.]+ KiB/s · about \d+ s left", text), text
    assert page.locator(f"#download-cancel-{SD15}").is_visible()
    page.wait_for_function("([k, p]) => Number(document.getElementById('download-bar-' + k)?.dataset.percent) > p",
                           arg=[SD15, first], timeout=10_000)
    assert percent(page, SD15) > first
    shot(page, "downloads-progress.png")

    hub.bytes_per_s = None
    wait_text(page, f"download-state-{SD15}", "Downloaded", 20_000)
    assert not page.locator(f"#download-{SD15}").is_visible()
    row = page.locator("#status-models tr", has_text="Stable Diffusion 1.5").inner_text()
    assert "\tyes\t" in row + "\t", row
    wait_text(page, "backend-badge", "Stable Diffusion 1.5", 10_000)  # used now, without a restart
    models = Path(download_app.manager.settings.models_dir)
    assert (models / SD15_FILE).read_bytes() == hub.file(SD15_REPO, SD15_FILE).content
    shot(page, "downloads-done.png")
    # the API's /status carries the same states (plain values: no key Gradio would take for a file)
    from gradio_client import Client

    status = Client(download_app.url, verbose=False).predict(api_name="/status")
    assert status["downloads"]["models"]["stable-diffusion-v1-5"]["status"] == "done", status["downloads"]


def test_cancel_stops_a_download(desktop, download_app, hub):
    page = desktop
    open_app(page, download_app.url)
    open_status(page)
    if page.locator("#status-allow-downloads").is_visible():  # when run alone
        page.click("#status-allow-downloads")
    hub.bytes_per_s = 128 * 1024
    page.click(f"#download-{SDXL}")
    page.wait_for_selector(f"#download-cancel-{SDXL}", state="visible", timeout=10_000)
    page.wait_for_function("(k) => Number(document.getElementById('download-bar-' + k)?.dataset.percent) > 0",
                           arg=SDXL, timeout=10_000)
    page.click(f"#download-cancel-{SDXL}")
    text = wait_text(page, f"download-state-{SDXL}", "Cancelled", 10_000)
    assert "Download resumes it" in text, text
    assert wait_until(lambda: download_app.manager.downloads_state()["models"]["sdxl-1.0"]["status"] == "cancelled")
    page.wait_for_selector(f"#download-{SDXL}", state="visible")
    assert page.locator(f"#download-{SDXL}").inner_text().strip() == "Resume download"
    assert not page.locator(f"#download-cancel-{SDXL}").is_visible()
    models = Path(download_app.manager.settings.models_dir)
    assert not (models / SDXL_FILE).exists()
    shot(page, "downloads-cancelled.png")
    hub.bytes_per_s = None


# -- the panel's pieces, without a browser ------------------------------------------------------------------------

def test_rows_say_what_is_missing_and_how_far_a_download_is():
    entry = {"model_id": "sdxl-1.0", "label": "SDXL 1.0", "repo_id": "org/x", "filename": "x.safetensors",
             "size_gb": 6.9, "status": "downloading", "done_bytes": 3 * 1024**3, "total_bytes": 6 * 1024**3,
             "percent": 50.0, "speed_bps": 20 * 1024**2, "eta_s": 154, "resumed_from": 1024**3}
    html = render_download_row(entry)
    assert 'id="download-bar-sdxl-1-0"' in html and "width: 50.0%" in html
    assert "3.0 GiB of 6.0 GiB (50%) · 20.0 MiB/s · about 2 min 34 s left · resumed from 1.0 GiB" in html
    assert row_buttons({"allowed": True, "blocked": ""}, entry) == ({"visible": False, "value": "Download"},
                                                                     {"visible": True})
    failed = dict(entry, status="failed", error="No <network>.", done_bytes=10)
    assert "No &lt;network&gt;." in render_download_row(failed)
    assert row_buttons({"allowed": True, "blocked": ""}, failed)[0] == {"visible": True, "value": "Resume download"}
    assert row_buttons({"allowed": False, "blocked": "off"}, failed)[0]["visible"] is False
    missing = dict(entry, status="missing", done_bytes=0)
    assert "Models table says why" in render_download_row(missing, {"available": False, "note": "not found"})
    assert slug("sdxl-1.0") == "sdxl-1-0" and 'data-percent="0.0"' in progress_bar(None, "x")


def test_the_intro_says_why_downloads_cannot_start_and_only_admins_may_download_with_logins():
    no_folder = {"allowed": False, "folder": None, "offline": False, "blocked": "Downloads need a models folder: set "
                 "GATOR_MODELS_DIR."}
    assert "set GATOR_MODELS_DIR" in render_download_intro(no_folder) and not allow_visible(no_folder)
    offline = {"allowed": False, "folder": "/m", "offline": True, "blocked": "Downloads are off while HF_HUB_OFFLINE=1 "
               "is set."}
    assert "HF_HUB_OFFLINE=1" in render_download_intro(offline) and not allow_visible(offline)
    off = {"allowed": False, "folder": "/m", "offline": False, "blocked": "Downloads are off: press ..."}
    assert "GATOR_ALLOW_DOWNLOADS=0" in render_download_intro(off) and allow_visible(off)
    assert download_refusal(None, frozenset()) == ""  # no logins: whoever reaches the app
    assert download_refusal("ann", frozenset({"ann"})) == ""
    assert download_refusal("bob", frozenset({"ann"})) == ADMINS_ONLY
