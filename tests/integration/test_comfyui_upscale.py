"""Model upscalers on ComfyUI (the fake 0.3.64 server): listed from UpscaleModelLoader's list, run as LoadImage ->
UpscaleModelLoader -> ImageUpscaleWithModel -> ImageScale -> SaveImage on an upload; a failure there is finished
by this machine's file of the same name; the hires fix's upscale between its passes runs here when the file is
here, on ComfyUI otherwise."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.config import Settings
from engine.manager import AIModelManager
from tests.conftest import CPU
from tests.support.fake_comfyui import _node_error
from tests.support.tiny_upscaler import write_compact

SERVER_FILES = ["4x-UltraSharp.pth", "sub/RealESRGAN_x2plus.safetensors"]


@pytest.fixture
async def both(fake, tmp_path, tiny_model_dir):
    """A manager on the fake ComfyUI (with two upscale models) and a local model folder."""
    fake.upscale_models = list(SERVER_FILES)
    settings = Settings(comfyui_urls=[fake.url], output_dir=tmp_path / "outputs", tiny_model_dir=tiny_model_dir,
                        models_dir=tmp_path / "models", health_interval_s=0.2, health_timeout_s=0.5,
                        comfyui_timeout_s=3.0)
    mgr = AIModelManager(settings, hardware=CPU)
    await mgr.initialize_models()
    yield mgr
    mgr.shutdown()


def classes(graph: dict) -> set[str]:
    return {node["class_type"] for node in graph.values()}


def pattern(tmp_path) -> str:
    rng = np.random.default_rng(5)
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "small.png")
    return str(tmp_path / "small.png")


async def test_the_server_lists_its_upscalers_and_gets_the_upscale_graph(both, fake, tmp_path):
    assert both.available_upscalers() == ["Lanczos", "4x-UltraSharp", "RealESRGAN_x2plus"]
    path = pattern(tmp_path)
    result = await both.upscale_image(path, 2, "4x-ultrasharp")
    assert result.status == "success" and result.backend == "comfyui", result.error
    graph = fake.prompts[-1]
    assert classes(graph) == {"LoadImage", "UpscaleModelLoader", "ImageUpscaleWithModel", "ImageScale", "SaveImage"}
    (loader,) = [n for n in graph.values() if n["class_type"] == "UpscaleModelLoader"]
    (model_upscale,) = [n for n in graph.values() if n["class_type"] == "ImageUpscaleWithModel"]
    (scale,) = [n for n in graph.values() if n["class_type"] == "ImageScale"]
    (load,) = [n for n in graph.values() if n["class_type"] == "LoadImage"]
    assert loader["inputs"]["model_name"] == "4x-UltraSharp.pth" and load["inputs"]["image"] in fake.uploads
    assert model_upscale["inputs"]["upscale_model"][0] in graph and model_upscale["inputs"]["image"][0] in graph
    assert (scale["inputs"]["width"], scale["inputs"]["height"], scale["inputs"]["upscale_method"]) == (128, 96, "lanczos")
    # what the fake's "model" made (nearest 4x) scaled to the exact size: the saved PNG is that picture
    expected = Image.open(path).resize((256, 192), Image.Resampling.NEAREST).resize((128, 96), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(Image.open(result.path).convert("RGB")), np.asarray(expected))
    assert "Postprocess upscaler: 4x-UltraSharp" in Image.open(result.path).text["parameters"]
    x2 = await both.upscale_image(path, 3, "RealESRGAN_x2plus")  # a file in a subfolder, named by its stem
    assert x2.status == "success" and Image.open(x2.path).size == (192, 144), x2.error
    (loader,) = [n for n in fake.prompts[-1].values() if n["class_type"] == "UpscaleModelLoader"]
    assert loader["inputs"]["model_name"] == "sub/RealESRGAN_x2plus.safetensors"


async def test_a_refused_upscale_is_finished_by_the_local_file_of_that_name(both, fake, tmp_path):
    write_compact(tmp_path / "models" / "ESRGAN" / "4x-UltraSharp.safetensors")
    await both.rescan_models()
    fake.fail_next_prompt({"2": _node_error("UpscaleModelLoader", "model_name", "4x-UltraSharp.pth", [])})
    result = await both.upscale_image(pattern(tmp_path), 2, "4x-UltraSharp")
    assert result.status == "success" and result.backend == "diffusers", result.error
    assert "4x-UltraSharp.pth" in result.fallback_reason and Image.open(result.path).size == (128, 96)
    assert both.backends["diffusers"].pool[0].upscale_models.tiles == 1
    fake.fail_next_prompt({"2": _node_error("UpscaleModelLoader", "model_name", "sub/RealESRGAN_x2plus.safetensors",
                                            [])})
    only_there = await both.upscale_image(pattern(tmp_path), 2, "RealESRGAN_x2plus")  # nothing here to finish it
    assert only_there.status == "error" and "RealESRGAN_x2plus" in only_there.error


async def test_the_hires_fix_upscales_here_when_the_file_is_here_and_on_comfyui_otherwise(both, fake, tmp_path):
    run = dict(backend="comfyui", width=64, height=64, num_inference_steps=2, seed=3, hires_scale=2.0)
    sent = len(fake.prompts)
    result = await both.generate_image("a lighthouse", hires_upscaler="RealESRGAN_x2plus", **run)
    assert result.status == "success" and (result.width, result.height) == (128, 128), result.error
    first, upscaled, second = fake.prompts[sent:]
    assert "UpscaleModelLoader" in classes(upscaled) and "KSampler" not in classes(upscaled)
    (load,) = [n for n in second.values() if n["class_type"] == "LoadImage"]
    assert Image.open(io.BytesIO(fake.uploads[load["inputs"]["image"]])).size == (128, 128)
    assert "Hires upscaler: RealESRGAN_x2plus" in Image.open(result.path).text["parameters"]
    write_compact(tmp_path / "models" / "upscale_models" / "4x-UltraSharp.pth")
    await both.rescan_models()
    sent = len(fake.prompts)
    here = await both.generate_image("a lighthouse", hires_upscaler="4x-UltraSharp", **run)
    assert here.status == "success", here.error
    assert len(fake.prompts) - sent == 2 and both.backends["diffusers"].pool[0].upscale_models.tiles == 1  # no upscale graph
    forced_local = await both.generate_image("a lighthouse", **{**run, "backend": "diffusers"},
                                             hires_upscaler="RealESRGAN_x2plus")
    assert forced_local.status == "error" and "is on ComfyUI only" in forced_local.error
