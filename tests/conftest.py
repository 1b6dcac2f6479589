"""Shared fixtures: the tiny diffusers model (built once per session) and managers around it."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.config import Settings  # noqa: E402
from engine.manager import AIModelManager  # noqa: E402
from engine.registry import Hardware  # noqa: E402
from engine.tiny_model import ensure_tiny_model  # noqa: E402
from tests.support.fake_comfyui import FakeComfyUI  # noqa: E402

CPU = Hardware(device="cpu", device_name="CPU", vram_gb=0.0, ram_gb=16.0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny model saved with save_pretrained, shared by every test of the session."""
    return ensure_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def settings(tmp_path, tiny_model_dir) -> Settings:
    """Settings for a local-only manager writing into this test's tmp folder."""
    return Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path / "outputs",
                    tiny_model_dir=tiny_model_dir, models_dir=tmp_path / "models")


@pytest.fixture
async def manager(settings):
    """An initialized AIModelManager on the tiny model, no ComfyUI."""
    mgr = AIModelManager(settings, hardware=CPU)
    await mgr.initialize_models()
    yield mgr
    mgr.shutdown()


class StartedManagers:
    """The managers a test starts (initialized on this machine's CPU), shut down after it."""

    def __init__(self) -> None:
        self.started: list[AIModelManager] = []

    async def start(self, settings: Settings, **options) -> AIModelManager:
        mgr = AIModelManager(settings, hardware=CPU, **options)
        self.started.append(mgr)
        await mgr.initialize_models()
        return mgr

    def shutdown(self) -> None:
        for mgr in self.started:
            mgr.shutdown()


@pytest.fixture
def started_managers():
    managers = StartedManagers()
    yield managers
    managers.shutdown()


@pytest.fixture
def small_sdxl_manager(tmp_path, tiny_model_dir, started_managers):
    """Starts local-only managers whose models folder is the one given and whose SDXL single files load with the
    small SDXL configs (tests/support/ldm_checkpoint.py)."""
    from tests.support.ldm_checkpoint import write_small_sdxl_config

    async def start(models_dir: Path, **settings) -> AIModelManager:
        chosen = dict(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path / "outputs",
                      tiny_model_dir=tiny_model_dir, models_dir=models_dir,
                      pipeline_configs=write_small_sdxl_config(tmp_path / "configs"))
        return await started_managers.start(Settings(**{**chosen, **settings}))

    return start


@pytest.fixture
def fake(request):
    """A fake ComfyUI on a free port; a test module may set FAKE_STEP_DELAY_S (default 0.01 s a step)."""
    server = FakeComfyUI(step_delay_s=getattr(request.module, "FAKE_STEP_DELAY_S", 0.01)).start()
    yield server
    server.close()


@pytest.fixture
async def comfy_manager(fake, tmp_path, tiny_model_dir):
    """An initialized AIModelManager whose ComfyUI is `fake`, with short health and job timeouts."""
    settings = Settings(comfyui_urls=[fake.url], output_dir=tmp_path / "outputs", tiny_model_dir=tiny_model_dir,
                        health_interval_s=0.2, health_timeout_s=0.5, comfyui_timeout_s=3.0)
    mgr = AIModelManager(settings, hardware=CPU)
    await mgr.initialize_models()
    monitor = mgr.backends["comfyui"].monitor
    deadline = time.monotonic() + 10  # a busy machine may answer the first read of the models late: the next poll
    while not any(st.models is not None for st in monitor.snapshot().values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    yield mgr
    mgr.shutdown()
