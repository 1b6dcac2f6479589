"""A1111's web API (/sdapi/v1) on the running app, called over HTTP as Open WebUI, SillyTavern or a script would:
txt2img and img2img (inpaint too) answer base64 PNGs with their parameters and A1111's `info`; the lists and the
options' checkpoint; progress and interrupt of the caller's own call; a caller that hangs up stops its job; bad
bodies are sentences; with logins every route asks for one (HTTP Basic) and the images go to its folder."""
from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import numpy as np
from PIL import Image

from engine.embedded_text import embedded_texts
from engine.registry import load_samplers
from tests.ui.conftest import AppProcesses, RunningApp

SMALL = {"width": 64, "height": 64, "steps": 3, "seed": 4}


def api(app: RunningApp, **options) -> httpx.Client:
    return httpx.Client(base_url=app.url, **{"timeout": 120, **options})


def picture(encoded: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(encoded)))


def encoded(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_the_lists_and_the_options_checkpoint(local_app):
    with api(local_app) as client:
        models = client.get("/sdapi/v1/sd-models").json()
        assert "tiny" in [m["title"] for m in models] and all(m["model_name"] for m in models)
        samplers = {s["name"]: s["aliases"] for s in client.get("/sdapi/v1/samplers").json()}  # A1111 1.9's names
        assert samplers["DPM++ 2M"] == ["dpmpp_2m", "dpmpp_2m_karras"] and samplers["Heun"] == ["heun"]
        assert sorted(key for keys in samplers.values() for key in keys) == sorted(load_samplers())
        schedulers = client.get("/sdapi/v1/schedulers").json()
        assert {"Automatic", "Karras", "Exponential"} <= {s["label"] for s in schedulers}
        assert client.get("/sdapi/v1/latent-upscale-modes").json() == []  # SillyTavern asks beside /upscalers
        assert "Lanczos" in [u["name"] for u in client.get("/sdapi/v1/upscalers").json()]
        assert client.get("/sdapi/v1/loras").status_code == client.get("/sdapi/v1/sd-vae").status_code == 200
        assert "Cinematic" in [s["name"] for s in client.get("/sdapi/v1/prompt-styles").json()]
        unknown = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "nowhere [0123456789]"})
        assert unknown.status_code == 422 and "Unknown checkpoint 'nowhere'" in unknown.json()["detail"]
        assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny [abc]"}).status_code == 200
        assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "tiny"


def test_txt2img_answers_a1111s_fields_and_saves_its_pngs(local_app):
    before = set(local_app.saved_images())
    with api(local_app) as client:
        answer = client.post("/sdapi/v1/txt2img", json={
            "prompt": "a fox in snow", "negative_prompt": "blurry", "sampler_name": "DPM++ 2M",
            "scheduler": "automatic", "batch_size": 2, "cfg_scale": 6, **SMALL})  # /schedulers' name, as sent
    assert answer.status_code == 200, answer.text
    body = answer.json()
    info = json.loads(body["info"])
    assert info["all_seeds"] == [4, 5] and info["sampler_name"] == "DPM++ 2M Karras"  # A1111 1.9's "Automatic"
    assert body["parameters"]["prompt"] == "a fox in snow" and len(body["images"]) == 2
    saved = sorted(set(local_app.saved_images()) - before)
    assert len(saved) == 2
    for image_b64, text, path in zip(body["images"], info["infotexts"], saved):
        image = picture(image_b64)
        assert image.size == (64, 64)
        assert image.text["parameters"] == text == embedded_texts(path)["parameters"]
        assert text.startswith("a fox in snow\nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ 2M Karras, CFG scale: 6")


def test_what_clients_send_as_they_send_it(local_app):
    """Nulls for empty texts, booleans as text, a sampler label that carries its schedule and the schedule again,
    CFG scale left out (the model's own), styles reaching the prompt."""
    with api(local_app) as client:
        answer = client.post("/sdapi/v1/txt2img", json={
            "prompt": "a fox", "negative_prompt": None, "tiling": "false", "enable_hr": "false",
            "sampler_name": "DPM++ 2M Karras", "scheduler": "Karras", "styles": ["Cinematic"], **SMALL})
    assert answer.status_code == 200, answer.text
    info = json.loads(answer.json()["info"])
    tiny = next(m for m in local_app.manager.available_models() if m["id"] == "tiny")
    assert info["sampler_name"] == "DPM++ 2M Karras" and info["cfg_scale"] == tiny["default_guidance"]
    assert info["prompt"].startswith("cinematic film still of a fox,")  # the style, as the form applies it
    assert "Tiling" not in info["infotexts"][0] and "Hires" not in info["infotexts"][0]


