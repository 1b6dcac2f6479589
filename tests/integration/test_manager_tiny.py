"""The tiny diffusers model end to end through AIModelManager (real pipeline classes, offline)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
from PIL import Image

from engine.events import Done, Failed, Progress, Started
from engine.backends.diffusers import DiffusersBackend
from engine.outputs import read_parameters
from engine.request import GenerationRequest


async def collect(agen):
    return [event async for event in agen]


async def test_generate_image_end_to_end(manager):
    result = await manager.generate_image("a red fox in the snow", width=64, height=64, num_inference_steps=3, seed=7)
    assert result["status"] == "success", result.get("error")
    assert result["backend"] == "diffusers"
    assert result["model"] == "Tiny demo model"
    assert result["seed"] == 7
    assert isinstance(result["image"], Image.Image) and result["image"].size == (64, 64)
    assert set(result["timings"]) >= {"total_s", "generation_s", "save_s"}
    saved = Image.open(result["path"])
    assert saved.size == (64, 64)
    assert np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(result["image"].convert("RGB")))


async def test_stream_yields_a_preview_per_step(manager):
    events = await collect(manager.stream_image("a cat", width=64, height=64, num_inference_steps=4, seed=1))
    assert isinstance(events[0], Started) and events[0].backend == "diffusers"
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.step for p in progress] == [1, 2, 3, 4]
    assert all(p.total == 4 and isinstance(p.preview, Image.Image) for p in progress)
    assert progress[0].preview.size == (8, 8)  # one pixel per latent: the 8x VAE factor
    assert isinstance(events[-1], Done)


async def test_same_seed_same_pixels_and_random_seed_when_unset(manager):
    a = await manager.generate_image("a lighthouse", width=64, height=64, num_inference_steps=2, seed=1234)
    b = await manager.generate_image("a lighthouse", width=64, height=64, num_inference_steps=2, seed=1234)
    c = await manager.generate_image("a lighthouse", width=64, height=64, num_inference_steps=2, seed=1235)
    assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))
    assert not np.array_equal(np.asarray(a["image"]), np.asarray(c["image"]))
    r1 = await manager.generate_image("a lighthouse", width=64, height=64, num_inference_steps=2, seed=-1)
    r2 = await manager.generate_image("a lighthouse", width=64, height=64, num_inference_steps=2)
    assert isinstance(r1["seed"], int) and isinstance(r2["seed"], int) and r1["seed"] != r2["seed"]


async def test_pipeline_is_loaded_once(manager):
    await manager.generate_image("one", width=64, height=64, num_inference_steps=2, seed=1)
    await manager.generate_image("two", width=64, height=64, num_inference_steps=2, seed=2)
    assert manager.backends["diffusers"].loads == 1
    assert manager.backends["diffusers"].loaded_model == "tiny"


async def test_cancel_stops_within_one_step(manager):
    cancel = asyncio.Event()
    steps = []
    final = None
    async for event in manager.stream_image("slow", width=64, height=64, num_inference_steps=60, seed=3, cancel=cancel):
        if isinstance(event, Progress):
            steps.append(event.step)
            if event.step == 2:
                cancel.set()
        final = event
    assert isinstance(final, Failed) and "Cancelled" in final.error
    assert max(steps) <= 3
    assert not list(manager.settings.output_dir.rglob("*.png")), "a cancelled image must not be saved"


async def test_closing_the_stream_stops_the_worker(manager):
    agen = manager.stream_image("abandoned", width=64, height=64, num_inference_steps=150, seed=3)
    async for event in agen:
        if isinstance(event, Progress) and event.step == 2:
            break
    await agen.aclose()
    for _ in range(100):  # the worker thread stops at its next step and frees the device
        if not manager.backends["diffusers"].pool[0].busy:
            break
        await asyncio.sleep(0.02)
    assert not manager.backends["diffusers"].pool[0].busy
    result = await manager.generate_image("next", width=64, height=64, num_inference_steps=2, seed=4)
    assert result["status"] == "success"


async def test_overlong_prompt_is_truncated_with_a_warning(manager):
    prompt = " ".join(["a very detailed painting of a castle"] * 40)
    result = await manager.generate_image(prompt, width=64, height=64, num_inference_steps=2, seed=5)
    assert result["status"] == "success"
    assert result["warnings"] == []  # the tiny model's byte-level vocabulary is no real model's token limit
    # the same tokenizer outside the tiny model's folder stands for a real model: it warns
    real = SimpleNamespace(tokenizer=manager.backends["diffusers"].pool[0].pipe.tokenizer, name_or_path="")
    warnings = DiffusersBackend._truncation_warnings(real, GenerationRequest(prompt))
    assert any("cut off" in w for w in warnings)


async def test_metadata_round_trip(manager):
    result = await manager.generate_image("a \"quoted\" prompt, with commas\nand a newline", negative_prompt="blurry",
                                          width=64, height=72, num_inference_steps=3, guidance_scale=6.5, seed=99)
    params = read_parameters(result["path"])
    assert params["prompt"] == result["prompt"]
    assert params["negative_prompt"] == "blurry"
    assert (params["seed"], params["num_inference_steps"], params["width"], params["height"]) == (99, 3, 64, 72)
    assert params["guidance_scale"] == 6.5 and params["backend"] == "diffusers"
    text = Image.open(result["path"]).text["parameters"]
    assert "Negative prompt: blurry" in text
    assert "Steps: 3, Sampler: Euler, CFG scale: 6.5, Seed: 99, Size: 64x72, Model: Tiny demo model, Backend: diffusers" in text


async def test_requested_model_without_weights_says_so_and_uses_tiny(manager):
    result = await manager.generate_image("a cat", width=64, height=64, num_inference_steps=2, seed=1, model="sdxl-1.0")
    assert result["status"] == "success"
    assert result["model_id"] == "tiny"
    assert any("SDXL 1.0 weights not found" in w for w in result["warnings"])


async def test_concurrent_requests_queue_and_all_finish(manager):
    results = await asyncio.gather(*[
        manager.generate_image(f"prompt {i}", width=64, height=64, num_inference_steps=2, seed=i) for i in range(4)
    ])
    assert [r["status"] for r in results] == ["success"] * 4
    assert [r["prompt"] for r in results] == [f"prompt {i}" for i in range(4)]
    assert len({r["path"] for r in results}) == 4


async def test_local_generation_runs_through_a_gpu_decorator(manager):
    """The hook a ZeroGPU Space uses (`spaces.GPU`) wraps every local pipeline call."""
    calls = []

    def decorator(fn):
        def wrapped(*args, **kwargs):
            calls.append(args[0].prompt)
            return fn(*args, **kwargs)
        return wrapped

    manager.use_gpu_decorator(decorator)
    result = await manager.generate_image("under the decorator", width=64, height=64, num_inference_steps=2, seed=1)
    assert result["status"] == "success" and calls == ["under the decorator"]
