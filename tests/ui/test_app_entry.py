"""app.py as a user runs it: flags, a share link that cannot be made offline, a login."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def run_app(tmp_path, tiny_model_dir):
    procs = []

    def start(*flags: str, **env: str):
        port = free_port()
        log = tmp_path / f"app-{port}.log"
        inherited = {k: v for k, v in os.environ.items() if k != "GATOR_AUTH"}
        environment = {**inherited, "GATOR_ENABLE_COMFYUI": "0", "GATOR_TINY_MODEL_DIR": str(tiny_model_dir),
                       "GATOR_OUTPUT_DIR": str(tmp_path / "outputs"), "GATOR_MODELS_DIR": str(tmp_path / "models"),
                       "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                       # a share server that cannot answer: no public link is ever made from a test
                       "GRADIO_SHARE_SERVER_ADDRESS": "127.0.0.1:9", **env}
        handle = log.open("w")
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *flags], cwd=ROOT, env=environment,
                                stdout=handle, stderr=subprocess.STDOUT)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url + "gradio_api/info", timeout=1).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"app.py did not answer on {url}:\n{log.read_text()}")
        return url, log

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


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
    assert status["active"]["backend"] == "tiny"