def test_img2img_and_inpaint_with_a_mask(local_app):
    start = Image.new("RGB", (64, 64), (200, 40, 40))
    with api(local_app) as client:
        moved = client.post("/sdapi/v1/img2img", json={"prompt": "a cat", "init_images": [encoded(start)],
                                                        "denoising_strength": 0.6, **SMALL})
        assert moved.status_code == 200, moved.text
        assert json.loads(moved.json()["info"])["denoising_strength"] == 0.6
        mask = Image.new("L", (64, 64))
        mask.paste(255, (0, 0, 32, 64))  # the left half redrawn
        painted = client.post("/sdapi/v1/img2img", json={
            "prompt": "a cat", "init_images": ["data:image/png;base64," + encoded(start)], "mask": encoded(mask),
            "mask_blur": 0, "inpainting_fill": 1, "denoising_strength": 1.0, **SMALL})
    assert painted.status_code == 200, painted.text
    pixels = np.asarray(picture(painted.json()["images"][0]).convert("RGB")).astype(int)
    assert np.array_equal(pixels[:, 32:], np.asarray(start).astype(int)[:, 32:])  # outside the mask: as it was
    assert np.abs(pixels[:, :32] - np.asarray(start).astype(int)[:, :32]).mean() > 5  # inside: redrawn


def test_bad_bodies_are_sentences_and_save_nothing(local_app):
    before = set(local_app.saved_images())
    cases = [({"prompt": "x", "steps": 0}, "Steps must be a whole number from 1 to 150"),
             ({"prompt": "x", "sampler_name": "magic"}, "Sampler must be one of euler"),
             ({"prompt": "x", "sampler_name": "DPM++ 2M", "scheduler": "Polyexponential"}, "Sampler must be one of"),
             ({"prompt": "x", "batch_size": 0}, "batch_size and n_iter must be whole numbers of at least 1"),
             ({"prompt": "x", "styles": ["No such style"]}, "No such style"),
             ({"prompt": "x", "styles": "Cinematic"}, "styles must be a list of style names"),
             ({"prompt": "x", "subseed_strength": "lots"}, "Variation strength"),
             ({"prompt": "x", "override_settings": {"sd_model_checkpoint": "nowhere"}}, "nowhere"),
             ({"prompt": "x", "sampler_name": "DPM++ 2M Karras", "scheduler": "Exponential"}, "Sampler must be"),
             ([1, 2], "The request body must be a JSON object")]
    with api(local_app) as client:
        for body, sentence in cases:
            answer = client.post("/sdapi/v1/txt2img", json=body)
            assert answer.status_code == 422 and sentence in answer.json()["detail"], (body, answer.text)
        for body, sentence in (({"prompt": "x", "init_images": ["not base64 !"]}, "The init image is not valid base64"),
                               ({"prompt": "x", "init_images": [base64.b64encode(b"text").decode()]},
                                "The init image is not a PNG, JPEG or WebP image"),
                               ({"prompt": "x"}, "img2img needs init_images"),
                               ({"prompt": "x", "init_images": [encoded(Image.new("1", (5000, 5000)))]},
                                "The init image is too large: 5000×5000"),  # refused before its pixels are decoded
                               ({"prompt": "x", "init_images": [encoded(Image.new("RGB", (64, 64)))],
                                 "resize_mode": 7}, "resize_mode must be a whole number from 0 to 3")):
            answer = client.post("/sdapi/v1/img2img", json=body)
            assert answer.status_code == 422 and sentence in answer.json()["detail"], (body, answer.text)
        not_json = client.post("/sdapi/v1/txt2img", content=b"{", headers={"content-type": "application/json"})
        assert not_json.status_code == 422 and "must be JSON" in not_json.json()["detail"]
        not_a_number = client.post("/sdapi/v1/txt2img", content=b'{"prompt": "x", "eta": NaN}',
                                   headers={"content-type": "application/json"})
        assert not_a_number.status_code == 422 and "must be JSON" in not_a_number.json()["detail"]
        for path in ("txt2img", "options"):  # a plain-text post, as another site's page could make without asking
            posted = client.post(f"/sdapi/v1/{path}", content=json.dumps({"prompt": "x"}).encode(),
                                 headers={"content-type": "text/plain"})
            assert posted.status_code == 415 and "Content-Type: application/json" in posted.json()["detail"]
        huge = client.post("/sdapi/v1/img2img", content=(b"x" * 2**20 for _ in range(300)),  # streamed, no length
                           headers={"content-type": "application/json"})
        assert huge.status_code == 413 and "over 256 MiB" in huge.json()["detail"]
    assert "Traceback" not in str(cases) and set(local_app.saved_images()) == before


