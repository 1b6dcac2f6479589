"""A1111's prompt editing on ComfyUI (the fake, real sockets): a prompt that changes between steps becomes one
CLIPTextEncode per distinct text, each limited to its steps by ConditioningSetTimestepRange and joined by
ConditioningCombine in front of whatever took the prompt (the sampler, FLUX's guidance); the boundaries lie halfway
between the shares of the steps either side on the sampler's schedule (checked against ComfyUI's own scheduler code
in engine/timestep_ranges.py's tests). A1111's BREAK: each part its own CLIPTextEncode, joined by ConditioningConcat.
Your own workflow takes both, on its sampler's own schedule."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.config import Settings
from engine.errors import InvalidRequest
from engine.manager import AIModelManager
from engine.timestep_ranges import step_shares
from tests.conftest import CPU
from tests.integration.test_fallback import wait_until

SMALL = dict(width=64, height=64, backend="comfyui", seed=1)


def node(graph: dict, link: list) -> dict:
    return graph[str(link[0])]


def text_of(graph: dict, link: list) -> str:
    """The text a CONDITIONING link encodes; the parts of one joined by ConditioningConcat as " BREAK "."""
    current = node(graph, link)
    if current["class_type"] == "ConditioningConcat":
        return text_of(graph, current["inputs"]["conditioning_to"]) + " BREAK " + text_of(
            graph, current["inputs"]["conditioning_from"])
    assert current["class_type"] == "CLIPTextEncode", current
    return current["inputs"]["text"]


def conditioning_parts(graph: dict, link: list) -> list[tuple[str, float, float]]:
    """(text, start, end) of each ranged text a CONDITIONING link carries, in order."""
    current = node(graph, link)
    if current["class_type"] == "ConditioningCombine":
        return conditioning_parts(graph, current["inputs"]["conditioning_1"]) + conditioning_parts(
            graph, current["inputs"]["conditioning_2"])
    if current["class_type"] == "ConditioningSetTimestepRange":
        return [(text_of(graph, current["inputs"]["conditioning"]), current["inputs"]["start"],
                 current["inputs"]["end"])]
    return [(text_of(graph, link), 0.0, 1.0)]


def sampler_of(graph: dict) -> dict:
    return next(n["inputs"] for n in graph.values() if n["class_type"] == "KSampler")


async def sent(manager: AIModelManager, fake, prompt: str, **values) -> tuple[dict, dict, str]:
    """Make an image on the fake ComfyUI; the graph it received, its KSampler's inputs and the prompt recorded."""
    result = await manager.generate_image(prompt, **SMALL, **values)
    assert result.status == "success" and result.backend == "comfyui", result.error
    return fake.prompts[-1], sampler_of(fake.prompts[-1]), result.prompt


async def test_a_switch_becomes_two_ranged_texts_at_the_step_between(comfy_manager, fake):
    graph, sampler, recorded = await sent(comfy_manager, fake, "a [cat:dog:0.5], (detailed:1.2)",
                                          negative_prompt="blurry", num_inference_steps=10)
    assert sampler["scheduler"] == "normal"  # Euler: ComfyUI's normal schedule puts step i at share i / (steps - 1)
    middle = round((5 / 9 + 6 / 9) / 2, 6)  # steps 0-5 see "cat", 6-9 "dog" (A1111: a step at or before `when`)
    assert conditioning_parts(graph, sampler["positive"]) == [("a cat, (detailed:1.2)", 0.0, middle),
                                                              ("a dog, (detailed:1.2)", middle, 1.0)]
    assert conditioning_parts(graph, sampler["negative"]) == [("blurry", 0.0, 1.0)]
    encodes = [n for n in graph.values() if n["class_type"] == "CLIPTextEncode"]
    assert len(encodes) == 3 and all(n["inputs"]["clip"] == encodes[0]["inputs"]["clip"] for n in encodes)
    assert recorded == "a [cat:dog:0.5], (detailed:1.2)"  # recorded as written


