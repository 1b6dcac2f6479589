"""Settings from the environment, including the ComfyUI URL checks."""
from __future__ import annotations

import pytest

from engine.config import DEFAULT_COMFYUI_URL, Settings, parse_server_urls


def test_default_server_is_local(monkeypatch):
    monkeypatch.delenv("COMFYUI_API_URL", raising=False)
    assert Settings.from_env().comfyui_urls == [DEFAULT_COMFYUI_URL]
    assert DEFAULT_COMFYUI_URL.startswith("http://127.0.0.1")


def test_comma_separated_pool(monkeypatch):
    monkeypatch.setenv("COMFYUI_API_URL", "http://10.0.0.2:8188/, https://gpu.example:443 ,")
    assert Settings.from_env().comfyui_urls == ["http://10.0.0.2:8188", "https://gpu.example:443"]


@pytest.mark.parametrize("bad", ["file:///etc/passwd", "ftp://host/", "127.0.0.1:8188", "javascript:alert(1)", "http://"])
def test_only_http_urls_are_accepted(bad):
    with pytest.raises(ValueError, match="must be http\\(s\\) URLs"):
        parse_server_urls(bad)


def test_env_knobs(monkeypatch, tmp_path):
    monkeypatch.setenv("GATOR_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("GATOR_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("GATOR_HEALTH_INTERVAL", "0.5")
    monkeypatch.setenv("ENABLE_CLOUD_APIS", "1")
    monkeypatch.setenv("GATOR_ENABLE_COMFYUI", "0")
    settings = Settings.from_env()
    assert settings.output_dir == tmp_path / "out" and settings.models_dir == tmp_path / "models"
    assert settings.health_interval_s == 0.5 and settings.enable_cloud_apis and not settings.enable_comfyui
    assert Settings.from_env(health_interval_s=3.0).health_interval_s == 3.0
