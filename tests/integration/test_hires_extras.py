"""A1111's hires prompt, hires negative prompt and hires sampler: the second pass encodes its own prompt (with its
own LoRA tags and wildcards) and samples with its own sampler, locally and on ComfyUI; empty ones keep the first
pass's; recorded in the PNG; bad values are sentences."""
from __future__ import annotations

from PIL import Image

from engine.outputs import read_parameters
from engine.request import GenerationRequest
from tests.integration.test_prompt_editing_local import UNetInputs, text_embedding

HIRES = dict(width=64, height=64, num_inference_steps=2, seed=3, model="tiny", hires_scale=1.5, hires_strength=0.5,
             hires_steps=4)  # two steps, then 4 x 0.5 = two hires steps


async def test_the_hires_pass_encodes_its_own_prompts_and_samples_with_its_own_sampler(manager):
    await manager.generate_image("a fox", **HIRES)  # the pipeline, loaded
    pipe = manager.backends["diffusers"].pool[0].pipe
    watch = UNetInputs(pipe)
    result = await manager.generate_image("a fox", hires_prompt="a cat, detailed", hires_sampler="DDIM", **HIRES)
    assert result.status == "success", result.error
    texts = {"a fox": text_embedding(pipe, "a fox"), "a cat, detailed": text_embedding(pipe, "a cat, detailed")}
    assert watch.texts(texts) == ["a fox", "a fox", "a cat, detailed", "a cat, detailed"]
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"  # the hires pass's
    assert (result.hires_prompt, result.hires_sampler, result.hires_negative_prompt) == ("a cat, detailed", "ddim",
                                                                                       None)
    saved = read_parameters(result.path)
    assert (saved["hires_prompt"], saved["hires_sampler"]) == ("a cat, detailed", "ddim")
    assert saved["prompt"] == "a fox" and saved["sampler"] == "euler"
    plain = await manager.generate_image("a fox", **HIRES)  # none given: the first pass's, nothing recorded
    assert (plain.hires_prompt, plain.hires_sampler) == (None, None)
    assert "Hires prompt" not in Image.open(plain.path).text["parameters"]
    assert "Hires prompt: \"a cat, detailed\"" in Image.open(result.path).text["parameters"]


async def test_a_hires_prompt_brings_its_own_lora_tags_and_wildcards(manager):
    checked = GenerationRequest.from_arguments(
        "a fox <lora:first:0.5>", loras=[{"name": "both", "weight": 1}], hires_prompt="a cat <lora:second:0.7>",
        **{**HIRES, "hires_scale": 2.0}).validated()
    assert [(u.name, u.weight) for u in checked.loras] == [("both", 1.0), ("first", 0.5)]
    assert [(u.name, u.weight) for u in checked.hires_loras] == [("both", 1.0), ("second", 0.7)]
    assert checked.hires_prompt == "a cat"
    filled = await manager.generate_image("a fox", hires_prompt="a {red|blue} cat", hires_negative_prompt="blurry",
                                          **HIRES)
    assert filled.status == "success", filled.error
    assert filled.hires_prompt in ("a red cat", "a blue cat") and filled.hires_negative_prompt == "blurry"


async def test_bad_hires_values_are_sentences(manager):
    for extra, needle in ((dict(hires_sampler="nope"), "Hires sampler must be one of euler"),
                          (dict(hires_prompt="<lora:x:1>"), "The hires prompt holds nothing but LoRA tags."),
                          (dict(hires_prompt=5), "The hires prompt must be text.")):
        bad = await manager.generate_image("a fox", **{**HIRES, **extra})
        assert bad.status == "error" and needle in bad.error, (extra, bad.error)


async def test_on_comfyui_the_second_graph_has_the_hires_prompt_and_sampler(comfy_manager, fake):
    sent = len(fake.prompts)
    result = await comfy_manager.generate_image("a lighthouse", backend="comfyui", hires_prompt="a tower at night",
                                                hires_negative_prompt="fog", hires_sampler="dpmpp_2m_karras",
                                                **{**HIRES, "model": None})
    assert result.status == "success" and result.backend == "comfyui", result.error
    first, second = fake.prompts[sent:]

    def texts(graph):
        return sorted(n["inputs"]["text"] for n in graph.values() if n["class_type"] == "CLIPTextEncode")

    def sampler(graph):
        (node,) = [n["inputs"] for n in graph.values() if n["class_type"] == "KSampler"]
        return node["sampler_name"], node["scheduler"]

    assert texts(first) == ["", "a lighthouse"] and texts(second) == ["a tower at night", "fog"]
    assert sampler(first) == ("euler", "normal") and sampler(second) == ("dpmpp_2m", "karras")
