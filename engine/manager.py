"""AIModelManager: the one public API of the engine.

A generation is an async iterator of events (engine/events.py). `stream_image` validates the request once,
asks the router for a plan once (engine/router.py), streams it through the planned backends
(engine/backends/), falling back when the first choice fails, saves each result with its parameters,
and ends with Done or Failed. `generate_image` is `stream_image` drained to its end; video likewise.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import aclosing
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable

from PIL import Image

from .backends import Backend, BackendContext, build_backends
from .backends.base import INTERPOLATE, MODEL_FILES_LEFT_OUT, Target
from .comfyui_process import ManagedComfyUI, ManagedComfyUIError
from .config import PRESETS_DIR, Settings
from .downloads import Downloads
from .errors import BackendUnavailable, GatorError, GenerationCancelled, InvalidRequest
from .events import Done, Event, Failed, Fallback, ListLine, Produced, Progress, Skipped, Started
from .controlnet import CANNY
from .inpaint import ONLY_MASKED, prepare_inpaint
from .input_images import fit, read_input_image
from .limits import Limits
from .logs import keep_log_lines_short
from .merge import ADD_DIFFERENCE, METHOD_LABELS, WEIGHTED_SUM, merge_name_problem, merged_file
from .outputs import SweepReport, delete_output as remove_output, save_image, saved_images as find_saved_images, \
    saved_outputs as find_saved_outputs, sweep_leftovers
from . import params as P
from .params import ALIASES
from .png_info import png_info
from .token_count import TokenCount, TokenCounter
from .skipping import image_switch, was_skipped
from .registry import (Hardware, ModelSpec, builtin_model, capped, cuda_device_count, family_of, load_catalogue,
                       load_families, local_devices, probe_hardware)
from .prompt_list import END as LIST_END, PromptLine, read_lines
from .prompt_syntax import BadTag, take_lora_tags, with_lora_tags
from .request import AUTO, HIRES_LORAS, GenerationRequest
from .prompt_schedule import FIRST_PASS_STEPS
from .upscale import HIRES_STAGE, LANCZOS, UPSCALERS, cropped_to_shape, lanczos, unknown_upscaler, upscaler_named
from .result import ImageResult, error_result
from .router import Router
from .weights import WeightSource
from .comfyui import file_stem
from .user_workflows import list_workflows, load_workflow, save_workflow, workflow_name
from .styles import StyleLibrary, apply_styles
from .wildcards import Wildcards, has_variants
from .workflows import WorkflowError
from .xyz_plot import plan_plot, stream_plot

logger = logging.getLogger(__name__)

SEE_STATUS = " — see System status"  # ends the demo model's badge label: the status tab says how to get a real one
TEMPLATE_STANDIN = "a template"  # a template's prompt while the rest of its request is validated (see _validated)


class AIModelManager:
    """Generate images and storyboard videos on whichever backend can run them (engine/backends/)."""

    def __init__(self, settings: Settings | None = None, hardware: Hardware | None = None,
                 *, start_monitor: bool = True, admins: Iterable[str] = (),
                 gpu_count: Callable[[], int] | None = None, managed_options: dict[str, Any] | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.admins = frozenset(admins)  # logins whose outputs listing shows everyone's results
        self.hardware = hardware
        self.backends: dict[str, Backend] = {}
        self.router: Router | None = None
        self.switches: deque[dict[str, Any]] = deque(maxlen=50)
        self._start_monitor = start_monitor
        self._init_lock = asyncio.Lock()
        self._initialized = False
        self._leftovers: SweepReport | None = None  # what start-up cleaned up after an interrupted run
        self.downloads = Downloads(self.settings, on_finished=self._downloaded)  # catalogue weights from the Hub
        self.managed: ManagedComfyUI | None = None  # the ComfyUI started from COMFYUI_DIR (engine/comfyui_process.py)
        self._gpu_count = gpu_count  # how many CUDA GPUs the managed ComfyUI spreads over (default: probed)
        self._managed_options = managed_options or {}  # ManagedComfyUI's ports / timing (tests)
        # `__name__` in a prompt: the user's wildcard files, then the ones the app ships (engine/wildcards.py)
        self.wildcards = Wildcards([self.settings.wildcards_dir, PRESETS_DIR / "wildcards"])
        # prompt styles: the app's, then the user's (the styles folder, A1111's styles.csv, Fooocus's sdxl_styles/)
        self.token_counter = TokenCounter()
        self.styles = StyleLibrary(PRESETS_DIR / "styles.yaml", self.settings.styles_dir, self.settings.model_roots)

    # -- start-up ------------------------------------------------------------------------------
    async def initialize_models(self) -> dict[str, Any]:
        """Probe the hardware, build and start every registered backend. Idempotent."""
        if self._initialized:  # the common case takes no lock (requests may come from another event loop)
            return self.status()
        async with self._init_lock:
            if not self._initialized:
                await asyncio.to_thread(self._initialize_sync)
                self._initialized = True
        return self.status()

    def _initialize_sync(self) -> None:
        keep_log_lines_short()
        self._leftovers = sweep_leftovers(self.settings.output_dir)  # after a crash: partial files, "rendering" JSONs
        devices = local_devices(self.settings.devices, self.hardware or probe_hardware())
        if self.hardware is None:  # a probed machine: GATOR_GPU_MEMORY_GB holds each GPU to its share
            devices = [capped(device, self.settings.gpu_memory_gb) for device in devices]
        self.hardware = devices[0]
        logger.info("Hardware: %s%s", self.hardware.describe(),
                    f"; local workers on {', '.join(d.torch_device for d in devices)}" if len(devices) > 1 else "")
        context = BackendContext(self.settings, self.hardware, tuple(devices), on_change=self._record_switch,
                                 start_monitor=self._start_monitor)
        backends = build_backends(context)
        for backend in backends:
            backend.start()
        self.backends = {b.name: b for b in backends}
        self.router = Router(backends, self.settings.prefer)
        if self.settings.comfyui_dir and self.settings.enable_comfyui:
            self._start_managed()

    def _start_managed(self) -> None:
        """Start ComfyUI from COMFYUI_DIR (one instance per CUDA GPU) unless a server answers at COMFYUI_API_URL."""
        gpus = self._gpu_count() if self._gpu_count else (cuda_device_count() if self.hardware.device == "cuda" else 0)
        backends = list(self.backends.values())
        self.managed = ManagedComfyUI(
            self.settings, gpus=gpus, on_change=self._record_switch,
            join_pool=lambda url: next((True for b in backends if b.add_server(url)), False),
            leave_pool=lambda url: [b.remove_server(url) for b in backends], **self._managed_options)
        try:
            self.managed.start()
        except ManagedComfyUIError as err:
            logger.info("Managed ComfyUI not started: %s", err)
            self._record_switch("Managed ComfyUI not started", str(err))

    def _record_switch(self, what: str, reason: str = "") -> None:
        """A row of the status tab's switch log: a change of state (a server up or down, a request that failed
        over mid-run), never a copy of the newest row."""
        row = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "event": what, "reason": reason,
               "backend": self.active_backend()["label"] if self._initialized else ""}
        newest = self.switches[0] if self.switches else {}
        if all(newest.get(key) == row[key] for key in ("event", "reason", "backend")):
            return
        self.switches.appendleft(row)

    async def rescan_models(self) -> list[dict[str, Any]]:
        """Find every backend's models again (new or changed files in the model folders); the model list after."""
        await self.initialize_models()
        for backend in self.backends.values():
            await asyncio.to_thread(backend.rescan)
        return self.available_models()

    # -- the checkpoint merger (engine/merge.py) ------------------------------------------------
    def mergeable_checkpoints(self) -> list[str]:
        """The ids of the checkpoints on this machine the merger can take (single files)."""
        local = self.router.last_resort
        return [spec.id for spec in local.models() if self._checkpoint_file(spec.id, quiet=True) is not None]

    async def merge_checkpoints(self, primary: str, secondary: str, multiplier: float, name: str, *,
                                method: str = WEIGHTED_SUM, tertiary: str | None = None,
                                half: bool = False) -> str:
        """A1111's Checkpoint merger: the checkpoints (ids of `mergeable_checkpoints`) merged into <name>.safetensors
        in the models folder (weighted sum, or add difference with `tertiary`), then listed; the sentence saying so.
        InvalidRequest or OutputError with a sentence when it cannot (nothing is written then)."""
        await self.initialize_models()
        problem = merge_name_problem(name) or P.MERGE_MULTIPLIER.problem(multiplier)
        if problem:
            raise InvalidRequest(problem)
        if not self.settings.models_dir:
            raise InvalidRequest("Set a models folder (GATOR_MODELS_DIR) for the merged checkpoint to be saved in.")
        asked = [primary, secondary, *([tertiary] if method == ADD_DIFFERENCE else [])]
        files = [self._checkpoint_file(model_id or "") for model_id in asked]
        families = {spec.family for model_id in asked if (spec := self.router.last_resort.find(model_id))}
        if len(families) > 1:
            raise InvalidRequest(f"{', '.join(asked)} are of different model families "
                                 f"({', '.join(sorted(family_of(f).label for f in families))}): they cannot be merged.")
        target = Path(self.settings.models_dir) / f"{name.strip()}.safetensors"
        if self._model_name_taken(name.strip()):
            raise InvalidRequest(f"A model named {name.strip()} is already listed (names are matched without case): "
                                 "choose another name.")
        await asyncio.to_thread(merged_file, files[0], files[1], float(multiplier), target, method=method,
                                tertiary=files[2] if len(files) > 2 else None, half=bool(half))
        await self.rescan_models()
        return (f"Merged {' and '.join(asked)} ({METHOD_LABELS[method].lower()}, multiplier {float(multiplier):g}) "
                f"into {target.name}: it is in the model list as {target.stem}.")

    def _model_name_taken(self, name: str) -> bool:
        """Whether a new checkpoint file `name`.safetensors would share a name with a model listed now, or take the
        file name a catalogue model looks for."""
        file_name = f"{name}.safetensors".lower()
        return name.lower() == AUTO or self.router.unknown_model(name) is None or any(
            (spec.single_file or "").lower() == file_name for spec in load_catalogue())

    def _checkpoint_file(self, model_id: str, quiet: bool = False) -> Path | None:
        """The single file of checkpoint `model_id` on this machine; InvalidRequest naming the ones there are (None
        with `quiet`) for anything else."""
        local = self.router.last_resort
        spec = local.find(model_id)
        source = getattr(local, "weights", {}).get(spec.id) if spec is not None else None
        if isinstance(source, WeightSource) and source.kind == "single_file":
            return Path(source.location)
        if quiet:
            return None
        there = ", ".join(self.mergeable_checkpoints()) or "none (put .safetensors checkpoints in the models folder)"
        raise InvalidRequest(f"{model_id!r} is not a checkpoint file on this machine; the merger takes these: {there}.")

    # -- downloads (engine/downloads.py) -------------------------------------------------------
    def start_download(self, model_id: str) -> None:
        """Download a catalogue model's weights file into GATOR_MODELS_DIR in the background (resumes a partial
        one; nothing happens while it is downloading). Raises DownloadError with a sentence when it cannot start."""
        self.downloads.start(model_id)

    def cancel_download(self, model_id: str) -> None:
        """Stop a model's download; its partial file stays for the next start_download."""
        self.downloads.cancel(model_id)

    def allow_downloads(self) -> None:
        """Allow downloads for the rest of this run, as GATOR_ALLOW_DOWNLOADS=1 does."""
        self.downloads.allow()

    def downloads_state(self) -> dict[str, Any]:
        """{"allowed", "folder", "blocked" (why none can start, or ""), "models": {id: progress and state}}."""
        return self.downloads.snapshot()

    def _downloaded(self, model_id: str) -> None:
        """A download finished (in its thread): find the new file, so the model is listed and used now."""
        if self._initialized:
            asyncio.run(self.rescan_models())

    def use_gpu_decorator(self, decorator: Any) -> None:
        """Wrap local pipeline calls, e.g. with `spaces.GPU(duration=120)` on a ZeroGPU Space."""
        for backend in self.router.backends:
            backend.wrap_generation(decorator)

    # -- the ComfyUI started from COMFYUI_DIR (engine/comfyui_process.py) ----------------------------
    def start_managed_comfyui(self) -> None:
        """Start the managed ComfyUI (every instance). Raises ManagedComfyUIError with a sentence when it cannot:
        no COMFYUI_DIR, not an install, or another ComfyUI already answers at COMFYUI_API_URL."""
        self._require_managed().start()

    def stop_managed_comfyui(self) -> None:
        """Stop the managed ComfyUI (each instance's whole process group); it stays stopped until started."""
        self._require_managed().stop()

    def restart_managed_comfyui(self) -> None:
        """Stop, then start the managed ComfyUI."""
        self._require_managed().restart()

    def managed_comfyui_state(self) -> dict[str, Any] | None:
        """The managed ComfyUI for the status tab (None without COMFYUI_DIR): folder, Python, note, instances."""
        return self.managed.snapshot() if self.managed is not None else None

    def _require_managed(self) -> ManagedComfyUI:
        if self.managed is None:
            raise ManagedComfyUIError("No ComfyUI is managed by the app: set COMFYUI_DIR (or --comfyui-dir) to a "
                                      "ComfyUI install and start the app again.")
        return self.managed

    def shutdown(self) -> None:
        """Stop every backend's background work, and the managed ComfyUI."""
        if self.managed is not None:
            self.managed.stop()
        self.downloads.shutdown()
        for backend in self.backends.values():
            backend.shutdown()

    @property
    def initialized(self) -> bool:
        """True once initialize_models() has finished."""
        return self._initialized

    @property
    def limits(self) -> Limits:
        """How much work one request may ask for (engine/limits.py)."""
        return self.settings.limits

    @property
    def output_dir(self) -> Path:
        """Where results are saved."""
        return Path(self.settings.output_dir)

    # -- what is available ---------------------------------------------------------------------
    def backend_choices(self) -> list[tuple[str, str]]:
        """(label, name) of auto and every enabled backend: the Image tab's choice (a backend switched off, such as
        the cloud without ENABLE_CLOUD_APIS, is not offered; named through the API it is a sentence)."""
        return [(AUTO, AUTO)] + [(b.label, b.name) for b in self.backends.values() if b.enabled]

    def can_interpolate(self, backend: str) -> bool:
        """Whether `backend` can make seed-travel in-betweens (video transitions)."""
        found = self.backends.get(backend)
        return found is not None and INTERPOLATE in found.features

    def available_models(self) -> list[dict[str, Any]]:
        """Every model a request can name now (highest-priority backend first), then known models that are
        not available here, with why."""
        models: list[dict[str, Any]] = []
        seen: set[str] = set()
        by_plain_name: dict[str, dict[str, Any]] = {}
        for backend in self.backends.values():
            for spec in backend.models():
                plain = backend.plain_name(spec)
                same = by_plain_name.get(plain.lower())
                if same is not None and same["backend"] != backend.name:  # one checkpoint, two backends
                    same["id"] = same["label"] = plain  # the name both backends know it by
                    same["backends"].append(backend.name)
                    same["backend_label"] += f", {backend.label}"
                    seen.add(spec.id)
                    continue
                if spec.id not in seen:
                    seen.add(spec.id)
                    models.append(entry := _model_entry(spec, backend, True))
                    by_plain_name.setdefault(plain.lower(), entry)
        for backend in self.backends.values():
            for spec, why in backend.missing():
                if spec.id not in seen:
                    seen.add(spec.id)
                    models.append(_model_entry(spec, backend, False, why))
        return models

    def available_vaes(self) -> list[str]:
        """Every VAE a request can name now (besides auto), once per name."""
        names = {name.lower(): name for backend in self.backends.values() for name in backend.vaes()}
        return sorted(names.values(), key=str.lower)

    def vae_named(self, name: Any) -> str | None:
        """The VAE of available_vaes that `name` means (any case, with or without its file's extension, as A1111
        writes it); None for one this app lacks."""
        given = name.strip().lower() if isinstance(name, str) else ""
        return next((vae for vae in self.available_vaes() if given and vae.lower() in (given, file_stem(given))),
                    None)

    def available_upscalers(self) -> list[str]:
        """Every upscaler a request can name now: Lanczos first, then each backend's model upscalers (ESRGAN family,
        by file name without extension), once per name."""
        names = {name.lower(): name for backend in self.backends.values() for name in backend.upscalers()}
        return [*UPSCALERS, *sorted((n for key, n in names.items() if key != LANCZOS.lower()), key=str.lower)]

    def available_loras(self) -> list[dict[str, Any]]:
        """Every LoRA a request can name now, once per name: {"name", "family", "family_label", "backends"}."""
        return _named_files((backend.name, backend.loras()) for backend in self.backends.values())

    def available_controlnets(self) -> list[dict[str, Any]]:
        """Every ControlNet a request can name now, once per name: {"name", "family", "family_label", "backends"}."""
        return _named_files((backend.name, backend.controlnets()) for backend in self.backends.values())

    def knows_model(self, name: str) -> bool:
        """Whether a request may name model `name` (an id or label some backend knows, or auto)."""
        return self.router.unknown_model(name) is None

    def model_with_hash(self, model_hash: str | None) -> str | None:
        """The id of the model here whose checkpoint has A1111's "Model hash" `model_hash` (how A1111 finds an image's
        checkpoint under another name); None when no file hashed so far has it."""
        if not isinstance(model_hash, str) or not model_hash.strip():
            return None
        return next((spec.id for backend in self.router.backends
                     if (spec := backend.model_with_hash(model_hash)) is not None), None)

    def available_wildcards(self) -> list[str]:
        """The wildcards a prompt can name as `__name__` (the user's wildcards folder and presets/wildcards)."""
        return self.wildcards.names()

    def available_styles(self) -> list[str]:
        """The prompt styles by name, "None" first, then the app's and the user's (engine/styles.py)."""
        return self.styles.names()

    def save_style(self, name: str, prompt: str, negative_prompt: str) -> str:
        """Save the prompt and negative prompt as the style `name` (A1111's Save style; the styles folder's
        styles.csv, replacing one of that name there); the sentence saying so. InvalidRequest or OutputError with a
        sentence when it cannot."""
        saved = self.styles.save(name, prompt, negative_prompt)
        return f"Saved the style {saved.name!r}: it is in the Styles box now."

    def delete_style(self, name: str) -> str:
        """Delete the style `name` from the styles folder's styles.csv (where Save style writes); the sentence saying
        so. InvalidRequest or OutputError with a sentence when it cannot."""
        deleted = self.styles.delete(name)
        return f"Deleted the style {deleted!r}: it is no longer in the Styles box."

    def styled(self, style: Any, prompt: str, negative_prompt: str) -> tuple[str, str]:
        """The prompt and negative prompt with the styles `style` names applied in order (one name, a list, or
        "None"); InvalidRequest for an unknown style."""
        return self.styles.apply(style, prompt, negative_prompt)

    def styled_hires(self, style: Any, hires_prompt: str, hires_negative_prompt: str) -> tuple[str, str]:
        """A hires pass's own prompt and negative prompt with the styles applied, each only when given (empty: the
        first pass's, styled already); InvalidRequest for an unknown style."""
        return self.styles.apply_to_given(style, hires_prompt or "", hires_negative_prompt or "")

    def prompt_tokens(self, text: str, steps: Any, style: Any = None, *, negative: bool = False,
                      hires: bool = False) -> TokenCount:
        """A1111's token counter: the CLIP tokens of a prompt (a negative prompt with `negative`; a hires pass's own
        with `hires`) with the styles `style` names applied, over a `steps`-step pass, and the 75-token chunks they
        fill (engine/token_count.py)."""
        try:  # a negative prompt's styles go on whatever the prompt (apply_styles skips an empty one)
            if hires:
                text = self.styled_hires(style, "" if negative else text, text if negative else "")[int(negative)]
            elif negative:
                text = self.styled(style, "any prompt", text or "")[1]
            else:
                text = self.styled(style, text or "", "")[0]
        except InvalidRequest:  # an unknown style: the text as written
            pass
        try:
            steps = min(max(int(steps), P.STEPS.minimum), P.STEPS.maximum)
        except (TypeError, ValueError):
            steps = P.STEPS.default
        embeddings = {name: count for backend in self.backends.values()
                      for name, count in backend.embeddings().items()}
        return self.token_counter.count(text or "", steps, embeddings)

    def available_workflows(self) -> list[str]:
        """The user's ComfyUI workflows a request can name (the workflows folder's *.json, by file name)."""
        return list_workflows(self.settings.workflows_dir)

    def workflow_summary(self, name: str) -> dict[str, Any]:
        """What workflow `name` binds ({label: "node 6 CLIPTextEncode.text"}), what stays as in its file, and its
        node classes: {"name", "binds", "kept", "nodes"}; {"name", "error": sentence} when it cannot be used."""
        try:
            return load_workflow(name, self.settings.workflows_dir).summary()
        except WorkflowError as err:
            return {"name": name, "error": str(err)}

    def add_workflow(self, filename: str, text: str | bytes) -> dict[str, Any]:
        """Check an uploaded workflow (API-format JSON) and save it in the workflows folder under its file name;
        its summary, or {"name", "error": sentence} when it cannot be used (then nothing is saved)."""
        try:
            return save_workflow(self.settings.workflows_dir, filename, text).summary()
        except WorkflowError as err:
            return {"name": workflow_name(filename), "error": str(err)}

    def active_backend(self) -> dict[str, Any]:
        """What a request with default settings would run on now: the live badge's content."""
        backend, passed_over = self.router.default_choice()
        reason = passed_over.state().short_reason if passed_over is not None else ""
        note = self.managed.badge_note() if self.managed is not None and passed_over is not None else ""
        reason = f"{reason}; {note}" if reason and note else reason or note
        model = backend.default_model()
        if not backend.local:
            return {"backend": backend.name, "label": f"{backend.label} · {model.label}", "reason": "", "demo": False}
        if model is None:
            return {"backend": backend.name, "label": "no model can run now (see System status)",
                    "reason": backend.why_not(None) or reason, "demo": True}
        if model.builtin:
            label = f"{model.label.lower()} (no real weights found" + (f"; {reason})" if reason else ")")
            return {"backend": backend.name, "label": label + SEE_STATUS, "reason": reason, "demo": True,
                    "hint": SEE_STATUS}
        return {"backend": backend.name, "label": f"{backend.label} · {model.label}"
                + (f" (fallback: {reason})" if reason else ""), "reason": reason, "demo": False}

    def model_defaults(self, model_id: str | None) -> dict[str, Any]:
        """Width, height, steps and guidance a request for `model_id` ("auto": what auto picks now) starts
        from, under the parameters' own names."""
        key = (model_id or AUTO).strip()
        spec = builtin_model()  # before start-up, and for names no backend knows
        if self._initialized:
            if key == AUTO:
                spec = self.router.default_choice()[0].default_model() or spec
            else:
                spec = next((found for b in self.router.backends if (found := b.find(key)) is not None), spec)
        return {P.WIDTH.name: spec.native_size, P.HEIGHT.name: spec.native_size,
                P.STEPS.name: spec.default_steps, P.GUIDANCE.name: spec.default_guidance}

    def status(self) -> dict[str, Any]:
        """Everything the System status tab shows."""
        if not self._initialized:
            return {"active": {"backend": "", "label": "starting…", "reason": ""}, "backends": [], "servers": [],
                    "hardware": {}, "loaded_model": None, "models": [], "notices": [],
                    "output_dir": str(self.settings.output_dir), "comfyui_dir": None, "switches": []}
        states = [b.state() for b in self.router.backends]
        local = self.router.last_resort.state()
        return {
            "active": self.active_backend(),
            "backends": [asdict(st) for st in states],
            "servers": [server for st in states for server in st.servers],
            "hardware": {"device": self.hardware.device, "name": self.hardware.device_name,
                         "vram_gb": round(self.hardware.vram_gb, 1), "ram_gb": round(self.hardware.ram_gb, 1),
                         "summary": self.hardware.describe()},
            "loaded_model": local.details.get("loaded_model"),
            "precision": local.details.get("dtype"),
            "compile": local.details.get("compile"),
            "workers": local.details.get("workers") or [],
            "models": self.available_models(),
            "loras": self.available_loras(),
            "controlnets": self.available_controlnets(),
            "workflows": self.available_workflows(),
            "wildcards": self.available_wildcards(),
            "wildcards_dir": str(self.settings.wildcards_dir),
            "styles": self.available_styles()[1:],
            "styles_dir": str(self.settings.styles_dir),
            "vaes": self.available_vaes(),
            "upscalers": self.available_upscalers(),
            "preview_decoders": local.details.get("preview_decoders") or [],
            "notices": [notice for st in states for notice in st.details.get("notices") or []]
            + ([self._leftovers.notice] if self._leftovers is not None and self._leftovers.found else [])
            + self.styles.problems(),
            "output_dir": str(self.settings.output_dir),
            "model_folders": [str(root) for root in self.settings.model_roots],
            "comfyui_dir": str(self.settings.comfyui_dir) if self.settings.comfyui_dir else None,
            "switches": list(self.switches),
            "managed_comfyui": self.managed_comfyui_state(),
            "normal_path": self._normal_path(),
            "downloads": self.downloads_state(),
        }

    def _local_is_normal(self) -> bool:
        """True when every backend auto would try before the local one is off or has not been up since start-up
        (details["ever_up"] False): local generation is then the normal path, not a fallback."""
        return all(not st.enabled or not st.details.get("ever_up", True)
                   for st in (b.state() for b in self.router.ahead_of_local()))

    def _normal_path(self) -> str:
        """The status tab's one sentence saying local generation is the normal path (empty when it is not)."""
        if not self._local_is_normal():
            return ""
        local = self.router.last_resort
        remote = self.router.ahead_of_local()
        off = [b.label for b in remote if not b.enabled]
        silent = [b.label for b in remote if b.enabled]
        why = [f"{' and '.join(off)} is off"] if off else []
        why += [f"{' and '.join(silent)} has not answered since start-up"] if silent else []
        sentence = f"Local generation on this machine ({local.label}) is the normal path"
        if not why:
            return sentence + "."
        sentence += f": {' and '.join(why)}, so results made here carry no fallback warning."
        return sentence + (f" Start {' or '.join(silent)} and the badge switches within seconds." if silent else "")

    # -- generation ----------------------------------------------------------------------------
    async def stream_image(self, prompt: str, negative_prompt: str = P.NEGATIVE_PROMPT.default,
                           width: int | None = None, height: int | None = None,
                           num_inference_steps: int = P.STEPS.default, guidance_scale: float | None = P.GUIDANCE.default,
                           seed: int | None = None, model: str | None = None, backend: str = P.BACKEND.default,
                           sampler: str = P.SAMPLER.default, batch_count: int = P.BATCH_COUNT.default,
                           loras: Any = None, vae: str | None = None, init_image: Any = None,
                           strength: float = P.STRENGTH.default, resize_mode: str = P.RESIZE_MODE.default,
                           mask: Any = None, mask_blur: int = P.MASK_BLUR.default,
                           masked_content: str = P.MASKED_CONTENT.default,
                           inpaint_area: str = P.INPAINT_AREA.default,
                           only_masked_padding: int = P.ONLY_MASKED_PADDING.default, outpaint: Any = None,
                           hires_scale: float = P.HIRES_SCALE.default, hires_strength: float = P.HIRES_STRENGTH.default,
                           hires_steps: int = P.HIRES_STEPS.default, hires_upscaler: str = P.HIRES_UPSCALER.default,
                           hires_sampler: str = P.HIRES_SAMPLER.default, hires_prompt: str = P.HIRES_PROMPT.default,
                           hires_negative_prompt: str = P.HIRES_NEGATIVE_PROMPT.default,
                           hires_checkpoint: str = P.HIRES_CHECKPOINT.default,
                           hires_resize_width: int = P.HIRES_RESIZE_WIDTH.default,
                           hires_resize_height: int = P.HIRES_RESIZE_HEIGHT.default,
                           clip_skip: int = P.CLIP_SKIP.default, variation_seed: int | None = None,
                           variation_strength: float = P.VARIATION_STRENGTH.default, freeu: bool = P.FREEU.default,
                           cfg_rescale: float = P.CFG_RESCALE.default, tiling: bool = P.TILING.default,
                           control_image: Any = None, controlnet: str | None = P.CONTROLNET.default,
                           controlnet_module: str = P.CONTROLNET_MODULE.default,
                           controlnet_weight: float = P.CONTROLNET_WEIGHT.default,
                           controlnet_start: float = P.CONTROLNET_START.default,
                           controlnet_end: float = P.CONTROLNET_END.default, canny_low: int = P.CANNY_LOW.default,
                           canny_high: int = P.CANNY_HIGH.default, user_workflow: str | None = P.USER_WORKFLOW.default,
                           cancel: asyncio.Event | None = None, skip: asyncio.Event | None = None,
                           extra: dict[str, Any] | None = None, previews: bool = True,
                           owner: str | None = None, **aliases: Any) -> AsyncIterator[Event]:
        """Generate images as a stream of events: per image Started, Progress..., (Fallback), Done; or Failed.

        A batch (`batch_count` > 1) is that many images one after another, each with the previous seed + 1.
        `cancel` set (Stop) ends the request; `skip` set (Skip) ends only the image being made, with Skipped, and
        the batch goes on (engine/skipping.py).
        `steps` and `guidance` are accepted for num_inference_steps and guidance_scale. `owner` (a login) saves
        the images under outputs/<owner>/ instead of the outputs folder itself. `loras` lists LoRAs by name
        and weight ([{"name": ..., "weight": ...}], or "name:weight"); `<lora:name:weight>` prompt tags add to it.
        `vae` names a VAE file to decode with instead of the checkpoint's own (None or "auto": its own).
        `init_image` (a PIL image or a file path) makes it image-to-image: `strength` is A1111's denoising
        strength, `resize_mode` how the image meets width x height (both None: the image's own size).
        `mask` (a PIL image or a file path; white = repaint, stretched to the init image's size if it has another)
        makes it inpaint: `mask_blur` softens its edge, `masked_content` is what the masked part starts from (A1111's
        original, fill, latent noise, latent nothing), `inpaint_area` "only masked" redraws just the mask's box
        plus `only_masked_padding` at width x height. `outpaint` ({"left", "right", "up", "down"} pixels, or four
        numbers) extends the init image and paints the new area. Outside the blurred mask the result is the init
        image's pixels exactly (engine/inpaint.py).
        Width and height left as None are otherwise the parameter schema's defaults. `hires_scale` above 1 is
        A1111's hires fix: made at width x height, upscaled (`hires_upscaler`) and redrawn with `hires_strength`
        over `hires_steps` (0: num_inference_steps); its steps come as Progress with stage "Hires fix". Its own
        `hires_sampler` ("same": the sampler), `hires_prompt` (its own LoRA tags and wildcards),
        `hires_negative_prompt` (empty: the first pass's) and `hires_checkpoint` (a model to redraw with; "Use same
        checkpoint": the first pass's) are A1111's. `hires_resize_width` / `hires_resize_height` (A1111's "Resize
        width/height to", 0: unset) make it that size instead of upscaling by `hires_scale`: a side left 0 follows
        the other in the image's shape, and with both the first pass is cropped at the centre to their shape.
        `clip_skip` is A1111's Clip skip (2: the prompt's text encoder stops one layer early), for the model families
        presets/families.yaml marks (SD 1.x); elsewhere it is not used, and the result says so.
        `variation_strength` above 0 is A1111's variation seed: the starting noise moved toward `variation_seed`'s
        (None or -1: random; a batch keeps the seed and steps this one); text to image and image to image (the noise
        added to the init image), on this machine only.
        `freeu` turns FreeU on, with the model family's values (presets/families.yaml; FLUX and user workflows:
        not used, and the result says so). `cfg_rescale` above 0 rescales the guided prediction toward the spread of
        the prompt's own (0.7 suits v-prediction models); a pipeline without it says so. `tiling` makes a seamless
        image that tiles as a texture (A1111's Tiling; on this machine: the router plans it there).
        `controlnet` names a ControlNet (available_controlnets(); None or "none": none) that `control_image` (a PIL
        image or a file path) steers: fitted to the output as the init image is, turned into a map by
        `controlnet_module` (canny with `canny_low` / `canny_high`, lineart_standard, none), at `controlnet_weight`
        between the fractions `controlnet_start` and `controlnet_end` of the steps (engine/controlnet.py).
        `user_workflow` names a workflow of available_workflows() ("none": the app's own graphs): it runs on ComfyUI
        only, with the prompts, seed, steps, guidance, sampler, size, model and init image in its bound inputs.
        """
        started_at = time.perf_counter()
        if not self._initialized:
            await self.initialize_models()
        req = GenerationRequest.from_arguments(
            prompt, negative_prompt=negative_prompt, width=width, height=height,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed, model=model,
            backend=backend, sampler=sampler, batch_count=batch_count, loras=loras, vae=vae, init_image=init_image,
            strength=strength, resize_mode=resize_mode, mask=mask, mask_blur=mask_blur, inpaint_area=inpaint_area,
            masked_content=masked_content,
            only_masked_padding=only_masked_padding, outpaint=outpaint, hires_scale=hires_scale,
            hires_strength=hires_strength, hires_steps=hires_steps, hires_upscaler=hires_upscaler,
            hires_sampler=hires_sampler, hires_prompt=hires_prompt, hires_negative_prompt=hires_negative_prompt,
            hires_checkpoint=hires_checkpoint, hires_resize_width=hires_resize_width,
            hires_resize_height=hires_resize_height, clip_skip=clip_skip, variation_seed=variation_seed,
            variation_strength=variation_strength, freeu=freeu, cfg_rescale=cfg_rescale, tiling=tiling,
            control_image=control_image, controlnet=controlnet,
            controlnet_module=controlnet_module,
            controlnet_weight=controlnet_weight, controlnet_start=controlnet_start, controlnet_end=controlnet_end,
            canny_low=canny_low, canny_high=canny_high, user_workflow=user_workflow, extra=extra, **aliases)
        try:
            batch = await asyncio.to_thread(self._batch_requests, req)  # every image's request checked before any work
            req = batch[0]
            for number, image_req in enumerate(batch, start=1):
                switch = image_switch(cancel, skip)
                try:
                    async with aclosing(self._one_image(image_req, switch, previews, started_at, owner)) as events:
                        async for event in events:
                            yield event
                except GenerationCancelled:
                    if not was_skipped(cancel, skip):
                        raise
                    logger.info("Image %d of %d skipped", number, len(batch))
                    yield Skipped(number, len(batch))
                started_at = time.perf_counter()
        except GenerationCancelled as err:
            logger.info("Image request cancelled: %s", err)
            yield Failed(f"Cancelled: {err}", self._error_result(req, f"Cancelled: {err}"))
        except GatorError as err:
            yield Failed(str(err), self._error_result(req, str(err)))
        except Exception as err:  # anything unexpected still ends as a sentence, not a traceback
            logger.exception("Generation failed")
            message = f"Generation failed ({type(err).__name__}); the server log has the details."
            yield Failed(message, self._error_result(req, message))

    def _validated(self, req: GenerationRequest, rng: Any = None,
                   checks: dict[str, Any] | None = None) -> GenerationRequest:
        """`req` validated (InvalidRequest naming every problem). A prompt with `{...}` options or `__name__`
        wildcards is a template: its text and LoRA tags are checked once filled in for each image, so here it stands
        aside and comes back as written (the LoRAs then are the `loras` argument's only). `checks`: `_checks()`."""
        checks = checks or self._checks()
        if not _is_template(req):
            return req.validated(self.router.names(), rng=rng, **checks)
        checked = replace(req, prompt=TEMPLATE_STANDIN, negative_prompt="", hires_prompt="",
                          hires_negative_prompt="").validated(self.router.names(), rng=rng, **checks)
        return replace(checked, prompt=req.prompt, negative_prompt=req.negative_prompt, hires_prompt=req.hires_prompt,
                       hires_negative_prompt=req.hires_negative_prompt)

    def _checks(self) -> dict[str, Any]:
        """What `GenerationRequest.validated` checks a request against besides the backends: limits, upscalers."""
        return dict(limits=self.settings.limits, upscalers=self.available_upscalers(),
                    unknown_model=self.router.unknown_model)

    def _batch_requests(self, req: GenerationRequest) -> list[GenerationRequest]:
        """The validated request of each image of the batch (GenerationRequest.for_image); a template's prompts are
        filled in for each image's seed and that image's request checked as any request is."""
        checks = self._checks()  # read once: the upscalers here (a folder listing)
        checked = self._validated(req, checks=checks)
        batch = [checked.for_image(index) for index in range(checked.batch_count)]
        if not _is_template(req):
            return batch
        travel = dict(req.extra.get(INTERPOLATE) or {})  # a storyboard's seed-travel in-between
        if travel:  # the keyframe it leads to was filled in with its own seed: the same picks
            target = self.wildcards.expand(travel.get("prompt_b", req.prompt),
                                           travel.get("negative_prompt_b", req.negative_prompt), travel["seed_b"])
            travel.update(prompt_b=_without_lora_tags(target.prompt),
                          negative_prompt_b=_without_lora_tags(target.negative_prompt))
        expanded = []
        for image in batch:
            prompts = self.wildcards.expand(req.prompt, req.negative_prompt, image.seed)
            hires = self._hires_expanded(req, image.seed)
            one = replace(req, prompt=prompts.prompt, negative_prompt=prompts.negative_prompt, seed=image.seed,
                          hires_prompt=hires[0], hires_negative_prompt=hires[1],
                          variation_seed=image.variation_seed, batch_count=1,
                          extra={**req.extra, **({INTERPOLATE: travel} if travel else {})})
            expanded.append(replace(one.validated(self.router.names(), **checks),
                                    prompt_template=prompts.prompt_template,
                                    negative_template=prompts.negative_template))
        return expanded

    def _hires_expanded(self, req: GenerationRequest, seed: int) -> tuple[str, str]:
        """The hires prompts of `req` with their wildcards and options filled in for `seed` (empty without the hires
        fix); InvalidRequest naming the hires prompts when they cannot be."""
        if not req.hires or not (req.hires_prompt or req.hires_negative_prompt):
            return "", ""
        try:
            filled = self.wildcards.expand(req.hires_prompt, req.hires_negative_prompt, seed)
        except InvalidRequest as err:
            raise InvalidRequest(f"In the hires prompts: {err}") from None
        return filled.prompt, filled.negative_prompt

    async def _one_image(self, req: GenerationRequest, cancel: Any, previews: bool,
                         started_at: float, owner: str | None = None) -> AsyncIterator[Event]:
        """One image: its events, then Done with the saved result (the hires fix in two passes, inpaint composited)."""
        made: _Made | None = None
        passes = self._hires_fix if req.hires else self._inpaint if req.inpaints else self._produce
        async for item in passes(req, cancel, previews):
            if isinstance(item, _Made):
                made = item
            else:
                yield item
        if made is not None:
            yield Done(await self._finish(req, made.produced, made.target, made.reason, started_at, owner))

    async def _hires_fix(self, req: GenerationRequest, cancel: Any, previews: bool) -> AsyncIterator[Any]:
        """A1111's hires fix: the image at width x height, upscaled (to the resize size, cropped at the centre to its
        shape, when one is set), then redrawn as image to image at the larger size with the hires strength and
        steps; one stream, the second pass's steps marked "Hires fix"."""
        base: _Made | None = None
        first, (width, height) = req.without_hires(), req.hires_output_size()
        forced = self.backends.get(req.backend)
        if forced is not None:  # it makes both passes: one that cannot redraw an image says so before any work
            self.router.plan(replace(first, init_image=Image.new("RGB", (width, height))))
        async for item in self._produce(first, cancel, previews):
            if isinstance(item, _Made):
                base = item
            else:
                yield item
        if base is None:
            return
        kept = await asyncio.to_thread(cropped_to_shape, base.produced.image, width, height)
        larger, upscaled_on, why = await self._enlarge(kept, width, height, req.hires_upscaler, cancel,
                                                       local_first=True, local_only=forced is not None and forced.local)
        if why:
            yield Fallback(why, to_backend=upscaled_on)
        control = {}
        if req.uses_controlnet and kept is not base.produced.image:  # its map cropped as the picture was
            control = dict(control_image=await asyncio.to_thread(
                lambda: cropped_to_shape(fit(req.control_image, req.width, req.height, req.resize_mode), width,
                                         height)))
        second = replace(first, init_image=larger, width=width, height=height, strength=req.hires_strength,
                         num_inference_steps=req.hires_steps or req.num_inference_steps, **control,
                         extra={**req.extra, FIRST_PASS_STEPS: req.num_inference_steps}, **hires_pass(req))
        async for item in self._produce(second, cancel, previews):
            if isinstance(item, (Progress, Started)):
                item = replace(item, stage=HIRES_STAGE)
            elif isinstance(item, _Made):
                info = _both_passes(base.produced.info, item.produced.info, req)
                item = _Made(replace(item.produced, info=info), item.target, base.reason or item.reason)
            yield item

    async def _enlarge(self, image: Any, width: int, height: int, upscaler: str, cancel: Any = None, *,
                       local_first: bool = False, local_only: bool = False) -> tuple[Any, str | None, str | None]:
        """`image` at width x height with `upscaler` (a name `available_upscalers` lists): Lanczos here; a model
        upscaler on the backends the router plans (Router.plan_upscale), each failing one (BackendUnavailable)
        handing over to the next. Returns (the image, the backend that ran the model or None, why it fell back)."""
        if upscaler == LANCZOS:
            return await asyncio.to_thread(lanczos, image, width, height), None, None
        owners = self.router.plan_upscale(upscaler, local_first=local_first, local_only=local_only)
        reason: str | None = None
        for number, backend in enumerate(owners, start=1):
            try:
                return await backend.upscale(image, width, height, upscaler, cancel), backend.name, reason
            except BackendUnavailable as err:
                if number == len(owners):
                    raise
                reason = str(err)
                self._record_switch(f"Fell back to {owners[number].name}", reason)
        raise BackendUnavailable(f"No backend could upscale with {upscaler}.")  # plan_upscale never plans none

    async def _inpaint(self, req: GenerationRequest, cancel: Any, previews: bool) -> AsyncIterator[Any]:
        """Inpaint or outpaint (engine/inpaint.py): the backend draws what `prepare_inpaint` gives it, and the
        drawing is composited back over the picture, so pixels outside the blurred mask stay exactly as they were."""
        job = await asyncio.to_thread(prepare_inpaint, req)
        async for item in self._produce(job.request, cancel, previews):
            if isinstance(item, _Made):
                image = await asyncio.to_thread(job.composite, item.produced.image)
                item = _Made(replace(item.produced, image=image), item.target, item.reason)
            yield item

    async def _produce(self, req: GenerationRequest, cancel: Any, previews: bool) -> AsyncIterator[Any]:
        """One image along the router's plan: each target in turn until one produces it; the events, then
        `_Made` (the image, its target, the fallback reason), unsaved."""
        plan = self.router.plan(req)
        reason = plan.skipped
        if reason and (req.model or AUTO).lower() == AUTO and plan.targets[0].backend == self.router.last_resort.name \
                and self._local_is_normal():
            reason = None  # nothing was ever up to fall back from: the status tab says so once
        if reason:  # a plan, not a change of state: the switch log has the server's own up/down rows
            yield Fallback(reason, to_backend=plan.targets[0].backend)
        for number, target in enumerate(plan.targets, start=1):
            produced: Produced | None = None
            try:
                events = self.backends[target.backend].stream(req, target, cancel, previews)
                async with aclosing(events) as stream:
                    async for event in stream:
                        if isinstance(event, Produced):
                            produced = event
                        else:
                            yield event
            except BackendUnavailable as err:
                if number == len(plan.targets):
                    raise
                reason = str(err)
                following = plan.targets[number].backend
                self._record_switch(f"Fell back to {following}", reason)
                yield Fallback(reason, to_backend=following)
                continue
            if produced is None:
                raise BackendUnavailable("The backend finished without producing an image.")
            yield _Made(produced, target, reason)
            return

    async def _finish(self, req: GenerationRequest, produced: Produced, target: Target, fallback_reason: str | None,
                      started_at: float, owner: str | None = None) -> ImageResult:
        """The typed result, saved with its parameters (before anyone sees it)."""
        info, image = produced.info, produced.image
        if info.get(MODEL_FILES_LEFT_OUT):  # a stand-in model ran without them: the image records none
            req = req.without_model_files()
        result = ImageResult(
            status="success", prompt=req.prompt, negative_prompt=req.negative_prompt, width=image.width,
            height=image.height, num_inference_steps=req.num_inference_steps,
            guidance_scale=info.get("guidance", req.guidance_scale), seed=req.seed, sampler=req.sampler,
            loras=[{"name": use.name, "weight": use.weight} for use in req.loras], vae=req.vae,
            strength=req.hires_strength if req.hires else req.strength if req.init_image is not None else None,
            **_hires_size_fields(req),
            hires_steps=(req.hires_steps or req.num_inference_steps) if req.hires else None,
            hires_upscaler=req.hires_upscaler if req.hires else None,
            hires_sampler=req.hires_sampler if req.hires and req.hires_sampler != P.SAME_SAMPLER else None,
            hires_prompt=with_lora_tags(req.hires_prompt, req.hires_loras or ()) if req.hires_prompt else None,
            hires_negative_prompt=req.hires_negative_prompt or None,
            hires_checkpoint=info.get("hires_checkpoint"),
            first_pass_size=(req.width, req.height) if req.hires else None,
            mask_blur=req.mask_blur if req.inpaints else None,
            inpaint_area=req.inpaint_area if req.inpaints else None,
            masked_content=req.masked_content if req.inpaints else None,
            only_masked_padding=req.only_masked_padding if req.inpaints and req.inpaint_area == ONLY_MASKED else None,
            outpaint=dict(zip(P.OUTPAINT_SIDES, req.outpaint)) if any(req.outpaint) else None,
            **controlnet_fields(req),
            model=info.get("model"), model_id=info.get("model_id"), model_hash=info.get("model_hash"),
            lora_hashes=info.get("lora_hashes"),
            clip_skip=info["clip_skip"] if info.get("clip_skip", 1) > 1 else None,
            variation_seed=req.variation_seed if req.varies else None,
            variation_strength=req.variation_strength if req.varies else None,
            freeu=True if info.get("freeu") else None, tiling=True if info.get("tiling") else None,
            cfg_rescale=req.cfg_rescale if info.get("cfg_rescale") else None,
            model_license=info.get("license") or _license_of(target, info.get("model_id")), backend=target.backend,
            server=info.get("server"), prompt_id=info.get("prompt_id"), comfyui_workflow=info.get("workflow"),
            user_workflow=info.get("user_workflow"), graph=info.get("graph"), fallback_reason=fallback_reason,
            prompt_template=req.prompt_template, negative_template=req.negative_template,
            warnings=[*info.get("warnings", []), *_unused_clip_skip(req, info), *_unused_freeu(req, info),
                      *_unused_cfg_rescale(req, info)],
            image=image)
        save_started = time.perf_counter()
        path = await asyncio.to_thread(save_image, image, result.parameters(), self.settings.output_dir, owner,
                                       graph=result.graph)
        now = time.perf_counter()
        result.path = str(path)
        result.timings = {"total_s": round(now - started_at, 4),
                          "generation_s": round(info.get("generation_s", save_started - started_at), 4),
                          "save_s": round(now - save_started, 4)}
        return result

    async def generate_image(self, prompt: str, negative_prompt: str = P.NEGATIVE_PROMPT.default,
                             width: int | None = None, height: int | None = None,
                             num_inference_steps: int = P.STEPS.default,
                             guidance_scale: float | None = P.GUIDANCE.default, seed: int | None = None,
                             model: str | None = None, backend: str = P.BACKEND.default,
                             watch: Callable[[Event], None] | None = None, **kwargs: Any) -> ImageResult:
        """Generate one image (or a batch) and return its result (status "success" or "error", never raises).
        For a batch, the first image's result lists every image's result in `batch` (skipped images have none).
        `watch`, when given, sees each event of the stream as it comes (progress for a caller that polls)."""
        results: list[ImageResult] = []
        failed: ImageResult | None = None
        skipped = 0
        async for event in self.stream_image(prompt, negative_prompt, width, height, num_inference_steps,
                                             guidance_scale, seed, model, backend, **kwargs):
            if watch is not None:
                watch(event)
            if isinstance(event, Done):
                results.append(event.result)
            elif isinstance(event, Failed):
                failed = event.result or error_result(event.error)
            elif isinstance(event, Skipped):
                skipped += 1
            elif isinstance(event, Fallback):
                logger.info("Fallback: %s", event.reason)
        nothing = "Skipped: no image was finished." if skipped else "No result."
        final = failed or (results[0] if results else error_result(nothing))
        if len(results) > 1 or (failed and results):
            final = replace(final, batch=results)  # a copy: the batch's first result is not its own item
        return final

    async def stream_xyz_plot(self, prompt: str, x_type: str = P.NO_AXIS, x_values: Any = "",
                              y_type: str = P.NO_AXIS, y_values: Any = "", z_type: str = P.NO_AXIS,
                              z_values: Any = "", *, cancel: asyncio.Event | None = None,
                              skip: asyncio.Event | None = None, previews: bool = True,
                              owner: str | None = None, rng: Any = None, **image: Any) -> AsyncIterator[Event]:
        """An X/Y/Z plot (engine/xyz_plot.py) as a stream of events: per cell PlotCell ("Cell 3/4"), then the cell's
        own events as `stream_image` yields them (Started, Progress..., Fallback, Done with its saved image); at the
        end Done with the grid's result (saved as its own PNG, the cells' results in `batch`), or Failed.

        Each axis is a type (seed, steps, guidance, sampler, model, lora_weight, strength, clip_skip,
        variation_seed, variation_strength, prompt_sr, cfg_rescale, by these names, their labels or A1111's;
        Nothing leaves it out) and its values (A1111's text: "1, 2, 3", "1-10 (+3)", "10-20 [3]", quoted names with commas; or a
        list). `style` (a name or a list) is applied in each cell after its Prompt S/R. `image` takes
        `stream_image`'s arguments, which every cell shares; the plot makes one image per cell (no batch count).
        Every problem is a sentence before any work: an axis with no values, an unknown axis type, a value its
        parameter refuses (the axis named), an unknown model or sampler, more cells than GATOR_MAX_GRID_IMAGES, or
        more work than the per-request budget for all cells together. `rng` draws the seeds -1 asks for."""
        await self.initialize_models()
        image = {ALIASES.get(name, name): value for name, value in image.items()}
        batch = image.pop(P.BATCH_COUNT.name, None)
        style = image.pop("style", None)
        req = GenerationRequest.from_arguments(prompt, **image)  # TypeError for an argument stream_image lacks
        try:
            styles = self.styles.chosen(style)  # applied in each cell, after its Prompt S/R (as A1111 does)
            if batch not in (None, 1):
                raise InvalidRequest("An X/Y/Z plot makes one image per cell: leave Batch count at 1.")
            asked, req = req, self._validated(req, rng)
            plot = plan_plot(((x_type, x_values), (y_type, y_values), (z_type, z_values)), self.settings.limits,
                             self.router.unknown_model, rng)
            written = (asked.prompt, asked.negative_prompt) if plot.searches_written_prompt() else ()
            problems = plot.request_problems(req, self.settings.limits, written)
            if problems:
                raise InvalidRequest(" ".join(problems))
            strongest = plot.strongest_variation(req)
            if strongest > 0:  # a cell varies: every cell's request must allow it, on a backend that can do it
                varied = self._validated(replace(asked, variation_strength=strongest), rng)
                image[P.BACKEND.name] = self.router.plan(varied).targets[0].backend  # the whole grid there
        except GatorError as err:
            yield Failed(str(err), self._error_result(req, str(err)))
            return
        # every cell: the seeds drawn once, the prompt's LoRA tags as the loras list (the LoRA weight axis sets one);
        # a template goes to each cell as written, filled in there
        variation = req.variation_seed if req.varies else P.concrete_seed(image.get(P.VARIATION_SEED.name), rng)
        shared = {**image, "prompt": req.prompt, "seed": req.seed, P.VARIATION_SEED.name: variation,
                  "loras": [{"name": use.name, "weight": use.weight} for use in req.loras]}
        if plot.searches_written_prompt():  # Prompt S/R: each cell reads the tags of its replaced prompt itself
            shared.update(prompt=asked.prompt, loras=image.get(P.LORAS.name) or [])
        elif req.hires_loras is not None:  # the hires pass keeps its own LoRAs, not the first prompt's tags
            shared.update(hires_prompt=req.hires_prompt, extra={**(image.get("extra") or {}), HIRES_LORAS: [
                {"name": use.name, "weight": use.weight} for use in req.hires_loras]})

        def cell(**arguments: Any) -> AsyncIterator[Event]:
            if styles:
                arguments["prompt"], arguments[P.NEGATIVE_PROMPT.name] = apply_styles(
                    styles, arguments["prompt"], arguments.get(P.NEGATIVE_PROMPT.name) or "")
            return self.stream_image(**arguments)

        async with aclosing(stream_plot(cell, plot, shared, self.settings.output_dir, owner=owner,
                                        cancel=cancel, skip=skip, previews=previews)) as events:
            async for event in events:
                yield event

    async def xyz_plot(self, prompt: str, x_type: str = P.NO_AXIS, x_values: Any = "", y_type: str = P.NO_AXIS,
                       y_values: Any = "", z_type: str = P.NO_AXIS, z_values: Any = "", **kwargs: Any) -> ImageResult:
        """`stream_xyz_plot` drained: the grid's result (its cells' in `batch`), or status "error" with a sentence
        (the cells made before it in `batch`); never raises for bad input."""
        final = error_result("No result.")
        async for event in self.stream_xyz_plot(prompt, x_type, x_values, y_type, y_values, z_type, z_values,
                                                **kwargs):
            if isinstance(event, Done) and event.result.plot is not None:
                final = event.result
            elif isinstance(event, Failed):
                final = event.result or error_result(event.error)
        return final

    async def stream_prompt_list(self, prompts: Any, prompt: str = "", *, position: str = LIST_END,
                                 iterate_seed: bool = False, same_seed: bool = False,
                                 cancel: asyncio.Event | None = None, skip: asyncio.Event | None = None,
                                 previews: bool = True, owner: str | None = None, rng: Any = None,
                                 **image: Any) -> AsyncIterator[Event]:
        """A1111's "Prompts from file or textbox" (engine/prompt_list.py) as a stream of events: per prompt ListLine
        ("Prompt 2/5"), then the line's own events as `stream_image` yields them (a Done per image). `prompts` holds a
        prompt, or A1111's `--prompt ... --steps ...` form, per line; each goes at the `position` ("start" or "end") of
        `prompt`, and `image` takes `stream_image`'s other arguments, which every line shares (a line's options replace
        them for that line; `style` applies to each). Every line is read and checked before any work, a problem a
        sentence naming its line (Failed); a line that fails at run time ends the list with its sentence (the images
        made before it stay saved). `iterate_seed` and `same_seed` are A1111's seed options; `rng` draws the seeds."""
        await self.initialize_models()
        image = {ALIASES.get(name, name): value for name, value in image.items()}
        style = image.pop("style", None)
        try:
            lines = read_lines(prompts, prompt or "", image.pop(P.NEGATIVE_PROMPT.name, "") or "",
                               image.pop("seed", None), position=position, iterate_seed=iterate_seed,
                               same_seed=same_seed, batch_count=image.get(P.BATCH_COUNT.name, 1),
                               limit=self.settings.limits.max_prompt_lines, rng=rng)
            runs = [await asyncio.to_thread(self._list_line, line, image, style, rng) for line in lines]
        except GatorError as err:
            yield Failed(str(err), error_result(str(err)))
            return
        for number, (line, arguments) in enumerate(zip(lines, runs), start=1):
            yield ListLine(number, len(lines), line.label)
            async with aclosing(self.stream_image(**arguments, cancel=cancel, skip=skip, previews=previews,
                                                  owner=owner)) as events:
                async for event in events:
                    if isinstance(event, Failed) and not event.error.startswith("Cancelled"):
                        event = Failed(f"Line {line.number}: {event.error}", event.result)
                    yield event
                    if isinstance(event, Failed):
                        return

    def _list_line(self, line: PromptLine, image: dict[str, Any], style: Any, rng: Any) -> dict[str, Any]:
        """A prompt list line's `stream_image` arguments, its styles applied; InvalidRequest naming the line when its
        request is not one `stream_image` would take."""
        arguments = {**image, **line.arguments}
        try:
            arguments["prompt"], arguments[P.NEGATIVE_PROMPT.name] = self.styles.apply(
                arguments.pop("style", style), arguments["prompt"], arguments.get(P.NEGATIVE_PROMPT.name) or "")
            req = GenerationRequest.from_arguments(arguments["prompt"],
                                                   **{k: v for k, v in arguments.items() if k != "prompt"})
            checked = self._validated(req, rng)
            unknown = self.router.unknown_model(checked.model or AUTO)
            if unknown:
                raise InvalidRequest(unknown)
        except InvalidRequest as err:
            raise InvalidRequest(f"Line {line.number}: {err}") from None
        return {**arguments, "seed": checked.seed}  # a random seed drawn now: the line's images keep it

    async def prompt_list(self, prompts: Any, prompt: str = "", **kwargs: Any) -> ImageResult:
        """`stream_prompt_list` drained: the first image's result with every line's images in `batch`, or status
        "error" with a sentence (the images made before it in `batch`); never raises for bad input."""
        results: list[ImageResult] = []
        failed: ImageResult | None = None
        async for event in self.stream_prompt_list(prompts, prompt, **kwargs):
            if isinstance(event, Done):
                results.append(event.result)
            elif isinstance(event, Failed):
                failed = replace(event.result or error_result(event.error), error=event.error)
        final = failed or (results[0] if results else error_result("No result."))
        return replace(final, batch=results) if results else final

    async def stream_video(self, prompt: Any = None, video_type: str = "multi_frame", quality: str = "high",
                           use_ai_generation: bool = True, owner: str | None = None,
                           **kwargs: Any) -> AsyncIterator[Any]:
        """Render a storyboard (or a list of prompts) to an mp4 as a stream of events; see engine/video.py.
        `owner` (a login) saves the video and its keyframes under outputs/<owner>/."""
        from .video import stream_video

        await self.initialize_models()
        async with aclosing(stream_video(self._image_stream(owner), self.settings.output_dir, prompt=prompt,
                                         video_type=video_type, quality=quality,
                                         use_ai_generation=use_ai_generation, can_interpolate=self.can_interpolate,
                                         limits=self.settings.limits, owner=owner, **kwargs)) as events:
            async for event in events:
                yield event

    async def generate_video(self, prompt: Any = None, video_type: str = "multi_frame", quality: str = "high",
                             use_ai_generation: bool = True, owner: str | None = None,
                             **kwargs: Any) -> dict[str, Any]:
        """Render a storyboard (or a list of prompts) to an mp4; see engine/video.py. `owner` as in stream_video."""
        from .video import generate_video

        await self.initialize_models()
        return await generate_video(self._image_stream(owner), self.settings, prompt=prompt, video_type=video_type,
                                    quality=quality, use_ai_generation=use_ai_generation,
                                    can_interpolate=self.can_interpolate, limits=self.settings.limits, owner=owner,
                                    **kwargs)

    def _image_stream(self, owner: str | None) -> Any:
        """`stream_image` saving under `owner`'s folder (the video's keyframes go where the video goes)."""
        return self.stream_image if owner is None else partial(self.stream_image, owner=owner)

    @staticmethod
    def _error_result(req: GenerationRequest, message: str) -> ImageResult:
        known = {"prompt": req.prompt, "seed": req.seed} if isinstance(req.prompt, str) else {"seed": req.seed}
        return error_result(message, model=req.model if isinstance(req.model, str) else None, **known)

    async def upscale_image(self, image: Any, scale: float = P.UPSCALE_BY.default, upscaler: str = P.UPSCALER.default,
                            owner: str | None = None) -> ImageResult:
        """A finished image (PIL, or a file path from a trusted caller) enlarged `scale` times with `upscaler` (one
        of `available_upscalers()`: Lanczos, or a model upscaler, which runs on a ComfyUI server that has it and
        otherwise, or when that fails, on this machine) and saved as a new PNG with the parameters it carried plus
        the upscale (A1111's "Postprocess upscale by" and "Postprocess upscaler"); never raises for bad input:
        status "error" with a sentence."""
        await self.initialize_models()
        try:
            problem = P.UPSCALE_BY.problem(scale)
            if problem:
                raise InvalidRequest(problem)
            names = self.available_upscalers()
            if upscaler_named(upscaler, names) is None:
                raise InvalidRequest(unknown_upscaler(upscaler, names))
            upscaler = upscaler_named(upscaler, names)
            source = await asyncio.to_thread(read_input_image, image, self.settings.limits, "image")
            width, height = round(source.width * float(scale)), round(source.height * float(scale))
            problem = self.settings.limits.input_image_problem(width, height, "upscaled image")
            if problem:
                raise InvalidRequest(problem)
            larger, backend, why = await self._enlarge(source, width, height, upscaler)
            carried = await asyncio.to_thread(png_info, image) if isinstance(image, (str, Path)) else {}
            carried.pop("source", None)
            # the size the image was made at stays (as A1111's Extras keeps it): Reuse makes that image again
            size = {} if carried.get("width") else {"width": width, "height": height}
            params = {**carried, **size, "upscale_by": float(scale), "upscaler": upscaler}
            path = await asyncio.to_thread(save_image, larger, params, self.settings.output_dir, owner)
        except GatorError as err:
            return error_result(str(err))
        except Exception as err:  # a model that fails while it runs: a sentence, not a traceback
            logger.exception("Upscale failed")
            return error_result(f"The upscale failed ({type(err).__name__}); the server log has the details.")
        return ImageResult(status="success", prompt=str(params.get("prompt") or ""), width=width, height=height,
                           seed=params.get("seed"), model=params.get("model"), path=str(path), image=larger,
                           backend=backend, fallback_reason=why,
                           warnings=[f"Upscaled {float(scale):g}x with {upscaler}."])

    def saved_images(self, limit: int = 60, owner: str | None = None) -> list[Path]:
        """The newest saved images in the outputs folder, newest first: regular files whose real path is inside
        it, never a symlink. `owner` (a login) lists only that login's images; None (no login) or an admin
        (`admins`) lists everything."""
        return find_saved_images(self.settings.output_dir, limit, None if owner in self.admins else owner)

    def saved_outputs(self, owner: str | None = None) -> list[Path]:
        """Every saved image and video, newest first (no limit); `owner` as in `saved_images`."""
        return find_saved_outputs(self.settings.output_dir, None if owner in self.admins else owner)

    def delete_output(self, path: str | Path, owner: str | None = None) -> Path:
        """Delete one saved result: a regular file inside the outputs folder (`owner`'s folder for a login that
        is not an admin). Raises DeleteRefused with a sentence for anything else."""
        return remove_output(self.settings.output_dir, path, None if owner in self.admins else owner)


