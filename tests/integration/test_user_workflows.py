"""The user's own ComfyUI workflows through the manager, against the fake ComfyUI (real sockets): the graph the
server receives is the file's with only the bound inputs replaced; a node class the server lacks is a sentence naming
it and the server, with no local fallback; the PNG carries the graph in ComfyUI's `prompt` chunk and PNG info reads it
back."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import Settings
from engine.manager import AIModelManager
from engine.png_info import comfyui_parameters, png_info
from tests.conftest import CPU

FOLDER = Path(__file__).parents[1] / "support" / "workflows"


@pytest.fixture
async def manager(fake, tmp_path, tiny_model_dir):
    shutil.copytree(FOLDER, tmp_path / "workflows")
    settings = Settings(comfyui_urls=[fake.url], output_dir=tmp_path / "outputs", tiny_model_dir=tiny_model_dir,
                        health_interval_s=0.2, health_timeout_s=0.5, comfyui_timeout_s=3.0,
                        workflows_dir_override=tmp_path / "workflows")
    mgr = AIModelManager(settings, hardware=CPU)
    await mgr.initialize_models()
    yield mgr
    mgr.shutdown()


def original(name: str) -> dict:
    return json.loads((FOLDER / f"{name}.json").read_text())


async def test_the_server_gets_the_file_with_only_the_bound_values_replaced(manager, fake):
    result = await manager.generate_image("a fox in the snow", negative_prompt="blurry", width=256, height=192,
                                          steps=3, guidance=5.5, seed=42, sampler="dpmpp_2m_karras",
                                          user_workflow="sd15_default")
    assert result.status == "success", result.error
    sent = fake.prompts[-1]
    expected = copy.deepcopy(original("sd15_default"))
    expected["6"]["inputs"]["text"], expected["7"]["inputs"]["text"] = "a fox in the snow", "blurry"
    expected["3"]["inputs"].update(seed=42, steps=3, cfg=5.5, sampler_name="dpmpp_2m", scheduler="karras")
    expected["5"]["inputs"].update(width=256, height=192)
    assert json.dumps(sent, sort_keys=True) == json.dumps(expected, sort_keys=True)  # _meta, batch_size, prefix...
    assert (result.width, result.height) == (256, 192)
    assert result.user_workflow == result.comfyui_workflow == "sd15_default" and result.backend == "comfyui"
    assert result.model == "tiny-sd15 (ComfyUI)"


async def test_the_png_carries_the_graph_and_png_info_reads_it_back(manager, fake):
    result = await manager.generate_image("a red boat", negative_prompt="fog", width=128, height=128, steps=4,
                                          guidance=6.0, seed=7, user_workflow="sd15_default")
    assert result.status == "success", result.error
    with Image.open(result.path) as image:
        chunk = json.loads(image.text["prompt"])
        assert "ComfyUI workflow: sd15_default" in image.text["parameters"]
    assert chunk == fake.prompts[-1]
    read = comfyui_parameters(chunk)
    assert {k: read[k] for k in ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale",
                                 "width", "height", "model")} == {
        "prompt": "a red boat", "negative_prompt": "fog", "seed": 7, "num_inference_steps": 4, "guidance_scale": 6.0,
        "width": 128, "height": 128, "model": "tiny-sd15.safetensors"}
    info = png_info(result.path)
    assert info["user_workflow"] == "sd15_default" and info["prompt"] == "a red boat" and info["seed"] == 7


async def test_sdxl_advanced_and_flux_custom_sampler_run_with_their_own_models(manager, fake):
    fake.checkpoints.append("sd_xl_base_1.0.safetensors")
    fake.install_flux()
    await manager.rescan_models()
    sdxl = await manager.generate_image("a lighthouse", steps=2, seed=3, width=128, height=64,
                                        user_workflow="sdxl_advanced")
    assert sdxl.status == "success", sdxl.error
    node = fake.prompts[-1]["10"]["inputs"]
    assert (node["noise_seed"], node["steps"], node["start_at_step"]) == (3, 2, 0)
    flux = await manager.generate_image("a lighthouse", steps=2, seed=5, width=128, height=64, guidance=2.5,
                                        user_workflow="flux_custom_sampler")
    assert flux.status == "success", flux.error
    sent = fake.prompts[-1]
    assert sent["25"]["inputs"]["noise_seed"] == 5 and sent["17"]["inputs"]["steps"] == 2
    assert sent["26"]["inputs"]["guidance"] == 2.5 and sent["30"]["inputs"]["width"] == 128
    assert sent["12"]["inputs"] == original("flux_custom_sampler")["12"]["inputs"]
    assert flux.image.size == (128, 64)


async def test_load_image_takes_the_uploaded_init_image_and_the_strength(manager, fake):
    init = Image.fromarray((np.indices((64, 96)).sum(0) % 256).astype(np.uint8)).convert("RGB")
    result = await manager.generate_image("wings", init_image=init, strength=0.4, steps=2, seed=1,
                                          user_workflow="sd15_img2img")
    assert result.status == "success", result.error
    sent = fake.prompts[-1]
    assert sent["2"]["inputs"]["image"] in fake.uploads and sent["6"]["inputs"]["denoise"] == 0.4
    assert set(sent) == set(original("sd15_img2img"))
    missing = await manager.generate_image("wings", steps=2, user_workflow="sd15_img2img")
    assert missing.status == "error" and "starts from an image (LoadImage, node 2): add an init image" in missing.error


async def test_a_missing_custom_node_names_it_and_the_server_and_nothing_runs_locally(manager, fake):
    sent_before = len(fake.prompts)
    result = await manager.generate_image("a cat", steps=2, user_workflow="sd15_custom_node")
    assert result.status == "error"
    assert f"uses the node \"UltimateSDUpscale\", which ComfyUI at {fake.url} does not have" in result.error
    assert "runs only on ComfyUI, so it was not run on this machine" in result.error
    assert len(fake.prompts) == sent_before  # never sent


async def test_no_server_up_is_a_sentence_not_a_local_run(manager, fake):
    fake.stop()
    manager.backends["comfyui"].monitor.poll_now()
    result = await manager.generate_image("a cat", steps=2, user_workflow="sd15_default")
    assert result.status == "error" and result.backend is None
    assert fake.url in result.error and "only on ComfyUI, so " in result.error
    assert "not run on this machine" in result.error
    forced = await manager.generate_image("a cat", steps=2, backend="diffusers", user_workflow="sd15_default")
    assert forced.status == "error" and "cannot make your own ComfyUI workflows" in forced.error


async def test_unknown_workflow_and_hires_are_sentences(manager):
    unknown = await manager.generate_image("a cat", user_workflow="nope")
    assert unknown.status == "error" and "The workflow 'nope' is not in" in unknown.error
    hires = await manager.generate_image("a cat", hires_scale=2, user_workflow="sd15_default")
    assert hires.status == "error" and "the hires fix cannot be added to it" in hires.error


async def test_a_seed_the_file_links_from_another_node_is_said_on_the_result(manager, fake, tmp_path):
    graph = original("sd15_default")
    graph["20"] = {"class_type": "PrimitiveInt", "inputs": {"value": 7}}  # as seed nodes of custom packs do
    graph["3"]["inputs"]["seed"] = ["20", 0]
    (tmp_path / "workflows" / "linked_seed.json").write_text(json.dumps(graph))
    result = await manager.generate_image("a fox", width=128, height=128, steps=2, seed=100,
                                          user_workflow="linked_seed")
    assert result.status == "success", result.error
    assert any("takes no seed from the app" in warning for warning in result.warnings), result.warnings
    bound = await manager.generate_image("a fox", width=128, height=128, steps=2, seed=100,
                                         user_workflow="sd15_default")
    assert not any("seed" in warning for warning in bound.warnings)


def test_the_manager_lists_summarizes_and_saves_uploads(manager, tmp_path):
    assert "sd15_default" in manager.available_workflows()
    summary = manager.workflow_summary("flux_custom_sampler")
    assert summary["binds"]["Seed"] == "node 25 RandomNoise.noise_seed"
    assert any(line.startswith("node 11 DualCLIPLoader") for line in summary["kept"])
    assert "error" in manager.workflow_summary("nope")
    added = manager.add_workflow("mine.json", (FOLDER / "sdxl_advanced.json").read_text())
    assert added["name"] == "mine" and "mine" in manager.available_workflows()
    refused = manager.add_workflow("ui.json", json.dumps({"nodes": [], "links": []}))
    assert "UI format" in refused["error"] and "ui" not in manager.available_workflows()


def add_workflow_file(tmp_path: Path, name: str, graph: dict) -> None:
    (tmp_path / "workflows" / f"{name}.json").write_text(json.dumps(graph))


async def test_a_graph_queued_without_its_result_is_an_error_not_another_picture(manager, fake, tmp_path):
    """The checkpoint went missing after the server's lists were read: ComfyUI queues only the PreviewImage of the
    init image (it validates) and answers 200 with the SaveImage branch's node_errors. The prompt is deleted and the
    request fails with the sentence a 400 gives, never the preview of the input as the result."""
    graph = original("sd15_img2img")
    graph["50"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    add_workflow_file(tmp_path, "img2img_preview", graph)
    fake.checkpoints = []
    fake.node_delay_s = 0.1  # the preview job is still queued or running when the client answers the 200
    result = await manager.generate_image("wings", init_image=Image.new("RGB", (96, 64), (0, 200, 0)), strength=0.4,
                                          steps=2, seed=1, user_workflow="img2img_preview")
    assert result.status == "error"
    assert 'ComfyUI cannot run this workflow: tiny-sd15.safetensors is not installed (CheckpointLoaderSimple ' \
           '"ckpt_name" on node 1)' in result.error
    queued = fake.prompt_ids[-1]
    assert queued in fake.deletes or {"prompt_id": queued} in fake.interrupts
    assert fake.view_requests == []


async def test_a_side_output_comfyui_leaves_out_is_a_warning_when_the_result_still_runs(manager, fake, tmp_path):
    graph = original("sd15_default")
    graph["60"] = {"class_type": "LoadImage", "inputs": {"image": "gone.png"}}  # a side branch the server refuses
    graph["61"] = {"class_type": "PreviewImage", "inputs": {"images": ["60", 0]}}
    add_workflow_file(tmp_path, "side_preview", graph)
    result = await manager.generate_image("a fox", width=128, height=128, steps=2, seed=1, user_workflow="side_preview")
    assert result.status == "success", result.error
    assert any(w.startswith("ComfyUI left out output(s) 61 of the graph") for w in result.warnings), result.warnings


async def test_the_result_is_the_bound_samplers_image_and_only_it_is_downloaded(manager, fake, tmp_path):
    """Two branches saved by two SaveImage nodes, the bound one with a batch of 2: the result is the first image of
    the SaveImage downstream of the bound sampler (node 9: the request's size), the only one fetched; a warning says
    what was left out."""
    graph = original("sd15_default")
    graph["5"]["inputs"]["batch_size"] = 2
    graph["13"] = copy.deepcopy(graph["3"])
    graph["13"]["inputs"].update(latent_image=["15", 0], positive=["16", 0])
    graph["15"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 320, "height": 320, "batch_size": 1}}
    graph["16"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle", "clip": ["4", 1]}}
    graph["18"] = {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["4", 2]}}
    graph["19"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "second", "images": ["18", 0]}}
    add_workflow_file(tmp_path, "two_saves", graph)
    result = await manager.generate_image("a fox", width=256, height=192, steps=2, seed=42, user_workflow="two_saves")
    assert result.status == "success", result.error
    assert (result.width, result.height) == (256, 192) and fake.view_requests == ["ComfyUI_00001_.png"]
    assert "The ComfyUI graph made 3 images (node 9 SaveImage: 2, node 19 SaveImage: 1); the first of node 9 " \
           "SaveImage is this result, the others were left out." in result.warnings
