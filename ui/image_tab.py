"""The Image tab: prompt and settings, streamed step previews, Stop, this session's history, reuse parameters.

Every handler renders the engine's event stream (Queued, Started, Progress, Fallback, Done, Failed); it
never knows which backend ran. Results live in the session's gr.State, never in module globals.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from engine import params as P
from engine.controlnet import MODULES
from engine.errors import GatorError, InvalidRequest
from engine.events import Done, Failed, Progress, Skipped
from engine.manager import AIModelManager
from engine.outputs import VIDEO_SUFFIXES, DeleteRefused, read_parameters
from engine.png_info import png_info
from engine.prompt_syntax import with_lora_tags
from engine.request import AUTO, hires_wanted, sampler_problem
from engine.upscale import UPSCALERS, upscaler_named
from engine.prompt_list import END as LIST_END
from engine.wildcards import escaped

from .image_options import (CONTROLNET_INPUTS, HIRES_CHOICES, HIRES_INPUTS, INPAINT_INPUTS, LIST_INPUTS, PLOT_INPUTS,
                            add_lora_tag, control_map_preview, controlnet_args, hires_args, image_to_image_args,
                            inpaint_args, layout_controlnet_box, layout_hires_box, layout_img2img_box,
                            layout_inpaint_box, layout_lora_row, layout_prompt_list_box, layout_xyz_box, saved_hires,
                            saved_plot)
from .login import not_an_admin
from .job_queue import JobQueue, QueueFull
from .models import hires_checkpoint_choices, model_choices, vae_choices
from .presenter import STOPPED, Presenter, batch_label, failure_line, is_stopped, unexpected_failure
from .presets import CUSTOM_SIZE, aspect_ratios, quality_presets, size_for_aspect
from .preview import display_preview
from .queue_panel import layout_queue_panel
from .session_history import SessionHistories
from .sessions import IMAGE_JOB, Jobs, TooManyJobs
from .token_counter import counter_html, layout_token_counter
from .widgets import number_box, widget
from .workflow_box import layout_workflow_box, wire_workflow_box

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 100
PROMPT_FILE_CHARS = 256 * 1024  # a text file of prompts opened into the list box
STYLES_ADMINS_ONLY = "Only an admin login (--admin) can save or delete styles on this server: they are everyone's."
OUTPUTS_LIMIT = 60
OUTPUTS_PAGE_SIZE = 24
VARY_SUBTLE, VARY_STRONG = 0.5, 0.85  # Fooocus's Vary (subtle) and Vary (strong): the denoising strength they redraw at
GENERATE_CONCURRENCY = "generate"
COMPLETED = "completed"  # set in a job's args when it ran to its end (not stopped, not failed)
STARTING_AT = "starting_at"  # set in a job's args when it joined an idle queue: its Generate said "Starting…"
FOREVER_CLICK_S = 10.0  # Generate forever's ask for a Generate is answered by the page's click within this


@dataclass
class ImageTab:
    """The components other parts of the app touch (the badge timer refreshes the model list)."""

    model: gr.Dropdown
    hires_checkpoint: gr.Dropdown  # the models too, after "Use same checkpoint"
    lora: gr.Dropdown
    vae: gr.Dropdown
    upscalers: tuple[gr.Dropdown, gr.Dropdown]  # the picked image's Upscaler and the Hires upscaler
    controlnet: gr.Dropdown
    style: gr.Dropdown
    user_workflow: gr.Dropdown  # "none", then the workflows folder's files
    generate_event: Any
    forget_session: Callable[..., None]  # for demo.unload: a closed tab's waiting jobs go


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def _number(value: Any) -> Any:
    """Whole floats become ints (gr.Number may hand over 64.0); other values pass through for validation."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _size_field(value: Any) -> Any:
    """A width or height box's value for the engine: an empty box stays empty (the engine says what to enter;
    None would mean "the default size")."""
    return "" if value is None else _number(value)


