"""Gradio keeps a copy of every picture the app shows (results, step previews) in its cache folder: the copies are
swept once old, and all of them go when the app stops; the originals stay in the outputs folder."""
from __future__ import annotations

import time
from pathlib import Path

from gradio_client import Client
from PIL import Image

from engine.config import Settings
from tests.ui.conftest import GRADIO_CACHE, RunningApp, start_app, stop_app

SMALL = dict(width=64, height=64, num_inference_steps=2, seed=5)


def copies(app: RunningApp) -> set[Path]:
    """The files this app put in Gradio's cache."""
    return {Path(name) for files in app.demo.temp_file_sets for name in files}


def generated(app: RunningApp, prompt: str) -> set[Path]:
    """Generate through the API; the cache copies that exist afterwards."""
    Client(app.url, verbose=False, download_files=False).predict(prompt, **SMALL, api_name="/generate_image")
    made = {path for path in copies(app) if path.exists()}
    assert made and all(path.is_relative_to(GRADIO_CACHE) for path in made), made
    return made


def test_copies_are_swept_once_old_and_the_originals_stay(tmp_path, tiny_model_dir):
    app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path / "outputs",
                             tiny_model_dir=tiny_model_dir, models_dir=tmp_path / "models"), cache_sweep=(1, 2))
    try:
        made = generated(app, "a fox in the snow")
        deadline = time.monotonic() + 20
        while any(path.exists() for path in made) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(path.exists() for path in made), made
        (original,) = app.saved_images()
        assert Image.open(original).size == (64, 64)
    finally:
        stop_app(app)


def test_every_copy_goes_when_the_app_stops(tmp_path, tiny_model_dir):
    app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path / "outputs",
                             tiny_model_dir=tiny_model_dir, models_dir=tmp_path / "models"))
    try:
        made = generated(app, "a cat on a wall")
        time.sleep(1)
        assert all(path.exists() for path in made)  # a day to go before a sweep takes them
    finally:
        stop_app(app)
    assert not any(path.exists() for path in made), made
    assert len(app.saved_images()) == 1
