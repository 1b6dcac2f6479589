"""engine.comfyui against the fake ComfyUI over real sockets."""
from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time

import pytest
from PIL import Image

from engine.comfyui import (
    ComfyUIClient, ComfyUIExecutionError, ComfyUIValidationError, InstalledModels, decode_preview_frame,
    describe_validation_error, installed_models_from_object_info,
)
from engine.errors import BackendUnavailable, GenerationCancelled
from engine.events import Progress, Produced
from engine.workflows import bind, load_template
from tests.support.fake_comfyui import FakeComfyUI

# The 400 body ComfyUI 0.3.64 sent for the FLUX.1-dev split-files graph on a server without the files.
RECORDED_FLUX_400 = {
    "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
              "details": "", "extra_info": {}},
    "node_errors": {
        "11": {"errors": [
            {"type": "value_not_in_list", "message": "Value not in list",
             "details": "clip_name2: 't5xxl_fp16.safetensors' not in []",
             "extra_info": {"input_name": "clip_name2", "input_config": [[], {}], "received_value": "t5xxl_fp16.safetensors"}},
            {"type": "value_not_in_list", "message": "Value not in list",
             "details": "clip_name1: 'clip_l.safetensors' not in []",
             "extra_info": {"input_name": "clip_name1", "input_config": [[], {}], "received_value": "clip_l.safetensors"}}],
            "dependent_outputs": ["9"], "class_type": "DualCLIPLoader"},
        "10": {"errors": [
            {"type": "value_not_in_list", "message": "Value not in list",
             "details": "unet_name: 'flux1-dev.safetensors' not in []",
             "extra_info": {"input_name": "unet_name", "input_config": [[], {}], "received_value": "flux1-dev.safetensors"}}],
            "dependent_outputs": ["9"], "class_type": "UNETLoader"},
        "12": {"errors": [
            {"type": "value_not_in_list", "message": "Value not in list",
             "details": "vae_name: 'ae.safetensors' not in ['pixel_space']",
             "extra_info": {"input_name": "vae_name", "input_config": [["pixel_space"], {}], "received_value": "ae.safetensors"}}],
            "dependent_outputs": ["9"], "class_type": "VAELoader"},
    },
}


def sd_graph(steps: int = 4, size: int = 64, prompt: str = "a photo of a cat", seed: int = 42) -> dict:
    return bind(load_template("checkpoint_generic"), {
        "prompt": prompt, "negative_prompt": "blurry", "ckpt_name": "tiny-sd15.safetensors",
        "steps": steps, "width": size, "height": size, "seed": seed, "filename_prefix": "test"})


@pytest.fixture
def fake():
    with FakeComfyUI(step_delay_s=0.005) as server:
        yield server


async def collect(client: ComfyUIClient, graph: dict, cancel=None) -> list:
    return [event async for event in client.run(graph, cancel)]


