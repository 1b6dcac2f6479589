"""Storyboard videos end to end: real mp4/GIF files, title cards, the real manager, fallback, cancel."""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import yaml
from PIL import Image

from engine.config import PROJECT_ROOT, Settings
from engine.events import Done, Failed, Fallback, Progress
from engine.limits import Limits
from engine.outputs import read_parameters
from engine.storyboard import Scene, Storyboard
from engine.video import VideoProgress, generate_video, render_storyboard, stream_video, title_card

SMALL = dict(width=64, height=64, steps=2, quality="draft")


def decode(path: str) -> list[np.ndarray]:
    """Every frame of a video as an RGB array."""
    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    w, h = meta["size"]
    return [np.frombuffer(frame, np.uint8).reshape(h, w, 3).astype(np.float32) for frame in reader]


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


async def events_of(agen) -> list:
    return [event async for event in agen]


def cards(*scenes: Scene, **kwargs) -> Storyboard:
    return Storyboard(scenes=list(scenes), **{"quality": "draft", "width": 128, "height": 96, **kwargs})


# -- title cards: no model at all ---------------------------------------------------------------
async def test_mp4_frame_count_and_duration_match_the_storyboard(tmp_path):
    sb = cards(Scene("a fox in the snow", duration=1.5, transition="crossfade"),
               Scene("a harbour at dawn", duration=1.0, transition="cut"),
               Scene("the end", duration=0.75), fps=8)
    events = await events_of(render_storyboard(sb, None, tmp_path, use_ai_generation=False))
    done = events[-1]
    assert isinstance(done, Done), events[-1]
    result = done.result
    frames, secs = imageio_ffmpeg.count_frames_and_secs(result["video"])
    assert frames == result["frames"] == round(3.25 * 8) == 26
    assert secs == pytest.approx(3.25, abs=1 / 8) and result["duration_s"] == pytest.approx(3.25)
    assert result["planned_duration_s"] == 3.25
    assert [s["frames"] for s in result["scenes"]] == [12, 8, 6]
    assert [s["start_frame"] for s in result["scenes"]] == [0, 12, 20]
    assert result["backends"] == ["title_card"] * 3 and result["fps"] == 8
    assert (result["width"], result["height"]) == (128, 96)
    assert [Path(p).name for p in result["keyframes"]] == ["scene-01.png", "scene-02.png", "scene-03.png"]
    assert all(Path(p).is_file() for p in result["keyframes"])
    # one Progress per keyframe, then encoding progress up to every frame, then Done
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(p.step, p.total) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert all(isinstance(p.preview, Image.Image) and p.backend == "title_card" for p in progress)
    encoding = [e for e in events if isinstance(e, VideoProgress) and e.phase == "encoding"]
    assert encoding and encoding[-1].done == encoding[-1].total == 26
    # the video lives under output_dir/YYYY-MM-DD with its storyboard beside it
    video = Path(result["video"])
    assert video.parent.parent == tmp_path and video.suffix == ".mp4"
    saved = Path(result["storyboard_path"])
    assert saved.parent == video.parent and saved.stem == video.stem
    assert Storyboard.load(saved) == sb.validate().with_seeds(result["seeds"])
    assert json.loads(saved.read_text())["render"]["video"] == result["video"]


async def test_mp4_is_h264_yuv420p_with_the_duration_at_other_rates(tmp_path):
    sb = cards(Scene("one", duration=0.5), Scene("two", duration=0.5), fps=24, width=72, height=64)
    result = (await events_of(render_storyboard(sb, None, tmp_path, use_ai_generation=False)))[-1].result
    assert imageio_ffmpeg.count_frames_and_secs(result["video"])[0] == 24
    meta = next(imageio_ffmpeg.read_frames(result["video"]))
    assert meta["codec"] == "h264" and "yuv420p" in meta["pix_fmt"]
    assert tuple(meta["size"]) == (64, 64)  # 72 px cut to a multiple of 16, not stretched


