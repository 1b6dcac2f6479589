"""The Video storyboard tab: an editable scene table (or a storyboard in YAML), streamed keyframes, the mp4.

The table's rows become an engine storyboard (ui/scene_table.py); the handler consumes the engine's
`stream_video` and shows its events as they arrive (keyframe step previews, each finished keyframe as a
thumbnail, the progress line from ui/presenter.py). Bad input ends as the engine's sentence.
"""
from __future__ import annotations

import asyncio
import codecs
import logging
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from engine import params as P
from engine.errors import InvalidRequest
from engine.events import Done, Failed, Progress
from engine.manager import AIModelManager
from engine.params import RANDOM_SEED, is_random_seed, seed_input
from engine.request import AUTO
from engine.storyboard import DEFAULT_DURATION_S, FPS, TRANSITION_DURATION, Storyboard
from engine.storyboard import quality_presets as video_quality_presets

from .models import model_choices
from .presenter import STOPPED, Presenter, failure_line, is_stopped, unexpected_failure
from .preview import display_preview
from .scene_table import (HEADERS, PROMPT, add_row, apply_seed_policy, clicked_scene, move_row, remove_row,
                          rows_from_prompts, rows_from_storyboard, rows_of, scenes_of)
from .sessions import RENDER_CONCURRENCY, RENDERS_AT_ONCE, VIDEO_JOB, Jobs, TooManyJobs
from .widgets import number_box, preset_box, widget

logger = logging.getLogger(__name__)

SEED_POLICIES = [("a new seed per scene (base + n)", "increment"), ("the same seed everywhere", "fixed"),
                 ("each scene's own seed (empty: random)", "per_scene")]
TRANSITIONS = [("crossfade", "crossfade"), ("cut", "cut"), ("seed travel", "seed travel")]
THUMB_SIDE = 256
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
    """The keyword arguments of `manager.stream_video` (or generate_video) for the form's values (empty fields:
    preset values)."""
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
    seed = seed_input(seed)
    if seed is not None:
        kwargs["seed"] = seed
    if seed_policy:
        kwargs["seed_policy"] = seed_policy
    if model and model != AUTO:
        kwargs["model"] = model
    if title and title.strip():
        kwargs["title"] = title.strip()
    return kwargs


def video_details(result: dict[str, Any]) -> str:
    """The finished video's details: every keyframe rendered (scenes and seed-travel in-betweens), frames,
    backends, seeds and files."""
    scenes, inbetweens = len(result.get("keyframes") or []), len(result.get("inbetweens") or [])
    rendered = f"**{scenes + inbetweens} keyframes**" + (f" ({scenes} scenes + {inbetweens} in-betweens)"
                                                          if inbetweens else "")
    lines = [f"{rendered} · {result.get('frames')} frames · "
             f"{result.get('duration_s')} s at {result.get('fps')} fps · {result.get('width')}×{result.get('height')}",
             f"Backends: {', '.join(result.get('backends') or []) or '–'} · seeds {result.get('seeds')}",
             f"Video `{result.get('video')}`"]
    if result.get("gif"):
        lines.append(f"GIF `{result['gif']}`")
    if result.get("storyboard_path"):
        lines.append(f"Storyboard `{result['storyboard_path']}`")
    for warning in result.get("warnings") or []:
        lines.append(f"Warning: {warning}")
    return "\n\n".join(lines)


def table_storyboard(table: Any, negative: str, quality: str, transition_duration: Any, width: Any, height: Any,
                     fps: Any, steps: Any, seed: Any, seed_policy: str, model: str, title: str,
                     rng: random.Random | None = None) -> dict[str, Any]:
    """The storyboard mapping (Storyboard.from_dict) for the scene table and the form's settings."""
    if transition_duration not in (None, ""):
        transition_duration = float(transition_duration)
    scenes = scenes_of(rows_of(table), negative, transition_duration)
    base, policy = apply_seed_policy(scenes, seed_input(seed), seed_policy or "increment", rng)
    board: dict[str, Any] = {"scenes": scenes, "quality": quality or "draft", "seed_policy": policy}
    if base is not None:
        board["seed"] = base
    for key, value in (("width", width), ("height", height), ("steps", steps)):
        value = _opt_int(value)
        if value not in (None, 0):
            board[key] = value
    if fps not in (None, "", 0):
        board["fps"] = float(fps)
    if model and model != AUTO:
        board["model"] = model
    if title and title.strip():
        board["title"] = title.strip()
    return board


