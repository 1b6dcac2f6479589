"""Several local workers in the browser (GATOR_DEVICES=cpu,cpu: two real workers on this machine): the result names
the worker that made it, and the System status tab lists the workers with their model, state and jobs."""
from __future__ import annotations

import pytest

from engine.config import Settings
from tests.ui.conftest import generate_one, needs_chromium, start_app, stop_app, wait_text

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def two_worker_app(tmp_path_factory, tiny_model_dir):
    app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path_factory.mktemp("out"),
                             tiny_model_dir=tiny_model_dir, models_dir=tmp_path_factory.mktemp("models"),
                             devices="cpu,cpu"))
    yield app
    stop_app(app)


def test_the_result_names_its_worker_and_the_status_tab_lists_both(two_worker_app, ui_page):
    generate_one(ui_page, two_worker_app.url, "a lantern in fog")
    assert "on cpu #1" in wait_text(ui_page, "result-details", "cpu #1")
    ui_page.get_by_role("tab", name="System status").click()
    ui_page.locator("#status-refresh").click()
    table = wait_text(ui_page, "status-workers", "tiny")  # the tab refreshed after the image
    rows = [line.split("\t") for line in table.splitlines() if line.startswith("cpu #")]
    assert [(row[0], row[3], row[4], row[5]) for row in rows] == [("cpu #1", "idle", "tiny", "1"),
                                                                  ("cpu #2", "idle", "none yet", "0")]
