"""LoRAs on ComfyUI, against the fake ComfyUI (real sockets): the LoRA list comes from /object_info; a request
with LoRAs runs only on a server that has them all, with a LoraLoader per LoRA chained after the model's loader;
the prompt tag and the parameter send the same graph; an unknown LoRA is a sentence naming it and the servers;
a request without LoRAs sends the graph it always did."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.backends.comfyui import ComfyUIBackend
from engine.comfyui import (
    ComfyUIClient, ComfyUIValidationError, InstalledModels, installed_models_from_object_info, match_file,
)
from engine.config import Settings
from engine.errors import BackendUnavailable
from engine.events import Produced
from engine.health import HealthMonitor
from engine.prompt_syntax import LoraUse
from engine.request import GenerationRequest
from engine.workflows import WorkflowError, add_loras, bind, load_template
from tests.support.fake_comfyui import DEFAULT_LORAS, FakeComfyUI

SMALL = dict(width=64, height=64, num_inference_steps=3, seed=11)
DETAIL = [{"name": "detail_tweaker", "weight": 0.7}]
TINY = "comfyui:tiny-sd15.safetensors"


def pixels(result) -> np.ndarray:
    assert result.status == "success", result.error
    assert result.backend == "comfyui", result.fallback_reason
    return np.asarray(result.image)


def by_class(graph: dict, class_type: str) -> dict[str, dict]:
    return {nid: node["inputs"] for nid, node in graph.items() if node["class_type"] == class_type}


def lora_chain(graph: dict) -> list[tuple[str, dict]]:
    """The LoraLoader nodes from the one fed by the checkpoint to the one the sampler uses."""
    loaders = by_class(graph, "LoraLoader")
    (sampler,) = by_class(graph, "KSampler").values()
    chain = []
    link = sampler["model"]
    while link[0] in loaders:
        chain.insert(0, (link[0], loaders[link[0]]))
        link = loaders[link[0]]["model"]
    assert len(chain) == len(loaders), "every LoraLoader is on the sampler's model chain"
    return chain


# ---------------------------------------------------------------------------- what the server has
def test_lora_files_are_read_from_object_info_in_both_list_forms():
    classic = {"LoraLoader": {"input": {"required": {"lora_name": [["a.safetensors", "sub/b.safetensors"],
                                                                  {"tooltip": "The name of the LoRA."}]}}}}
    combo_v3 = {"LoraLoader": {"input": {"required": {"lora_name": ["COMBO", {"options": ["c.safetensors"]}]}}}}
    assert installed_models_from_object_info(classic).loras == ["a.safetensors", "sub/b.safetensors"]
    assert installed_models_from_object_info(combo_v3).loras == ["c.safetensors"]
    assert installed_models_from_object_info({}).loras == []
    models = installed_models_from_object_info(classic)
    copied = models.copy()
    copied.loras.append("d.safetensors")
    assert copied.loras != models.loras and models.copy() == models


async def test_client_monitor_and_backend_list_the_fake_s_loras(fake):
    assert (await ComfyUIClient(fake.url).installed_models()).loras == DEFAULT_LORAS
    info = await ComfyUIClient(fake.url).object_info("LoraLoader")
    assert info["output"] == ["MODEL", "CLIP"]
    assert list(info["input"]["required"]) == ["model", "clip", "lora_name", "strength_model", "strength_clip"]
    fake.loras = ["only_one.safetensors"]
    monitor = HealthMonitor([fake.url])
    st = monitor.poll_now()[fake.url]
    assert st.models.loras == ["only_one.safetensors"]
    backend = ComfyUIBackend(Settings(comfyui_urls=[fake.url]), monitor)
    assert backend.loras() == {"only_one": None}
    assert backend.state().servers[0]["models"]["loras"] == ["only_one.safetensors"]


@pytest.mark.parametrize("name, found", [
    ("detail_tweaker", "detail_tweaker.safetensors"),
    ("Detail_Tweaker", "detail_tweaker.safetensors"),
    ("detail_tweaker.safetensors", "detail_tweaker.safetensors"),
    ("pixel_art_xl", "sdxl/pixel_art_xl.safetensors"),
    ("sdxl/pixel_art_xl", "sdxl/pixel_art_xl.safetensors"),
    ("SDXL/Pixel_Art_XL.safetensors", "sdxl/pixel_art_xl.safetensors"),
    ("win", "styles\\Win.safetensors"),
    ("styles/win", "styles\\Win.safetensors"),
    ("detail", None),
    ("tweaker", None),
    ("", None),
])
def test_a_lora_name_means_a_file_by_full_name_or_stem(name, found):
    files = [*DEFAULT_LORAS, "styles\\Win.safetensors"]
    assert match_file(name, files) == found
    assert InstalledModels(loras=files).lora_file(name) == found


# ---------------------------------------------------------------------------- the graph
def test_lora_loaders_chain_after_the_checkpoint_and_take_over_its_consumers():
    graph = bind(load_template("checkpoint_generic"), {"ckpt_name": "tiny-sd15.safetensors"})
    out = add_loras(graph, [("a.safetensors", 0.7), ("sub/b.safetensors", -0.5)])
    assert graph == bind(load_template("checkpoint_generic"), {"ckpt_name": "tiny-sd15.safetensors"})  # untouched
    assert set(out) - set(graph) == {"10", "11"}  # after the highest id (9): no clash
    assert out["10"] == {"class_type": "LoraLoader", "inputs": {
        "model": ["4", 0], "clip": ["4", 1], "lora_name": "a.safetensors", "strength_model": 0.7, "strength_clip": 0.7}}
    assert out["11"] == {"class_type": "LoraLoader", "inputs": {
        "model": ["10", 0], "clip": ["10", 1], "lora_name": "sub/b.safetensors", "strength_model": -0.5,
        "strength_clip": -0.5}}
    assert out["3"]["inputs"]["model"] == ["11", 0]
    assert out["6"]["inputs"]["clip"] == out["7"]["inputs"]["clip"] == ["11", 1]
    assert out["8"]["inputs"]["vae"] == ["4", 2]  # the VAE is not the LoRA's
    assert {k: v for k, v in out.items() if k not in ("3", "6", "7", "10", "11")} == \
        {k: v for k, v in graph.items() if k not in ("3", "6", "7")}


def test_flux_split_takes_model_from_unet_and_clip_from_dual_clip_loader():
    graph = bind(load_template("flux1_dev_split"), {})
    out = add_loras(graph, [("flux_style.safetensors", 1.0)])
    (lid, lora), = by_class(out, "LoraLoader").items()
    assert lora["model"] == ["10", 0] and lora["clip"] == ["11", 0]
    assert out["31"]["inputs"]["model"] == [lid, 0] and out["6"]["inputs"]["clip"] == [lid, 1]


def test_links_are_followed_through_model_patches_to_the_loader():
    """The recorded FLUX custom-sampler graph: ModelSamplingFlux sits between UNETLoader and its consumers."""
    graph = {
        "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl_fp16.safetensors",
                                                          "clip_name2": "clip_l.safetensors", "type": "flux"}},
        "10": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "30": {"class_type": "ModelSamplingFlux", "inputs": {"model": ["12", 0], "max_shift": 1.15, "base_shift": 0.5,
                                                             "width": 1024, "height": 1024}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["11", 0]}},
        "26": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["6", 0], "guidance": 3.5}},
        "22": {"class_type": "BasicGuider", "inputs": {"model": ["30", 0], "conditioning": ["26", 0]}},
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "17": {"class_type": "BasicScheduler", "inputs": {"model": ["30", 0], "scheduler": "simple", "steps": 20,
                                                          "denoise": 1.0}},
        "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["22", 0],
                                                                 "sampler": ["16", 0], "sigmas": ["17", 0],
                                                                 "latent_image": ["27", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["10", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "flux1-dev"}},
    }
    out = add_loras(graph, [("x.safetensors", 0.8)])
    assert out["31"]["inputs"]["model"] == ["12", 0] and out["31"]["inputs"]["clip"] == ["11", 0]
    assert out["30"]["inputs"]["model"] == ["31", 0]  # the patch now takes the LoRA's model
    assert out["22"]["inputs"]["model"] == out["17"]["inputs"]["model"] == ["30", 0]  # unchanged
    assert out["6"]["inputs"]["clip"] == ["31", 1]


def test_a_graph_without_a_single_model_source_cannot_take_loras():
    graph = bind(load_template("checkpoint_generic"), {})
    graph["40"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "refiner.safetensors"}}
    graph["7"]["inputs"]["clip"] = ["40", 1]
    with pytest.raises(WorkflowError, match="sources of 'clip'"):
        add_loras(graph, [("a.safetensors", 1.0)])
    no_clip = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "u"}},
               "2": {"class_type": "KSampler", "inputs": {"model": ["1", 0]}}}
    with pytest.raises(WorkflowError, match="no CLIP input"):
        add_loras(no_clip, [("a.safetensors", 1.0)])


@pytest.mark.parametrize("name", ["checkpoint_generic", "flux1_dev_split", "flux1_dev_fp8_checkpoint"])
def test_without_loras_the_graph_is_byte_for_byte_the_same(name):
    graph = bind(load_template(name), {"prompt": "a cat", "seed": 3})
    assert json.dumps(add_loras(graph, [])) == json.dumps(graph)


# ---------------------------------------------------------------------------- through the manager
async def test_lora_parameter_sends_a_chained_lora_loader_and_changes_the_image(comfy_manager, fake):
    plain = await comfy_manager.generate_image("a cat", backend="comfyui", **SMALL)
    plain_graph = fake.prompts[-1]
    with_lora = await comfy_manager.generate_image("a cat", backend="comfyui", loras=DETAIL, **SMALL)
    graph = fake.prompts[-1]
    (lid, lora), = lora_chain(graph)
    assert lora == {"model": ["4", 0], "clip": ["4", 1], "lora_name": "detail_tweaker.safetensors",
                    "strength_model": 0.7, "strength_clip": 0.7}
    assert all(enc["clip"] == [lid, 1] for enc in by_class(graph, "CLIPTextEncode").values())
    assert {k: v for k, v in graph.items() if k != lid and v["class_type"] not in ("KSampler", "CLIPTextEncode")} \
        == {k: v for k, v in plain_graph.items() if v["class_type"] not in ("KSampler", "CLIPTextEncode")}
    assert not np.array_equal(pixels(plain), pixels(with_lora))
    assert with_lora.server == fake.url


async def test_the_prompt_tag_sends_the_same_graph_and_pixels_as_the_parameter(comfy_manager, fake):
    by_param = await comfy_manager.generate_image("a cat", backend="comfyui", loras=DETAIL, **SMALL)
    param_graph = fake.prompts[-1]
    by_tag = await comfy_manager.generate_image("a cat <lora:detail_tweaker:0.7>", backend="comfyui", **SMALL)
    assert fake.prompts[-1] == param_graph
    assert np.array_equal(pixels(by_tag), pixels(by_param))


async def test_two_loras_chain_in_the_order_given(comfy_manager, fake):
    one = await comfy_manager.generate_image("a cat", backend="comfyui", loras=DETAIL, **SMALL)
    two = await comfy_manager.generate_image("a cat <lora:PIXEL_ART_XL:-0.5>", backend="comfyui", loras=DETAIL,
                                             **SMALL)
    chain = lora_chain(fake.prompts[-1])
    assert [(lora["lora_name"], lora["strength_model"], lora["strength_clip"]) for _, lora in chain] == [
        ("detail_tweaker.safetensors", 0.7, 0.7), ("sdxl/pixel_art_xl.safetensors", -0.5, -0.5)]
    (first_id, first), (second_id, second) = chain
    assert first["model"] == ["4", 0] and first["clip"] == ["4", 1]
    assert second["model"] == [first_id, 0] and second["clip"] == [first_id, 1]
    assert all(enc["clip"] == [second_id, 1] for enc in by_class(fake.prompts[-1], "CLIPTextEncode").values())
    assert not np.array_equal(pixels(one), pixels(two))


async def test_an_unknown_lora_on_forced_comfyui_is_a_sentence_naming_it(comfy_manager, fake):
    posted = len(fake.prompts)
    result = await comfy_manager.generate_image("a cat", backend="comfyui",
                                                loras=[{"name": "no_such_lora", "weight": 0.5}], **SMALL)
    assert result.status == "error"
    assert '"no_such_lora"' in result.error and fake.url in result.error
    assert "detail_tweaker" in result.error  # what the server has instead
    assert len(fake.prompts) == posted  # refused by the plan, never sent
    assert not list(comfy_manager.settings.output_dir.rglob("*.png"))


async def test_without_loras_the_manager_sends_the_template_graph(comfy_manager, fake):
    result = await comfy_manager.generate_image("a cat", backend="comfyui", **SMALL)
    assert result.status == "success"
    backend = comfy_manager.backends["comfyui"]
    variant = backend.variant_for(backend.find(TINY), fake_models(fake))
    req = GenerationRequest(prompt="a cat", backend="comfyui", **SMALL).validated(["comfyui"])
    expected = backend.build_graph(req, variant)
    assert json.dumps(fake.prompts[-1]) == json.dumps(expected)
    assert set(fake.prompts[-1]) == set(load_template("checkpoint_generic").graph)


def fake_models(fake: FakeComfyUI) -> InstalledModels:
    return InstalledModels(checkpoints=list(fake.checkpoints), loras=list(fake.loras))


# ---------------------------------------------------------------------------- which server
@pytest.fixture
def pool():
    """Two fake servers, only the second with detail_tweaker; a monitor polled by hand."""
    with FakeComfyUI(step_delay_s=0.005, loras=["other.safetensors"]) as a, \
            FakeComfyUI(step_delay_s=0.005) as b:
        settings = Settings(comfyui_urls=[a.url, b.url], comfyui_timeout_s=10)
        monitor = HealthMonitor.from_settings(settings, down_after=1)
        backend = ComfyUIBackend(settings, monitor, request_timeout_s=1.0, stall_s=1.0)
        monitor.poll_now()
        yield backend, a, b


def lora_request(*loras: LoraUse, backend: str = "comfyui") -> GenerationRequest:
    loras_param = [{"name": use.name, "weight": use.weight} for use in loras]
    return GenerationRequest(prompt="a cat", backend=backend, loras=loras_param, **SMALL).validated(["comfyui"])


async def test_a_request_with_loras_goes_only_to_a_server_that_has_them(pool):
    backend, a, b = pool
    req = lora_request(LoraUse("detail_tweaker", 0.7))
    model = backend.find(TINY)
    assert backend.servers_for(model) == [a.url, b.url]
    assert backend.servers_for(model, req.loras) == [b.url]
    for _ in range(4):  # never round-robins onto the server without it
        target = backend.plan(req, model)
        assert target.server == b.url and target.detail == (("detail_tweaker.safetensors", 0.7),)
    events = [e async for e in backend.stream(req, backend.plan(req, None))]
    assert isinstance(events[-1], Produced) and events[-1].info["server"] == b.url
    assert not a.prompts and by_class(b.prompts[-1], "LoraLoader")
    plain = backend.plan(GenerationRequest(prompt="a cat", **SMALL).validated(), model)
    assert plain.detail is None


def test_no_server_with_every_lora_is_unavailable_naming_each(pool):
    backend, a, b = pool
    req = lora_request(LoraUse("detail_tweaker", 0.7), LoraUse("other", 1.0))
    with pytest.raises(BackendUnavailable) as err:
        backend.plan(req, backend.find(TINY))
    text = str(err.value)
    assert text.startswith('No running ComfyUI server with tiny-sd15 (ComfyUI) has the LoRAs "detail_tweaker", '
                           '"other": ')
    assert f'{a.url} lacks "detail_tweaker" (its LoRAs: other)' in text
    assert f'{b.url} lacks "other" (its LoRAs: detail_tweaker, pixel_art_xl)' in text


async def test_auto_mode_passes_comfyui_over_with_the_sentence(pool):
    backend, a, b = pool
    b.stop()
    backend.monitor.poll_now()
    req = lora_request(LoraUse("detail_tweaker", 0.7), backend="auto")
    with pytest.raises(BackendUnavailable, match=f'{a.url} lacks "detail_tweaker"'):
        backend.plan(req, None)
    assert backend.why_not(None) is None  # the pool itself is fine: only this request cannot run there


async def test_a_lora_gone_after_the_plan_is_refused_like_the_real_server(pool):
    backend, a, b = pool
    req = lora_request(LoraUse("detail_tweaker", 0.7))
    target = backend.plan(req, backend.find(TINY))
    b.loras.clear()  # removed from the server between the health poll and the job
    with pytest.raises(ComfyUIValidationError) as err:
        [e async for e in backend.stream(req, target)]
    assert err.value.missing_files == ["detail_tweaker.safetensors"]
    assert "detail_tweaker.safetensors is not installed (LoraLoader \"lora_name\" on node" in str(err.value)
    assert err.value.node_errors[next(iter(err.value.node_errors))]["class_type"] == "LoraLoader"
    backend.monitor.poll_now()  # the refusal made the next poll read the lists again
    assert backend.monitor.state(b.url).models.loras == []
    with pytest.raises(BackendUnavailable, match='lacks "detail_tweaker"'):
        backend.plan(req, backend.find(TINY))


# ---------------------------------------------------------------------------- the fake stays honest
async def test_the_fake_renders_loras_by_name_and_strength_and_ignores_strength_zero(fake):
    graph = bind(load_template("checkpoint_generic"), {"ckpt_name": "tiny-sd15.safetensors", "seed": 3, "steps": 2,
                                                       "width": 32, "height": 32})

    async def render(g: dict) -> np.ndarray:
        events = [e async for e in ComfyUIClient(fake.url).run(g)]
        return np.asarray(events[-1].image.convert("RGB"))

    plain = await render(graph)
    assert np.array_equal(await render(add_loras(graph, [("detail_tweaker.safetensors", 0.0)])), plain)
    weak = await render(add_loras(graph, [("detail_tweaker.safetensors", 0.3)]))
    strong = await render(add_loras(graph, [("detail_tweaker.safetensors", 0.9)]))
    other = await render(add_loras(graph, [("sdxl/pixel_art_xl.safetensors", 0.9)]))
    assert len({plain.tobytes(), weak.tobytes(), strong.tobytes(), other.tobytes()}) == 4
    broken = add_loras(graph, [("detail_tweaker.safetensors", 1.0)])
    del broken["10"]["inputs"]["clip"]
    with pytest.raises(ComfyUIValidationError, match="Required input is missing"):
        await ComfyUIClient(fake.url).submit(broken, "test")


async def test_auto_mode_runs_a_lora_only_comfyui_has_on_comfyui(comfy_manager):
    result = await comfy_manager.generate_image("a cat", width=64, height=64, num_inference_steps=2, seed=3,
                                                loras=[{"name": "detail_tweaker", "weight": 0.7}])
    assert result.status == "success" and result.backend == "comfyui", result.error
