"""engine.backends.comfyui over a pool of fake ComfyUI servers: discovery, dispatch, binding, failover."""
from __future__ import annotations

import asyncio
import json
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from engine.comfyui import ComfyUIClient, ComfyUIValidationError
from engine.backends.comfyui import ComfyUIBackend, comfy_sampler, comfyui_catalogue, guess_family
from engine.config import Settings
from engine.errors import BackendUnavailable, GenerationCancelled
from engine.events import Progress, Produced, Started
from engine.health import HealthMonitor
from engine.prompt_syntax import LoraUse
from engine.request import GenerationRequest
from engine.workflows import bind, load_template
from tests.support.fake_comfyui import FakeComfyUI

TINY = "comfyui:tiny-sd15.safetensors"
WORKFLOWS = Path(__file__).parents[1] / "support" / "workflows"


@pytest.fixture
def pool():
    """Two fake servers, a monitor (polled by hand) and a backend with short timeouts."""
    with FakeComfyUI(step_delay_s=0.005) as a, FakeComfyUI(step_delay_s=0.005) as b:
        settings = Settings(comfyui_urls=[a.url, b.url], comfyui_timeout_s=10)
        monitor = HealthMonitor.from_settings(settings, down_after=1)
        backend = ComfyUIBackend(settings, monitor, request_timeout_s=1.0, stall_s=1.0)
        monitor.poll_now()
        yield {a.url: a, b.url: b}, monitor, backend, (a, b)


@pytest.fixture
def workflow_pool(tmp_path):
    """Two fake servers and a backend whose workflows folder holds the test exports and "needs_other", a copy of
    sd15_default that loads other.safetensors (installed on b only)."""
    shutil.copytree(WORKFLOWS, tmp_path / "workflows")
    graph = json.loads((WORKFLOWS / "sd15_default.json").read_text())
    graph["4"]["inputs"]["ckpt_name"] = "other.safetensors"
    (tmp_path / "workflows" / "needs_other.json").write_text(json.dumps(graph))
    with FakeComfyUI(step_delay_s=0.005) as a, \
            FakeComfyUI(step_delay_s=0.005, checkpoints=["tiny-sd15.safetensors", "other.safetensors"]) as b:
        settings = Settings(comfyui_urls=[a.url, b.url], comfyui_timeout_s=10,
                            workflows_dir_override=tmp_path / "workflows")
        monitor = HealthMonitor.from_settings(settings, down_after=1)
        backend = ComfyUIBackend(settings, monitor, request_timeout_s=1.0, stall_s=1.0)
        monitor.poll_now()
        yield monitor, backend, (a, b)


def request(**kw) -> GenerationRequest:
    base = dict(prompt="a cat", width=64, height=64, num_inference_steps=3, seed=7)
    base.update(kw)
    return GenerationRequest(**base)


def planned(backend: ComfyUIBackend, req: GenerationRequest, model: str):
    """The router's part: a target planned once for `model`."""
    return backend.plan(req, backend.find(model))


def pick(backend: ComfyUIBackend, model: str, exclude=()) -> str | None:
    return backend.pick_server(backend.find(model), exclude=exclude)


async def collect(backend: ComfyUIBackend, req: GenerationRequest, model: str, cancel=None) -> list:
    return [e async for e in backend.stream(req, planned(backend, req, model), cancel)]


# ---------------------------------------------------------------------------- discovery
def test_catalogue_reads_flux_variants():
    flux = next(m for m in comfyui_catalogue() if m.id == "flux.1-dev")
    assert [v["workflow"] for v in flux.comfyui] == ["flux1_dev_split", "flux1_dev_fp8_checkpoint"]