def _page_number(value: Any) -> int:
    """A page number from a State (1 when it is not a whole number)."""
    value = _number(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _caption(entry: dict[str, Any]) -> str:
    caption = f"seed {entry.get('seed')} · {entry.get('model') or ''} · {entry.get('backend') or ''}".strip(" ·")
    return f"X/Y/Z plot · {caption}" if entry.get("plot") else caption


def gallery_items(history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(entry["path"], _caption(entry)) for entry in history]


def history_entry(result: dict[str, Any]) -> dict[str, Any]:
    """What the session keeps of a result: where it is saved and how it was made (no image in memory)."""
    keys = ("path", "seed", "prompt", "negative_prompt", "model", "model_id", "backend", "server", "width",
            "height", "num_inference_steps", "guidance_scale", "sampler", "fallback_reason", "plot")
    return {k: result.get(k) for k in keys}


def plot_text(plot: dict[str, Any]) -> str:
    """An X/Y/Z plot's axes in a line: "X: Steps 2,3 · Y: Seed 1, 2"."""
    return " · ".join(f"**{axis}:** {plot[f'{axis.lower()}_type']} {plot.get(f'{axis.lower()}_values') or ''}".strip()
                      for axis in "XYZ" if plot.get(f"{axis.lower()}_type"))


def details_markdown(result: dict[str, Any]) -> str:
    if result.get("plot"):  # the grid: its axes and cells; each cell's own details are on its image
        return "\n\n".join([f"**X/Y/Z plot** of {len(result.get('batch') or [])} images · {plot_text(result['plot'])}",
                             f"Each cell is also saved on its own with its parameters. Grid saved to "
                             f"`{result.get('path')}`", *(f"Warning: {w}" for w in result.get("warnings") or [])])
    lines = [
        f"**Seed** `{result.get('seed')}` · **Model** {result.get('model')} (`{result.get('model_id')}`) · "
        f"**Backend** {result.get('backend')}" + (f" on `{result.get('server')}`" if result.get("server") else ""),
        f"**Size** {result.get('width')}×{result.get('height')} · **Steps** {result.get('num_inference_steps')} · "
        f"**Guidance** {result.get('guidance_scale')} · **Sampler** {result.get('sampler')}",
        f"Saved to `{result.get('path')}`",
    ]
    extras = setting_notes(result)
    if extras:
        lines.insert(2, " · ".join(extras))
    lines[2:2] = template_lines(result)
    if result.get("fallback_reason"):
        lines.append(f"Warning: fell back to {result.get('backend')}: {result['fallback_reason']}")
    for warning in result.get("warnings") or []:
        lines.append(f"Warning: {warning}")
    return "\n\n".join(lines)


def is_video(path: str | Path) -> bool:
    return str(path).lower().endswith(VIDEO_SUFFIXES)


def file_caption(path: str | Path) -> str:
    """A saved file's caption in the outputs gallery: the seed (else the name), date and start of the prompt of an
    image; "video", date and name of a video."""
    path = Path(path)
    try:
        when = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    except OSError:
        when = ""
    if is_video(path):
        return " · ".join(part for part in ("video", when, path.stem) if part)
    try:
        params = read_parameters(path)
    except Exception:  # a foreign or broken file still gets a caption
        params = {}
    prompt = str(params.get("prompt") or "")
    prompt = prompt if len(prompt) <= 30 else prompt[:29] + "..."
    seed = f"seed {params['seed']}" if params.get("seed") is not None else path.stem
    return " · ".join(part for part in (seed, when, prompt) if part)  # the seed first: small thumbnails cut the rest


def parameters_text(params: dict[str, Any]) -> str:
    """How a picked image was made, as text: prompt, seed, size, steps, guidance, sampler, model, backend, and the
    LoRAs, VAE, Clip skip, hires fix, upscale, ControlNet, workflow or plot it had."""
    if not params:
        return "No generation parameters are saved with this file."
    lines = [f"**Prompt** {params.get('prompt') or '(none)'}"]
    if params.get("negative_prompt"):
        lines.append(f"**Negative prompt** {params['negative_prompt']}")
    lines += template_lines(params)
    lines.append(f"**Seed** {params.get('seed')} · **Size** {params.get('width')}x{params.get('height')} · "
                 f"**Steps** {params.get('num_inference_steps')} · **Guidance** {params.get('guidance_scale')} · "
                 f"**Sampler** {params.get('sampler')}")
    lines.append(f"**Model** {params.get('model') or params.get('model_id')} · **Backend** {params.get('backend')}")
    lines += setting_notes(params)
    if params.get("plot"):
        lines.append(f"**X/Y/Z plot** {plot_text(params['plot'])} (the values above are its first cell's)")
    return "\n\n".join(lines)


def setting_notes(params: dict[str, Any]) -> list[str]:
    """The settings an image was made with beyond its prompt, seed, size, steps, guidance, sampler and model, one note
    each ("**FreeU** on", "**Hires fix** ×2 with Lanczos"): what a result's details and a picked image's parameters
    both show, from a result or from a PNG's parameters. A hires image's size is its first pass's, as A1111 records
    it; an upscaled copy's the size it was made at."""
    notes = [f"**LoRAs** {lora_text(params['loras'])}"] if params.get("loras") else []
    notes += [f"**VAE** {params['vae']}"] if params.get("vae") else []
    notes += [f"**Denoising strength** {params['strength']:g}"] if params.get("strength") is not None else []
    notes += [f"**Clip skip** {params[P.CLIP_SKIP.name]}"] if params.get(P.CLIP_SKIP.name) else []
    notes += [f"**Variation** {variation_text(params)}"] if params.get(P.VARIATION_STRENGTH.name) else []
    notes += ["**FreeU** on"] if params.get(P.FREEU.name) else []
    notes += ["**Tiling** on"] if params.get(P.TILING.name) else []
    notes += [f"**CFG rescale** {params[P.CFG_RESCALE.name]:g}"] if params.get(P.CFG_RESCALE.name) else []
    resize = [params.get(param.name) or 0 for param in (P.HIRES_RESIZE_WIDTH, P.HIRES_RESIZE_HEIGHT)]
    if params.get(P.HIRES_SCALE.name) or any(resize):
        size = f"to {resize[0] or 'auto'}×{resize[1] or 'auto'}" if any(resize) else f"×{params[P.HIRES_SCALE.name]:g}"
        notes.append(f"**Hires fix** {size} with {params.get(P.HIRES_UPSCALER.name)}"
                     + (f", sampler {params[P.HIRES_SAMPLER.name]}" if params.get(P.HIRES_SAMPLER.name) else "")
                     + (f", checkpoint {params[P.HIRES_CHECKPOINT.name]}" if params.get(P.HIRES_CHECKPOINT.name)
                        else ""))
        notes += [f"**{param.label}** {params[param.name]}" for param in (P.HIRES_PROMPT, P.HIRES_NEGATIVE_PROMPT)
                  if params.get(param.name)]
    if params.get(P.UPSCALE_BY.name):
        notes.append(f"**Upscaled** ×{params[P.UPSCALE_BY.name]:g} with {params.get(P.UPSCALER.name)}")
    notes += [f"**ControlNet** {controlnet_text(params)}"] if params.get("controlnet") else []
    notes += [f"**ComfyUI workflow** {params[P.USER_WORKFLOW.name]}"] if params.get(P.USER_WORKFLOW.name) else []
    return notes


def variation_text(params: dict[str, Any]) -> str:
    """"seed 9 at 0.3": a variation seed and its strength."""
    return f"seed {params.get(P.VARIATION_SEED.name)} at {params[P.VARIATION_STRENGTH.name]:g}"


def template_lines(params: dict[str, Any]) -> list[str]:
    """The prompts as written, where wildcards were filled in (as code: `__color__` is not markdown's bold)."""
    return [f"**{param.label}** `{params[param.name]}`" for param in (P.PROMPT_TEMPLATE, P.NEGATIVE_TEMPLATE)
            if params.get(param.name)]


def controlnet_text(params: dict[str, Any]) -> str:
    """A result's ControlNet in words: "tinyCanny (canny, weight 0.8, steps 0 to 1)"."""
    numbers = [params.get(P.CONTROLNET_WEIGHT.name), params.get(P.CONTROLNET_START.name),
               params.get(P.CONTROLNET_END.name)]
    weight, start, end = (f"{n:g}" if isinstance(n, (int, float)) else "?" for n in numbers)
    return f"{params['controlnet']} ({params.get(P.CONTROLNET_MODULE.name)}, weight {weight}, steps {start} to {end})"


def lora_text(loras: list[dict[str, Any]]) -> str:
    return ", ".join(f"{entry.get('name')} ({entry.get('weight'):g})" for entry in loras)


SOURCES = {"gator": "this app's parameters", "a1111": "the A1111 parameters text",
           "comfyui workflow": "the ComfyUI workflow (its first sampler)"}


# The form's values a job keeps, in the order Generate and Plot send them (after Plot's axes).
FORM_INPUTS = ("prompt", "negative", "style", "model", "backend", "width", "height", "steps", "guidance", "seed",
               "sampler", "batch", "clip_skip", "variation_seed", "variation_strength", "freeu", "cfg_rescale", "tiling",
               "vae", "init_image",
               "strength",
               "resize_mode", "init_size",
               *HIRES_INPUTS, *INPAINT_INPUTS, *CONTROLNET_INPUTS, "user_workflow")


def job_args(values: dict[str, Any]) -> dict[str, Any]:
    """A queued job's settings from the form's values by name: the hires fix's, the inpaint box's and the ControlNet
    box's grouped."""
    args = {name: values.get(name) for name in FORM_INPUTS[:FORM_INPUTS.index("hires_scale")]}
    args["user_workflow"] = values.get("user_workflow") or P.NO_WORKFLOW
    args["init_image"] = args["init_image"] or None
    args["hires"] = {name: values.get(name) if name in HIRES_CHOICES else _number(values.get(name))
                     for name in HIRES_INPUTS}
    args["inpaint"] = {name: values.get(name) for name in INPAINT_INPUTS}
    args["controlnet"] = {name: values.get(name) if name in ("control_image", "controlnet", "controlnet_module")
                          else _number(values.get(name)) for name in CONTROLNET_INPUTS}
    return args


class ImageTabHandlers:
    """The tab's event handlers, bound to one engine manager and the app's jobs."""

    def __init__(self, manager: AIModelManager, jobs: Jobs) -> None:
        self.manager = manager
        self.jobs = jobs
        self.queue = JobQueue(jobs.limits.waiting_per_session)
        self._stopped_at: dict[str, float] = {}  # when each session last pressed Stop (time.monotonic)
        self._forever: set[str] = set()  # the sessions with Generate forever on
        self._asked_again: dict[str, float] = {}  # when Generate forever last asked a session's page for a Generate
        self.histories = SessionHistories(HISTORY_LIMIT)

    # -- generate ------------------------------------------------------------------------------
    def add_job(self, prompt: str, negative: str, style: str, model: str, backend: str, width: Any, height: Any,
                steps: Any, guidance: Any, seed: Any, sampler: str, batch: Any, clip_skip: Any,
                variation_seed: Any, variation_strength: Any, freeu: bool, cfg_rescale: Any, tiling: bool, vae: str,
                init_image: str | None,
                strength: Any, resize_mode: str, init_size: bool, hires_scale: Any, hires_strength: Any,
                hires_steps: Any, hires_upscaler: str, hires_sampler: str, hires_prompt: str,
                hires_negative_prompt: str, hires_checkpoint: str, hires_resize_width: Any, hires_resize_height: Any,
                mask_editor: Any, inpaint_strength: Any, mask_blur: Any,
                masked_content: str, inpaint_area: str, only_masked_padding: Any, outpaint_left: Any,
                outpaint_right: Any, outpaint_up: Any, outpaint_down: Any, control_image: str | None, controlnet: str,
                controlnet_module: str, controlnet_weight: Any, controlnet_start: Any, controlnet_end: Any,
                canny_low: Any, canny_high: Any, user_workflow: str, request: gr.Request = None):
        """Generate: the form's values join this session's queue; the runner started after it takes them (with
        an init image, image to image). Generate forever's click that a Stop overtook adds nothing."""
        session = _session(request) or ""
        if self._overtaken_by_stop(session):
            return gr.skip(), *self.panel.refresh(self.queue.waiting(session))
        return self._enqueue(job_args(locals()), request)  # job_args reads the form's names only

    def _overtaken_by_stop(self, session: str) -> bool:
        """Whether this Generate is the one Generate forever asked the page for, with Stop pressed after the ask
        (the click was on its way: without this, one more image came after Stop)."""
        asked = self._asked_again.pop(session, None)
        if asked is None or time.monotonic() - asked > FOREVER_CLICK_S:
            return False
        return self._stopped_after(session, asked)

    def _stopped_after(self, session: str, moment: float) -> bool:
        """Whether this session pressed Stop after `moment` (time.monotonic)."""
        return self._stopped_at.get(session, 0.0) > moment

    def add_plot(self, request: gr.Request, x_type: str, x_values: str, y_type: str, y_values: str, z_type: str,
                 z_values: str, *form: Any):
        """Plot: a job like Generate's (the form's values in FORM_INPUTS' order) that makes the X/Y/Z plot."""
        args = job_args(dict(zip(FORM_INPUTS, form)))
        args["plot"] = dict(x_type=x_type, x_values=x_values or "", y_type=y_type, y_values=y_values or "",
                            z_type=z_type, z_values=z_values or "")
        return self._enqueue(args, request)

    def add_list(self, request: gr.Request, prompts: str, position: str, iterate_seed: bool, same_seed: bool,
                 *form: Any):
        """Generate from the list: a job like Generate's (the form's values in FORM_INPUTS' order) that makes an
        image per line of the prompt list."""
        args = job_args(dict(zip(FORM_INPUTS, form)))
        args["prompt_list"] = dict(prompts=prompts or "", position=position or LIST_END,
                                   iterate_seed=bool(iterate_seed), same_seed=bool(same_seed))
        return self._enqueue(args, request)

    @staticmethod
    def open_prompt_list(path: str | None):
        """A text file of prompts into the list box (a line each), or a sentence when it is not one."""
        if not path:
            return gr.skip(), gr.skip()
        try:
            with open(path, encoding="utf-8-sig") as file:
                text = file.read(PROMPT_FILE_CHARS + 1)
        except (OSError, UnicodeDecodeError):
            return gr.skip(), "That file could not be read as text: use a .txt file with a prompt per line."
        if len(text) > PROMPT_FILE_CHARS:
            return gr.skip(), f"That file is longer than {PROMPT_FILE_CHARS:,} characters: split it."
        return text, f"{len([line for line in text.splitlines() if line.strip()])} prompts read from the file."

    def _enqueue(self, args: dict[str, Any], request: gr.Request | None):
        """A job into this session's queue; the progress line and the queue list after it."""
        session = _session(request) or ""
        try:  # first in line, a Stop from now on is for this job (behind others, for the one running)
            ahead = self.queue.add(session, args, when_first={STARTING_AT: time.monotonic()})
        except QueueFull as err:
            return gr.skip(), *self.panel.refresh(self.queue.waiting(session), f"Not added: {err}")
        if ahead == 0:  # nothing runs: the runner starts it now
            return "Starting…", *self.panel.refresh(self.queue.waiting(session))
        note = f"Added with {ahead} job{'s' if ahead != 1 else ''} ahead of it."
        return gr.skip(), *self.panel.refresh(self.queue.waiting(session), note)

    async def run_queue(self, history: list[dict[str, Any]] | None, tick: Any, forever_tick: Any = 0,
                        request: gr.Request = None):
        """Run this session's waiting jobs one after another (another runner already doing so: return)."""
        session = _session(request) or ""
        if not self.queue.claim(session):
            return
        history, tick = list(history or []), int(tick or 0)
        done = False
        again = False
        try:
            while (job := self.queue.next(session)) is not None:
                tick += 1
                yield {self.components["queue_tick"]: tick}  # the queue list drops the job now running
                async for update in self._run_job(job.args, history, request):
                    yield update
                again = bool(job.args.get(COMPLETED)) and not job.args.get("plot") and not job.args.get("prompt_list")
            done = True
            if again and session in self._forever:  # the browser clicks Generate: the form as it is now
                self._asked_again[session] = time.monotonic()
                yield {self.components["forever_tick"]: int(forever_tick or 0) + 1}
        finally:
            if not done:  # the client left or the runner failed: nothing is left to take the waiting jobs
                self.queue.release(session)
                self.queue.clear(session)

    async def _run_job(self, args: dict[str, Any], history: list[dict[str, Any]], request: gr.Request | None):
        """Stream one job: previews and a progress line per step, then each final image into `history`."""
        c = self.components
        yield {c["finished"]: None}
        batch, plot, listed = args["batch"], args.get("plot"), args.get("prompt_list")
        count = _number(batch) if batch not in (None, "") else 1
        count = count if isinstance(count, int) and not plot and not listed else 1  # a plot, a list: labelled apart
        try:  # a plot's styles go on in each cell, after the cell's Prompt S/R
            styled, negative_styled = (args["prompt"] or "", args["negative"] or "") if plot else \
                self.manager.styled(args["style"], args["prompt"] or "", args["negative"] or "")
            hires = hires_args(args)  # its own prompts styled too (where given), a plot's as well
            hires.update(zip((P.HIRES_PROMPT.name, P.HIRES_NEGATIVE_PROMPT.name), self.manager.styled_hires(
                args["style"], hires.get(P.HIRES_PROMPT.name, ""), hires.get(P.HIRES_NEGATIVE_PROMPT.name, ""))))
            async with self.jobs.job(request, IMAGE_JOB) as cancel:
                if self._stopped_after(_session(request) or "", args.get(STARTING_AT, float("inf"))):
                    cancel.set()  # Stop pressed after its Generate, before the runner took it up: it stops at once
                skip = self.jobs.skip_switch(cancel)
                index, last_path = 0, None  # the run's last finished image, shown again after a Stop
                presenter = Presenter(label=batch_label(index, count))
                inpainting = inpaint_args(args["inpaint"])  # the inpaint box's picture first, then image to image
                image_input = inpainting or image_to_image_args(args)
                keep_size = bool(inpainting) or (bool(image_input) and args["init_size"])
                image_args = dict(
                    negative_prompt=negative_styled, width=None if keep_size else _size_field(args["width"]),
                    height=None if keep_size else _size_field(args["height"]),
                    num_inference_steps=_number(args["steps"]),
                    guidance_scale=float(args["guidance"]) if args["guidance"] is not None else None,
                    seed=P.seed_input(args["seed"]), model=args["model"] or AUTO, backend=args["backend"] or AUTO,
                    sampler=args["sampler"] or P.SAMPLER.default, vae=args["vae"] or AUTO, cancel=cancel, skip=skip,
                    clip_skip=P.CLIP_SKIP.default if args.get("clip_skip") is None else _number(args["clip_skip"]),
                    variation_seed=P.seed_input(args.get("variation_seed")),
                    variation_strength=args.get("variation_strength") or P.VARIATION_STRENGTH.default,
                    freeu=bool(args.get("freeu")), cfg_rescale=float(args.get("cfg_rescale") or 0),
                    tiling=bool(args.get("tiling")),
                    user_workflow=args.get("user_workflow") or P.NO_WORKFLOW,
                    **image_input, **controlnet_args(args["controlnet"]),
                    **({} if image_input else hires),
                    owner=getattr(request, "username", None))  # with --auth, saved under the login
                if plot:
                    events = self.manager.stream_xyz_plot(styled, **plot, **image_args, style=args["style"])
                elif listed:  # each line styled by the engine, after its own options
                    events = self.manager.stream_prompt_list(
                        listed["prompts"], args["prompt"] or "", position=listed["position"],
                        iterate_seed=listed["iterate_seed"], same_seed=listed["same_seed"], style=args["style"],
                        batch_count=_number(batch) if batch not in (None, "") else 1,
                        **{**image_args, "negative_prompt": args["negative"] or ""})
                else:
                    events = self.manager.stream_image(styled, batch_count=count, **image_args)
                async for event in events:
                    line = presenter.line(event)
                    if isinstance(event, Done):
                        result = event.result
                        history[:] = self.histories.add(_session(request) or "", history_entry(result), history)
                        more = index + 1 < count  # another image of the batch follows
                        finished = {"line": None if more else line, "details": details_markdown(result),
                                    "path": result["path"], "at": time.monotonic()}
                        # the final image now; its details, gallery and download (and the last image's Done
                        # line) follow when `finished` changes (outputs left out of the step stream keep each step
                        # cheap). An image with another after it has its Done line in the stream: coming later,
                        # it could follow the next image's first line
                        update = {c["image"]: result["path"], c["history"]: list(history),
                                  c["last_seed"]: result.get("seed"), c["finished"]: finished}
                        yield {**update, c["progress"]: line} if more else update
                        index, last_path = index + 1, result["path"]
                        presenter = Presenter(label=batch_label(index, count))
                    elif isinstance(event, Skipped):  # the next image (or cell) follows; no noisy preview stays
                        yield {c["progress"]: line, c["image"]: last_path}
                        index += 1
                        presenter = Presenter(label=batch_label(index, count))
                    elif isinstance(event, Failed):  # no noisy preview stays: the last finished image, or none
                        yield {c["progress"]: line, c["finished"]: None, c["image"]: last_path}
                        if not is_stopped(event):
                            gr.Warning(event.error)
                        return
                    elif not cancel.is_set():  # after Stop, no late step line hides "Stopped"
                        update: dict[Any, Any] = {}
                        if line:
                            update[c["progress"]] = line
                        if isinstance(event, Progress) and event.preview is not None:
                            update[c["image"]] = display_preview(event.preview)
                        if update:
                            yield update
                if cancel.is_set():
                    yield {c["progress"]: STOPPED, c["image"]: last_path}
                else:
                    args[COMPLETED] = True
        except (TooManyJobs, InvalidRequest) as err:  # too many jobs, a style file gone since the page loaded
            gr.Warning(str(err))
            yield {c["progress"]: failure_line(str(err))}
        except asyncio.CancelledError:
            raise
        except Exception as err:  # never a traceback in the browser
            logger.exception("Image generation failed in the UI")
            message = unexpected_failure(err)
            gr.Warning(message)
            yield {c["progress"]: failure_line(message)}

    def show_queue(self, request: gr.Request = None):
        """The queue list as it is now."""
        return self.panel.refresh(self.queue.waiting(_session(request) or ""))

    def cancel_waiting(self, place: int):
        """The Cancel of row `place` (0-based): removes the job that row showed."""
        def cancel(shown_ids: list[int] | None, request: gr.Request = None):
            session = _session(request) or ""
            ids = list(shown_ids or [])
            removed = place < len(ids) and self.queue.cancel(session, ids[place])
            note = "One job removed." if removed else "That job already started; Stop stops it."
            return self.panel.refresh(self.queue.waiting(session), note)
        return cancel

    def clear_queue(self, request: gr.Request = None):
        """Remove every waiting job (the running one goes on; Stop stops it)."""
        session = _session(request) or ""
        self.queue.clear(session)
        return self.panel.refresh(self.queue.waiting(session))

    def forget_session(self, request: gr.Request = None) -> None:
        """The tab was closed: its waiting jobs go (a running one is cancelled when its stream drops)."""
        self.queue.clear(_session(request) or "")
        self._stopped_at.pop(_session(request) or "", None)
        self._asked_again.pop(_session(request) or "", None)
        self.histories.forget(_session(request) or "")

    def show_finished(self, finished: dict[str, Any] | None, history: list[dict[str, Any]] | None,
                      request: gr.Request = None):
        """After each finished image: its Done line, details, gallery and download. The line is left alone when
        Stop was pressed after the image was done (this update can arrive after the run's "Stopped" on a busy
        machine, and must not replace it), and when another image of the batch followed (the stream had it)."""
        if not finished:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        stopped_since = self._stopped_after(_session(request) or "", finished.get("at", 0.0))
        return (gr.skip() if stopped_since or finished["line"] is None else finished["line"], finished["details"],
                gallery_items(list(history or [])), gr.update(value=finished["path"], visible=True))

    async def stop(self, history: list[dict[str, Any]] | None, request: gr.Request = None):
        """Ask this session's running job to stop and show the images it finished (waiting jobs go on; Clear
        queue removes them).

        The engine stops within a step; the run's own stream then writes "Stopped" after its last step
        line (this handler writes no progress line: its answer and the stream's may arrive in any order).
        """
        self._stopped_at[_session(request) or ""] = time.monotonic()
        self._forever.discard(_session(request) or "")
        self.jobs.cancel(_session(request), IMAGE_JOB)
        return None, gallery_items(list(history or [])), False

    def skip(self, request: gr.Request = None) -> None:
        """Skip the image being made (A1111's Skip): it ends unsaved and the batch or plot goes on with the next;
        the run's own stream writes the line."""
        self.jobs.skip(_session(request), IMAGE_JOB)

    def save_style(self, name: str, prompt: str, negative: str, selected: list[str] | None = None,
                   request: gr.Request = None):
        """Save as style: the prompt and negative prompt become the style `name`, offered in the Styles box at once."""
        return self._change_styles(lambda: self.manager.save_style(name, prompt or "", negative or ""), selected,
                                   request)

    def delete_style(self, name: str, selected: list[str] | None = None, request: gr.Request = None):
        """Delete style: the style `name` leaves the styles folder's styles.csv, the Styles box's choices and what
        is selected there."""
        return self._change_styles(lambda: self.manager.delete_style(name), selected, request)

    def _change_styles(self, change: Callable[[], str], selected: list[str] | None, request: gr.Request | None):
        """`change` the styles (with logins only an admin may: they are everyone's); its sentence, and the Styles
        box's choices as they are now, with `selected` less any style gone (a value not among the choices made
        every Generate fail)."""
        if not_an_admin(getattr(request, "username", None), self.manager.admins):
            return STYLES_ADMINS_ONLY, gr.skip()
        try:
            note = change()
        except GatorError as err:
            return str(err), gr.skip()
        choices = self.manager.available_styles()[1:]
        return note, gr.update(choices=choices, value=[name for name in selected or [] if name in choices])

    def set_forever(self, on: bool, request: gr.Request = None) -> None:
        """Generate forever on or off for this session (Stop turns it off)."""
        session = _session(request) or ""
        if on:
            self._forever.add(session)
        else:
            self._forever.discard(session)

    # -- settings helpers ----------------------------------------------------------------------
    def count_tokens(self, negative: bool, hires: bool = False) -> Callable[[str, Any, Any], str]:
        """The token counter of a prompt box (`negative`: a negative prompt's; `hires`: the hires pass's own): its
        markup for the text."""
        def count(text: str, steps: Any, style: Any) -> str:
            return counter_html(self.manager.prompt_tokens(text, steps, style, negative=negative, hires=hires))
        return count

    def on_model(self, model: str):
        d = self.manager.model_defaults(model)
        return d[P.STEPS.name], d[P.GUIDANCE.name]

    @staticmethod
    def on_aspect(aspect: str, width: Any, height: Any):
        size = size_for_aspect(aspect, width, height)
        if size is None:
            return gr.skip(), gr.skip()
        return size

    @staticmethod
    def on_quality(quality: str, guidance: Any):
        preset = quality_presets().get(quality)
        if not preset:
            return gr.skip(), gr.skip()
        return preset["steps"], preset["guidance"] if preset.get("guidance") is not None else gr.skip()

    @staticmethod
    def reuse_seed(last_seed: Any):
        """The last image's seed into the seed box; before any image, the progress line says why not."""
        if last_seed is None:
            return gr.skip(), "No image yet in this session: the seed stays as it is."
        return last_seed, f"Seed {last_seed} of the last image is set."

    # -- history -------------------------------------------------------------------------------
    def show_picked(self, path: str, info: str, entry: dict[str, Any] | None = None) -> dict[Any, Any]:
        """The picked file shown large with its parameters, download and delete actions."""
        c = self.components
        video = is_video(path)
        params: dict[str, Any] = {}
        if not video:
            try:
                params = read_parameters(path)
            except Exception as err:  # an unreadable file: show what the session knows
                logger.warning("Could not read the parameters of %s: %s", path, err)
        params = {**(entry or {}), **{k: v for k, v in params.items() if v is not None}}
        text = f"Video `{Path(path).name}`" if video else parameters_text(params)
        return {c["picked"]: path, c["picked_info"]: info, c["picked_view"]: gr.update(visible=True),
                c["picked_image"]: gr.update(value=None if video else path, visible=not video),
                c["picked_video"]: gr.update(value=path if video else None, visible=video),
                c["picked_params"]: text, c["picked_download"]: gr.update(value=path),
                c["confirm_delete"]: gr.update(visible=False)}

    def pick(self, history: list[dict[str, Any]] | None, evt: gr.SelectData):
        """A thumbnail of this session's history: shown large with its parameters."""
        history = history or []
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(history):
            return {self.components["picked_info"]: "Nothing picked."}
        entry = history[index]
        return self.show_picked(entry["path"], f"Picked: seed `{entry.get('seed')}` · "
                                               f"{(entry.get('prompt') or '')[:80]}", entry)

    def pick_saved(self, saved: list[str] | None, evt: gr.SelectData):
        """A thumbnail of the outputs folder: shown large with its parameters."""
        saved = saved or []
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(saved):
            return {self.components["picked_info"]: "Nothing picked."}
        return self.show_picked(saved[index], f"Picked: `{Path(saved[index]).name}`")

    def ask_delete(self, picked: str | None):
        """The first click on Delete: ask for a second one."""
        c = self.components
        if not picked:
            return {c["picked_info"]: "Pick an image first, then delete it."}
        return {c["confirm_delete"]: gr.update(visible=True),
                c["picked_info"]: f"Delete {Path(picked).name} from disk? Click Confirm delete to delete it."}

    async def delete(self, picked: str | None, history: list[dict[str, Any]] | None, page: Any,
                     request: gr.Request = None):
        """The second click: the engine deletes the file (only a saved file inside the outputs folder); it leaves
        both galleries."""
        c = self.components
        if not picked:
            return {c["picked_info"]: "Pick an image first, then delete it.",
                    c["confirm_delete"]: gr.update(visible=False)}
        name = Path(picked).name
        try:
            await asyncio.to_thread(self.manager.delete_output, picked, getattr(request, "username", None))
        except DeleteRefused as err:
            return {c["picked_info"]: str(err), c["confirm_delete"]: gr.update(visible=False)}
        history = self.histories.remove(_session(request) or "", picked, history)
        update: dict[Any, Any] = {
            c["history"]: history, c["gallery"]: gallery_items(history), c["picked"]: None,
            c["picked_view"]: gr.update(visible=False), c["picked_image"]: None, c["picked_video"]: None,
            c["confirm_delete"]: gr.update(visible=False), c["picked_info"]: f"Deleted {name}."}
        if "saved_gallery" in c:
            items, paths, number, text = await asyncio.to_thread(self._outputs_page, page, request)
            update.update({c["saved_gallery"]: items, c["saved"]: paths, c["saved_page"]: number,
                           c["page_info"]: text})
        return update

    def reuse(self, picked: str | None):
        """Fill the settings from a picked image's saved parameters; the line under the history says what
        happened (a handler outside the queue cannot show pop-up messages)."""
        c = self.components
        if not picked:
            return {c["picked_info"]: "Pick an image in the history (or the outputs folder) first, then reuse its "
                                      "parameters."}
        return self._fill_form(picked, c["picked_info"])

    def send_png_info(self, dropped: str | None):
        """PNG info's Send to Image: the dropped PNG's parameters (ours, A1111's or ComfyUI's) into the form."""
        c = self.components
        if not dropped:
            return {c["png_info_text"]: "Drop a PNG above first."}
        return self._fill_form(dropped, c["png_info_text"])

    def preview_control_map(self, path: str | None, module: str, low: Any, high: Any):
        """The control image as its preprocessor turns it into a map (none shown without an image)."""
        return control_map_preview(path, module, low, high, self.manager.limits)

    def show_png_info(self, dropped: str | None):
        """What a dropped PNG says about how it was made."""
        if not dropped:
            return "Drop a PNG made by this app, AUTOMATIC1111, Forge or ComfyUI to read its parameters."
        try:
            params = png_info(dropped)
        except InvalidRequest as err:
            return str(err)
        if not params:
            return f"{Path(dropped).name} carries no generation parameters."
        return f"*Read from {SOURCES[params['source']]}.*\n\n" + parameters_text(params)

    def _fill_form(self, path: str, note: Any) -> dict[Any, Any]:
        """The form filled from `path`'s parameters, and a sentence in `note` saying what happened."""
        c = self.components
        name = Path(path).name
        try:
            params = png_info(path)
        except Exception as err:  # an unreadable or foreign file: say so, keep the settings
            logger.warning("Could not read the parameters of %s: %s", path, err)
            return {note: f"Could not read the parameters of {name}."}
        if not params:
            return {note: f"{name} carries no generation parameters."}
        update: dict[Any, Any] = {c["style"]: [], c["aspect"]: CUSTOM_SIZE,  # what an image records
                                  c["clip_skip"]: P.CLIP_SKIP.default,  # none of, it used none of
                                  c["variation_strength"]: P.VARIATION_STRENGTH.default, c["freeu"]: P.FREEU.default,
                                  c["cfg_rescale"]: P.CFG_RESCALE.default, c["tiling"]: P.TILING.default}
        for param, component in self.param_components.items():
            if params.get(param) is not None:
                update[component] = params[param]
        for text, template in ((P.PROMPT, P.PROMPT_TEMPLATE), (P.NEGATIVE_PROMPT, P.NEGATIVE_TEMPLATE)):
            if params.get(template.name) and params.get(text.name):  # filled in: its braces were the text's own
                params[text.name] = escaped(params[text.name])
                update[self.param_components[text.name]] = params[text.name]
        update[c["vae"]] = params.get("vae") or AUTO
        update[c["controlnet"]] = params.get(P.CONTROLNET.name) or P.NO_CONTROLNET
        for key in CONTROLNET_INPUTS[2:]:  # the control image itself is not in the PNG: the box opens for it
            if params.get(key) is not None:
                update[c[key]] = params[key]
        if params.get(P.CONTROLNET.name):
            update[c["controlnet_box"]] = gr.update(open=True)
        if params.get(P.VARIATION_STRENGTH.name):
            update[c["variation_box"]] = gr.update(open=True)
        if params.get("loras"):  # back into the prompt as the tags they were
            update[c["prompt"]] = with_lora_tags(params.get("prompt") or "", params["loras"])
        model_id = params.get("model_id") or params.get("model")
        found = ""
        if model_id and not self.manager.knows_model(str(model_id)):  # another name here? A1111 looks by hash
            same = self.manager.model_with_hash(params.get(P.MODEL_HASH.name))
            if same:
                found, model_id = f"; its model {model_id} is here as {same} (the same Model hash)", same
        if model_id:
            update[c["model"]] = model_id
        upscalers = self.manager.available_upscalers()
        hires = saved_hires(params, upscalers)  # off again for an image without one
        update.update({c[key]: value for key, value in hires.items()})
        checkpoint = hires[P.HIRES_CHECKPOINT.name]
        if checkpoint != P.SAME_CHECKPOINT and not self.manager.knows_model(str(checkpoint)):
            update[c["hires_checkpoint"]] = P.SAME_CHECKPOINT
            found += f"; its hires checkpoint {checkpoint} is not here: {P.SAME_CHECKPOINT} instead"
        asked = params.get(P.HIRES_UPSCALER.name)
        hires_on = hires_wanted(*(hires[param.name] for param in (P.HIRES_SCALE, P.HIRES_RESIZE_WIDTH,
                                                                  P.HIRES_RESIZE_HEIGHT)))
        unknown = hires_on and bool(asked) and upscaler_named(asked, upscalers) is None
        if hires_on:
            update[c["hires_box"]] = gr.update(open=True)
        plot = saved_plot(params)
        if plot:  # a grid: its axes back into the X/Y/Z box, for Plot
            update.update({c[key]: value for key, value in plot.items()})
            update[c["xyz_box"]] = gr.update(open=True)
        missing = self._reuse_workflow(params.get(P.USER_WORKFLOW.name), update)
        missing += self._reuse_choices(params, update)
        if unknown:
            missing += f"; its hires upscaler {asked} is not here: {hires[P.HIRES_UPSCALER.name]} instead"
        update[note] = f"Parameters of {name} loaded into the settings{found}{missing}."
        return update

    def _reuse_choices(self, params: dict[str, Any], update: dict[Any, Any]) -> str:
        """The image's sampler, VAE and ControlNet preprocessor back only where this app has them (a value a
        dropdown lacks would leave the form unable to generate): the default for each other, and the end of the
        sentence saying so."""
        c = self.components
        lacking = ""
        vae = self.manager.vae_named(params.get(P.VAE.name))
        if vae:  # listed by the name this app gives it (A1111 writes the file's)
            update[c["vae"]] = vae
        for param, component, known, default in (
                (P.SAMPLER, "sampler", sampler_problem(params.get(P.SAMPLER.name)) is None, P.SAMPLER.default),
                (P.VAE, "vae", vae is not None, AUTO),
                (P.CONTROLNET_MODULE, "controlnet_module", params.get(P.CONTROLNET_MODULE.name) in MODULES,
                 P.CONTROLNET_MODULE.default)):
            value = params.get(param.name)
            if value and value != default and not known:
                update[c[component]] = default
                lacking += f"; its {param.label.lower()} {value} is not here: {default} instead"
        return lacking

    def _reuse_workflow(self, workflow: Any, update: dict[Any, Any]) -> str:
        """The image's own ComfyUI workflow back into the workflow box (none for an image made without one); the
        end of the sentence when its file is not in the workflows folder."""
        c = self.components
        if not workflow or workflow == P.NO_WORKFLOW:
            update[c["user_workflow"]] = P.NO_WORKFLOW
            return ""
        if workflow in self.manager.available_workflows():
            update[c["user_workflow"]] = workflow
            update[c["workflow_box"]] = gr.update(open=True)
            return ""
        update[c["user_workflow"]] = P.NO_WORKFLOW
        return f"; its ComfyUI workflow {workflow} is not in the workflows folder"

    async def upscale(self, picked: str | None, history: list[dict[str, Any]] | None,
                      scale: float | None = P.UPSCALE_BY.default, upscaler: str | None = P.UPSCALER.default,
                      request: gr.Request = None):
        """The picked image enlarged `scale` times with `upscaler`, as a new image at the top of this session's
        history."""
        if not picked or is_video(picked):
            return gr.skip(), gr.skip(), "Pick an image in the history (or the outputs folder) first."
        result = await self.manager.upscale_image(picked, P.UPSCALE_BY.default if scale is None else scale,
                                                  upscaler or P.UPSCALER.default,
                                                  owner=getattr(request, "username", None))
        if result.status != "success":
            return gr.skip(), gr.skip(), failure_line(result.error or "The image could not be upscaled.")
        history = self.histories.add(_session(request) or "", history_entry(result), history)
        return history, gallery_items(history), (f"{Path(picked).name} upscaled to {result.width}×{result.height}: "
                                                 f"{Path(result.path).name}, first in the history.")

    @staticmethod
    def send_to_inpaint(picked: str | None):
        """The picked image goes into the inpaint box, ready to be painted on (the box opens)."""
        if not picked or is_video(picked):
            return gr.skip(), gr.skip(), "Pick an image in the history (or the outputs folder) first."
        editor = {"background": picked, "layers": [], "composite": picked}
        return editor, gr.update(open=True), f"{Path(picked).name} is in the inpaint box: paint what to redraw."

    @staticmethod
    def vary(strength: float):
        """Fooocus's Vary, after the settings were filled from the picked image: it becomes the init image, redrawn
        at `strength` at its own size with a new seed (the inpaint box emptied, so Generate redraws the whole)."""
        def setup(picked: str | None):
            if not picked or is_video(picked):
                return (gr.skip(),) * 6 + ("Pick an image in the history (or the outputs folder) first.",)
            return (picked, gr.update(open=True), strength, True, P.RANDOM_SEED, None,
                    f"Varying {Path(picked).name} ({strength:g} denoising strength).")
        return setup

    @staticmethod
    def send_to_img2img(picked: str | None):
        """The picked image becomes the init image (the Image to image box opens)."""
        if not picked or is_video(picked):
            return gr.skip(), gr.skip(), "Pick an image in the history (or the outputs folder) first."
        return picked, gr.update(open=True), f"{Path(picked).name} is the init image now: Generate redraws it."

    def _outputs_page(self, page: Any, request: gr.Request | None):
        """One page of the saved images and videos (newest first), with captions; the page number clamped."""
        files = self.manager.saved_outputs(getattr(request, "username", None))
        pages = max(1, math.ceil(len(files) / OUTPUTS_PAGE_SIZE))
        number = min(max(_page_number(page), 1), pages)
        shown = [str(p) for p in files[(number - 1) * OUTPUTS_PAGE_SIZE:number * OUTPUTS_PAGE_SIZE]]
        text = (f"Page {number} of {pages} ({len(files)} file{'' if len(files) == 1 else 's'})" if files
                else "No saved images or videos yet.")
        return [(path, file_caption(path)) for path in shown], shown, number, text

    async def list_outputs(self, page: Any = 1, request: gr.Request = None):
        """A page of the saved images and videos (regular files inside the outputs folder only, never a
        symlink); with --auth, only the login's own (an admin's: everyone's)."""
        items, paths, number, text = await asyncio.to_thread(self._outputs_page, page, request)
        if not paths:
            gr.Info("No saved images in the outputs folder yet.")
        return items, paths, number, text

    async def first_page(self, request: gr.Request = None):
        return await self.list_outputs(1, request)

    async def previous_page(self, page: Any, request: gr.Request = None):
        return await self.list_outputs(_page_number(page) - 1, request)

    async def next_page(self, page: Any, request: gr.Request = None):
        return await self.list_outputs(_page_number(page) + 1, request)


def layout_image_tab(manager: AIModelManager, *, browse_outputs: bool = True, queue_places: int = 8) -> dict[str, Any]:
    """Lay out the tab's components inside the current gr.Tab; returns them by name."""
    defaults = manager.model_defaults(AUTO)
    status_models = manager.available_models() if manager.initialized else []
    upscalers = manager.available_upscalers() if manager.initialized else list(UPSCALERS)
    samplers = _sampler_choices()

    history = gr.State([])
    last_seed = gr.State(None)
    finished = gr.State(None)  # the last finished image of the running request
    queue_tick = gr.State(0)  # counts the jobs the session's runner took; each change redraws the queue list
    forever_tick = gr.State(0)  # counts the runner's calls for another Generate (Generate forever)
    picked = gr.State(None)
    saved = gr.State([])
    saved_page = gr.State(1)

    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            with gr.Row(equal_height=False):  # the primary action beside the prompt, as in A1111 and Fooocus
                with gr.Column(scale=4, min_width=0, elem_classes="gator-counted"):
                    prompt = gr.Textbox(label="Prompt", lines=3, placeholder="a red fox in the snow, golden hour",
                                        info="Ctrl+Enter generates. `{red|blue}` picks one option; System status "
                                             "lists the wildcards a prompt can name.",
                                        elem_id="prompt")
                    prompt_tokens = layout_token_counter("prompt-tokens")
                with gr.Column(scale=1, min_width=120):
                    generate = gr.Button("Generate", variant="primary", elem_id="generate")
                    with gr.Row():
                        stop = gr.Button("Stop", variant="stop", min_width=0, elem_id="stop")
                        skip = gr.Button("Skip", variant="secondary", min_width=0, elem_id="skip")
                    forever = gr.Checkbox(False, label="Generate forever", elem_id="generate-forever",
                                          info="Again and again with the form as it is then (Stop ends it).")
            queue_panel = layout_queue_panel(queue_places)
            with gr.Column(elem_classes="gator-counted"):
                negative = gr.Textbox(label="Negative prompt", lines=2, placeholder="blurry, lowres",
                                      elem_id="negative-prompt")
                negative_tokens = layout_token_counter("negative-tokens")
            with gr.Row():
                style = gr.Dropdown(manager.available_styles()[1:], value=[], multiselect=True, label="Styles",
                                    elem_id="style")  # the app's, then yours (A1111's styles.csv, Fooocus's)
                quality = gr.Dropdown(list(quality_presets()), value=None, label="Quality preset",
                                      elem_id="quality")
                vae = gr.Dropdown(vae_choices(manager.available_vaes() if manager.initialized else []), value=AUTO,
                                  label=P.VAE.label, elem_id="vae")  # "auto (built in)": the checkpoint's own
            with gr.Accordion("Save as style", open=False, elem_id="save-style-box"):  # A1111's Save style
                with gr.Row():
                    style_name = gr.Textbox(label="Style name", max_lines=1, scale=3, elem_id="style-name",
                                            info="Save: the prompts above become this style in the styles folder's "
                                                 "styles.csv (replacing one of that name). Delete: it leaves the file.")
                    with gr.Column(scale=1, min_width=120):
                        save_style = gr.Button("Save style", elem_id="save-style")
                        delete_style = gr.Button("Delete style", variant="stop", elem_id="delete-style")
                style_note = gr.Markdown("", elem_id="style-note")
            with gr.Row():
                model = gr.Dropdown(model_choices(status_models), value=AUTO, label="Model",
                                    allow_custom_value=True, min_width=240, elem_id="model")  # wraps on phones
                backend = gr.Radio(manager.backend_choices(), **widget(P.BACKEND), elem_id="backend")
            img2img = layout_img2img_box()
            inpaint = layout_inpaint_box()
            hires = layout_hires_box(upscalers, samplers, hires_checkpoint_choices(status_models))
            controlnet_box = layout_controlnet_box(manager.available_controlnets() if manager.initialized else [])
            workflow_box = layout_workflow_box(manager.available_workflows())
            xyz = layout_xyz_box()
            prompt_list_box = layout_prompt_list_box()
            lora_row = layout_lora_row(manager.available_loras() if manager.initialized else [])
            with gr.Row():
                aspect = gr.Dropdown([CUSTOM_SIZE, *aspect_ratios()], value=CUSTOM_SIZE, label="Aspect ratio",
                                     elem_id="aspect")
                width = gr.Number(**number_box(P.WIDTH, defaults[P.WIDTH.name]), precision=0, elem_id="width")
                height = gr.Number(**number_box(P.HEIGHT, defaults[P.HEIGHT.name]), precision=0, elem_id="height")
            with gr.Row():
                steps = gr.Slider(**widget(P.STEPS, defaults[P.STEPS.name]), elem_id="steps")
                guidance = gr.Slider(**widget(P.GUIDANCE, defaults[P.GUIDANCE.name]), elem_id="guidance")
            with gr.Row(equal_height=False):
                seed = gr.Number(**number_box(P.SEED), precision=0, elem_id="seed", scale=3)
                with gr.Column(scale=1, min_width=120):
                    random_seed = gr.Button("Random", size="sm", elem_id="seed-random")
                    reuse_seed = gr.Button("Last seed", size="sm", elem_id="seed-reuse")
            with gr.Row():
                sampler = gr.Dropdown(samplers, value="euler" if any(v == "euler" for _, v in samplers)
                                      else samplers[0][1], label="Sampler", elem_id="sampler")
                batch = gr.Slider(**widget(P.BATCH_COUNT), elem_id="batch")
            with gr.Row():
                clip_skip = gr.Slider(**widget(P.CLIP_SKIP), elem_id="clip-skip")
                cfg_rescale = gr.Slider(**widget(P.CFG_RESCALE), elem_id="cfg-rescale")
            with gr.Row():
                freeu = gr.Checkbox(**widget(P.FREEU), elem_id="freeu")
                tiling = gr.Checkbox(**widget(P.TILING), elem_id="tiling")
            with gr.Accordion("Variation seed", open=False, elem_id="variation-box") as variation_box:
                with gr.Row():
                    variation_seed = gr.Number(**number_box(P.VARIATION_SEED), precision=0, elem_id="variation-seed")
                    variation_strength = gr.Slider(**widget(P.VARIATION_STRENGTH), elem_id="variation-strength")
        with gr.Column(scale=6):
            progress = gr.Markdown("Ready.", elem_id="progress-line")
            image = gr.Image(label="Image", type="pil", format="png", interactive=False, height=420,
                             buttons=["download", "fullscreen"], elem_id="image-output")
            download = gr.DownloadButton("Download PNG (with parameters)", visible=False, elem_id="download")
            details = gr.Markdown("", elem_id="result-details")

    with gr.Accordion("History", open=True):
        with gr.Tabs():
            with gr.Tab("This session"):
                gallery = gr.Gallery(label="This session's images", columns=8, height=220, allow_preview=False,
                                     interactive=False, fit_columns=False, object_fit="contain",
                                     elem_id="history")
            if browse_outputs:
                with gr.Tab("Outputs folder"):
                    with gr.Row():
                        load_saved = gr.Button("Show the saved images and videos", size="sm",
                                               elem_id="load-outputs")
                        previous_page = gr.Button("Previous", size="sm", scale=0, min_width=100,
                                                  elem_id="outputs-previous")
                        next_page = gr.Button("Next", size="sm", scale=0, min_width=100, elem_id="outputs-next")
                        page_info = gr.Markdown("", elem_id="outputs-page")
                    saved_gallery = gr.Gallery(label="Saved images", columns=8, height=220, allow_preview=False,
                                               interactive=False, fit_columns=False, object_fit="contain",
                                               elem_id="outputs-gallery")
        with gr.Row():
            picked_info = gr.Markdown("Pick an image, then reuse its parameters.", elem_id="picked-info")
            reuse = gr.Button("Reuse parameters", size="sm", scale=0, elem_id="reuse-parameters")
        with gr.Accordion("PNG info", open=False, elem_id="png-info-box"):
            with gr.Row(equal_height=False):
                png_info_image = gr.Image(label="Drop a PNG", type="filepath", sources=["upload", "clipboard"],
                                          height=180, elem_id="png-info-image", scale=1)
                with gr.Column(scale=2):
                    png_info_text = gr.Markdown("Drop a PNG made by this app, AUTOMATIC1111, Forge or ComfyUI to "
                                                "read its parameters.", elem_id="png-info-text")
                    png_info_send = gr.Button("Send to Image", size="sm", scale=0, elem_id="png-info-send")
        with gr.Row(equal_height=False, visible=False, elem_id="picked-view") as picked_view:
            with gr.Column(scale=3):
                picked_image = gr.Image(label="Picked image", type="filepath", interactive=False, height=420,
                                        buttons=["fullscreen"], elem_id="picked-image")
                picked_video = gr.Video(label="Picked video", interactive=False, height=420, visible=False,
                                        elem_id="picked-video")
            with gr.Column(scale=2):
                picked_params = gr.Markdown("", elem_id="picked-params")
                picked_download = gr.DownloadButton("Download", size="sm", elem_id="picked-download")
                send_to_img2img = gr.Button("Send to image to image", size="sm", elem_id="send-to-img2img")
                send_to_inpaint = gr.Button("Send to inpaint", size="sm", elem_id="send-to-inpaint")
                with gr.Row(equal_height=True):  # Fooocus's Vary: the picture redrawn with its own settings
                    vary_subtle = gr.Button("Vary (subtle)", size="sm", elem_id="vary-subtle", min_width=100)
                    vary_strong = gr.Button("Vary (strong)", size="sm", elem_id="vary-strong", min_width=100)
                with gr.Row(equal_height=True):
                    upscaler = gr.Dropdown(upscalers, value=P.UPSCALER.default, label=P.UPSCALER.label,
                                           info=P.UPSCALER.help, elem_id="upscaler", min_width=140)
                    upscale_by = gr.Slider(**widget(P.UPSCALE_BY), elem_id="upscale-by", min_width=140)
                upscale = gr.Button("Upscale", size="sm", elem_id="upscale-picked")
                delete = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-picked")
                confirm_delete = gr.Button("Confirm delete", size="sm", variant="stop", visible=False,
                                           elem_id="confirm-delete")
    components = dict(
        prompt=prompt, negative=negative, prompt_tokens=prompt_tokens, negative_tokens=negative_tokens, style=style,
        quality=quality, model=model, backend=backend, aspect=aspect,
        **img2img, **inpaint, **hires, **controlnet_box, **workflow_box, **xyz, **prompt_list_box, **lora_row, vae=vae,
        send_to_img2img=send_to_img2img, send_to_inpaint=send_to_inpaint, vary_subtle=vary_subtle,
        vary_strong=vary_strong, upscale=upscale, upscaler=upscaler,
        upscale_by=upscale_by,
        png_info_image=png_info_image, png_info_text=png_info_text,
        png_info_send=png_info_send,
        width=width, height=height, steps=steps, guidance=guidance, seed=seed, random_seed=random_seed,
        reuse_seed=reuse_seed, sampler=sampler, batch=batch, clip_skip=clip_skip, freeu=freeu, tiling=tiling,
        cfg_rescale=cfg_rescale,
        variation_seed=variation_seed,
        variation_strength=variation_strength, variation_box=variation_box, generate=generate, stop=stop, skip=skip,
        style_name=style_name, save_style=save_style, delete_style=delete_style, style_note=style_note,
        progress=progress,
        image=image, download=download, details=details, gallery=gallery, history=history, last_seed=last_seed,
        finished=finished, queue_tick=queue_tick, forever=forever, forever_tick=forever_tick,
        queue_panel=queue_panel, picked=picked, saved=saved, picked_info=picked_info, reuse=reuse,
        picked_view=picked_view, picked_image=picked_image, picked_video=picked_video, picked_params=picked_params,
        picked_download=picked_download, delete=delete, confirm_delete=confirm_delete)
    if browse_outputs:
        components.update(load_saved=load_saved, saved_gallery=saved_gallery, saved_page=saved_page,
                          previous_page=previous_page, next_page=next_page, page_info=page_info)
    return components


def build_image_tab(manager: AIModelManager, jobs: Jobs, *, browse_outputs: bool = True) -> ImageTab:
    """Lay out the tab inside the current gr.Tab and wire its events."""
    handlers = ImageTabHandlers(manager, jobs)
    handlers.components = layout_image_tab(manager, browse_outputs=browse_outputs,
                                           queue_places=handlers.queue.limit)
    return wire_image_tab(handlers, browse_outputs=browse_outputs)


def wire_image_tab(h: ImageTabHandlers, *, browse_outputs: bool = True) -> ImageTab:
    """Connect the laid-out components to the handlers."""
    c = h.components
    h.param_components = {P.PROMPT.name: c["prompt"], P.NEGATIVE_PROMPT.name: c["negative"],
                          P.WIDTH.name: c["width"], P.HEIGHT.name: c["height"], P.STEPS.name: c["steps"],
                          P.GUIDANCE.name: c["guidance"], P.SEED.name: c["seed"], P.SAMPLER.name: c["sampler"],
                          P.CLIP_SKIP.name: c["clip_skip"], P.VARIATION_SEED.name: c["variation_seed"],
                          P.VARIATION_STRENGTH.name: c["variation_strength"], P.FREEU.name: c["freeu"],
                          P.CFG_RESCALE.name: c["cfg_rescale"], P.TILING.name: c["tiling"]}
    private = {"queue": False, "api_visibility": "private"}
    h.panel = panel = c["queue_panel"]
    form = [c[name] for name in FORM_INPUTS]
    outputs = [c[name] for name in ("image", "progress", "history", "last_seed", "finished", "queue_tick",
                                    "forever_tick")]
    # Generate adds the form's values to the session's queue at once; the runner that follows takes the
    # waiting jobs one by one (when one is already taking them, the new one returns at once).
    # Gradio keeps a hidden status tracker (with its "0.0s" timer text) inside every output an event shows
    # progress on, even with show_progress="hidden": events that write the progress line show it on a State.
    added = gr.on([c["generate"].click, c["prompt"].submit], h.add_job, inputs=form,
                  outputs=[c["progress"], *panel.outputs], show_progress="hidden", show_progress_on=panel.shown_ids,
                  **private)
    gen_event = added.then(h.run_queue, inputs=[c["history"], c["queue_tick"], c["forever_tick"]], outputs=outputs,
                           api_visibility="private", show_progress="hidden", show_progress_on=c["finished"],
                           concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    # Plot is a job of the same queue: the X/Y/Z plot box's axes, then the form
    plotted = c["plot"].click(h.add_plot, inputs=[*(c[name] for name in PLOT_INPUTS), *form],
                              outputs=[c["progress"], *panel.outputs], show_progress="hidden",
                              show_progress_on=panel.shown_ids, **private)
    plotted.then(h.run_queue, inputs=[c["history"], c["queue_tick"], c["forever_tick"]], outputs=outputs,
                 api_visibility="private",
                 show_progress="hidden", show_progress_on=c["finished"], concurrency_limit=4,
                 concurrency_id=GENERATE_CONCURRENCY)
    # Generate from the list likewise: the list box's values, then the form
    listed = c["from_list"].click(h.add_list, inputs=[*(c[name] for name in LIST_INPUTS), *form],
                                  outputs=[c["progress"], *panel.outputs], show_progress="hidden",
                                  show_progress_on=panel.shown_ids, **private)
    listed.then(h.run_queue, inputs=[c["history"], c["queue_tick"], c["forever_tick"]], outputs=outputs,
                api_visibility="private", show_progress="hidden", show_progress_on=c["finished"],
                concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    c["prompt_list_file"].upload(h.open_prompt_list, inputs=c["prompt_list_file"],
                                 outputs=[c["prompt_list"], c["progress"]], **private)
    # each finished job: its Done line, details, gallery and download (State changes reach the browser only
    # from queued events, so the runner's own outputs stay the step stream's few)
    c["finished"].change(h.show_finished, inputs=[c["finished"], c["history"]],
                         outputs=[c["progress"], c["details"], c["gallery"], c["download"]], show_progress="hidden",
                         show_progress_on=c["finished"], **private)
    c["queue_tick"].change(h.show_queue, outputs=panel.outputs, show_progress="hidden",
                           show_progress_on=panel.shown_ids, **private)
    for place, cancel in enumerate(panel.cancels):
        cancel.click(h.cancel_waiting(place), inputs=panel.shown_ids, outputs=panel.outputs,
                     show_progress="hidden", show_progress_on=panel.shown_ids, **private)
    panel.clear.click(h.clear_queue, outputs=panel.outputs, show_progress="hidden",
                      show_progress_on=panel.shown_ids, **private)
    c["stop"].click(h.stop, inputs=c["history"], outputs=[c["finished"], c["gallery"], c["forever"]], **private)
    c["skip"].click(h.skip, **private)
    c["save_style"].click(h.save_style, inputs=[c["style_name"], c["prompt"], c["negative"], c["style"]],
                          outputs=[c["style_note"], c["style"]], **private)
    c["delete_style"].click(h.delete_style, inputs=[c["style_name"], c["style"]],
                            outputs=[c["style_note"], c["style"]], **private)
    # A1111's Generate forever: the runner asks for another Generate when the queue runs dry after a finished job,
    # and the browser clicks it, with the form as it is now
    c["forever"].change(h.set_forever, inputs=c["forever"], **private)
    c["forever_tick"].change(None, js="() => { document.querySelector('#generate').click(); }", **private)

    for box, negative, hires in (("prompt", False, False), ("negative", True, False), ("hires_prompt", False, True),
                                 ("hires_negative_prompt", True, True)):
        count_inputs = [c[box], c["steps"], c["style"]]  # A1111 counts the styles in, and a schedule at its steps
        for trigger in (c[box].change, c["steps"].change, c["style"].change):
            trigger(h.count_tokens(negative, hires), inputs=count_inputs, outputs=c[f"{box}_tokens"],
                    show_progress="hidden", trigger_mode="always_last", **private)
    c["model"].input(h.on_model, inputs=c["model"], outputs=[c["steps"], c["guidance"]], **private)
    c["aspect"].input(h.on_aspect, inputs=[c["aspect"], c["width"], c["height"]], outputs=[c["width"], c["height"]],
                      **private)
    c["quality"].input(h.on_quality, inputs=[c["quality"], c["guidance"]], outputs=[c["steps"], c["guidance"]],
                       **private)
    c["random_seed"].click(lambda: P.RANDOM_SEED, outputs=c["seed"], **private)
    c["lora_add"].click(add_lora_tag, inputs=[c["prompt"], c["lora"], c["lora_weight"]], outputs=c["prompt"],
                        **private)
    c["reuse_seed"].click(h.reuse_seed, inputs=c["last_seed"], outputs=[c["seed"], c["progress"]],
                          show_progress="hidden", show_progress_on=c["last_seed"], **private)

    shown = [c[name] for name in ("picked", "picked_info", "picked_view", "picked_image", "picked_video",
                                  "picked_params", "picked_download", "confirm_delete")]
    c["gallery"].select(h.pick, inputs=c["history"], outputs=shown, **private)
    deleted = [*shown, c["history"], c["gallery"]]
    page = None
    if browse_outputs:
        listed = [c["saved_gallery"], c["saved"], c["saved_page"], c["page_info"]]
        page = c["saved_page"]
        c["load_saved"].click(h.first_page, outputs=listed, api_visibility="private")
        c["previous_page"].click(h.previous_page, inputs=page, outputs=listed, api_visibility="private")
        c["next_page"].click(h.next_page, inputs=page, outputs=listed, api_visibility="private")
        c["saved_gallery"].select(h.pick_saved, inputs=c["saved"], outputs=shown, **private)
        deleted += listed
    c["delete"].click(h.ask_delete, inputs=c["picked"], outputs=[c["confirm_delete"], c["picked_info"]], **private)
    c["confirm_delete"].click(h.delete, inputs=[c["picked"], c["history"], page if page is not None else c["picked"]],
                              outputs=deleted, api_visibility="private")
    reused = [c[name] for name in ("prompt", "negative", "style", "model", "aspect", "width", "height", "steps",
                                   "guidance", "seed", "sampler", "clip_skip", "variation_seed",
                                   "variation_strength", "variation_box", "freeu", "cfg_rescale", "tiling", "vae",
                                   *CONTROLNET_INPUTS[1:],
                                   "controlnet_box", *HIRES_INPUTS, "hires_box", *PLOT_INPUTS, "xyz_box",
                                   "user_workflow", "workflow_box", "picked_info")]
    c["reuse"].click(h.reuse, inputs=c["picked"], outputs=reused, **private)
    preview_inputs = [c[name] for name in ("control_image", "controlnet_module", "canny_low", "canny_high")]
    for trigger in (c["control_image"].change, c["controlnet_module"].input, c["canny_low"].release,
                    c["canny_high"].release):
        trigger(h.preview_control_map, inputs=preview_inputs, outputs=c["control_map"], api_visibility="private",
                show_progress="hidden")
    wire_workflow_box(h.manager, c)
    c["png_info_image"].change(h.show_png_info, inputs=c["png_info_image"], outputs=c["png_info_text"], **private)
    c["png_info_send"].click(h.send_png_info, inputs=c["png_info_image"],
                             outputs=[*reused[:-1], c["png_info_text"]], **private)
    c["send_to_img2img"].click(h.send_to_img2img, inputs=c["picked"],
                               outputs=[c["init_image"], c["img2img_box"], c["picked_info"]], **private)
    c["upscale"].click(h.upscale, inputs=[c["picked"], c["history"], c["upscale_by"], c["upscaler"]],
                       outputs=[c["history"], c["gallery"], c["picked_info"]], api_visibility="private",
                       api_name="upscale_picked",
                       show_progress="hidden", show_progress_on=c["picked"])
    for button, strength in (("vary_subtle", VARY_SUBTLE), ("vary_strong", VARY_STRONG)):
        c[button].click(h.reuse, inputs=c["picked"], outputs=reused, **private).then(
            h.vary(strength), inputs=c["picked"], outputs=[c["init_image"], c["img2img_box"], c["strength"],
                                                           c["init_size"], c["seed"], c["mask_editor"],
                                                           c["picked_info"]], **private).then(
            None, js="() => { document.querySelector('#generate').click(); }")
    c["send_to_inpaint"].click(h.send_to_inpaint, inputs=c["picked"],
                               outputs=[c["mask_editor"], c["inpaint_box"], c["picked_info"]], **private)
    return ImageTab(model=c["model"], hires_checkpoint=c["hires_checkpoint"], lora=c["lora"], vae=c["vae"], upscalers=(c["upscaler"], c["hires_upscaler"]),
                    controlnet=c["controlnet"], style=c["style"], user_workflow=c["user_workflow"],
                    generate_event=gen_event,
                    forget_session=h.forget_session)


def _sampler_choices() -> list[tuple[str, str]]:
    from engine.registry import load_samplers

    return [(str(spec.get("label") or name), name) for name, spec in load_samplers().items()]
