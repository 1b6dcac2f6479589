"""The progress line: every engine event's text for the Image and Video tabs (ui/presenter.py)."""
from __future__ import annotations

import re

from PIL import Image

from engine.events import Done, Failed, Fallback, ListLine, PlotCell, Progress, Queued, Skipped, Started
from engine.video import VideoProgress, stream_video
from ui.presenter import STOPPED, Presenter, batch_label, is_stopped


def test_an_image_run_line_by_line():
    p = Presenter()
    assert p.line(Queued(2)) == "Waiting for the backend: position 2 in line"
    assert p.line(Started("comfyui", "FLUX.1-dev", "http://a:8188")) == "Started on comfyui · FLUX.1-dev"
    assert p.line(Progress(3, 24, backend="comfyui")) == "Step 3/24 · comfyui · FLUX.1-dev"
    assert p.line(Fallback("ComfyUI stopped answering.", "diffusers")) == \
        "Warning: ComfyUI stopped answering. Continuing on diffusers."
    # the reason stays in view, and the next backend's steps show once they pass step 3: never backwards
    assert p.line(Started("diffusers", "Tiny demo model")) == \
        "Warning: ComfyUI stopped answering. Continuing on diffusers · Tiny demo model."
    assert [p.line(Progress(n, 24, backend="diffusers")) for n in (1, 2, 3)] == [None, None, None]
    assert p.line(Progress(4, 24, backend="diffusers")) == "Step 4/24 · diffusers · Tiny demo model"
    assert p.where == "diffusers · Tiny demo model"
    done = Done({"backend": "diffusers", "model": "Tiny demo model", "seed": 77, "timings": {"total_s": 1.234}})
    assert p.line(done) == "Done in 1.23 s · diffusers · Tiny demo model · seed 77"
    assert p.line(Done({"backend": "diffusers", "model": "Tiny", "seed": 1})) == "Done · diffusers · Tiny · seed 1"
    assert p.line(object()) is None


def test_the_hires_pass_starts_without_claiming_a_takeover():
    """The hires fix's second pass begins with its own Started: "Hires fix · Started on ...", counting its steps
    from 1; "again" is for another server taking over the same pass."""
    p = Presenter()
    p.line(Started("diffusers", "Tiny demo model"))
    assert p.line(Progress(4, 4, backend="diffusers")) == "Step 4/4 · diffusers · Tiny demo model"
    assert p.line(Started("diffusers", "Tiny demo model", stage="Hires fix")) == \
        "Hires fix · Started on diffusers · Tiny demo model"
    assert p.line(Progress(1, 2, backend="diffusers", stage="Hires fix")) == \
        "Hires fix · Step 1/2 · diffusers · Tiny demo model"
    assert p.line(Started("diffusers", "Tiny demo model", stage="Hires fix")) == \
        "Hires fix · Started on diffusers · Tiny demo model again"  # the same pass over: a takeover


def test_a_plot_labels_each_cells_lines_and_counts_its_steps_from_one():
    p = Presenter()
    assert p.line(PlotCell(1, 4, "Steps: 2, Seed: 1")) == "Cell 1/4 · Steps: 2, Seed: 1"
    p.line(Started("diffusers", "Tiny demo model"))
    assert p.line(Progress(2, 2)) == "Cell 1/4 · Step 2/2 · diffusers · Tiny demo model"
    assert p.line(PlotCell(2, 4, "Steps: 3, Seed: 1")) == "Cell 2/4 · Steps: 3, Seed: 1"
    assert p.line(Progress(1, 3)) == "Cell 2/4 · Step 1/3 · diffusers · Tiny demo model"  # not held below step 2
    grid = Done({"plot": {"x_type": "Steps"}, "batch": [{}] * 4, "timings": {"total_s": 2.26}})
    assert Presenter().line(grid) == "X/Y/Z plot done: 4 images and their grid in 2.3 s"


def test_a_prompt_list_labels_each_lines_images():
    p = Presenter()
    assert p.line(ListLine(2, 5, "oil painting a red fox")) == "Prompt 2/5 · oil painting a red fox"
    p.line(Started("diffusers", "Tiny demo model"))
    assert p.line(Progress(1, 3)) == "Prompt 2/5 · Step 1/3 · diffusers · Tiny demo model"


