"""engine.comfyui against the fake ComfyUI over real sockets."""
from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from engine.comfyui import (
    ComfyUIClient, ComfyUIExecutionError, ComfyUIValidationError, InstalledModels, decode_preview_frame,
    describe_validation_error, installed_models_from_object_info,
)
from engine.comfyui_answers import (
    WS_DATA, FeatureFlags, HistoryEntry, ObjectInfo, PreviewMetadata, ProgressData, PromptAccepted, PromptQueueInfo,
    PromptRefused, QueueAnswer, SystemStats, UnexpectedAnswer, WsMessage, check,
)
from engine.errors import BackendUnavailable, GenerationCancelled
from engine.events import Progress, Produced
from engine.workflows import bind, load_template
from tests.support.fake_comfyui import PROMPT_ID, FakeComfyUI

ROOT = Path(__file__).resolve().parents[2]

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


def with_bad_preview(graph: dict) -> dict:
    """`graph` with a PreviewImage (node 51) of its picture scaled by a method ComfyUI does not have (node 50)."""
    graph["50"] = {"class_type": "ImageScale", "inputs": {"image": ["8", 0], "upscale_method": "sharpest",
                                                          "width": 32, "height": 32, "crop": "disabled"}}
    graph["51"] = {"class_type": "PreviewImage", "inputs": {"images": ["50", 0]}}
    return graph


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


@pytest.mark.asyncio
async def test_the_fake_runs_the_outputs_that_validate_and_reports_the_others(fake):
    """As ComfyUI's validate_prompt and post_prompt: an output fed by a node with errors is dropped, the others are
    queued, and the answer is a 200 whose node_errors name the node and the output that depends on it."""
    import aiohttp
    graph = with_bad_preview(sd_graph(steps=2))
    async with aiohttp.ClientSession() as s:
        async with s.post(fake.url + "/prompt", json={"prompt": graph, "client_id": "x"}) as r:
            body = await r.json()
        assert r.status == 200 and set(body["node_errors"]) == {"50"}
        assert body["node_errors"]["50"]["dependent_outputs"] == ["51"]
        assert await asyncio.to_thread(fake.wait_idle, 5.0)
        async with s.get(f"{fake.url}/history/{body['prompt_id']}") as r:
            assert list((await r.json())[body["prompt_id"]]["outputs"]) == ["9"]


@pytest.mark.asyncio
async def test_a_prompt_queued_without_some_outputs_is_deleted_and_refused(fake):
    """A 200 with node_errors queued a graph other than the one sent: the client deletes or interrupts it and raises
    the validation error a 400 gives, never an image of the outputs that happened to validate."""
    with pytest.raises(ComfyUIValidationError,
                       match=r"ComfyUI cannot run this workflow: 'sharpest' is not an accepted value \(ImageScale "
                             r"\"upscale_method\" on node 50\)") as err:
        await collect(ComfyUIClient(fake.url), with_bad_preview(sd_graph(steps=20)))
    assert set(err.value.node_errors) == {"50"}
    queued = fake.prompt_ids[-1]
    assert queued in fake.deletes or {"prompt_id": queued} in fake.interrupts
    assert fake.view_requests == []


@pytest.mark.asyncio
async def test_only_the_expected_output_is_downloaded_and_the_others_are_a_warning(fake):
    """Two SaveImage nodes with a batch of 2 each: one Produced, of the first SaveImage by node id unless the caller
    expects another node, downloaded alone; the result's warning counts what was left out."""
    graph = sd_graph(steps=1)
    graph["5"]["inputs"]["batch_size"] = 2
    graph["19"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "other"}}
    produced = [e for e in await collect(ComfyUIClient(fake.url), graph) if isinstance(e, Produced)]
    assert len(produced) == 1 and produced[0].info["node"] == "9"
    assert fake.view_requests == ["test_00001_.png"]
    assert produced[0].info["warnings"] == [
        "The ComfyUI graph made 4 images (node 9 SaveImage: 2, node 19 SaveImage: 2); the first of node 9 SaveImage "
        "is this result, the others were left out."]
    produced = [e async for e in ComfyUIClient(fake.url).run(graph, expected=["19"]) if isinstance(e, Produced)]
    assert len(produced) == 1 and produced[0].info["node"] == "19"
    assert fake.view_requests[1:] == ["other_00003_.png"]


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


