"""/inpaint through the running app: an uploaded image and mask, the unmasked half kept exactly; outpaint without
a mask; a server path in place of the mask is refused before anything is opened."""
from __future__ import annotations

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tests.integration.test_img2img_local import init_image
from tests.integration.test_inpaint_local import left_half


def test_an_uploaded_mask_repaints_its_half_and_outpaint_needs_none(local_app, tmp_path):
    init_image(64, 64).save(tmp_path / "init.png")
    left_half().save(tmp_path / "mask.png")
    client = Client(local_app.url, verbose=False)
    path, info = client.predict(handle_file(str(tmp_path / "init.png")), handle_file(str(tmp_path / "mask.png")),
                                "a fox", strength=0.9, mask_blur=0, num_inference_steps=4, seed=3,
                                api_name="/inpaint")
    assert info["status"] == "success" and info["mask_blur"] == 0
    made, start = np.asarray(Image.open(path).convert("RGB")), np.asarray(init_image(64, 64))
    assert np.array_equal(made[:, 32:], start[:, 32:])
    path, info = client.predict(handle_file(str(tmp_path / "init.png")), handle_file(str(tmp_path / "mask.png")),
                                "a fox", strength=0.9, mask_blur=0, num_inference_steps=4, seed=3,
                                masked_content="latent nothing", api_name="/inpaint")
    assert info["masked_content"] == "latent nothing"
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB"))[:, 32:], start[:, 32:])
    with pytest.raises(AppError, match=r"Masked content must be one of fill, original, latent noise, latent nothing"):
        client.predict(handle_file(str(tmp_path / "init.png")), handle_file(str(tmp_path / "mask.png")), "a fox",
                       masked_content="blur", api_name="/inpaint")
    path, info = client.predict(handle_file(str(tmp_path / "init.png")), None, "a fox", outpaint={"down": 16},
                                num_inference_steps=2, seed=3, api_name="/inpaint")
    assert Image.open(path).size == (64, 80) and info["outpaint"]["down"] == 16


def test_a_server_path_as_the_mask_is_never_opened(local_app, tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("L", (64, 64), 255).save(secret)
    client = Client(local_app.url, verbose=False)
    spec = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/inpaint"]["parameters"]
    data = [p.get("parameter_default") for p in spec]
    data[:3] = [{"path": str(secret), "meta": {"_type": "gradio.FileData"}}] * 2 + ["a fox"]
    answer = httpx.post(local_app.url + "gradio_api/call/inpaint", json={"data": data}, timeout=30)
    assert answer.status_code == 422, answer.text
    assert "a path on the server is never opened" in answer.json()["error"]