def table_request(table: Any, negative: str, storyboard_yaml: str, quality: str, transition_duration: Any,
                  width: Any, height: Any, fps: Any, steps: Any, seed: Any, seed_policy: str, model: str,
                  title: str, rng: random.Random | None = None) -> dict[str, Any]:
    """The keyword arguments of `manager.stream_video` for the tab: the YAML storyboard when one is
    filled in, else the scene table as a storyboard."""
    if (storyboard_yaml or "").strip():
        return video_request("", "", storyboard_yaml, quality, None, "", None, None, None, fps, None, None, "",
                             AUTO, "")
    board = table_storyboard(table, negative, quality, transition_duration, width, height, fps, steps, seed,
                             seed_policy, model, title, rng)
    return {"storyboard": board, "video_type": "storyboard"}


def scene_prompts(kwargs: dict[str, Any]) -> list[str] | None:
    """The prompts of the scenes a request renders, in order (None when the YAML cannot be read)."""
    board = kwargs.get("storyboard")
    if isinstance(board, dict):
        return [str(s.get("prompt") or "") for s in board.get("scenes") or []]
    try:
        return [str(s.prompt) for s in Storyboard.parse(board).scenes]
    except (InvalidRequest, TypeError, AttributeError):
        return None


def scene_caption(number: int, prompt: str, limit: int = 40) -> str:
    prompt = " ".join(str(prompt or "").split())
    return f"{number}. {prompt if len(prompt) <= limit else prompt[:limit - 1] + '…'}"


def thumbnail(image: Any) -> Any:
    """A small RGB copy of a finished keyframe for the gallery while the render goes on."""
    image = image.convert("RGB")
    if max(image.size) > THUMB_SIDE:
        image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return image


def selection_text(rows: list[list[str]], selected: int | None) -> str:
    if selected is None or not 0 <= selected < len(rows):
        return "Click a row to select it; the buttons act on the selected scene (Remove: the last one if none)."
    return f"Selected: **{scene_caption(selected + 1, rows[selected][PROMPT] or '(no prompt yet)', 60)}**"


def read_text_head(path: Path, max_chars: int) -> str:
    """A UTF-8 file's text, read only as far as needed to tell whether it holds more than `max_chars` characters
    (0: all of it); a character cut off where the read stops is dropped.

    Raises OSError, and UnicodeDecodeError for bytes that are not UTF-8.
    """
    # UTF-8 spends at most 4 bytes on a character: a text cut at 4 × (max_chars + 1) bytes still holds
    # more than max_chars whole characters, so the length check sees it is too long
    most = 4 * (max_chars + 1) if max_chars else -1
    with path.open("rb") as file:
        data = file.read(most)
    cut_off = len(data) == most
    return codecs.getincrementaldecoder("utf-8")().decode(data, final=not cut_off)


def save_storyboard_file(board: dict[str, Any]) -> Path:
    """The storyboard as YAML in a fresh temporary folder (Gradio serves it from there)."""
    folder = Path(tempfile.mkdtemp(prefix="gator-storyboard-"))
    return Storyboard.from_dict(board).save(folder / "storyboard.yaml")


def board_settings(board: Storyboard) -> dict[str, Any]:
    """The form values a loaded storyboard sets (transition seconds from its first scene)."""
    first = board.scenes[0] if board.scenes else None
    return {"quality": board.quality, "transition_duration": first.transition_duration if first else None,
            "width": board.width, "height": board.height, "fps": board.fps, "steps": board.steps,
            "seed": RANDOM_SEED if is_random_seed(board.seed) else board.seed, "seed_policy": board.seed_policy,
            "model": board.model or AUTO, "title": board.title or ""}


def left_out_by_table(board: Storyboard) -> list[str]:
    """What of a loaded storyboard the table and the form cannot hold, each said (empty when nothing)."""
    lost = [f"its guidance scale {board.guidance_scale:g} (the table renders with the model's own)"] \
        if board.guidance_scale is not None else []
    lengths = sorted({scene.transition_duration for scene in board.scenes[:-1]})
    if len(lengths) > 1:
        lost.append(f"its transition lengths per scene ({', '.join(f'{n:g} s' for n in lengths)}: the table uses "
                    f"{board.scenes[0].transition_duration:g} s for every scene)")
    return lost


