"""PNG info: ours, A1111's `parameters` text and ComfyUI's `prompt` graph read into the schema's names."""
from __future__ import annotations

import json

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
