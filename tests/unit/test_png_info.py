"""PNG info: ours, A1111's `parameters` text and ComfyUI's `prompt` graph read into the schema's names."""
from __future__ import annotations

import json
import resource
import struct
import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine import outputs
from engine.errors import InvalidRequest
from engine.png_info import png_info
from engine.workflows import bind, load_template

A1111_TEXT = ("a castle on a hill, <lora:detail:0.6>\nNegative prompt: blurry, lowres\n"
              "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234, Size: 512x768, Model: dreamshaper_8, "
              "Denoising strength: 0.4")


def png_with(path, **chunks: str):
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def test_ours_round_trips(tmp_path):
    params = {"prompt": "a lighthouse", "negative_prompt": "fog", "seed": 5, "width": 8, "height": 8,
              "num_inference_steps": 12, "guidance_scale": 6.0, "sampler": "euler", "model": "Tiny demo model",
              "loras": [{"name": "detail", "weight": 0.5}], "strength": 0.3}
    path = outputs.save_image(Image.new("RGB", (8, 8)), params, tmp_path)
    info = png_info(path)
    assert info["source"] == "gator" and {k: info[k] for k in params} == params


def test_an_a1111_png(tmp_path):
    info = png_info(png_with(tmp_path / "a1111.png", parameters=A1111_TEXT))
    assert info["source"] == "a1111"
    assert info["prompt"] == "a castle on a hill, <lora:detail:0.6>" and info["negative_prompt"] == "blurry, lowres"
    assert (info["num_inference_steps"], info["guidance_scale"], info["seed"]) == (28, 6.5, 1234)
    assert info["sampler"] == "dpmpp_2m_karras"  # A1111's label, as our sampler key
    assert (info["width"], info["height"], info["model"], info["strength"]) == (512, 768, "dreamshaper_8", 0.4)


def test_an_a1111_hires_fix_with_its_own_sampler_and_prompt(tmp_path):
    text = A1111_TEXT + (', Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, Hires sampler: DPM++ 2M Karras, '
                         'Hires prompt: "a castle, at night", Hires negative prompt: fog')
    info = png_info(png_with(tmp_path / "hires.png", parameters=text))
    assert (info["hires_sampler"], info["hires_prompt"], info["hires_negative_prompt"]) == (
        "dpmpp_2m_karras", "a castle, at night", "fog")  # A1111's label, as our sampler key
    lacking = png_info(png_with(tmp_path / "lacking.png", parameters=text.replace("DPM++ 2M Karras, Hires prompt",
                                                                                  "Restart, Hires prompt")))
    assert lacking["hires_sampler"] == "same"  # one this app lacks: the first pass's


def test_a_comfyui_png(tmp_path):
    graph = bind(load_template("checkpoint_generic"), {"prompt": "a red fox", "negative_prompt": "blurry",
                                                       "seed": 77, "steps": 18, "width": 640, "height": 512,
                                                       "ckpt_name": "juggernautXL_v9.safetensors", "cfg": 5.5,
                                                       "sampler": "dpmpp_2m", "scheduler": "karras"})
    info = png_info(png_with(tmp_path / "comfy.png", prompt=json.dumps(graph), workflow="{}"))
    assert info == {"source": "comfyui workflow", "prompt": "a red fox", "negative_prompt": "blurry", "seed": 77,
                    "num_inference_steps": 18, "guidance_scale": 5.5, "sampler": "dpmpp_2m_karras", "width": 640,
                    "height": 512, "model": "juggernautXL_v9.safetensors"}


def test_an_odd_value_is_left_out_and_the_rest_is_read(tmp_path):
    text = ("a castle\nSteps: 28, Sampler: Euler, CFG scale: six, Seed: 99999999999999999999, Size: 512, "
            "Clip skip: 2.0, Denoising strength: 0.4, Hires steps: 1.5, "
            'ControlNet 0: "Module: canny, Model: edges, Weight: heavy, Guidance Start: 0.1"')
    info = png_info(png_with(tmp_path / "odd.png", parameters=text))
    assert {k: v for k, v in info.items() if k not in ("prompt", "negative_prompt", "source", "sampler")} == {
        "num_inference_steps": 28, "seed": 99999999999999999999, "clip_skip": 2, "strength": 0.4,
        "controlnet_module": "canny", "controlnet": "edges", "controlnet_start": 0.1}


def test_a_gator_chunk_that_is_no_object_falls_back_to_the_a1111_text(tmp_path):
    for chunk in ("[1, 2]", "{not json"):
        info = png_info(png_with(tmp_path / "odd.png", gator=chunk, parameters=A1111_TEXT))
        assert info["source"] == "gator" and info["seed"] == 1234 and info["width"] == 512