@dataclass(frozen=True)
class _Made:
    """What one pass produced, before it is saved: the image, the target that made it, why it fell back."""

    produced: Produced
    target: Target
    reason: str | None


def _named_files(listed: Iterable[tuple[str, dict[str, str | None]]]) -> list[dict[str, Any]]:
    """Files the backends list by name (name -> family, per backend), once per name (case-insensitive), with the first
    family a backend knows (ComfyUI says none): [{"name", "family", "family_label", "backends"}] by name."""
    found: dict[str, dict[str, Any]] = {}
    for backend, files in listed:
        for name, family in files.items():
            entry = found.setdefault(name.lower(), {"name": name, "family": family,
                                                    "family_label": family_of(family).label, "backends": []})
            entry["family"] = entry["family"] or family
            entry["family_label"] = family_of(entry["family"]).label
            entry["backends"].append(backend)
    return sorted(found.values(), key=lambda e: e["name"].lower())


def controlnet_fields(req: GenerationRequest) -> dict[str, Any]:
    """The result's ControlNet fields of a request ({} without a ControlNet; the thresholds only for canny)."""
    if not req.uses_controlnet:
        return {}
    fields = dict(controlnet=req.controlnet, controlnet_module=req.controlnet_module,
                  controlnet_weight=req.controlnet_weight, controlnet_start=req.controlnet_start,
                  controlnet_end=req.controlnet_end)
    return {**fields, **(dict(canny_low=req.canny_low, canny_high=req.canny_high)
                         if req.controlnet_module == CANNY else {})}