# ---------------------------------------------------------------------------- happy paths
@pytest.mark.asyncio
async def test_run_metadata_previews(fake):
    client = ComfyUIClient(fake.url)
    events = await collect(client, sd_graph(steps=4, size=96))
    progress = [e for e in events if isinstance(e, Progress)]
    produced = [e for e in events if isinstance(e, Produced)]
    assert [(p.step, p.total) for p in progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(p.backend == "comfyui" and isinstance(p.preview, Image.Image) for p in progress)
    # previews belong to their own step (the fake shades them by step)
    shades = [p.preview.getpixel((0, 0))[0] for p in progress]
    assert shades == sorted(shades) and shades[0] < shades[-1]
    assert len(produced) == 1 and events[-1] is produced[0]
    image, info = produced[0].image, produced[0].info
    assert image.size == (96, 96)
    assert info["server"] == fake.url and info["filename"] == "test_00001_.png"
    assert info["prompt_id"] == fake.prompt_ids[-1]
    assert json.loads(image.info["prompt"])["6"]["inputs"]["text"] == "a photo of a cat"
    assert fake.feature_flags_received == 1
    assert fake.view_requests == ["test_00001_.png"]


@pytest.mark.asyncio
async def test_run_legacy_previews(fake):
    fake.supports_feature_flags = False
    events = await collect(ComfyUIClient(fake.url), sd_graph(steps=3))
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(p.step, p.total) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert all(isinstance(p.preview, Image.Image) for p in progress)
    shades = [p.preview.getpixel((0, 0))[0] for p in progress]
    assert shades == sorted(shades) and shades[0] < shades[-1]
    assert isinstance(events[-1], Produced)


def test_same_client_across_event_loops(fake):
    client = ComfyUIClient(fake.url)
    for _ in range(2):
        events = asyncio.run(collect(client, sd_graph(steps=2)))
        assert isinstance(events[-1], Produced)
    assert asyncio.run(client.system_stats())["system"]["comfyui_version"] == "0.3.64"


@pytest.mark.asyncio
async def test_done_signal_before_history(fake):
    """execution_success / executing null can come before /history has the entry."""
    fake.history_delay_s = 0.3
    t0 = time.monotonic()
    events = await collect(ComfyUIClient(fake.url, history_wait_s=3), sd_graph(steps=2))
    assert isinstance(events[-1], Produced)
    assert time.monotonic() - t0 >= 0.3


@pytest.mark.asyncio
async def test_history_never_arrives_is_clear(fake):
    fake.history_delay_s = 5
    with pytest.raises(BackendUnavailable, match="no /history entry"):
        await collect(ComfyUIClient(fake.url, history_wait_s=0.2), sd_graph(steps=1))


@pytest.mark.asyncio
async def test_view_only_with_filenames_from_history(fake):
    graph = sd_graph(steps=1, prompt="../../etc/passwd")
    graph["9"]["inputs"]["filename_prefix"] = "sub/dir/out"
    events = await collect(ComfyUIClient(fake.url), graph)
    produced = events[-1]
    assert produced.info["subfolder"] == "sub/dir" and produced.info["filename"] == "out_00001_.png"
    assert fake.view_requests == ["out_00001_.png"]


@pytest.mark.asyncio
async def test_info_calls(fake):
    fake.install_flux()
    client = ComfyUIClient(fake.url)
    models = await client.installed_models()
    assert models.checkpoints == ["tiny-sd15.safetensors"]
    assert models.unets == ["flux1-dev.safetensors"]
    assert set(models.clips) == {"clip_l.safetensors", "t5xxl_fp16.safetensors"}
    assert models.vaes == ["ae.safetensors"]  # pixel_space is not a file
    assert models.has_files({"unet_name": "flux1-dev.safetensors", "clip_name1": "clip_l.safetensors",
                             "clip_name2": "t5xxl_fp16.safetensors", "vae_name": "ae.safetensors"})
    assert not models.has_files({"ckpt_name": "flux1-dev-fp8.safetensors"})
    assert await client.object_info("NoSuchNode") == {}
    assert (await client.object_info("KSampler"))["name"] == "KSampler"
    q = await client.queue_info()
    assert q.remaining == 0 and q.running == [] and q.pending == []
    stats = await client.system_stats()
    assert stats["devices"][0]["name"] == "cpu"


def test_installed_models_tolerates_missing_classes_and_combo_v3():
    models = installed_models_from_object_info({
        "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": ["COMBO", {"options": ["a.safetensors"]}]}}},
    })
    assert models == InstalledModels(checkpoints=["a.safetensors"])


# ---------------------------------------------------------------------------- frames
def _jpeg(color=(10, 20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="JPEG")
    return buf.getvalue()


def test_decode_both_frame_layouts():
    legacy = struct.pack(">II", 1, 1) + _jpeg()
    assert legacy[:8].hex() == "0000000100000001"  # as recorded
    kind, meta, image = decode_preview_frame(legacy)
    assert kind == 1 and meta is None and image.size == (8, 8)
    head = json.dumps({"node_id": "3", "prompt_id": "p", "display_node_id": "3", "parent_node_id": None,
                       "real_node_id": "3", "image_type": "image/jpeg"}).encode()
    framed = struct.pack(">II", 4, len(head)) + head + _jpeg()
    kind, meta, image = decode_preview_frame(framed)
    assert kind == 4 and meta["prompt_id"] == "p" and image.mode == "RGB"
    assert decode_preview_frame(struct.pack(">II", 1, 1) + b"garbage")[2] is None
    assert decode_preview_frame(b"\x00\x01")[0] == -1


# ---------------------------------------------------------------------------- errors
def test_recorded_validation_body_sentence():
    sentence, missing = describe_validation_error(RECORDED_FLUX_400)
    assert sentence.startswith(
        'ComfyUI cannot run this workflow: flux1-dev.safetensors is not installed (UNETLoader "unet_name" on node 10); ')
    assert 'clip_l.safetensors is not installed (DualCLIPLoader "clip_name1" on node 11)' in sentence
    assert 'ae.safetensors is not installed (VAELoader "vae_name" on node 12).' in sentence
    assert set(missing) == {"flux1-dev.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors", "ae.safetensors"}


@pytest.mark.asyncio
async def test_missing_checkpoint_is_validation_error(fake):
    graph = bind(load_template("flux1_dev_fp8_checkpoint"), {"prompt": "fox", "steps": 2})
    with pytest.raises(ComfyUIValidationError) as info:
        await collect(ComfyUIClient(fake.url), graph)
    err = info.value
    assert isinstance(err, BackendUnavailable)
    assert str(err) == ('ComfyUI cannot run this workflow: flux1-dev-fp8.safetensors is not installed '
                        '(CheckpointLoaderSimple "ckpt_name" on node 30).')
    assert err.missing_files == ["flux1-dev-fp8.safetensors"] and "30" in err.node_errors


@pytest.mark.asyncio
async def test_fail_next_prompt_with_recorded_body(fake):
    fake.fail_next_prompt(node_errors=RECORDED_FLUX_400["node_errors"])
    with pytest.raises(ComfyUIValidationError, match=r'flux1-dev\.safetensors is not installed \(UNETLoader'):
        await collect(ComfyUIClient(fake.url), sd_graph())
    assert fake.prompt_ids == []


@pytest.mark.asyncio
async def test_other_400_bodies(fake):
    client = ComfyUIClient(fake.url)
    graph = sd_graph()
    graph["3"]["class_type"] = "NoSuchSampler"
    with pytest.raises(ComfyUIValidationError, match=r"Cannot execute because node NoSuchSampler does not exist \(Node ID '#3'\)"):
        await collect(client, graph)
    no_output = {k: v for k, v in sd_graph().items() if k != "9"}
    with pytest.raises(ComfyUIValidationError, match="Prompt has no outputs"):
        await collect(client, no_output)
    bad_sampler = sd_graph()
    bad_sampler["3"]["inputs"]["sampler_name"] = "warp_drive"
    with pytest.raises(ComfyUIValidationError, match=r"'warp_drive' is not an accepted value \(KSampler \"sampler_name\" on node 3\)"):
        await collect(client, bad_sampler)


@pytest.mark.asyncio
async def test_connection_refused(fake):
    url = fake.url
    fake.stop()
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"refused the connection"):
        await collect(ComfyUIClient(url), sd_graph())
    with pytest.raises(BackendUnavailable, match=r"refused the connection"):
        await ComfyUIClient(url).system_stats()
    assert time.monotonic() - t0 < 2


