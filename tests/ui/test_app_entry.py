"""app.py as a user runs it: flags, a share link that cannot be made offline, a login."""
from __future__ import annotations

import subprocess
import sys
import time

import httpx
from gradio_client import Client

from tests.ui.conftest import ROOT


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


def test_auth_from_the_environment(run_app):
    url, _ = run_app(GATOR_AUTH="ann:secret")
    assert httpx.get(url + "config", timeout=5).status_code == 401
    status = Client(url, auth=("ann", "secret"), verbose=False).predict(api_name="/status")
    assert status["active"]["demo"] and "tiny demo model" in status["active"]["label"]