class VideoTabHandlers:
    def __init__(self, manager: AIModelManager, jobs: Jobs) -> None:
        self.manager = manager
        self.jobs = jobs
        self.components: dict[str, Any] = {}
        self._stopped_at: dict[str, float] = {}  # when each session last pressed Stop (time.monotonic): a render
        # asked for before then and still waiting for a slot never starts

    # -- the scene table ---------------------------------------------------------------------------
    @staticmethod
    def select(table: Any, evt: gr.SelectData):
        selected = clicked_scene(table, evt.index)
        return selected, selection_text(rows_of(table), selected)

    @staticmethod
    def add(table: Any, selected: Any):
        rows, selected = add_row(rows_of(table), selected)
        return rows, selected, selection_text(rows, selected)

    @staticmethod
    def remove(table: Any, selected: Any):
        rows, selected = remove_row(rows_of(table), selected)
        return rows, selected, selection_text(rows, selected)

    @staticmethod
    def move_up(table: Any, selected: Any):
        rows, selected = move_row(rows_of(table), selected, -1)
        return rows, selected, selection_text(rows, selected)

    @staticmethod
    def move_down(table: Any, selected: Any):
        rows, selected = move_row(rows_of(table), selected, +1)
        return rows, selected, selection_text(rows, selected)

    @staticmethod
    def paste(text: str, seconds: Any, transition: str, table: Any, append: bool):
        new = rows_from_prompts(text, 2 if seconds in (None, "") else seconds, transition or "crossfade")
        if not new:
            return gr.skip(), gr.skip(), gr.skip(), "Failed: Paste at least one prompt (one scene per line)."
        rows = (rows_of(table) if append else []) + new
        return rows, None, selection_text(rows, None), f"{len(new)} scene(s) {'added' if append else 'in the table'}."

    def load_yaml(self, storyboard_yaml: str):
        c = self.components
        if not (storyboard_yaml or "").strip():
            return {c["progress"]: "Nothing loaded: the YAML box is empty; paste a storyboard or insert the example "
                                   "first."}
        try:
            board = Storyboard.parse(storyboard_yaml)
        except InvalidRequest as err:
            return {c["progress"]: f"Nothing loaded: {err}"}
        rows = rows_from_storyboard(board)
        lost = left_out_by_table(board)
        keep = f" The table cannot hold {' or '.join(lost)}: render from the YAML box to keep it." if lost else ""
        update: dict[Any, Any] = {c["table"]: rows, c["selected"]: None, c["selection"]: selection_text(rows, None),
                                  c["yaml"]: "", c["negative"]: "",  # the scenes carry their own negative prompts
                                  c["progress"]: f"Loaded {len(rows)} scene(s) into the table; the YAML box is "
                                                 f"cleared so the table is what renders.{keep}"}
        for key, value in board_settings(board).items():
            update[c[key]] = value
        return update

    def open_file(self, upload: Any):
        """The text of an uploaded storyboard file, into the YAML box (the server's own files are never read)."""
        path = getattr(upload, "name", upload)
        if not path:
            return gr.skip(), "Failed: No file was uploaded."
        try:
            text = read_text_head(Path(path), self.manager.limits.max_storyboard_chars)
        except OSError:
            return gr.skip(), "Failed: The uploaded file could not be read; upload it again."
        except UnicodeDecodeError:
            return gr.skip(), "Failed: The uploaded file is not UTF-8 text; upload a .yaml or .json storyboard."
        too_long = self.manager.limits.storyboard_problem(text)
        if too_long:
            return gr.skip(), f"Failed: {too_long}"
        return text, "Storyboard file opened in the YAML box: render it, or load it into the table."

    def save(self, table: Any, negative: str, storyboard_yaml: str, quality: str, transition_duration: Any,
             width: Any, height: Any, fps: Any, steps: Any, seed: Any, seed_policy: str, model: str, title: str):
        c = self.components
        try:
            if (storyboard_yaml or "").strip():
                board = Storyboard.parse(storyboard_yaml)
            else:
                board = Storyboard.from_dict(table_storyboard(table, negative, quality, transition_duration, width,
                                                              height, fps, steps, seed, seed_policy, model, title))
            problems = board.problems()
            if problems:
                raise InvalidRequest(" ".join(problems))
            path = save_storyboard_file(board.to_dict())
        except InvalidRequest as err:
            return {c["progress"]: f"Failed: {err}", c["saved"]: gr.update(value=None, visible=False)}
        except (TypeError, ValueError, OSError) as err:
            return {c["progress"]: f"Failed: The storyboard could not be saved: {err}",
                    c["saved"]: gr.update(value=None, visible=False)}
        return {c["progress"]: f"Storyboard saved: {len(board.scenes)} scene(s), {board.total_duration:g} s.",
                c["saved"]: gr.update(value=str(path), visible=True)}

    # -- rendering ---------------------------------------------------------------------------------
    async def render(self, table: Any, negative: str, storyboard_yaml: str, quality: str, transition_duration: Any,
                     width: Any, height: Any, fps: Any, steps: Any, seed: Any, seed_policy: str, model: str,
                     title: str, use_ai: bool, make_gif: bool, asked: Any = None, request: gr.Request = None):
        """Stream a render: the progress line, step previews and each keyframe, then the video or the error.
        `asked` is when its Render was pressed (`ask`): a Stop pressed after that, while it waited, stops it."""
        c = self.components
        session = getattr(request, "session_hash", None) or ""
        if isinstance(asked, (int, float)) and self._stopped_at.get(session, 0.0) > asked:
            yield {c["progress"]: f"{STOPPED} The render was stopped before it started."}
            return
        try:
            kwargs = table_request(table, negative, storyboard_yaml, quality, transition_duration, width, height,
                                   fps, steps, seed, seed_policy, model, title)
        except (TypeError, ValueError) as err:
            message = f"Check the numbers in the form: {err}"
            gr.Warning(message)
            yield {c["progress"]: failure_line(message)}
            return
        prompts = scene_prompts(kwargs)
        keyframes: list[tuple[Any, str]] = []
        presenter = Presenter(video=True)
        final: Done | Failed | None = None
        hidden = gr.update(value=None, visible=False)
        source = " from the YAML storyboard" if (storyboard_yaml or "").strip() else ""
        yield {c["progress"]: f"Starting{source}…", c["video"]: None, c["mp4"]: hidden, c["gif"]: hidden,
               c["storyboard"]: hidden, c["keyframes"]: [], c["details"]: ""}
        try:
            async with self.jobs.job(request, VIDEO_JOB) as cancel:
                events = self.manager.stream_video(use_ai_generation=bool(use_ai), make_gif=bool(make_gif),
                                                   cancel=cancel, owner=getattr(request, "username", None), **kwargs)
                try:
                    async for event in events:
                        if isinstance(event, (Done, Failed)):
                            final = event
                            continue
                        update = self._show(event, presenter, keyframes, prompts)
                        if update and not cancel.is_set():  # after Stop, no late step line hides "Stopped"
                            yield update
                except (asyncio.CancelledError, GeneratorExit):  # the browser went away: stop the render too
                    cancel.set()
                    raise
                except Exception as err:  # never a traceback in the browser
                    logger.exception("Video generation failed in the UI")
                    message = unexpected_failure(err)
                    gr.Warning(message)
                    yield {c["progress"]: failure_line(message)}
                    return
                finally:
                    await events.aclose()
        except TooManyJobs as err:
            gr.Warning(str(err))
            yield {c["progress"]: failure_line(str(err))}
            return
        yield self._finish(final, presenter)

    def _show(self, event: Any, presenter: Presenter, keyframes: list[tuple[Any, str]],
              prompts: list[str] | None) -> dict[Any, Any]:
        """The updates one event makes: the progress line, the preview, a finished keyframe's thumbnail."""
        c = self.components
        update: dict[Any, Any] = {}
        line = presenter.line(event)
        if line:
            update[c["progress"]] = line
        preview = getattr(event, "preview", None)
        if preview is not None:
            update[c["preview"]] = display_preview(preview)
        # a finished keyframe: the scenes' come first (one thumbnail each), then any in-betweens
        if isinstance(event, Progress) and preview is not None and (prompts is None or len(keyframes) < len(prompts)):
            number = len(keyframes) + 1
            keyframes.append((thumbnail(preview), scene_caption(number, prompts[number - 1] if prompts else "")))
            update[c["keyframes"]] = list(keyframes)
        return update

    def _finish(self, final: Done | Failed | None, presenter: Presenter) -> dict[Any, Any]:
        """The updates of a finished render: the video and its downloads, or the error (or Stopped)."""
        c = self.components
        if final is None:
            final = Failed("The video could not be made.")
        result = final.result or {}
        saved_board = gr.update(value=result.get("storyboard_path"), visible=bool(result.get("storyboard_path")))
        if isinstance(final, Done) and result.get("video"):
            scenes = result.get("scenes") or []
            return {
                c["progress"]: presenter.line(final),
                c["video"]: result["video"],
                c["mp4"]: gr.update(value=result["video"], visible=True),
                c["gif"]: gr.update(value=result.get("gif"), visible=bool(result.get("gif"))),
                c["storyboard"]: saved_board,
                c["keyframes"]: [(p, scene_caption(i + 1, (scenes[i] if i < len(scenes) else {}).get("prompt", "")))
                                 for i, p in enumerate(result.get("keyframes") or [])],
                c["details"]: video_details(result),
            }
        if isinstance(final, Done):  # a success without a video should not happen; say so plainly
            final = Failed(result.get("error") or "The video could not be made.", result)
        if not is_stopped(final):
            gr.Warning(final.error)
        return {c["progress"]: presenter.line(final), c["storyboard"]: saved_board}

    @staticmethod
    def ask() -> tuple[str, float]:
        """Render pressed: a line that says it is waiting for one of the RENDERS_AT_ONCE slots (until the render's
        own first line replaces it), and when it was pressed, which that render is given (a second Render
        pressed meanwhile has its own)."""
        return f"Waiting for a free render slot ({RENDERS_AT_ONCE} renders run at once)…", time.monotonic()

    async def stop(self, request: gr.Request = None) -> None:
        """Ask this session's render to stop; its own stream then says "Stopped" after its last step line
        (this handler writes no progress line: its answer and the stream's may arrive in any order). A render
        still waiting for a slot stops as it starts."""
        session = getattr(request, "session_hash", None)
        self._stopped_at[session or ""] = time.monotonic()
        self.jobs.cancel(session, VIDEO_JOB)