@pytest.mark.asyncio
async def test_hanging_server_times_out_quickly(fake):
    fake.hang = True
    client = ComfyUIClient(fake.url, request_timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"did not answer"):
        await collect(client, sd_graph())
    with pytest.raises(BackendUnavailable, match=r"did not answer GET /system_stats within 0.3 s"):
        await client.system_stats()
    assert time.monotonic() - t0 < 2.5
    fake.hang = False


@pytest.mark.asyncio
async def test_server_hangs_mid_run(fake):
    fake.step_delay_s = 0.05
    client = ComfyUIClient(fake.url, request_timeout_s=0.3, stall_s=0.3)
    seen = []
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"stopped answering during generation \(step 1/20\)"):
        async for event in client.run(sd_graph(steps=20)):
            seen.append(event)
            fake.hang = True
    assert len(seen) == 1 and time.monotonic() - t0 < 3
    fake.hang = False


@pytest.mark.asyncio
async def test_overall_job_timeout(fake):
    fake.step_delay_s = 0.1
    client = ComfyUIClient(fake.url, timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"did not finish the job within 0.5 s \(step \d+/50\)"):
        await collect(client, sd_graph(steps=50))
    assert time.monotonic() - t0 < 2
    assert fake.wait_idle(2)  # the abandoned job was interrupted on the server


@pytest.mark.asyncio
async def test_socket_dropped_mid_run(fake):
    fake.drop_socket_after_step(2)
    with pytest.raises(BackendUnavailable, match=r"stopped answering during generation \(step 2/4\)"):
        await collect(ComfyUIClient(fake.url), sd_graph(steps=4))


@pytest.mark.asyncio
async def test_server_stopped_mid_run(fake):
    fake.step_delay_s = 0.05
    with pytest.raises(BackendUnavailable, match=r"stopped answering during generation \(step 1/20\)"):
        async for _ in ComfyUIClient(fake.url).run(sd_graph(steps=20)):
            await asyncio.to_thread(fake.stop)


@pytest.mark.asyncio
async def test_garbage_view(fake):
    fake.garbage_view = True
    with pytest.raises(BackendUnavailable, match=r"sent something that is not an image for test_00001_\.png"):
        await collect(ComfyUIClient(fake.url), sd_graph(steps=1))


@pytest.mark.asyncio
async def test_execution_error(fake):
    fake.fail_next_execution("Allocation on device failed")
    with pytest.raises(ComfyUIExecutionError,
                       match=r"failed while running KSampler \(node 3\): Allocation on device failed\."):
        await collect(ComfyUIClient(fake.url), sd_graph())


