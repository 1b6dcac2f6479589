"""Fallback latency: how soon a request runs on diffusers when ComfyUI is gone, and how soon the badge flips.

Three measurements, each side by side in one run, against the fake ComfyUI (real sockets) and the
tiny diffusers model on CPU:

1. down vs disabled - time from calling stream_image to Started(diffusers) and to the first diffusers
   Progress, for a manager whose monitor already knows ComfyUI is down vs one with ComfyUI disabled
   (GATOR_ENABLE_COMFYUI=0 -> Settings(enable_comfyui=False)); interleaved.
2. dies mid-request - ComfyUI's job socket is dropped (drop_socket_after_step) or the whole server
   stops (fake.stop() from another thread) after step K; time from that moment to Started(diffusers)
   and to the first diffusers Progress.
3. badge flip - time from fake.stop() / fake.restart() (or fake.hang = True) until
   manager.active_backend()["backend"] changes, at the default 2 s interval / 2 s timeout and at a
   short one. Target: <= interval + timeout.
Run: .venv/bin/python bench/fallback_latency.py [--repeat 10] [--flips 4] [--short 0.2,0.5]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import threading
import time

from common import CPU, row, tiny_settings

from engine.events import Done, Failed, Progress, Started
from engine.manager import AIModelManager
from tests.support.fake_comfyui import FakeComfyUI

SMALL = dict(width=64, height=64, num_inference_steps=4, seed=3)


class MarkedFake(FakeComfyUI):
    """The fake, noting when it last sent a step's messages (a dropped socket goes right after them)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.step_sent = 0.0

    async def _step_messages(self, job, sid, nid, step, total):
        await super()._step_messages(job, sid, nid, step, total)
        self.step_sent = time.perf_counter()


async def timeline(manager: AIModelManager, on_event=None, **kwargs) -> dict[str, float]:
    """perf_counter times of the first Started(diffusers), first diffusers Progress and the end; `start` too."""
    marks = {"start": time.perf_counter()}
    async for event in manager.stream_image("a paper boat on a pond", **{**SMALL, **kwargs}):
        now = time.perf_counter()
        if on_event is not None:
            on_event(event, marks)
        if isinstance(event, Started) and event.backend == "diffusers":
            marks.setdefault("started", now)
        elif isinstance(event, Progress) and event.backend != "comfyui":
            marks.setdefault("progress", now)
        elif isinstance(event, Failed):
            raise RuntimeError(event.error)
        elif isinstance(event, Done):
            marks["done"] = now
            marks["backend"] = event.result["backend"]
    return marks


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f}"


def down_vs_disabled(loop, fake: MarkedFake, repeat: int) -> None:
    off = AIModelManager(tiny_settings(), hardware=CPU)
    down = AIModelManager(tiny_settings(comfyui_urls=[fake.url], enable_comfyui=True), hardware=CPU)  # 2 s / 2 s
    for m in (off, down):
        loop.run_until_complete(m.initialize_models())
    assert down.backends["comfyui"].up()
    fake.stop()
    assert down.backends["comfyui"].monitor.wait_for(fake.url, False, 10.0)
    managers = {"ComfyUI disabled (GATOR_ENABLE_COMFYUI=0)": off, "ComfyUI down, monitor knows": down}
    samples: dict[str, dict[str, list[float]]] = {name: {"started": [], "progress": [], "done": []} for name in managers}
    for m in managers.values():
        loop.run_until_complete(timeline(m))  # warm-up: pipeline built
    names = list(managers)
    for i in range(repeat):
        for name in (names if i % 2 == 0 else names[::-1]):
            marks = loop.run_until_complete(timeline(managers[name]))
            assert marks["backend"] == "diffusers"
            for key in ("started", "progress", "done"):
                samples[name][key].append(marks[key] - marks["start"])
    base = samples[names[0]]
    print(row("case", "call -> Started(diffusers) (ms)", "call -> first Progress (ms)", "call -> Done (ms)",
              "first Progress vs disabled"))
    print(row(*["---"] * 5))
    for name in names:
        s = samples[name]
        ratio = statistics.median(s["progress"]) / statistics.median(base["progress"])
        print(row(name, ms(s["started"]), ms(s["progress"]), ms(s["done"]), f"{ratio:.3f}x"))
    for m in managers.values():
        m.shutdown()
    fake.restart()