async def test_alternation_encodes_each_text_once_and_loras_reach_every_encoder(comfy_manager, fake):
    fake.loras = ["detail_tweaker.safetensors"]
    monitor = comfy_manager.backends["comfyui"].monitor
    monitor.refresh_models(fake.url)
    monitor.poll_now()
    graph, sampler, _ = await sent(comfy_manager, fake, "a [red|blue] fox <lora:detail_tweaker:0.5>",
                                   num_inference_steps=4, negative_prompt="[blurry::1]")
    positive = conditioning_parts(graph, sampler["positive"])
    assert [text for text, _, _ in positive] == ["a red fox", "a blue fox", "a red fox"]  # steps 0-1, 2, 3
    assert [(start, end) for _, start, end in positive] == [(0.0, 0.5), (0.5, round(5 / 6, 6)), (round(5 / 6, 6), 1.0)]
    negative = conditioning_parts(graph, sampler["negative"])
    assert [text for text, _, _ in negative] == ["blurry", ""]
    encodes = [n["inputs"] for n in graph.values() if n["class_type"] == "CLIPTextEncode"]
    assert sorted(n["text"] for n in encodes) == ["", "a blue fox", "a red fox", "blurry"]
    lora = next(nid for nid, n in graph.items() if n["class_type"] == "LoraLoader")
    assert all(n["clip"] == [lora, 1] for n in encodes)


async def test_flux_guidance_takes_the_scheduled_prompt(comfy_manager, fake):
    fake.install_flux()
    comfy_manager.backends["comfyui"].monitor.refresh_models(fake.url)
    assert wait_until(lambda: "flux.1-dev" in {m.id for m in comfy_manager.backends["comfyui"].models()})
    result = await comfy_manager.generate_image("a [castle:ruin:2] at dusk", model="flux.1-dev",
                                                num_inference_steps=4, **SMALL)
    assert result.status == "success" and result.backend == "comfyui", result.error
    graph = fake.prompts[-1]
    guidance = next(n["inputs"] for n in graph.values() if n["class_type"] == "FluxGuidance")
    assert sampler_of(graph)["scheduler"] == "simple"  # FLUX's: step i at share i / steps
    assert conditioning_parts(graph, guidance["conditioning"]) == [("a castle at dusk", 0.0, 0.625),
                                                                   ("a ruin at dusk", 0.625, 1.0)]


async def test_break_parts_are_encoded_each_and_concatenated(comfy_manager, fake):
    graph, sampler, _ = await sent(comfy_manager, fake, "a (fox:1.2) BREAK in snow",
                                   negative_prompt="blurry BREAK dark", num_inference_steps=4)
    assert conditioning_parts(graph, sampler["positive"]) == [("a (fox:1.2) BREAK in snow", 0.0, 1.0)]
    assert conditioning_parts(graph, sampler["negative"]) == [("blurry BREAK dark", 0.0, 1.0)]
    graph, sampler, _ = await sent(comfy_manager, fake, "a [fox:cat:1] BREAK snow", num_inference_steps=4)
    assert conditioning_parts(graph, sampler["positive"]) == [("a fox BREAK snow", 0.0, 0.5),
                                                                        ("a cat BREAK snow", 0.5, 1.0)]


