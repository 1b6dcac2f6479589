"""The System status tab's Managed ComfyUI section in the browser: the instance the app started from COMFYUI_DIR
(a folder whose main.py runs the fake ComfyUI as its own process), its PID and port, and Stop / Start working."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.comfyui_process import free_port
from engine.config import Settings
from tests.support.comfyui_folder import make_comfyui_folder
from tests.ui.conftest import needs_chromium, open_app, start_app, stop_app, wait_text, wait_until

pytestmark = needs_chromium


@pytest.fixture
def managed_app(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    settings = Settings(comfyui_urls=[f"http://127.0.0.1:{free_port()}"],
                        comfyui_dir=make_comfyui_folder(tmp_path / "ComfyUI"), output_dir=tmp_path / "outputs",
                        tiny_model_dir=tiny_model_dir, health_interval_s=0.2, health_timeout_s=0.5)
    app = start_app(settings)
    yield app
    stop_app(app)


def test_status_tab_shows_the_managed_instance_and_stop_start_work(managed_app, ui_page):
    state = managed_app.manager.managed_comfyui_state
    assert wait_until(lambda: state()["instances"][0]["state"] == "up", 30)
    pid, port = state()["instances"][0]["pid"], state()["instances"][0]["port"]
    open_app(ui_page, managed_app.url)
    ui_page.get_by_role("tab", name="System status").click()
    text = wait_text(ui_page, "status-managed", f"answering at http://127.0.0.1:{port}")
    assert "CPU" in text and str(pid) in text
    ui_page.locator("#managed-stop").click()
    wait_text(ui_page, "status-managed", "stopped")
    assert not Path(f"/proc/{pid}").exists()
    assert "Managed ComfyUI (CPU) stopped" in ui_page.locator("#status-switches").inner_text()
    ui_page.locator("#managed-start").click()
    assert wait_until(lambda: state()["instances"][0]["state"] == "up", 30)
    new_pid = state()["instances"][0]["pid"]
    assert new_pid != pid
    wait_text(ui_page, "status-managed", str(new_pid))
    wait_text(ui_page, "status-managed", "answering at")
    ui_page.locator("#status-managed summary").first.click()  # the log's last lines
    assert "fake ComfyUI main.py" in ui_page.locator("#status-managed pre").first.inner_text()
