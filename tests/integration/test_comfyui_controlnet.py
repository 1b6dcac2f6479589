"""ControlNet on ComfyUI, against the fake ComfyUI (real sockets, ComfyUI 0.3.64's node types and checks): the control
map is uploaded to the server that runs the job and the graph gets LoadImage -> ControlNetLoader ->
ControlNetApplyAdvanced between the prompts and the sampler, with the weight and the guidance start and end; only a
server whose ControlNetLoader lists the file is used; a server that dies mid-request is finished locally with the
same ControlNet (the same pixels as a local run); a graph whose links have the wrong types is refused as ComfyUI
refuses it."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.comfyui import ComfyUIClient, ComfyUIValidationError
from engine.config import Settings
from engine.controlnet import CANNY, preprocess
from engine.manager import AIModelManager
from engine.png_info import comfyui_parameters
from engine.workflows import WorkflowError, bind, load_template, use_controlnet
from tests.conftest import CPU
from tests.integration.test_comfyui_img2img import by_class, flux_custom_graph, init_picture, sd_graph
from tests.integration.test_controlnet_local import control_picture
from tests.support.tiny_controlnet import write_tiny_controlnet

TINY = "comfyui:tiny-sd15.safetensors"
RUN = dict(num_inference_steps=3, seed=11, width=64, height=64, model=TINY, backend="comfyui")
CONTROL = dict(controlnet="control_v11p_sd15_canny", controlnet_weight=0.7, controlnet_start=0.1, controlnet_end=0.8)


@pytest.fixture
async def cn_comfy(fake, tmp_path, tiny_model_dir):
    """A manager on `fake` (which also lists the tiny ControlNet) with the tiny ControlNet in its models folder."""
    fake.controlnets.append("tinyCanny.safetensors")
    write_tiny_controlnet(tmp_path / "models", tiny_model_dir)
    settings = Settings(comfyui_urls=[fake.url], output_dir=tmp_path / "outputs", tiny_model_dir=tiny_model_dir,
                        models_dir=tmp_path / "models", health_interval_s=0.2, health_timeout_s=0.5,
                        comfyui_timeout_s=3.0)
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    yield manager
    manager.shutdown()


def the_control(graph: dict) -> tuple[str, dict, dict]:
    """(the control map's uploaded name, the ControlNetLoader's inputs, the ControlNetApplyAdvanced's inputs) of a
    graph, checking every link from the prompts through the ControlNet to the sampler."""
    (apply_id, apply), = by_class(graph, "ControlNetApplyAdvanced").items()
    (loader_id, loader), = by_class(graph, "ControlNetLoader").items()
    (sampler,) = by_class(graph, "KSampler").values()
    loads = {nid: inputs["image"] for nid, inputs in by_class(graph, "LoadImage").items()}
    assert apply["control_net"] == [loader_id, 0] and apply["image"][0] in loads and apply["image"][1] == 0
    assert sampler["positive"] == [apply_id, 0] and sampler["negative"] == [apply_id, 1]
    assert graph[apply["positive"][0]]["class_type"] == graph[apply["negative"][0]]["class_type"] == "CLIPTextEncode"
    return loads[apply["image"][0]], loader, apply


def pixels(result, backend: str = "comfyui") -> np.ndarray:
    assert result.status == "success", result.error
    assert result.backend == backend, result.fallback_reason
    return np.asarray(result.image.convert("RGB")).astype(int)


async def test_the_graph_gets_the_controlnet_between_the_prompts_and_the_sampler(cn_comfy, fake):
    plain = pixels(await cn_comfy.generate_image("a fox", **RUN))
    result = await cn_comfy.generate_image("a fox", control_image=control_picture(), **CONTROL, **RUN)
    steered = pixels(result)
    graph = fake.prompts[-1]
    name, loader, apply = the_control(graph)
    assert loader == {"control_net_name": "control_v11p_sd15_canny.safetensors"}
    assert (apply["strength"], apply["start_percent"], apply["end_percent"]) == (0.7, 0.1, 0.8)
    uploaded = Image.open(io.BytesIO(fake.uploads[name]))
    assert name.startswith("gator-control") and uploaded.size == (64, 64)
    assert np.array_equal(np.asarray(uploaded.convert("RGB")), np.asarray(preprocess(control_picture(), CANNY)))
    assert np.abs(steered - plain).mean() > 1  # the fake mixes the control map in, as the ControlNet steers
    assert (result.controlnet, result.controlnet_weight, result.controlnet_start) == ("control_v11p_sd15_canny", 0.7,
                                                                                      0.1)
    read = comfyui_parameters(graph)  # PNG info of a ComfyUI PNG: the prompts through the ControlNet, its values
    assert (read["prompt"], read["controlnet"], read["controlnet_module"]) == ("a fox", "control_v11p_sd15_canny",
                                                                             "none")
    assert (read["controlnet_weight"], read["controlnet_start"], read["controlnet_end"]) == (0.7, 0.1, 0.8)
    zero = pixels(await cn_comfy.generate_image("a fox", control_image=control_picture(),
                                                **{**CONTROL, "controlnet_weight": 0}, **RUN))
    assert the_control(fake.prompts[-1])[2]["strength"] == 0.0 and np.array_equal(zero, plain)  # ComfyUI skips it


async def test_with_an_init_image_both_images_are_uploaded(cn_comfy, fake):
    result = await cn_comfy.generate_image("a fox", init_image=init_picture(), strength=0.5,
                                           control_image=control_picture(), **CONTROL,
                                           **{**RUN, "width": None, "height": None})
    assert pixels(result).shape == (64, 96, 3)
    graph = fake.prompts[-1]
    (encode_id, encode), = by_class(graph, "VAEEncode").items()
    (sampler,) = by_class(graph, "KSampler").values()
    init_name = graph[encode["pixels"][0]]["inputs"]["image"]
    control_name, _, _ = the_control(graph)
    assert sampler["latent_image"] == [encode_id, 0]
    assert init_name != control_name and sampler["denoise"] == 0.5
    assert Image.open(io.BytesIO(fake.uploads[control_name])).size == (96, 64)  # fitted as the init image is


async def test_only_a_server_with_the_controlnet_runs_it(cn_comfy, fake):
    forced = await cn_comfy.generate_image("a fox", control_image=control_picture(),
                                           **{**CONTROL, "controlnet": "tinyCannyXL"}, **RUN)
    assert forced.status == "error" and "The ControlNet 'tinyCannyXL' is not installed on any running ComfyUI server " \
                                        "with tiny-sd15 (ComfyUI)." in forced.error
    fake.controlnets.remove("tinyCanny.safetensors")
    cn_comfy.backends["comfyui"].monitor.refresh_models(fake.url)
    cn_comfy.backends["comfyui"].monitor.poll_now()
    auto = await cn_comfy.generate_image("a fox", control_image=control_picture(), controlnet="tinyCanny",
                                         **{**RUN, "backend": "auto", "model": None})
    pixels(auto, "diffusers")
    assert "The ControlNet 'tinyCanny' is not installed" in auto.fallback_reason


async def test_a_server_dying_mid_request_is_finished_locally_with_the_same_controlnet(cn_comfy, fake):
    unit = dict(control_image=control_picture(), controlnet="tinyCanny", controlnet_weight=0.9)
    auto = {**RUN, "backend": "auto", "model": None}
    fake.drop_socket_after_step(1)
    moved = await cn_comfy.generate_image("a fox", **unit, **auto)
    assert fake.prompts and by_class(fake.prompts[-1], "ControlNetApplyAdvanced")  # it started there with one
    assert moved.fallback_reason and "stopped answering" in moved.fallback_reason
    local = await cn_comfy.generate_image("a fox", **unit, **{**RUN, "backend": "diffusers", "model": "tiny"})
    plain = await cn_comfy.generate_image("a fox", **{**RUN, "backend": "diffusers", "model": "tiny"})
    assert np.array_equal(pixels(moved, "diffusers"), pixels(local, "diffusers"))
    assert not np.array_equal(pixels(local, "diffusers"), pixels(plain, "diffusers"))
    assert moved.controlnet == "tinyCanny" and moved.controlnet_weight == 0.9


async def test_the_lists_show_both_backends_controlnets(cn_comfy, fake):
    listed = {entry["name"]: entry["backends"] for entry in cn_comfy.available_controlnets()}
    assert listed["tinyCanny"] == ["comfyui", "diffusers"] and listed["control_v11p_sd15_canny"] == ["comfyui"]
    assert listed["tinyCanny-diffusers"] == ["diffusers"]


async def test_links_of_the_wrong_type_are_refused_as_comfyui_refuses_them(fake):
    graph = use_controlnet(sd_graph(), "control_v11p_sd15_canny.safetensors", "missing.png", 1.0, 0.0, 1.0)
    (apply_id,) = by_class(graph, "ControlNetApplyAdvanced")
    graph[apply_id]["inputs"]["image"] = ["4", 1]  # CLIP where an IMAGE belongs
    graph[apply_id]["inputs"]["strength"] = 11.0
    with pytest.raises(ComfyUIValidationError) as refused:
        await ComfyUIClient(fake.url).submit(graph, "test")
    text = str(refused.value)
    assert "Return type mismatch between linked nodes: image, received_type(CLIP) mismatch input_type(IMAGE)" in text
    assert "Value 11.0 bigger than max of 10.0" in text


def test_use_controlnet_splices_one_apply_per_prompt_pair():
    graph = sd_graph()
    graph["30"] = {**graph["3"], "inputs": {**graph["3"]["inputs"]}}  # a second sampler on the same prompts
    out = use_controlnet(graph, "c.safetensors", "map.png", 0.5, 0.0, 1.0)
    assert out["31"] == {"class_type": "LoadImage", "inputs": {"image": "map.png"}}
    assert out["32"] == {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "c.safetensors"}}
    assert out["33"]["inputs"]["positive"] == ["6", 0] and out["33"]["inputs"]["negative"] == ["7", 0]
    assert out["3"]["inputs"]["positive"] == out["30"]["inputs"]["positive"] == ["33", 0]
    assert len(by_class(out, "ControlNetApplyAdvanced")) == 1
    assert graph["3"]["inputs"]["positive"] == ["6", 0]  # the input graph stays untouched
    with pytest.raises(WorkflowError, match="no sampler with positive and negative conditioning"):
        use_controlnet(flux_custom_graph(), "c.safetensors", "map.png", 1.0, 0.0, 1.0)
    assert by_class(use_controlnet(bind(load_template("checkpoint_generic"), {}), "c", "m", 1, 0, 1),
                    "ControlNetApplyAdvanced")