async def test_your_own_workflow_takes_break_and_prompt_editing(fake, tmp_path, tiny_model_dir):
    shutil.copytree(Path(__file__).parents[1] / "support" / "workflows", tmp_path / "workflows")
    settings = Settings(comfyui_urls=[fake.url], output_dir=tmp_path / "outputs", tiny_model_dir=tiny_model_dir,
                        health_interval_s=0.2, health_timeout_s=0.5, comfyui_timeout_s=3.0,
                        workflows_dir_override=tmp_path / "workflows")
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    try:
        edited = await manager.generate_image("a [cat:dog:2]", steps=4, user_workflow="sd15_default")
        assert edited.status == "success", edited.error
        graph = fake.prompts[-1]
        sampler = sampler_of(graph)
        shares = step_shares("sd15", sampler["scheduler"], 4)  # steps 0-2 see "cat", step 3 "dog"
        middle = round((shares[2] + shares[3]) / 2, 6)
        assert conditioning_parts(graph, sampler["positive"]) == [("a cat", 0.0, middle), ("a dog", middle, 1.0)]
        assert edited.prompt == "a [cat:dog:2]"  # recorded as written
        # a FLUX model chosen for a workflow that cannot load it runs the file's SD model: SD's schedule, not FLUX's
        fake.install_flux()
        monitor = manager.backends["comfyui"].monitor
        monitor.refresh_models(fake.url)
        monitor.poll_now()
        other = await manager.generate_image("a [cat:dog:2]", steps=4, sampler="dpmpp_2m_karras", model="flux.1-dev",
                                             user_workflow="sd15_default")
        assert other.status == "success" and any("no checkpoint loader" in w for w in other.warnings), other.error
        graph = fake.prompts[-1]
        sampler = sampler_of(graph)
        shares = step_shares("sd15", "karras", 4)
        middle = round((shares[2] + shares[3]) / 2, 6)
        assert middle != round(sum(step_shares("flux", "karras", 4)[2:4]) / 2, 6)
        assert conditioning_parts(graph, sampler["positive"]) == [("a cat", 0.0, middle), ("a dog", middle, 1.0)]
        broken = await manager.generate_image("a cat BREAK in snow", steps=2, user_workflow="sd15_default")
        assert broken.status == "success", broken.error  # BREAK works there: the prompt's node is known
        graph = fake.prompts[-1]
        sampler = sampler_of(graph)
        assert text_of(graph, sampler["positive"]) == "a cat BREAK in snow"
    finally:
        manager.shutdown()


def workflow_file(name: str) -> dict:
    import json

    return json.loads((Path(__file__).parents[1] / "support" / "workflows" / f"{name}.json").read_text())


def test_a_prompt_edit_in_your_own_workflow_falls_on_its_samplers_own_schedule(comfy_manager):
    """A FLUX workflow with a custom sampler: the steps on FLUX's shifted schedule (BasicScheduler's, the model the
    file loads told by FLUX's own nodes), before the FluxGuidance; KSamplerAdvanced starting at a later step: only
    the steps it runs count."""
    from engine.request import GenerationRequest
    from engine.user_workflows import find_inputs

    backend = comfy_manager.backends["comfyui"]
    request = GenerationRequest.from_arguments("a [cat:dog:2]", num_inference_steps=4, seed=1,
                                               sampler="uni_pc_karras")  # KSampler would drop a sigma, not this one
    flux = backend.workflow_graph(request, find_inputs("flux", workflow_file("flux_custom_sampler")), {})
    assert flux["17"]["inputs"]["scheduler"] == "karras" and flux["16"]["inputs"]["sampler_name"] == "uni_pc"
    shares = step_shares("flux", "karras", 4)
    middle = round((shares[2] + shares[3]) / 2, 6)
    assert abs(middle - sum(step_shares("sd15", "karras", 4)[2:4]) / 2) > 0.05  # FLUX's schedule, not SD's
    assert conditioning_parts(flux, flux["26"]["inputs"]["conditioning"]) == [("a cat", 0.0, middle),
                                                                               ("a dog", middle, 1.0)]

    graph = workflow_file("sdxl_advanced")
    graph["10"]["inputs"]["start_at_step"] = 1  # steps 1-3 of 4 run
    request = GenerationRequest.from_arguments("a [cat:dog:1]", num_inference_steps=4, seed=1)
    advanced = backend.workflow_graph(request, find_inputs("advanced", graph), {}, family="sdxl")
    sampler = advanced["10"]["inputs"]
    shares = step_shares("sdxl", sampler["scheduler"], 4)[1:]  # of the steps it runs, 0-1 see "cat", 2 "dog"
    middle = round((shares[1] + shares[2]) / 2, 6)
    assert conditioning_parts(advanced, sampler["positive"]) == [("a cat", 0.0, middle), ("a dog", middle, 1.0)]

    graph = workflow_file("sd15_default")
    graph["3"]["inputs"]["steps"] = ["4", 0]  # linked: the app cannot tell where a step falls
    linked = find_inputs("linked", graph)
    assert not linked.binds("steps")
    with pytest.raises(InvalidRequest, match="its sampler's steps come from another node"):
        backend.workflow_graph(request, linked, {})


