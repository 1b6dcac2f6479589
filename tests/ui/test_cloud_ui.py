"""The cloud backend in the running app: the badge and the result say cloud and its provider, the model picker
and the status tab show the licenses."""
from __future__ import annotations

from engine.config import Settings
from tests.support.fake_inference import FakeInference
from tests.ui.conftest import (fill_image_form, needs_chromium, open_app, start_app, stop_app, wait_progress,
                               wait_text)


@needs_chromium
def test_the_badge_and_the_result_say_cloud_and_the_provider(new_page, tmp_path, tiny_model_dir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite is offline; this talks to a local fake
    with FakeInference() as fake:
        app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path / "outputs",
                                 tiny_model_dir=tiny_model_dir, models_dir=tmp_path / "models",
                                 enable_cloud_apis=True, cloud_base_url=fake.url, cloud_token="hf_test",
                                 prefer="cloud"))
        try:
            page = new_page()
            open_app(page, app.url)
            wait_text(page, "backend-badge", "Cloud (hf-inference) · FLUX.1-schnell")
            assert page.locator("#backend-badge").get_attribute("data-backend") == "cloud"
            fill_image_form(page, "a heron in the reeds", steps=2, seed=3)
            page.click("#generate")
            done = wait_progress(page, "Done")
            assert "cloud" in done.lower() and len(fake.requests) == 1
            page.get_by_role("tab", name="System status").click()
            models = wait_text(page, "status-models", "Apache-2.0")
            assert "license" in models.lower() and "CreativeML Open RAIL++-M" in models
            backends = wait_text(page, "status-backends", "Cloud (hf-inference)")
            assert "FLUX.1-schnell through hf-inference" in backends
        finally:
            stop_app(app)
