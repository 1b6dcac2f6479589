"""ComfyUI path: prompt submitted -> image in hand, our WebSocket client vs a minimal POST/poll script.

Against the fake ComfyUI (a real aiohttp server in a background thread) with a fixed service time
(`steps x step_delay_s`), measured side by side in one run, variants interleaved and rotated:

* raw poll Xms  - POST /prompt, GET /history/{id} every X ms until the entry appears, GET /view, decode
* client (ws)   - engine.comfyui.ComfyUIClient.run: ws connect, POST /prompt, follow the socket
                  (progress + preview frames decoded), /history, /view, decode
* manager       - AIModelManager.generate_image(backend="comfyui"): planning, server pick, the client,
                  then saving the PNG with its parameters (save_s is shown on its own)

"service" is measured inside the fake: from the arrival of POST /prompt to the /history entry being
written, so "added" = total - service is what the client side costs on top of the server's work.
Run: .venv/bin/python bench/comfyui_path.py [--repeat 20] [--configs 10x0.01,20x0.01] [--polls 0.01,0.1]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import statistics
import time
import uuid
from contextlib import aclosing

import aiohttp
from PIL import Image

from common import CPU, row, tiny_settings

from engine.comfyui import ComfyUIClient
from engine.events import Produced
from engine.manager import AIModelManager
from engine.request import GenerationRequest
from tests.support.fake_comfyui import FakeComfyUI, _preview_jpeg

SIZE = 512


class TimedFake(FakeComfyUI):
    """The fake, noting when each prompt arrived and when its /history entry was written (perf_counter)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.posted: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    async def _post_prompt(self, request):
        arrived = time.perf_counter()
        response = await super()._post_prompt(request)
        if response.status == 200:
            self.posted[json.loads(response.body)["prompt_id"]] = arrived
        return response

    async def _execute(self, job):
        await super()._execute(job)
        self.finished[job.prompt_id] = time.perf_counter()

    def service(self, prompt_id: str) -> float:
        return self.finished[prompt_id] - self.posted[prompt_id]


async def raw_poll(url: str, graph: dict, poll_s: float) -> tuple[Image.Image, str]:
    """What a minimal script does: POST, poll /history, GET /view."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/prompt", json={"prompt": graph, "client_id": uuid.uuid4().hex}) as resp:
            prompt_id = (await resp.json())["prompt_id"]
        while True:
            async with session.get(f"{url}/history/{prompt_id}") as resp:
                entry = (await resp.json()).get(prompt_id)
            if entry:
                break
            await asyncio.sleep(poll_s)
        image = next(img for out in entry["outputs"].values() for img in out.get("images", []))
        async with session.get(f"{url}/view", params={"filename": image["filename"], "subfolder": image["subfolder"],
                                                       "type": image["type"]}) as resp:
            data = await resp.read()
    img = Image.open(io.BytesIO(data))
    img.load()
    return img, prompt_id


async def via_client(client: ComfyUIClient, graph: dict) -> tuple[Image.Image, str]:
    async with aclosing(client.run(graph)) as events:
        async for event in events:
            if isinstance(event, Produced):
                return event.image, event.info["prompt_id"]
    raise RuntimeError("no image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--configs", default="10x0.01,20x0.01", help="steps x step_delay_s, comma-separated")
    parser.add_argument("--polls", default="0.01,0.1", help="poll intervals of the minimal script, seconds")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    polls = [float(p) for p in args.polls.split(",")]

    fake = TimedFake(step_delay_s=0.01).start()
    manager = AIModelManager(tiny_settings(comfyui_urls=[fake.url], enable_comfyui=True), hardware=CPU)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(manager.initialize_models())
    comfyui = manager.backends["comfyui"]
    model_id = comfyui.default_model().id if comfyui.default_model() else None
    assert model_id, "the fake's checkpoint was not discovered"
    client = ComfyUIClient(fake.url, timeout_s=60)
    encode_ms = statistics.median(_timed(lambda: _preview_jpeg(5, 10, fake.preview_size, SIZE, SIZE))
                                  for _ in range(30)) * 1000

    print(f"<!-- fake: {SIZE}x{SIZE} image, {fake.preview_size} px JPEG preview per step "
          f"(fake's encode {encode_ms:.2f} ms/step); model {model_id}; {args.repeat} runs per variant -->")
    print(row("service (steps x delay)", "variant", "total (ms)", "service (ms)", "added over service (ms)",
              "ratio vs raw poll " + f"{polls[0] * 1000:g}ms"))
    print(row(*["---"] * 6))
    for config in args.configs.split(","):
        steps, delay = config.split("x")
        steps, delay = int(steps), float(delay)
        fake.step_delay_s = delay
        req = GenerationRequest(prompt="a lighthouse in fog", width=SIZE, height=SIZE, num_inference_steps=steps,
                                seed=7, model=model_id).validated()
        variant = comfyui.variant_for(comfyui.find(model_id), comfyui.monitor.state(fake.url).models)
        graph = comfyui.build_graph(req, variant)

        variants = {f"raw poll {p * 1000:g}ms": (lambda p=p: raw_poll(fake.url, graph, p)) for p in polls}
        variants["client (ws)"] = lambda: via_client(client, graph)
        save_s: list[float] = []

        async def managed():
            result = await manager.generate_image("a lighthouse in fog", width=SIZE, height=SIZE,
                                                  num_inference_steps=steps, seed=7, model=model_id,
                                                  backend="comfyui")
            assert result["status"] == "success", result["error"]
            save_s.append(result["timings"]["save_s"])
            return result["image"], result["prompt_id"]
        variants["manager"] = managed

        totals: dict[str, list[float]] = {name: [] for name in variants}
        services: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for name in names:  # warm-up
            loop.run_until_complete(variants[name]())
        save_s.clear()
        for i in range(args.repeat):
            order = names[i % len(names):] + names[:i % len(names)]  # rotate who goes first
            for name in order:
                started = time.perf_counter()
                image, prompt_id = loop.run_until_complete(variants[name]())
                totals[name].append(time.perf_counter() - started)
                assert image.size == (SIZE, SIZE)
                services[name].append(fake.service(prompt_id))
        base = statistics.median(totals[names[0]])
        for name in names:
            total, service = statistics.median(totals[name]), statistics.median(services[name])
            added = statistics.median(t - s for t, s in zip(totals[name], services[name]))
            label = name + (f" (save_s {statistics.median(save_s) * 1000:.1f} ms)" if name == "manager" else "")
            print(row(f"{steps} x {delay * 1000:g} ms", label, f"{total * 1000:.1f}", f"{service * 1000:.1f}",
                      f"{added * 1000:.1f}", f"{total / base:.3f}x"))
    manager.shutdown()
    loop.run_until_complete(loop.shutdown_asyncgens())
    fake.close()
    loop.close()


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