def test_a_plain_png_has_none_and_a_text_file_is_a_sentence(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert png_info(tmp_path / "plain.png") == {}
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(InvalidRequest, match="not an image"):
        png_info(tmp_path / "notes.png")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(path, width: int, height: int, *chunks: bytes):
    """A PNG of a few hundred bytes whose header says width x height (its pixel data is a stub)."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    pixels = _chunk(b"IDAT", zlib.compress(bytes(range(256)) * 8))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + b"".join(chunks) + pixels + _chunk(b"IEND", b""))
    return path


def test_a_huge_png_is_read_without_decoding_its_pixels(tmp_path):
    claimed = _png_claiming(tmp_path / "big.png", 9000, 9000, _chunk(b"tEXt", b"parameters\0" + A1111_TEXT.encode()))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = png_info(claimed)  # 81 million pixels: decoding would take about 240 MB
    assert info["seed"] == 1234 and info["source"] == "a1111"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # kB: nothing near a decode
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(claimed.read_bytes()[:-30])  # cut inside its pixels: the texts before them still read
    assert png_info(truncated)["seed"] == 1234


def test_hostile_pngs_are_sentences_or_nothing(tmp_path):
    inflating = _chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"a" * (2 << 20)))  # 2 MB of text from 2 kB
    with pytest.raises(InvalidRequest, match="broken or too large"):
        png_info(_png_claiming(tmp_path / "bomb.png", 8, 8, inflating))
    assert png_info(_png_claiming(tmp_path / "huge.png", 20000, 20000)) == {}  # past Pillow's limit: no texts, no cost
    with pytest.raises(InvalidRequest, match="not an image"):
        png_info(_text_file(tmp_path / "notes.png"))


def _text_file(path):
    path.write_text("just some notes")
    return path


def test_texts_after_the_image_data_are_read_too(tmp_path):
    late = _chunk(b"tEXt", b"parameters\0" + A1111_TEXT.encode())
    path = _png_claiming(tmp_path / "late.png", 8, 8, _chunk(b"tEXt", b"Software\0paint"))
    data = path.read_bytes()
    path.write_bytes(data[:-12] + late + data[-12:])  # before IEND, after IDAT
    assert png_info(path)["seed"] == 1234
    utf8 = _chunk(b"iTXt", b"parameters\0\1\0\0\0" + zlib.compress("a caf\u00e9\nSteps: 2, Seed: 9".encode()))
    assert png_info(_png_claiming(tmp_path / "itxt.png", 8, 8, utf8))["prompt"] == "a caf\u00e9"  # compressed UTF-8


def test_nested_or_odd_json_is_no_parameters_rather_than_a_crash(tmp_path):
    deep = "[" * 100000 + "]" * 100000
    assert png_info(png_with(tmp_path / "deep.png", prompt=deep)) == {}
    assert png_info(png_with(tmp_path / "ours.png", gator=deep, parameters=A1111_TEXT))["seed"] == 1234  # the text
    odd = {"1": {"class_type": "KSampler", "inputs": {"positive": ["2", 0], "seed": 3}}, "2": {"inputs": "oops"},
           "3": {"class_type": "KSampler", "inputs": [1, 2]}}
    assert png_info(png_with(tmp_path / "odd.png", prompt=json.dumps(odd)))["seed"] == 3


@pytest.mark.parametrize("suffix", ["jpg", "webp"])
def test_a1111_jpeg_and_webp_carry_their_parameters_in_exif(tmp_path, suffix):
    exif = Image.Exif()
    exif[0x8769] = {0x9286: b"UNICODE\0" + A1111_TEXT.encode("utf-16-be")}  # as A1111 (piexif) writes it
    path = tmp_path / f"a1111.{suffix}"
    Image.new("RGB", (8, 8)).save(path, exif=exif)
    info = png_info(path)
    assert info["source"] == "a1111" and info["seed"] == 1234 and info["prompt"].startswith("a castle")


def test_a1111s_schedule_type_and_an_empty_prompt(tmp_path):
    text = "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 5, Size: 512x512"
    info = png_info(png_with(tmp_path / "a.png", parameters=text))  # A1111 1.9+, and no prompt at all
    assert (info["prompt"], info["sampler"], info["seed"]) == ("", "dpmpp_2m_karras", 5)
    automatic = png_info(png_with(tmp_path / "b.png", parameters="a cat\n" + text.replace("Karras", "Automatic")))
    assert automatic["sampler"] == "dpmpp_2m" and automatic["prompt"] == "a cat"


def test_values_of_the_wrong_type_in_our_chunk_are_left_out_one_by_one(tmp_path):
    odd = {"prompt": "a fox", "seed": 12, "sampler": ["euler"], "strength": "x", "plot": "p", "loras": "abc",
           "clip_skip": "2", "width": 64.5, "freeu": "yes", "hires_scale": None}
    info = png_info(png_with(tmp_path / "odd.png", gator=json.dumps(odd)))
    assert {k: v for k, v in info.items() if k != "source"} == {"prompt": "a fox", "seed": 12, "hires_scale": None}
