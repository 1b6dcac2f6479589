"""The ComfyUI backend: which models the pool really has, which server runs a request, and failover.

Models come from what the health monitor discovered on the servers that are up: a catalogue model
(presets/models.yaml entries with a `comfyui:` list of {workflow, files} variants) is offered when
all files of one variant are installed on some up server; every installed checkpoint is offered as
"comfyui:<filename>". A request with LoRAs runs only on a server whose LoraLoader lists every one of them;
their files, as that server names them, go into the Target and become LoraLoader nodes in the graph.
A request with an init image (img2img) uploads it to each server it tries and starts from it there (LoadImage ->
VAEEncode in place of the empty latent, the strength as the sampler's denoise); one with a mask (inpaint) uploads the
mask too and adds SetLatentNoiseMask (the engine composites the result back: engine/inpaint.py). One with a ControlNet
runs only on a server whose ControlNetLoader lists it, uploads the control map (engine/controlnet.py) and splices
ControlNetApplyAdvanced between the prompts and the sampler. A request naming the user's own workflow (the workflows
folder: engine/user_workflows.py) runs that graph with the request's values in its bound inputs and the rest as in
the file, on a server that has the model files its loaders name (and the LoRAs and VAE asked for) and whose
/object_info has every node class it uses (else a sentence naming what is missing and where); a server that dies or
lacks a file hands it to the next, and it never runs on this machine. A model upscale (ESRGAN family, an
UpscaleModelLoader file) uploads the image and runs presets/workflows/postprocess/upscale_with_model.json. Nothing
here touches the network except the job itself.
"""
from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from contextlib import aclosing
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, AsyncIterator, Iterable

from PIL import Image

from ..comfyui import (
    ComfyUIClient, ComfyUIExecutionError, ComfyUIValidationError, InstalledModels, file_stem, match_file,
)
from ..controlnet import control_map
from ..errors import BackendUnavailable, InvalidRequest
from ..events import Event, Produced, Started
from ..health import HealthMonitor
from ..prompt_schedule import FIRST_PASS_STEPS, is_scheduled, step_ranges
from ..prompt_syntax import comfyui_chunks, for_comfyui, has_break
from ..registry import ModelSpec, clip_skip_for, family_of, find_model, freeu_for, load_catalogue, load_samplers
from ..request import GenerationRequest, sampler_key
from ..timestep_ranges import step_shares, timestep_ranges
from ..user_workflows import UserWorkflow, load_workflow
from ..workflows import (ENCODE_TEXT_CLASS, POSTPROCESS_DIR, WorkflowError, WorkflowTemplate, add_loras, bind,
                         is_link, load_template, use_clip_skip, use_controlnet, use_freeu, use_init_image, use_inpaint,
                         use_prompt_parts, use_rescale_cfg, use_vae)
from . import register_backend
from .base import USER_WORKFLOW, Backend, BackendContext, BackendState, Target

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "comfyui:"
UPSCALE_WORKFLOW = "upscale_with_model"  # presets/workflows/postprocess/
LoraFiles = tuple[tuple[str, float], ...]  # ((LoRA file as the server lists it, weight), ...) in the request's order
SHOWN_LORAS = 8  # LoRAs of a server named in a sentence about one it lacks
JOB_MEMORY_S = 120.0  # how long our finished jobs are remembered, to read stale queue polls right
COMFY_SAMPLERS = {"euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
                  "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_sde",
                  "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddpm", "lcm", "ipndm", "ipndm_v", "deis",
                  "res_multistep", "gradient_estimation", "er_sde", "ddim", "uni_pc", "uni_pc_bh2"}
SAMPLER_ALIASES = {"euler_a": "euler_ancestral", "eulera": "euler_ancestral", "dpm2": "dpm_2",
                   "dpm2_a": "dpm_2_ancestral", "dpm_2_a": "dpm_2_ancestral", "unipc": "uni_pc",
                   "dpmpp_2s_a": "dpmpp_2s_ancestral", "dpmsolver": "dpmpp_2m", "dpm_solver": "dpmpp_2m",
                   "dpmsolvermultistep": "dpmpp_2m", "lcm_scheduler": "lcm", "heun_discrete": "heun"}


def our_sampler(sampler_name: str, scheduler: Any) -> str:
    """Our sampler key for ComfyUI's sampler_name and scheduler (presets/samplers.yaml, the reverse of
    `comfy_sampler`), else ComfyUI's own name."""
    fallback = None
    for key, entry in load_samplers().items():
        comfy = entry.get("comfyui") or {}
        if comfy.get("sampler_name") == sampler_name:
            if comfy.get("scheduler", "normal") == (scheduler or "normal"):
                return key
            fallback = fallback or key
    return fallback or sampler_name


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
    """flux, sd3, sdxl, sd2 or sd15, from a checkpoint's file name (a server's files cannot be read here)."""
    n = filename.lower()
    if "flux" in n:
        return "flux"
    if re.search(r"(^|[^a-z])sd_?3|stable-diffusion-3", n):
        return "sd3"
    if re.search(r"xl|pony|illustrious|playground", n):
        return "sdxl"
    if re.search(r"^v2-[01]_|768-v-ema|(^|[^a-z])sd_?2(1|\.1)?[-_.]", n):  # SD 2.x's own names
        return "sd2"
    return "sd15"


def comfyui_catalogue() -> list[ModelSpec]:
    """Catalogue models that can run on ComfyUI (those with a `comfyui:` list of workflow variants)."""
    return [spec for spec in load_catalogue() if spec.comfyui]


