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
    for extra, needle in ((dict(hires_sampler="nope"), "Hires sampler must be same or one of euler"),
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


async def test_hires_prompts_matter_only_with_the_hires_fix_on(manager):
    off = await manager.generate_image("a fox", hires_prompt="a {broken", hires_sampler="nope",
                                       **{**HIRES, "hires_scale": 1.0})
    assert off.status == "success" and off.hires_prompt is None, off.error
    on = await manager.generate_image("a fox", hires_prompt="a __no_such_list__", **HIRES)
    assert on.status == "error" and on.error.startswith("In the hires prompts: No wildcard named"), on.error


async def test_cfg_rescale_of_both_passes_is_recorded_and_one_pass_only_said(manager):
    result = await manager.generate_image("a fox", cfg_rescale=0.7, **HIRES)  # the hires pass: through the UNet
    assert result.status == "success" and result.cfg_rescale == 0.7 and result.warnings == [], result.error
    assert read_parameters(result.path)["cfg_rescale"] == 0.7
    from engine.manager import _both_passes

    request = GenerationRequest.from_arguments("a fox", cfg_rescale=0.7, **HIRES)
    info = _both_passes({"cfg_rescale": True}, {"cfg_rescale": False, "cfg_rescale_unused": "a compiled UNet",
                                                "warnings": []}, request)
    assert info["cfg_rescale"] is True
    assert info["warnings"] == ["CFG rescale 0.7 was used in the first pass only: a compiled UNet."]


def test_both_passes_lora_hashes_are_recorded():
    from engine.manager import _both_passes

    first = {"lora_hashes": "detail: 0123456789ab"}
    second = {"lora_hashes": "detail: 0123456789ab, style: ba9876543210", "warnings": []}
    request = GenerationRequest.from_arguments("a fox", **HIRES)
    assert _both_passes(first, second, request)["lora_hashes"] == "detail: 0123456789ab, style: ba9876543210"
    assert _both_passes({"lora_hashes": "a: 1"}, {"lora_hashes": None}, request)["lora_hashes"] == "a: 1"


async def test_in_a_plot_the_hires_pass_keeps_its_own_loras(settings, tiny_model_dir, started_managers):
    from diffusers import UNet2DConditionModel

    from tests.support.tiny_lora import write_tiny_lora

    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    write_tiny_lora(settings.models_dir / "Lora" / "tinyDetail.safetensors", unet, seed=1)
    write_tiny_lora(settings.models_dir / "Lora" / "tinyStyle.safetensors", unet, seed=2)
    manager = await started_managers.start(settings)
    grid = await manager.xyz_plot("a fox <lora:tinyDetail:0.8>", "steps", "2, 3",
                                  hires_prompt="a dog <lora:tinyStyle:0.5>", **{**HIRES, "num_inference_steps": 2})
    assert grid.status == "success", grid.error
    for cell in grid.batch:  # not the first prompt's tinyDetail as well, nor a doubled weight
        assert cell["hires_prompt"] == "a dog <lora:tinyStyle:0.5>", cell["hires_prompt"]
        assert cell["loras"] == [{"name": "tinyDetail", "weight": 0.8}]
    template = await manager.xyz_plot("a fox <lora:tinyDetail:0.8>", "steps", "2, 3",
                                      hires_prompt="a {dog|cat} <lora:tinyStyle:0.5>",
                                      **{**HIRES, "num_inference_steps": 2})
    assert template.status == "success", template.error
    for cell in template.batch:  # a hires prompt with options: filled in per cell, its own LoRAs still its own
        assert cell["hires_prompt"] in ("a dog <lora:tinyStyle:0.5>", "a cat <lora:tinyStyle:0.5>"), cell
        assert cell["loras"] == [{"name": "tinyDetail", "weight": 0.8}]