async def test_crossfade_frames_are_blends_of_their_neighbours(tmp_path):
    # scene 1 holds 8 frames at 8 fps; its last 4 fade into scene 2 at alpha 1/5 .. 4/5
    sb = cards(Scene("deep ocean", duration=1.0, transition="crossfade", transition_duration=0.5),
               Scene("sunrise", duration=1.0), fps=8, width=128, height=128)
    result = (await events_of(render_storyboard(sb, None, tmp_path, use_ai_generation=False)))[-1].result
    assert result["transitions"][0] | {"inbetweens": []} == {"from": 1, "to": 2, "requested": "crossfade",
                                                             "used": "crossfade", "frames": 4, "inbetweens": []}
    frames = decode(result["video"])
    assert len(frames) == 16
    a = np.asarray(Image.open(result["keyframes"][0]).convert("RGB"), np.float32)
    b = np.asarray(Image.open(result["keyframes"][1]).convert("RGB"), np.float32)
    assert mean_diff(a, b) > 30  # the two scenes really differ, so a blend is distinguishable
    assert mean_diff(frames[0], a) < 3 and mean_diff(frames[3], a) < 3 and mean_diff(frames[8], b) < 3
    for k, frame in enumerate(frames[4:8], start=1):
        alpha = k / 5
        expected = (1 - alpha) * a + alpha * b
        assert mean_diff(frame, expected) < 2.5, (k, mean_diff(frame, expected))
        assert mean_diff(frame, a) > 6 and mean_diff(frame, b) > 6
    # the blend is also exact between the decoded neighbours (the codec's own error aside)
    assert mean_diff(frames[6], 0.4 * frames[3] + 0.6 * frames[8]) < 3


async def test_gif_has_every_frame(tmp_path):
    sb = cards(Scene("one", duration=0.5, transition="crossfade"), Scene("two", duration=0.5), fps=8)
    events = await events_of(render_storyboard(sb, None, tmp_path, use_ai_generation=False, make_gif=True))
    result = events[-1].result
    assert result["frames"] == 8
    with Image.open(result["gif"]) as gif:  # identical neighbours are merged; the running time is kept
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
        assert sum(durations) == pytest.approx(1000, abs=40) and gif.info["loop"] == 0
        assert gif.n_frames >= 1 + 1 + 2  # scene 1, scene 2 and the crossfade's own frames
    assert [e.phase for e in events if isinstance(e, VideoProgress)][-1] == "gif"


async def test_gif_delays_play_at_the_videos_speed_in_browsers(tmp_path):
    # at 60 fps a frame lasts 1.67 cs; GIF delays are whole centiseconds and browsers play one under 2 cs as 10
    for fps in (60, 24):
        sb = cards(Scene("one", duration=1, transition="crossfade"), Scene("two", duration=1), fps=fps)
        result = (await events_of(render_storyboard(sb, None, tmp_path / str(fps), use_ai_generation=False,
                                                    make_gif=True)))[-1].result
        with Image.open(result["gif"]) as gif:
            durations = []
            for index in range(gif.n_frames):
                gif.seek(index)
                durations.append(gif.info["duration"])
        assert sum(durations) == 2000, (fps, durations)
        assert all(d >= 20 and d % 10 == 0 for d in durations), (fps, durations)
        assert gif.n_frames >= 1 + 1 + 10  # the crossfade still moves in many steps


async def test_stop_while_writing_the_gif_leaves_no_partial_gif(tmp_path):
    cancel = asyncio.Event()
    sb = cards(Scene("one", duration=1, transition="crossfade"), Scene("two", duration=1), fps=8)
    events = []
    async for event in render_storyboard(sb, None, tmp_path, use_ai_generation=False, make_gif=True, cancel=cancel):
        events.append(event)
        if isinstance(event, VideoProgress) and event.phase == "gif" and event.done == 0:
            cancel.set()
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.error.startswith("Cancelled: Stopped while writing the GIF.")
    assert failed.result["status"] == "cancelled" and failed.result["gif"] is None
    assert not list(tmp_path.rglob("*.gif")) and not list(tmp_path.rglob("*.part*"))
    assert Path(failed.result["video"]).is_file() and "the mp4" in failed.error  # the finished mp4 is kept


