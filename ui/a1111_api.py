"""A1111's web API at /sdapi/v1/ (what its `--api` serves), for the tools that speak it (Open WebUI, SillyTavern,
scripts): txt2img, img2img (inpaint with a mask), progress, interrupt, skip, options (the checkpoint), and the
model, sampler, schedule, upscaler, LoRA, VAE and style lists. engine/a1111_api.py translates the bodies.

With logins (--auth) every route asks for one as HTTP Basic auth (as A1111's --api-auth does) and a login's images
go to its own folder. Each call is a job of its caller (its login and address), under the same limits as the
app's other API calls; a caller that hangs up stops its job.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import inspect
import io
import json
import logging
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from engine import params as P
from engine.a1111_api import (a1111_answer, a1111_models, a1111_samplers, a1111_schedulers,
                              generation_arguments)
from engine.errors import InvalidRequest
from engine.events import Done, Failed, Progress, Started
from engine.file_hashes import without_hash
from engine.manager import AIModelManager

from .login import reset_client_address, set_client_address
from .sessions import Jobs, TooManyJobs

logger = logging.getLogger(__name__)

PREFIX = "/sdapi/v1"
Handler = Callable[[Request, str], Awaitable[JSONResponse]]  # a route's work: (request, the caller's login)
DISCONNECT_POLL_S = 0.5  # how often a running call looks whether its caller hung up


@dataclass
class CallState:
    """What /progress reports of a caller's running call."""

    job_count: int
    job_no: int = 0  # images started so far
    step: int = 0
    steps: int = 0
    preview: Any = None
    interrupted: bool = False
    started: float = field(default_factory=time.monotonic)

    def eta_s(self, share_done: float) -> float:
        """Seconds left at this pace, from the share of the call done (A1111's eta_relative); 0 before any."""
        return (time.monotonic() - self.started) * (1 - share_done) / share_done if share_done > 0 else 0.0


MAX_BODY_BYTES = 256 * 2**20  # a body read whole: an init image and a mask of the largest size, as base64 PNGs
MAX_OPTIONS_BYTES = 2**20  # an options body
JSON_TYPES = ("application/json",)  # a POST body must say it is JSON: a form a foreign page posts cannot
NOT_JSON, TOO_BIG, GONE = object(), object(), object()  # no JSON; over the limit (not read further); caller left