def _license_of(target: Target, model_id: str | None) -> str:
    """The license of the model that made an image: the target's, or the tiny model's when a backend swapped it in."""
    if model_id and model_id != target.model.id and model_id == builtin_model().id:
        return builtin_model().license
    return target.model.license


def _both_passes(first: dict[str, Any], second: dict[str, Any], req: GenerationRequest) -> dict[str, Any]:
    """The hires result's info (the second pass's) with what the first pass did too: the hashes of both passes'
    LoRAs, the first pass's model when a hires checkpoint redrew it (that one as `hires_checkpoint`, both licenses),
    and CFG rescale when only the first pass could use it (said in a warning)."""
    hashes = [pair for info in (first, second) for pair in (info.get("lora_hashes") or "").split(", ") if pair]
    info = {**second, "lora_hashes": ", ".join(dict.fromkeys(hashes)) or None}
    # a hires checkpoint redrew it: the model recorded is the first pass's, as A1111 records it (a pass that merely
    # fell back to another backend's model is recorded as made there, as any fallback is)
    if req.hires_checkpoint and first.get("model_id") != second.get("model_id"):
        licenses = dict.fromkeys(license for license in (first.get("license"), second.get("license")) if license)
        info.update({key: first.get(key) for key in ("model", "model_id", "model_hash")},
                    license="; ".join(licenses) or None, hires_checkpoint=second.get("model_id"))
    if first.get("cfg_rescale") and not second.get("cfg_rescale"):
        why = second.get("cfg_rescale_unused") or "its backend cannot rescale the guidance"
        info.update(cfg_rescale=True, warnings=[*second.get("warnings", []), f"{P.CFG_RESCALE.label} "
                                                f"{req.cfg_rescale:g} was used in the first pass only: {why}."])
    return info


