"""The local backend: diffusers pipelines on this machine, one worker per device (engine/backends/device_workers.py)
keeping one pipeline loaded; dtype choice, step previews, cancel; real weights that are missing or fail to load are
replaced by the built-in tiny model."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from ..errors import BackendUnavailable, GenerationCancelled, InvalidRequest, first_line, os_reason
from ..events import Event, Produced, Progress, Queued, Started
from ..file_hashes import LORA_HASH_DIGITS, MODEL_HASH_DIGITS, TENSOR_DATA, FileHashes, short_hash
from ..logs import keep_log_lines_short
from ..compiled import CompileOptions
from ..controlnet import control_map
from ..inpaint import ORIGINAL
from ..precision import chosen_dtype
from ..prompt_schedule import FIRST_PASS_STEPS
from ..previews import StepPreviews
from ..model_files import (CHECKPOINT, CONTROLNET, EMBEDDING, KIND_LABELS, LORA, PREVIEW_DECODER, TAESD_DECODERS,
                           UPSCALER, VAE, ModelFile, ModelFolders)
from ..registry import (Hardware, ModelSpec, builtin_model, catalogue_for, clip_skip_for, family_of, find_model,
                        fits, freeu_for, needs_offload)
from ..request import AUTO, GenerationRequest
from ..single_file import load_single_file
from ..tiny_model import ensure_tiny_model
from ..upscale import upscaler_named
from ..weights import Missing, WeightSource, locate_weights
from . import register_backend
from .base import (INTERPOLATE, MODEL_FILES_LEFT_OUT, TILING, VARIATION, Backend, BackendContext, BackendState,
                   Target)
from .clip_layers import clip_skipped, encoder_layer_count
from .device_workers import DeviceWorker, WorkerPool
from .embeddings import named_in, vector_count
from .guidance_rescale import rescaled_guidance
from .masked_latents import masked_latents
from .scheduler_choice import seed_scheduler_noise, set_scheduler
from .lora_adapters import LoraFile
from .prompt_weights import is_weighted, plain_inputs, weighted_inputs
from .scheduled_prompts import scheduled_prompts, settled
from .tiling import seamless
from .varied_noise import noise_moved_toward

logger = logging.getLogger(__name__)

_END = object()
STAND_IN_NOTE = "Left out for the tiny demo model: the {files} (made for the model asked for)."
KIND_HOMES = {LORA: "Lora/ or loras/", CONTROLNET: "ControlNet/ or controlnet/"}  # where a missing kind's files go


def slerp(a, b, t: float):
    """Spherical interpolation between two noise tensors (keeps the noise's norm)."""
    import torch

    a_flat, b_flat = a.flatten(), b.flatten()
    cos = torch.clamp(torch.dot(a_flat, b_flat) / (a_flat.norm() * b_flat.norm()), -1.0, 1.0)
    theta = torch.acos(cos)
    if theta.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)


def mixed_noise(pipe: Any, req: GenerationRequest, other_seed: int, t: float) -> Any:
    """The starting noise of `req.seed`, as the pipeline would draw it, moved spherically toward `other_seed`'s by `t`
    (A1111's variation seed; a storyboard's seed travel)."""
    import torch

    scale = pipe.vae_scale_factor
    shape = (1, pipe.unet.config.in_channels, req.height // scale, req.width // scale)
    noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)))
             for seed in (req.seed, other_seed)]
    return slerp(*noise, float(t)).to(pipe._execution_device, pipe.unet.dtype)


A1111_NAME_SYMBOLS = str.maketrans("", "", ":,")  # left out of a name in "Lora hashes", as A1111 does