def test_flux_offered_only_when_files_installed(pool):
    fakes, monitor, backend, (a, b) = pool
    models = backend.models()
    assert [m.id for m in models] == [TINY]
    assert models[0].family == "sd15" and models[0].backend == "comfyui"
    assert sorted(backend.servers_for(models[0])) == sorted([a.url, b.url])
    assert backend.why_not(backend.find("flux.1-dev")) is not None
    b.install_flux()
    for url in fakes:
        monitor.refresh_models(url)
    monitor.poll_now()
    models = backend.models()
    assert [m.id for m in models] == ["flux.1-dev", TINY]
    assert models[0].family == "flux" and models[0].label == "FLUX.1-dev"
    assert backend.servers_for(models[0]) == [b.url]


def test_partial_flux_files_are_not_enough(pool):
    fakes, monitor, backend, (a, b) = pool
    a.unets.append("flux1-dev.safetensors")
    a.vaes.append("ae.safetensors")  # no text encoders
    monitor.refresh_models(a.url)
    monitor.poll_now()
    assert not backend.servers_for(backend.find("flux.1-dev"))


def test_fp8_checkpoint_variant(pool):
    fakes, monitor, backend, (a, b) = pool
    a.checkpoints.extend(["flux1-dev-fp8.safetensors", "sd_xl_base_1.0.safetensors"])
    monitor.refresh_models(a.url)
    monitor.poll_now()
    ids = [m.id for m in backend.models()]
    assert ids[0] == "flux.1-dev"
    assert "comfyui:flux1-dev-fp8.safetensors" not in ids  # offered as FLUX.1-dev already
    assert "comfyui:sd_xl_base_1.0.safetensors" in ids
    plan = backend.variant_for(backend.find("flux.1-dev"), monitor.state(a.url).models)
    assert plan.workflow == "flux1_dev_fp8_checkpoint" and plan.files == {"ckpt_name": "flux1-dev-fp8.safetensors"}


def test_nothing_offered_when_servers_down(pool):
    fakes, monitor, backend, (a, b) = pool
    a.stop(), b.stop()
    monitor.poll_now()
    assert backend.models() == []
    assert pick(backend, TINY) is None


def test_family_and_sampler_mapping():
    assert guess_family("flux1-schnell.safetensors") == "flux"
    assert guess_family("sd_xl_base_1.0.safetensors") == "sdxl"
    assert guess_family("ponyDiffusionV6XL.safetensors") == "sdxl"
    assert guess_family("v1-5-pruned-emaonly.safetensors") == "sd15"
    assert guess_family("dreamshaper_v2-1.safetensors") == "sd15"  # a fine-tune's own version, not SD 2.1
    assert [guess_family(name) for name in ("v2-1_768-ema-pruned.safetensors", "768-v-ema.safetensors",
                                            "sd21-unclip-h.safetensors")] == ["sd2"] * 3
    assert [guess_family(name) for name in ("sd3.5_large.safetensors", "sd3_medium_incl_clips.safetensors",
                                            "stable-diffusion-3-medium.safetensors")] == ["sd3"] * 3
    assert comfy_sampler("euler") == ("euler", None)
    assert comfy_sampler(None) == ("euler", None)
    assert comfy_sampler("Euler a") == ("euler_ancestral", None)
    assert comfy_sampler("DPM++ 2M Karras") == ("dpmpp_2m", "karras")
    assert comfy_sampler("dpmpp_2m_sde") == ("dpmpp_2m_sde", None)
    assert comfy_sampler("UniPC") == ("uni_pc", None)
    assert comfy_sampler("ddim") == ("ddim", "ddim_uniform")
    assert comfy_sampler("warp drive") == ("euler", None)


# ---------------------------------------------------------------------------- dispatch
def test_pick_shortest_queue_and_round_robin(pool):
    fakes, monitor, backend, (a, b) = pool
    first = [pick(backend, TINY) for _ in range(4)]
    assert sorted(first) == sorted([a.url, b.url] * 2) and first[0] != first[1]  # ties alternate
    a.step_delay_s = 0.05
    busy = ComfyUIClient(a.url)
    ids = [asyncio.run(busy.submit(bind(load_template("checkpoint_generic"), {
        "ckpt_name": "tiny-sd15.safetensors", "steps": 100, "width": 64, "height": 64}), "other")) for _ in range(2)]
    monitor.poll_now()
    assert monitor.state(a.url).queue_remaining == 2
    assert {pick(backend, TINY) for _ in range(3)} == {b.url}
    assert pick(backend, TINY, exclude=[b.url]) == a.url
    for pid in ids:
        asyncio.run(busy.delete([pid]))
        asyncio.run(busy.interrupt(pid))


