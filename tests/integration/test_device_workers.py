"""Several local workers through the engine: GATOR_DEVICES=cpu,cpu gives two real workers on this machine (the tiny
model, real pipelines, real threads), so requests arriving together run side by side instead of queueing."""
from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from engine.events import Done, Progress, Queued
from engine.manager import AIModelManager
from tests.conftest import CPU


@pytest.fixture
async def two_workers(settings):
    mgr = AIModelManager(replace(settings, devices="cpu,cpu"), hardware=CPU)
    await mgr.initialize_models()
    yield mgr
    mgr.shutdown()


async def timed_stream(manager: AIModelManager, prompt: str, steps: int = 12) -> list[tuple[float, object]]:
    """Every event of one request with the time it arrived."""
    return [(time.monotonic(), event) async for event in
            manager.stream_image(prompt, width=64, height=64, num_inference_steps=steps, seed=5)]


def steps_window(events) -> tuple[float, float]:
    times = [at for at, event in events if isinstance(event, Progress)]
    return times[0], times[-1]


async def test_two_requests_at_once_run_side_by_side_on_two_workers(two_workers):
    a, b = await asyncio.gather(timed_stream(two_workers, "a red fox"), timed_stream(two_workers, "a blue bird"))
    results = [events[-1][1].result for events in (a, b)]
    assert all(isinstance(events[-1][1], Done) for events in (a, b))
    assert {r.server for r in results} == {"cpu #1", "cpu #2"}  # each result names the worker that made it
    assert not [e for _, e in a + b if isinstance(e, Queued)]  # nobody waited
    (a_first, a_last), (b_first, b_last) = steps_window(a), steps_window(b)
    assert b_first < a_last and a_first < b_last  # their steps interleaved: both ran at the same time
    workers = two_workers.status()["workers"]
    assert [(w["name"], w["loaded_model"], w["jobs_done"], w["state"]) for w in workers] == \
        [("cpu #1", "tiny", 1, "idle"), ("cpu #2", "tiny", 1, "idle")]
    local = next(b for b in two_workers.status()["backends"] if b["name"] == "diffusers")
    assert local["summary"].endswith("x 2 workers (loaded: tiny)")


async def test_a_third_request_waits_for_a_worker_and_one_worker_alone_queues_the_second(two_workers, manager):
    runs = await asyncio.gather(*(timed_stream(two_workers, f"tree {i}", steps=8) for i in range(3)))
    queued = [e for events in runs for _, e in events if isinstance(e, Queued)]
    assert [q.position for q in queued] == [1]  # two ran at once, the third waited for one of them
    assert all(isinstance(events[-1][1], Done) for events in runs)
    assert sorted(w["jobs_done"] for w in two_workers.status()["workers"]) == [1, 2]
    assert two_workers.backends["diffusers"].loads == 2  # one pipeline per worker, each loaded once
    single = await asyncio.gather(*(timed_stream(manager, f"tree {i}", steps=8) for i in range(2)))
    assert [e.position for events in single for _, e in events if isinstance(e, Queued)] == [1]
    assert single[0][-1][1].result.server is None and manager.status()["workers"][0]["jobs_done"] == 2