class DiffusersBackend(Backend):
    """Runs diffusers pipelines on this machine, one generation at a time per device (`devices`: one worker each;
    default: `hardware` alone)."""

    name = "diffusers"
    label = "diffusers"
    priority = 0
    local = True
    features = frozenset({INTERPOLATE, VARIATION, TILING})

    def __init__(self, hardware: Hardware, allow_downloads: bool = False, *, models_dir: Any = None,
                 tiny_dir: Any = None, model_roots: list[Any] | None = None, pipeline_configs: Any = None,
                 dtype: str = "auto", compile_options: CompileOptions = CompileOptions(),
                 devices: Sequence[Hardware] | None = None, file_hash_cache: Any = None,
                 previews: str = "auto") -> None:
        self.hardware = hardware
        self.preview_method = previews  # auto, taesd or projection (engine/config.py PREVIEW_METHODS)
        self.dtype_name, self.dtype_reason = chosen_dtype(dtype, hardware.device)
        self.pool = WorkerPool(devices or [hardware], compile_options)
        self.allow_downloads = allow_downloads  # hub models may be downloaded
        self.models_dir = models_dir
        self.tiny_dir = tiny_dir
        self.folders = ModelFolders(model_roots if model_roots is not None else [models_dir])
        self._vectors: dict[tuple[str, int, float], int] = {}  # an embedding file's version -> its vectors
        self.hashes = FileHashes(Path(file_hash_cache) if file_hash_cache else None)  # checkpoints' "Model hash"
        self.pipeline_configs = pipeline_configs  # None: presets/pipelines/
        self.weights: dict[str, WeightSource | Missing] = {}
        self.user_models: dict[str, ModelSpec] = {}  # the user's own checkpoints, by id (their file name)
        self.notices: list[str] = []  # why real weights are not available
        self._failed: dict[tuple[str, int, float], str] = {}  # files that failed to load, until they change
        self._executor = ThreadPoolExecutor(max_workers=8 * len(self.pool), thread_name_prefix="diffusers")
        self._loading = threading.Lock()

    # -- what it can run ------------------------------------------------------------------------
    def start(self) -> None:
        """Build the tiny model if needed and find every catalogue model's weights (offline, instant)."""
        import diffusers.pipelines  # noqa: F401  (imported now so a fallback never waits on it)

        keep_log_lines_short("diffusers", "transformers")  # they echo over-long prompts when they truncate them
        try:
            ensure_tiny_model(self.tiny_dir)
            self._tiny_problem: str | None = None
        except OSError as err:  # a full or read-only disk: the app still starts and says why
            logger.error("Could not build the tiny demo model in %s: %s", self.tiny_dir, err)
            self._tiny_problem = (f"The tiny demo model is unavailable: its files could not be written to its "
                                  f"cache folder ({os_reason(err)}). Free some space there or set "
                                  "GATOR_TINY_MODEL_DIR.")
        self.rescan()
        for notice in self.notices:
            logger.warning("%s", notice)
        if not self.models():
            logger.error("No local model can run: %s", " ".join(self.notices))
        elif self.best().builtin:
            logger.warning("No real diffusers weights found: local generation uses the tiny demo model.")

    def rescan(self) -> None:
        """Find every catalogue model's weights and the user's checkpoints again (offline; headers only)."""
        files = self.folders.scan()
        by_file_name = {f.path.name.lower(): f for f in files if f.kind == CHECKPOINT and not f.problem}
        weights: dict[str, WeightSource | Missing] = {}
        claimed: set[str] = set()
        for spec in catalogue_for(self.name):
            found = by_file_name.get((spec.single_file or "").lower())
            source = locate_weights(spec, self.models_dir, self.tiny_dir, self.allow_downloads)
            if isinstance(source, Missing) and found is not None:  # e.g. under an A1111 Stable-diffusion/
                source = WeightSource("single_file", str(found.path))
            if found is not None:
                claimed.add(str(found.path))
            weights[spec.id] = self._unless_failed(source)
        if getattr(self, "_tiny_problem", None):
            weights[builtin_model().id] = Missing(self._tiny_problem)
        user: dict[str, ModelSpec] = {}
        for entry in files:
            if entry.kind != CHECKPOINT or str(entry.path) in claimed or entry.name in user:
                continue
            spec = user_checkpoint(entry)
            user[spec.id] = spec
            problem = entry.problem or _local_problem(entry)
            weights[spec.id] = Missing(problem) if problem else self._unless_failed(
                WeightSource("single_file", str(entry.path)))
        self.weights, self.user_models = weights, user
        self.notices = [w.reason for w in weights.values() if isinstance(w, Missing)]

    def _unless_failed(self, source: WeightSource | Missing) -> WeightSource | Missing:
        """`source`, or the sentence of its earlier failed load when its file has not changed since."""
        if isinstance(source, WeightSource) and source.kind == "single_file":
            sentence = self._failed.get(_stamp(source.location))
            if sentence:
                return Missing(sentence)
        return source

    def _specs(self) -> list[ModelSpec]:
        """The catalogue's local models and the user's checkpoints, best first."""
        return sorted([*catalogue_for(self.name), *self.user_models.values()], key=lambda s: -s.rank)

    def models(self) -> list[ModelSpec]:
        """Models whose weights are here and that fit this machine, best first (the tiny model last)."""
        return [spec for spec in self._specs()
                if isinstance(self.weights.get(spec.id), WeightSource) and fits(spec, self.hardware)]

    def missing(self) -> list[tuple[ModelSpec, str]]:
        return [(spec, source.reason) for spec in self._specs()
                if isinstance(source := self.weights.get(spec.id), Missing)]

    def best(self) -> ModelSpec:
        """The best model this machine runs now for any request (the tiny model at worst): never an inpainting
        checkpoint, which only inpaints."""
        return next((spec for spec in self.models() if not spec.inpainting), builtin_model())

    def default_model(self) -> ModelSpec | None:
        return self.best() if self.models() else None

    def model_hash(self, spec: ModelSpec) -> str | None:
        """A1111's "Model hash" of `spec`'s checkpoint file, once known (hashed when it loads); None for models
        that are not one file (a diffusers folder, the hub, the tiny model)."""
        source = self.weights.get(spec.id)
        if not isinstance(source, WeightSource) or source.kind != "single_file":
            return None
        return short_hash(self.hashes.known(source.location))

    def model_with_hash(self, model_hash: str) -> ModelSpec | None:
        """The checkpoint here whose "Model hash" is `model_hash` (its first 10 hex digits, any case), among the
        files hashed so far (a file is hashed when it first loads, and remembered; nothing is read here)."""
        wanted = model_hash.strip().lower()[:MODEL_HASH_DIGITS]
        if len(wanted) < MODEL_HASH_DIGITS:
            return None
        return next((spec for spec in self.models() if self.model_hash(spec) == wanted), None)

    def lora_hashes(self, loras: list[LoraFile]) -> str | None:
        """A1111's "Lora hashes" of `loras` ("name: 0123456789ab, ..."), those hashed so far; None for none."""
        pairs = [(lora.name.translate(A1111_NAME_SYMBOLS), short_hash(self.hashes.known(lora.path, TENSOR_DATA),
                                                                      LORA_HASH_DIGITS)) for lora in loras]
        return ", ".join(f"{name}: {digest}" for name, digest in pairs if digest) or None

    def find(self, model_id: str) -> ModelSpec | None:
        """A catalogue model by id or label, or the user's checkpoint by file name (with or without extension)."""
        spec = find_model(model_id)
        if spec is not None and spec.backend == self.name:
            return spec
        key = (model_id or "").strip().lower()
        return next((spec for spec in self.user_models.values()
                     if key in (spec.id.lower(), Path(spec.single_file or "").name.lower())), None)

    def why_not(self, model: ModelSpec | None) -> str | None:
        """None while any local model runs (a model without weights runs as the tiny model, with a warning)."""
        if self.models():
            return None
        tiny = self.weights.get(builtin_model().id)
        return tiny.reason if isinstance(tiny, Missing) else "No local model is available."

    def loras(self) -> dict[str, str | None]:
        """The LoRAs in the model folders: name -> family (None when the file does not say)."""
        return {f.name: f.family for f in self.folders.files(LORA)}

    def vaes(self) -> list[str]:
        return [f.name for f in self.folders.files(VAE)]

    def embeddings(self) -> dict[str, int]:
        """The textual-inversion embeddings in the model folders: name -> the token places it takes (its vectors)."""
        found = {}
        for entry in self.folders.files(EMBEDDING):
            if entry.stamp not in self._vectors:
                self._vectors[entry.stamp] = vector_count(entry)
            found[entry.name] = self._vectors[entry.stamp]
        return found

    def upscalers(self) -> list[str]:
        """Every upscaler file in the model folders, a damaged one too (named, it is its sentence)."""
        return [f.name for f in self.folders.files(UPSCALER, usable=False)]

    async def upscale(self, image: Any, width: int, height: int, upscaler: str, cancel: Any = None) -> Any:
        """`image` through the upscaler file `upscaler` (spandrel, in pieces: engine/backends/upscale_models.py) on
        this machine's device, one job at a time like generation; InvalidRequest for a file that cannot be used."""
        files = {f.name: f for f in self.folders.files(UPSCALER, usable=False)}
        file = files.get(upscaler_named(upscaler, files) or "")
        if file is None:
            raise InvalidRequest(f"No upscaler file {upscaler!r} is in the model folders.")
        if file.problem:
            raise InvalidRequest(file.problem)

        worker = self.pool.claim()

        def work() -> Any:
            with worker.running():
                return worker.upscale_models.upscale(file, image, width, height, worker.device,
                                                     stopped=lambda: cancel is not None and cancel.is_set())

        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def vae_file(self, request: GenerationRequest) -> ModelFile | None:
        """The request's VAE file (None: the checkpoint's own); InvalidRequest names an unknown one."""
        if not request.vae:
            return None
        found = self.folders.find(request.vae, VAE)
        if found is None:
            known = ", ".join(self.vaes()) or "none (put .safetensors VAEs in a VAE/ or vae/ folder of a model folder)"
            raise InvalidRequest(f"Unknown VAE {request.vae!r}. VAEs here: {known}; or auto.")
        return found

    def controlnets(self) -> dict[str, str | None]:
        """The ControlNets in the model folders: name -> family (None when the file does not say)."""
        return {f.name: f.family for f in self.folders.files(CONTROLNET)}

    def controlnet_file(self, request: GenerationRequest, model: ModelSpec) -> ModelFile | None:
        """The request's ControlNet file (None: no ControlNet); InvalidRequest names one that is unknown or made for
        another family."""
        return self._named_file(request.controlnet, CONTROLNET, model) if request.uses_controlnet else None

    def _named_file(self, name: str, kind: str, model: ModelSpec) -> ModelFile:
        """The usable `kind` file (a LoRA, a ControlNet) listed as `name`, for `model`; InvalidRequest names one that
        is unknown or made for another family."""
        label = KIND_LABELS[kind]
        found = self.folders.find(name, kind)
        if found is None:
            known = ", ".join(f.name for f in self.folders.files(kind)) or \
                f"none (put .safetensors {label}s in a {KIND_HOMES[kind]} folder of a model folder)"
            raise InvalidRequest(f"Unknown {label} {name!r}. {label}s here: {known}.")
        if found.family and not model.builtin and found.family != model.family:
            raise InvalidRequest(f"The {label} {found.name} is for {family_of(found.family).label} models; "
                                 f"{model.label} is {family_of(model.family).label}.")
        return found

    def lora_files(self, request: GenerationRequest, model: ModelSpec) -> list[LoraFile]:
        """The request's LoRAs as files for `model`; InvalidRequest names one that is unknown or made for
        another family."""
        out = []
        for use in request.loras:
            found = self._named_file(use.name, LORA, model)
            out.append(LoraFile(found.name, found.path, use.weight, found.stamp))
        return out

    def plan(self, request: GenerationRequest, model: ModelSpec | None) -> Target:
        """The requested model when its weights are here; otherwise the tiny model, saying why."""
        target = self._plan_model(request, model)
        self.lora_files(request, target.model)  # a LoRA, VAE or ControlNet problem is a sentence now, before any work
        self.vae_file(request)
        self.controlnet_file(request, target.model)
        return target

    def _plan_model(self, request: GenerationRequest, model: ModelSpec | None) -> Target:
        why = self.why_not(model)
        if why:
            raise BackendUnavailable(why)
        if model is None:
            return Target(self.name, self.best())
        source = self.weights.get(model.id)
        if model.inpainting and not request.inpaints:
            raise InvalidRequest(f"{model.label} is an inpainting checkpoint: it redraws the painted part of an "
                                 "image (Inpaint). For text to image or image to image, pick an ordinary checkpoint.")
        if isinstance(source, WeightSource):
            return Target(self.name, model)
        if model.id in self.user_models:  # the user's own file, named: its problem, not another model
            raise InvalidRequest(source.reason if isinstance(source, Missing) else f"{model.label} cannot run.")
        reason = source.reason if isinstance(source, Missing) else f"{model.label} is not a local model."
        return Target(self.name, builtin_model(), warnings=(f"{reason} Used the tiny demo model instead.",))

    def state(self) -> BackendState:
        best = self.best()
        if not self.models():
            return BackendState(name=self.name, label=self.label, enabled=True, ready=False,
                                summary="no model can run", short_reason="no local model",
                                details={"demo": False, "notices": list(self.notices), "loaded_model": None})
        return BackendState(name=self.name, label=self.label, enabled=True, ready=True,
                            summary=f"{best.label} on {self.hardware.describe()}"
                                    + (f" x {len(self.pool)} workers" if len(self.pool) > 1 else "")
                                    + (f" (loaded: {self.loaded_model})" if self.loaded_model else ""),
                            short_reason="" if not best.builtin else "no real weights found",
                            models=[m.id for m in self.models()],
                            details={"demo": best.builtin, "notices": list(self.notices),
                                     "loaded_model": self.loaded_model, "compile": self.pool[0].compiler.snapshot(),
                                     "dtype": f"{self.dtype_name} ({self.dtype_reason})",
                                     "workers": self.pool.snapshot(),
                                     "preview_decoders": sorted(f.path.name for f in
                                                                self.folders.files(PREVIEW_DECODER))})

    def wrap_generation(self, decorator: Any) -> None:
        """Run every local generation through `decorator` (e.g. a Hugging Face ZeroGPU `spaces.GPU(...)`)."""
        self._generate = decorator(self._generate)

    # -- device and loading -------------------------------------------------------------------
    def device_and_dtype(self, spec: ModelSpec, worker: DeviceWorker | None = None) -> tuple[str, Any]:
        """The device of `worker` (the first one by default) and the dtype chosen for it (engine/precision.py); the
        tiny model always runs on the CPU in fp32."""
        import torch

        worker = worker or self.pool[0]
        if spec.builtin or worker.hardware.device == "cpu":
            return "cpu", torch.float32
        return worker.device, getattr(torch, self.dtype_name)

    @property
    def loaded_model(self) -> str | None:
        """The model(s) loaded now, comma-separated when workers hold different ones."""
        loaded = list(dict.fromkeys(w.loaded_model for w in self.pool if w.loaded_model))
        return ", ".join(loaded) or None

    @property
    def loads(self) -> int:
        """How many times a pipeline was loaded from disk, over every worker (cache reuse is observable)."""
        return sum(w.loads for w in self.pool)

    def pipeline(self, spec: ModelSpec, source: WeightSource, worker: DeviceWorker | None = None):
        """The pipeline for `spec` on `worker` (the first one by default), loaded once and kept; a different model
        replaces it."""
        worker = worker or self.pool[0]
        key = (spec.id, source.location)
        with worker.load_lock:
            if worker.pipe is not None and worker.pipe_key == key:
                return worker.pipe
            worker.pipe = None  # free the old one before loading the next
            worker.pipe_key = None
            with self._loading:  # one load at a time: diffusers' empty-weights init patches torch process-wide
                pipe = self._load(spec, source, worker)
            worker.pipe, worker.pipe_key = pipe, key
            worker.loads += 1
            return pipe

    def _load(self, spec: ModelSpec, source: WeightSource, worker: DeviceWorker):
        import diffusers
        import transformers

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()

        cls = getattr(diffusers, spec.pipeline)
        device, dtype = self.device_and_dtype(spec, worker)
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"dtype": dtype}
        try:
            if source.kind == "single_file":
                self.hashes.start(source.location)  # read beside the load (mostly from the page cache it fills)
                # the file holds the weights; its family's configs and tokenizers ship with the app (offline)
                pipe = load_single_file(cls, source.location, spec.family, dtype=dtype,
                                        config_root=self.pipeline_configs, inpainting=spec.inpainting)
            elif source.kind == "hub_download":
                pipe = cls.from_pretrained(source.location, **kwargs)
            else:
                pipe = cls.from_pretrained(source.location, local_files_only=True, **kwargs)
        except Exception as err:  # remembered (a file until it changes, a folder until a rescan): never a reload
            if source.kind == "single_file":  # on every request
                sentence = (f"{Path(source.location).name} could not be loaded as a {family_of(spec.family).label} "
                            f"checkpoint ({first_line(err)}).")
                self._failed[_stamp(source.location)] = sentence
            else:
                sentence = f"{spec.label} could not be loaded from {Path(source.location).name} ({first_line(err)})."
            self.weights[spec.id] = Missing(sentence)
            self.notices.append(sentence)
            raise BackendUnavailable(sentence) from err
        if hasattr(pipe, "safety_checker") and getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None
        if needs_offload(spec, worker.hardware):
            logger.info("GPU memory of %s is tight for %s: enabling model CPU offload", worker.device, spec.label)
            pipe.enable_model_cpu_offload(device=worker.device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        logger.info("Loaded %s (%s) on %s in %.2fs", spec.label, source.kind, device, time.perf_counter() - started)
        if not spec.builtin:  # the demo model is not worth compiling
            worker.compiler.attach(pipe, spec.label, spec.native_size)
        return pipe

    # -- generation ---------------------------------------------------------------------------
    async def stream(self, req: GenerationRequest, target: Target, cancel: Any = None,
                     previews: bool = True) -> AsyncIterator[Event | Produced]:
        """Started, Queued (when waiting), Progress per step, then Produced. Real weights that fail to load
        are replaced by the tiny model (a warning in the result). Raises on failure or cancel."""
        spec, warnings = target.model, list(target.warnings)
        stand_in = spec.builtin and self._asks_another_model(req)
        yield Started(backend=self.name, model=spec.label)
        while True:
            try:
                left_out = req.model_files() if stand_in else []
                if left_out and STAND_IN_NOTE.format(files=" and ".join(left_out)) not in warnings:
                    warnings.append(STAND_IN_NOTE.format(files=" and ".join(left_out)))
                run = req.without_model_files() if left_out else req
                async for item in self._run(run, spec, self.weights[spec.id], cancel, previews):
                    if isinstance(item, Produced):
                        item = Produced(item.image, {**item.info, "model": spec.label, "model_id": spec.id,
                                                     "license": spec.license, MODEL_FILES_LEFT_OUT: bool(left_out),
                                                     "model_hash": self.model_hash(spec),
                                                     "server": item.info.get("worker"),
                                                     "warnings": warnings + list(item.info.get("warnings", []))})
                    yield item
                return
            except BackendUnavailable as err:
                if spec.builtin or (spec.id in self.user_models and bool(req.model) and self.find(req.model) == spec):
                    raise  # the user's own file, named: its sentence, not another model's picture
                warnings.append(f"{err} Used the tiny demo model instead.")
                spec, stand_in = builtin_model(), True

    def _asks_another_model(self, req: GenerationRequest) -> bool:
        """Whether `req` names a model other than the tiny demo model (one this backend lacks, or cannot load)."""
        asked = (req.model or "").strip()
        return bool(asked) and asked.lower() != AUTO and self.find(asked) != builtin_model()

    async def _run(self, req: GenerationRequest, spec: ModelSpec, source: WeightSource,
                   cancel: Any, previews: bool) -> AsyncIterator[Event | Produced]:
        """Yield Queued (when waiting), Progress per step, then Produced. Raises on failure or cancel."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def push(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def stopped() -> bool:
            return stop.is_set() or bool(cancel is not None and cancel.is_set())

        worker = self.pool.claim(spec.id)
        position = worker.waiting if worker.busy else 0

        def work() -> None:
            try:
                with worker.running():
                    if stopped():
                        raise GenerationCancelled("Cancelled before it started.")
                    push(self._generate(req, spec, source, push, stopped, previews, worker))
            except BaseException as err:  # handed to the event loop, raised there
                push(err)
            finally:
                push(_END)

        loop.run_in_executor(self._executor, work)
        if position:
            yield Queued(position=position)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # the consumer left (cancelled task, closed generator): the thread stops at its next step

    def _generate(self, req: GenerationRequest, spec: ModelSpec, source: WeightSource,
                  push, stopped, previews: bool, worker: DeviceWorker) -> Produced:
        pipe = self.pipeline(spec, source, worker)
        # the pipe's LoRAs, VAE, embeddings and sampler are set first, with every text encoder layer in place
        # (peft and diffusers walk the module tree: a layer left out while they do would keep a stale adapter)
        loras = self.lora_files(req, spec)
        for lora in loras:  # hashed while the image is made (a LoRA is small): its PNG names the hash
            self.hashes.start(lora.path, TENSOR_DATA)
        worker.adapters.apply(pipe, loras, spec.label)
        vae = self.vae_file(req)
        worker.vae_choice.apply(pipe, vae.path if vae else None, vae.stamp if vae else None, spec.label)
        named = named_in(self.folders.files(EMBEDDING), req.prompt, req.negative_prompt)
        warnings: list[str] = worker.embeddings.apply(pipe, named, spec.family, spec.label)
        set_scheduler(pipe, req.sampler, spec, req.num_inference_steps)
        freeu = freeu_for(spec) if req.freeu else None
        freeu_unused = None
        if freeu and worker.compiler.wanted:  # the compiled graphs are traced without it: they would never run again
            freeu, freeu_unused = None, "this device runs a compiled UNet, traced without FreeU (GATOR_COMPILE=off " \
                                        "to use it)"
        set_freeu(pipe, freeu)
        clip_skip = clip_skip_for(spec, req.clip_skip)
        layers = encoder_layer_count(pipe)
        if spec.builtin and layers and clip_skip > layers:  # the demo model's encoder is two layers deep
            warnings.append(f"Clip skip {clip_skip} is more than the tiny demo model's {layers} text encoder "
                            f"layers; it used {layers}.")
            clip_skip = layers
        tiling = bool(req.tiling) and not worker.compiler.wanted  # circular padding would cost the compiled graphs
        if req.tiling and not tiling:
            warnings.append("Tiling was not used: this device runs a compiled UNet, traced with zero padding "
                            "(GATOR_COMPILE=off to use it).")
        with clip_skipped(pipe, clip_skip), seamless(pipe, on=tiling):  # every encoding of this image; its convs
            produced = self._generate_on(pipe, req, spec, loras, warnings, push, stopped, previews, worker)
        return Produced(produced.image, {**produced.info, "clip_skip": clip_skip, "freeu": bool(freeu),
                                         "freeu_unused": freeu_unused, "tiling": tiling})

    def _generate_on(self, pipe: Any, req: GenerationRequest, spec: ModelSpec, loras: list[LoraFile],
                     warnings: list[str], push, stopped, previews: bool, worker: DeviceWorker) -> Produced:
        import torch

        total = req.num_inference_steps
        guidance = spec.default_guidance if req.guidance_scale is None else float(req.guidance_scale)
        kwargs: dict[str, Any] = dict(
            num_inference_steps=total, guidance_scale=guidance, generator=torch.Generator("cpu").manual_seed(req.seed),
        )
        run = pipe
        control_file = self.controlnet_file(req, spec)
        with_controlnet = {"controlnet": worker.controlnet_models.model(pipe, control_file, spec.label)} \
            if control_file is not None else {}
        if req.init_image is not None:  # img2img or inpaint on the loaded weights (from_pipe shares every module)
            total = min(int(req.num_inference_steps * req.strength), req.num_inference_steps)
            if total < 1:  # a strength too low for a single step keeps the init image, as asked
                return Produced(image=req.init_image.copy(), info={"guidance": guidance, "warnings": warnings,
                                                                   "generation_s": 0.0, "worker": self._named(worker),
                                                                   "device": self.device_and_dtype(spec, worker)[0],
                                                                   "cfg_rescale_unused": "no step ran"})
            if req.mask is not None:  # the size too: the inpaint pipelines default to the model's own
                run = derived(pipe, "AutoPipelineForInpainting", **with_controlnet)
                kwargs.update(image=req.init_image, mask_image=req.mask, strength=req.strength, width=req.width,
                              height=req.height)
            else:
                run = derived(pipe, "AutoPipelineForImage2Image", **with_controlnet)
                kwargs.update(image=req.init_image, strength=req.strength)
        else:
            run = derived(pipe, "AutoPipelineForText2Image", **with_controlnet) if with_controlnet else pipe
            kwargs.update(width=req.width, height=req.height)
        cfg_rescale_unused, through_unet = None, 0.0
        if req.cfg_rescale and guidance <= 1:
            cfg_rescale_unused = "a guidance scale of 1 or less samples without classifier-free guidance"
        elif req.cfg_rescale and takes_argument(run, "guidance_rescale"):
            kwargs["guidance_rescale"] = req.cfg_rescale
        elif req.cfg_rescale and worker.compiler.wanted:  # a hook would cost the compiled graphs
            cfg_rescale_unused = f"diffusers' {type(run).__name__} has no guidance_rescale, and this device's UNet " \
                                 "is compiled (GATOR_COMPILE=off to use it)"
        elif req.cfg_rescale:  # the same rescale through the UNet's output (engine/backends/guidance_rescale.py)
            through_unet = req.cfg_rescale
        if with_controlnet:  # the map at the size drawn; text to image takes it as `image`, the others beside theirs
            kwargs.update({"image" if req.init_image is None else "control_image": control_map(req),
                           "controlnet_conditioning_scale": req.controlnet_weight,
                           "control_guidance_start": req.controlnet_start, "control_guidance_end": req.controlnet_end})
        interpolate = req.extra.get(INTERPOLATE)
        schedule = None if interpolate else scheduled_prompts(
            pipe, spec.family, req.prompt, req.negative_prompt, total, guidance, req.extra.get(FIRST_PASS_STEPS))
        if interpolate:  # a lerp of two prompts' embeddings: each prompt as it ends (no edits, no chunks)
            texts = {"prompt": req.prompt, "negative_prompt": req.negative_prompt,
                     **{key: interpolate[key] for key in ("prompt_b", "negative_prompt_b") if key in interpolate}}
            plain = {key: settled(text or "", total) for key, text in texts.items()}
            if any(plain[key] != (text or "") for key, text in texts.items()):
                warnings.append("A seed-travel in-between blends the prompts as they end: their [from:to:when] "
                                "edits and BREAKs are not applied there.")
            req = replace(req, prompt=plain["prompt"], negative_prompt=plain["negative_prompt"])
            interpolate = {**interpolate, **{key: plain[key] for key in ("prompt_b", "negative_prompt_b")
                                             if key in plain}}
            warnings += self._truncation_warnings(pipe, req)
            kwargs.update(self._interpolated_inputs(pipe, req, spec, guidance, interpolate))
        elif schedule is not None:  # A1111's [from:to:when] and [a|b]: embeddings swapped between steps
            for prompt, negative in schedule.plain:
                found = self._truncation_warnings(pipe, replace(req, prompt=prompt, negative_prompt=negative))
                warnings += [warning for warning in found if warning not in warnings]
            kwargs.update(schedule.first_inputs(), callback_on_step_end_tensor_inputs=["latents",
                                                                                        *schedule.tensor_inputs(run)])
        elif is_weighted(req.prompt, req.negative_prompt):  # A1111's (word:1.3): compel, long prompts not cut
            kwargs.update(weighted_inputs(pipe, spec.family, req.prompt, req.negative_prompt))
        else:
            warnings += self._truncation_warnings(pipe, req)
            kwargs.update(prompt=req.prompt, negative_prompt=req.negative_prompt or None)
        if req.varies and req.init_image is None and not interpolate:
            kwargs["latents"] = mixed_noise(pipe, req, req.variation_seed, req.variation_strength)
        # image to image: the noise added to the init image is varied (a hires pass redraws the varied first image)
        varied_init = req.varies and req.init_image is not None and FIRST_PASS_STEPS not in req.extra

        step_previews = StepPreviews(spec.family, decode=self._preview_decoder(spec, worker)) if previews else None

        def show(ready: list) -> None:
            for step, preview in ready:
                push(Progress(step=step, total=total, preview=preview, backend=self.name))

        def on_step(_pipe, index: int, _timestep, tensors: dict) -> dict:
            # a second-order scheduler (Heun, DPM2, DPM++ SDE) calls back twice a step, once mid-step (as the
            # pipelines count their progress); its last step is a single call
            order = _pipe.scheduler.order
            step = (index + order) // order
            if stopped():
                raise GenerationCancelled(f"Stopped at step {step}/{total}.")
            if (index + 1) % order and step < total:
                return tensors
            if step_previews is None:
                push(Progress(step=step, total=total, preview=None, backend=self.name))
            else:  # on a GPU a step's preview is read once its copy has finished: no device sync per step
                show(step_previews.add(step, tensors["latents"], last=step >= total))
                if step >= total:
                    show(step_previews.flush())
            return schedule.swap(_pipe, step - 1, tensors) if schedule is not None else tensors

        seed_scheduler_noise(run.scheduler, req.seed)
        started = time.perf_counter()
        with masked_latents(run, req.masked_content if req.mask is not None else ORIGINAL, req.mask, req.seed), \
                rescaled_guidance(run, through_unet, guidance), \
                noise_moved_toward(run.scheduler, req.variation_seed, req.variation_strength, slerp) \
                if varied_init else nullcontext():
            image = run(callback_on_step_end=on_step, **kwargs).images[0]
        if step_previews is not None:
            show(step_previews.flush())
        return Produced(image=image, info={
            "guidance": guidance, "warnings": warnings, "generation_s": time.perf_counter() - started,
            "device": self.device_and_dtype(spec, worker)[0], "worker": self._named(worker),
            "lora_hashes": self.lora_hashes(loras), "cfg_rescale": "guidance_rescale" in kwargs or bool(through_unet),
            "cfg_rescale_unused": cfg_rescale_unused,
        })

    def preview_decoder_file(self, spec: ModelSpec) -> ModelFile | None:
        """The TAESD decoder for the model's latent space in a VAE-approx folder (None: previews by the linear
        projection; always for the tiny demo model, whose latents are its own)."""
        if spec.builtin:
            return None
        return next((f for f in self.folders.files(PREVIEW_DECODER)
                     if spec.family in TAESD_DECODERS.get(f.path.stem.lower(), ())), None)

    def _preview_decoder(self, spec: ModelSpec, worker: DeviceWorker) -> Any:
        """The TAESD decode function for previews of `spec` on `worker` (None: the linear projection): with
        GATOR_PREVIEWS=auto only on a GPU, where it is cheap (on the CPU it costs 0.8 s a step at 512 px)."""
        device, dtype = self.device_and_dtype(spec, worker)
        if self.preview_method == "projection" or (self.preview_method == "auto" and device == "cpu"):
            return None
        return worker.preview_decoders.decoder(self.preview_decoder_file(spec), device, dtype)

    def _named(self, worker: DeviceWorker) -> str | None:
        """The worker a result names (its `server`): only where there are several."""
        return worker.name if len(self.pool) > 1 else None

    @staticmethod
    def _truncation_warnings(pipe, req: GenerationRequest) -> list[str]:
        """A warning per prompt longer than the model's token limit; none for the tiny demo model, whose
        byte-level vocabulary counts about one token per character (no real model's limit)."""
        from ..tiny_model import TINY_MARKER

        tokenizer = getattr(pipe, "tokenizer", None)
        if tokenizer is None:
            return []
        folder = str(getattr(pipe, "name_or_path", "") or "")
        if folder and (Path(folder) / TINY_MARKER).is_file():
            return []
        limit = tokenizer.model_max_length
        warnings = []
        for name, text in (("prompt", req.prompt), ("negative prompt", req.negative_prompt)):
            if text and len(tokenizer(text).input_ids) > limit:
                warnings.append(f"The {name} is longer than the model's {limit - 2}-token limit; "
                                f"the end was cut off.")
        return warnings

    @staticmethod
    def _interpolated_inputs(pipe, req: GenerationRequest, spec: ModelSpec, guidance: float,
                             interpolate: dict) -> dict[str, Any]:
        """Seed travel: slerp the initial noise and lerp the prompt embeddings between A and B."""
        import torch

        t = float(interpolate["t"])
        out: dict[str, Any] = {"latents": mixed_noise(pipe, req, int(interpolate["seed_b"]), t)}
        cfg = guidance > 1.0
        a = plain_inputs(pipe, spec.family, req.prompt, req.negative_prompt, cfg)
        b = plain_inputs(pipe, spec.family, interpolate.get("prompt_b", req.prompt),
                         interpolate.get("negative_prompt_b", req.negative_prompt), cfg)
        out.update({name: torch.lerp(a[name], b[name], t) for name in a if name in b})
        return out


FREEU_ATTRIBUTES = ("s1", "s2", "b1", "b2")  # what diffusers' enable_freeu sets on the UNet's up blocks


def set_freeu(pipe: Any, values: dict[str, float] | None) -> None:
    """FreeU on the UNet every derived pipeline shares, with `values`; None: the up blocks as they were before any
    FreeU (its attributes removed, not set to None as diffusers' disable_freeu leaves them)."""
    if values:
        pipe.enable_freeu(**values)
        return
    for block in getattr(pipe.unet, "up_blocks", ()):
        for name in FREEU_ATTRIBUTES:
            if name in vars(block):
                delattr(block, name)


def takes_argument(pipe: Any, name: str) -> bool:
    """Whether the pipeline's call takes the argument `name` (not every diffusers pipeline has every option)."""
    import inspect

    return name in inspect.signature(type(pipe).__call__).parameters


def derived(pipe: Any, auto_class: str, **components: Any) -> Any:
    """The pipeline of diffusers' `auto_class` (AutoPipelineForImage2Image, AutoPipelineForInpainting, and with a
    `controlnet` in `components` their ControlNet variants or AutoPipelineForText2Image's) over `pipe`'s very
    modules (LoRAs, VAE and embeddings included). Inpainting works with an ordinary UNet (each step puts the
    noised original back outside the mask) and better with an inpainting one (in_channels 9: the mask and the
    masked image go into the UNet)."""
    import diffusers

    run = getattr(diffusers, auto_class).from_pipe(pipe, **components)
    run.set_progress_bar_config(disable=True)
    return run


def user_checkpoint(entry: ModelFile) -> ModelSpec:
    """The model a user's checkpoint file is offered as: its file name, its family's defaults, the license its header
    metadata names ("unknown" when it names none: never guessed from the family)."""
    family = family_of(entry.family)
    pipeline = family.inpaint_pipeline if entry.inpainting else family.pipeline
    return ModelSpec(id=entry.name, label=entry.name, backend=DiffusersBackend.name, family=family.id,
                     rank=family.rank, single_file=str(entry.path), pipeline=pipeline or "",
                     inpainting=entry.inpainting, size_gb=round(entry.size / 1024**3, 2), min_ram_gb=family.min_ram_gb,
                     default_steps=family.default_steps, default_guidance=family.default_guidance,
                     native_size=family.native_size, license=entry.license or "unknown",
                     v_prediction=entry.v_prediction, zero_snr=entry.zero_snr)


def _local_problem(entry: ModelFile) -> str | None:
    """Why a readable checkpoint still cannot run here (None when it can)."""
    family = family_of(entry.family)
    if entry.family is None:
        return f"{entry.path.name}: its model family could not be told from its tensors."
    if family.pipeline is None:
        return (f"{entry.path.name} is a {family.label} checkpoint; this app loads SD 1.5 and SDXL single files "
                "locally (a ComfyUI server with the file runs it).")
    return None


def _stamp(location: str) -> tuple[str, int, float]:
    """A file's path, size and modification time: changes when the file changes."""
    try:
        stat = Path(location).stat()
        return location, stat.st_size, stat.st_mtime
    except OSError:
        return location, -1, -1.0


def _build(context: BackendContext) -> DiffusersBackend:
    settings = context.settings
    return DiffusersBackend(context.hardware, allow_downloads=settings.allow_downloads,
                            models_dir=settings.models_dir, tiny_dir=settings.tiny_dir,
                            model_roots=settings.model_roots, pipeline_configs=settings.pipeline_configs,
                            dtype=settings.dtype, compile_options=settings.compile_options,
                            devices=context.devices or None, file_hash_cache=settings.file_hash_cache,
                            previews=settings.previews)


register_backend(DiffusersBackend.name, _build)