async def test_title_cards_are_drawn_off_the_event_loop(tmp_path, monkeypatch):
    loop_thread = threading.get_ident()
    threads = []

    def recording_title_card(*args, **kwargs):
        threads.append(threading.get_ident())
        return title_card(*args, **kwargs)

    monkeypatch.setattr("engine.video.title_card", recording_title_card)
    sb = cards(Scene("one", duration=0.5), Scene("two", duration=0.5), fps=4)
    assert isinstance((await events_of(render_storyboard(sb, None, tmp_path, use_ai_generation=False)))[-1], Done)
    assert len(threads) == 2 and loop_thread not in threads


def test_a_very_long_title_is_cut_on_the_card():
    card = title_card("a fox", 1, 1, 1920, 1080, title="harbour " * 8000)  # once too large a text image to draw
    assert card.size == (1920, 1080)
    header = np.asarray(card.crop((0, 0, 1920, 180)), np.float32)
    assert (header > 250).all(axis=2).any()  # the header is drawn in white


async def test_the_saved_storyboard_repeats_the_videos_seeds(tmp_path):
    for policy in ("increment", "fixed", "per_scene"):
        sb = cards(Scene("one", duration=0.5), Scene("two", duration=0.5), Scene("three", duration=0.5), fps=4,
                   seed_policy=policy)  # random seeds: drawn for this render
        result = (await events_of(render_storyboard(sb, None, tmp_path, use_ai_generation=False)))[-1].result
        saved = Storyboard.load(Path(result["storyboard_path"]))
        assert saved.seed_policy == policy and saved.resolve_seeds() == result["seeds"], policy
        again = (await events_of(render_storyboard(saved, None, tmp_path, use_ai_generation=False)))[-1].result
        assert again["seeds"] == result["seeds"], policy