async def _body(request: Request, limit: int) -> Any:
    """The request's body as bytes, TOO_BIG once it passes `limit` bytes, or GONE when the caller hung up."""
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return TOO_BIG
            chunks.append(chunk)
    except ClientDisconnect:
        return GONE
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _parsed(raw: bytes) -> Any:
    """JSON of `raw`, or NOT_JSON (NaN and Infinity too, which no answer could echo back)."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return NOT_JSON


def _unreadable(body: Any, limit: int) -> JSONResponse | None:
    """The answer to a body that could not be read or parsed (None for one that could)."""
    if body is TOO_BIG:
        return _problem(413, f"The request body is over {limit / 2**20:g} MiB.")
    if body is NOT_JSON:
        return _problem(422, "The request body must be JSON (A1111's fields).")
    if body is GONE:
        return _problem(400, "The caller hung up before its request was read.")
    return None


def _not_json_type(request: Request) -> JSONResponse | None:
    """415 for a POST whose body is not declared JSON (a page of another site could send a plain-text "simple"
    request without the browser asking this app first); None for a JSON one."""
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if declared in JSON_TYPES or declared.endswith("+json"):
        return None
    return _problem(415, "Send the body as JSON, with the header Content-Type: application/json.")


def _problem(status: int, sentence: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": "Gator Studio", "detail": sentence}, status_code=status, headers=headers or None)


class A1111Api:
    """The /sdapi/v1 routes over one manager; `jobs` holds the limits and stop switches of every caller."""

    def __init__(self, manager: AIModelManager, jobs: Jobs) -> None:
        self.manager, self.jobs = manager, jobs
        self._checkpoints: dict[str, str] = {}  # the options' checkpoint, per login ("" without logins)
        self._calls: dict[str, list[tuple[asyncio.Event, CallState]]] = {}  # each caller's running calls

    def routes(self) -> list[APIRoute]:
        """Every route, each behind the login check (`_guarded`), so none can be added without it."""
        lists: dict[str, Callable[[], list[dict[str, Any]]]] = {
            "sd-models": lambda: a1111_models(self.manager.available_models()), "samplers": a1111_samplers,
            "schedulers": a1111_schedulers,
            "upscalers": lambda: [{"name": name, "model_name": None, "model_path": None, "model_url": None,
                                   "scale": None} for name in self.manager.available_upscalers()],
            "loras": lambda: [{"name": lora["name"], "alias": lora["name"], "path": None, "metadata": {}}
                              for lora in self.manager.available_loras()],
            "sd-vae": lambda: [{"model_name": name, "filename": name} for name in self.manager.available_vaes()],
            "prompt-styles": lambda: [{"name": name, "prompt": None, "negative_prompt": None}
                                      for name in self.manager.available_styles()[1:]],
            "latent-upscale-modes": list}  # none: the hires fix's are /upscalers' (SillyTavern asks for both)
        posts = {"txt2img": self.generate, "img2img": self.generate, "options": self.set_options,
                 "interrupt": self.interrupt, "skip": self.skip}
        gets = {"options": self.options, "progress": self.progress,
                **{name: _listing(make) for name, make in lists.items()}}
        return [*(APIRoute(f"{PREFIX}/{name}", self._guarded(handler), methods=["POST"])
                  for name, handler in posts.items()),
                *(APIRoute(f"{PREFIX}/{name}", self._guarded(handler), methods=["GET"])
                  for name, handler in gets.items())]

    def _guarded(self, handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
        """`handler(request, login)` as a route: called only for a caller who is logged in (always, without
        logins), else 401."""
        async def endpoint(request: Request) -> JSONResponse:
            login = await self._login(request)
            if login is None:
                return self._refused()
            return await handler(request, login)
        return endpoint

    # -- who is calling ------------------------------------------------------------------------------------------
    @staticmethod
    async def _login(request: Request) -> str | None:
        """The caller's login ("" without logins); None when logins are on and its Basic auth is not one (the
        app's own check, so a wrong password counts toward the login's and the address's lock-out as on the login
        page)."""
        auth = getattr(request.app, "auth", None)
        if auth is None:
            return ""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if callable(auth):
            address = set_client_address(request.client.host if request.client else None)
            try:
                verdict = auth(user, password)
                return user if (await verdict if inspect.isawaitable(verdict) else verdict) else None
            finally:
                reset_client_address(address)
        known = auth.get(user)
        return user if known is not None and hmac.compare_digest(str(known).encode(), password.encode()) else None

    @staticmethod
    def _refused() -> JSONResponse:
        return _problem(401, "This app has logins: send one as HTTP Basic auth (A1111's --api-auth user:pass).",
                        **{"WWW-Authenticate": 'Basic realm="Gator Studio"'})

    @staticmethod
    def _caller(request: Request, login: str) -> str:
        host = request.client.host if request.client else ""
        return f"{login}@{host}"

    # -- generating ----------------------------------------------------------------------------------------------
    async def generate(self, request: Request, login: str) -> JSONResponse:
        """POST txt2img / img2img: the images as base64 PNGs (their parameters in them), the request, and `info`.
        The call is one of its caller's jobs from before its body is read (so the job limits bound what many
        calls at once may hold), and the body is parsed and its images decoded off the event loop."""
        if (wrong_type := _not_json_type(request)) is not None:
            return wrong_type
        client = SimpleNamespace(session_hash=None, username=login or None, client=request.client)
        try:
            async with self.jobs.job(client) as cancel:
                raw = await _body(request, MAX_BODY_BYTES)
                if (unreadable := _unreadable(raw, MAX_BODY_BYTES)) is not None:
                    return unreadable
                read = await asyncio.to_thread(self._arguments, request.url.path, raw, login)
                if isinstance(read, JSONResponse):
                    return read
                body, args = read
                return await self._run(request, login, body, args, cancel)
        except TooManyJobs as err:
            return _problem(429, str(err))

    def _arguments(self, path: str, raw: bytes, login: str) -> tuple[dict[str, Any], dict[str, Any]] | JSONResponse:
        """(body, generate_image arguments with the model's defaults) of a call's raw body, or its 422 answer."""
        body = _parsed(raw)
        if (unreadable := _unreadable(body, MAX_BODY_BYTES)) is not None:
            return unreadable
        try:
            if path.endswith("/img2img") and not (isinstance(body, dict) and "init_images" in body):
                raise InvalidRequest("img2img needs init_images: a list with one base64-encoded image.")
            args = generation_arguments(body, self._checkpoints.get(login), self.manager)
        except InvalidRequest as err:
            return _problem(422, str(err))
        model = args.get(P.MODEL.name)
        return body, {**self.manager.model_defaults(model if isinstance(model, str) else None), **args}

    async def _run(self, request: Request, login: str, body: dict[str, Any], args: dict[str, Any],
                   cancel: asyncio.Event) -> JSONResponse:
        """Generate for the call, followed by /progress and stopped by /interrupt, /skip or a hang-up."""
        caller = self._caller(request, login)
        state = CallState(job_count=args.get(P.BATCH_COUNT.name, 1))
        skip = self.jobs.skip_switch(cancel)
        self._calls.setdefault(caller, []).append((cancel, state))
        hung_up = asyncio.create_task(self._stop_when_gone(request, cancel))
        try:
            result = await self.manager.generate_image(**args, cancel=cancel, skip=skip, owner=login or None,
                                                       watch=lambda event: self._follow(state, event))
        finally:
            hung_up.cancel()
            self._calls[caller].remove((cancel, state))
            if not self._calls[caller]:
                del self._calls[caller]
        if not any(item.status == "success" and item.path for item in (result.batch or [result])):
            # nothing made: stopped (interrupt, skip, hang-up), the request's own fault when no backend took it (the
            # engine's sentence says what), else the run failed
            stopped = cancel.is_set() or (skip is not None and skip.is_set())
            status = 409 if stopped else 500 if result.backend else 422
            return _problem(status, result.error or "The image could not be generated.")
        return JSONResponse(await asyncio.to_thread(a1111_answer, result, body))  # interrupted: what it finished

    @staticmethod
    def _follow(state: CallState, event: Any) -> None:
        if isinstance(event, Started) and not event.stage:
            state.job_no, state.step = state.job_no + 1, 0
        elif isinstance(event, Progress):
            state.step, state.steps, state.preview = event.step, event.total, event.preview or state.preview

    @staticmethod
    async def _stop_when_gone(request: Request, cancel: asyncio.Event) -> None:
        while not cancel.is_set():
            await asyncio.sleep(DISCONNECT_POLL_S)
            if await request.is_disconnected():
                logger.info("An A1111 API caller hung up; its job is stopped.")
                cancel.set()

    async def progress(self, request: Request, login: str) -> JSONResponse:
        """GET progress: the caller's running call (A1111's fields; the latest step preview as base64 PNG unless
        skip_current_image=true)."""
        calls = self._calls.get(self._caller(request, login)) or []
        if not calls:
            return JSONResponse({"progress": 0.0, "eta_relative": 0.0, "state": {
                "skipped": False, "interrupted": False, "job": "", "job_count": 0, "job_no": 0, "sampling_step": 0,
                "sampling_steps": 0}, "current_image": None, "textinfo": None})
        _, state = calls[0]
        done_images = max(state.job_no - 1, 0) + (state.step / state.steps if state.steps else 0.0)
        image = None
        if state.preview is not None and request.query_params.get("skip_current_image", "").lower() != "true":
            buffer = io.BytesIO()
            state.preview.save(buffer, format="PNG")
            image = base64.b64encode(buffer.getvalue()).decode("ascii")
        share_done = min(done_images / max(state.job_count, 1), 1.0)
        return JSONResponse({"progress": share_done, "eta_relative": state.eta_s(share_done),
                             "state": {"skipped": False, "interrupted": state.interrupted, "job": "txt2img",
                                       "job_count": state.job_count, "job_no": state.job_no,
                                       "sampling_step": state.step, "sampling_steps": state.steps},
                             "current_image": image, "textinfo": f"Step {state.step}/{state.steps}"})

    async def interrupt(self, request: Request, login: str) -> JSONResponse:
        """POST interrupt: stop the caller's running calls (their finished images stay)."""
        for cancel, state in self._calls.get(self._caller(request, login)) or []:
            state.interrupted = True
            cancel.set()
        return JSONResponse(None)

    async def skip(self, request: Request, login: str) -> JSONResponse:
        """POST skip: end the image each of the caller's calls is making; a batch goes on with the next."""
        for cancel, _ in self._calls.get(self._caller(request, login)) or []:
            switch = self.jobs.skip_switch(cancel)
            if switch is not None:
                switch.set()
        return JSONResponse(None)

    # -- options and lists ---------------------------------------------------------------------------------------
    async def options(self, request: Request, login: str) -> JSONResponse:
        """GET options: the checkpoint calls use when they name none (auto: the best one here), and A1111's
        defaults for the rest that tools read."""
        return JSONResponse({"sd_model_checkpoint": self._checkpoints.get(login, P.MODEL.default),
                             "sd_vae": "Automatic", "CLIP_stop_at_last_layers": P.CLIP_SKIP.default,
                             "samples_format": "png"})

    async def set_options(self, request: Request, login: str) -> JSONResponse:
        """POST options: sd_model_checkpoint becomes the checkpoint of this login's calls (other options are
        A1111's own settings and are left alone)."""
        if (wrong_type := _not_json_type(request)) is not None:
            return wrong_type
        raw = await _body(request, MAX_OPTIONS_BYTES)
        body = raw if (raw is TOO_BIG or raw is GONE) else _parsed(raw)
        if (unreadable := _unreadable(body, MAX_OPTIONS_BYTES)) is not None:
            return unreadable
        if not isinstance(body, dict):
            return _problem(422, "The request body must be a JSON object of options.")
        checkpoint = body.get("sd_model_checkpoint")
        if checkpoint is not None:
            name = without_hash(str(checkpoint))
            known = {m["id"].lower(): m["id"] for m in self.manager.available_models() if m.get("available")}
            if name.lower() != P.MODEL.default and name.lower() not in known:
                return _problem(422, f"Unknown checkpoint {name!r}; GET {PREFIX}/sd-models lists the ones here.")
            self._checkpoints[login] = known.get(name.lower(), P.MODEL.default)
        return JSONResponse(None)


def _listing(make: Callable[[], list[dict[str, Any]]]) -> Handler:
    """A GET route's handler answering `make()`."""
    async def listed(_request: Request, _login: str) -> JSONResponse:
        return JSONResponse(make())
    return listed


__all__ = ["A1111Api", "PREFIX"]