def test_only_servers_with_the_model(pool):
    fakes, monitor, backend, (a, b) = pool
    a.install_flux()
    a.step_delay_s = 0.05
    monitor.refresh_models(a.url)
    busy = ComfyUIClient(a.url)
    pid = asyncio.run(busy.submit(bind(load_template("checkpoint_generic"), {
        "ckpt_name": "tiny-sd15.safetensors", "steps": 100, "width": 64, "height": 64}), "other"))
    monitor.poll_now()
    assert pick(backend, "flux.1-dev") == a.url  # busier, but the only one with the files
    asyncio.run(busy.interrupt(pid))


def test_in_flight_jobs_spread_concurrent_requests(pool):
    fakes, monitor, backend, (a, b) = pool
    for f in fakes.values():
        f.step_delay_s = 0.02

    async def both():
        return await asyncio.gather(*(collect(backend, request(seed=i, num_inference_steps=5), TINY)
                                      for i in range(2)))

    results = asyncio.run(both())
    servers = {next(e.server for e in events if isinstance(e, Started)) for events in results}
    assert servers == {a.url, b.url}


# ---------------------------------------------------------------------------- one request
TRICKY = 'a "fox" {in} the\nsnow — 狐 🦊 \\ %s ${x}  '


@pytest.mark.asyncio
async def test_stream_checkpoint_binds_request(pool):
    fakes, monitor, backend, (a, b) = pool
    req = request(prompt=TRICKY, negative_prompt="no {dogs}", guidance_scale=5.5, sampler="DPM++ 2M Karras",
                  width=96, height=64, seed=1234, num_inference_steps=4)
    events = await collect(backend, req, TINY)
    started = events[0]
    assert isinstance(started, Started) and started.backend == "comfyui" and started.model == "tiny-sd15 (ComfyUI)"
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3, 4]
    produced = events[-1]
    assert isinstance(produced, Produced) and produced.image.size == (96, 64)
    assert produced.info["server"] == started.server and produced.info["model_id"] == TINY
    assert produced.info["seed"] == 1234 and produced.info["workflow"] == "checkpoint_generic"
    graph = fakes[started.server].prompts[-1]
    assert graph["6"]["inputs"]["text"] == TRICKY  # exactly, trailing spaces included
    assert graph["7"]["inputs"]["text"] == "no {dogs}"
    ks = graph["3"]["inputs"]
    assert (ks["seed"], ks["steps"], ks["cfg"], ks["sampler_name"], ks["scheduler"]) == (1234, 4, 5.5, "dpmpp_2m", "karras")
    assert graph["5"]["inputs"] == {"width": 96, "height": 64, "batch_size": 1}
    assert graph["4"]["inputs"]["ckpt_name"] == "tiny-sd15.safetensors"


@pytest.mark.asyncio
async def test_stream_checkpoint_default_cfg_and_random_seed(pool):
    fakes, monitor, backend, (a, b) = pool
    events = await collect(backend, request(seed=None, guidance_scale=None).validated(), TINY)
    graph = fakes[events[0].server].prompts[-1]
    assert graph["3"]["inputs"]["cfg"] == 7.5 and graph["3"]["inputs"]["sampler_name"] == "euler"
    assert isinstance(graph["3"]["inputs"]["seed"], int) and events[-1].info["seed"] == graph["3"]["inputs"]["seed"]


