"""The Video storyboard tab: scenes (one prompt per line, or a storyboard in YAML), streamed keyframes, the mp4.

The handler runs the engine's `generate_video` and renders its event stream (keyframe step previews,
finished keyframes, encoding progress, Done/Failed) as it arrives.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import gradio as gr

from engine.events import Done, Failed, Fallback, Progress, Queued, Started
from engine.storyboard import quality_presets as video_quality_presets

from .models import AUTO, model_choices
from .preview import display_preview
from .sessions import CancelSwitches

logger = logging.getLogger(__name__)

TRANSITIONS = [("crossfade", "crossfade"), ("cut", "cut"), ("seed travel", "seed_travel")]
SEED_POLICIES = [("a new seed per scene (base + n)", "increment"), ("the same seed everywhere", "fixed"),
                 ("each scene's own seed (YAML)", "per_scene")]
EXAMPLE_YAML = """title: A day at the harbour
quality: draft
fps: 8
seed_policy: increment
scenes:
  - prompt: a quiet harbour at dawn, mist over the water
    duration: 2
    transition: crossfade
  - prompt: fishing boats leaving the harbour, golden light
    duration: 2
"""
_END = object()


def _opt_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value  # the engine says what is wrong with it
    return int(f) if f.is_integer() else value


def video_request(prompts: str, negative: str, storyboard_yaml: str, quality: str, duration: Any,
                  transition: str, transition_duration: Any, width: Any, height: Any, fps: Any, steps: Any,
                  seed: Any, seed_policy: str, model: str, title: str) -> dict[str, Any]:
    """The keyword arguments of `manager.generate_video` for the form's values (empty fields: preset values)."""
    if (storyboard_yaml or "").strip():
        kwargs: dict[str, Any] = {"storyboard": storyboard_yaml, "video_type": "storyboard"}
        if fps not in (None, "", 0):
            kwargs["fps"] = float(fps)
        return kwargs
    lines = [line.strip() for line in (prompts or "").splitlines() if line.strip()]
    kwargs = {"prompt": lines, "video_type": "multi_frame", "quality": quality or "draft",
              "transition": transition or "crossfade"}
    if negative and negative.strip():
        kwargs["negative_prompt"] = negative.strip()
    for key, value in (("duration", duration), ("transition_duration", transition_duration)):
        if value not in (None, ""):
            kwargs[key] = float(value)
    for key, value in (("width", width), ("height", height), ("steps", steps)):
        value = _opt_int(value)
        if value not in (None, 0):
            kwargs[key] = value
    if fps not in (None, "", 0):
        kwargs["fps"] = float(fps)
    seed = _opt_int(seed)
    if seed is not None and seed != -1:
        kwargs["seed"] = seed
    if seed_policy:
        kwargs["seed_policy"] = seed_policy
    if model and model != AUTO:
        kwargs["model"] = model
    if title and title.strip():
        kwargs["title"] = title.strip()
    return kwargs


def video_details(result: dict[str, Any]) -> str:
    lines = [f"**{len(result.get('keyframes') or [])} keyframes** · {result.get('frames')} frames · "
             f"{result.get('duration_s')} s at {result.get('fps')} fps · {result.get('width')}×{result.get('height')}",
             f"Backends: {', '.join(result.get('backends') or []) or '–'} · seeds {result.get('seeds')}",
             f"Video `{result.get('video')}`"]
    if result.get("gif"):
        lines.append(f"GIF `{result['gif']}`")
    if result.get("storyboard_path"):
        lines.append(f"Storyboard `{result['storyboard_path']}`")
    for warning in result.get("warnings") or []:
        lines.append(f"⚠️ {warning}")
    return "\n\n".join(lines)


