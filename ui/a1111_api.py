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
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from engine import params as P
from engine.a1111_api import (a1111_answer, a1111_models, a1111_samplers, a1111_schedulers,
                              generation_arguments)
from engine.errors import InvalidRequest
from engine.events import Done, Failed, Progress, Started
from engine.file_hashes import without_hash
from engine.manager import AIModelManager

from .sessions import Jobs, TooManyJobs

logger = logging.getLogger(__name__)

PREFIX = "/sdapi/v1"
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


MAX_BODY_BYTES = 256 * 2**20  # a body read whole: an init image and a mask of the largest size, as base64 PNGs
NOT_JSON, TOO_BIG = object(), object()  # a body that is no JSON; one over MAX_BODY_BYTES (not read further)


async def _json(request: Request) -> Any:
    """The request's JSON body, NOT_JSON, or TOO_BIG."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return TOO_BIG
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return NOT_JSON


def _unreadable(body: Any) -> JSONResponse | None:
    """The answer to a body that could not be read (None for one that could)."""
    if body is TOO_BIG:
        return _problem(413, f"The request body is over {MAX_BODY_BYTES // 2**20} MiB.")
    if body is NOT_JSON:
        return _problem(422, "The request body must be JSON (A1111's fields).")
    return None


def _problem(status: int, sentence: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": "Gator Studio", "detail": sentence}, status_code=status, headers=headers or None)


class A1111Api:
    """The /sdapi/v1 routes over one manager; `jobs` holds the limits and stop switches of every caller."""

    def __init__(self, manager: AIModelManager, jobs: Jobs) -> None:
        self.manager, self.jobs = manager, jobs
        self._checkpoints: dict[str, str] = {}  # the options' checkpoint, per login ("" without logins)
        self._calls: dict[str, list[tuple[asyncio.Event, CallState]]] = {}  # each caller's running calls

    def routes(self) -> list[APIRoute]:
        posts = {"txt2img": self.generate, "img2img": self.generate, "options": self.set_options,
                 "interrupt": self.interrupt, "skip": self.skip}
        gets = {"sd-models": self.models, "samplers": self.samplers, "schedulers": self.schedulers,
                "upscalers": self.upscalers, "loras": self.loras, "sd-vae": self.vaes, "prompt-styles": self.styles,
                "options": self.options, "progress": self.progress}
        return [*(APIRoute(f"{PREFIX}/{name}", handler, methods=["POST"]) for name, handler in posts.items()),
                *(APIRoute(f"{PREFIX}/{name}", handler, methods=["GET"]) for name, handler in gets.items())]

    # -- who is calling ------------------------------------------------------------------------------------------
    @staticmethod
    async def _login(request: Request) -> str | None:
        """The caller's login ("" without logins); None when logins are on and its Basic auth is not one (the
        app's own check, so a wrong password counts toward its lock-out as on the login page)."""
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
            verdict = auth(user, password)
            return user if (await verdict if inspect.isawaitable(verdict) else verdict) else None
        known = auth.get(user)
        return user if known is not None and hmac.compare_digest(str(known), password) else None

    @staticmethod
    def _refused() -> JSONResponse:
        return _problem(401, "This app has logins: send one as HTTP Basic auth (A1111's --api-auth user:pass).",
                        **{"WWW-Authenticate": 'Basic realm="Gator Studio"'})

    async def _authorized_body(self, request: Request) -> tuple[str, Any] | JSONResponse:
        """(login, JSON body) of a POST, or the answer that refuses it (no login; a body too big, or no JSON)."""
        login = await self._login(request)
        if login is None:
            return self._refused()
        body = await _json(request)
        return _unreadable(body) or (login, body)

    @staticmethod
    def _caller(request: Request, login: str) -> str:
        host = request.client.host if request.client else ""
        return f"{login}@{host}"

    # -- generating ----------------------------------------------------------------------------------------------
    async def generate(self, request: Request) -> JSONResponse:
        """POST txt2img / img2img: the images as base64 PNGs (their parameters in them), the request, and `info`."""
        read = await self._authorized_body(request)
        if isinstance(read, JSONResponse):
            return read
        login, body = read
        try:
            if request.url.path.endswith("/img2img") and not (isinstance(body, dict) and "init_images" in body):
                raise InvalidRequest("img2img needs init_images: a list with one base64-encoded image.")
            args = generation_arguments(body, self._checkpoints.get(login), self.manager.styled)
        except InvalidRequest as err:
            return _problem(422, str(err))
        model = args.get(P.MODEL.name)
        args = {**self.manager.model_defaults(model if isinstance(model, str) else None), **args}
        caller = self._caller(request, login)
        client = SimpleNamespace(session_hash=None, username=login or None, client=request.client)
        try:
            async with self.jobs.job(client) as cancel:
                state = CallState(job_count=args.get(P.BATCH_COUNT.name, 1))
                self._calls.setdefault(caller, []).append((cancel, state))
                hung_up = asyncio.create_task(self._stop_when_gone(request, cancel))
                try:
                    result = await self.manager.generate_image(
                        **args, cancel=cancel, skip=self.jobs.skip_switch(cancel), owner=login or None,
                        watch=lambda event: self._follow(state, event))
                finally:
                    hung_up.cancel()
                    self._calls[caller].remove((cancel, state))
                    if not self._calls[caller]:
                        del self._calls[caller]
        except TooManyJobs as err:
            return _problem(429, str(err))
        if not any(item.status == "success" and item.path for item in (result.batch or [result])):
            # nothing made: stopped (interrupt, hang-up), the request's own fault when no backend took it (the
            # engine's sentence says what), else the run failed
            status = 409 if cancel.is_set() else 500 if result.backend else 422
            return _problem(status, result.error or "The image could not be generated.")
        return JSONResponse(a1111_answer(result, body))  # an interrupted batch: the images it finished

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

    async def progress(self, request: Request) -> JSONResponse:
        """GET progress: the caller's running call (A1111's fields; the latest step preview as base64 PNG unless
        skip_current_image=true)."""
        login = await self._login(request)
        if login is None:
            return self._refused()
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
        return JSONResponse({"progress": min(done_images / max(state.job_count, 1), 1.0), "eta_relative": 0.0,
                             "state": {"skipped": False, "interrupted": state.interrupted, "job": "txt2img",
                                       "job_count": state.job_count, "job_no": state.job_no,
                                       "sampling_step": state.step, "sampling_steps": state.steps},
                             "current_image": image, "textinfo": f"Step {state.step}/{state.steps}"})

    async def interrupt(self, request: Request) -> JSONResponse:
        """POST interrupt: stop the caller's running calls (their finished images stay)."""
        login = await self._login(request)
        if login is None:
            return self._refused()
        for cancel, state in self._calls.get(self._caller(request, login)) or []:
            state.interrupted = True
            cancel.set()
        return JSONResponse(None)

    async def skip(self, request: Request) -> JSONResponse:
        """POST skip: end the image each of the caller's calls is making; a batch goes on with the next."""
        login = await self._login(request)
        if login is None:
            return self._refused()
        for cancel, _ in self._calls.get(self._caller(request, login)) or []:
            switch = self.jobs.skip_switch(cancel)
            if switch is not None:
                switch.set()
        return JSONResponse(None)

    # -- options and lists ---------------------------------------------------------------------------------------
    async def options(self, request: Request) -> JSONResponse:
        """GET options: the checkpoint calls use when they name none (auto: the best one here), and A1111's
        defaults for the rest that tools read."""
        login = await self._login(request)
        if login is None:
            return self._refused()
        return JSONResponse({"sd_model_checkpoint": self._checkpoints.get(login, P.MODEL.default),
                             "sd_vae": "Automatic", "CLIP_stop_at_last_layers": P.CLIP_SKIP.default,
                             "samples_format": "png"})

    async def set_options(self, request: Request) -> JSONResponse:
        """POST options: sd_model_checkpoint becomes the checkpoint of this login's calls (other options are
        A1111's own settings and are left alone)."""
        read = await self._authorized_body(request)
        if isinstance(read, JSONResponse):
            return read
        login, body = read
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

    async def _listing(self, request: Request, make: Any) -> JSONResponse:
        if await self._login(request) is None:
            return self._refused()
        return JSONResponse(make())

    async def models(self, request: Request) -> JSONResponse:
        return await self._listing(request, lambda: a1111_models(self.manager.available_models()))

    async def samplers(self, request: Request) -> JSONResponse:
        return await self._listing(request, a1111_samplers)

    async def schedulers(self, request: Request) -> JSONResponse:
        return await self._listing(request, a1111_schedulers)

    async def upscalers(self, request: Request) -> JSONResponse:
        return await self._listing(request, lambda: [{"name": name, "model_name": None, "model_path": None,
                                                "model_url": None, "scale": None}
                                               for name in self.manager.available_upscalers()])

    async def loras(self, request: Request) -> JSONResponse:
        return await self._listing(request, lambda: [{"name": lora["name"], "alias": lora["name"], "path": None,
                                                "metadata": {}} for lora in self.manager.available_loras()])

    async def vaes(self, request: Request) -> JSONResponse:
        return await self._listing(request, lambda: [{"model_name": name, "filename": name}
                                               for name in self.manager.available_vaes()])

    async def styles(self, request: Request) -> JSONResponse:
        def listed() -> list[dict[str, Any]]:
            return [{"name": name, "prompt": None, "negative_prompt": None}
                    for name in self.manager.available_styles()[1:]]
        return await self._listing(request, listed)


__all__ = ["A1111Api", "PREFIX"]