@pytest.mark.asyncio
async def test_stream_flux_guidance_goes_to_flux_guidance(pool):
    fakes, monitor, backend, (a, b) = pool
    b.install_flux()
    monitor.refresh_models(b.url)
    await asyncio.to_thread(monitor.poll_now)
    events = await collect(backend, request(guidance_scale=2.5), "flux.1-dev")
    assert events[0].server == b.url and isinstance(events[-1], Produced)
    graph = b.prompts[-1]
    assert graph["35"]["class_type"] == "FluxGuidance" and graph["35"]["inputs"]["guidance"] == 2.5
    assert graph["31"]["inputs"]["cfg"] == 1.0 and graph["31"]["inputs"]["scheduler"] == "simple"
    assert graph["10"]["inputs"]["unet_name"] == "flux1-dev.safetensors"
    assert graph["11"]["inputs"]["clip_name1"] == "clip_l.safetensors"
    events = await collect(backend, request(guidance_scale=None), "flux.1-dev")
    assert b.prompts[-1]["35"]["inputs"]["guidance"] == 3.5


# ---------------------------------------------------------------------------- failures
@pytest.mark.asyncio
async def test_failover_when_server_stops_mid_run(pool):
    fakes, monitor, backend, (a, b) = pool
    req = request(num_inference_steps=10)
    await stop_the_first_server_mid_run(fakes, monitor, backend, req, planned(backend, req, TINY))


async def stop_the_first_server_mid_run(fakes: dict, monitor: HealthMonitor, backend: ComfyUIBackend,
                                        req: GenerationRequest, target) -> None:
    """Stream `target`, stopping its server at the first step: the next server finishes it and the monitor was
    told of the failure."""
    for f in fakes.values():
        f.step_delay_s = 0.03
    events = []
    async for event in backend.stream(req, target):
        events.append(event)
        if isinstance(event, Progress) and len([e for e in events if isinstance(e, Started)]) == 1:
            await asyncio.to_thread(fakes[events[0].server].stop)
    starts = [e for e in events if isinstance(e, Started)]
    assert len(starts) == 2 and starts[0].server != starts[1].server
    assert isinstance(events[-1], Produced) and events[-1].info["server"] == starts[1].server
    assert monitor.state(starts[0].server).up is False


@pytest.mark.asyncio
async def test_failover_exhausted_gives_clear_reason(pool):
    fakes, monitor, backend, (a, b) = pool
    a.drop_socket_after_step(1)
    b.drop_socket_after_step(1)
    with pytest.raises(BackendUnavailable) as info:
        await collect(backend, request(), TINY)
    text = str(info.value)
    assert "stopped answering during generation (step 1/3)" in text
    assert text.endswith("No other ComfyUI server with tiny-sd15 (ComfyUI) is available.")
    assert len(a.prompt_ids) == 1 and len(b.prompt_ids) == 1  # at most once per server


@pytest.mark.asyncio
async def test_validation_error_is_not_retried(pool):
    fakes, monitor, backend, (a, b) = pool
    a.fail_next_prompt()
    b.fail_next_prompt()
    with pytest.raises(ComfyUIValidationError, match="ComfyUI cannot run this workflow: missing.safetensors is not installed"):
        await collect(backend, request(), TINY)
    assert len(a.prompts) + len(b.prompts) == 1


@pytest.mark.asyncio
async def test_no_server_up(pool):
    fakes, monitor, backend, (a, b) = pool
    a.stop(), b.stop()
    await asyncio.to_thread(monitor.poll_now)
    with pytest.raises(BackendUnavailable, match=r"No ComfyUI server is reachable: .* is down \(connection refused\)"):
        await collect(backend, request(), TINY)


@pytest.mark.asyncio
async def test_model_not_installed(pool):
    fakes, monitor, backend, (a, b) = pool
    with pytest.raises(BackendUnavailable, match=r"FLUX.1-dev is not installed on any running ComfyUI server "
                                                 r"\(it needs flux1-dev.safetensors"):
        await collect(backend, request(), "flux.1-dev")
    assert backend.find("sdxl-1.0") is None  # not a ComfyUI model: the router says so