def hires_pass(req: GenerationRequest) -> dict[str, Any]:
    """What the hires pass of `req` changes besides its size, steps and strength: A1111's hires prompt (with its own
    LoRAs), hires negative prompt, hires sampler and hires checkpoint, where given."""
    changed: dict[str, Any] = {}
    if req.hires_prompt:
        changed.update(prompt=req.hires_prompt, loras=req.hires_loras)
    if req.hires_negative_prompt:
        changed["negative_prompt"] = req.hires_negative_prompt
    if req.hires_sampler != P.SAME_SAMPLER:
        changed["sampler"] = req.hires_sampler
    if req.hires_checkpoint:
        changed["model"] = req.hires_checkpoint
    return changed


def _model_entry(spec: ModelSpec, backend: Backend, available: bool, note: str = "") -> dict[str, Any]:
    """A model as the status tab and the model dropdown list it."""
    sampling = ", ".join(what for what, marked in (("v-prediction", spec.v_prediction), ("zero terminal SNR",
                                                                                      spec.zero_snr)) if marked)
    return {"id": spec.id, "label": spec.label, "backend": backend.name, "backends": [backend.name],
            "backend_label": backend.label, "family": spec.family,
            "family_label": family_of(spec.family).label + (f" ({sampling})" if sampling else ""),
            "available": available, "note": note, "default_steps": spec.default_steps,
            "default_guidance": spec.default_guidance, "native_size": spec.native_size, "license": spec.license,
            "v_prediction": spec.v_prediction, "zero_snr": spec.zero_snr}


