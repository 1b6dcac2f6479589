"""The hosted text-to-image backend: huggingface_hub's `InferenceClient.text_to_image` through an Inference Provider
(token from HF_TOKEN), or any endpoint that speaks the HF Inference API (GATOR_CLOUD_BASE_URL).

Off unless ENABLE_CLOUD_APIS=1: then no client is made and nothing is sent anywhere. On, auto mode tries it last
(after this machine), or first with GATOR_PREFER=cloud. A provider's refusal is a sentence (BackendUnavailable,
so auto mode moves on): 401/403 (the token), 429 (Retry-After) and 503 (the model is loading, estimated_time) are
retried once when the wait asked for is at most GATOR_CLOUD_MAX_WAIT seconds, otherwise their sentence says how
long; a timeout and an answer that is not an image are sentences too.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, AsyncIterator

from PIL import Image, UnidentifiedImageError

from ..config import Settings
from ..errors import BackendUnavailable, GenerationCancelled, InvalidRequest
from ..prompt_schedule import is_scheduled
from ..events import Event, Produced, Progress, Started
from ..registry import ModelSpec, load_catalogue
from ..request import GenerationRequest
from . import register_backend
from .base import Backend, BackendContext, BackendState, Target

logger = logging.getLogger(__name__)

ENDPOINT_PROVIDER = "hf-inference"  # what huggingface_hub speaks to a base_url (an Inference Endpoint)
UNKNOWN_LICENSE = "unknown"


def cloud_model(hub_id: str) -> ModelSpec:
    """The catalogue's entry for `hub_id` run in the cloud (its license and defaults), or a bare one whose license
    is unknown."""
    known = [spec for spec in load_catalogue() if spec.hub_id == hub_id]
    for spec in sorted(known, key=lambda s: s.backend != CloudBackend.name):
        return replace(spec, backend=CloudBackend.name, single_file=None, comfyui=[], builtin=False)
    return ModelSpec(id=hub_id, label=hub_id.rsplit("/", 1)[-1], backend=CloudBackend.name, family="unknown",
                     hub_id=hub_id, native_size=1024, license=UNKNOWN_LICENSE)


def provider_problem(provider: str) -> str | None:
    """A sentence when `provider` is not one huggingface_hub knows (auto is one), else None."""
    from huggingface_hub.inference._providers import PROVIDERS

    if provider == "auto" or provider in PROVIDERS:
        return None
    return f"GATOR_CLOUD_PROVIDER must be auto or one of {', '.join(sorted(PROVIDERS))} (got {provider!r})."


class CloudBackend(Backend):
    """Text to image on a hosted model, one request per call; no steps to stream, so one Progress at the end."""

    name = "cloud"
    label = "Cloud"
    priority = 0
    after_local = True

    def __init__(self, settings: Settings) -> None:
        self.on = settings.enable_cloud_apis
        self.base_url = settings.cloud_base_url
        self.provider = ENDPOINT_PROVIDER if self.base_url else settings.cloud_provider
        self.token = settings.cloud_token
        self.timeout_s = settings.cloud_timeout_s
        self.max_wait_s = settings.cloud_max_wait_s
        self.model = cloud_model(settings.cloud_model)
        self.label = f"Cloud ({self.provider})"  # the badge and the backend choice say which provider
        self.problem = provider_problem(self.provider) if self.on else None
        if self.on and not self.problem and not self.token and not self.base_url:
            self.problem = ("Cloud APIs need a Hugging Face token: set HF_TOKEN (a token with the \"Make calls to "
                            "Inference Providers\" permission).")

    @property
    def enabled(self) -> bool:
        return self.on

    def models(self) -> list[ModelSpec]:
        return [self.model] if self.why_not(None) is None else []

    def find(self, model_id: str) -> ModelSpec | None:
        key = (model_id or "").strip().lower()
        return self.model if key in (self.model.id.lower(), self.model.label.lower(), (self.model.hub_id or "").lower()) \
            else None

    def why_not(self, model: ModelSpec | None) -> str | None:
        if not self.on:
            return "Cloud APIs are off (ENABLE_CLOUD_APIS=0): nothing is sent off this machine."
        if self.problem:
            return self.problem
        if _offline():
            return "Cloud APIs are off while HF_HUB_OFFLINE=1 is set."
        if model is not None and model.id != self.model.id:
            return f"{model.label} is not the cloud model ({self.model.label}, GATOR_CLOUD_MODEL)."
        return None

    def plan(self, request: GenerationRequest, model: ModelSpec | None) -> Target:
        why = self.why_not(model)
        if why:
            raise BackendUnavailable(why)
        refused = _unsupported(request)
        if refused:
            raise InvalidRequest(f"{self.label} makes text to image only: {refused} needs ComfyUI or this machine.")
        return Target(self.name, self.model, server=self.provider)

    async def stream(self, request: GenerationRequest, target: Target, cancel: Any = None,
                     previews: bool = True) -> AsyncIterator[Event | Produced]:
        """Started, then (after the provider's answer) one Progress and Produced. Raises BackendUnavailable with a
        sentence when the provider refuses, GenerationCancelled on cancel (the call itself is left to finish)."""
        yield Started(backend=self.name, model=target.model.label, server=self.provider)
        started = time.perf_counter()
        image = await self._call_with_one_retry(request, cancel)
        if (image.width, image.height) != (request.width, request.height):
            logger.info("The cloud sent %dx%d for %dx%d", image.width, image.height, request.width, request.height)
        yield Progress(request.num_inference_steps, request.num_inference_steps, None, self.name)
        yield Produced(image.convert("RGB"), {"model": target.model.label, "model_id": target.model.id,
                                              "server": self.provider, "license": target.model.license,
                                              "generation_s": time.perf_counter() - started,
                                              "warnings": list(target.warnings)})

    async def _call_with_one_retry(self, request: GenerationRequest, cancel: Any) -> Image.Image:
        try:
            return await _cancellable(asyncio.to_thread(self._call, request), cancel)
        except _Wait as wait:
            logger.info("The cloud asked to wait %.1fs; retrying once", wait.seconds)
            await _cancellable(asyncio.sleep(wait.seconds), cancel)
            try:
                return await _cancellable(asyncio.to_thread(self._call, request), cancel)
            except _Wait as again:
                raise BackendUnavailable(again.sentence) from None

    def _call(self, request: GenerationRequest) -> Image.Image:
        """One call to the provider (in a thread). Raises _Wait for a short 429/503, BackendUnavailable otherwise."""
        from huggingface_hub import InferenceClient
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

        if self.base_url:  # the endpoint is the model: the client posts there in the HF Inference API's format
            # without HF_TOKEN no token goes there: not the one `hf auth login` saved for Hugging Face itself (the
            # client's headers override its own)
            no_saved_token = {} if self.token else {"authorization": ""}
            client = InferenceClient(base_url=self.base_url, token=self.token, timeout=self.timeout_s,
                                     headers=no_saved_token)
            model = None
        else:
            client = InferenceClient(provider=self.provider, token=self.token, timeout=self.timeout_s)
            model = self.model.hub_id or self.model.id
        where = self.base_url or self.provider
        try:
            image = client.text_to_image(request.prompt, negative_prompt=request.negative_prompt or None,
                                         width=request.width, height=request.height,
                                         num_inference_steps=request.num_inference_steps,
                                         guidance_scale=request.guidance_scale, seed=request.seed, model=model)
            image.load()  # Pillow reads lazily: a truncated or oversized answer fails here, not later
            return image
        except InferenceTimeoutError:
            raise BackendUnavailable(f"The cloud provider ({where}) did not answer within {self.timeout_s:g} s "
                                     "(GATOR_CLOUD_TIMEOUT).") from None
        except HfHubHTTPError as err:
            raise self._refusal(err.response, where) from None
        except (UnidentifiedImageError, Image.DecompressionBombError):
            raise BackendUnavailable(f"The cloud provider ({where}) answered with something that is not an "
                                     "image.") from None
        except Exception as err:  # a connection that fails: the HTTP client's own errors (httpx)
            if type(err).__module__.split(".")[0].startswith("httpx"):
                raise BackendUnavailable(f"Could not reach the cloud provider ({where}): {err}.") from None
            if isinstance(err, OSError):  # Pillow's own for an image cut short
                raise BackendUnavailable(f"The cloud provider ({where}) answered with an image that cannot be "
                                         f"read ({err}).") from None
            raise

    def _refusal(self, response: Any, where: str) -> Exception:
        """The sentence (or a short wait) for an HTTP error the provider sent."""
        status = response.status_code
        body = _json(response)
        error = body.get("error") if isinstance(body, dict) else None
        error = error.get("message") if isinstance(error, dict) else error  # {"error": {"message": ..., "code": ...}}
        message = str(error or "").strip()
        if self.token:  # a provider that echoes the request's header must not show the token to every user
            message = message.replace(self.token, "(HF_TOKEN)")
        if status in (401, 403):
            return BackendUnavailable(f"The cloud provider ({where}) refused the token ({status}): set HF_TOKEN to a "
                                      "Hugging Face token allowed to call Inference Providers.")
        if status == 429:
            seconds = _seconds(response.headers.get("retry-after"))
            sentence = (f"The cloud provider ({where}) is limiting requests (429)"
                        + (f"; try again in {_duration(seconds)}." if seconds else "; try again later."))
            return _Wait(seconds, sentence) if seconds is not None and seconds <= self.max_wait_s \
                else BackendUnavailable(sentence)
        if status == 503:
            seconds = _seconds(body.get("estimated_time") if isinstance(body, dict) else None)
            sentence = (f"The cloud model is loading at {where} (503)"
                        + (f"; it should be ready in {_duration(seconds)}." if seconds else "; try again later."))
            return _Wait(seconds, sentence) if seconds is not None and seconds <= self.max_wait_s \
                else BackendUnavailable(sentence)
        return BackendUnavailable(f"The cloud provider ({where}) refused the request ({status})"
                                  + (f": {message[:200]}." if message else "."))

    def state(self) -> BackendState:
        if not self.on:
            return BackendState(name=self.name, label=self.label, enabled=False, ready=False,
                                summary="off (ENABLE_CLOUD_APIS=0): nothing leaves this machine",
                                short_reason="cloud off", details={"ever_up": False})
        where = f"{self.provider} at {self.base_url}" if self.base_url else self.provider
        if self.why_not(None):
            return BackendState(name=self.name, label=self.label, enabled=True, ready=False,
                                summary=self.why_not(None) or "", short_reason="cloud not set up",
                                details={"ever_up": False})
        return BackendState(name=self.name, label=self.label, enabled=True, ready=True,
                            summary=f"{self.model.label} through {where}", models=[self.model.id],
                            details={"ever_up": True, "provider": self.provider})


class _Wait(Exception):
    """A 429 or 503 that asks for a wait short enough to retry once."""

    def __init__(self, seconds: float, sentence: str) -> None:
        super().__init__(sentence)
        self.seconds, self.sentence = seconds, sentence


async def _cancellable(work: Any, cancel: Any) -> Any:
    """Await `work`, raising GenerationCancelled as soon as `cancel` is set (checked every 0.1 s)."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=0.1)
        if cancel is not None and cancel.is_set() and not task.done():
            task.cancel()
            raise GenerationCancelled("stopped while waiting for the cloud provider")
    return task.result()


def _offline() -> bool:
    """True while huggingface_hub is in offline mode (HF_HUB_OFFLINE=1): it sends nothing then."""
    from huggingface_hub import constants

    return constants.is_offline_mode()


def _unsupported(request: GenerationRequest) -> str | None:
    """What of `request` text to image on a hosted model cannot do (None: nothing)."""
    if request.init_image is not None:
        return "an init image (image to image, inpaint, hires fix)"
    if request.loras:
        return "a LoRA"
    if request.vae:
        return "a VAE"
    if request.uses_controlnet:
        return "a ControlNet"
    if is_scheduled(request.prompt) or is_scheduled(request.negative_prompt or ""):
        return "a prompt that changes during sampling ([from:to:when] or [a|b])"
    return None


def _json(response: Any) -> Any:
    try:
        return json.loads(response.content or b"null")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


def _seconds(value: Any) -> float | None:
    """A wait in seconds: a number, or an HTTP date (Retry-After may be either); None for anything else."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        try:
            seconds = (parsedate_to_datetime(str(value)) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
        seconds = max(0.0, seconds)  # a date already past: now
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds))} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"


register_backend(CloudBackend.name, lambda context: CloudBackend(context.settings))
