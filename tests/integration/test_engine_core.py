"""The engine's middle: a backend added from a test alone, the router planning once, one parameter schema."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from PIL import Image

from engine import params as P
from engine.backends import Backend, BackendState, Target, register_backend, unregister_backend
from engine.config import Settings
from engine.events import Done, Event, Fallback, Produced, Progress, Started
from engine.manager import AIModelManager
from engine.registry import ModelSpec
from tests.conftest import CPU
from tests.support.fake_comfyui import FakeComfyUI

ROOT = Path(__file__).resolve().parents[2]
RED = (200, 30, 30)


class SolidColour(Backend):
    """A backend that paints the whole image one colour: a stand-in for a hosted API."""

    name = "solid"
    label = "Solid colour"
    priority = 200
    MODEL = ModelSpec(id="solid-red", label="Solid red", backend="solid", family="sd15", default_steps=3,
                      default_guidance=1.0, native_size=64)

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def models(self) -> list[ModelSpec]:
        return [self.MODEL]

    def find(self, model_id: str) -> ModelSpec | None:
        return self.MODEL if model_id in (self.MODEL.id, self.MODEL.label) else None

    def why_not(self, model: ModelSpec | None) -> str | None:
        return None

    def plan(self, request, model: ModelSpec | None) -> Target:
        return Target(self.name, model or self.MODEL)

    async def stream(self, request, target: Target, cancel: Any = None, previews: bool = True
                     ) -> AsyncIterator[Event | Produced]:
        from engine.errors import BackendUnavailable

        yield Started(backend=self.name, model=target.model.label)
        for step in range(1, request.num_inference_steps + 1):
            if self.fail and step == 2:
                raise BackendUnavailable("The colour service hung up.")
            yield Progress(step, request.num_inference_steps, None, self.name)
        yield Produced(Image.new("RGB", (request.width, request.height), RED),
                       {"model": target.model.label, "model_id": target.model.id})

    def state(self) -> BackendState:
        return BackendState(name=self.name, label=self.label, enabled=True, ready=True, summary="paints in red",
                            models=[self.MODEL.id])


@pytest.fixture
def solid_backend():
    """The test-only backend, registered for every manager built while the test runs."""
    made: list[SolidColour] = []

    def factory(context) -> SolidColour:
        made.append(SolidColour())
        return made[-1]

    register_backend(SolidColour.name, factory)
    yield made
    unregister_backend(SolidColour.name)


async def test_a_backend_registered_from_a_test_is_routed_badged_and_listed(solid_backend, settings):
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    try:
        events = [e async for e in manager.stream_image("a red square", width=64, height=64,
                                                         num_inference_steps=3, seed=5)]
        assert isinstance(events[0], Started) and events[0].backend == "solid"
        assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3]
        result = events[-1].result
        assert isinstance(events[-1], Done) and result["backend"] == "solid" and result["model_id"] == "solid-red"
        assert Image.open(result["path"]).getpixel((10, 10)) == RED
        assert manager.active_backend()["label"] == "Solid colour · Solid red"
        status = manager.status()
        assert any(b["name"] == "solid" and b["summary"] == "paints in red" for b in status["backends"])
        assert ("Solid colour", "solid") in manager.backend_choices()
        # a local model still runs locally, and forcing the other backend is refused by the router
        local = await manager.generate_image("a cat", width=64, height=64, num_inference_steps=2, model="tiny")
        assert local["backend"] == "diffusers"
        refused = await manager.generate_image("a cat", model="tiny", backend="solid")
        assert "runs on diffusers, not Solid colour" in refused["error"]
    finally:
        manager.shutdown()


async def test_a_failing_backend_falls_back_with_its_reason(settings):
    register_backend(SolidColour.name, lambda context: SolidColour(fail=True))
    manager = AIModelManager(settings, hardware=CPU)
    try:
        await manager.initialize_models()
        events = [e async for e in manager.stream_image("a red square", width=64, height=64,
                                                         num_inference_steps=3, seed=5)]
        fallback = next(e for e in events if isinstance(e, Fallback))
        assert fallback.reason == "The colour service hung up." and fallback.to_backend == "diffusers"
        result = events[-1].result
        assert result["backend"] == "diffusers" and result["fallback_reason"] == "The colour service hung up."
        assert manager.switches[0]["event"] == "Fell back to diffusers"
    finally:
        unregister_backend(SolidColour.name)
        manager.shutdown()


async def test_round_robin_spreads_requests_over_two_idle_servers(tmp_path, tiny_model_dir):
    with FakeComfyUI(step_delay_s=0.005) as a, FakeComfyUI(step_delay_s=0.005) as b:
        settings = Settings(comfyui_urls=[a.url, b.url], output_dir=tmp_path / "out", tiny_model_dir=tiny_model_dir,
                            health_interval_s=0.2, health_timeout_s=0.5, comfyui_timeout_s=5.0)
        manager = AIModelManager(settings, hardware=CPU)
        await manager.initialize_models()
        try:
            servers = []
            for n in range(4):
                result = await manager.generate_image("a harbour", width=64, height=64, num_inference_steps=2,
                                                      seed=n, model="comfyui:tiny-sd15.safetensors")
                assert result["backend"] == "comfyui", result.get("error")
                servers.append(result["server"])
            assert servers[0] != servers[1] and servers[::2] == [servers[0]] * 2 and servers[1::2] == [servers[1]] * 2
            assert {len(a.prompt_ids), len(b.prompt_ids)} == {2}
        finally:
            manager.shutdown()


async def test_a_batch_is_the_engines(manager):
    result = await manager.generate_image("a fox", width=64, height=64, num_inference_steps=2, seed=P.MAX_SEED,
                                          batch_count=3)
    seeds = [r["seed"] for r in result["batch"]]
    assert seeds == [P.MAX_SEED, 0, 1] and result["seed"] == P.MAX_SEED  # + 1 each, wrapping
    assert len({r["path"] for r in result["batch"]}) == 3
    bad = await manager.generate_image("a fox", batch_count=9)
    assert bad["error"] == "Batch count must be a whole number from 1 to 8 (got 9)."


async def test_aliases_steps_and_guidance_are_the_same_parameters(manager):
    result = await manager.generate_image("a fox", width=64, height=64, steps=2, guidance=3.5, seed=1)
    assert result["num_inference_steps"] == 2 and result["guidance_scale"] == 3.5


BACKEND_NAMES = {"comfyui", "diffusers", "tiny", "cloud"}
# A backend's own modules (the ComfyUI client, its health monitor and workflows) and the catalogue may name it.
ALLOWED = {"engine/backends", "engine/comfyui.py", "engine/health.py", "engine/workflows.py", "engine/registry.py"}


def test_no_backend_is_named_outside_its_own_modules():
    found = []
    for path in sorted([*ROOT.joinpath("engine").rglob("*.py"), *ROOT.joinpath("ui").rglob("*.py"), ROOT / "app.py"]):
        rel = path.relative_to(ROOT).as_posix()
        if any(rel == allowed or rel.startswith(allowed + "/") for allowed in ALLOWED):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.strip().lower() in BACKEND_NAMES:
                found.append(f"{rel}:{node.lineno} {node.value!r}")
    assert found == []


def test_the_ui_uses_the_engines_public_contract():
    """ui/ and app.py read no private attribute of another object, and every `manager` they take is typed."""
    private, untyped = [], []
    for path in sorted([*ROOT.joinpath("ui").rglob("*.py"), ROOT / "app.py"]):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                private.append(f"{rel}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.arg) and node.arg == "manager" \
                    and ast.unparse(node.annotation or ast.Constant(None)) != "AIModelManager":
                untyped.append(f"{rel}:{node.lineno}")
    assert private == [] and untyped == []


class PlainPriority(SolidColour):
    """The same backend with the default priority, equal to the local backend's."""

    priority = 0