def build_video_tab(manager: AIModelManager, jobs: Jobs) -> gr.Dropdown:
    """Lay out the tab inside the current gr.Tab and wire its events; returns the model dropdown."""
    handlers = VideoTabHandlers(manager, jobs)
    handlers.components = layout_video_tab(manager)
    wire_video_tab(handlers)
    return handlers.components["model"]


def layout_video_tab(manager: AIModelManager) -> dict[str, Any]:
    """Lay out the tab's components inside the current gr.Tab; returns them by name."""
    presets = video_quality_presets()
    quality_choices = [(f"{v.get('label', k)} ({v.get('width')}×{v.get('height')}, {v.get('steps')} steps, "
                        f"{v.get('fps')} fps)", k) for k, v in presets.items()]
    models = manager.available_models() if manager.initialized else []

    with gr.Row(equal_height=False):
        with gr.Column(scale=6):
            table = gr.Dataframe(value=[], headers=HEADERS, datatype="str", type="array", column_count=(len(HEADERS), "fixed"),
                                 interactive=True,
                                 label="Scenes (transition: cut, crossfade or seed travel to the next scene; "
                                       "seed empty or -1: from the seed policy)",
                                 show_row_numbers=True, wrap=True, max_height=420,
                                 column_widths=["205px", "100px", "80px", "100px", "70px"], elem_id="video-scenes")
            selected = gr.State(None)
            # when this page's Render was last pressed (VideoTabHandlers.ask): a hidden box, not a State, since the
            # page sends a box's value with the render's request while a State is read when the render starts
            # (after a second click may have changed it)
            asked = gr.Number(None, visible=False, elem_id="video-asked")
            with gr.Row(elem_id="video-scene-buttons"):
                add = gr.Button("+ Add scene", size="sm", min_width=60, elem_id="video-add-scene")
                remove = gr.Button("− Remove scene", size="sm", min_width=60, elem_id="video-remove-scene")
                up = gr.Button("↑ Move up", size="sm", min_width=60, elem_id="video-move-up")
                down = gr.Button("↓ Move down", size="sm", min_width=60, elem_id="video-move-down")
            selection = gr.Markdown(selection_text([], None), elem_id="video-selection")
            with gr.Row():  # the primary action right under the scenes, above the fold
                render = gr.Button("Render video", variant="primary", elem_id="video-render")
                stop = gr.Button("Stop", variant="stop", elem_id="video-stop")
            with gr.Accordion("Paste prompts (one per line)", open=False, elem_id="video-paste-box"):
                paste_text = gr.Textbox(label="Prompts: one scene per line", lines=4, elem_id="video-paste",
                                        placeholder="a quiet harbour at dawn\nfishing boats leaving the harbour\n"
                                                    "the harbour at night, lanterns on the water")
                with gr.Row():
                    paste_seconds = gr.Number(DEFAULT_DURATION_S, label="Seconds each", minimum=0,
                                              elem_id="video-paste-seconds")
                    paste_transition = gr.Dropdown(TRANSITIONS, value="crossfade", label="Transition",
                                                   elem_id="video-paste-transition")
                with gr.Row():
                    paste_replace = gr.Button("Replace the table", size="sm", elem_id="video-paste-replace")
                    paste_append = gr.Button("Add to the table", size="sm", elem_id="video-paste-append")
            negative = gr.Textbox(label="Negative prompt (scenes without their own)", lines=1,
                                  elem_id="video-negative")
            with gr.Row():
                quality = gr.Dropdown(quality_choices, value="draft" if "draft" in presets else None,
                                      label="Quality", elem_id="video-quality")
                transition_duration = gr.Slider(**widget(TRANSITION_DURATION), elem_id="video-transition-duration")
            with gr.Row():
                use_ai = gr.Checkbox(True, label="AI keyframes (off: quick title-card preview, no model)",
                                     elem_id="video-use-ai")
                make_gif = gr.Checkbox(False, label="Also make a GIF", elem_id="video-gif")
            with gr.Accordion("More settings", open=False, elem_id="video-more"):
                with gr.Row():
                    # empty boxes take the quality preset's values; the ranges are in the help text
                    width = gr.Number(**preset_box(P.WIDTH, "Width (0 or empty: quality preset)"), precision=0,
                                      elem_id="video-width")
                    height = gr.Number(**preset_box(P.HEIGHT, "Height (0 or empty: quality preset)"), precision=0,
                                       elem_id="video-height")
                    fps = gr.Number(**preset_box(FPS, "FPS (0 or empty: preset)"), elem_id="video-fps")
                with gr.Row():
                    steps = gr.Number(**preset_box(P.STEPS, "Steps per keyframe (0 or empty: preset)"), precision=0,
                                      elem_id="video-steps")
                    seed = gr.Number(**{**number_box(P.SEED), "label": "Base seed"}, precision=0,
                                     elem_id="video-seed")
                    seed_policy = gr.Dropdown(SEED_POLICIES, value="increment", label="Seeds",
                                              elem_id="video-seed-policy")
                with gr.Row():
                    model = gr.Dropdown(model_choices(models), value=AUTO, label="Model", allow_custom_value=True,
                                        elem_id="video-model")
                    title = gr.Textbox(label="Title", elem_id="video-title")
            with gr.Accordion("Storyboard file (YAML): load, save, or render from YAML", open=False,
                              elem_id="video-yaml-box"):
                storyboard_yaml = gr.Code(value="", language="yaml", label="Storyboard (rendered instead of the "
                                                                           "table while filled)",
                                          elem_id="video-yaml")
                with gr.Row():
                    example = gr.Button("Insert an example", size="sm", elem_id="video-yaml-example")
                    load = gr.Button("Load into the table", size="sm", elem_id="video-yaml-load")
                    save = gr.Button("Save storyboard (YAML)", size="sm", elem_id="video-save")
                    upload = gr.UploadButton("Open a storyboard file", file_types=[".yaml", ".yml", ".json"],
                                             size="sm", elem_id="video-yaml-upload")
                saved = gr.File(label="Saved storyboard", visible=False, interactive=False, elem_id="video-saved")
        with gr.Column(scale=5):
            progress = gr.Markdown("Ready.", elem_id="video-progress")
            preview = gr.Image(label="Keyframe preview", type="pil", format="png", interactive=False, height=240,
                               elem_id="video-preview")
            video = gr.Video(label="Video", format="mp4", interactive=False, autoplay=False, loop=True, height=360,
                             buttons=["download"], elem_id="video-output")
            with gr.Row():
                mp4 = gr.DownloadButton("Download mp4", visible=False, size="sm", elem_id="video-mp4-download")
                gif = gr.DownloadButton("Download GIF", visible=False, size="sm", elem_id="video-gif-download")
                storyboard = gr.DownloadButton("Download storyboard (JSON)", visible=False, size="sm",
                                               elem_id="video-storyboard-download")
            keyframes = gr.Gallery(label="Keyframes (one per scene, as they are made)", columns=6, height=200,
                                   allow_preview=True, interactive=False, fit_columns=False, object_fit="contain",
                                   elem_id="video-keyframes")
            details = gr.Markdown("", elem_id="video-details")

    return {"table": table, "selected": selected, "asked": asked, "add": add, "remove": remove, "up": up, "down": down,
            "selection": selection, "paste_text": paste_text, "paste_seconds": paste_seconds,
            "paste_transition": paste_transition, "paste_replace": paste_replace, "paste_append": paste_append,
            "negative": negative, "quality": quality, "transition_duration": transition_duration, "use_ai": use_ai,
            "make_gif": make_gif, "width": width, "height": height, "fps": fps, "steps": steps, "seed": seed,
            "seed_policy": seed_policy, "model": model, "title": title, "yaml": storyboard_yaml,
            "example": example, "load": load, "save": save, "upload": upload, "saved": saved, "render": render,
            "stop": stop, "progress": progress, "preview": preview, "video": video, "mp4": mp4, "gif": gif,
            "storyboard": storyboard, "keyframes": keyframes, "details": details}


