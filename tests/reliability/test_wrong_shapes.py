"""Well-formed but wrong-shaped ComfyUI answers end as a local finish that says why, never as a crash.

Each case makes the fake ComfyUI (real sockets) send one wrong-shaped JSON answer or websocket message
in the middle of a request in auto mode; the request must still succeed on the local backend, with a
fallback_reason naming the server and the unexpected answer.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest
from gradio_client import Client

from engine.config import Settings
from tests.support.fake_comfyui import PROMPT_ID, FakeComfyUI
from tests.ui.conftest import start_app, stop_app

SMALL = dict(width=64, height=64, num_inference_steps=2, seed=5)
DONE = {"status_str": "success", "completed": True, "messages": []}


def history(body: Any) -> Callable[[FakeComfyUI], str]:
    def arrange(fake: FakeComfyUI) -> str:
        fake.answer_next("/history", body)
        return "answer to GET /history/"
    return arrange


def prompt(body: Any) -> Callable[[FakeComfyUI], str]:
    def arrange(fake: FakeComfyUI) -> str:
        fake.answer_next("/prompt", body, method="POST")
        return "answer to POST /prompt"
    return arrange


def queue(body: Any) -> Callable[[FakeComfyUI], str]:
    """/queue is read when the socket falls silent: a slow step makes the client look (stall_s is short)."""
    def arrange(fake: FakeComfyUI) -> str:
        fake.step_delay_s = 1.0
        fake.answer_next("/queue", body, method="GET")
        return "answer to GET /queue"
    return arrange


def ws(message: Any) -> Callable[[FakeComfyUI], str]:
    def arrange(fake: FakeComfyUI) -> str:
        fake.send_after_step(1, message)
        return "message"
    return arrange


CASES = {
    "history from the issue": (history({PROMPT_ID: {"outputs": "nope", "status": 7}}),
                               "outputs must be a mapping (got \"nope\"); status must be a mapping (got 7)"),
    "history images not a list": (
        history({PROMPT_ID: {"outputs": {"9": {"images": "gator_00001_.png"}}, "status": DONE}}),
        "outputs.9.images must be a list (got \"gator_00001_.png\")"),
    "history filename not a string": (
        history({PROMPT_ID: {"outputs": {"9": {"images": [{"filename": 7, "subfolder": "", "type": "output"}]}},
                             "status": DONE}}),
        "outputs.9.images[0].filename must be a string (got 7)"),
    "history entry not a mapping": (history({PROMPT_ID: ["done"]}), "the prompt's entry must be a mapping"),
    "history not a mapping": (history([PROMPT_ID]), "the answer must be a mapping (got a list of 1)"),
    "prompt id not a string": (prompt({"prompt_id": 7, "number": 1, "node_errors": {}}),
                               "prompt_id must be a string (got 7)"),
    "prompt id missing": (prompt({"number": 1, "node_errors": {}}), "prompt_id is missing"),
    "queue running not a list": (queue({"queue_running": "busy", "queue_pending": []}),
                                 "queue_running must be a list (got \"busy\")"),
    "queue item without an id": (queue({"queue_running": [[3]], "queue_pending": []}),
                                 "queue_running[0] must be a list [number, prompt_id, ...]"),
    "progress not a number": (ws({"type": "progress", "data": {"value": "two", "max": 2, "prompt_id": PROMPT_ID}}),
                              "\"progress\" message: value must be a number of steps (got \"two\")"),
    "executing without node": (ws({"type": "executing", "data": {"prompt_id": PROMPT_ID}}),
                               "\"executing\" message: node is missing"),
}


@pytest.mark.parametrize("arrange, detail", list(CASES.values()), ids=list(CASES))
async def test_wrong_shaped_answer_finishes_locally_with_the_reason(comfy_manager, fake, arrange, detail):
    comfy_manager.backends["comfyui"].stall_s = 0.2  # a silent socket is probed (GET /history, GET /queue) soon
    what = arrange(fake)
    result = await comfy_manager.generate_image("a heron in the reeds", **SMALL)
    assert result.status == "success", result.error
    assert result.backend == "diffusers" and result.path
    reason = result.fallback_reason
    assert f"ComfyUI at {fake.url} sent an unexpected " in reason and what in reason, reason
    assert detail in reason, reason
    assert "Traceback" not in reason and "object has no attribute" not in reason
    if what != "message":
        assert fake.canned_served, "the wrong answer was never asked for"


async def test_the_issue_example_keeps_the_server_in_the_pool(comfy_manager, fake):
    """One wrong answer fails one job, not the server: the next request runs on ComfyUI again."""
    fake.answer_next("/history", {PROMPT_ID: {"outputs": "nope", "status": 7}})
    first = await comfy_manager.generate_image("a heron", **SMALL)
    assert first.backend == "diffusers" and "outputs must be a mapping" in first.fallback_reason
    second = await comfy_manager.generate_image("a heron", **SMALL)
    assert second.status == "success" and second.backend == "comfyui" and second.fallback_reason is None


def test_wrong_shaped_history_through_the_app_api(fake, tmp_path, tiny_model_dir):
    settings = Settings(comfyui_urls=[fake.url], output_dir=tmp_path / "outputs", tiny_model_dir=tiny_model_dir,
                        models_dir=tmp_path / "no-models", health_interval_s=0.2, health_timeout_s=0.5,
                        comfyui_timeout_s=5.0)
    app = start_app(settings)
    try:
        fake.answer_next("/history", {PROMPT_ID: {"outputs": "nope", "status": 7}})
        path, info = Client(app.url, verbose=False).predict("a heron in the reeds", width=64, height=64,
                                                            num_inference_steps=2, seed=5, api_name="/generate_image")
    finally:
        stop_app(app)
    assert info["status"] == "success" and info["backend"] == "diffusers" and path.endswith(".png")
    reason = info["fallback_reason"]
    assert f"ComfyUI at {fake.url} sent an unexpected answer to GET /history/" in reason, reason
    assert "outputs must be a mapping" in reason
    assert fake.canned_served and fake.canned_served[0].startswith("GET /history/")
