"""A1111's Clip skip on both backends: locally the text encoder stops early for every prompt encoding (equal to
diffusers' own clip_skip), on ComfyUI a CLIPSetLastLayer stops CLIP; the PNG records "Clip skip: 2" as A1111
does; a model it does not apply to says so; impossible values are sentences."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.backends.clip_layers import clip_skipped
from engine.registry import find_model
from engine.manager import AIModelManager
from engine.workflows import use_clip_skip
from tests.conftest import CPU
from tests.integration.test_fallback import wait_until
from tests.support.tiny_lora import write_tiny_lora

SMALL = dict(width=64, height=64, num_inference_steps=3, seed=11, model="tiny")


def pixels(result) -> np.ndarray:
    assert result.status == "success", result.error
    return np.asarray(Image.open(result.path))


async def test_clip_skip_two_is_a1111s_penultimate_layer_through_the_final_norm(manager):
    await manager.generate_image("warm up", **SMALL)
    local = manager.backends["diffusers"]
    pipe = local.pipeline(find_model("tiny"), local.weights["tiny"])
    encoder = pipe.text_encoder
    ids = pipe.tokenizer("a red fox", padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = encoder(ids, output_hidden_states=True).hidden_states
        model = getattr(encoder, "text_model", encoder)
        a1111 = model.final_layer_norm(hidden[-2])  # A1111: hidden_states[-clip_skip], then the final layer norm
        with clip_skipped(pipe, 2):
            ours, _ = pipe.encode_prompt("a red fox", "cpu", 1, False)
        plain, _ = pipe.encode_prompt("a red fox", "cpu", 1, False)
    assert torch.allclose(ours, a1111, atol=1e-6) and not torch.allclose(ours, plain)
    assert len(model.encoder.layers) == 2  # put back after the block


async def test_clip_skip_changes_the_image_and_is_recorded(manager):
    plain = await manager.generate_image("a lighthouse", **SMALL)
    skipped = await manager.generate_image("a lighthouse", clip_skip=2, **SMALL)
    again = await manager.generate_image("a lighthouse", clip_skip=2, **SMALL)
    assert not np.array_equal(pixels(plain), pixels(skipped)) and np.array_equal(pixels(skipped), pixels(again))
    assert skipped.clip_skip == 2 and plain.clip_skip is None
    assert "Clip skip: 2" in Image.open(skipped.path).text["parameters"]
    assert "Clip skip" not in Image.open(plain.path).text["parameters"]
    weighted = await manager.generate_image("a (lighthouse:1.3)", clip_skip=2, **SMALL)  # compel's encoding too
    weighted_plain = await manager.generate_image("a (lighthouse:1.3)", **SMALL)
    assert not np.array_equal(pixels(weighted), pixels(weighted_plain))


async def test_more_layers_than_the_demo_model_has_and_impossible_values(manager):
    deep = await manager.generate_image("a lighthouse", clip_skip=3, **SMALL)  # the tiny encoder has 2 layers
    two = await manager.generate_image("a lighthouse", clip_skip=2, **SMALL)
    assert deep.status == "success" and deep.clip_skip == 2 and np.array_equal(pixels(deep), pixels(two))
    assert any("more than the tiny demo model's 2 text encoder layers; it used 2" in w for w in deep.warnings)
    out_of_range = await manager.generate_image("a lighthouse", clip_skip=13, **SMALL)
    assert out_of_range.error == "Clip skip must be a whole number from 1 to 12 (got 13)."


async def test_a_text_encoder_lora_leaves_nothing_behind_across_clip_skips(settings, tiny_model_dir):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    text_encoder = CLIPTextModel.from_pretrained(tiny_model_dir, subfolder="text_encoder")
    write_tiny_lora(settings.models_dir / "Lora" / "tinyWords.safetensors", unet, seed=3, text_encoder=text_encoder)
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    try:
        first = await manager.generate_image("a lighthouse", **SMALL)
        with_lora = await manager.generate_image("a lighthouse <lora:tinyWords:1>", **SMALL)
        skipped = await manager.generate_image("a lighthouse", clip_skip=2, **SMALL)  # the LoRA switched off here
        after = await manager.generate_image("a lighthouse", **SMALL)
        assert not np.array_equal(pixels(first), pixels(with_lora)) and pixels(skipped) is not None
        assert np.array_equal(pixels(first), pixels(after))  # no adapter left on a layer the clip skip left out
    finally:
        manager.shutdown()


def test_comfyui_graph_stops_clip_at_the_asked_layer():
    graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["4", 1]}},
             "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
             "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["6", 0]}}}
    assert use_clip_skip(graph, 1) == graph
    skipped = use_clip_skip(graph, 2)
    assert skipped["8"] == {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["4", 1], "stop_at_clip_layer": -2}}
    assert skipped["6"]["inputs"]["clip"] == ["8", 0] and skipped["7"]["inputs"]["clip"] == ["8", 0]
    assert skipped["3"]["inputs"]["model"] == ["4", 0]


async def test_comfyui_runs_it_with_clip_set_last_layer(comfy_manager, fake):
    result = await comfy_manager.generate_image("a cat", backend="comfyui", clip_skip=2, width=64, height=64,
                                                num_inference_steps=2, seed=3, model="comfyui:tiny-sd15.safetensors")
    assert result.status == "success" and result.backend == "comfyui", result.error
    sent = fake.prompts[-1]
    (node,) = [n for n in sent.values() if n["class_type"] == "CLIPSetLastLayer"]
    assert node["inputs"]["stop_at_clip_layer"] == -2 and result.clip_skip == 2


async def test_a_model_it_does_not_apply_to_says_so(comfy_manager, fake):
    fake.install_flux()
    comfy_manager.backends["comfyui"].monitor.refresh_models(fake.url)
    assert wait_until(lambda: "flux.1-dev" in {m.id for m in comfy_manager.backends["comfyui"].models()})
    result = await comfy_manager.generate_image("a cat", backend="comfyui", clip_skip=2, width=64, height=64,
                                                num_inference_steps=2, seed=3, model="flux.1-dev")
    assert result.status == "success", result.error
    assert not [n for n in fake.prompts[-1].values() if n["class_type"] == "CLIPSetLastLayer"]
    assert result.clip_skip is None and any("Clip skip 2 was not used" in w for w in result.warnings)
