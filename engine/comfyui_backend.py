"""The ComfyUI backend: which models the pool really has, which server runs a request, and failover.

Models come from what the health monitor discovered on the servers that are up: a catalogue model
(presets/models.yaml entries with a `comfyui:` list of {workflow, files} variants) is offered when
all files of one variant are installed on some up server; every installed checkpoint is offered as
"comfyui:<filename>". Nothing here touches the network except the job itself.
"""
from __future__ import annotations

import itertools
import logging
import random
import re
import threading
import time
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, AsyncIterator, Iterable

import yaml

from .comfyui import ComfyUIClient, ComfyUIExecutionError, ComfyUIValidationError, InstalledModels
from .config import PRESETS_DIR
from .errors import BackendUnavailable
from .events import Event, Produced, Started
from .health import HealthMonitor
from .registry import load_samplers
from .request import MAX_SEED, GenerationRequest, sampler_key
from .workflows import WorkflowError, WorkflowTemplate, bind, load_template

log = logging.getLogger(__name__)

CATALOGUE_PATH = PRESETS_DIR / "models.yaml"
CHECKPOINT_PREFIX = "comfyui:"
JOB_MEMORY_S = 120.0  # how long our finished jobs are remembered, to read stale queue polls right
DEFAULT_GUIDANCE = {"flux": 3.5, "sdxl": 7.0, "sd15": 7.5}
COMFY_SAMPLERS = {"euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
                  "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_sde",
                  "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddpm", "lcm", "ipndm", "ipndm_v", "deis",
                  "res_multistep", "gradient_estimation", "er_sde", "ddim", "uni_pc", "uni_pc_bh2"}
SAMPLER_ALIASES = {"euler_a": "euler_ancestral", "eulera": "euler_ancestral", "dpm2": "dpm_2",
                   "dpm2_a": "dpm_2_ancestral", "dpm_2_a": "dpm_2_ancestral", "unipc": "uni_pc",
                   "dpmpp_2s_a": "dpmpp_2s_ancestral", "dpmsolver": "dpmpp_2m", "dpm_solver": "dpmpp_2m",
                   "dpmsolvermultistep": "dpmpp_2m", "lcm_scheduler": "lcm", "heun_discrete": "heun"}


def comfy_sampler(name: str | None) -> tuple[str, str | None]:
    """Map a sampler name ("euler", "Euler a", "DPM++ 2M Karras", "dpmpp_2m"...) to ComfyUI's (sampler, scheduler).

    The app's samplers (presets/samplers.yaml) map as that file says; other ComfyUI names pass through.
    The scheduler is None (the workflow's own) unless the name asks for one; unknown names give euler.
    """
    entry = load_samplers().get(sampler_key(name))
    if entry is not None:
        return entry["comfyui"]["sampler_name"], entry["comfyui"].get("scheduler")
    n = (name or "euler").strip().lower().replace("++", "pp").replace(" ", "_").replace("-", "_")
    scheduler = None
    for suffix in ("karras", "exponential"):
        if n.endswith("_" + suffix):
            n, scheduler = n[: -len(suffix) - 1], suffix
    n = SAMPLER_ALIASES.get(n, n)
    if n not in COMFY_SAMPLERS:
        log.warning("sampler %r is unknown to ComfyUI; using euler", name)
        return "euler", scheduler
    return n, scheduler


def guess_family(filename: str) -> str:
    """flux, sdxl or sd15, from a checkpoint's file name."""
    n = filename.lower()
    if "flux" in n:
        return "flux"
    if re.search(r"xl|pony|illustrious|playground", n):
        return "sdxl"
    return "sd15"


