"""Security checks: what Gradio serves, where the app listens, and what reaches ComfyUI's /view."""
from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from tests.ui.conftest import run_coroutine

ROOT = Path(__file__).resolve().parents[2]


def fetch(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10, follow_redirects=False)


@pytest.fixture(scope="module")
def saved_image(local_app) -> Path:
    result = run_coroutine(local_app.manager.generate_image("a lock", width=64, height=64, num_inference_steps=1,
                                                            seed=1))
    return Path(result["path"])


def test_outputs_are_served(local_app, saved_image):
    response = fetch(f"{local_app.url}gradio_api/file={saved_image}")
    assert response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("target", [
    "/etc/passwd",
    str(ROOT / "app.py"),
    str(ROOT / "engine" / "config.py"),
    "{outputs}/../../../../etc/passwd",
    "{outputs}/..%2F..%2F..%2Fetc%2Fpasswd",
    str(Path.home() / ".bashrc"),
])
def test_no_file_outside_the_outputs_folder(local_app, saved_image, target):
    path = target.format(outputs=saved_image.parent)
    response = fetch(f"{local_app.url}gradio_api/file={path}")
    assert response.status_code in (403, 404), (path, response.status_code)
    assert b"root:" not in response.content and b"import" not in response.content


def test_app_listens_on_loopback_only_by_default(app_process):
    url, _ = app_process
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    listening = [c.laddr for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