def test_title_card_mode_needs_no_model(tmp_path):
    script = textwrap.dedent(f"""
        import asyncio, sys
        from engine.config import Settings
        from engine.video import generate_video
        result = asyncio.run(generate_video(None, Settings(output_dir={str(tmp_path)!r}, enable_comfyui=False),
                                            prompt=["a fox", "a harbour"], quality="draft",
                                            use_ai_generation=False))
        assert result["status"] == "success", result
        print("torch" in sys.modules, "diffusers" in sys.modules, "transformers" in sys.modules, result["backends"])
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False False False ['title_card', 'title_card']"
    assert len(list(tmp_path.rglob("*.mp4"))) == 1


async def test_seed_travel_in_a_title_card_preview_is_a_crossfade(tmp_path):
    sb = cards(Scene("a", duration=1, transition="seed_travel"), Scene("b", duration=1), fps=8)
    result = (await events_of(render_storyboard(sb, None, tmp_path, use_ai_generation=False)))[-1].result
    assert result["transitions"][0]["used"] == "crossfade" and result["inbetweens"] == []
    assert "seed travel needs AI keyframes" in result["warnings"][0]


# -- stream_video: prompts or a storyboard in, events out ---------------------------------------
async def test_stream_video_yields_one_keyframe_per_scene_then_done(tmp_path):
    events = await events_of(stream_video(None, tmp_path, prompt="a fox\n\na harbour\nthe end", quality="draft",
                                          use_ai_generation=False, fps=8, width=64, height=64, duration=0.5))
    keyframes = [e for e in events if isinstance(e, Progress)]
    assert [(e.step, e.total) for e in keyframes] == [(1, 3), (2, 3), (3, 3)]
    assert all(isinstance(e.preview, Image.Image) and e.preview.size == (64, 64) for e in keyframes)
    done = events[-1]
    assert isinstance(done, Done) and not any(isinstance(e, (Done, Failed)) for e in events[:-1])
    assert [s["prompt"] for s in done.result["scenes"]] == ["a fox", "a harbour", "the end"]
    assert done.result["video_type"] == "multi_frame" and done.result["frames"] == 12
    assert imageio_ffmpeg.count_frames_and_secs(done.result["video"])[0] == 12


async def test_video_type_storyboard_reads_the_prompt_as_storyboard_text(tmp_path):
    text = "title: Harbour\nfps: 4\nwidth: 64\nheight: 64\nscenes:\n  - a harbour at dawn\n  - boats at sea\n"
    result = await generate_video(None, Settings(output_dir=tmp_path), prompt=text, video_type="storyboard",
                                  use_ai_generation=False)
    assert result["status"] == "success", result.get("error")
    assert [s["prompt"] for s in result["scenes"]] == ["a harbour at dawn", "boats at sea"]
    assert result["video_type"] == "storyboard" and result["frames"] == 16 and "harbour" in Path(result["video"]).name
    # as multi_frame the same text is one scene per line
    lines = await generate_video(None, Settings(output_dir=tmp_path), prompt="a harbour\nboats", fps=4, width=64,
                                 height=64, quality="draft", use_ai_generation=False)
    assert [s["prompt"] for s in lines["scenes"]] == ["a harbour", "boats"] and lines["video_type"] == "multi_frame"


async def test_a_path_shaped_storyboard_prompt_is_never_opened(tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("scenes:\n  - SECRET-SCENE\n")
    events = await events_of(stream_video(None, tmp_path / "out", prompt=str(secret), video_type="storyboard",
                                          use_ai_generation=False))
    assert len(events) == 1 and isinstance(events[0], Failed), events
    assert "file name is not opened" in events[0].error and "SECRET" not in events[0].error
    assert not (tmp_path / "out").exists()


# -- bad input ----------------------------------------------------------------------------------
class CountingImages:
    """A stand-in image generator that only counts calls; bad input must never reach it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, **kwargs):
        self.calls += 1
        yield Failed("should not be called")


@pytest.mark.parametrize("kwargs, expected", [
    (dict(prompt=[]), "no scenes"),
    (dict(prompt=None), "no scenes"),
    (dict(prompt=["a fox", ""]), "Scene 2 has an empty prompt"),
    (dict(prompt=["a fox"], duration=0), "Scene 1's duration must be more than 0 seconds"),
    (dict(prompt=["a fox"] * 3, duration=250), "the longest video is 10 min"),
    (dict(prompt=["a fox"], fps=0), "Frames per second must be between 1 and 60"),
    (dict(prompt=["a fox"], fps=75), "Frames per second must be between 1 and 60"),
    (dict(prompt=["a fox"], width=100), "Width must be a multiple of 8"),
    (dict(prompt=["a fox"], transition="wipe"), "transition must be one of"),
    (dict(prompt=["a fox"], seed_policy="chaos"), "Seed policy must be one of"),
    (dict(prompt=["a fox"], quality="ultra"), "Quality must be one of"),
    (dict(prompt=["a fox"], video_type="single"), "video_type must be one of"),
    (dict(prompt=["a fox"], storyboard={"scenes": ["b"]}), "either a list of prompts or a storyboard"),
    (dict(storyboard={"scenes": []}), "no scenes"),
    (dict(storyboard="scenes: [a, b"), "not valid YAML"),
    (dict(prompt=["a fox"], frames=3), "Unknown video option(s): frames"),
    (dict(storyboard="1: x\nscenes: [a]"), "Unknown storyboard field(s): 1. Known fields:"),
    (dict(storyboard="scenes: [{prompt: a, 5: b}]"), "Scene 1 has unknown field(s): 5. Known fields:"),
    (dict(storyboard="quality: [a]\nscenes: [a]"), "Quality must be one of draft, standard, high (got ['a'])"),
    (dict(storyboard="model: {x: 1}\nscenes: [a]"), "The model must be a model name."),
    (dict(prompt=["a fox"], use_ai_generation="no"), "use_ai_generation must be true or false (got 'no')"),
    (dict(prompt=["a fox"], make_gif=1), "make_gif must be true or false (got 1)"),
])
async def test_bad_input_is_a_clear_error_before_any_generation(tmp_path, kwargs, expected):
    images = CountingImages()
    result = await generate_video(images, Settings(output_dir=tmp_path), **kwargs)
    assert result["status"] == "error" and expected in result["error"], result["error"]
    assert result["keyframes"] == [] and result["video"] is None
    assert images.calls == 0 and not any(tmp_path.iterdir())
    # the stream behind it ends with that one Failed
    events = await events_of(stream_video(images, tmp_path, **kwargs))
    assert len(events) == 1 and isinstance(events[0], Failed) and events[0].error == result["error"]
    assert images.calls == 0 and not any(tmp_path.iterdir())


