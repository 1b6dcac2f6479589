"""A1111's hires "Resize width/height to" on the tiny model: the hires fix makes that size instead of upscaling by
its scale; a side left 0 follows the image's shape, both set crop the first pass at the centre to their shape;
recorded as A1111 records it ("Hires resize: WxH") and read back; impossible sizes are sentences."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from engine import params as P
from engine.events import Done, Progress
from engine.outputs import a1111_parameters, parse_a1111_parameters, read_parameters
from engine.upscale import cropped_to_shape, hires_target

FIRST = dict(width=64, height=96, num_inference_steps=3, seed=5, model="tiny", hires_strength=0.5)


@pytest.mark.parametrize("scale, resize, expected", [
    (2.0, (0, 0), (128, 192)),  # no resize size: by the scale
    (1.0, (128, 0), (128, 192)),  # the height follows the first pass's 2:3 shape
    (3.0, (0, 144), (96, 144)),  # a resize size wins over the scale, as in A1111
    (1.0, (128, 128), (128, 128)),  # both: that size exactly (the first pass is cropped to its shape)
    (1.0, (100, 0), (96, 144)),  # rounded down to a multiple of 8
])
def test_the_output_size_by_scale_or_by_resize_size(scale, resize, expected):
    assert hires_target(64, 96, scale, *resize, 8) == expected


def test_cropping_to_a_shape_keeps_the_middle():
    image = Image.new("RGB", (60, 90))
    for x in range(60):
        for y in range(90):
            image.putpixel((x, y), (x, y, 0))
    square = cropped_to_shape(image, 128, 128)
    assert square.size == (60, 60) and square.getpixel((0, 0)) == (0, 15, 0)  # 15 rows off the top and bottom
    wide = cropped_to_shape(image, 160, 80)
    assert wide.size == (60, 30) and wide.getpixel((0, 0)) == (0, 30, 0)
    assert cropped_to_shape(image, 120, 180) is image  # already that shape


async def test_resize_to_a_width_makes_that_width_in_the_first_passs_shape(manager):
    events = [e async for e in manager.stream_image("a lighthouse", hires_resize_width=128, **FIRST)]
    assert [e.stage for e in events if isinstance(e, Progress)].count("Hires fix") >= 1
    (done,) = [e for e in events if isinstance(e, Done)]
    result = done.result
    assert result.status == "success", result.error
    assert (result.width, result.height) == (128, 192) and Image.open(result.path).size == (128, 192)
    assert (result.hires_scale, result.hires_resize_width, result.hires_resize_height) == (None, 128, 192)
    text = Image.open(result.path).text["parameters"]
    assert "Size: 64x96" in text and "Hires resize: 128x192" in text and "Hires upscale:" not in text


async def test_both_sides_crop_the_first_pass_and_reuse_gives_the_same_image(manager):
    first = await manager.generate_image("a lighthouse", hires_resize_width=128, hires_resize_height=128, **FIRST)
    assert first.status == "success" and Image.open(first.path).size == (128, 128), first.error
    saved = read_parameters(first.path)
    assert (saved["width"], saved["height"], saved["hires_resize_width"], saved["hires_resize_height"]) == \
        (64, 96, 128, 128)
    again = await manager.generate_image(saved["prompt"], width=saved["width"], height=saved["height"],
                                         num_inference_steps=saved["num_inference_steps"], seed=saved["seed"],
                                         model=saved["model_id"], hires_strength=saved["strength"],
                                         hires_resize_width=saved["hires_resize_width"],
                                         hires_resize_height=saved["hires_resize_height"])
    assert list(Image.open(again.path).getdata()) == list(Image.open(first.path).getdata())
    by_scale = await manager.generate_image("a lighthouse", hires_scale=2.0, **FIRST)  # another picture: not cropped
    assert Image.open(by_scale.path).size == (128, 192)


def test_the_a1111_text_carries_the_resize_size_both_ways():
    text = a1111_parameters({"prompt": "a cat", "width": 512, "height": 768, "num_inference_steps": 20, "seed": 1,
                             "hires_resize_width": 1024, "hires_resize_height": 1536, "hires_steps": 10})
    assert "Hires resize: 1024x1536" in text
    read = parse_a1111_parameters("a cat\nSteps: 20, Size: 512x768, Hires resize: 1024x1536, Hires steps: 10")
    assert (read[P.HIRES_RESIZE_WIDTH.name], read[P.HIRES_RESIZE_HEIGHT.name]) == (1024, 1536)
    odd = parse_a1111_parameters("a cat\nSteps: 20, Size: 512x768, Hires resize: big")
    assert P.HIRES_RESIZE_WIDTH.name not in odd and odd["width"] == 512  # one odd value is left out, not the text


async def test_impossible_resize_sizes_are_sentences(manager):
    for extra, needle in ((dict(hires_resize_width=100), "Resize width to must be a multiple of 8"),
                          (dict(hires_resize_height=-8), "Resize height to must be between 0 and 2048"),
                          (dict(hires_resize_width="wide"), "Resize width to must be a whole number of pixels"),
                          (dict(width=1024, height=1536, hires_resize_width=2000), "the largest side is 2048"),
                          (dict(width=2048, height=64, hires_resize_width=64), "would make 64×8 pixels; the smallest "
                                                                               "side is 64"),
                          (dict(hires_resize_height=8), "the smallest side is 64")):
        bad = await manager.generate_image("a lighthouse", **{**FIRST, **extra})
        assert bad.status == "error" and needle in bad.error, (extra, bad.error)


async def test_on_comfyui_the_second_pass_is_made_at_the_resize_size(comfy_manager, fake):
    sent = len(fake.prompts)
    result = await comfy_manager.generate_image("a lighthouse", backend="comfyui", width=64, height=64,
                                                num_inference_steps=4, seed=3, hires_resize_width=96,
                                                hires_resize_height=64)
    assert result.status == "success" and (result.width, result.height) == (96, 64), result.error
    first, second = fake.prompts[sent:]
    (latent,) = [n for n in first.values() if n["class_type"] == "EmptyLatentImage"]
    assert (latent["inputs"]["width"], latent["inputs"]["height"]) == (64, 64)
    (load,) = [n for n in second.values() if n["class_type"] == "LoadImage"]
    assert Image.open(io.BytesIO(fake.uploads[load["inputs"]["image"]])).size == (96, 64)