def _is_template(req: GenerationRequest) -> bool:
    """Whether a prompt of `req` (or of the seed-travel keyframe it leads to) has {...} options or __wildcards__."""
    travel = req.extra.get(INTERPOLATE) or {}
    hires = (req.hires_prompt, req.hires_negative_prompt) if req.hires else ()
    return any(has_variants(text) for text in (req.prompt, req.negative_prompt, travel.get("prompt_b"),
                                               travel.get("negative_prompt_b"), *hires))


def _hires_size_fields(req: GenerationRequest) -> dict[str, Any]:
    """How a result records the hires fix's size, as A1111 does: its resize size when one was set (the other side
    as worked out), else its upscale; None for each without a hires fix."""
    if not req.hires:
        return dict(hires_scale=None, hires_resize_width=None, hires_resize_height=None)
    if not req.hires_resize_width and not req.hires_resize_height:
        return dict(hires_scale=req.hires_scale, hires_resize_width=None, hires_resize_height=None)
    width, height = req.hires_output_size()
    return dict(hires_scale=None, hires_resize_width=width, hires_resize_height=height)


def _without_lora_tags(text: str) -> str:
    """A filled-in seed-travel prompt as its keyframe's encoder saw it: LoRA tags out (they apply to the keyframe)."""
    try:
        return take_lora_tags(text)[0]
    except BadTag as err:
        raise InvalidRequest(str(err)) from None


