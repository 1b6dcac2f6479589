"""A backend registered from a test shows in the running app: the badge, the backend choice and the status tab."""
from __future__ import annotations

from engine.backends import register_backend, unregister_backend
from engine.config import Settings
from tests.integration.test_engine_core import SolidColour
from tests.ui.conftest import (fill_image_form, needs_chromium, open_app, start_app, stop_app, wait_progress,
                               wait_text)


@needs_chromium
def test_the_badge_and_status_tab_show_a_registered_backend(new_page, tmp_path, tiny_model_dir):
    register_backend(SolidColour.name, lambda context: SolidColour())
    try:
        app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path / "outputs",
                                 tiny_model_dir=tiny_model_dir, models_dir=tmp_path / "models"))
    finally:
        unregister_backend(SolidColour.name)
    try:
        page = new_page()
        open_app(page, app.url)
        wait_text(page, "backend-badge", "Solid colour · Solid red")
        assert page.locator("#backend-badge").get_attribute("data-backend") == "solid"
        # the badge can show before the tab's radio is drawn on a busy machine: wait for the choice itself
        page.locator("#backend input[value=solid]").wait_for(state="attached", timeout=10_000)
        assert page.locator("#backend input[value=solid]").count() == 1
        fill_image_form(page, "a red square", steps=2, seed=3)
        page.click("#generate")
        assert "solid" in wait_progress(page, "Done")
        page.get_by_role("tab", name="System status").click()
        backends = wait_text(page, "status-backends", "Solid colour")
        assert "paints in red" in backends and "diffusers" in backends
    finally:
        stop_app(app)
