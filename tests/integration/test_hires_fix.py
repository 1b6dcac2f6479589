"""A1111's hires fix on the tiny model: made at the base size, upscaled, redrawn at the larger size in one
stream whose second pass says so; recorded in the result and the PNG; impossible values are sentences."""
from __future__ import annotations

from PIL import Image

from engine.events import Done, Progress
from engine.outputs import read_parameters
from tests.support.tiny_upscaler import write_compact

HIRES = dict(width=64, height=64, num_inference_steps=4, seed=3, model="tiny", hires_scale=2.0, hires_strength=0.5)


async def test_64_becomes_128_in_one_stream_of_two_passes(manager):
    events = [e async for e in manager.stream_image("a lighthouse", hires_steps=6, **HIRES)]
    steps = [(e.stage, e.step, e.total) for e in events if isinstance(e, Progress)]
    assert steps == [("", i, 4) for i in range(1, 5)] + [("Hires fix", i, 3) for i in range(1, 4)]  # 6 x 0.5
    done = [e for e in events if isinstance(e, Done)]
    assert len(done) == 1  # the base image is a step on the way, not a result
    result = done[0].result
    assert (result.width, result.height) == (128, 128) and Image.open(result.path).size == (128, 128)
    assert (result.hires_scale, result.hires_steps, result.hires_upscaler, result.strength) == (2.0, 6, "Lanczos", 0.5)
    text = Image.open(result.path).text["parameters"]
    assert "Hires upscale: 2.0" in text and "Hires steps: 6" in text and "Denoising strength: 0.5" in text
    assert len(list(manager.output_dir.rglob("*.png"))) == 1  # only the final image is saved


async def test_the_png_records_the_size_asked_for_so_reuse_gives_the_same_image(manager):
    first = await manager.generate_image("a lighthouse", **HIRES)
    text = Image.open(first.path).text["parameters"]
    assert "Size: 64x64" in text and "Hires upscale: 2.0" in text  # as A1111 records a hires fix image
    saved = read_parameters(first.path)
    assert (saved["width"], saved["height"], saved["hires_scale"]) == (64, 64, 2.0)
    again = await manager.generate_image(saved["prompt"], width=saved["width"], height=saved["height"],
                                         num_inference_steps=saved["num_inference_steps"], seed=saved["seed"],
                                         model=saved["model_id"], hires_scale=saved["hires_scale"],
                                         hires_steps=saved["hires_steps"], hires_strength=saved["strength"],
                                         hires_upscaler=saved["hires_upscaler"])
    assert Image.open(again.path).size == (128, 128)
    assert list(Image.open(again.path).getdata()) == list(Image.open(first.path).getdata())


async def test_a_model_upscaler_enlarges_between_the_passes(manager, settings):
    write_compact(settings.models_dir / "ESRGAN" / "4x_tiny.safetensors")
    await manager.rescan_models()
    result = await manager.generate_image("a lighthouse", hires_upscaler="4x_tiny", **HIRES)
    assert result.status == "success" and (result.width, result.height) == (128, 128), result.error
    assert result.hires_upscaler == "4x_tiny" and manager.backends["diffusers"].pool[0].upscale_models.tiles == 1
    assert "Hires upscaler: 4x_tiny" in Image.open(result.path).text["parameters"]
    lanczos = await manager.generate_image("a lighthouse", **HIRES)
    assert list(Image.open(result.path).getdata()) != list(Image.open(lanczos.path).getdata())


async def test_the_hires_steps_default_to_the_steps_and_bad_values_are_sentences(manager):
    result = await manager.generate_image("a lighthouse", **HIRES)
    assert result.status == "success" and result.hires_steps == 4, result.error
    for extra, needle in ((dict(hires_scale=4.5), "Hires upscale must be between 1 and 4"),
                          (dict(width=1024, height=1024, hires_scale=3), "the largest side is 2048"),
                          (dict(hires_upscaler="ESRGAN_4x"), "Unknown upscaler 'ESRGAN_4x'"),
                          (dict(hires_strength=-0.1), "Hires denoising strength must be between 0 and 1")):
        bad = await manager.generate_image("a lighthouse", **{**HIRES, **extra})
        assert bad.status == "error" and needle in bad.error, (extra, bad.error)


async def test_on_comfyui_the_second_pass_starts_from_the_upscaled_upload(comfy_manager, fake):
    sent = len(fake.prompts)
    result = await comfy_manager.generate_image("a lighthouse", backend="comfyui", width=64, height=64,
                                                num_inference_steps=4, seed=3, hires_scale=1.5)
    assert result.status == "success" and (result.width, result.height) == (96, 96), result.error
    first, second = fake.prompts[sent:]
    assert any(n["class_type"] == "EmptyLatentImage" for n in first.values())
    (load,) = [n for n in second.values() if n["class_type"] == "LoadImage"]
    assert load["inputs"]["image"] in fake.uploads
    (sampler,) = [n for n in second.values() if n["class_type"] == "KSampler"]
    assert sampler["inputs"]["denoise"] == 0.5