def mid_request(loop, fake: MarkedFake, repeat: int, at_step: int = 2) -> None:
    manager = AIModelManager(tiny_settings(comfyui_urls=[fake.url], enable_comfyui=True, health_interval_s=0.2,
                                           health_timeout_s=0.5), hardware=CPU)
    loop.run_until_complete(manager.initialize_models())
    loop.run_until_complete(timeline(manager, backend="diffusers"))  # warm-up: pipeline built
    samples: dict[str, dict[str, list[float]]] = {}

    def drop_socket() -> dict[str, float]:
        fake.drop_socket_after_step(at_step)
        marks = loop.run_until_complete(timeline(manager))
        marks["dead"] = fake.step_sent  # the socket is aborted right after this step's messages
        return marks

    def stop_server() -> dict[str, float]:
        def on_event(event, marks):
            if isinstance(event, Progress) and event.backend == "comfyui" and event.step == at_step:
                marks["dead"] = time.perf_counter()
                threading.Thread(target=fake.stop, daemon=True).start()
        marks = loop.run_until_complete(timeline(manager, on_event=on_event))
        fake.restart()
        return marks

    cases = {f"job socket dropped after step {at_step}": drop_socket,
             f"server stopped after step {at_step}": stop_server}
    for i in range(repeat):
        for name, case in (list(cases.items()) if i % 2 == 0 else list(cases.items())[::-1]):
            comfyui = manager.backends["comfyui"]
            if not comfyui.monitor.wait_for(fake.url, True, 10.0) or not comfyui.default_model():
                raise RuntimeError("ComfyUI did not come back between trials")
            marks = case()
            assert marks["backend"] == "diffusers" and "dead" in marks, marks
            s = samples.setdefault(name, {"started": [], "progress": []})
            s["started"].append(marks["started"] - marks["dead"])
            s["progress"].append(marks["progress"] - marks["dead"])
    print(row("case", "death -> Started(diffusers) (ms)", "death -> first diffusers Progress (ms)"))
    print(row(*["---"] * 3))
    for name, s in samples.items():
        print(row(name, ms(s["started"]), ms(s["progress"])))
    manager.shutdown()


def badge_flips(loop, fake: MarkedFake, interval: float, timeout: float, trials: int, hang_trials: int) -> None:
    manager = AIModelManager(tiny_settings(comfyui_urls=[fake.url], enable_comfyui=True, health_interval_s=interval,
                                           health_timeout_s=timeout), hardware=CPU)
    loop.run_until_complete(manager.initialize_models())
    rng = random.Random(1)

    def flip(action, want: str) -> float:
        time.sleep(rng.uniform(0, interval))  # a random phase against the monitor's polls
        started = time.perf_counter()
        action()
        while manager.active_backend()["backend"] != want:
            time.sleep(0.002)
        return time.perf_counter() - started

    def stop_then_restart(n: int, down_action, up_action) -> tuple[list[float], list[float]]:
        downs, ups = [], []
        for _ in range(n):
            assert manager.active_backend()["backend"] == "comfyui"
            downs.append(flip(down_action, "diffusers"))
            ups.append(flip(up_action, "comfyui"))
        return downs, ups

    def unhang() -> None:
        fake.hang = False

    def hang() -> None:
        fake.hang = True

    target = interval + timeout
    rows = [("refused (fake.stop / restart)", *stop_then_restart(trials, fake.stop, fake.restart))]
    if hang_trials:
        rows.append(("hung (fake.hang = True / False)", *stop_then_restart(hang_trials, hang, unhang)))
    for what, downs, ups in rows:
        for direction, values in (("down", downs), ("up", ups)):
            print(row(f"{interval:g} s / {timeout:g} s", what, direction, len(values), ms(values),
                      f"{max(values) * 1000:.0f}", f"{target * 1000:.0f}",
                      f"{statistics.median(values) / target:.2f}x"))
    manager.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, help="requests per case in part 2 (twice as many in part 1)")
    parser.add_argument("--flips", type=int, default=4, help="down/up flips at the default interval")
    parser.add_argument("--short", default="0.2,0.5", help="the short interval,timeout in seconds")
    parser.add_argument("--short-flips", type=int, default=12)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    short_interval, short_timeout = (float(x) for x in args.short.split(","))

    fake = MarkedFake(step_delay_s=0.02).start()
    loop = asyncio.new_event_loop()
    print("### 1. ComfyUI down (monitor knows) vs ComfyUI disabled\n")
    down_vs_disabled(loop, fake, 2 * args.repeat)
    print("\n### 2. ComfyUI dies mid-request\n")
    mid_request(loop, fake, args.repeat)
    print("\n### 3. Badge flip after ComfyUI goes down / comes back\n")
    print(row("interval / timeout", "how it goes down", "flip", "trials", "median (ms)", "max (ms)",
              "target interval+timeout (ms)", "median / target"))
    print(row(*["---"] * 8))
    badge_flips(loop, fake, short_interval, short_timeout, args.short_flips, args.short_flips // 2)
    badge_flips(loop, fake, 2.0, 2.0, args.flips, max(1, args.flips // 2))
    loop.run_until_complete(loop.shutdown_asyncgens())
    fake.close()
    loop.close()


if __name__ == "__main__":
    main()