@pytest.mark.parametrize("as_text", [False, True], ids=["list", "YAML"])
async def test_the_storyboard_text_limit_counts_prompts_as_well_as_yaml(tmp_path, as_text):
    prompts = ["a fox in the snow " * 4] * 20  # about 1,500 characters of prompts
    given = dict(storyboard=yaml.safe_dump({"scenes": prompts})) if as_text else dict(prompt=prompts)
    images = CountingImages()
    events = await events_of(stream_video(images, tmp_path, limits=Limits(max_storyboard_chars=1000), **given))
    assert len(events) == 1 and events[0].error.startswith("The storyboard is too long:") and images.calls == 0


async def test_seed_travel_in_betweens_count_in_the_video_budget(tmp_path):
    """Two "high" scenes with seed travel: 2 keyframes within the budget, with their in-betweens (as many as the
    preset allows) not."""
    scenes = [{"prompt": "a fox", "duration": 2, "transition": "seed_travel", "transition_duration": 1.5},
              {"prompt": "a harbour", "duration": 2}]
    size = dict(quality="high", width=1024, height=576, steps=30, fps=12)
    two_keyframes = Limits(max_video_pixel_steps=2 * 1024 * 576 * 30)
    images = CountingImages()
    result = await generate_video(images, Settings(output_dir=tmp_path), storyboard={"scenes": scenes},
                                  limits=two_keyframes, **size)
    assert result["status"] == "error" and images.calls == 0
    assert re.search(r"2 keyframes \+ [1-9]\d* seed-travel in-betweens × 1024×576 pixels × 30 steps", result["error"]), \
        result["error"]
    assert "or crossfades instead of seed travel" in result["error"]
    crossfade = [{**scenes[0], "transition": "crossfade"}, scenes[1]]  # no in-betweens: within the budget
    result = await generate_video(images, Settings(output_dir=tmp_path), storyboard={"scenes": crossfade},
                                  limits=two_keyframes, **size)
    assert images.calls == 1 and "too large" not in result["error"], result["error"]


async def test_title_cards_are_capped_by_what_a_render_holds_until_it_encodes(tmp_path):
    scenes = [{"prompt": f"card {n}", "duration": 0.1} for n in range(40)]
    small = Limits(max_video_keyframe_pixels=39 * 256 * 256)
    result = await generate_video(None, Settings(output_dir=tmp_path), storyboard={"scenes": scenes}, limits=small,
                                  use_ai_generation=False, width=256, height=256, fps=10)
    assert result["status"] == "error" and not any(tmp_path.iterdir())
    assert "40 keyframes × 256×256 pixels = 2.6 million pixels held until it is encoded" in result["error"]
    assert "GATOR_MAX_VIDEO_KEYFRAME_PIXELS" in result["error"]