@pytest.mark.asyncio
async def test_interrupted_by_someone_else(fake):
    fake.step_delay_s = 0.05
    with pytest.raises(BackendUnavailable, match=r"interrupted the job"):
        async for _ in ComfyUIClient(fake.url).run(sd_graph(steps=20)):
            await ComfyUIClient(fake.url).interrupt()


# ---------------------------------------------------------------------------- cancel
@pytest.mark.asyncio
async def test_cancel_running_job_interrupts_it(fake):
    fake.step_delay_s = 0.05
    cancel = asyncio.Event()
    seen = []
    t0 = time.monotonic()
    with pytest.raises(GenerationCancelled):
        async for event in ComfyUIClient(fake.url).run(sd_graph(steps=40), cancel):
            seen.append(event)
            cancel.set()
    assert time.monotonic() - t0 < 1.5
    pid = fake.prompt_ids[-1]
    assert {"prompt_id": pid} in fake.interrupts
    assert fake.deletes == []
    assert fake.wait_idle(1)


@pytest.mark.asyncio
async def test_cancel_pending_job_deletes_it(fake):
    fake.step_delay_s = 0.05
    blocker = ComfyUIClient(fake.url)
    blocker_id = await blocker.submit(sd_graph(steps=40), "someone-else")
    cancel = threading.Event()  # anything with is_set() works
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(GenerationCancelled):
        await collect(ComfyUIClient(fake.url), sd_graph(steps=4), cancel)
    ours = fake.prompt_ids[-1]
    assert ours != blocker_id
    assert fake.deletes == [ours]
    assert fake.interrupts == []  # the other user's job was left alone
    q = await blocker.queue_info()
    assert q.running == [blocker_id] and q.pending == []
    await blocker.interrupt(blocker_id)


@pytest.mark.asyncio
async def test_cancel_before_submit(fake):
    cancel = asyncio.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        await collect(ComfyUIClient(fake.url), sd_graph(), cancel)
    assert fake.prompts == []


@pytest.mark.asyncio
async def test_consumer_walking_away_stops_the_job(fake):
    fake.step_delay_s = 0.05
    steps = ComfyUIClient(fake.url).run(sd_graph(steps=40))
    assert isinstance(await steps.__anext__(), Progress)
    await steps.aclose()
    assert fake.interrupts == [{"prompt_id": fake.prompt_ids[-1]}]
    assert await asyncio.to_thread(fake.wait_idle, 1.0)


@pytest.mark.asyncio
async def test_fake_runs_one_prompt_at_a_time(fake):
    """Concurrent prompts queue up (queue_remaining counts them) and each still gets its own result."""
    fake.step_delay_s = 0.02
    client = ComfyUIClient(fake.url)
    first = asyncio.ensure_future(collect(client, sd_graph(steps=10, seed=1)))
    second = asyncio.ensure_future(collect(client, sd_graph(steps=10, seed=2)))
    while len(fake.prompt_ids) < 2:
        await asyncio.sleep(0.005)
    q = await client.queue_info()
    assert len(q.running) == 1 and len(q.pending) == 1 and q.remaining == 2
    a, b = await asyncio.gather(first, second)
    assert a[-1].info["prompt_id"] != b[-1].info["prompt_id"]
    assert [e.step for e in a if isinstance(e, Progress)] == list(range(1, 11))
    assert [e.step for e in b if isinstance(e, Progress)] == list(range(1, 11))


@pytest.mark.asyncio
async def test_fake_answers_in_recorded_shapes(fake):
    import aiohttp
    async with aiohttp.ClientSession() as s:
        async with s.get(fake.url + "/prompt") as r:
            assert await r.json() == {"exec_info": {"queue_remaining": 0}}
        async with s.get(fake.url + "/queue") as r:
            assert await r.json() == {"queue_running": [], "queue_pending": []}
        async with s.get(fake.url + "/models/checkpoints") as r:
            assert await r.json() == ["tiny-sd15.safetensors"]
        async with s.get(fake.url + "/system_stats") as r:
            stats = await r.json()
            assert set(stats) == {"system", "devices"} and stats["system"]["comfyui_version"] == "0.3.64"
        async with s.post(fake.url + "/prompt", json={"prompt": sd_graph(steps=50), "client_id": "x"}) as r:
            body = await r.json()
            assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
        async with s.get(fake.url + "/queue") as r:
            running = (await r.json())["queue_running"]
            number, pid, prompt, extra, outputs = running[0]
            assert pid == body["prompt_id"] and extra == {"client_id": "x"} and outputs == ["9"]
        async with s.post(fake.url + "/interrupt", json={"prompt_id": pid}) as r:
            assert r.status == 200 and await r.read() == b""
        async with s.get(fake.url + "/view", params={"filename": "nope.png", "subfolder": "", "type": "output"}) as r:
            assert r.status == 404
