"""/controlnet through the running app: an uploaded control image steers text to image and image to image; a server
path in its place is refused before anything is opened; bad values are the engine's sentences."""
from __future__ import annotations

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.integration.test_controlnet_local import control_picture
from tests.integration.test_img2img_local import init_image


def test_controlnet_through_the_api(controlnet_app, tmp_path):
    control_picture().save(tmp_path / "control.png")
    init_image(100, 70).save(tmp_path / "init.png")
    client = Client(controlnet_app.url, verbose=False)
    path, info = client.predict(handle_file(str(tmp_path / "control.png")), "a fox", "tinyCanny",
                                controlnet_start=0.2, width=64, height=64, num_inference_steps=2, seed=4,
                                api_name="/controlnet")
    assert info["status"] == "success" and info["controlnet_start"] == 0.2 and info["controlnet_module"] == "canny"
    assert Image.open(path).size == (64, 64)
    redrawn, info = client.predict(handle_file(str(tmp_path / "control.png")), "a fox", "tinyCanny",
                                   init_image=handle_file(str(tmp_path / "init.png")), strength=0.5,
                                   num_inference_steps=4, seed=4, api_name="/controlnet")
    assert (info["width"], info["height"], info["strength"]) == (96, 64, 0.5) and info["controlnet"] == "tinyCanny"
    with pytest.raises(Exception, match="Guidance start \\(0.9\\) must be before guidance end \\(0.5\\)"):
        client.predict(handle_file(str(tmp_path / "control.png")), "a fox", "tinyCanny", controlnet_start=0.9,
                       controlnet_end=0.5, width=64, height=64, api_name="/controlnet")
    with pytest.raises(Exception, match="Unknown ControlNet 'nope'"):
        client.predict(handle_file(str(tmp_path / "control.png")), "a fox", "nope", width=64, height=64,
                       api_name="/controlnet")


def test_a_server_path_is_never_opened(controlnet_app, tmp_path):
    secret = tmp_path / "secret.png"
    control_picture().save(secret)
    data = [{"path": str(secret), "meta": {"_type": "gradio.FileData"}}, "a fox", "tinyCanny", "canny", 1, 0, 1, 100,
            200, "", 64, 64, 2, None, 1, "auto", "auto", "euler", "None", 1, None, "auto", None, 0.75, "just resize", 1,
            False, 0.0]
    answer = httpx.post(controlnet_app.url + "gradio_api/call/controlnet", json={"data": data}, timeout=30)
    assert answer.status_code == 422, answer.text
    assert "a path on the server is never opened" in answer.json()["error"]
