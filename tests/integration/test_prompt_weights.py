"""A1111's attention syntax and textual-inversion embeddings on the local backend (the tiny model): a weight
changes the image, weight 1 is the plain prompt, an embedding's name in the prompt triggers it, and an
embedding that does not fit is a warning, never a failure."""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import torch
from safetensors.torch import save_file

from engine.manager import AIModelManager
from tests.conftest import CPU

SIZE = dict(width=64, height=64, num_inference_steps=3, seed=5, model="tiny")


def write_embedding(path, width: int, vectors: int = 2, seed: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(vectors, width, generator=torch.Generator().manual_seed(seed))}, str(path))
    return path


async def image(manager: AIModelManager, prompt: str, **extra) -> tuple[np.ndarray, list[str]]:
    result = await manager.generate_image(prompt, **SIZE, **extra)
    assert result.status == "success", result.error
    return np.asarray(result.image), result.warnings


async def test_attention_weights_change_the_image_and_weight_one_is_the_plain_prompt(manager):
    plain, _ = await image(manager, "a red fox")
    stronger, _ = await image(manager, "a (red:1.5) fox")
    weaker, _ = await image(manager, "a [red] fox")
    one, _ = await image(manager, "a (red:1.0) fox")
    negative, _ = await image(manager, "a red fox", negative_prompt="(blurry:1.4)")
    assert not np.array_equal(plain, stronger) and not np.array_equal(plain, weaker)
    assert not np.array_equal(stronger, weaker)
    assert np.array_equal(plain, one)  # the brackets are syntax, not text
    assert not np.array_equal(plain, negative)


async def test_an_embeddings_name_in_the_prompt_triggers_it(manager, settings):
    before, _ = await image(manager, "a tinyStyle fox")  # a plain word while no such embedding exists
    write_embedding(settings.models_dir / "embeddings" / "tinyStyle.safetensors", width=32)
    write_embedding(settings.models_dir / "embeddings" / "sd15Hands.safetensors", width=768)  # not for tiny
    await manager.rescan_models()
    after, warnings = await image(manager, "a tinyStyle fox")
    assert not np.array_equal(before, after) and warnings == []
    weighted, _ = await image(manager, "a (tinyStyle:1.3) fox")  # with compel: the embedding's vectors kept
    assert not np.array_equal(after, weighted)
    plain, _ = await image(manager, "a fox")
    fresh, _ = await image(manager, "a fox")
    assert np.array_equal(plain, fresh)
    _, warnings = await image(manager, "a fox", negative_prompt="sd15Hands")
    assert any("The embedding sd15Hands does not fit Tiny demo model" in w for w in warnings), warnings


async def test_an_updated_embedding_file_is_used_after_a_rescan(manager, settings, tmp_path):
    path = settings.models_dir / "embeddings" / "tinyStyle.safetensors"
    write_embedding(path, width=32, seed=0)
    await manager.rescan_models()
    first, _ = await image(manager, "a tinyStyle fox")
    write_embedding(path, width=32, vectors=3, seed=7)  # the user trains it again: new vectors, one more of them
    os.utime(path, (path.stat().st_mtime + 5,) * 2)  # a later modification time, as a new save gives
    await manager.rescan_models()
    second, warnings = await image(manager, "a tinyStyle fox")
    assert warnings == [] and not np.array_equal(first, second)
    fresh = AIModelManager(replace(settings, output_dir=tmp_path / "fresh"), hardware=CPU)  # only the new file
    await fresh.initialize_models()
    try:
        only_new, _ = await image(fresh, "a tinyStyle fox")
    finally:
        fresh.shutdown()
    assert np.array_equal(second, only_new)  # the new vectors, and nothing of the old ones


async def test_reloading_an_embedding_leaves_one_named_like_its_extra_tokens_alone(manager, settings):
    """Reloading "look" takes out only the tokens its own load added, never those of another embedding "look_2"."""
    folder = settings.models_dir / "embeddings"
    write_embedding(folder / "look.safetensors", width=32, vectors=1, seed=1)
    write_embedding(folder / "look_2.safetensors", width=32, vectors=1, seed=2)
    await manager.rescan_models()
    look_2, _ = await image(manager, "a look_2 fox")
    await image(manager, "a look fox")
    path = folder / "look.safetensors"
    write_embedding(path, width=32, vectors=1, seed=9)
    os.utime(path, (path.stat().st_mtime + 5,) * 2)
    await manager.rescan_models()
    await image(manager, "a look fox")  # reloads look
    again, warnings = await image(manager, "a look_2 fox")
    assert warnings == [] and np.array_equal(look_2, again)


async def test_comfyui_gets_the_same_weights_in_its_own_syntax(comfy_manager, fake):
    result = await comfy_manager.generate_image("a (fox:1.5) in [snow]", negative_prompt="(blurry)", backend="comfyui",
                                                width=64, height=64, num_inference_steps=2, seed=1)
    assert result.status == "success", result.error
    texts = sorted(node["inputs"]["text"] for node in fake.prompts[-1].values()
                   if node["class_type"] == "CLIPTextEncode")
    assert texts == ["(blurry:1.1)", "a (fox:1.5) in (snow:0.9091)"]
    await comfy_manager.generate_image("a fox [plain]? no: (kept)", backend="comfyui", width=64, height=64,
                                       num_inference_steps=2, seed=1)
    plain = await comfy_manager.generate_image("a fox, no syntax", backend="comfyui", width=64, height=64,
                                               num_inference_steps=2, seed=1)
    assert plain.status == "success"
    assert any(node["inputs"].get("text") == "a fox, no syntax" for node in fake.prompts[-1].values())


async def test_comfyui_gets_an_embeddings_name_as_embedding_colon_name(comfy_manager, fake):
    fake.embeddings.append("badhands.safetensors")
    monitor = comfy_manager.backends["comfyui"].monitor
    monitor.refresh_models(fake.url)
    monitor.poll_now()
    result = await comfy_manager.generate_image("a cat, (detailed:1.2)", negative_prompt="badhands, blurry",
                                                backend="comfyui", width=64, height=64, num_inference_steps=2, seed=1)
    assert result.status == "success", result.error
    texts = sorted(node["inputs"]["text"] for node in fake.prompts[-1].values()
                   if node["class_type"] == "CLIPTextEncode")
    assert texts == ["a cat, (detailed:1.2)", "embedding:badhands, blurry"]