class VideoTabHandlers:
    def __init__(self, manager: Any, switches: CancelSwitches) -> None:
        self.manager = manager
        self.switches = switches
        self.components: dict[str, Any] = {}

    async def render(self, prompts: str, negative: str, storyboard_yaml: str, quality: str, duration: Any,
                     transition: str, transition_duration: Any, width: Any, height: Any, fps: Any, steps: Any,
                     seed: Any, seed_policy: str, model: str, title: str, use_ai: bool, make_gif: bool,
                     request: gr.Request = None):
        c = self.components
        try:
            kwargs = video_request(prompts, negative, storyboard_yaml, quality, duration, transition,
                                   transition_duration, width, height, fps, steps, seed, seed_policy, model, title)
        except (TypeError, ValueError) as err:
            message = f"Check the numbers in the form: {err}"
            gr.Warning(message)
            yield {c["progress"]: f"❌ {message}"}
            return
        keyframes: list[tuple[str, str]] = []
        queue: asyncio.Queue = asyncio.Queue()
        yield {c["progress"]: "Starting…", c["video"]: None, c["gif"]: gr.update(value=None, visible=False),
               c["storyboard"]: gr.update(value=None, visible=False), c["keyframes"]: [], c["details"]: ""}
        with self.switches.request(getattr(request, "session_hash", None)) as cancel:
            task = asyncio.create_task(self.manager.generate_video(
                use_ai_generation=bool(use_ai), make_gif=bool(make_gif), cancel=cancel,
                on_event=queue.put_nowait, **kwargs))
            task.add_done_callback(lambda _t: queue.put_nowait(_END))
            try:
                while True:
                    event = await queue.get()
                    if event is _END:
                        break
                    update = self._render_event(event, keyframes)
                    if update:
                        yield update
                result = task.result()
            except asyncio.CancelledError:
                cancel.set()
                task.cancel()
                raise
            except Exception as err:  # never a traceback in the browser
                logger.exception("Video generation failed in the UI")
                message = f"Something went wrong: {err}"
                gr.Warning(message)
                yield {c["progress"]: f"❌ {message}"}
                return
        if result.get("status") == "success" and result.get("video"):
            yield {
                c["progress"]: f"✅ Video ready: {result.get('frames')} frames, {result.get('duration_s')} s "
                               f"in {(result.get('timings') or {}).get('total_s', 0):.1f} s",
                c["video"]: result["video"],
                c["gif"]: gr.update(value=result.get("gif"), visible=bool(result.get("gif"))),
                c["storyboard"]: gr.update(value=result.get("storyboard_path"),
                                           visible=bool(result.get("storyboard_path"))),
                c["keyframes"]: [(p, f"scene {i + 1}") for i, p in enumerate(result.get("keyframes") or [])],
                c["details"]: video_details(result),
            }
            return
        error = result.get("error") or "The video could not be made."
        stopped = result.get("status") == "cancelled" or error.startswith("Cancelled")
        if not stopped:
            gr.Warning(error)
        yield {c["progress"]: ("⏹ " if stopped else "❌ ") + error,
               c["storyboard"]: gr.update(value=result.get("storyboard_path"),
                                          visible=bool(result.get("storyboard_path")))}

    def _render_event(self, event: Any, keyframes: list[tuple[str, str]]) -> dict[Any, Any] | None:
        c = self.components
        phase = getattr(event, "phase", None)
        if phase is not None:  # engine.video.VideoProgress
            if phase == "denoising":
                update = {c["progress"]: f"{event.message} · step {event.done}/{event.total}"}
                if event.preview is not None:
                    update[c["preview"]] = display_preview(event.preview)
                return update
            what = "Encoding the video" if phase == "encoding" else "Making the GIF"
            return {c["progress"]: f"{what}: frame {event.done}/{event.total}"}
        if isinstance(event, Progress):  # a finished keyframe
            update = {c["progress"]: f"Keyframe {event.step}/{event.total} done · {event.backend}"}
            if event.preview is not None:
                update[c["preview"]] = display_preview(event.preview)
            return update
        if isinstance(event, Fallback):
            return {c["progress"]: f"⚠️ {event.reason} Continuing on {event.to_backend}."}
        if isinstance(event, Queued):
            return {c["progress"]: f"⏳ Waiting for the backend: position {event.position} in line"}
        if isinstance(event, Started):
            return {c["progress"]: f"▶️ Keyframe on {event.backend} · {event.model}"}
        if isinstance(event, (Done, Failed)):
            return None
        return None

    async def stop(self, request: gr.Request = None) -> str:
        asked = self.switches.cancel(getattr(request, "session_hash", None))
        return "⏹ Stopped." if asked else "Nothing is running."


