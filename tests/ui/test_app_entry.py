"""app.py as a user runs it: flags, a share link that cannot be made offline, a login."""
from __future__ import annotations

import signal
import os
import subprocess
import sys
import time

import httpx
import psutil
from gradio_client import Client

from tests.support.comfyui_folder import make_comfyui_folder
from tests.ui.conftest import ROOT, free_port, wait_until


def test_help_lists_the_flags():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--host", "--port", "--share", "--auth"):
        assert flag in out.stdout


def test_share_without_internet_keeps_serving_locally(run_app):
    url, log = run_app("--share")
    status = Client(url, verbose=False).predict(api_name="/status")
    assert "tiny demo model" in status["active"]["label"]
    time.sleep(0.5)
    text = log.read_text()
    assert "consider --auth" in text and "Could not create a share link" in text


def test_auth_from_the_environment(login_app):  # its logins come from GATOR_AUTH
    url = login_app.url
    assert httpx.get(url + "config", timeout=5).status_code == 401
    status = Client(url, auth=("ann", "a1"), verbose=False).predict(api_name="/status")
    assert status["active"]["demo"] and "tiny demo model" in status["active"]["label"]


def test_sigterm_stops_the_app_and_the_comfyui_it_started(run_app, tmp_path):
    url, log = run_app(GATOR_ENABLE_COMFYUI="1", COMFYUI_DIR=str(make_comfyui_folder(tmp_path / "ComfyUI")),
                       COMFYUI_API_URL=f"http://127.0.0.1:{free_port()}")
    port = url.rstrip("/").rsplit(":", 1)[1]
    app = next(proc for proc in psutil.Process().children() if proc.cmdline()[-2:] == ["--port", port])
    assert wait_until(lambda: any("main.py" in " ".join(c.cmdline()) for c in app.children()), 30), log.read_text()
    comfyui = next(c for c in app.children() if "main.py" in " ".join(c.cmdline()))
    app.send_signal(signal.SIGTERM)
    assert app.wait(timeout=30) == 0  # a clean exit: the server closed, the clean-up ran
    assert wait_until(lambda: not comfyui.is_running() or comfyui.status() == psutil.STATUS_ZOMBIE, 5), log.read_text()
    assert "Stopping (signal 15)" in log.read_text()


def test_a_setting_the_app_cannot_take_is_a_sentence_at_start(tmp_path):
    env = {**os.environ, "GATOR_HEALTH_TIMEOUT": "2s", "GATOR_OUTPUT_DIR": str(tmp_path / "out"),
           "GATOR_ENABLE_COMFYUI": "0"}
    out = subprocess.run([sys.executable, "app.py", "--port", "7997"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode != 0
    assert "Gator Studio cannot start: GATOR_HEALTH_TIMEOUT must be a number above 0 (got '2s')." in out.stderr
    assert "Traceback" not in out.stderr