def _unused_cfg_rescale(req: GenerationRequest, info: dict[str, Any]) -> list[str]:
    """A warning when the request asked for CFG rescale and the backend did not use it (with its reason)."""
    if not req.cfg_rescale or info.get("cfg_rescale"):
        return []
    why = info.get("cfg_rescale_unused") or "this backend cannot rescale the guidance"
    return [f"{P.CFG_RESCALE.label} {req.cfg_rescale:g} was not used: {why}."]


def _unused_freeu(req: GenerationRequest, info: dict[str, Any]) -> list[str]:
    """A warning when the request asked for FreeU and the backend did not use it (the backend's reason, if it gave
    one as `freeu_unused`)."""
    if not req.freeu or info.get("freeu"):
        return []
    families = ", ".join(f.label for f in load_families().values() if f.freeu)
    why = info.get("freeu_unused") or f"it is for {families} models run through this app's own graphs"
    return [f"FreeU was not used: {why}."]


def _unused_clip_skip(req: GenerationRequest, info: dict[str, Any]) -> list[str]:
    """A warning when the request asked for a Clip skip that the backend did not use."""
    if req.clip_skip <= 1 or info.get("clip_skip", 1) > 1:
        return []
    families = " and ".join(f.label for f in load_families().values() if f.clip_skip)
    return [f"Clip skip {req.clip_skip} was not used: only {families} models run through this app's own graphs "
            "take one."]
