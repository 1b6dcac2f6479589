"""UI overhead: one image through the running app with gradio_client vs the raw diffusers pipeline call.

Same tiny model, arguments and seed (guidance 5.0, seed 1) for every variant, measured side by side in
one run, interleaved, medians:

- raw: the very pipeline object the manager runs, called in the bench's thread;
- manager: `AIModelManager.generate_image` (step previews, saving the PNG with its parameters);
- app /generate_image: `Client.predict(..., api_name="/generate_image")` on the app as `app.py` builds it
  (`build_demo`, queue, launched on 127.0.0.1), PNG downloaded by the client;
- app streaming: the Image tab's own Generate (what the browser runs: the form joins the session's queue,
  then the session's runner streams a preview image and a progress line per step, then the final image
  and history), followed through `Client.submit` until done, every streamed update (and its preview
  file) received by the client;
- app streaming, files not fetched: the same, with `Client(download_files=False)`: every update still
  arrives, but the client does not download each preview PNG (a browser fetches them in a process of
  its own; here the client shares the bench's process, its GIL and the 2 cores with the app).

Each round runs the variants in a rotated order, so none always follows the same one.

Run: .venv/bin/python bench/ui_overhead.py [--repeat 5] [--sizes 64,256] [--steps 4,20]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from typing import Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx  # noqa: E402
import torch  # noqa: E402

from common import CPU, row, tiny_settings  # noqa: E402

from engine.manager import AIModelManager  # noqa: E402
from engine.registry import find_model  # noqa: E402

PROMPT = "a red fox"
SEED = 1
GUIDANCE = 5.0


def rotated(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median times of the variants after one warm-up each; round r starts at variant r (mod n)."""
    for fn in fns.values():
        fn()
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def ui_event(client, name: str) -> int:
    """One of the Image tab's events on the client, found by its function name, as the browser calls it.

    The tab keeps its events out of the API page (api_visibility="private"), so gradio_client marks them
    invalid; the server still serves them (the browser's own queue/join is the same call), so the bench
    switches the client-side flag back on for the events it calls.
    """
    for index, dependency in enumerate(client.config["dependencies"]):
        if dependency.get("api_name") == name and dependency.get("api_visibility") == "private":
            fn_index = dependency.get("id", index)
            client.endpoints[fn_index].is_valid = True
            return fn_index
    raise SystemExit(f"The Image tab's {name} event was not found in the app's config.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="64,256")
    parser.add_argument("--steps", default="4,20")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    step_counts = [int(s) for s in args.steps.split(",")]
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from gradio_client import Client

    from ui.app import build_demo, launch_options

    settings = tiny_settings()
    manager = AIModelManager(settings, hardware=CPU)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(manager.initialize_models())
    local = manager.router.last_resort
    pipe = local.pipeline(find_model("tiny"), local.weights["tiny"])  # the very pipeline it runs

    demo = build_demo(manager)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, ssr_mode=False,
                            quiet=True, **launch_options(manager, demo))
    client = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="gator-bench-client-"))
    light_client = Client(url, verbose=False, download_files=False)
    http = httpx.Client(timeout=30)  # the browser's keep-alive connection
    add_fn, run_fn = ui_event(client, "add_job"), ui_event(client, "run_queue")
    ui_event(light_client, "add_job"), ui_event(light_client, "run_queue")
    streamed: list[int] = []

    print(f"<!-- tiny model on CPU, torch threads {torch.get_num_threads()}; prompt {PROMPT!r}, seed {SEED}, "
          f"guidance {GUIDANCE}; {args.repeat} runs per variant after one warm-up, interleaved in rotated order -->")
    print(row("size", "steps", "raw (s)", "manager (s)", "app /generate_image (s)", "app streaming (s)",
              "app streaming, files not fetched (s)", "manager / raw", "app / raw", "streaming / raw",
              "streaming, not fetched / raw", "updates streamed"))
    print(row(*["---"] * 12))
    try:
        for size in sizes:
            for steps in step_counts:
                kwargs = dict(width=size, height=size, num_inference_steps=steps, guidance_scale=GUIDANCE)

                def raw():
                    pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(SEED), **kwargs).images[0]

                def managed():
                    result = loop.run_until_complete(manager.generate_image(PROMPT, seed=SEED, **kwargs))
                    assert result["status"] == "success", result["error"]

                def app_predict():
                    path, info = client.predict(PROMPT, "", size, size, steps, GUIDANCE, SEED,
                                                api_name="/generate_image")
                    assert info["status"] == "success" and os.path.exists(path), info

                def app_stream(c=client):
                    # Generate as the browser runs it: one POST puts the form (prompt, negative, style, model,
                    # backend, width, height, steps, guidance, seed, sampler, batch, clip skip, variation seed and
                    # strength, FreeU, CFG rescale, tiling, vae, then image to image, hires
                    # fix, inpaint (masked content included) and ControlNet settings left off) into the session's queue
                    # (a queue=False event; gradio_client's predict would add its own ~50 ms polling), then
                    # the session's runner streams it (its inputs are gr.State: the client fills them in).
                    # job.result() waits on the job's future; iterating the Job instead polls every 1 ms.
                    form = [PROMPT, "", [], "auto", "auto", size, size, steps, GUIDANCE, SEED, "euler", 1, 1,
                            -1, 0, False, 0.0, False, "auto", None, 0.75, "just resize", True,
                            1.0, 0.5, 0, "Lanczos", "same", "", "", "Use same checkpoint", 0, 0,  # the hires fix
                            None, 0.75, 4, "original", "whole picture", 32, 0, 0, 0, 0,  # inpaint
                            None, "none", "canny", 1.0, 0.0, 1.0, 100, 200, "none"]
                    added = http.post(f"{url}gradio_api/run/predict",
                                      json={"data": form, "fn_index": add_fn, "session_hash": c.session_hash,
                                            "event_data": None, "trigger_id": None})
                    added.raise_for_status()
                    job = c.submit(fn_index=run_fn)
                    final = job.result()
                    assert job.status().success and final[0], (job.status(), final)
                    streamed.append(len(job.outputs()))

                streamed.clear()
                times = rotated({"raw": raw, "manager": managed, "predict": app_predict, "stream": app_stream,
                                 "light": lambda: app_stream(light_client)}, args.repeat)
                base = times["raw"]
                print(row(f"{size} px", steps, f"{base:.4f}", f"{times['manager']:.4f}", f"{times['predict']:.4f}",
                          f"{times['stream']:.4f}", f"{times['light']:.4f}", f"{times['manager'] / base:.3f}x",
                          f"{times['predict'] / base:.3f}x", f"{times['stream'] / base:.3f}x",
                          f"{times['light'] / base:.3f}x", max(streamed)), flush=True)
    finally:
        http.close()
        client.close()
        light_client.close()
        demo.close()
        manager.shutdown()
        loop.close()


if __name__ == "__main__":
    main()