def test_a_batch_labels_each_line():
    assert batch_label(0, 1) == "" and batch_label(1, 3) == "Image 2/3"
    p = Presenter(label=batch_label(1, 3))
    assert p.line(Queued(1)) == "Image 2/3 · Waiting for the backend: position 1 in line"
    p.line(Started("diffusers", "Tiny demo model"))
    assert p.line(Progress(5, 60)) == "Image 2/3 · Step 5/60 · diffusers · Tiny demo model"
    assert p.line(Done({"backend": "diffusers", "model": "Tiny", "seed": 9})).startswith("Image 2/3 · Done")


def test_skipped_says_whether_the_job_goes_on():
    assert Presenter(label=batch_label(0, 3)).line(Skipped(1, 3)) == "Image 1/3 · skipped, on to the next"
    assert Presenter(label=batch_label(2, 3)).line(Skipped(3, 3)) == "Image 3/3 · skipped"
    cell = Presenter()
    cell.line(PlotCell(2, 4, "Steps: 40, Seed: 1"))
    assert cell.line(Skipped(2, 4)) == "Cell 2/4 · skipped, on to the next"
    assert Presenter().line(Skipped(1, 1)) == "Skipped"


def test_stopped_and_failed():
    stopped = Failed("Cancelled: Stopped at step 5/150.")
    assert is_stopped(stopped) and Presenter().line(stopped) == "Stopped. Stopped at step 5/150."
    cancelled = Failed("Stopped during encoding.", {"status": "cancelled"})
    assert is_stopped(cancelled) and Presenter(video=True).line(cancelled) == "Stopped. Stopped during encoding."
    error = Failed("Width must be a multiple of 8 (got 100; try 96).")
    assert not is_stopped(error) and Presenter().line(error) == "Failed: Width must be a multiple of 8 (got 100; try 96)."
    assert STOPPED == "Stopped."


def test_a_video_run_line_by_line():
    p = Presenter(video=True)
    assert p.line(Started("diffusers", "Tiny demo model", stage="Scene 2/3")) == \
        "Scene 2/3 · Started on diffusers · Tiny demo model"  # which keyframe begins, between scenes too
    step = p.line(VideoProgress("denoising", 3, 150, "Scene 2/3"))
    assert step == "Scene 2/3 · step 3/150 · diffusers · Tiny demo model"
    assert re.search(r"step [3-9]/150", step)  # what the browser's Stop test waits for
    assert p.line(Progress(3, 3, backend="diffusers")) == "Keyframe 3/3 done · diffusers"
    assert p.line(VideoProgress("encoding", 24, 36, "Encoding the mp4")) == "Encoding the mp4 · frame 24/36"
    assert p.line(Fallback("Scene 2/3: ComfyUI is gone.", "diffusers")) == \
        "Warning: Scene 2/3: ComfyUI is gone. Continuing on diffusers."
    done = Done({"frames": 24, "duration_s": 3.0, "timings": {"total_s": 1.25}})
    assert p.line(done) == "Video ready: 24 frames, 3.0 s in 1.2 s"


async def test_every_event_of_a_real_video_stream_has_a_line(tmp_path):
    p = Presenter(video=True)
    lines = []
    async for event in stream_video(None, tmp_path, prompt=["one", "two", "three"], quality="draft", fps=8,
                                    width=64, height=64, duration=1, use_ai_generation=False):
        line = p.line(event)
        assert line, event
        if isinstance(event, Progress):
            assert isinstance(event.preview, Image.Image)
        lines.append(line)
    assert [line for line in lines if line.startswith("Keyframe")] == [
        f"Keyframe {n}/3 done · title_card" for n in (1, 2, 3)]
    assert lines[-2] == "Encoding the mp4 · frame 24/24"
    assert re.fullmatch(r"Video ready: 24 frames, 3\.0 s in \d+\.\d s", lines[-1]), lines[-1]