# ---------------------------------------------------------------------------- answer shapes
RECORDINGS = next((p for p in (Path(os.environ.get("GATOR_COMFYUI_RECORDINGS", "/nonexistent")),
                               ROOT / "shared" / "comfyui", ROOT.parent / "shared" / "comfyui") if p.is_dir()), None)
needs_recordings = pytest.mark.skipif(RECORDINGS is None, reason="the recorded ComfyUI transcripts (shared/comfyui/) "
                                                                 "are not on this machine")
# Recordings that hold no answer the client or the monitor reads, and why.
NOT_READ = {"flux1_dev_api.json": "graphs we send, not answers", "free.json": "POST /free answers are empty",
            "models_checkpoints.json": "GET /models/checkpoints is not read (models come from /object_info)",
            "object_info_node_names.json": "a list of node names made by the recorder",
            "view_output_png.json": "GET /view answers an image, not JSON"}


def _ws_answers(messages: list[dict]) -> list[tuple[object, object]]:
    out: list[tuple[object, object]] = []
    for m in messages:
        if m["ws"] == "text":
            out.append((WsMessage, {"type": m["type"], "data": m["data"]}))
            if m["type"] in WS_DATA:
                out.append((WS_DATA[m["type"]], m["data"]))
        elif "metadata" in m:
            out.append((PreviewMetadata, m["metadata"]))
    return out


def recorded_answers(name: str, doc) -> list[tuple[object, object]]:
    """(shape, answer) for every answer in one recording that our code reads."""
    if name in ("history_prompt.json", "interrupt.json"):
        keys = ("history_p1", "history_p2_deleted", "history_p3")
        bodies = [doc["body"]] if name == "history_prompt.json" else [doc[k] for k in keys]
        answers = [(dict[str, HistoryEntry], body) for body in bodies]
        if name == "interrupt.json":
            answers += [(QueueAnswer, doc["queue_after"]["body"])] + _ws_answers(doc["ws_messages"])
        return answers
    if name.startswith("ws_sequence_"):
        return _ws_answers(doc["messages"])
    table = {
        "system_stats.json": lambda: [(SystemStats, doc["body"])],
        "get_prompt_queue_info.json": lambda: [(PromptQueueInfo, doc["body"])],
        "queue_idle.json": lambda: [(QueueAnswer, doc["body"])],
        "queue_busy.json": lambda: [(QueueAnswer, doc["body"])] + [(PromptAccepted, r) for r in doc["post_responses"]],
        "post_prompt_valid.json": lambda: [(PromptAccepted, doc["body"])],
        "object_info_selected.json": lambda: [(ObjectInfo, doc["entries"])],
        "flux_validation_no_models.json": lambda: [(PromptRefused, case["body"]) for case in doc.values()],
        "features.json": lambda: [(FeatureFlags, doc["body"])],
    }
    return table[name]()


@needs_recordings
def test_every_recording_is_classified():
    names = {p.name for p in RECORDINGS.glob("*.json")}
    read = {n for n in names if n not in NOT_READ}
    assert names >= set(NOT_READ)
    for name in sorted(read):
        assert recorded_answers(name, json.loads((RECORDINGS / name).read_text())), name


@needs_recordings
@pytest.mark.parametrize("name", sorted(p.name for p in (RECORDINGS or Path("/nonexistent")).glob("*.json")
                                        if p.name not in NOT_READ))
def test_recorded_real_answers_pass_their_shapes(name):
    answers = recorded_answers(name, json.loads((RECORDINGS / name).read_text()))
    for shape, answer in answers:
        checked = check(shape, answer, server="http://recorded", what=f"answer in {name}")
        assert checked is not None
    if name == "history_prompt.json":
        entry = next(iter(check(dict[str, HistoryEntry], answers[0][1], server="x", what="y").values()))
        assert entry.outputs["9"].images[0].filename == "probe_main_00003_.png" and entry.status.status_str == "success"
    if name == "queue_busy.json":
        assert len(check(QueueAnswer, answers[0][1], server="x", what="y").queue_pending) == 2
    if name == "object_info_selected.json":
        assert installed_models_from_object_info(answers[0][1]).checkpoints == ["tiny-sd15.safetensors"]


SERVER = "http://127.0.0.1:8188"


