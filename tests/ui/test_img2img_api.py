"""/img2img through the running app: an uploaded init image is redrawn at its own size; a server path in
its place is refused with a sentence before anything is opened; bad values are sentences; Clip skip is taken too."""
from __future__ import annotations

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.integration.test_img2img_local import init_image


def test_an_uploaded_image_is_redrawn_at_its_own_size(local_app, tmp_path):
    init_image(100, 70).save(tmp_path / "init.png")
    client = Client(local_app.url, verbose=False)
    path, info = client.predict(handle_file(str(tmp_path / "init.png")), "a fox in the snow", strength=0.5,
                                num_inference_steps=4, seed=3, clip_skip=2, api_name="/img2img")
    assert info["status"] == "success" and (info["width"], info["height"]) == (96, 64)
    assert info["strength"] == 0.5 and Image.open(path).size == (96, 64)
    assert info["clip_skip"] == 2 and "Clip skip: 2" in Image.open(path).text["parameters"]
    with pytest.raises(Exception, match="Denoising strength must be between 0 and 1"):
        client.predict(handle_file(str(tmp_path / "init.png")), "a fox", strength=3, api_name="/img2img")


def test_a_server_path_is_never_opened(local_app, tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(secret)
    data = [{"path": str(secret), "meta": {"_type": "gradio.FileData"}}, "a fox", "", 0.5, "just resize", None,
            None, 2, None, 1, "auto", "auto", "euler", "None", 1, None, "auto", 1, False, 0.0, False]
    answer = httpx.post(local_app.url + "gradio_api/call/img2img", json={"data": data}, timeout=30)
    assert answer.status_code == 422, answer.text
    assert "a path on the server is never opened" in answer.json()["error"]


def test_upscale_through_the_api(local_app, tmp_path):
    init_image(64, 48).save(tmp_path / "small.png")
    path, info = Client(local_app.url, verbose=False).predict(handle_file(str(tmp_path / "small.png")), 2,
                                                              api_name="/upscale")
    assert info["status"] == "success" and Image.open(path).size == (128, 96)