def checkpoint_model(filename: str) -> ModelSpec:
    """The model a checkpoint file installed on a ComfyUI server is offered as."""
    family = guess_family(filename)
    workflow = "flux1_dev_fp8_checkpoint" if family == "flux" else "checkpoint_generic"
    return ModelSpec(id=CHECKPOINT_PREFIX + filename, label=_checkpoint_label(filename), backend=ComfyUIBackend.name,
                     family=family, default_guidance=family_of(family).default_guidance,
                     native_size=family_of(family).native_size, default_steps=family_of(family).default_steps,
                     comfyui=[{"workflow": workflow, "files": {"ckpt_name": filename}}])


@dataclass(frozen=True)
class Variant:
    """How one model runs on one server: the workflow template and the model files to bind."""

    model: ModelSpec
    workflow: str
    files: dict[str, str]


class ComfyUIBackend(Backend):
    """Runs requests on the ComfyUI pool watched by `monitor`."""

    name = "comfyui"
    label = "ComfyUI"
    priority = 100
    features = frozenset({USER_WORKFLOW})

    def __init__(self, settings: Any, monitor: HealthMonitor | None, *, catalogue: list[ModelSpec] | None = None,
                 request_timeout_s: float = 10.0, stall_s: float = 30.0, poll_in_background: bool = True) -> None:
        self.settings = settings
        self.poll_in_background = poll_in_background  # False: tests poll the monitor by hand
        self.monitor = monitor  # None: disabled (GATOR_ENABLE_COMFYUI=0 or no URL)
        self.catalogue = catalogue if catalogue is not None else comfyui_catalogue()
        self.request_timeout_s = request_timeout_s
        self.stall_s = stall_s
        self._lock = threading.Lock()
        self._jobs: dict[str, list[_Job]] = {}  # our recent jobs per server, to tell our load from others'
        self._turn = itertools.count()
        self._templates: dict[str, WorkflowTemplate] = {}

    @property
    def enabled(self) -> bool:
        return self.monitor is not None

    def start(self) -> None:
        if self.monitor is not None and self.poll_in_background:
            self.monitor.poll_now()
            self.monitor.start()

    def shutdown(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()

    def rescan(self) -> None:
        """Rescan: every server's installed models read again now (a checkpoint just put in ComfyUI's folder), not
        at the monitor's next scheduled read."""
        if self.monitor is None:
            return
        for url in list(self.monitor.urls):
            self.monitor.refresh_models(url)
        self.monitor.poll_now()

    def add_server(self, url: str) -> bool:
        """A ComfyUI the app started joins the pool (polled like the configured ones)."""
        if self.monitor is None:
            return False
        self.monitor.add_server(url)
        return True

    def remove_server(self, url: str) -> None:
        if self.monitor is not None:
            self.monitor.remove_server(url)

    # ------------------------------------------------------------------ what the pool has
    def _up_states(self) -> list[Any]:
        if self.monitor is None:
            return []
        return [st for st in self.monitor.snapshot().values() if st.up and st.models is not None]

    def up(self) -> bool:
        """True when at least one server answers."""
        return bool(self.monitor is not None and self.monitor.up_servers())

    def _entry(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.catalogue if m.id == model_id), None)

    def find(self, model_id: str) -> ModelSpec | None:
        key = (model_id or "").strip()
        if key.startswith(CHECKPOINT_PREFIX):
            return checkpoint_model(key[len(CHECKPOINT_PREFIX):])
        spec = self._entry(key) or find_model(key)
        if spec is not None and spec.comfyui:
            return spec
        installed = {c for st in self._up_states() for c in st.models.checkpoints}
        if key in installed:
            return checkpoint_model(key)
        # a bare name, as the user's own checkpoints are listed: the one installed file with that stem
        stems = [c for c in installed if file_stem(c).lower() == key.lower()]
        return checkpoint_model(stems[0]) if len(stems) == 1 else None

    def variant_for(self, model: ModelSpec, models: InstalledModels | None) -> Variant | None:
        """How `model` would run on a server with `models` installed; None when it cannot."""
        if models is None:
            return None
        for variant in model.comfyui:
            files = {str(k): str(v) for k, v in (variant.get("files") or {}).items()}
            if models.has_files(files):
                return Variant(model, str(variant["workflow"]), files)
        return None

    @staticmethod
    def lora_files(loras: Iterable[Any], models: InstalledModels | None) -> LoraFiles | None:
        """The files of `loras` (LoraUse: name, weight) on a server with `models` installed, as (file, weight) in
        order; None when it lacks one of them."""
        found: list[tuple[str, float]] = []
        for use in loras:
            file = models.lora_file(use.name) if models is not None else None
            if file is None:
                return None
            found.append((file, float(use.weight)))
        return tuple(found)

    def servers_for(self, model: ModelSpec, loras: Iterable[Any] = (), vae: str | None = None,
                    controlnet: str | None = None) -> list[str]:
        """Up servers that have every file `model` needs, every LoRA of `loras`, the VAE file `vae` and the ControlNet
        `controlnet`, in configured order."""
        loras = tuple(loras)
        return [st.url for st in self._up_states()
                if self.variant_for(model, st.models) and self.lora_files(loras, st.models) is not None
                and (vae is None or match_file(vae, st.models.vaes) is not None)
                and (controlnet is None or st.models.controlnet_file(controlnet) is not None)]

    def models(self) -> list[ModelSpec]:
        """Models runnable now: catalogue models whose files are installed, then every other installed checkpoint."""
        states = self._up_states()
        out: list[ModelSpec] = []
        claimed: set[str] = set()
        for spec in sorted(self.catalogue, key=lambda m: -m.rank):
            variants = [self.variant_for(spec, st.models) for st in states]
            if not any(variants):
                continue
            claimed.update(v.files["ckpt_name"] for v in variants if v and "ckpt_name" in v.files)
            out.append(spec)
        checkpoints = sorted({c for st in states for c in st.models.checkpoints} - claimed, key=str.lower)
        return out + [checkpoint_model(ckpt) for ckpt in checkpoints]

    def vaes(self) -> list[str]:
        """The VAE files on up servers, by file name without folders and extension."""
        return sorted({file_stem(f) for st in self._up_states() for f in st.models.vaes if f != "pixel_space"})

    def controlnets(self) -> dict[str, str | None]:
        """ControlNets on some up server, by file name without folders and extension (family unknown: None)."""
        names = {file_stem(f): None for st in self._up_states() for f in st.models.controlnets}
        return dict(sorted(names.items(), key=lambda item: item[0].lower()))

    def loras(self) -> dict[str, str | None]:
        """LoRAs on some up server, by the name a request gives them (file name without folders and extension);
        ComfyUI does not say their family (None)."""
        names = {file_stem(f): None for st in self._up_states() for f in st.models.loras}
        return dict(sorted(names.items(), key=lambda item: item[0].lower()))

    def upscalers(self) -> list[str]:
        """The model upscalers (UpscaleModelLoader's list) on up servers, by file name without folders and extension."""
        return sorted({file_stem(f) for st in self._up_states() for f in st.models.upscale_models}, key=str.lower)

    async def upscale(self, image: Image.Image, width: int, height: int, upscaler: str,
                      cancel: Any = None) -> Image.Image:
        """`image` uploaded to the up server with the upscaler file `upscaler` and the shortest queue, and run
        through UpscaleModelLoader -> ImageUpscaleWithModel -> ImageScale (lanczos, width x height) -> SaveImage;
        a server that dies first hands the job to the next one with the file (each at most once). Raises
        BackendUnavailable when none finishes it (ComfyUIValidationError when a server refuses the graph)."""
        tried: list[str] = []
        last_error: str | None = None
        while True:
            have = [st.url for st in self._up_states()
                    if st.url not in tried and match_file(upscaler, st.models.upscale_models) is not None]
            if not have:
                raise BackendUnavailable(f"{last_error} No other ComfyUI server has the upscaler {upscaler!r}."
                                         if last_error else f"No running ComfyUI server has the upscaler {upscaler!r}.")
            url = self._least_loaded(have)
            tried.append(url)
            try:
                return await self._upscale_on(url, image, width, height, upscaler, cancel)
            except BackendUnavailable as exc:
                last_error = self._job_failed(url, exc)

    async def _upscale_on(self, url: str, image: Image.Image, width: int, height: int, upscaler: str,
                          cancel: Any) -> Image.Image:
        file = match_file(upscaler, self.monitor.state(url).models.upscale_models)
        client = self._client(url)
        name = await client.upload_image(image.convert("RGB"), "upscale")
        try:
            graph = bind(self._template(UPSCALE_WORKFLOW, POSTPROCESS_DIR),
                         {"image": name, "model_name": file, "width": width, "height": height,
                          "filename_prefix": "gator-upscale-" + re.sub(r"[^A-Za-z0-9._-]+", "-", upscaler)})
        except WorkflowError as exc:
            raise BackendUnavailable(f"The ComfyUI upscale workflow is broken: {exc}") from exc
        job = self._job_started(url)
        try:
            async with aclosing(client.run(graph, cancel)) as events:
                async for event in events:
                    if isinstance(event, Produced):
                        larger = event.image.convert("RGB")
                        if larger.size != (width, height):
                            raise BackendUnavailable(f"ComfyUI at {url} sent a {larger.width}×{larger.height} image "
                                                     f"for an upscale to {width}×{height}.")
                        log.info("ComfyUI %s upscaled %dx%d to %dx%d with %s", url, image.width, image.height, width,
                                 height, file)
                        return larger
        finally:
            job.ended = time.time()
        raise BackendUnavailable(f"ComfyUI at {url} finished the upscale without an image.")

    def plain_name(self, model: ModelSpec) -> str:
        """A checkpoint installed on a server is known by its file name without folders and extension."""
        if model.id.startswith(CHECKPOINT_PREFIX):
            return file_stem(model.id[len(CHECKPOINT_PREFIX):])
        return model.id

    def why_not(self, model: ModelSpec | None) -> str | None:
        if self.monitor is None:
            return "ComfyUI is disabled (GATOR_ENABLE_COMFYUI=0)."
        urls = ", ".join(self.monitor.snapshot())
        if not self.up():
            return f"ComfyUI is unreachable ({urls})."
        if not self._up_states():  # up, but the first read of its models failed or is under way: the next poll
            return f"ComfyUI ({urls}) answers, but its installed models have not been read yet; try again in a moment."
        if model is None:
            return None if self.models() else f"No model is installed on ComfyUI ({urls})."
        if self.servers_for(model):
            return None
        return f"{model.label} is not installed on any reachable ComfyUI server ({urls})."

    def state(self) -> BackendState:
        """The pool for the badge and the status tab; details["ever_up"]: some server has been up since start-up
        (until then, local generation is the normal path, not a fallback)."""
        servers = [asdict(st) for st in self.monitor.snapshot().values()] if self.monitor else []
        up = sum(1 for s in servers if s["up"])
        ever_up = bool(up) or any(was_up for _, _, was_up, _ in (self.monitor.history if self.monitor else []))
        models = self.models()
        if self.monitor is None:
            summary, short = "disabled (GATOR_ENABLE_COMFYUI=0)", "ComfyUI disabled"
        elif not up:
            summary, short = f"unreachable ({len(servers)} server(s) down)", "ComfyUI unreachable"
        elif not models:
            summary, short = f"{up} of {len(servers)} server(s) up, no model installed", "no model installed on ComfyUI"
        else:
            summary, short = f"{up} of {len(servers)} server(s) up", ""
        return BackendState(name=self.name, label=self.label, enabled=self.enabled, ready=bool(models),
                            summary=summary, short_reason=short, models=[m.id for m in models], servers=servers,
                            details={"ever_up": ever_up})

    def pick_server(self, model: ModelSpec, exclude: Iterable[str] = (), loras: Iterable[Any] = (),
                    vae: str | None = None, controlnet: str | None = None) -> str | None:
        """The up server with the model (and every LoRA of `loras`) and the shortest queue; ties go round-robin.

        A server's load is our jobs on it now plus other clients' jobs as of the last poll (the polled
        queue length minus our jobs that were there at that moment), so a stale poll never counts our own
        finished jobs twice.
        """
        skip = set(exclude)
        candidates = [u for u in self.servers_for(model, loras, vae, controlnet) if u not in skip]
        return self._least_loaded(candidates) if candidates else None

    def _least_loaded(self, candidates: list[str]) -> str:
        """The server of `candidates` with the shortest queue (see `pick_server`); ties go round-robin."""
        snap = self.monitor.snapshot()
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
    def _template(self, name: str, directory: Path | None = None) -> WorkflowTemplate:
        if name not in self._templates:
            self._templates[name] = load_template(name, directory)
        return self._templates[name]

    def build_graph(self, request: GenerationRequest, variant: Variant, loras: LoraFiles = (),
                    vae_file: str | None = None, embeddings: Iterable[str] = (),
                    init_image: str | None = None, mask: str | None = None,
                    control: tuple[str, str] | None = None) -> dict[str, Any]:
        """Bind the request into the variant's template (FLUX: guidance via FluxGuidance, cfg 1; else guidance is cfg),
        stop CLIP at the request's Clip skip where the model's family takes one (CLIPSetLastLayer), then chain a
        LoraLoader per (file, weight) of `loras` after the model's loader, and decode with `vae_file`
        (a VAELoader) when one is given; the server's `embeddings` named in the prompts become `embedding:name`.
        `init_image` (the name the server stored the request's init image under) makes it image-to-image, with the
        request's strength as the denoise; `mask` (the name of the request's mask there) makes it inpaint. `control`
        (the ControlNet file and the name of the uploaded control map) steers the sampler with the request's weight
        between its guidance start and end."""
        model = variant.model
        try:
            template = self._template(variant.workflow)
            sampler, scheduler = comfy_sampler(request.sampler)
            values: dict[str, Any] = {
                "prompt": for_comfyui(request.prompt, embeddings), "seed": request.seed,
                "steps": request.num_inference_steps,
                "width": request.width, "height": request.height, "sampler": sampler, **variant.files,
            }
            optional: dict[str, Any] = {"negative_prompt": for_comfyui(request.negative_prompt, embeddings),
                                        "scheduler": scheduler,
                                        "filename_prefix": "gator-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model.id)}
            if template.bindings.get("guidance"):  # guidance-distilled (FLUX): cfg stays at the template's 1.0
                optional["guidance"] = _guidance(request, model)
            else:
                optional["cfg"] = _guidance(request, model)
            values.update({k: v for k, v in optional.items() if template.accepts(k)})
            graph = bind(template, values)
            graph = use_clip_skip(graph, clip_skip_for(model, request.clip_skip))
            graph = add_loras(graph, loras) if loras else graph
            freeu = freeu_for(model) if request.freeu else None
            graph = use_freeu(graph, freeu) if freeu else graph  # after the LoRAs: the model they patched
            graph = use_rescale_cfg(graph, request.cfg_rescale) if _rescales_cfg(request, model) else graph
            graph = use_vae(graph, vae_file) if vae_file else graph
            if control is not None:
                graph = use_controlnet(graph, *control, request.controlnet_weight, request.controlnet_start,
                                       request.controlnet_end)
            if mask is not None:
                graph = use_inpaint(graph, init_image, mask, request.strength, request.masked_content, request.seed)
            elif init_image is not None:
                graph = use_init_image(graph, init_image, request.strength)
            return self._prompt_parts(graph, template, request, model.family, embeddings)
        except WorkflowError as exc:
            raise BackendUnavailable(f"The ComfyUI workflow for {model.label} is broken: {exc}") from exc

    @staticmethod
    def _prompt_parts(graph: dict[str, Any], template: WorkflowTemplate, request: GenerationRequest,
                      family: str, embeddings: Iterable[str]) -> dict[str, Any]:
        """A1111's prompt editing ([from:to:when], [a|b]) and BREAK: each text of a prompt that changes between steps
        limited to its steps by ConditioningSetTimestepRange, at the shares of the sampler's own schedule (that of
        `family`'s models); the parts of a text between BREAKs encoded each and joined (workflows.use_prompt_parts)."""
        texts = {key: getattr(request, key) or "" for key in ("prompt", "negative_prompt")}
        shares: list[float] | None = None
        for key, text in texts.items():
            paths = template.bindings.get(key)
            if not paths or not (is_scheduled(text) or has_break(text)):
                continue
            if graph[paths[0][0]].get("class_type") != ENCODE_TEXT_CLASS:  # a text node of its own kind (smZ...):
                continue  # the prompt goes to it as written
            if not is_scheduled(text) or not template.bindings.get("steps"):
                graph = use_prompt_parts(graph, paths[0][0], [(comfyui_chunks(text, embeddings), 0.0, 1.0)])
                continue
            if shares is None:
                shares = _sampled_shares(graph, template, family, request.num_inference_steps)
            ranges = step_ranges(text, len(shares), request.extra.get(FIRST_PASS_STEPS))
            graph = use_prompt_parts(graph, paths[0][0], [(comfyui_chunks(part, embeddings), start, end)
                                                          for part, start, end in timestep_ranges(ranges, shares)])
        return graph

    def _client(self, url: str) -> ComfyUIClient:
        return ComfyUIClient(url, timeout_s=self.settings.comfyui_timeout_s,
                             request_timeout_s=self.request_timeout_s, stall_s=self.stall_s)

    async def _upload(self, url: str, request: GenerationRequest) -> tuple[str | None, str | None, str | None]:
        """The names `url` stored the request's init image, mask and control map under; None for each it lacks."""
        client = self._client(url)
        image = await client.upload_image(request.init_image, "init") if request.init_image is not None else None
        mask = await client.upload_image(request.mask.convert("RGB"), "mask") if request.mask is not None else None
        control = await client.upload_image(control_map(request), "control") if request.uses_controlnet else None
        return image, mask, control

    def _job_failed(self, url: str, exc: BackendUnavailable) -> str:
        """After a job on `url` failed: a refused graph (ComfyUIValidationError; the server's lists are read again
        when it lacked a file) or a node that failed (ComfyUIExecutionError) is raised as it is; any other failure
        counts against the server, and its sentence is returned for the next server to try."""
        if isinstance(exc, ComfyUIValidationError) and exc.missing_files:
            self.monitor.refresh_models(url)
        if isinstance(exc, (ComfyUIValidationError, ComfyUIExecutionError)):
            raise exc
        return self._server_failed(url, exc)

    def _server_failed(self, url: str, exc: BackendUnavailable) -> str:
        """Count a failure of `url` like a failed poll; returns its sentence."""
        self.monitor.report_failure(url, str(exc), seen_at=exc.seen_at)
        log.warning("ComfyUI job failed on %s (%s); trying another server", url, exc)
        return str(exc)

    def _unavailable(self, model: ModelSpec, loras: Iterable[Any] = ()) -> str:
        """Why no server can take `model` (with `loras`) now, naming each server's state."""
        snap = self.monitor.snapshot() if self.monitor else {}
        loras = tuple(loras)
        lacking = [st for st in self._up_states()
                   if self.variant_for(model, st.models) and self.lora_files(loras, st.models) is None]
        if lacking:
            return _missing_loras(model, loras, lacking)
        if not any(st.up for st in snap.values()):
            reasons = "; ".join(f"{st.url} {'is down' if st.up is False else 'is not checked yet'}"
                                + (f" ({st.last_error})" if st.last_error else "") for st in snap.values())
            return f"No ComfyUI server is reachable: {reasons}." if reasons else "No ComfyUI server is configured."
        if self._entry(model.id) is not None:
            needs = ", ".join((model.comfyui[0].get("files") or {}).values())
            return f"{model.label} is not installed on any running ComfyUI server (it needs {needs})."
        return f"{model.label} is not installed on any running ComfyUI server."

    def plan(self, request: GenerationRequest, model: ModelSpec | None) -> Target:
        """The server for `request`: an up server with the model (and every LoRA the request names) and the
        shortest queue (ties take turns); `detail` holds the LoRA files as that server lists them (LoraFiles).
        Without a model, the best one a server has together with the LoRAs."""
        if self.monitor is None:
            raise BackendUnavailable(self.why_not(model) or "ComfyUI is disabled.")
        if request.uses_workflow:
            return self._plan_workflow(request, model)
        if model is None and request.loras:  # the best model some server has together with the LoRAs
            model = next((m for m in self.models() if self.servers_for(m, request.loras)), None)
        model = model or self.default_model()
        if model is None:
            raise BackendUnavailable(self.why_not(None) or "No model is installed on ComfyUI.")
        if request.uses_controlnet and model.family == "flux":
            raise BackendUnavailable(f"{model.label} takes no ControlNet here: this app steers SD 1.5 and SDXL "
                                     "graphs with one.")
        url = self.pick_server(model, loras=request.loras, vae=request.vae, controlnet=request.controlnet)
        if url is None:
            if request.uses_controlnet and self.servers_for(model, request.loras, request.vae):
                raise BackendUnavailable(f"The ControlNet {request.controlnet!r} is not installed on any running "
                                         f"ComfyUI server with {model.label}.")
            if request.vae and self.servers_for(model, request.loras):
                raise BackendUnavailable(f"The VAE {request.vae!r} is not installed on any running ComfyUI server "
                                         f"with {model.label}.")
            raise BackendUnavailable(self._unavailable(model, request.loras))
        if not request.loras:
            return Target(self.name, model, server=url)
        files = self.lora_files(request.loras, self.monitor.state(url).models)
        log.info("LoRAs %s on %s", ", ".join(f"{f}:{w:g}" for f, w in files or ()), url)
        return Target(self.name, model, server=url, detail=files)

    async def stream(self, request: GenerationRequest, target: Target, cancel: Any = None,
                     previews: bool = True) -> AsyncIterator[Event | Produced]:
        """Started, Progress..., Produced on the planned server (with the LoRA files the plan found there, in
        `target.detail`); if that server dies before an image (or refuses the init image), the next best server with
        the model and the LoRAs takes the job (each server at most once).

        Raises BackendUnavailable (ComfyUIValidationError for a refused workflow) when it cannot finish,
        GenerationCancelled when `cancel` is set.
        """
        if request.uses_workflow:
            async with aclosing(self._stream_workflow(request, target, cancel)) as events:
                async for event in events:
                    yield event
            return
        model = target.model
        tried: list[str] = []
        last_error: str | None = None
        url: str | None = target.server
        while True:
            if url is None:
                url = self.pick_server(model, exclude=tried, loras=request.loras, vae=request.vae,
                                       controlnet=request.controlnet)
            if url is None:
                if last_error:
                    raise BackendUnavailable(f"{last_error} No other ComfyUI server with {model.label}"
                                             f"{' and the LoRAs asked for' if request.loras else ''} is available.")
                raise BackendUnavailable(self._unavailable(model, request.loras))
            tried.append(url)
            installed = self.monitor.state(url).models
            variant = self.variant_for(model, installed)
            if url == target.server and target.detail is not None:
                loras: LoraFiles | None = target.detail
            else:
                loras = self.lora_files(request.loras, installed)
            vae_file = match_file(request.vae, installed.vaes) if request.vae and installed else None
            control_file = installed.controlnet_file(request.controlnet) if request.uses_controlnet and installed \
                else None
            if variant is None or loras is None or (request.vae and vae_file is None) \
                    or (request.uses_controlnet and control_file is None):  # its lists changed since
                url = None
                continue
            try:
                image_name, mask_name, control_name = await self._upload(url, request)
            except BackendUnavailable as exc:
                last_error, url = self._server_failed(url, exc), None
                continue
            graph = self.build_graph(request, variant, loras, vae_file, installed.embeddings if installed else (),
                                     image_name, mask_name, (control_file, control_name) if control_file else None)
            produced = False
            job = self._job_started(url)
            try:
                yield Started(backend=self.name, model=model.label, server=url)
                async with aclosing(self._client(url).run(graph, cancel)) as events:  # closes the job if we stop early
                    async for event in events:
                        if isinstance(event, Produced):
                            produced = True
                            event = replace(event, info={**event.info, "model": model.label, "model_id": model.id,
                                                         "workflow": variant.workflow, "seed": request.seed,
                                                         "guidance": _guidance(request, model), "server": url,
                                                         "clip_skip": clip_skip_for(model, request.clip_skip),
                                                         "freeu": bool(request.freeu and freeu_for(model)),
                                                         "cfg_rescale": _rescales_cfg(request, model),
                                                         "cfg_rescale_unused": NO_RESCALE.get(model.family)})
                        yield event
                return
            except BackendUnavailable as exc:
                if produced:
                    raise
                last_error, url = self._job_failed(url, exc), None
            finally:
                job.ended = time.time()


    # ------------------------------------------------------------------ the user's own workflows
    def _user_workflow(self, request: GenerationRequest) -> UserWorkflow:
        try:
            workflow = load_workflow(request.user_workflow, self.settings.workflows_dir)
        except WorkflowError as exc:
            raise InvalidRequest(str(exc)) from None
        if workflow.binds("image") and request.init_image is None:
            node = workflow.bindings["image"][0][0]
            raise InvalidRequest(f"The workflow {workflow.name!r} starts from an image (LoadImage, node {node}): "
                                 "add an init image.")
        return workflow

    def _workflow_lacks(self, request: GenerationRequest, workflow: UserWorkflow, model: ModelSpec | None,
                        installed: InstalledModels | None) -> list[str]:
        """What a server with `installed` lacks of what a user workflow needs, each named: the model chosen (None:
        auto), the request's LoRAs and VAE, and the model files the workflow's own loaders name (but those the chosen
        model's files replace); [] when it has everything."""
        if installed is None:
            return ["a list of its installed models (not read yet)"]
        variant = self.variant_for(model, installed) if model is not None else None
        lacks = [model.label] if model is not None and variant is None else []
        lacks += [f'the LoRA "{use.name}"' for use in request.loras if installed.lora_file(use.name) is None]
        if request.vae and match_file(request.vae, installed.vaes) is None:
            lacks.append(f"the VAE {request.vae!r}")
        lacks += [f'{file} ({workflow.graph[node_id]["class_type"]} "{name}" on node {node_id})'
                  for node_id, name, file in workflow.loaded_files(variant.files if variant else ())
                  if not installed.has_files({name: file})]
        return lacks

    def _workflow_servers(self, request: GenerationRequest, workflow: UserWorkflow, model: ModelSpec | None,
                          exclude: Iterable[str] = ()) -> list[str]:
        """Up servers with everything a user workflow needs (`_workflow_lacks`), in configured order."""
        skip = set(exclude)
        return [st.url for st in self._up_states()
                if st.url not in skip and not self._workflow_lacks(request, workflow, model, st.models)]

    def _plan_workflow(self, request: GenerationRequest, model: ModelSpec | None) -> Target:
        """The server for a user workflow (its nodes are checked there when it runs); `detail` is (the workflow, the
        model chosen: None for auto, which runs the model the file loads)."""
        workflow = self._user_workflow(request)
        servers = self._workflow_servers(request, workflow, model)
        if not servers:
            if model is not None and not self.servers_for(model, request.loras):
                raise BackendUnavailable(self._unavailable(model, request.loras))
            raise BackendUnavailable(self.why_not(None) or self._none_has(request, workflow, model))
        warnings: tuple[str, ...] = ()
        if model is not None and not workflow.loads(self._model_files(model, servers[0])):
            warnings = (f"The workflow {workflow.name!r} has no checkpoint loader for {model.label}: it ran with the "
                        "model its file loads.",)
        if not workflow.binds("seed"):  # its sampler's seed is linked from another node: the file decides it
            warnings += (f"The workflow {workflow.name!r} takes no seed from the app (its sampler's seed comes from "
                         "another node): the seed recorded is not the one used, and a batch repeats its picture.",)
        loader = next((paths[0] for key, paths in workflow.bindings.items() if key in ("ckpt_name", "unet_name")),
                      None)
        shown = model or checkpoint_model(str(workflow.graph[loader[0]]["inputs"][loader[1]] if loader
                                              else workflow.name))  # auto: the model the file loads
        return Target(self.name, shown, server=self._least_loaded(servers), detail=(workflow, model),
                      warnings=warnings)

    def _none_has(self, request: GenerationRequest, workflow: UserWorkflow, model: ModelSpec | None) -> str:
        """The sentence for no up server having what a user workflow needs, naming what each lacks."""
        lacks = "; ".join(f"{st.url} lacks {', '.join(self._workflow_lacks(request, workflow, model, st.models))}"
                          for st in self._up_states())
        return f"No running ComfyUI server has everything the workflow {workflow.name!r} needs: {lacks}."

    def _model_files(self, model: ModelSpec, url: str) -> dict[str, str]:
        variant = self.variant_for(model, self.monitor.state(url).models)
        return variant.files if variant is not None else {}

    def workflow_graph(self, request: GenerationRequest, workflow: UserWorkflow, model_files: dict[str, str],
                       loras: LoraFiles = (), vae_file: str | None = None, embeddings: Iterable[str] = (),
                       init_image: str | None = None, family: str | None = None) -> dict[str, Any]:
        """The user's graph with the request's values in its bound inputs (prompts, seed, steps, guidance or cfg,
        sampler and scheduler, size, the model's file where it has that loader, the uploaded `init_image` in its
        LoadImage with the strength as denoise, or LoadImage -> VAEEncode added when it has none); LoRAs, a VAE
        file, prompt edits and BREAK as for the app's own graphs, a prompt edit's steps on the schedule of `family`
        (the chosen model's; None: the model the file loads). Everything else stays as in the file."""
        edits = is_scheduled(request.prompt) or is_scheduled(request.negative_prompt or "")
        if edits and not workflow.binds("steps"):
            raise InvalidRequest(f"The workflow {workflow.name!r} cannot take a prompt that changes during sampling "
                                 "([from:to:when] or [a|b]): its sampler's steps come from another node, so the app "
                                 "cannot tell where a step falls. Write the prompt out, or set the steps in the file.")
        sampler, scheduler = comfy_sampler(request.sampler)
        values: dict[str, Any] = {
            "prompt": for_comfyui(request.prompt, embeddings),
            "negative_prompt": for_comfyui(request.negative_prompt, embeddings), "seed": request.seed,
            "steps": request.num_inference_steps, "sampler_name": sampler, "scheduler": scheduler, **model_files}
        if request.guidance_scale is not None:  # None: the file's own guidance
            values["guidance" if workflow.binds("guidance") else "cfg"] = request.guidance_scale
        if init_image is None:
            values.update(width=request.width, height=request.height)
        elif workflow.binds("image"):
            values.update(image=init_image, denoise=request.strength)
        try:
            graph = workflow.bound(values)
            graph = add_loras(graph, loras) if loras else graph
            graph = use_vae(graph, vae_file) if vae_file else graph
            if init_image is not None and not workflow.binds("image"):
                graph = use_init_image(graph, init_image, request.strength)
            graph = self._prompt_parts(graph, workflow.template, request, workflow.sampling_family(family),
                                       embeddings)
        except WorkflowError as exc:
            raise InvalidRequest(f"The workflow {workflow.name!r} cannot take this request: {exc}") from None
        return graph

    async def _stream_workflow(self, request: GenerationRequest, target: Target,
                               cancel: Any = None) -> AsyncIterator[Event | Produced]:
        """Run a user workflow on the planned server; the next server with everything it needs takes it when one
        lacks a node class or a file (its lists changed since the plan), refuses a model file, or dies before the
        image (counted against it, as for the app's own graphs). The image kept is that of its `result_nodes`."""
        workflow, chosen = target.detail
        tried: list[str] = []
        lacking: list[str] = []
        url: str | None = target.server
        while True:
            if url is None:
                others = self._workflow_servers(request, workflow, chosen, exclude=tried)
                url = self._least_loaded(others) if others else None
            if url is None:
                why = " ".join(lacking) or self._unavailable(target.model, request.loras)
                raise BackendUnavailable(f"{why} The workflow {workflow.name!r} runs only on ComfyUI, so it was not "
                                         "run on this machine.")
            tried.append(url)
            client = self._client(url)
            try:
                missing = await client.missing_nodes(workflow.node_classes())
            except BackendUnavailable as exc:
                lacking.append(self._server_failed(url, exc))
                url = None
                continue
            if missing:
                lacking.append(f"The workflow {workflow.name!r} uses the node{'s' if len(missing) > 1 else ''} "
                               f"{_quoted(missing)}, which ComfyUI at {url} does not have (a custom node not "
                               "installed there).")
                url = None
                continue
            installed = self.monitor.state(url).models
            lacks = self._workflow_lacks(request, workflow, chosen, installed)
            if lacks:  # its lists changed since the plan
                lacking.append(f"ComfyUI at {url} no longer has {', '.join(lacks)}.")
                url = None
                continue
            loras = self.lora_files(request.loras, installed) or ()
            vae_file = match_file(request.vae, installed.vaes) if request.vae else None
            try:
                image_name = await client.upload_image(request.init_image, "init") \
                    if request.init_image is not None else None
            except BackendUnavailable as exc:
                lacking.append(self._server_failed(url, exc))
                url = None
                continue
            files = self._model_files(chosen, url) if chosen is not None else {}
            graph = self.workflow_graph(request, workflow, files, loras, vae_file, installed.embeddings, image_name,
                                        chosen.family if chosen is not None and workflow.loads(files) else None)
            produced = False
            job = self._job_started(url)
            try:
                yield Started(backend=self.name, model=target.model.label, server=url)
                async with aclosing(client.run(graph, cancel, workflow.result_nodes())) as events:
                    async for event in events:
                        if isinstance(event, Produced):
                            produced = True
                            event = replace(event, info={
                                **event.info, "model": target.model.label, "model_id": target.model.id,
                                "workflow": workflow.name, "user_workflow": workflow.name, "graph": graph,
                                "seed": request.seed, "guidance": request.guidance_scale, "server": url,
                                "cfg_rescale_unused": "your own ComfyUI workflow runs as it is built (a RescaleCFG "
                                                      "node in it does this)",
                                "warnings": [*event.info.get("warnings", []), *target.warnings]})
                        yield event
                return
            except ComfyUIValidationError as exc:
                if produced or not exc.missing_files:
                    raise
                self.monitor.refresh_models(url)  # it lacks a file its list had: the next server may have it
                lacking.append(f"{str(exc).rstrip('.')} (ComfyUI at {url}).")
                url = None
            except BackendUnavailable as exc:
                if produced:
                    raise
                lacking.append(self._job_failed(url, exc))
                url = None
            finally:
                job.ended = time.time()


@dataclass
class _Job:
    """One of our jobs on a server: when it was submitted and when it ended (epoch seconds)."""

    started: float
    ended: float | None = None

    def running_at(self, moment: float) -> bool:
        return self.started <= moment and (self.ended is None or self.ended > moment)


def _missing_loras(model: ModelSpec, loras: tuple[Any, ...], states: list[Any]) -> str:
    """The sentence for LoRAs that the up servers with `model` (`states`, each lacking one at least) do not
    have, naming each server, what it lacks and what it has."""
    lacking = {st.url: [use.name for use in loras if st.models.lora_file(use.name) is None] for st in states}
    names = [use.name for use in loras if any(use.name in miss for miss in lacking.values())]
    parts = []
    for st in states:
        have = sorted({file_stem(f) for f in st.models.loras}, key=str.lower)
        shown = ", ".join(have[:SHOWN_LORAS]) + (f" and {len(have) - SHOWN_LORAS} more" if len(have) > SHOWN_LORAS
                                                 else "")
        parts.append(f"{st.url} lacks {_quoted(lacking[st.url])}"
                     + (f" (its LoRAs: {shown})" if have else " (it has no LoRA)"))
    return (f"No running ComfyUI server with {model.label} has the LoRA{'s' if len(names) > 1 else ''} "
            f"{_quoted(names)}: {'; '.join(parts)}.")


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


NO_RESCALE = {"flux": "FLUX samples without classifier-free guidance (its guidance is distilled into the model)",
              "sd3": "ComfyUI's RescaleCFG is made for noise- and v-prediction models, and SD 3 is a flow model"}


def _sampled_shares(graph: dict[str, Any], template: WorkflowTemplate, family: str, steps: int) -> list[float]:
    """The 0-1 share of each step the graph's sampler runs: the schedule set on the node holding its steps (KSampler,
    KSamplerAdvanced, or a custom sampler's BasicScheduler, which drops no sigma for any sampler as KSampler does),
    only the steps KSamplerAdvanced's start_at_step and end_at_step let run."""
    inputs = graph[template.bindings["steps"][0][0]]["inputs"]

    def setting(name: str, default: Any) -> Any:
        value = inputs.get(name, default)
        return default if is_link(value) else value

    shares = step_shares(family, str(setting("scheduler", "normal")), steps, float(setting("denoise", 1.0)),
                         str(setting("sampler_name", "")))
    return shares[int(setting("start_at_step", 0)):int(setting("end_at_step", len(shares)))]


def _rescales_cfg(request: GenerationRequest, model: ModelSpec) -> bool:
    """Whether the graph gets a RescaleCFG: asked for, and a model its formula is for (not in NO_RESCALE)."""
    return bool(request.cfg_rescale) and model.family not in NO_RESCALE


def _guidance(request: GenerationRequest, model: ModelSpec) -> float:
    return request.guidance_scale if request.guidance_scale is not None else model.default_guidance


def _checkpoint_label(filename: str) -> str:
    stem = Path(filename).stem
    return f"{stem} (ComfyUI)"


def _build(context: BackendContext) -> ComfyUIBackend:
    settings = context.settings
    monitor = None
    if settings.enable_comfyui and (settings.comfyui_urls or settings.comfyui_dir):  # COMFYUI_DIR: servers join later
        monitor = HealthMonitor(settings.comfyui_urls, interval_s=settings.health_interval_s,
                                timeout_s=settings.health_timeout_s)

        def on_server_change(url: str, old: Any, new: Any) -> None:
            state = "up" if getattr(new, "up", False) else "down"
            context.on_change(f"ComfyUI {url} is {state}", getattr(new, "last_error", None) or "")

        monitor.subscribe(on_server_change)
    return ComfyUIBackend(settings, monitor, poll_in_background=context.start_monitor)


register_backend(ComfyUIBackend.name, _build)