@pytest.mark.parametrize("shape, answer, sentence", [
    (HistoryEntry, {"outputs": "nope", "status": 7},
     'answer to GET /history/p: outputs must be a mapping (got "nope"); status must be a mapping (got 7).'),
    (HistoryEntry, {"outputs": {"9": {"images": [{"subfolder": ""}]}}},
     "answer to GET /history/p: outputs.9.images[0].filename is missing."),
    (HistoryEntry, {"outputs": {}, "status": {"messages": [["execution_error"]]}},
     "answer to GET /history/p: status.messages[0][1] is missing."),
    (PromptAccepted, {"prompt_id": ""}, 'answer to GET /history/p: prompt_id must not be empty (got "").'),
    (QueueAnswer, {"queue_running": [], "queue_pending": [[1, 2]]},
     "answer to GET /history/p: queue_pending[0] must be a list [number, prompt_id, ...] (got a list of 2)."),
    (PromptQueueInfo, {"exec_info": {"queue_remaining": "3"}},
     'answer to GET /history/p: exec_info.queue_remaining must be a whole number (got "3").'),
    (SystemStats, {"system": {}, "devices": {"name": "cpu"}},
     "answer to GET /history/p: devices must be a list (got a mapping)."),
    (PromptRefused, {"error": 5, "node_errors": {"4": {"errors": "x"}}},
     'answer to GET /history/p: error must be a mapping (got 5); node_errors.4.errors must be a list (got "x").'),
    (ObjectInfo, {"CheckpointLoaderSimple": {"input": {"required": ["ckpt_name"]}}},
     "answer to GET /history/p: CheckpointLoaderSimple.input.required must be a mapping (got a list of 1)."),
])
def test_a_wrong_shape_is_one_short_sentence(shape, answer, sentence):
    with pytest.raises(UnexpectedAnswer) as info:
        check(shape, answer, server=SERVER, what="answer to GET /history/p")
    assert str(info.value) == f"ComfyUI at {SERVER} sent an unexpected {sentence}"
    assert isinstance(info.value, BackendUnavailable)


def test_the_sentence_never_dumps_a_large_body():
    huge = {"outputs": {str(n): {"images": "x" * 10_000} for n in range(50)}, "status": "y" * 10_000}
    with pytest.raises(UnexpectedAnswer) as info:
        check(HistoryEntry, huge, server=SERVER, what="answer to GET /history/p")
    text = str(info.value)
    detail = text.split(": ", 1)[1]
    assert len(detail) <= 201 and "xxxxxxxx" not in text
    assert detail.startswith("outputs.0.images must be a list (got a string of 10000 characters)")
    assert detail.endswith("more).")


def test_lenient_where_real_servers_vary():
    entry = check(HistoryEntry, {"outputs": {"9": {"images": [{"filename": "a.png"}], "animated": [False]},
                                             "12": {"text": ["hello"]}}, "status": None, "extra": 1},
                  server=SERVER, what="answer")
    assert entry.outputs["9"].images[0].subfolder == "" and entry.outputs["12"].images == [] and entry.status is None
    assert check(ProgressData, {"value": 3.0, "max": 10}, server=SERVER, what="message").value == 3
    assert check(SystemStats, {"system": {}}, server=SERVER, what="answer").devices == []


@pytest.mark.asyncio
async def test_client_checks_every_http_answer(fake):
    client = ComfyUIClient(fake.url)
    cases = [
        ("/system_stats", {"system": 7}, client.system_stats(), "GET /system_stats: system must be a mapping (got 7)."),
        ("/queue", {"queue_running": [], "queue_pending": None}, client.queue_info(),
         "GET /queue: queue_pending must be a list (got null)."),
        ("/object_info", {"KSampler": 7}, client.object_info("KSampler"),
         "GET /object_info/KSampler: KSampler must be a mapping (got 7)."),
        ("/object_info", [], client.installed_models(), "the answer must be a mapping (got an empty list)."),
        ("/history", {PROMPT_ID: {"outputs": []}}, client.history("abc"),
         "GET /history/abc: outputs must be a mapping (got an empty list)."),
        ("/prompt", {"prompt_id": ["a"]}, client.submit(sd_graph(), "me"),
         "POST /prompt: prompt_id must be a string (got a list of 1)."),
    ]
    for route, body, call, ending in cases:
        fake.answer_next(route, body)
        with pytest.raises(UnexpectedAnswer) as info:
            await call
        assert str(info.value).startswith(f"ComfyUI at {fake.url} sent an unexpected answer to ")
        assert str(info.value).endswith(ending), str(info.value)
    assert len(fake.canned_served) == len(cases)
    assert (await client.history("abc")) is None  # the real answer again: no entry yet