async def test_storyboard_file_and_overrides(tmp_path):
    board = cards(Scene("a fox", duration=1), Scene("a harbour", duration=1), fps=4)
    path = board.save(tmp_path / "b.yaml")
    result = await generate_video(None, Settings(output_dir=tmp_path / "out"), storyboard=path,
                                  use_ai_generation=False, fps=6, title="Trip")
    assert result["status"] == "success" and result["fps"] == 6 and result["frames"] == 12
    assert imageio_ffmpeg.count_frames_and_secs(result["video"])[0] == 12
    assert "trip" in Path(result["video"]).name
    again = await generate_video(None, Settings(output_dir=tmp_path / "out"), storyboard=board,
                                 use_ai_generation=False, fps=2, seed=5)
    assert again["fps"] == 2 and again["seeds"] == [5, 6]
    assert Storyboard.load(path).fps == 4 and board.fps == 4 and board.seed is None  # the caller's are left alone


# -- cancel and failures ------------------------------------------------------------------------
async def test_cancel_keeps_the_keyframes_made(tmp_path):
    cancel = asyncio.Event()
    sb = cards(*(Scene(f"scene {n}", duration=0.5) for n in range(1, 6)), fps=8)
    events = []
    async for event in render_storyboard(sb, None, tmp_path, use_ai_generation=False, cancel=cancel):
        events.append(event)
        if isinstance(event, Progress) and event.step == 2:
            cancel.set()
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.error.startswith("Cancelled")
    result = failed.result
    assert result["status"] == "cancelled" and result["video"] is None
    assert (result["frames"], result["duration_s"], result["planned_duration_s"]) == (0, 0.0, 2.5)  # no video made
    assert [Path(p).name for p in result["keyframes"]] == ["scene-01.png", "scene-02.png"]
    assert all(Path(p).is_file() for p in result["keyframes"])
    assert not list(tmp_path.rglob("*.mp4"))
    saved = json.loads(Path(result["storyboard_path"]).read_text())
    assert saved["render"]["status"] == "cancelled" and saved["render"]["keyframes"] == result["keyframes"]


