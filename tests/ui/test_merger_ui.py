"""The Checkpoint merger in the browser: on the System status tab it lists the checkpoint files, merges two into a new
one that the model list offers at once, and says in a sentence what cannot be merged."""
from __future__ import annotations

import shutil
from typing import Iterator

import pytest

from engine.config import Settings
from tests.support.ldm_checkpoint import cached_checkpoint, write_small_sdxl_config
from tests.ui.conftest import RunningApp, needs_chromium, open_app, start_app, stop_app, wait_text, wait_until

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def merger_app(tmp_path_factory, tiny_model_dir) -> Iterator[RunningApp]:
    models = tmp_path_factory.mktemp("models")
    (models / "oneXL.safetensors").symlink_to(cached_checkpoint("sdxl-small"))
    shutil.copy(cached_checkpoint("sdxl-small"), models / "twoXL.safetensors")  # a link to the same file: one entry
    app = start_app(Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path_factory.mktemp("out"),
                             tiny_model_dir=tiny_model_dir, models_dir=models,
                             pipeline_configs=write_small_sdxl_config(tmp_path_factory.mktemp("configs"))))
    yield app
    stop_app(app)


def choose(page, elem_id: str, name: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id}").get_by_role("option", name=name, exact=True).click()


def test_two_checkpoints_merge_into_one_the_model_list_offers(desktop, merger_app):
    page = desktop
    open_app(page, merger_app.url)
    page.get_by_role("tab", name="System status").click()
    page.locator("#merger-box").get_by_text("Checkpoint merger").click()
    choose(page, "merge-a", "oneXL")
    choose(page, "merge-b", "twoXL")
    page.locator("#merge-name input").fill("bothXL")
    page.click("#merge")
    note = wait_text(page, "merge-note", "Merged oneXL and twoXL", timeout_ms=60_000)
    assert "into bothXL.safetensors: it is in the model list as bothXL." in note
    assert wait_until(lambda: any(m["id"] == "bothXL" and m["available"]
                                  for m in merger_app.manager.available_models()), 10)
    page.click("#merge")  # the same name again: a sentence, nothing overwritten
    wait_text(page, "merge-note", "A model named bothXL is already listed (names are matched without case)")