def test_progress_shows_the_callers_run_and_interrupt_stops_it(local_app):
    answers: list[httpx.Response] = []
    long = {**SMALL, "steps": 150, "width": 192, "height": 192}
    runner = threading.Thread(target=lambda: answers.append(
        api(local_app).post("/sdapi/v1/txt2img", json={"prompt": "a long night", **long})))
    runner.start()
    with api(local_app) as client:
        deadline = time.monotonic() + 60
        state = {}
        while time.monotonic() < deadline:
            state = client.get("/sdapi/v1/progress").json()
            if state["state"]["sampling_step"] >= 2 and state["current_image"]:
                break
            time.sleep(0.1)
        assert state["state"]["sampling_steps"] == 150 and 0 < state["progress"] < 1, state
        assert state["eta_relative"] > 0, state  # seconds left at its pace
        assert picture(state["current_image"]).size[0] > 0  # the step's preview
        assert client.post("/sdapi/v1/interrupt").status_code == 200
        runner.join(60)
        assert client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0
    (answer,) = answers
    assert answer.status_code == 409 and "Stopped at step" in answer.json()["detail"], answer.text


def test_a_caller_that_hangs_up_stops_its_job(local_app):
    before = set(local_app.saved_images())
    try:
        api(local_app, timeout=1.5).post("/sdapi/v1/txt2img", json={"prompt": "a long day", **SMALL, "steps": 150,
                                                                     "width": 192, "height": 192})
    except httpx.TimeoutException:
        pass
    with api(local_app) as client:
        deadline = time.monotonic() + 10
        while client.get("/sdapi/v1/progress").json()["state"]["job_count"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0
    time.sleep(0.5)
    assert set(local_app.saved_images()) == before  # stopped, not finished unseen


def test_with_logins_every_route_asks_for_one_and_images_go_to_its_folder(tmp_path, tiny_model_dir):
    processes = AppProcesses(tmp_path, tiny_model_dir)  # its own: a wrong password counts toward a lock-out
    try:
        url, _ = processes.start(GATOR_AUTH="cy:c5,dee:d6", GATOR_LOGIN_MAX_ADDRESS_FAILURES="2",
                                 GATOR_LOGIN_LOCKOUT_S="2", GATOR_LOGIN_DELAY_S="0")
        with httpx.Client(base_url=url, timeout=120) as client:
            refused = client.get("/sdapi/v1/sd-models")
            assert refused.status_code == 401 and "HTTP Basic" in refused.json()["detail"]
            assert refused.headers["www-authenticate"].startswith("Basic")
            assert client.post("/sdapi/v1/txt2img", json={"prompt": "x", **SMALL}).status_code == 401
            assert client.get("/sdapi/v1/options", auth=("cy", "wrong")).status_code == 401
            assert client.get("/sdapi/v1/options", auth=("dee", "c5")).status_code == 401  # cy's password
            # two failures from this address lock it, as on the login page: the right password waits it out
            assert client.get("/sdapi/v1/options", auth=("cy", "c5")).status_code == 401
            time.sleep(2.2)
        with httpx.Client(base_url=url, timeout=120, auth=("cy", "c5")) as client:
            assert client.get("/sdapi/v1/sd-models").status_code == 200
            answer = client.post("/sdapi/v1/txt2img", json={"prompt": "a quiet lake", **SMALL})
        assert answer.status_code == 200, answer.text
    finally:
        processes.stop()
    mine = [path for path in (tmp_path / "outputs").rglob("*.png") if "a-quiet-lake" in path.name]
    assert len(mine) == 1 and mine[0].relative_to(tmp_path / "outputs").parts[0] == "cy"