async def test_cancel_while_encoding_leaves_no_partial_video(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.video.ENCODE_CHUNK", 4)
    cancel = asyncio.Event()
    sb = cards(Scene("one", duration=2), Scene("two", duration=2), fps=8)
    events = []
    async for event in render_storyboard(sb, None, tmp_path, use_ai_generation=False, cancel=cancel):
        events.append(event)
        if isinstance(event, VideoProgress) and event.phase == "encoding" and event.done >= 8:
            cancel.set()
    assert isinstance(events[-1], Failed) and events[-1].result["status"] == "cancelled"
    assert len(events[-1].result["keyframes"]) == 2
    assert not list(tmp_path.rglob("*.mp4")) and not list(tmp_path.rglob("*.part*"))


class FailingOnSecond:
    """An image generator that makes plain images and fails on its second call, like a dead backend."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.calls = folder, 0

    async def __call__(self, prompt: str, width: int, height: int, seed: int, **kwargs):
        self.calls += 1
        if self.calls == 2:
            yield Failed("The GPU ran out of memory.")
            return
        image = Image.new("RGB", (width, height), (self.calls * 40, 0, 0))
        path = self.folder / f"{self.calls}.png"
        self.folder.mkdir(parents=True, exist_ok=True)
        image.save(path)
        yield Done({"status": "success", "image": image, "path": str(path), "seed": seed,
                    "backend": "diffusers", "model": "plain", "model_id": "plain"})


async def test_failed_keyframe_keeps_the_earlier_ones(tmp_path):
    images = FailingOnSecond(tmp_path / "imgs")
    sb = cards(Scene("a"), Scene("b"), Scene("c"), fps=4)
    failed = (await events_of(render_storyboard(sb, images, tmp_path / "out")))[-1]
    assert isinstance(failed, Failed) and "Scene 2/3 failed: The GPU ran out of memory." in failed.error
    assert failed.result["status"] == "error" and failed.result["keyframes"] == [str(tmp_path / "imgs" / "1.png")]
    assert images.calls == 2


# -- through the real manager (tiny diffusers model) --------------------------------------------
async def test_ai_keyframes_through_the_manager(manager):
    sb = Storyboard(scenes=[Scene("a red fox", duration=0.5, transition="crossfade"),
                            Scene("a blue harbour", duration=0.5, transition="cut"),
                            Scene("a green forest", duration=0.25)],
                    fps=8, seed_policy="increment", seed=100, **SMALL)
    events = await events_of(render_storyboard(sb, manager.stream_image, manager.settings.output_dir))
    result = events[-1].result
    assert isinstance(events[-1], Done), result.get("error")
    assert result["backends"] == ["diffusers"] * 3 and result["seeds"] == [100, 101, 102]
    saved = [read_parameters(p) for p in result["keyframes"]]
    assert [(p["prompt"], p["seed"], p["width"], p["num_inference_steps"]) for p in saved] == [
        ("a red fox", 100, 64, 2), ("a blue harbour", 101, 64, 2), ("a green forest", 102, 64, 2)]
    assert imageio_ffmpeg.count_frames_and_secs(result["video"]) == (10, pytest.approx(1.25, abs=0.13))
    assert [s["model"] for s in result["scenes"]] == ["Tiny demo model"] * 3
    assert all(s["seconds"] > 0 for s in result["scenes"])
    steps = [e for e in events if isinstance(e, VideoProgress) and e.phase == "denoising"]
    assert len(steps) == 6 and steps[0].message == "Scene 1/3"


async def test_manager_generate_video_keeps_the_seed_signature(manager):
    result = await manager.generate_video(prompt=["a red fox", "a blue harbour"], video_type="multi_frame",
                                          quality="draft", use_ai_generation=True, fps=4, width=64, height=64,
                                          steps=2, duration=1.0)
    assert result["status"] == "success", result.get("error")
    assert result["backends"] == ["diffusers", "diffusers"] and result["quality"] == "draft"
    assert imageio_ffmpeg.count_frames_and_secs(result["video"])[0] == 8
    assert [t["used"] for t in result["transitions"]] == ["crossfade"]
    bad = await manager.generate_video(prompt=["a red fox", " "], quality="draft")
    assert bad["status"] == "error" and "Scene 2 has an empty prompt" in bad["error"]


async def test_manager_stream_video_streams_keyframes(manager):
    events = await events_of(manager.stream_video(prompt="a red fox\na blue harbour", quality="draft", fps=4,
                                                  width=64, height=64, steps=2, duration=0.5, seed=3))
    done = events[-1]
    assert isinstance(done, Done), getattr(done, "error", done)
    keyframes = [e for e in events if isinstance(e, Progress)]
    assert [(e.step, e.total, e.backend) for e in keyframes] == [(1, 2, "diffusers"), (2, 2, "diffusers")]
    assert all(isinstance(e.preview, Image.Image) for e in keyframes)
    assert [read_parameters(p)["prompt"] for p in done.result["keyframes"]] == ["a red fox", "a blue harbour"]
    assert done.result["seeds"] == [3, 4] and done.result["video_type"] == "multi_frame"
    assert [e.message for e in events if isinstance(e, VideoProgress) and e.phase == "denoising"] == \
        ["Scene 1/2"] * 2 + ["Scene 2/2"] * 2


async def test_cancel_during_a_keyframe_through_the_manager(manager):
    cancel = asyncio.Event()
    sb = Storyboard(scenes=[Scene("one"), Scene("two"), Scene("three")], fps=4, width=64, height=64, steps=6)
    events = []
    async for event in render_storyboard(sb, manager.stream_image, manager.settings.output_dir, cancel=cancel):
        events.append(event)
        if isinstance(event, VideoProgress) and event.message == "Scene 2/3" and event.done == 2:
            cancel.set()
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.result["status"] == "cancelled", failed
    assert len(failed.result["keyframes"]) == 1 and read_parameters(failed.result["keyframes"][0])["prompt"] == "one"
    assert max(e.done for e in events if isinstance(e, VideoProgress) and e.message == "Scene 2/3") < 6
    assert not list(manager.settings.output_dir.rglob("*.mp4"))


async def test_seed_travel_through_the_manager(manager):
    # 8 frames of scene 1, the last 4 travel: 4 in-betweens at t = 1/5 .. 4/5 (standard allows 6)
    sb = Storyboard(scenes=[Scene("a red fox", duration=1, transition="seed_travel", transition_duration=0.5),
                            Scene("a blue harbour", duration=0.5)],
                    fps=8, seed_policy="per_scene", width=64, height=64, steps=2, quality="standard")
    sb.scenes[0].seed, sb.scenes[1].seed = 1, 2
    seen = await events_of(stream_video(manager.stream_image, manager.settings.output_dir, storyboard=sb))
    result = seen[-1].result
    assert isinstance(seen[-1], Done), result.get("error")
    assert result["transitions"][0]["used"] == "seed_travel" and len(result["inbetweens"]) == 4
    assert [(e.step, e.total) for e in seen if isinstance(e, Progress)] == [(n, 6) for n in range(1, 7)]
    assert result["warnings"] == []
    travelled = [np.asarray(Image.open(p).convert("RGB"), np.float32) for p in result["inbetweens"]]
    assert all(read_parameters(p)["backend"] == "diffusers" for p in result["inbetweens"])
    a = np.asarray(Image.open(result["keyframes"][0]).convert("RGB"), np.float32)
    b = np.asarray(Image.open(result["keyframes"][1]).convert("RGB"), np.float32)
    frames = decode(result["video"])
    assert len(frames) == 12
    candidates = [a, *travelled, b]
    for k, image in enumerate(travelled, start=1):
        # the video shows the generated in-between: its decoded frame is nearest to it of all images
        distances = [mean_diff(frames[3 + k], c) for c in candidates]
        assert int(np.argmin(distances)) == k, distances
        crossfade = (1 - k / 5) * a + k / 5 * b
        assert mean_diff(image, crossfade) > 1  # and it is not a plain blend of the two keyframes


# -- ComfyUI failing mid-video ------------------------------------------------------------------
FAKE_STEP_DELAY_S = 0.0  # the `fake` fixture's service time per step



async def test_comfyui_failure_mid_video_falls_back_and_keeps_order(comfy_manager, fake):
    sb = Storyboard(scenes=[Scene("scene one", duration=0.5, transition="seed_travel"),
                            Scene("scene two", duration=0.5, transition="crossfade"),
                            Scene("scene three", duration=0.5)], fps=8, seed=5, **SMALL)
    events = []
    async for event in render_storyboard(sb, comfy_manager.stream_image, comfy_manager.settings.output_dir):
        events.append(event)
        if isinstance(event, Progress) and event.step == 1:
            fake.fail_next_prompt()  # scene 2's ComfyUI job is refused (a missing checkpoint)
    result = events[-1].result
    assert isinstance(events[-1], Done), result.get("error")
    assert result["backends"] == ["comfyui", "diffusers", "comfyui"]
    fallbacks = [e for e in events if isinstance(e, Fallback)]
    assert len(fallbacks) == 1 and fallbacks[0].reason.startswith("Scene 2/3: ")
    assert "missing.safetensors" in result["scenes"][1]["fallback_reason"]
    assert [read_parameters(p)["prompt"] for p in result["keyframes"]] == ["scene one", "scene two", "scene three"]
    assert [p.step for p in events if isinstance(p, Progress)] == [1, 2, 3]
    assert imageio_ffmpeg.count_frames_and_secs(result["video"])[0] == 12
    # seed travel from a ComfyUI keyframe is not possible: that transition became a crossfade
    assert result["transitions"][0]["used"] == "crossfade"
    assert any("seed travel needs both scenes on the same backend and model" in w for w in result["warnings"])
