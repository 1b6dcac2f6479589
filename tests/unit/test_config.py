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


@pytest.mark.parametrize("bad", ["file:///etc/passwd", "ftp://host/", "127.0.0.1:8188", "javascript:alert(1)", "http://",
                                 "http://localhost:8l88", "http://localhost:99999"])  # a mistyped port
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


def test_a_garbage_model_list_from_a_server_reads_as_none():
    from engine.comfyui import combo_options

    assert combo_options(["COMBO", {"options": None}]) == [] and combo_options(["COMBO", {"options": 5}]) == []
    assert combo_options(["COMBO", {"options": ["a.safetensors"]}]) == ["a.safetensors"]


@pytest.mark.parametrize("variable, value, sentence", [
    ("GATOR_HEALTH_TIMEOUT", "abc", "GATOR_HEALTH_TIMEOUT must be a number above 0 (got 'abc')."),
    ("GATOR_HEALTH_INTERVAL", "0", "GATOR_HEALTH_INTERVAL must be a number above 0 (got '0')."),
    ("GATOR_HEALTH_INTERVAL", "nan", "GATOR_HEALTH_INTERVAL must be a number above 0 (got 'nan')."),
    ("GATOR_GPU_MEMORY_GB", "8GB", "GATOR_GPU_MEMORY_GB must be a number above 0 (got '8GB')."),
    ("GATOR_MAX_PROMPT_CHARS", "5k", "GATOR_MAX_PROMPT_CHARS must be a whole number, 0 to turn the limit off"),
    ("GATOR_MAX_GRID_IMAGES", "-1", "GATOR_MAX_GRID_IMAGES must be a whole number, 0 to turn the limit off"),
])
def test_a_number_setting_that_is_none_is_a_sentence_naming_it(monkeypatch, variable, value, sentence):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as err:
        Settings.from_env()
    assert sentence in str(err.value)


def test_an_empty_number_setting_is_unset(monkeypatch):
    for variable in ("GATOR_HEALTH_TIMEOUT", "GATOR_GPU_MEMORY_GB", "GATOR_MAX_PROMPT_CHARS"):
        monkeypatch.setenv(variable, "")
    settings = Settings.from_env()
    assert settings.health_timeout_s == 2.0 and settings.gpu_memory_gb is None
    assert settings.limits.max_prompt_chars == 5000
