"""Upscale on its own: a finished image enlarged, saved as a new PNG with the parameters it carried and the
upscale as A1111's Extras writes it; model upscalers (ESRGAN family, tiny random ones built here) run on this
machine in pieces and land on the exact size; bad values and bad files are sentences."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.backends.upscale_models import UpscaleModels
from engine.model_files import UPSCALER, inspect
from engine.png_info import png_info
from engine.upscale import TILE, tile_boxes
from tests.support.tiny_upscaler import write_compact, write_rrdb


async def test_a_result_is_enlarged_and_keeps_its_parameters(manager):
    made = await manager.generate_image("a lighthouse", width=64, height=64, num_inference_steps=2, seed=8)
    larger = await manager.upscale_image(made.path, 2)
    assert larger.status == "success", larger.error
    assert Image.open(larger.path).size == (128, 128) and larger.path != made.path
    info = png_info(larger.path)
    assert (info["prompt"], info["seed"], info["upscale_by"], info["upscaler"]) == ("a lighthouse", 8, 2.0, "Lanczos")
    assert "Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos" in Image.open(larger.path).text["parameters"]
    # the size it was made at stays, as in A1111's Extras: reusing the parameters makes the 64 px image again
    assert (info["width"], info["height"]) == (64, 64) and (larger.width, larger.height) == (128, 128)


async def test_bad_upscales_are_sentences(manager, tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "plain.png")
    cases = {"Upscale by must be between 1 and 4": dict(scale=5),
             "Unknown upscaler 'ESRGAN_4x'; upscalers here: Lanczos (model upscalers are .pth": dict(upscaler="ESRGAN_4x"),
             "could not be read as an image": dict(image=str(tmp_path / "missing.png"))}
    for needle, extra in cases.items():
        result = await manager.upscale_image(**{"image": str(tmp_path / "plain.png"), **extra})
        assert result.status == "error" and needle in result.error, (needle, result.error)


class RunsCode:
    """What a malicious .pth holds: an object whose unpickling calls a function (here a harmless print)."""

    def __reduce__(self):
        return print, ("this pickle ran code while it was loaded",)


@pytest.fixture
async def with_upscalers(manager, settings):
    """The manager with a compact x4 (.safetensors, A1111's ESRGAN/) and an RRDB x4 (.pth, ComfyUI's
    upscale_models/) in its model folder."""
    write_compact(settings.models_dir / "ESRGAN" / "4x_tiny.safetensors", seed=1)
    write_rrdb(settings.models_dir / "upscale_models" / "4x_rrdb.pth", seed=2)
    await manager.rescan_models()
    return manager


async def test_a_model_upscaler_lands_on_the_exact_size_and_is_not_lanczos(with_upscalers):
    manager = with_upscalers
    assert manager.available_upscalers() == ["Lanczos", "4x_rrdb", "4x_tiny"]
    made = await manager.generate_image("a lighthouse", width=96, height=64, num_inference_steps=2, seed=8)
    assert made.status == "success", made.error
    by_model = await manager.upscale_image(made.path, 2, "4x_TINY")  # names are case-insensitive
    by_lanczos = await manager.upscale_image(made.path, 2, "Lanczos")
    assert by_model.status == "success", by_model.error
    assert Image.open(by_model.path).size == (192, 128) == Image.open(by_lanczos.path).size  # 4x model, then 2x
    difference = np.abs(np.asarray(Image.open(by_model.path), float) - np.asarray(Image.open(by_lanczos.path), float))
    assert difference.mean() > 1.0
    text = Image.open(by_model.path).text["parameters"]
    assert "Postprocess upscale by: 2.0, Postprocess upscaler: 4x_tiny" in text and by_model.backend == "diffusers"
    assert png_info(by_model.path)["upscaler"] == "4x_tiny"


async def test_a_pth_loads_weights_only_and_stays_loaded(with_upscalers, tmp_path):
    manager = with_upscalers
    models = manager.backends["diffusers"].pool[0].upscale_models
    Image.new("RGB", (40, 40), (200, 60, 10)).save(tmp_path / "small.png")
    first = await manager.upscale_image(str(tmp_path / "small.png"), 3, "4x_rrdb")
    again = await manager.upscale_image(str(tmp_path / "small.png"), 1.5, "4x_rrdb")
    assert (first.status, again.status) == ("success", "success"), (first.error, again.error)
    assert Image.open(first.path).size == (120, 120) and Image.open(again.path).size == (60, 60)
    assert models.loads == 1  # the same file, kept loaded


async def test_broken_upscaler_files_are_sentences_remembered_until_they_change(manager, settings, tmp_path):
    folder = settings.models_dir / "ESRGAN"
    good = write_rrdb(tmp_path / "good.pth")
    (folder / "cut.pth").parent.mkdir(parents=True)
    (folder / "cut.pth").write_bytes(good.read_bytes()[:5000])
    torch.save({"conv_first.weight": RunsCode()}, folder / "sneaky.pth")  # unpickled freely, it would call print
    write_compact(folder / "compact.safetensors")
    (folder / "compact.safetensors").write_bytes((folder / "compact.safetensors").read_bytes()[:-100])
    from safetensors.numpy import save_file
    save_file({"some.other.weight": np.zeros((2, 2), np.float32)}, str(folder / "other.safetensors"))
    await manager.rescan_models()
    Image.new("RGB", (32, 32)).save(tmp_path / "small.png")
    expected = {"cut": "cut.pth could not be loaded as an upscaler",
                "sneaky": "sneaky.pth holds more than model weights",
                "compact": "compact.safetensors is truncated",
                "other": "other.safetensors is not an upscaler model this app knows"}
    for name, needle in expected.items():
        result = await manager.upscale_image(str(tmp_path / "small.png"), 2, name)
        assert result.status == "error" and needle in result.error, (name, result.error)
        assert str(folder) not in result.error  # the file's name, never the server's path
    models = manager.backends["diffusers"].pool[0].upscale_models
    loads_before = models.loads
    assert "could not be loaded" in (await manager.upscale_image(str(tmp_path / "small.png"), 2, "cut")).error
    assert models.loads == loads_before  # remembered: not read again until the file changes


def test_a_large_image_is_upscaled_in_bounded_pieces_as_if_whole(tmp_path):
    file = inspect(write_compact(tmp_path / "ESRGAN" / "4x_tiny.safetensors", seed=3), UPSCALER)
    rng = np.random.default_rng(4)
    picture = Image.fromarray((rng.random((30, 60, 3)) * 255).astype(np.uint8)).resize((600, 300))
    tiled, whole = UpscaleModels(), UpscaleModels()
    pieces = tiled.upscale(file, picture, 1000, 500)
    at_once = whole.upscale(file, picture, 1000, 500, tile=10_000)
    assert tiled.tiles == len(tile_boxes(600, 300)) == 6 and tiled.largest_piece == TILE  # 256 x 256 at most
    assert whole.tiles == 1 and whole.largest_piece == 600
    assert pieces.size == at_once.size == (1000, 500)
    difference = np.abs(np.asarray(pieces, int) - np.asarray(at_once, int))
    assert difference.max() <= 2  # the pieces are blended across their overlaps: no seam
    assert np.abs(np.asarray(pieces, int) - np.asarray(picture.resize((1000, 500), Image.Resampling.LANCZOS),
                                                       int)).mean() > 1.0