@pytest.mark.asyncio
async def test_cancel_is_not_failover(pool):
    fakes, monitor, backend, (a, b) = pool
    for f in fakes.values():
        f.step_delay_s = 0.05
    cancel = threading.Event()
    with pytest.raises(GenerationCancelled):
        req = request(num_inference_steps=30)
        async for event in backend.stream(req, planned(backend, req, TINY), cancel):
            if isinstance(event, Progress):
                cancel.set()
    assert len(a.prompt_ids) + len(b.prompt_ids) == 1
    assert len(a.interrupts) + len(b.interrupts) == 1


@pytest.mark.asyncio
async def test_in_flight_counts_and_abandoned_job_is_stopped(pool):
    fakes, monitor, backend, (a, b) = pool
    for f in fakes.values():
        f.step_delay_s = 0.05
    req = request(num_inference_steps=40)
    gen = backend.stream(req, planned(backend, req, TINY))
    started = await gen.__anext__()
    other = b.url if started.server == a.url else a.url
    assert {pick(backend, TINY) for _ in range(3)} == {other}
    assert isinstance(await gen.__anext__(), Progress)
    await gen.aclose()  # the consumer walked away: the job must not keep the server busy
    busy = fakes[started.server]
    assert busy.interrupts == [{"prompt_id": busy.prompt_ids[-1]}]
    assert await asyncio.to_thread(busy.wait_idle, 1.0)
    assert {pick(backend, TINY) for _ in range(2)} == {a.url, b.url}


# ---------------------------------------------------------------------------- the user's own workflows in a pool
@pytest.mark.asyncio
async def test_a_workflow_moves_to_another_server_when_its_server_dies(workflow_pool):
    monitor, backend, (a, b) = workflow_pool
    req = request(num_inference_steps=10, user_workflow="sd15_default")
    await stop_the_first_server_mid_run({a.url: a, b.url: b}, monitor, backend, req, backend.plan(req, None))


@pytest.mark.asyncio
async def test_auto_model_runs_a_workflow_where_its_own_files_are(workflow_pool):
    monitor, backend, (a, b) = workflow_pool
    req = request(user_workflow="needs_other")
    assert {backend.plan(req, None).server for _ in range(4)} == {b.url}
    a.checkpoints.append("other.safetensors")  # a lists it when the lists are read, and has lost it when it runs
    monitor.refresh_models(a.url)
    monitor.poll_now()
    a.checkpoints.remove("other.safetensors")
    events = [e async for e in backend.stream(req, replace(backend.plan(req, None), server=a.url))]
    assert [e.server for e in events if isinstance(e, Started)] == [a.url, b.url]
    assert isinstance(events[-1], Produced) and events[-1].info["server"] == b.url
    b.stop()
    monitor.poll_now()
    with pytest.raises(BackendUnavailable, match=r"No running ComfyUI server has everything the workflow "
                                                 r"'needs_other' needs: .* lacks other.safetensors "
                                                 r"\(CheckpointLoaderSimple \"ckpt_name\" on node 4\)"):
        backend.plan(req, None)


@pytest.mark.asyncio
async def test_a_lora_gone_at_run_time_sends_the_workflow_to_the_next_server(workflow_pool):
    monitor, backend, (a, b) = workflow_pool
    req = request(user_workflow="sd15_default", loras=(LoraUse("detail_tweaker", 0.8),))
    target = replace(backend.plan(req, None), server=a.url)
    a.loras = []  # removed after the plan; the lists are read again before the job starts
    monitor.refresh_models(a.url)
    monitor.poll_now()
    events = [e async for e in backend.stream(req, target)]
    assert [e.server for e in events if isinstance(e, Started)] == [b.url] and a.prompts == []
    assert any(n["class_type"] == "LoraLoader" for n in b.prompts[-1].values())
    b.loras = []
    monitor.refresh_models(b.url)
    monitor.poll_now()
    with pytest.raises(BackendUnavailable, match=f'ComfyUI at {a.url} no longer has the LoRA "detail_tweaker"'):
        [e async for e in backend.stream(req, target)]
    assert len(b.prompts) == 1  # never run without it