def load_comfyui_catalogue(path: Path | None = None) -> list[dict[str, Any]]:
    """Catalogue entries that can run on ComfyUI (those with a `comfyui:` list of variants)."""
    with open(path or CATALOGUE_PATH, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    return [dict(m) for m in data.get("models") or [] if isinstance(m, dict) and m.get("comfyui")]


@dataclass(frozen=True)
class Plan:
    """How one model runs on one server: the template and the model files to bind."""

    model_id: str
    label: str
    family: str
    workflow: str
    files: dict[str, str]
    default_guidance: float | None = None


class ComfyUIBackend:
    """Runs requests on the ComfyUI pool watched by `monitor`."""

    name = "comfyui"

    def __init__(self, settings: Any, monitor: HealthMonitor, *, catalogue: list[dict[str, Any]] | None = None,
                 request_timeout_s: float = 10.0, stall_s: float = 30.0) -> None:
        self.settings = settings
        self.monitor = monitor
        self.catalogue = catalogue if catalogue is not None else load_comfyui_catalogue()
        self.request_timeout_s = request_timeout_s
        self.stall_s = stall_s
        self._lock = threading.Lock()
        self._jobs: dict[str, list[_Job]] = {}  # our recent jobs per server, to tell our load from others'
        self._turn = itertools.count()
        self._templates: dict[str, WorkflowTemplate] = {}

    # ------------------------------------------------------------------ what the pool has
    def _entry(self, model_id: str) -> dict[str, Any] | None:
        return next((m for m in self.catalogue if m.get("id") == model_id), None)

    def plan_for(self, model_id: str, models: InstalledModels | None) -> Plan | None:
        """How `model_id` would run on a server with `models` installed; None when it cannot."""
        if models is None or not model_id:
            return None
        entry = self._entry(model_id)
        if entry is not None:
            for variant in entry.get("comfyui") or []:
                files = {str(k): str(v) for k, v in (variant.get("files") or {}).items()}
                if models.has_files(files):
                    return Plan(model_id, str(entry.get("label", model_id)), str(entry.get("family", "")),
                                str(variant["workflow"]), files, _float(entry.get("default_guidance")))
            return None
        if model_id.startswith(CHECKPOINT_PREFIX):
            ckpt = model_id[len(CHECKPOINT_PREFIX):]
            if ckpt in models.checkpoints:
                family = guess_family(ckpt)
                workflow = "flux1_dev_fp8_checkpoint" if family == "flux" else "checkpoint_generic"
                return Plan(model_id, _checkpoint_label(ckpt), family, workflow, {"ckpt_name": ckpt},
                            DEFAULT_GUIDANCE.get(family))
        return None

    def servers_for(self, model_id: str) -> list[str]:
        """Up servers that have every file `model_id` needs, in configured order."""
        return [url for url, st in self.monitor.snapshot().items() if st.up and self.plan_for(model_id, st.models)]

    def has_model(self, model_id: str) -> bool:
        return bool(self.servers_for(model_id))

    def available_models(self) -> list[dict[str, Any]]:
        """Models runnable now: catalogue models whose files are installed, then every installed checkpoint."""
        states = [st for st in self.monitor.snapshot().values() if st.up and st.models is not None]
        out: list[dict[str, Any]] = []
        claimed: set[str] = set()
        for entry in sorted(self.catalogue, key=lambda m: -float(m.get("rank") or 0)):
            servers = [st.url for st in states if self.plan_for(str(entry["id"]), st.models)]
            if not servers:
                continue
            plans = [self.plan_for(str(entry["id"]), st.models) for st in states]
            claimed.update(p.files["ckpt_name"] for p in plans if p and "ckpt_name" in p.files)
            out.append({"id": entry["id"], "label": entry.get("label", entry["id"]), "engine": "comfyui",
                        "family": entry.get("family", ""), "servers": servers, "source": "catalogue",
                        **{k: entry[k] for k in ("rank", "default_steps", "default_guidance", "native_size")
                           if k in entry}})
        checkpoints = sorted({c for st in states for c in st.models.checkpoints} - claimed, key=str.lower)
        for ckpt in checkpoints:
            family = guess_family(ckpt)
            out.append({"id": CHECKPOINT_PREFIX + ckpt, "label": _checkpoint_label(ckpt), "engine": "comfyui",
                        "family": family, "servers": [st.url for st in states if ckpt in st.models.checkpoints],
                        "source": "checkpoint", "default_guidance": DEFAULT_GUIDANCE.get(family),
                        "native_size": 1024 if family in ("sdxl", "flux") else 512})
        return out

    def pick_server(self, model_id: str, exclude: Iterable[str] = ()) -> str | None:
        """The up server with the model and the shortest queue; ties go round-robin.

        A server's load is our jobs on it now plus other clients' jobs as of the last poll (the polled
        queue length minus our jobs that were there at that moment), so a stale poll never counts our own
        finished jobs twice.
        """
        skip = set(exclude)
        snap = self.monitor.snapshot()
        candidates = [u for u in self.servers_for(model_id) if u not in skip]
        if not candidates:
            return None
        with self._lock:
            load = {u: self._load(u, snap[u].queue_remaining or 0, snap[u].last_poll) for u in candidates}
            best = min(load.values())
            tied = [u for u in candidates if load[u] == best]
            return tied[next(self._turn) % len(tied)]

    def _load(self, url: str, polled_queue: int, polled_at: float | None) -> int:
        jobs = self._jobs.get(url, [])
        ours_now = sum(1 for job in jobs if job.ended is None)
        ours_then = sum(1 for job in jobs if polled_at is not None and job.running_at(polled_at))
        return ours_now + max(0, polled_queue - ours_then)

    def _job_started(self, url: str) -> "_Job":
        job = _Job(started=time.time())
        with self._lock:  # counted before anything yields, so a concurrent pick sees it
            horizon = job.started - JOB_MEMORY_S
            self._jobs[url] = [j for j in self._jobs.get(url, []) if j.ended is None or j.ended > horizon] + [job]
        return job

    # ------------------------------------------------------------------ one request
    def _template(self, name: str) -> WorkflowTemplate:
        if name not in self._templates:
            self._templates[name] = load_template(name)
        return self._templates[name]

    def build_graph(self, request: GenerationRequest, plan: Plan) -> dict[str, Any]:
        """Bind the request into the plan's template (FLUX: guidance via FluxGuidance, cfg 1; else guidance is cfg)."""
        try:
            template = self._template(plan.workflow)
            sampler, scheduler = comfy_sampler(request.sampler)
            guidance = request.guidance_scale if request.guidance_scale is not None else plan.default_guidance
            values: dict[str, Any] = {
                "prompt": request.prompt, "seed": int(request.seed), "steps": int(request.num_inference_steps),
                "width": int(request.width), "height": int(request.height), "sampler": sampler, **plan.files,
            }
            optional: dict[str, Any] = {"negative_prompt": request.negative_prompt, "scheduler": scheduler,
                                        "filename_prefix": "gator-" + re.sub(r"[^A-Za-z0-9._-]+", "-", plan.model_id)}
            if template.bindings.get("guidance"):  # guidance-distilled (FLUX): cfg stays at the template's 1.0
                optional["guidance"] = guidance
            else:
                optional["cfg"] = guidance
            values.update({k: v for k, v in optional.items() if template.accepts(k)})
            return bind(template, values)
        except WorkflowError as exc:
            raise BackendUnavailable(f"The ComfyUI workflow for {plan.label} is broken: {exc}") from exc

    def _client(self, url: str) -> ComfyUIClient:
        return ComfyUIClient(url, timeout_s=self.settings.comfyui_timeout_s,
                             request_timeout_s=self.request_timeout_s, stall_s=self.stall_s)

    def _why_not(self, model_id: str) -> str:
        snap = self.monitor.snapshot()
        label = self._label(model_id)
        if self._entry(model_id) is None and not model_id.startswith(CHECKPOINT_PREFIX):
            return f"{model_id} is not a ComfyUI model."
        up = [st for st in snap.values() if st.up]
        if not up:
            reasons = "; ".join(f"{st.url} {'is down' if st.up is False else 'is not checked yet'}"
                                + (f" ({st.last_error})" if st.last_error else "") for st in snap.values())
            return f"No ComfyUI server is reachable: {reasons}." if reasons else "No ComfyUI server is configured."
        entry = self._entry(model_id)
        if entry is not None and entry.get("comfyui"):
            needs = ", ".join((entry["comfyui"][0].get("files") or {}).values())
            return f"{label} is not installed on any running ComfyUI server (it needs {needs})."
        return f"{label} is not installed on any running ComfyUI server."

    def _label(self, model_id: str) -> str:
        entry = self._entry(model_id)
        if entry is not None:
            return str(entry.get("label", model_id))
        if model_id.startswith(CHECKPOINT_PREFIX):
            return _checkpoint_label(model_id[len(CHECKPOINT_PREFIX):])
        return model_id

    async def stream(self, request: GenerationRequest, model_id: str | None = None,
                     cancel: Any = None) -> AsyncIterator[Event | Produced]:
        """Started, Progress..., Produced for `request` on the best server; retries once per server if one dies.

        Raises BackendUnavailable (ComfyUIValidationError for a refused workflow) when it cannot finish,
        GenerationCancelled when `cancel` is set.
        """
        model_id = model_id or request.model or ""
        if request.seed is None or int(request.seed) < 0:  # keep the prompt untouched, only pick a seed
            request = replace(request, seed=random.randint(0, MAX_SEED))
        tried: list[str] = []
        last_error: str | None = None
        while True:
            url = self.pick_server(model_id, exclude=tried)
            if url is None:
                if last_error:
                    raise BackendUnavailable(f"{last_error} No other ComfyUI server with {self._label(model_id)} "
                                             "is available.")
                raise BackendUnavailable(self._why_not(model_id))
            tried.append(url)
            plan = self.plan_for(model_id, self.monitor.state(url).models)
            if plan is None:  # the server's model list changed between the pick and now
                continue
            graph = self.build_graph(request, plan)
            produced = False
            job = self._job_started(url)
            try:
                yield Started(backend="comfyui", model=self._label(model_id), server=url)
                async with aclosing(self._client(url).run(graph, cancel)) as events:  # closes the job if we stop early
                    async for event in events:
                        if isinstance(event, Produced):
                            produced = True
                            guidance = (request.guidance_scale if request.guidance_scale is not None
                                        else plan.default_guidance)
                            event = replace(event, info={**event.info, "model": self._label(model_id),
                                                         "model_id": model_id, "workflow": plan.workflow,
                                                         "seed": request.seed, "guidance": guidance})
                        yield event
                return
            except ComfyUIValidationError as exc:
                if exc.missing_files:
                    self.monitor.refresh_models(url)
                raise
            except ComfyUIExecutionError:
                raise
            except BackendUnavailable as exc:
                if produced:
                    raise
                last_error = str(exc)
                self.monitor.report_failure(url, last_error)
                log.warning("ComfyUI job failed on %s (%s); trying another server", url, exc)
            finally:
                job.ended = time.time()


@dataclass
class _Job:
    """One of our jobs on a server: when it was submitted and when it ended (epoch seconds)."""

    started: float
    ended: float | None = None

    def running_at(self, moment: float) -> bool:
        return self.started <= moment and (self.ended is None or self.ended > moment)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _checkpoint_label(filename: str) -> str:
    stem = Path(filename).stem
    return f"{stem} (ComfyUI)"
