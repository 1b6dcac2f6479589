"""AIModelManager: the one public API of the engine.

A generation is an async iterator of events (engine/events.py). `stream_image` picks the backend
(ComfyUI when it is up and has the model, else the best local diffusers model), falls back when
ComfyUI fails, saves the result with its parameters, and ends with Done or Failed.
`generate_image` is `stream_image` drained to its end.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator

from .config import Settings
from .diffusers_backend import DiffusersBackend
from .errors import BackendUnavailable, GatorError, GenerationCancelled, InvalidRequest
from .events import Done, Event, Failed, Fallback, Produced, Started
from .outputs import save_image
from .registry import Hardware, ModelSpec, best_local_model, find_model, load_catalogue, probe_hardware
from .request import GenerationRequest
from .tiny_model import ensure_tiny_model
from .weights import Missing, WeightSource, locate_weights

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    """What one request has gathered so far: the image, where it ran, warnings, why it fell back."""

    produced: Produced | None = None
    backend: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    fallback_reason: str | None = None


@dataclass(frozen=True)
class Plan:
    """Which backend a request tries first: a ComfyUI model id, and the local model to fall back to."""

    comfyui_model: str | None
    local_model: ModelSpec | None
    fallback_note: str | None = None  # why ComfyUI is skipped although it was wanted


class AIModelManager:
    """Generate images and storyboard videos on ComfyUI or local diffusers pipelines."""

    def __init__(self, settings: Settings | None = None, hardware: Hardware | None = None,
                 *, start_monitor: bool = True) -> None:
        self.settings = settings or Settings.from_env()
        self.hardware = hardware
        self.local: DiffusersBackend | None = None
        self.monitor = None
        self.comfyui = None
        self.weights: dict[str, WeightSource | Missing] = {}
        self.notices: list[str] = []
        self.switches: deque[dict[str, Any]] = deque(maxlen=50)
        self._start_monitor = start_monitor
        self._init_lock = asyncio.Lock()
        self._initialized = False

    # -- start-up ------------------------------------------------------------------------------
    async def initialize_models(self) -> dict[str, Any]:
        """Probe the hardware, find weights, build the tiny model, start the ComfyUI monitor. Idempotent."""
        if self._initialized:  # the common case takes no lock (requests may come from another event loop)
            return self.status()
        async with self._init_lock:
            if not self._initialized:
                await asyncio.to_thread(self._initialize_sync)
                self._initialized = True
        return self.status()

    def _initialize_sync(self) -> None:
        if self.hardware is None:
            self.hardware = probe_hardware()
        logger.info("Hardware: %s", self.hardware.describe())
        self.local = DiffusersBackend(self.hardware, allow_downloads=self.settings.allow_downloads)
        ensure_tiny_model(self.settings.tiny_dir)
        import diffusers.pipelines  # noqa: F401  (imported now so a fallback never waits on it)
        for spec in load_catalogue():
            if spec.local:
                self.weights[spec.id] = locate_weights(spec, self.settings.models_dir, self.settings.tiny_dir,
                                                       self.settings.allow_downloads)
        self.notices = [w.reason for w in self.weights.values() if isinstance(w, Missing)]
        for notice in self.notices:
            logger.warning("%s", notice)
        best = self.best_local()
        if best.engine == "tiny":
            logger.warning("No real diffusers weights found: local generation uses the tiny demo model.")
        if self.settings.enable_comfyui and self.settings.comfyui_urls:
            self._start_comfyui()

    def _start_comfyui(self) -> None:
        from .comfyui_backend import ComfyUIBackend
        from .health import HealthMonitor

        self.monitor = HealthMonitor(self.settings.comfyui_urls, interval_s=self.settings.health_interval_s,
                                     timeout_s=self.settings.health_timeout_s)
        self.monitor.subscribe(self._on_server_change)
        if self._start_monitor:
            self.monitor.poll_now()
            self.monitor.start()
        self.comfyui = ComfyUIBackend(self.settings, self.monitor)

    def _on_server_change(self, url: str, old: Any, new: Any) -> None:
        state = "up" if getattr(new, "up", False) else "down"
        reason = getattr(new, "last_error", None) or ""
        self._record_switch(f"ComfyUI {url} is {state}", reason)

    def _record_switch(self, what: str, reason: str = "") -> None:
        self.switches.appendleft({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "event": what, "reason": reason,
                                  "backend": self.active_backend()["label"] if self._initialized else ""})

    def use_gpu_decorator(self, decorator: Any) -> None:
        """Wrap local pipeline calls, e.g. with `spaces.GPU(duration=120)` on a ZeroGPU Space."""
        self.local.wrap_generation(decorator)

    def shutdown(self) -> None:
        """Stop the background monitor."""
        if self.monitor is not None:
            self.monitor.stop()

    # -- what is available ---------------------------------------------------------------------
    def best_local(self) -> ModelSpec:
        """The best local model that fits this machine and whose weights are here (tiny at worst)."""
        available = {mid for mid, src in self.weights.items() if isinstance(src, WeightSource)}
        return best_local_model(self.hardware, available)

    def comfyui_up(self) -> bool:
        return bool(self.monitor is not None and self.monitor.up_servers())

    def comfyui_models(self) -> list[dict[str, Any]]:
        """Models installed on up ComfyUI servers (FLUX only when its files are there)."""
        return self.comfyui.available_models() if self.comfyui is not None and self.comfyui_up() else []

    def available_models(self) -> list[dict[str, Any]]:
        """Every model a request can name now: ComfyUI ones first, then local ones whose weights are here."""
        models = [dict(m, available=True) for m in self.comfyui_models()]
        for spec in load_catalogue():
            if spec.local:
                src = self.weights.get(spec.id)
                models.append({"id": spec.id, "label": spec.label, "engine": spec.engine, "family": spec.family,
                               "available": isinstance(src, WeightSource),
                               "note": src.reason if isinstance(src, Missing) else ""})
        return models

    def default_comfyui_model(self) -> str | None:
        models = self.comfyui_models()
        return models[0]["id"] if models else None

    def active_backend(self) -> dict[str, str]:
        """What a request with default settings would run on now: the live badge's content."""
        comfy_models = self.comfyui_models()  # the first is what default_comfyui_model() picks
        if comfy_models:
            return {"backend": "comfyui", "label": f"ComfyUI · {comfy_models[0]['label']}", "reason": ""}
        if self.comfyui is not None and self.comfyui_up():
            reason = "no model installed on ComfyUI"
        elif self.comfyui is not None:
            reason = "ComfyUI unreachable"
        else:
            reason = "ComfyUI disabled"
        best = self.best_local() if self.hardware else None
        if best is None or best.engine == "tiny":
            return {"backend": "tiny", "label": f"tiny demo model (no real weights found; {reason})", "reason": reason}
        return {"backend": "diffusers", "label": f"diffusers · {best.label} (fallback: {reason})", "reason": reason}

    def status(self) -> dict[str, Any]:
        """Everything the System status tab shows."""
        servers = [asdict(state) for state in self.monitor.snapshot().values()] if self.monitor else []
        local = self.local
        return {
            "active": self.active_backend() if self._initialized else {"backend": "", "label": "starting…", "reason": ""},
            "servers": servers,
            "hardware": {"device": self.hardware.device, "name": self.hardware.device_name,
                         "vram_gb": round(self.hardware.vram_gb, 1), "ram_gb": round(self.hardware.ram_gb, 1),
                         "summary": self.hardware.describe()} if self.hardware else {},
            "loaded_model": local.loaded_model if local else None,
            "models": self.available_models() if self._initialized else [],
            "notices": list(self.notices),
            "output_dir": str(self.settings.output_dir),
            "comfyui_dir": str(self.settings.comfyui_dir) if self.settings.comfyui_dir else None,
            "switches": list(self.switches),
        }

    # -- planning ------------------------------------------------------------------------------
    def _plan(self, req: GenerationRequest) -> Plan:
        """Decide where `req` runs first. Raises InvalidRequest for models or combinations that cannot work."""
        model = (req.model or "").strip()
        if model.lower() in ("", "auto"):
            if req.backend == "diffusers":
                return Plan(None, None)
            comfy = self.default_comfyui_model()
            if comfy:
                return Plan(comfy, None)
            note = self._comfyui_unavailable_reason(None)
            if req.backend == "comfyui":
                raise BackendUnavailable(note)
            return Plan(None, None, note if self.comfyui is not None else None)
        if model.startswith("comfyui:") or (self.comfyui is not None and self.comfyui.has_model(model)
                                            and not (find_model(model) and find_model(model).local)):
            return self._plan_comfyui(req, model)
        spec = find_model(model)
        if spec is None:
            known = ", ".join(m["id"] for m in self.available_models() if m.get("available"))
            raise InvalidRequest(f"Unknown model {model!r}. Available models: {known}.")
        if spec.engine == "comfyui":
            if req.backend == "diffusers":
                raise InvalidRequest(f"{spec.label} runs on ComfyUI only; choose backend auto or comfyui, "
                                     "or a local model.")
            return self._plan_comfyui(req, spec.id)
        if req.backend == "comfyui":
            raise InvalidRequest(f"{spec.label} is a local diffusers model; choose backend auto or diffusers, "
                                 "or a ComfyUI model.")
        return Plan(None, spec)

    def _plan_comfyui(self, req: GenerationRequest, model_id: str) -> Plan:
        """ComfyUI first when a server has `model_id`; otherwise the best local model (auto) or an error."""
        if self.comfyui is not None and self.comfyui.pick_server(model_id):
            return Plan(model_id, None)
        reason = self._comfyui_unavailable_reason(model_id)
        if req.backend == "comfyui":
            raise BackendUnavailable(reason)
        return Plan(None, None, reason)

    def _comfyui_unavailable_reason(self, model_id: str | None) -> str:
        if self.comfyui is None:
            return "ComfyUI is disabled (GATOR_ENABLE_COMFYUI=0)."
        urls = ", ".join(self.settings.comfyui_urls)
        if not self.comfyui_up():
            return f"ComfyUI is unreachable ({urls})."
        if model_id:
            spec = find_model(model_id)
            label = spec.label if spec else model_id
            return f"{label} is not installed on any reachable ComfyUI server ({urls})."
        return f"No model is installed on ComfyUI ({urls})."

    def _local_choice(self, requested: ModelSpec | None) -> tuple[ModelSpec, WeightSource, list[str]]:
        tiny = next(s for s in load_catalogue() if s.engine == "tiny")
        if requested is not None:
            src = self.weights.get(requested.id)
            if isinstance(src, WeightSource):
                return requested, src, []
            reason = src.reason if isinstance(src, Missing) else f"{requested.label} is not a local model."
            return tiny, self.weights[tiny.id], [f"{reason} Used the tiny demo model instead."]
        best = self.best_local()
        return best, self.weights[best.id], []

    # -- generation ----------------------------------------------------------------------------
    async def stream_image(self, prompt: str, negative_prompt: str = "", width: int = 1024, height: int = 1024,
                           num_inference_steps: int = 20, guidance_scale: float | None = None,
                           seed: int | None = None, model: str | None = None, backend: str = "auto",
                           sampler: str = "euler", cancel: asyncio.Event | None = None,
                           extra: dict[str, Any] | None = None, previews: bool = True) -> AsyncIterator[Event]:
        """Generate one image as a stream of events: Started, Progress..., (Fallback), Done or Failed."""
        started_at = time.perf_counter()
        if not self._initialized:
            await self.initialize_models()
        req = GenerationRequest(prompt=prompt, negative_prompt=negative_prompt or "", width=width, height=height,
                                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                                model=model, backend=backend, sampler=sampler or "euler", extra=dict(extra or {}))
        try:
            req = req.validated()
            plan = self._plan(req)
            run = _Run(fallback_reason=plan.fallback_note)
            if plan.comfyui_model:
                try:
                    async with aclosing(self._comfyui_events(req, plan.comfyui_model, cancel, run)) as events:
                        async for event in events:
                            yield event
                except BackendUnavailable as err:
                    if req.backend == "comfyui":
                        raise
                    run.fallback_reason = str(err)
            if run.produced is None:
                if run.fallback_reason and self.comfyui is not None:
                    self._record_switch("Fell back to diffusers", run.fallback_reason)
                    yield Fallback(run.fallback_reason)
                async with aclosing(self._local_events(req, plan.local_model, cancel, run, previews)) as events:
                    async for event in events:
                        yield event
            yield Done(await self._finish(req, run, started_at))
        except GenerationCancelled as err:
            yield Failed(f"Cancelled: {err}", self._error_result(req, f"Cancelled: {err}"))
        except GatorError as err:
            yield Failed(str(err), self._error_result(req, str(err)))
        except Exception as err:  # anything unexpected still ends as a sentence, not a traceback
            logger.exception("Generation failed")
            message = f"Generation failed: {err}"
            yield Failed(message, self._error_result(req, message))

    async def _comfyui_events(self, req: GenerationRequest, model_id: str, cancel: Any,
                              run: "_Run") -> AsyncIterator[Event]:
        """ComfyUI's events; its image lands in `run`. Raises BackendUnavailable when it cannot finish."""
        async with aclosing(self.comfyui.stream(req, model_id, cancel)) as events:
            async for event in events:
                if isinstance(event, Produced):
                    run.produced = event
                    continue
                if isinstance(event, Started):
                    run.backend = {"workflow": "comfyui", "model": event.model, "model_id": model_id,
                                   "server": event.server}
                yield event

    async def _local_events(self, req: GenerationRequest, requested: ModelSpec | None, cancel: Any,
                            run: "_Run", previews: bool) -> AsyncIterator[Event]:
        """The local pipeline's events; real weights that fail to load are replaced by the tiny model."""
        spec, source, run.warnings = self._local_choice(requested)
        yield Started(backend="diffusers", model=spec.label)
        while True:
            run.backend = {"workflow": "diffusers", "model": spec.label, "model_id": spec.id, "server": None}
            try:
                async with aclosing(self.local.stream(req, spec, source, cancel, previews=previews)) as events:
                    async for event in events:
                        if isinstance(event, Produced):
                            run.produced = event
                        else:
                            yield event
                return
            except BackendUnavailable as err:
                if spec.engine == "tiny":
                    raise
                run.warnings.append(f"{err} Used the tiny demo model instead.")
                spec = next(s for s in load_catalogue() if s.engine == "tiny")
                source = self.weights[spec.id]

    async def _finish(self, req: GenerationRequest, run: "_Run", started_at: float) -> dict[str, Any]:
        """Build the result dict and save the image with its parameters (before anyone sees it)."""
        if run.produced is None:
            raise BackendUnavailable("The backend finished without producing an image.")
        info, image = run.produced.info, run.produced.image
        result: dict[str, Any] = {
            "status": "success", "error": None,
            "model": run.backend.get("model") or info.get("model"),
            "model_id": run.backend.get("model_id") or info.get("model_id"),
            "workflow": run.backend.get("workflow", "diffusers"),
            "server": run.backend.get("server") or info.get("server"),
            "prompt_id": info.get("prompt_id"),
            "comfyui_workflow": info.get("workflow") if run.backend.get("workflow") == "comfyui" else None,
            "prompt": req.prompt, "negative_prompt": req.negative_prompt, "seed": req.seed,
            "width": image.width, "height": image.height,
            "steps": req.num_inference_steps, "guidance": info.get("guidance", req.guidance_scale),
            "sampler": req.sampler, "fallback_reason": run.fallback_reason,
            "warnings": run.warnings + list(info.get("warnings", [])),
        }
        save_started = time.perf_counter()
        params = {k: v for k, v in result.items() if k not in ("status", "error", "warnings")}
        path = await asyncio.to_thread(save_image, image, params, self.settings.output_dir)
        now = time.perf_counter()
        result.update(image=image, path=str(path), timings={
            "total_s": round(now - started_at, 4),
            "generation_s": round(info.get("generation_s", save_started - started_at), 4),
            "save_s": round(now - save_started, 4),
        })
        return result

    async def generate_image(self, prompt: str, negative_prompt: str = "", width: int = 1024, height: int = 1024,
                             num_inference_steps: int = 20, guidance_scale: float | None = None,
                             seed: int | None = None, model: str | None = None, backend: str = "auto",
                             **kwargs: Any) -> dict[str, Any]:
        """Generate one image and return its result dict (status "success" or "error", never raises)."""
        final: dict[str, Any] = {"status": "error", "error": "No result."}
        async for event in self.stream_image(prompt, negative_prompt, width, height, num_inference_steps,
                                             guidance_scale, seed, model, backend, **kwargs):
            if isinstance(event, Done):
                final = event.result
            elif isinstance(event, Failed):
                final = event.result or {"status": "error", "error": event.error}
            elif isinstance(event, Fallback):
                logger.info("Fallback: %s", event.reason)
        return final

    async def generate_video(self, prompt: Any = None, video_type: str = "multi_frame", quality: str = "high",
                             use_ai_generation: bool = True, **kwargs: Any) -> dict[str, Any]:
        """Render a storyboard (or a list of prompts) to an mp4; see engine/video.py."""
        from .video import generate_video

        await self.initialize_models()
        return await generate_video(self.stream_image, self.settings, prompt=prompt, video_type=video_type,
                                    quality=quality, use_ai_generation=use_ai_generation, **kwargs)

    @staticmethod
    def _error_result(req: GenerationRequest, message: str) -> dict[str, Any]:
        return {"status": "error", "error": message, "model": req.model, "workflow": None, "image": None,
                "path": None, "seed": req.seed, "prompt": req.prompt, "timings": {}}
