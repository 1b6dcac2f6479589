"""Local generation with diffusers: one pipeline kept loaded, device/dtype choice, step previews, cancel."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator

from .errors import BackendUnavailable, GenerationCancelled
from .events import Event, Produced, Progress, Queued
from .previews import latents_to_preview
from .registry import Hardware, ModelSpec, load_samplers, needs_offload
from .request import GenerationRequest
from .weights import WeightSource

logger = logging.getLogger(__name__)

_END = object()


def slerp(a, b, t: float):
    """Spherical interpolation between two noise tensors (keeps the noise's norm)."""
    import torch

    a_flat, b_flat = a.flatten(), b.flatten()
    cos = torch.clamp(torch.dot(a_flat, b_flat) / (a_flat.norm() * b_flat.norm()), -1.0, 1.0)
    theta = torch.acos(cos)
    if theta.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)


class DiffusersBackend:
    """Runs diffusers pipelines on this machine, one generation at a time per device."""

    def __init__(self, hardware: Hardware, allow_downloads: bool = False) -> None:
        self.hardware = hardware
        self.allow_downloads = allow_downloads  # a single .safetensors file may fetch its config from the hub
        self._pipe = None
        self._pipe_key: tuple[str, str] | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._waiting = 0
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="diffusers")
        self.loads = 0  # how many times a pipeline was loaded from disk (cache reuse is observable)

    def wrap_generation(self, decorator: Any) -> None:
        """Run every local generation through `decorator` (e.g. a Hugging Face ZeroGPU `spaces.GPU(...)`)."""
        self._generate = decorator(self._generate)

    # -- device and loading -------------------------------------------------------------------
    def device_and_dtype(self, spec: ModelSpec) -> tuple[str, Any]:
        """cuda fp16, mps fp16, cpu fp32; the tiny model always runs on the CPU in fp32."""
        import torch

        if spec.engine == "tiny" or self.hardware.device == "cpu":
            return "cpu", torch.float32
        return self.hardware.device, torch.float16

    @property
    def loaded_model(self) -> str | None:
        return self._pipe_key[0] if self._pipe_key else None

    def pipeline(self, spec: ModelSpec, source: WeightSource):
        """The pipeline for `spec`, loaded once and kept; a different model replaces it."""
        key = (spec.id, source.location)
        with self._load_lock:
            if self._pipe is not None and self._pipe_key == key:
                return self._pipe
            self._pipe = None  # free the old one before loading the next
            self._pipe_key = None
            pipe = self._load(spec, source)
            self._pipe, self._pipe_key = pipe, key
            self.loads += 1
            return pipe

    def _load(self, spec: ModelSpec, source: WeightSource):
        import diffusers
        import transformers

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()

        cls = getattr(diffusers, spec.pipeline)
        device, dtype = self.device_and_dtype(spec)
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"dtype": dtype}
        try:
            if source.kind == "single_file":
                # The file holds the weights; the pipeline's config comes from the Hugging Face cache
                # (or the hub, when downloads are allowed).
                pipe = cls.from_single_file(source.location, local_files_only=not self.allow_downloads, **kwargs)
            elif source.kind == "hub_download":
                pipe = cls.from_pretrained(source.location, **kwargs)
            else:
                pipe = cls.from_pretrained(source.location, local_files_only=True, **kwargs)
        except Exception as err:
            raise BackendUnavailable(f"Could not load {spec.label} from {source.location}: {err}") from err
        if hasattr(pipe, "safety_checker") and getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None
        if needs_offload(spec, self.hardware):
            logger.info("GPU memory is tight for %s: enabling model CPU offload", spec.label)
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        logger.info("Loaded %s (%s) on %s in %.2fs", spec.label, source.kind, device, time.perf_counter() - started)
        return pipe

    # -- generation ---------------------------------------------------------------------------
    async def stream(self, req: GenerationRequest, spec: ModelSpec, source: WeightSource,
                     cancel: Any = None, previews: bool = True) -> AsyncIterator[Event | Produced]:
        """Yield Queued (when waiting), Progress per step, then Produced. Raises on failure or cancel."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def push(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def stopped() -> bool:
            return stop.is_set() or bool(cancel is not None and cancel.is_set())

        def work() -> None:
            try:
                self._waiting += 1
                with self._run_lock:
                    self._waiting -= 1
                    if stopped():
                        raise GenerationCancelled("Cancelled before it started.")
                    push(self._generate(req, spec, source, push, stopped, previews))
            except BaseException as err:  # handed to the event loop, raised there
                push(err)
            finally:
                push(_END)

        if self._run_lock.locked():
            yield Queued(position=self._waiting + 1)
        loop.run_in_executor(self._executor, work)
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
                  push, stopped, previews: bool) -> Produced:
        import torch

        pipe = self.pipeline(spec, source)
        self._set_sampler(pipe, req.sampler)
        total = req.num_inference_steps
        guidance = spec.default_guidance if req.guidance_scale is None else float(req.guidance_scale)
        warnings: list[str] = []
        kwargs: dict[str, Any] = dict(
            num_inference_steps=total, guidance_scale=guidance, width=req.width, height=req.height,
            generator=torch.Generator("cpu").manual_seed(req.seed),
        )
        warnings += self._truncation_warnings(pipe, req)
        interpolate = req.extra.get("interpolate")
        if interpolate:
            kwargs.update(self._interpolated_inputs(pipe, req, spec, guidance, interpolate))
        else:
            kwargs.update(prompt=req.prompt, negative_prompt=req.negative_prompt or None)

        def on_step(_pipe, index: int, _timestep, tensors: dict) -> dict:
            if stopped():
                raise GenerationCancelled(f"Stopped at step {index + 1}/{total}.")
            preview = latents_to_preview(tensors["latents"], spec.family) if previews else None
            push(Progress(step=index + 1, total=total, preview=preview, backend="diffusers"))
            return tensors

        started = time.perf_counter()
        image = pipe(callback_on_step_end=on_step, **kwargs).images[0]
        return Produced(image=image, info={
            "guidance": guidance, "warnings": warnings, "generation_s": time.perf_counter() - started,
            "device": self.device_and_dtype(spec)[0],
        })

    @staticmethod
    def _set_sampler(pipe, sampler: str) -> None:
        import diffusers

        entry = load_samplers()[sampler]["diffusers"]
        cls = getattr(diffusers, entry["class"])
        if type(pipe.scheduler) is not cls or entry.get("options"):
            pipe.scheduler = cls.from_config(pipe.scheduler.config, **entry.get("options", {}))

    @staticmethod
    def _truncation_warnings(pipe, req: GenerationRequest) -> list[str]:
        tokenizer = getattr(pipe, "tokenizer", None)
        if tokenizer is None:
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
        channels = pipe.unet.config.in_channels
        scale = pipe.vae_scale_factor
        shape = (1, channels, req.height // scale, req.width // scale)
        noise_a = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(req.seed))
        noise_b = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(interpolate["seed_b"])))
        device = pipe._execution_device
        out: dict[str, Any] = {"latents": slerp(noise_a, noise_b, t).to(device, pipe.unet.dtype)}
        cfg = guidance > 1.0
        prompt_b = interpolate.get("prompt_b", req.prompt)
        negative_b = interpolate.get("negative_prompt_b", req.negative_prompt)
        if spec.family == "sdxl":
            names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
            a = pipe.encode_prompt(prompt=req.prompt, device=device, num_images_per_prompt=1,
                                   do_classifier_free_guidance=cfg, negative_prompt=req.negative_prompt or None)
            b = pipe.encode_prompt(prompt=prompt_b, device=device, num_images_per_prompt=1,
                                   do_classifier_free_guidance=cfg, negative_prompt=negative_b or None)
        else:
            names = ("prompt_embeds", "negative_prompt_embeds")
            a = pipe.encode_prompt(req.prompt, device, 1, cfg, req.negative_prompt or None)
            b = pipe.encode_prompt(prompt_b, device, 1, cfg, negative_b or None)
        for name, ta, tb in zip(names, a, b):
            if ta is not None and tb is not None:
                out[name] = torch.lerp(ta, tb, t)
        return out