async def test_the_badge_and_the_router_agree_whatever_the_priority(settings):
    register_backend(SolidColour.name, lambda context: PlainPriority())
    manager = AIModelManager(settings, hardware=CPU)
    try:
        await manager.initialize_models()
        result = await manager.generate_image("a red square", width=64, height=64, num_inference_steps=2)
        assert result.backend == "solid" and manager.active_backend()["backend"] == "solid"
        assert manager.model_defaults("auto")[P.WIDTH.name] == SolidColour.MODEL.native_size
    finally:
        unregister_backend(SolidColour.name)
        manager.shutdown()


async def test_seed_travel_needs_a_backend_that_interpolates(solid_backend, settings):
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    try:
        result = await manager.generate_video(["a red dawn", "a red dusk"], quality="draft", width=64, height=64,
                                              steps=2, fps=4, duration=1, transition="seed_travel")
        assert result["status"] == "success" and result["backends"] == ["solid", "solid"]
        assert result["transitions"][0]["used"] == "crossfade"
        assert any("needs a backend that can interpolate, and solid cannot" in w for w in result["warnings"])
    finally:
        manager.shutdown()


async def test_results_read_by_their_earlier_names_and_a_batch_serialises(manager):
    from ui.serialize import jsonable

    result = await manager.generate_image("a fox", width=64, height=64, num_inference_steps=2, seed=3, batch_count=2)
    assert result["workflow"] == result.backend == "diffusers" and result["steps"] == result.num_inference_steps
    assert "guidance" in result and result.get("guidance") == result.guidance_scale
    data = jsonable(result.to_dict())
    assert [item["seed"] for item in data["batch"]] == [3, 4] and "batch" not in data["batch"][0]