@pytest.mark.asyncio
async def test_a_refusal_of_the_wrong_shape_is_unexpected_not_a_crash(fake):
    fake.answer_next("/prompt", {"error": {"message": 3}, "node_errors": {}}, method="POST", status=400)
    with pytest.raises(UnexpectedAnswer, match=r"answer to POST /prompt \(HTTP 400\): error\.message must be a string"):
        await collect(ComfyUIClient(fake.url), sd_graph())


@pytest.mark.asyncio
async def test_wrong_shaped_history_entry_fails_the_job(fake):
    fake.answer_next("/history", {PROMPT_ID: {"outputs": "nope", "status": 7}})
    with pytest.raises(UnexpectedAnswer,
                       match=r"unexpected answer to GET /history/[0-9a-f-]+: outputs must be a mapping"):
        await collect(ComfyUIClient(fake.url), sd_graph(steps=1))
    assert fake.view_requests == []


@pytest.mark.asyncio
async def test_wrong_shaped_message_for_our_job_stops_it(fake):
    fake.step_delay_s = 0.05
    fake.send_after_step(1, {"type": "progress", "data": {"value": 1, "max": [20], "prompt_id": PROMPT_ID}})
    with pytest.raises(UnexpectedAnswer, match=r'sent an unexpected "progress" message: max must be a number of '
                                               r"steps \(got a list of 1\)\."):
        await collect(ComfyUIClient(fake.url), sd_graph(steps=20))
    assert {"prompt_id": fake.prompt_ids[-1]} in fake.interrupts  # the job was stopped on the server
    assert await asyncio.to_thread(fake.wait_idle, 2.0)


@pytest.mark.asyncio
async def test_a_fractional_progress_counts_whole_steps(fake):
    """A custom node's progress bar may report 2.5 of 10 (`ProgressBar.update_absolute`): the job goes on and the
    step shown is the whole steps done."""
    fake.send_after_step(1, {"type": "progress", "data": {"value": 1.5, "max": 4.0, "prompt_id": PROMPT_ID}})
    events = await collect(ComfyUIClient(fake.url), sd_graph(steps=2))
    assert isinstance(events[-1], Produced)
    assert (1, 4) in [(e.step, e.total) for e in events if isinstance(e, Progress)]


@pytest.mark.asyncio
@pytest.mark.parametrize("message", [
    {"type": "my_custom_node.status", "data": [1, 2, 3]},                                   # a type we do not read
    {"type": "status", "data": "busy"},                                                      # nor this one
    {"type": "progress", "data": {"value": "x", "max": 2, "prompt_id": "someone-else"}},     # not our job
    {"type": "execution_error", "data": {"prompt_id": "someone-else", "node_type": 7}},
])
async def test_messages_we_do_not_read_are_ignored(fake, message):
    fake.send_after_step(1, message)
    events = await collect(ComfyUIClient(fake.url), sd_graph(steps=2))
    assert isinstance(events[-1], Produced)
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2]


@pytest.mark.asyncio
@pytest.mark.parametrize("message, detail", [
    (["a", "list"], "websocket message: the message must be a mapping (got a list of 2)."),
    ({"data": {}}, "websocket message: type is missing."),
    ({"type": "executing", "data": ["3"]}, '"executing" message: data must be a mapping (got a list of 1).'),
    ({"type": "execution_start", "data": {"prompt_id": 7}},
     '"execution_start" message: prompt_id must be a string (got 7).'),
])
async def test_malformed_messages_fail_the_job(fake, message, detail):
    fake.send_after_step(1, message)
    with pytest.raises(UnexpectedAnswer) as info:
        await collect(ComfyUIClient(fake.url), sd_graph(steps=3))
    assert str(info.value) == f"ComfyUI at {fake.url} sent an unexpected {detail}"


@pytest.mark.asyncio
async def test_a_text_frame_that_is_not_json_fails_the_job(fake):
    fake.send_after_step(1, "<html>502 Bad Gateway</html>")
    with pytest.raises(UnexpectedAnswer) as info:
        await collect(ComfyUIClient(fake.url), sd_graph(steps=3))
    assert str(info.value) == f"ComfyUI at {fake.url} sent a websocket message that is not JSON."