def wire_video_tab(h: VideoTabHandlers) -> None:
    """Connect the laid-out components (h.components) to the handlers."""
    c = h.components
    table, selected, selection, progress = c["table"], c["selected"], c["selection"], c["progress"]
    # Gradio keeps a hidden status tracker (with its "0.0s" timer text) inside the outputs an event shows
    # progress on, even when hidden: every event here shows it on a State, so the progress line stays clean.
    private = {"queue": False, "api_visibility": "private", "show_progress": "hidden", "show_progress_on": selected}
    edit_outputs = [table, selected, selection]
    table.select(h.select, inputs=table, outputs=[selected, selection], **private)
    table.input(lambda rows, i: selection_text(rows_of(rows), i), inputs=[table, selected], outputs=selection,
                **private)
    for button, handler in (("add", h.add), ("remove", h.remove), ("up", h.move_up), ("down", h.move_down)):
        c[button].click(handler, inputs=[table, selected], outputs=edit_outputs, **private)
    paste_inputs = [c["paste_text"], c["paste_seconds"], c["paste_transition"], table]
    c["paste_replace"].click(lambda *a: h.paste(*a, append=False), inputs=paste_inputs,
                             outputs=[*edit_outputs, progress], **private)
    c["paste_append"].click(lambda *a: h.paste(*a, append=True), inputs=paste_inputs,
                            outputs=[*edit_outputs, progress], **private)
    c["example"].click(lambda: EXAMPLE_YAML, outputs=c["yaml"], **private)
    settings = [c[key] for key in ("quality", "transition_duration", "width", "height", "fps", "steps", "seed",
                                   "seed_policy", "model", "title")]
    c["load"].click(h.load_yaml, inputs=c["yaml"], outputs=[*edit_outputs, c["yaml"], c["negative"], progress, *settings],
                    **private)
    c["upload"].upload(h.open_file, inputs=c["upload"], outputs=[c["yaml"], progress], **private)
    form = [table, c["negative"], c["yaml"], *settings]
    c["save"].click(h.save, inputs=form, outputs=[progress, c["saved"]], **private)
    c["render"].click(h.ask, outputs=[progress, c["asked"]], **private).then(
        h.render, inputs=[*form, c["use_ai"], c["make_gif"], c["asked"]],
        outputs=[c[key] for key in ("progress", "preview", "video", "mp4", "gif", "storyboard", "keyframes", "details")],
        api_visibility="private", show_progress="hidden", show_progress_on=selected,
        concurrency_limit=RENDERS_AT_ONCE, concurrency_id=RENDER_CONCURRENCY)
    c["stop"].click(h.stop, **private)