async def test_a_text_node_of_its_own_kind_gets_the_prompt_as_written(comfy_manager):
    """A workflow whose prompt goes to a custom text encoder (smZ's, which reads A1111's syntax itself) is not split
    at BREAK: the node gets the prompt as written."""
    import json

    from engine.request import GenerationRequest
    from engine.user_workflows import find_inputs

    graph = json.loads((Path(__file__).parents[1] / "support" / "workflows" / "sd15_default.json").read_text())
    graph["6"]["class_type"] = "smZ CLIPTextEncode"
    workflow = find_inputs("smz", graph)
    request = GenerationRequest.from_arguments("a (cat:1.2) BREAK snow", num_inference_steps=4, seed=1)
    sent = comfy_manager.backends["comfyui"].workflow_graph(request, workflow, {})
    assert sent["6"]["inputs"]["text"] == "a (cat:1.2) BREAK snow"
    assert not any(node["class_type"] == "ConditioningConcat" for node in sent.values())


def custom_sampler_workflows() -> dict[str, dict]:
    """sd15_default with its KSampler ("3") swapped for a custom sampler, as ComfyUI's own examples wire them:
    SamplerCustomAdvanced with a CFGGuider, and SamplerCustom; both on BasicScheduler's Karras schedule."""
    base = workflow_file("sd15_default")
    base["11"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    base["12"] = {"class_type": "BasicScheduler", "inputs": {"scheduler": "karras", "steps": 20, "denoise": 1,
                                                             "model": ["4", 0]}}
    texts = {"positive": ["6", 0], "negative": ["7", 0]}
    guided = {**base, "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
              "13": {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], **texts, "cfg": 7}},
              "3": {"class_type": "SamplerCustomAdvanced", "inputs": {
                  "noise": ["10", 0], "guider": ["13", 0], "sampler": ["11", 0], "sigmas": ["12", 0],
                  "latent_image": ["5", 0]}}}
    plain = {**base, "3": {"class_type": "SamplerCustom", "inputs": {
        "model": ["4", 0], "add_noise": True, "noise_seed": 5, "cfg": 7, **texts, "sampler": ["11", 0],
        "sigmas": ["12", 0], "latent_image": ["5", 0]}}}
    return {"sd15_cfg_guider": guided, "sd15_sampler_custom": plain}


async def test_your_own_custom_sampler_workflow_takes_prompt_editing(fake, tmp_path, tiny_model_dir):
    """SD 1.5 with a custom sampler (checked on a real ComfyUI 0.3.64 too): the switch on BasicScheduler's schedule,
    which drops no sigma; the texts reach the CFGGuider, or SamplerCustom itself."""
    import json

    workflows = tmp_path / "workflows"
    workflows.mkdir()
    for name, graph in custom_sampler_workflows().items():
        (workflows / f"{name}.json").write_text(json.dumps(graph))
    settings = Settings(comfyui_urls=[fake.url], output_dir=tmp_path / "outputs", tiny_model_dir=tiny_model_dir,
                        health_interval_s=0.2, health_timeout_s=0.5, comfyui_timeout_s=3.0,
                        workflows_dir_override=workflows)
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    try:
        shares = step_shares("sd15", "karras", 4)  # steps 0-2 see "cat", step 3 "dog"
        middle = round((shares[2] + shares[3]) / 2, 6)
        for name, texts_at in (("sd15_cfg_guider", "13"), ("sd15_sampler_custom", "3")):
            made = await manager.generate_image("a [cat:dog:2]", steps=4, user_workflow=name)
            assert made.status == "success", (name, made.error)
            graph = fake.prompts[-1]
            assert graph["12"]["inputs"]["steps"] == 4 and graph["12"]["inputs"]["scheduler"] == "karras", name
            texts = graph[texts_at]["inputs"]
            assert conditioning_parts(graph, texts["positive"]) == [("a cat", 0.0, middle), ("a dog", middle, 1.0)]
    finally:
        manager.shutdown()
