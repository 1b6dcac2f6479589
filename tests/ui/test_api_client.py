"""Every action is an API endpoint: gradio_client against the real app (no browser needed)."""
from __future__ import annotations

import pytest
from gradio_client import Client

from engine.outputs import read_parameters


@pytest.fixture(scope="module")
def client(local_app):
    return Client(local_app.url, verbose=False)


def test_named_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate_image", "/generate_video", "/status"} <= set(api)
    names = [p["parameter_name"] for p in api["/generate_image"]["parameters"]]
    assert names[:3] == ["prompt", "negative_prompt", "width"] and "seed" in names and "backend" in names


def test_generate_image_returns_the_png_and_its_parameters(client):
    path, info = client.predict("a red fox in the snow", width=64, height=64, num_inference_steps=2, seed=42,
                                api_name="/generate_image")
    assert info["status"] == "success" and info["seed"] == 42 and info["backend"] == "diffusers"
    assert info["saved_path"].endswith(".png") and "image" not in info
    params = read_parameters(path)
    assert params["seed"] == 42 and params["prompt"] == "a red fox in the snow" and params["width"] == 64


def test_generate_image_style_and_model_defaults(client):
    _, info = client.predict("a castle", width=64, height=64, num_inference_steps=1, style="Watercolor", api_name="/generate_image")
    assert info["prompt"].startswith("watercolor painting of a castle")
    assert "photograph" in info["negative_prompt"]


def test_bad_input_is_a_clear_error(client):
    with pytest.raises(Exception) as err:
        client.predict("a cat", width=100, height=64, num_inference_steps=2, api_name="/generate_image")
    assert "multiple of 8" in str(err.value)
    with pytest.raises(Exception) as err:
        client.predict("", api_name="/generate_image")
    assert "prompt is empty" in str(err.value)


def test_generate_video(client):
    path, info = client.predict(prompts="a harbour\na boat", width=64, height=64, steps=1, fps=8, duration=1,
                                api_name="/generate_video")
    assert path.endswith(".mp4") and info["status"] == "success" and info["frames"] == 16
    assert len(info["keyframes"]) == 2 and all(s["saved_path"].endswith(".png") for s in info["scenes"])


def test_status(client, local_app):
    status = client.predict(api_name="/status")
    assert status["active"]["demo"] and "tiny demo model" in status["active"]["label"]
    assert status["output_dir"] == str(local_app.output_dir)
    assert any(m["id"] == "tiny" and m["available"] for m in status["models"])
