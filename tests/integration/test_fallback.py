"""Backend choice and automatic fallback through AIModelManager, against the fake ComfyUI (real sockets)."""
from __future__ import annotations

import time

from engine.events import Done, Fallback, Progress, Started
from engine.outputs import read_parameters

SMALL = dict(width=64, height=64, num_inference_steps=3, seed=11)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


async def events_of(mgr, **kwargs):
    return [e async for e in mgr.stream_image("a quiet harbour at dawn", **{**SMALL, **kwargs})]


async def test_comfyui_first_when_up(comfy_manager, fake):
    events = await events_of(comfy_manager)
    assert isinstance(events[0], Started) and events[0].backend == "comfyui" and events[0].server == fake.url
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3]
    result = events[-1].result
    assert result["backend"] == "comfyui" and result["server"] == fake.url and result["prompt_id"] in fake.prompt_ids
    assert result["fallback_reason"] is None
    assert read_parameters(result["path"])["backend"] == "comfyui"
    assert comfy_manager.active_backend()["backend"] == "comfyui"


async def test_down_falls_back_without_waiting(comfy_manager, fake):
    fake.stop()
    assert wait_until(lambda: not comfy_manager.backends["comfyui"].up())
    events = await events_of(comfy_manager)
    assert any(isinstance(e, Fallback) and "unreachable" in e.reason for e in events)
    result = events[-1].result
    assert result["status"] == "success" and result["backend"] == "diffusers"
    assert "unreachable" in result["fallback_reason"]
    assert comfy_manager.active_backend()["label"].startswith("tiny demo model")
    fake.restart()
    assert wait_until(comfy_manager.backends["comfyui"].up)
    assert (await comfy_manager.generate_image("back again", **SMALL))["backend"] == "comfyui"


async def test_missing_model_file_falls_back_with_the_reason(comfy_manager, fake):
    fake.fail_next_prompt()
    result = await comfy_manager.generate_image("a cat", **SMALL)
    assert result["status"] == "success" and result["backend"] == "diffusers"
    assert "missing.safetensors" in result["fallback_reason"] and "not installed" in result["fallback_reason"]


async def test_socket_dropped_mid_generation_falls_back(comfy_manager, fake):
    fake.drop_socket_after_step(1)
    events = await events_of(comfy_manager)
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("Fallback") > kinds.index("Progress"), kinds  # ComfyUI had started stepping
    starts = [e.backend for e in events if isinstance(e, Started)]
    assert starts == ["comfyui", "diffusers"]
    result = events[-1].result
    assert isinstance(events[-1], Done) and result["backend"] == "diffusers"
    assert "stopped answering" in result["fallback_reason"]


async def test_hanging_server_ends_in_fallback(comfy_manager, fake):
    fake.hang = True
    result = await comfy_manager.generate_image("a cat", **SMALL)
    assert result["status"] == "success" and result["backend"] == "diffusers"
    assert result["fallback_reason"]


async def test_forced_comfyui_fails_clearly(comfy_manager, fake):
    fake.fail_next_prompt()
    result = await comfy_manager.generate_image("a cat", backend="comfyui", **SMALL)
    assert result["status"] == "error" and "missing.safetensors is not installed" in result["error"]
    fake.stop()
    assert wait_until(lambda: not comfy_manager.backends["comfyui"].up())
    result = await comfy_manager.generate_image("a cat", backend="comfyui", **SMALL)
    assert result["status"] == "error" and "unreachable" in result["error"].lower()
    assert not list(comfy_manager.settings.output_dir.rglob("*.png"))


async def test_flux_only_when_its_files_are_installed(comfy_manager, fake):
    assert "flux.1-dev" not in {m.id for m in comfy_manager.backends["comfyui"].models()}
    result = await comfy_manager.generate_image("a fox", model="flux.1-dev", **SMALL)
    assert result["backend"] == "diffusers" and "FLUX.1-dev" in result["fallback_reason"]
    fake.install_flux()
    comfy_manager.backends["comfyui"].monitor.refresh_models(fake.url)
    assert wait_until(lambda: "flux.1-dev" in {m.id for m in comfy_manager.backends["comfyui"].models()})
    assert comfy_manager.active_backend()["label"] == "ComfyUI · FLUX.1-dev"
    result = await comfy_manager.generate_image("a fox", model="flux.1-dev", guidance_scale=3.5, **SMALL)
    assert result["backend"] == "comfyui", result.get("fallback_reason")
    graph = fake.prompts[-1]
    by_class = {node["class_type"]: node["inputs"] for node in graph.values()}
    assert by_class["FluxGuidance"]["guidance"] == 3.5 and by_class["KSampler"]["cfg"] == 1.0
    assert by_class["UNETLoader"]["unet_name"] == "flux1-dev.safetensors"


async def test_local_model_choice_skips_comfyui(comfy_manager, fake):
    before = len(fake.prompts)
    result = await comfy_manager.generate_image("a cat", model="tiny", **SMALL)
    assert result["backend"] == "diffusers" and result["fallback_reason"] is None
    result = await comfy_manager.generate_image("a cat", backend="diffusers", **SMALL)
    assert result["backend"] == "diffusers"
    assert len(fake.prompts) == before


async def test_status_reports_servers_and_switches(comfy_manager, fake):
    status = comfy_manager.status()
    server = status["servers"][0]
    assert server["url"] == fake.url and server["up"] is True and server["device"] == "cpu"
    fake.stop()
    assert wait_until(lambda: not comfy_manager.backends["comfyui"].up())
    events = [s["event"] for s in comfy_manager.status()["switches"]]
    assert f"ComfyUI {fake.url} is down" in events
