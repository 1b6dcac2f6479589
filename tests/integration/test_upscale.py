"""Upscale on its own: a finished image enlarged, saved as a new PNG with the parameters it carried and the
upscale as A1111's Extras writes it; bad values are sentences."""
from __future__ import annotations

from PIL import Image

from engine.png_info import png_info


async def test_a_result_is_enlarged_and_keeps_its_parameters(manager):
    made = await manager.generate_image("a lighthouse", width=64, height=64, num_inference_steps=2, seed=8)
    larger = await manager.upscale_image(made.path, 2)
    assert larger.status == "success", larger.error
    assert Image.open(larger.path).size == (128, 128) and larger.path != made.path
    info = png_info(larger.path)
    assert (info["prompt"], info["seed"], info["upscale_by"], info["upscaler"]) == ("a lighthouse", 8, 2.0, "Lanczos")
    assert "Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos" in Image.open(larger.path).text["parameters"]


async def test_bad_upscales_are_sentences(manager, tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "plain.png")
    cases = {"Upscale by must be between 1 and 4": dict(scale=5),
             "Unknown upscaler 'ESRGAN_4x'": dict(upscaler="ESRGAN_4x"),
             "could not be read as an image": dict(image=str(tmp_path / "missing.png"))}
    for needle, extra in cases.items():
        result = await manager.upscale_image(**{"image": str(tmp_path / "plain.png"), **extra})
        assert result.status == "error" and needle in result.error, (needle, result.error)
