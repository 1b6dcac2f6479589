"""Fast PNG saves (engine/png_encoding.py): the pixels and the text chunks come back exactly as Pillow reads them,
Latin-1 texts as tEXt and others as iTXt, in every image mode the app saves, and the file stays about the size
Pillow's default writes."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image

from engine.outputs import read_parameters, save_image
from engine.png_encoding import encode_png


def photo_like(width: int = 256, height: int = 192, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 0.7 + y * 0.2) % 256, (y * 0.9) % 256, ((x + y) * 0.4) % 256, (x * 0.3) % 256], -1)
    pixels = (base + rng.normal(0, 6, base.shape)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGBA").convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_pixels_and_texts_come_back_exactly(mode):
    image = photo_like(mode=mode) if mode != "I;16" else Image.fromarray(np.arange(64 * 48, dtype=np.uint16)
                                                                          .reshape(48, 64) * 13, "I;16")
    texts = {"parameters": "a fox\nSteps: 20, Seed: 1", "gator": '{"prompt": "a fox"}'}
    with Image.open(io.BytesIO(encode_png(image, texts))) as back:
        back.load()
        assert back.mode == image.mode and back.size == image.size
        assert np.array_equal(np.asarray(back), np.asarray(image))
        assert {k: back.text[k] for k in texts} == texts


def test_non_latin_text_is_utf8_itxt_and_latin_text_is_text():
    png = encode_png(photo_like(32, 32), {"parameters": "café, 狐狸 в лесу", "plain": "naïve but Latin-1"})
    assert b"iTXtparameters\0" in png and b"tEXtplain\0" in png
    with Image.open(io.BytesIO(png)) as back:
        assert back.text == {"parameters": "café, 狐狸 в лесу", "plain": "naïve but Latin-1"}


def test_about_the_size_pillow_writes(tmp_path):
    image = photo_like(512, 512)
    pillow = io.BytesIO()
    image.save(pillow, format="PNG")
    assert len(encode_png(image)) < 1.15 * len(pillow.getvalue())


def test_saved_images_keep_their_parameters(tmp_path):
    path = save_image(photo_like(64, 64), {"prompt": "ein Fuchs über dem Fluss", "seed": 7, "width": 64,
                                           "height": 64}, tmp_path)
    assert read_parameters(path)["prompt"] == "ein Fuchs über dem Fluss" and read_parameters(path)["seed"] == 7
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (1, 5)])
def test_tiny_images_round_trip_through_two_decoders(size):
    import cv2

    image = photo_like(*size)
    png = encode_png(image, {"parameters": "tiny"})
    with Image.open(io.BytesIO(png)) as back:
        assert np.array_equal(np.asarray(back), np.asarray(image))
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)  # libpng checks the CRCs as well
    assert np.array_equal(decoded.reshape(size[1], size[0], 3)[:, :, ::-1], np.asarray(image))


def test_without_isal_pillow_writes_the_same_pixels_and_texts(monkeypatch):
    monkeypatch.setitem(sys.modules, "isal", None)  # import isal raises ImportError, as on a machine without it
    image = photo_like(48, 32)
    with Image.open(io.BytesIO(encode_png(image, {"parameters": "a fox"}))) as back:
        assert np.array_equal(np.asarray(back), np.asarray(image)) and back.text["parameters"] == "a fox"


def test_a_long_stream_is_split_into_several_idat_chunks(monkeypatch):
    import cv2

    from engine import png_encoding

    monkeypatch.setattr(png_encoding, "IDAT_BYTES", 1000)
    image = photo_like(64, 48)
    png = encode_png(image, {"parameters": "split"})
    assert png.count(b"IDAT") > 5
    with Image.open(io.BytesIO(png)) as back:
        assert np.array_equal(np.asarray(back), np.asarray(image)) and back.text["parameters"] == "split"
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded[:, :, ::-1], np.asarray(image))