def build_video_tab(manager: Any, switches: CancelSwitches) -> gr.Dropdown:
    """Lay out the tab inside the current gr.Tab and wire its events; returns the model dropdown."""
    h = VideoTabHandlers(manager, switches)
    presets = video_quality_presets()
    quality_choices = [(f"{v.get('label', k)} ({v.get('width')}×{v.get('height')}, {v.get('steps')} steps, "
                        f"{v.get('fps')} fps)", k) for k, v in presets.items()]
    models = manager.available_models() if getattr(manager, "_initialized", False) else []

    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            prompts = gr.Textbox(label="Scenes: one prompt per line", lines=5, elem_id="video-prompts",
                                 placeholder="a quiet harbour at dawn\nfishing boats leaving the harbour\n"
                                             "the harbour at night, lanterns on the water")
            negative = gr.Textbox(label="Negative prompt (every scene)", lines=1, elem_id="video-negative")
            with gr.Row():
                quality = gr.Dropdown(quality_choices, value="draft" if "draft" in presets else None,
                                      label="Quality", elem_id="video-quality")
                transition = gr.Radio(TRANSITIONS, value="crossfade", label="Transition", elem_id="video-transition")
            with gr.Row():
                duration = gr.Slider(0.5, 10, value=2, step=0.5, label="Seconds per scene", elem_id="video-duration")
                transition_duration = gr.Slider(0, 3, value=0.5, step=0.25, label="Transition seconds",
                                                elem_id="video-transition-duration")
            with gr.Row():
                use_ai = gr.Checkbox(True, label="AI keyframes (off: quick title-card preview, no model)",
                                     elem_id="video-use-ai")
                make_gif = gr.Checkbox(False, label="Also make a GIF", elem_id="video-gif")
            with gr.Accordion("More settings", open=False, elem_id="video-more"):
                with gr.Row():
                    width = gr.Number(None, label="Width (empty: quality preset)", precision=0,
                                      elem_id="video-width")
                    height = gr.Number(None, label="Height (empty: quality preset)", precision=0,
                                       elem_id="video-height")
                    fps = gr.Number(None, label="FPS (empty: preset)", elem_id="video-fps")
                with gr.Row():
                    steps = gr.Number(None, label="Steps per keyframe (empty: preset)", precision=0,
                                      elem_id="video-steps")
                    seed = gr.Number(-1, label="Base seed (-1 = random)", precision=0, elem_id="video-seed")
                    seed_policy = gr.Dropdown(SEED_POLICIES, value="increment", label="Seeds",
                                              elem_id="video-seed-policy")
                with gr.Row():
                    model = gr.Dropdown(model_choices(models), value=AUTO, label="Model", allow_custom_value=True,
                                        elem_id="video-model")
                    title = gr.Textbox(label="Title", elem_id="video-title")
            with gr.Accordion("Storyboard in YAML (used instead of the lines above when filled)", open=False):
                storyboard_yaml = gr.Code(value="", language="yaml", label="Storyboard", elem_id="video-yaml")
                gr.Button("Insert an example", size="sm").click(lambda: EXAMPLE_YAML, outputs=storyboard_yaml,
                                                                 queue=False, api_visibility="private")
            with gr.Row():
                render = gr.Button("Render video", variant="primary", elem_id="video-render")
                stop = gr.Button("Stop", variant="stop", elem_id="video-stop")
        with gr.Column(scale=6):
            progress = gr.Markdown("Ready.", elem_id="video-progress")
            preview = gr.Image(label="Keyframe preview", type="pil", format="png", interactive=False, height=240,
                               elem_id="video-preview")
            video = gr.Video(label="Video", format="mp4", interactive=False, autoplay=False, loop=True, height=360,
                             elem_id="video-output")
            with gr.Row():
                gif = gr.DownloadButton("Download GIF", visible=False, elem_id="video-gif-download")
                storyboard = gr.DownloadButton("Download storyboard (JSON)", visible=False,
                                               elem_id="video-storyboard-download")
            keyframes = gr.Gallery(label="Keyframes", columns=6, height=160, allow_preview=True, interactive=False,
                                   fit_columns=False, object_fit="contain", elem_id="video-keyframes")
            details = gr.Markdown("", elem_id="video-details")

    h.components = {"progress": progress, "preview": preview, "video": video, "gif": gif, "storyboard": storyboard,
                    "keyframes": keyframes, "details": details}
    inputs = [prompts, negative, storyboard_yaml, quality, duration, transition, transition_duration, width, height,
              fps, steps, seed, seed_policy, model, title, use_ai, make_gif]
    event = render.click(h.render, inputs=inputs, outputs=[progress, preview, video, gif, storyboard, keyframes,
                                                           details],
                         api_visibility="private", show_progress="hidden", concurrency_limit=2,
                         concurrency_id="generate_video")
    stop.click(h.stop, outputs=progress, cancels=[event], queue=False, api_visibility="private")
    return model
