"""Your own ComfyUI workflow in the browser: the Image tab's "ComfyUI workflow" box lists the workflows folder, an
uploaded export joins it, choosing one shows what it binds and what stays as in the file, Generate runs it on the fake
ComfyUI (with the form's values in the bound inputs) and the details name it; /comfyui_workflow does the same."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from gradio_client import Client
from PIL import Image

from engine.config import Settings
from tests.support.fake_comfyui import FakeComfyUI
from tests.ui.conftest import (RunningApp, fill_image_form, needs_chromium, open_app, send_first_result, start_app,
                               stop_app, wait_progress, wait_text)
from tests.ui.test_loras_ui import choose

pytestmark = needs_chromium
FOLDER = Path(__file__).parents[1] / "support" / "workflows"


@pytest.fixture(scope="module")
def workflow_app(tmp_path_factory, tiny_model_dir) -> Iterator[tuple[RunningApp, FakeComfyUI]]:
    fake = FakeComfyUI(step_delay_s=0.01).start()
    workflows = tmp_path_factory.mktemp("workflows")
    shutil.copy(FOLDER / "sd15_default.json", workflows / "sd15_default.json")
    app = start_app(Settings(comfyui_urls=[fake.url], output_dir=tmp_path_factory.mktemp("out"),
                             tiny_model_dir=tiny_model_dir, models_dir=tmp_path_factory.mktemp("no-models"),
                             health_interval_s=0.5, health_timeout_s=0.5, comfyui_timeout_s=5.0,
                             workflows_dir_override=workflows))
    yield app, fake
    stop_app(app)
    fake.close()


def test_choose_a_workflow_generate_and_the_details_show_it(desktop, workflow_app):
    app, fake = workflow_app
    page = desktop
    open_app(page, app.url)
    fill_image_form(page, "a fox in a workflow", width=128, height=96, steps=3, seed=77)
    page.locator("#workflow-box").get_by_text("ComfyUI workflow").first.click()
    # an upload joins the list and is chosen
    page.locator("#workflow-upload input[type=file]").set_input_files(str(FOLDER / "flux_custom_sampler.json"))
    summary = wait_text(page, "workflow-summary", "RandomNoise.noise_seed")
    assert "node 11 DualCLIPLoader" in summary
    choose(page, "user-workflow", "sd15_default")
    summary = wait_text(page, "workflow-summary", "node 6 CLIPTextEncode.text")
    assert "As in the file" in summary and "node 9 SaveImage: filename_prefix=\"ComfyUI\"" in summary
    page.click("#generate")
    wait_progress(page, "Done", 60_000)
    details = wait_text(page, "result-details", "ComfyUI workflow")
    assert "ComfyUI workflow** sd15_default" in details or "ComfyUI workflow sd15_default" in details, details
    sent = fake.prompts[-1]
    assert sent["6"]["inputs"]["text"] == "a fox in a workflow" and sent["3"]["inputs"]["seed"] == 77
    assert (sent["5"]["inputs"]["width"], sent["5"]["inputs"]["height"]) == (128, 96)
    assert sent["4"]["inputs"]["ckpt_name"] == "tiny-sd15.safetensors"
    made = max(app.output_dir.rglob("*.png"), key=lambda p: p.stat().st_mtime)
    assert json.loads(Image.open(made).text["prompt"]) == sent
    # Reuse puts the workflow back (after it was set to none)
    choose(page, "user-workflow", "none")
    send_first_result(page, "reuse-parameters", "loaded into the settings")
    assert page.locator("#user-workflow input").input_value() == "sd15_default"
    # the API endpoint runs the same workflow
    path, info = Client(app.url, verbose=False).predict("a fox by API", "sd15_default", width=64, height=64,
                                                        num_inference_steps=2, seed=3, api_name="/comfyui_workflow")
    assert info["user_workflow"] == "sd15_default" and fake.prompts[-1]["6"]["inputs"]["text"] == "a fox by API"
    assert Path(path).exists()


def test_a_file_put_in_the_folder_by_hand_is_offered_without_a_restart(desktop, workflow_app):
    app, _ = workflow_app
    page = desktop
    open_app(page, app.url)
    page.locator("#workflow-box").get_by_text("ComfyUI workflow").first.click()
    shutil.copy(FOLDER / "sd15_default.json", app.manager.settings.workflows_dir / "by_hand.json")
    page.wait_for_timeout(3000)  # the status tick (every second) that refreshes the lists
    choose(page, "user-workflow", "by_hand")
    wait_text(page, "workflow-summary", "node 6 CLIPTextEncode.text")
