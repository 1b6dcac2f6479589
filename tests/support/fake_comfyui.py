"""A fake ComfyUI 0.3.64: a real aiohttp HTTP + WebSocket server on 127.0.0.1 for tests and benchmarks.

It answers with the JSON shapes and websocket message order of the recorded transcripts in
shared/comfyui/ and runs in a background thread with its own event loop, so sync tests, async
tests and a Gradio app in the same process can all talk to it.

    with FakeComfyUI(step_delay_s=0.01) as fake:      # or fake = FakeComfyUI(); fake.start(); ...; fake.close()
        url = fake.url                                  # http://127.0.0.1:<port>
        fake.stop(); fake.restart()                     # port closed (refused), then back on the same port
        fake.hang = True                                # accepts connections, never answers
        fake.fail_next_prompt()                         # next POST /prompt -> 400 with node_errors
        fake.drop_socket_after_step(2)                  # next run: ws torn down after step 2
        fake.answer_next("/history", {"<id>": {"outputs": "nope"}})  # next GET /history/{id} gets this JSON
        fake.answer_next("/prompt", {"prompt_id": 7}, method="POST", times=None)  # every POST /prompt, until
        fake.clear_answers()                            # ... the canned answers are dropped
        fake.send_after_step(1, {"type": "progress", "data": {"value": "x", "prompt_id": "<id>"}})  # next run's ws
        fake.garbage_view = True                        # /view returns bytes that are not an image
        fake.supports_feature_flags = False             # old server: legacy preview frames only
        fake.install_flux()                             # FLUX.1-dev split files appear in the loaders' lists
        fake.loras = ["detail_tweaker.safetensors"]     # LoraLoader's list (default: two, one in a subfolder)
        fake.upscale_models = ["4x-UltraSharp.pth"]     # UpscaleModelLoader's list (models/upscale_models; default none)
        fake.uploads                                    # {name LoadImage takes: bytes} of POST /upload/image
        fake.answer_next("/upload/image", b"", method="POST", status=400)  # refuse the next upload (a bare 400)
        fake.prompts, fake.view_requests, ...           # what clients did

Validation, as 0.3.64's validate_prompt: only the nodes an output (SaveImage, PreviewImage) depends on are checked; an
output fed by a node with errors is dropped and the others are queued, answered 200 with those node_errors (each
naming its dependent_outputs); a 400 only when no output validates. SaveImage saves one file per image of its batch
(the batch_size of the empty latent it depends on), each branch of a graph at its own latent's size and seed.

Image-to-image: a graph whose sampler starts from VAEEncode of a LoadImage of an uploaded file renders that
image (cropped, as the VAE crops, to a multiple of 8) blended with the usual picture by the sampler's denoise
(KSampler's, or the BasicScheduler's behind its sigmas): denoise 0 gives the uploaded image back.
Inpaint: a VAEEncode reached through SetLatentNoiseMask, whose mask is a LoadImageMask of an uploaded file, renders
that blend only where the mask's channel is white (in proportion to it); elsewhere the uploaded image comes back as
a real VAE round trip returns it: close, not exact (each value's lowest bit flipped).
A1111's latent fills: a LatentCompositeMasked between VAEEncode and SetLatentNoiseMask, its mask a ThresholdMask of
the LoadImageMask, starts the masked part from grey (its source an empty latent: zeros) or from noise of the seed of
the RandomNoise behind its AddNoise source.
Model upscale: LoadImage -> ImageUpscaleWithModel (of an UpscaleModelLoader file) -> ImageScale -> SaveImage saves the
uploaded image enlarged by the scale its file name says ("4x-...", "..._x2"; 4 otherwise; nearest-neighbour, as no
model runs here), then scaled as ImageScale's method and size say; ImageUpscaleWithModel reports its tiles (512 px
with a 32 px overlap, as 0.3.64's node tiles) as `progress` messages like a sampler's steps, without previews.

ControlNet: a sampler whose positive comes from ControlNetApplyAdvanced (its ControlNetLoader's file in `controlnets`,
its image a LoadImage of an upload) renders the picture mixed with that control image, by strength x (end - start) / 2
(strength 0 changes nothing, as ComfyUI returns the conditioning untouched). Links are checked against the declared
input and output types (`return_type_mismatch`), numbers against their min and max, as validate_inputs does.

CLI for manual runs: python -m tests.support.fake_comfyui --port 8188 [--listen 127.0.0.1] [--flux] [--step-delay 0.05]
[--lora a.safetensors] [--upscale-model 4x-UltraSharp.pth] [--controlnet c.safetensors]
"""
from __future__ import annotations

import argparse
import asyncio
import colorsys
import copy
import io
import json
import logging
import math
import posixpath
import random
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image, ImageOps, PngImagePlugin

log = logging.getLogger(__name__)

VERSION = "0.3.64"
DEFAULT_LORAS = ["detail_tweaker.safetensors", "sdxl/pixel_art_xl.safetensors"]
FLUX_SPLIT_FILES = {"unets": ["flux1-dev.safetensors"], "clips": ["clip_l.safetensors", "t5xxl_fp16.safetensors"],
                    "vaes": ["ae.safetensors"]}
SAMPLERS = ["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
            "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
            "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
            "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
            "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
            "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
            "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal", "linear_quadratic",
              "kl_optimal"]
# Every node class the fake knows how to "execute"; anything else is refused like an unknown node.
KNOWN_CLASSES = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage",
                 "UNETLoader", "DualCLIPLoader", "CLIPLoader", "VAELoader", "FluxGuidance", "EmptySD3LatentImage",
                 "SamplerCustomAdvanced", "BasicGuider", "RandomNoise", "BasicScheduler", "KSamplerSelect",
                 "ModelSamplingFlux", "ConditioningZeroOut", "PreviewImage", "LoraLoader", "LoadImage", "VAEEncode",
                 "LoadImageMask", "SetLatentNoiseMask", "UpscaleModelLoader", "ImageUpscaleWithModel", "ImageScale",
                 "ControlNetLoader", "ControlNetApplyAdvanced", "KSamplerAdvanced", "CLIPSetLastLayer",
                 "ConditioningSetTimestepRange", "ConditioningCombine", "ConditioningConcat", "FreeU", "ThresholdMask",
                 "LatentCompositeMasked", "AddNoise", "SetFirstSigma", "RescaleCFG", "PrimitiveInt", "CFGGuider",
                 "SamplerCustom"}
# What each node class returns (nodes.py RETURN_TYPES), for the type check of the links into a declared input.
OUTPUT_TYPES = {"CheckpointLoaderSimple": ["MODEL", "CLIP", "VAE"], "CLIPTextEncode": ["CONDITIONING"],
                "EmptyLatentImage": ["LATENT"], "KSampler": ["LATENT"], "KSamplerAdvanced": ["LATENT"], "VAEDecode": ["IMAGE"], "SaveImage": [],
                "UNETLoader": ["MODEL"], "DualCLIPLoader": ["CLIP"], "CLIPLoader": ["CLIP"], "VAELoader": ["VAE"],
                "FluxGuidance": ["CONDITIONING"], "EmptySD3LatentImage": ["LATENT"],
                "SamplerCustomAdvanced": ["LATENT", "LATENT"], "BasicGuider": ["GUIDER"], "RandomNoise": ["NOISE"],
                "BasicScheduler": ["SIGMAS"], "KSamplerSelect": ["SAMPLER"], "ModelSamplingFlux": ["MODEL"],
                "ConditioningZeroOut": ["CONDITIONING"], "PreviewImage": [], "LoraLoader": ["MODEL", "CLIP"],
                "LoadImage": ["IMAGE", "MASK"], "VAEEncode": ["LATENT"], "LoadImageMask": ["MASK"],
                "SetLatentNoiseMask": ["LATENT"], "ControlNetLoader": ["CONTROL_NET"],
                "ControlNetApplyAdvanced": ["CONDITIONING", "CONDITIONING"], "UpscaleModelLoader": ["UPSCALE_MODEL"],
                "ImageUpscaleWithModel": ["IMAGE"], "ImageScale": ["IMAGE"], "CLIPSetLastLayer": ["CLIP"],
                "ConditioningSetTimestepRange": ["CONDITIONING"], "ConditioningCombine": ["CONDITIONING"],
                "ConditioningConcat": ["CONDITIONING"], "FreeU": ["MODEL"], "ThresholdMask": ["MASK"],
                "LatentCompositeMasked": ["LATENT"], "AddNoise": ["LATENT"], "SetFirstSigma": ["SIGMAS"],
                "RescaleCFG": ["MODEL"], "PrimitiveInt": ["INT"], "CFGGuider": ["GUIDER"],
                "SamplerCustom": ["LATENT", "LATENT"]}
DEFAULT_CONTROLNETS = ["control_v11p_sd15_canny.safetensors"]
# Inputs a node cannot run without, checked like ComfyUI's validate_inputs ("required_input_missing").
REQUIRED_INPUTS = {"LoraLoader": ("model", "clip", "lora_name", "strength_model", "strength_clip"),
                   "CLIPSetLastLayer": ("clip", "stop_at_clip_layer"),
                   "ConditioningSetTimestepRange": ("conditioning", "start", "end"),
                   "ConditioningCombine": ("conditioning_1", "conditioning_2"),
                   "ConditioningConcat": ("conditioning_to", "conditioning_from"),
                   "FreeU": ("model", "b1", "b2", "s1", "s2"), "RescaleCFG": ("model", "multiplier"),
                   "LoadImage": ("image",), "VAEEncode": ("pixels", "vae"), "LoadImageMask": ("image", "channel"),
                   "SetLatentNoiseMask": ("samples", "mask"), "ControlNetLoader": ("control_net_name",),
                   "ThresholdMask": ("mask", "value"),
                   "LatentCompositeMasked": ("destination", "source", "x", "y", "resize_source"),
                   "AddNoise": ("model", "noise", "sigmas", "latent_image"), "SetFirstSigma": ("sigmas", "sigma"),
                   "ControlNetApplyAdvanced": ("positive", "negative", "control_net", "image", "strength",
                                               "start_percent", "end_percent"),
                   "UpscaleModelLoader": ("model_name",), "ImageUpscaleWithModel": ("upscale_model", "image"),
                   "ImageScale": ("image", "upscale_method", "width", "height", "crop"),
                   "CFGGuider": ("model", "positive", "negative", "cfg"),
                   "SamplerCustom": ("model", "add_noise", "noise_seed", "cfg", "positive", "negative", "sampler",
                                     "sigmas", "latent_image")}
CFG_INPUT = ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}]  # CFGGuider's, SamplerCustom's
MASK_CHANNELS = ["alpha", "red", "green", "blue"]  # LoadImageMask's channel list
UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]  # ImageScale's, and PIL's filter for each
RESAMPLE = {"nearest-exact": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "area": Image.Resampling.BOX, "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
CROP_METHODS = ["disabled", "center"]
MAX_RESOLUTION = 16384
UPSCALE_TILE, UPSCALE_OVERLAP = 512, 32  # ImageUpscaleWithModel's tiling
LATENT_MULTIPLE = 8  # the VAE crops the pixels it encodes to a multiple of this (centred)
SAMPLER_CLASSES = {"KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced", "SamplerCustom"}
# The node classes of a stock 0.3.64 (recorded GET /object_info's keys): GET /object_info/{class} answers an entry for
# each (the fake's own, with inputs, for those it runs; a bare one for the rest) and {} for any other (a custom node).
NODE_NAMES = frozenset(json.loads((Path(__file__).with_name("comfyui_node_names.json")).read_text()))
PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA = 1, 4
PROMPT_ID = "<id>"  # in a canned answer or injected message: replaced by the prompt id it is about


def _now_ms() -> int:
    return int(time.time() * 1000)


def _combo(options: list[str], extra: dict | None = None) -> list:
    return [list(options), extra] if extra is not None else [list(options)]


@dataclass
class _Client:
    sid: str
    ws: web.WebSocketResponse
    request: web.Request
    metadata_previews: bool = False


@dataclass
class _Job:
    number: int
    prompt_id: str
    prompt: dict[str, Any]
    extra: dict[str, Any]
    outputs: list[str]
    interrupted: bool = False
    start: "_Start | None" = None  # img2img and inpaint: what the sampler starts from, set when the job runs
    control: "tuple[Image.Image, float] | None" = None  # ControlNet: its image and how much it shows, likewise

    def queue_item(self) -> list:
        return [self.number, self.prompt_id, self.prompt, self.extra, self.outputs]


@dataclass
class _Canned:
    """A JSON answer served instead of the real one, `times` more times (None: until cleared)."""

    route: str
    body: Any
    method: str | None
    status: int
    times: int | None

    def matches(self, method: str, path: str) -> bool:
        route = self.route.rstrip("/")
        return (self.method is None or self.method == method) and (path == route or path.startswith(route + "/"))


@dataclass(eq=False)
class FakeComfyUI:
    """Controllable fake ComfyUI server; every public knob may be changed from any thread."""

    checkpoints: list[str] = field(default_factory=lambda: ["tiny-sd15.safetensors"])
    unets: list[str] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)
    vaes: list[str] = field(default_factory=list)
    loras: list[str] = field(default_factory=lambda: list(DEFAULT_LORAS))
    controlnets: list[str] = field(default_factory=lambda: list(DEFAULT_CONTROLNETS))  # ControlNetLoader's list
    embeddings: list[str] = field(default_factory=list)  # file names in models/embeddings
    upscale_models: list[str] = field(default_factory=list)  # file names in models/upscale_models
    step_delay_s: float = 0.01
    node_delay_s: float = 0.0
    history_delay_s: float = 0.0  # >0: /history gets the entry this long after `executing` null
    device_name: str = "cpu"
    vram_total: int = 25276502016
    vram_free: int = 24270999552
    port: int = 0
    host: str = "127.0.0.1"  # like --listen
    hang: bool = False
    garbage_view: bool = False
    preview_size: int = 512  # like --preview-size: previews are scaled to fit this square, aspect kept
    supports_feature_flags: bool = True  # False: an older server that ignores feature_flags (legacy frames)

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._fail_next: dict[str, Any] | None = None
        self._fail_exec_next: str | None = None
        self._drop_after: int | None = None
        self._canned: list[_Canned] = []
        self._inject_next: tuple[int, Any] | None = None
        self._reset_state()
        # counters for assertions
        self.prompts: list[dict[str, Any]] = []          # every graph POSTed to /prompt, accepted or not
        self.prompt_ids: list[str] = []                  # ids of accepted prompts
        self.view_requests: list[str] = []               # filenames asked of /view
        self.deletes: list[str] = []                     # ids sent to POST /queue {"delete"}
        self.interrupts: list[dict[str, Any] | None] = []  # bodies of POST /interrupt
        self.feature_flags_received = 0
        self.ws_connections = 0
        self.system_stats_calls = 0
        self.canned_served: list[str] = []               # "METHOD /path" of every canned answer served
        self.uploads: dict[str, bytes] = {}              # the input folder: kept across restarts, like files on disk

    # ---------------------------------------------------------------- control
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    def start(self) -> "FakeComfyUI":
        """Start the loop thread (once) and listen; returns self."""
        if self._thread is None:
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._thread = threading.Thread(target=self._thread_main, args=(ready,), name="fake-comfyui", daemon=True)
            self._thread.start()
            ready.wait()
        self._call(self._serve())
        return self

    def stop(self) -> None:
        """Close the port and every connection (clients then see connection refused); the job in flight is lost."""
        if self._thread is not None:
            self._call(self._shutdown())

    def restart(self) -> None:
        """Come back on the same port with an empty queue and history, like a restarted ComfyUI."""
        self.stop()
        self.hang = False
        self._reset_state()
        self.start()

    def close(self) -> None:
        """Stop and end the background thread."""
        if self._thread is None:
            return
        self.hang = False
        self.stop()
        self._call(self._cancel_leftover_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._thread = None

    def __enter__(self) -> "FakeComfyUI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def install_flux(self) -> None:
        """Make the FLUX.1-dev split files appear in UNETLoader/DualCLIPLoader/VAELoader lists."""
        for key, files in FLUX_SPLIT_FILES.items():
            lst = getattr(self, key)
            lst.extend(f for f in files if f not in lst)

    def fail_next_prompt(self, node_errors: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        """The next POST /prompt answers 400 with these node_errors (default: a missing checkpoint)."""
        if node_errors is None and error is None:
            node_errors = {"4": _node_error("CheckpointLoaderSimple", "ckpt_name", "missing.safetensors",
                                            self.checkpoints)}
        self._fail_next = {"error": error or _validation_error(), "node_errors": node_errors or {}}

    def fail_next_execution(self, message: str = "Allocation on device failed") -> None:
        """The next job fails in its sampler with an `execution_error` message."""
        self._fail_exec_next = message

    def drop_socket_after_step(self, n: int) -> None:
        """During the next job, tear down the job's websocket right after step n (the job then stops)."""
        self._drop_after = n

    def answer_next(self, route: str, body: Any, *, method: str | None = None, status: int = 200,
                    times: int | None = 1) -> None:
        """Answer the next `times` requests to `route` (and the paths under it: "/history" covers
        "/history/{id}") with `body` as JSON (bytes: as they are) instead of the real answer; None: every
        one until `clear_answers()`. PROMPT_ID ("<id>") in the body, as a key or a value, becomes the
        prompt id of the path. `method` (e.g. "POST") limits it to that method: the health monitor
        GETs /prompt too.
        """
        with self._lock:
            self._canned.append(_Canned(route, copy.deepcopy(body), method, status, times))

    def clear_answers(self) -> None:
        """Drop every canned answer not served yet."""
        with self._lock:
            self._canned.clear()

    def send_after_step(self, n: int, message: Any) -> None:
        """During the next job, send `message` to the job's websocket right after step n's own messages:
        as JSON (PROMPT_ID becomes the job's id), or a str as the raw text frame."""
        self._inject_next = (n, copy.deepcopy(message))

    @property
    def queue_remaining(self) -> int:
        return len(self._pending) + (1 if self._current else 0)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is queued or running."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.queue_remaining == 0:
                return True
            time.sleep(0.01)
        return False

    # ---------------------------------------------------------------- loop plumbing
    def _thread_main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    @staticmethod
    async def _cancel_leftover_tasks() -> None:
        """Cancel handlers still parked (hang mode, dropped clients) so the loop closes cleanly."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _call(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def _reset_state(self) -> None:
        self._pending: list[_Job] = []
        self._current: _Job | None = None
        self._history: dict[str, dict[str, Any]] = {}
        self._files: dict[tuple[str, str, str], bytes] = {}
        self._clients: dict[str, _Client] = {}
        self._counter = 0
        self._file_counter: dict[str, int] = {}
        self._worker: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._jobs_done = 0

    async def _serve(self) -> None:
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._hang_middleware, self._canned_middleware],
                              client_max_size=64 * 2**20)
        r = app.router
        r.add_get("/ws", self._ws)
        r.add_get("/system_stats", self._system_stats)
        r.add_get("/features", self._features)
        r.add_get("/prompt", self._get_prompt)
        r.add_post("/prompt", self._post_prompt)
        r.add_get("/queue", self._get_queue)
        r.add_post("/queue", self._post_queue)
        r.add_post("/interrupt", self._interrupt)
        r.add_get("/history", self._history_all)
        r.add_get("/history/{prompt_id}", self._history_one)
        r.add_get("/view", self._view)
        r.add_get("/object_info", self._object_info_all)
        r.add_get("/object_info/{node_class}", self._object_info_one)
        r.add_get("/models", self._models)
        r.add_get("/embeddings", self._embeddings)
        r.add_get("/models/{folder}", self._models_folder)
        r.add_post("/free", self._free)
        r.add_post("/upload/image", self._upload_image)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        self._sock = sock
        self._wake = asyncio.Event()
        self._worker = asyncio.ensure_future(self._work())

    async def _shutdown(self) -> None:
        if self._runner is None:
            return
        if self._worker:
            self._worker.cancel()
            try:
                await self._worker
            except BaseException:
                pass
        for client in list(self._clients.values()):
            transport = client.request.transport
            if transport is not None:
                transport.abort()
        self._clients.clear()
        runner, self._runner = self._runner, None
        await runner.cleanup()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._current = None

    @web.middleware
    async def _hang_middleware(self, request: web.Request, handler):
        while self.hang and self._runner is not None:
            await asyncio.sleep(0.05)
        return await handler(request)

    @web.middleware
    async def _canned_middleware(self, request: web.Request, handler):
        with self._lock:
            canned = next((c for c in self._canned if c.matches(request.method, request.path)), None)
            if canned is not None and canned.times is not None:
                canned.times -= 1
                if canned.times <= 0:
                    self._canned.remove(canned)
        if canned is None:
            return await handler(request)
        self.canned_served.append(f"{request.method} {request.path}")
        if isinstance(canned.body, bytes):
            return web.Response(body=canned.body, status=canned.status, content_type="text/html")
        body = _with_prompt_id(canned.body, request.match_info.get("prompt_id"))
        return web.json_response(body, status=canned.status)

    # ---------------------------------------------------------------- websocket
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        client = _Client(sid=sid, ws=ws, request=request)
        self._clients[sid] = client
        self.ws_connections += 1
        try:
            await ws.send_json({"type": "status", "data": {"status": self._exec_info(), "sid": sid}})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("type") == "feature_flags":
                    self.feature_flags_received += 1
                    if not self.supports_feature_flags:
                        continue
                    flags = data.get("data") or {}
                    client.metadata_previews = bool(flags.get("supports_preview_metadata"))
                    await ws.send_json({"type": "feature_flags",
                                        "data": {"supports_preview_metadata": True, "max_upload_size": 104857600}})
        finally:
            if self._clients.get(sid) is client:
                del self._clients[sid]
        return ws

    async def _send(self, sid: str | None, type_: str, data: dict[str, Any]) -> None:
        """Like ComfyUI's send_sync: to one client id, or to everyone when sid is None."""
        targets = [self._clients[sid]] if sid in self._clients else ([] if sid else list(self._clients.values()))
        for c in targets:
            try:
                await c.ws.send_json({"type": type_, "data": data})
            except Exception:  # a socket that went away
                pass

    def _exec_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue_remaining}}

    async def _broadcast_status(self) -> None:
        await self._send(None, "status", {"status": self._exec_info()})

    # ---------------------------------------------------------------- HTTP: info
    async def _system_stats(self, request: web.Request) -> web.Response:
        self.system_stats_calls += 1
        return web.json_response({
            "system": {"os": "posix", "ram_total": 25276502016, "ram_free": 24270999552, "comfyui_version": VERSION,
                       "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
                       "required_templates_version": "0.1.95", "python_version": "3.11.7 (fake)",
                       "pytorch_version": "2.9.1+cu128", "embedded_python": False,
                       "argv": ["main.py", "--listen", self.host, "--port", str(self.port)]},
            "devices": [{"name": self.device_name, "type": self.device_name.split(":")[0], "index": None,
                         "vram_total": self.vram_total, "vram_free": self.vram_free,
                         "torch_vram_total": self.vram_total, "torch_vram_free": self.vram_free}],
        })

    async def _features(self, request: web.Request) -> web.Response:
        return web.json_response({"supports_preview_metadata": True, "max_upload_size": 104857600})

    async def _get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self._exec_info())

    async def _free(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    def _object_infos(self) -> dict[str, dict[str, Any]]:
        def entry(name: str, required: dict, output: list[str], optional: dict | None = None, *,
                  category: str = "loaders", display_name: str | None = None) -> dict:
            inp: dict[str, Any] = {"required": required}
            order: dict[str, Any] = {"required": list(required)}
            if optional:
                inp["optional"] = optional
                order["optional"] = list(optional)
            return {"input": inp, "input_order": order, "output": output, "output_is_list": [False] * len(output),
                    "output_name": output, "name": name, "display_name": display_name or name, "description": "",
                    "python_module": "nodes", "category": category, "output_node": name == "SaveImage"}
        return {
            "CheckpointLoaderSimple": entry("CheckpointLoaderSimple", {"ckpt_name": _combo(
                self.checkpoints, {"tooltip": "The name of the checkpoint (model) to load."})}, ["MODEL", "CLIP", "VAE"]),
            "UNETLoader": entry("UNETLoader", {"unet_name": _combo(self.unets), "weight_dtype": _combo(
                ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"])}, ["MODEL"]),
            "DualCLIPLoader": entry("DualCLIPLoader", {"clip_name1": _combo(self.clips), "clip_name2": _combo(self.clips),
                                                       "type": _combo(["sdxl", "sd3", "flux", "hunyuan_video", "hidream",
                                                                       "hunyuan_image"])}, ["CLIP"],
                                    {"device": _combo(["default", "cpu"], {"advanced": True})}),
            "CLIPLoader": entry("CLIPLoader", {"clip_name": _combo(self.clips)}, ["CLIP"]),
            "VAELoader": entry("VAELoader", {"vae_name": _combo(self.vaes + ["pixel_space"])}, ["VAE"]),
            "LoraLoader": entry("LoraLoader", {
                "model": ["MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}],
                "clip": ["CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}],
                "lora_name": _combo(self.loras, {"tooltip": "The name of the LoRA."}),
                "strength_model": ["FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01,
                                             "tooltip": "How strongly to modify the diffusion model. This value "
                                                        "can be negative."}],
                "strength_clip": ["FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01,
                                            "tooltip": "How strongly to modify the CLIP model. This value can be "
                                                       "negative."}]}, ["MODEL", "CLIP"]),
            "KSampler": entry("KSampler", {"model": ["MODEL", {}], "seed": ["INT", {"default": 0}],
                                           "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                                           "cfg": ["FLOAT", {"default": 8.0}], "sampler_name": _combo(SAMPLERS),
                                           "scheduler": _combo(SCHEDULERS), "positive": ["CONDITIONING", {}],
                                           "negative": ["CONDITIONING", {}], "latent_image": ["LATENT", {}],
                                           "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0,
                                                                 "step": 0.01}]}, ["LATENT"]),
            "SaveImage": entry("SaveImage", {"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
                               []),
            "CLIPSetLastLayer": entry("CLIPSetLastLayer", {"clip": ["CLIP"], "stop_at_clip_layer": [  # as 0.3.64
                "INT", {"default": -1, "min": -24, "max": -1, "step": 1}]}, ["CLIP"], category="conditioning",
                display_name="CLIP Set Last Layer"),
            "ConditioningSetTimestepRange": entry("ConditioningSetTimestepRange", {  # as 0.3.64's nodes.py
                "conditioning": ["CONDITIONING"],
                "start": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}],
                "end": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}]}, ["CONDITIONING"],
                category="advanced/conditioning"),
            "ConditioningCombine": entry("ConditioningCombine", {"conditioning_1": ["CONDITIONING"],
                                                                 "conditioning_2": ["CONDITIONING"]},
                                         ["CONDITIONING"], category="conditioning",
                                         display_name="Conditioning (Combine)"),
            "ConditioningConcat": entry("ConditioningConcat", {"conditioning_to": ["CONDITIONING"],
                                                               "conditioning_from": ["CONDITIONING"]},
                                        ["CONDITIONING"], category="conditioning",
                                        display_name="Conditioning (Concat)"),
            "FreeU": entry("FreeU", {"model": ["MODEL"], **{  # as 0.3.64's comfy_extras/nodes_freelunch.py
                name: ["FLOAT", {"default": default, "min": 0.0, "max": 10.0, "step": 0.01}]
                for name, default in (("b1", 1.1), ("b2", 1.2), ("s1", 0.9), ("s2", 0.2))}}, ["MODEL"],
                category="model_patches/unet"),
            # as ComfyUI: the files at the top of the input folder (one in a subfolder still loads by "sub/name")
            "LoadImage": entry("LoadImage", {"image": _combo(sorted(n for n in self.uploads if "/" not in n),
                                                             {"image_upload": True})}, ["IMAGE", "MASK"]),
            "VAEEncode": entry("VAEEncode", {"pixels": ["IMAGE", {}], "vae": ["VAE", {}]}, ["LATENT"]),
            "LoadImageMask": entry("LoadImageMask", {"image": _combo(sorted(n for n in self.uploads if "/" not in n),
                                                                     {"image_upload": True}),
                                                     "channel": _combo(MASK_CHANNELS)}, ["MASK"]),
            "SetLatentNoiseMask": entry("SetLatentNoiseMask", {"samples": ["LATENT", {}], "mask": ["MASK", {}]},
                                        ["LATENT"]),
            "RescaleCFG": entry("RescaleCFG", {"model": ["MODEL"], "multiplier": [  # 0.3.64's nodes_model_advanced
                "FLOAT", {"default": 0.7, "min": 0.0, "max": 1.0, "step": 0.01}]}, ["MODEL"],
                category="advanced/model"),
            # A1111's latent noise / latent nothing (0.3.64's comfy_extras nodes_mask and nodes_custom_sampler)
            "ThresholdMask": entry("ThresholdMask", {"mask": ["MASK"], "value": [
                "FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}]}, ["MASK"], category="mask"),
            "LatentCompositeMasked": entry("LatentCompositeMasked", {
                "destination": ["LATENT"], "source": ["LATENT"],
                "x": ["INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}],
                "y": ["INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}],
                "resize_source": ["BOOLEAN", {"default": False}]}, ["LATENT"], {"mask": ["MASK"]}, category="latent"),
            "AddNoise": entry("AddNoise", {"model": ["MODEL"], "noise": ["NOISE"], "sigmas": ["SIGMAS"],
                                           "latent_image": ["LATENT"]}, ["LATENT"],
                              category="_for_testing/custom_sampling/noise"),
            # 0.3.64's comfy_extras/nodes_custom_sampler.py
            "CFGGuider": entry("CFGGuider", {"model": ["MODEL"], "positive": ["CONDITIONING"],
                                             "negative": ["CONDITIONING"], "cfg": CFG_INPUT}, ["GUIDER"],
                               category="sampling/custom_sampling/guiders"),
            "SamplerCustom": entry("SamplerCustom", {
                "model": ["MODEL"], "add_noise": ["BOOLEAN", {"default": True}],
                "noise_seed": ["INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True}],
                "cfg": CFG_INPUT, "positive": ["CONDITIONING"], "negative": ["CONDITIONING"], "sampler": ["SAMPLER"],
                "sigmas": ["SIGMAS"], "latent_image": ["LATENT"]}, ["LATENT", "LATENT"],
                category="sampling/custom_sampling"),
            "SetFirstSigma": entry("SetFirstSigma", {"sigmas": ["SIGMAS"], "sigma": [
                "FLOAT", {"default": 136.0, "min": 0.0, "max": 20000.0, "step": 0.001, "round": False}]},
                ["SIGMAS"], category="sampling/custom_sampling/sigmas"),
            "UpscaleModelLoader": entry("UpscaleModelLoader", {"model_name": _combo(self.upscale_models)},
                                        ["UPSCALE_MODEL"]),
            "ImageUpscaleWithModel": entry("ImageUpscaleWithModel", {"upscale_model": ["UPSCALE_MODEL"],
                                                                     "image": ["IMAGE"]}, ["IMAGE"]),
            "ImageScale": entry("ImageScale", {
                "image": ["IMAGE"], "upscale_method": _combo(UPSCALE_METHODS),
                "width": ["INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}],
                "height": ["INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}],
                "crop": _combo(CROP_METHODS)}, ["IMAGE"]),
            "ControlNetLoader": entry("ControlNetLoader", {"control_net_name": _combo(self.controlnets)},
                                      ["CONTROL_NET"]),
            "ControlNetApplyAdvanced": entry("ControlNetApplyAdvanced", {
                "positive": ["CONDITIONING", {}], "negative": ["CONDITIONING", {}],
                "control_net": ["CONTROL_NET", {}], "image": ["IMAGE", {}],
                "strength": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}],
                "start_percent": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}],
                "end_percent": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}]},
                ["CONDITIONING", "CONDITIONING"], {"vae": ["VAE", {}]}),
        }

    async def _object_info_all(self, request: web.Request) -> web.Response:
        return web.json_response(self._object_infos())

    async def _object_info_one(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        infos = self._object_infos()
        if name in infos:
            return web.json_response({name: infos[name]})
        if name in NODE_NAMES:
            return web.json_response({name: {"input": {"required": {}}, "input_order": {"required": []}, "output": [],
                                             "output_is_list": [], "output_name": [], "name": name,
                                             "display_name": name, "description": "", "python_module": "nodes",
                                             "category": "", "output_node": False}})
        return web.json_response({})

    _FOLDERS = {"checkpoints": "checkpoints", "diffusion_models": "unets", "unet": "unets",
                "text_encoders": "clips", "clip": "clips", "vae": "vaes", "loras": "loras",
                "upscale_models": "upscale_models", "controlnet": "controlnets"}

    async def _embeddings(self, request: web.Request) -> web.Response:
        """As ComfyUI: the embeddings folder's files without their extension."""
        return web.json_response([name.rsplit(".", 1)[0] for name in self.embeddings])

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(sorted(self._FOLDERS))

    async def _models_folder(self, request: web.Request) -> web.Response:
        attr = self._FOLDERS.get(request.match_info["folder"])
        if attr is None:
            return web.Response(status=404, text="404: Not Found")
        return web.json_response(list(getattr(self, attr)))

    # ---------------------------------------------------------------- HTTP: prompts and queue
    def _validate(self, prompt: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(error, node_errors) as ComfyUI's validate_prompt reports them: only the nodes some output depends on are
        checked, each node with errors lists the outputs that depend on it (`dependent_outputs`), and `error` is None
        while at least one output validates: those outputs are queued and the rest dropped (a 200 with node_errors)."""
        if not isinstance(prompt, dict):
            return ({"type": "invalid_prompt", "message": "Cannot execute because the prompt is not an object.",
                     "details": "", "extra_info": {}}, {})
        for nid, node in prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return ({"type": "invalid_prompt",
                         "message": "Cannot execute because a node is missing the class_type property.",
                         "details": f"Node ID '#{nid}'", "extra_info": {}}, {})
            if node["class_type"] not in KNOWN_CLASSES:
                ct = node["class_type"]
                return ({"type": "invalid_prompt", "message": f"Cannot execute because node {ct} does not exist.",
                         "details": f"Node ID '#{nid}'", "extra_info": {}}, {})
        outputs = [nid for nid, n in prompt.items() if n["class_type"] in ("SaveImage", "PreviewImage")]
        if not outputs:
            return ({"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                     "extra_info": {}}, {})
        lists = {"ckpt_name": self.checkpoints, "unet_name": self.unets, "clip_name": self.clips,
                 "clip_name1": self.clips, "clip_name2": self.clips, "vae_name": self.vaes + ["pixel_space"],
                 "sampler_name": SAMPLERS, "scheduler": SCHEDULERS, "lora_name": self.loras, "channel": MASK_CHANNELS,
                 "model_name": self.upscale_models, "upscale_method": UPSCALE_METHODS, "crop": CROP_METHODS,
                 "control_net_name": self.controlnets}
        infos = self._object_infos()
        node_errors: dict[str, Any] = {}
        upstream = {out: set(_execution_order(prompt, [out])) for out in outputs}
        for nid, node in prompt.items():
            dependent = [out for out in outputs if nid in upstream[out]]
            if not dependent:  # no output needs it: never validated
                continue
            inputs = node.get("inputs") or {}
            required = REQUIRED_INPUTS.get(node["class_type"], ())
            errors = [_missing_input(name) for name in required if name not in inputs]
            errors += _declared_input_errors(prompt, inputs, infos.get(node["class_type"]))
            for name in reversed(list(inputs)):
                if name in lists and isinstance(inputs[name], str) and inputs[name] not in lists[name]:
                    errors.append(_node_error(node["class_type"], name, inputs[name], lists[name])["errors"][0])
            image = inputs.get("image")
            if node["class_type"] in ("LoadImage", "LoadImageMask") and isinstance(image, str) and image not in self.uploads:
                errors.append(_custom_validation_failed("image", f"Invalid image file: {image}"))
            if errors:
                node_errors[nid] = {"errors": errors, "dependent_outputs": dependent, "class_type": node["class_type"]}
        if set(outputs) <= _dropped_outputs(node_errors):
            return _validation_error(), node_errors
        return None, node_errors

    async def _post_prompt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            # 0.3.64 does not catch this: aiohttp's bare 500 page
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        prompt = body.get("prompt")
        self.prompts.append(copy.deepcopy(prompt))
        if self._fail_next is not None:
            failure, self._fail_next = self._fail_next, None
            return web.json_response(failure, status=400)
        error, node_errors = self._validate(prompt)
        if error is not None:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        self._counter += 1
        number = -self._counter if body.get("front") else self._counter
        extra = dict(body.get("extra_data") or {})
        if body.get("client_id"):
            extra["client_id"] = body["client_id"]
        dropped = _dropped_outputs(node_errors)
        outputs = [nid for nid, n in prompt.items() if n["class_type"] in ("SaveImage", "PreviewImage")
                   and nid not in dropped]
        self._pending.append(_Job(number, prompt_id, prompt, extra, outputs))
        self._pending.sort(key=lambda j: j.number)
        self.prompt_ids.append(prompt_id)
        await self._broadcast_status()
        self._wake.set()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def _upload_image(self, request: web.Request) -> web.Response:
        """As ComfyUI's image_upload: multipart `image` (the file), `subfolder`, `overwrite` ("true"/"1": replace a
        file of that name; else a different file gets "name (1).png", the same file keeps its name); every `type`
        lands in the input folder here. A bare 400 for no file or a path out of the folder."""
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder", ""))
        path = posixpath.normpath(posixpath.join(subfolder, image.filename))
        if path.startswith("..") or posixpath.isabs(path):
            return web.Response(status=400)
        data = image.file.read()
        name, (stem, ext), i = image.filename, posixpath.splitext(image.filename), 1
        if str(post.get("overwrite")) not in ("true", "1"):
            while self.uploads.get(_input_path(subfolder, name), data) != data:
                name, i = f"{stem} ({i}){ext}", i + 1
        self.uploads[_input_path(subfolder, name)] = data
        return web.json_response({"name": name, "subfolder": subfolder, "type": str(post.get("type") or "input")})

    async def _get_queue(self, request: web.Request) -> web.Response:
        return web.json_response({"queue_running": [self._current.queue_item()] if self._current else [],
                                  "queue_pending": [j.queue_item() for j in self._pending]})

    async def _post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self._pending.clear()
        for pid in body.get("delete") or []:
            self.deletes.append(pid)
            self._pending = [j for j in self._pending if j.prompt_id != pid]
        await self._broadcast_status()
        return web.Response(status=200)

    async def _interrupt(self, request: web.Request) -> web.Response:
        body = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
        self.interrupts.append(body)
        target = (body or {}).get("prompt_id") if isinstance(body, dict) else None
        if self._current is not None and (target is None or target == self._current.prompt_id):
            self._current.interrupted = True
        return web.Response(status=200)

    async def _history_all(self, request: web.Request) -> web.Response:
        return web.json_response(self._history)

    async def _history_one(self, request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        return web.json_response({pid: self._history[pid]} if pid in self._history else {})

    async def _view(self, request: web.Request) -> web.Response:
        q = request.query
        filename, subfolder, type_ = q.get("filename", ""), q.get("subfolder", ""), q.get("type", "output")
        self.view_requests.append(filename)
        data = self._files.get((filename, subfolder, type_))
        if data is None:
            return web.Response(status=404, text="404: Not Found")
        if self.garbage_view:
            data = b"<html><body>502 Bad Gateway</body></html>"
        return web.Response(body=data, content_type="image/png",
                            headers={"Content-Disposition": f'filename="{filename}"'})

    # ---------------------------------------------------------------- execution
    async def _work(self) -> None:
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            job = self._pending.pop(0)
            self._current = job
            try:
                await self._execute(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one job kill the worker
                log.exception("fake ComfyUI job failed")
            finally:
                self._current = None
                self._jobs_done += 1

    async def _execute(self, job: _Job) -> None:
        sid = job.extra.get("client_id")
        pid = job.prompt_id
        messages: list[list[Any]] = []

        async def event(type_: str, data: dict[str, Any], to: str | None = sid, record: bool = False) -> None:
            if record:
                messages.append([type_, data])
            await self._send(to, type_, data)

        await self._broadcast_status()
        job.start = _start_image(job.prompt, self.uploads)
        job.control = _control_image(job.prompt, self.uploads)
        await event("execution_start", {"prompt_id": pid, "timestamp": _now_ms()}, record=True)
        await event("execution_cached", {"nodes": [], "prompt_id": pid, "timestamp": _now_ms()}, record=True)
        order = _execution_order(job.prompt, job.outputs)
        states: dict[str, dict[str, Any]] = {}
        executed: list[str] = []
        outputs: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        drop_after, self._drop_after = self._drop_after, None
        inject, self._inject_next = self._inject_next, None
        fail_exec, self._fail_exec_next = self._fail_exec_next, None

        async def progress_state(nid: str, value: float, max_: float, state: str) -> None:
            states[nid] = {"value": value, "max": max_, "state": state, "node_id": nid, "prompt_id": pid,
                           "display_node_id": nid, "parent_node_id": None, "real_node_id": nid}
            await event("progress_state", {"prompt_id": pid, "nodes": copy.deepcopy(states)}, to=sid)

        async def finish(status_str: str) -> None:
            await self._broadcast_status_after(job)
            await event("executing", {"node": None, "prompt_id": pid})
            entry = {"prompt": [job.number, pid, job.prompt, job.extra, job.outputs], "outputs": outputs,
                     "status": {"status_str": status_str, "completed": status_str == "success", "messages": messages},
                     "meta": meta}
            if self.history_delay_s > 0:
                asyncio.get_running_loop().call_later(self.history_delay_s, self._history.__setitem__, pid, entry)
            else:
                self._history[pid] = entry

        for nid in order:
            node = job.prompt[nid]
            ct = node["class_type"]
            await progress_state(nid, 0.0, 1.0, "running")
            await event("executing", {"node": nid, "display_node": nid, "prompt_id": pid})
            if self.node_delay_s:
                await asyncio.sleep(self.node_delay_s)
            if ct in SAMPLER_CLASSES:
                # denoise 0 leaves no sigmas: ComfyUI returns the latent without a step
                total = 0 if job.start is not None and job.start.denoise <= 0 else _steps_of(job.prompt, nid)
                for step in range(1, total + 1):
                    await asyncio.sleep(self.step_delay_s)
                    while self.hang:
                        await asyncio.sleep(0.05)
                    if job.interrupted:
                        data = {"prompt_id": pid, "node_id": nid, "node_type": ct, "executed": list(executed),
                                "timestamp": _now_ms()}
                        await event("execution_interrupted", data, record=True)
                        await finish("error")
                        return
                    if fail_exec is not None:
                        data = {"prompt_id": pid, "node_id": nid, "node_type": ct, "executed": list(executed),
                                "exception_message": fail_exec, "exception_type": "torch.OutOfMemoryError",
                                "traceback": ["  File \"execution.py\", line 1, in fake\n"],
                                "current_inputs": {}, "current_outputs": list(executed), "timestamp": _now_ms()}
                        await event("execution_error", data, record=True)
                        await finish("error")
                        return
                    await progress_state(nid, step, total, "running")
                    await self._step_messages(job, sid, nid, step, total)
                    if inject is not None and step == inject[0] and sid in self._clients:
                        try:
                            message = inject[1]
                            text = message if isinstance(message, str) else json.dumps(_with_prompt_id(message, pid))
                            await self._clients[sid].ws.send_str(text)
                        except Exception:  # a socket that went away
                            pass
                    if drop_after is not None and step >= drop_after:
                        client = self._clients.get(sid)
                        if client is not None and client.request.transport is not None:
                            client.request.transport.abort()
                        return  # the job dies with its socket (nothing reaches /history)
            if ct == "ImageUpscaleWithModel":
                source = _pixels(job.prompt, node["inputs"].get("image"), self.uploads)
                tiles = _tiled_scale_steps(*(source.size if source is not None else (512, 512)))
                for tile in range(1, tiles + 1):
                    await asyncio.sleep(self.step_delay_s)
                    await progress_state(nid, tile, tiles, "running")
                    await self._send(sid, "progress", {"value": tile, "max": tiles, "prompt_id": pid, "node": nid})
            if ct in ("SaveImage", "PreviewImage"):
                images = self._save_images(job, nid)
                outputs[nid] = {"images": images}
                meta[nid] = {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
                await event("executed", {"node": nid, "display_node": nid, "output": {"images": images},
                                         "prompt_id": pid})
            executed.append(nid)
            await progress_state(nid, 1.0, 1.0, "finished")
        await event("execution_success", {"prompt_id": pid, "timestamp": _now_ms()}, record=True)
        await finish("success")

    async def _broadcast_status_after(self, job: _Job) -> None:
        remaining = len(self._pending)
        await self._send(None, "status", {"status": {"exec_info": {"queue_remaining": remaining}}})

    async def _step_messages(self, job: _Job, sid: str | None, nid: str, step: int, total: int) -> None:
        pid = job.prompt_id
        progress = {"value": step, "max": total, "prompt_id": pid, "node": nid}
        width, height, _ = _image_params(job.prompt, job.start, of=nid)
        image = _preview_jpeg(step, total, self.preview_size, width, height)
        meta = {"node_id": nid, "prompt_id": pid, "display_node_id": nid, "parent_node_id": None,
                "real_node_id": nid, "image_type": "image/jpeg"}
        targets = [self._clients[sid]] if sid in self._clients else ([] if sid else list(self._clients.values()))
        for c in targets:
            try:
                if c.metadata_previews:  # recorded order: metadata frame first, then progress
                    head = json.dumps(meta).encode()
                    await c.ws.send_bytes(struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(head)) + head + image)
                    await c.ws.send_json({"type": "progress", "data": progress})
                else:  # legacy order: progress first, then the bare JPEG frame
                    await c.ws.send_json({"type": "progress", "data": progress})
                    await c.ws.send_bytes(struct.pack(">II", PREVIEW_IMAGE, 1) + image)
            except Exception:
                pass

    def _save_images(self, job: _Job, nid: str) -> list[dict[str, str]]:
        """One file per image of the batch the node gets (its empty latent's batch_size), as SaveImage writes them."""
        return [self._save_image(job, nid, index) for index in range(_batch_size(job.prompt, nid))]

    def _save_image(self, job: _Job, nid: str, index: int) -> dict[str, str]:
        prompt = job.prompt
        prefix = str(prompt[nid]["inputs"].get("filename_prefix", "ComfyUI"))
        type_ = "output" if prompt[nid]["class_type"] == "SaveImage" else "temp"
        subfolder, _, base = prefix.rpartition("/")
        width, height, seed = _image_params(prompt, job.start, of=nid)
        n = self._file_counter.get(prefix, 0) + 1
        self._file_counter[prefix] = n
        filename = f"{base}_{n:05d}_.png"
        hue = (zlib.crc32(f"{seed}".encode() if index == 0 else f"{seed}/{index}".encode()) % 360) / 360.0
        hue_shift, value_shift = _lora_shift(prompt, job.outputs)
        value = min(1.0, max(0.2, 0.9 + value_shift))
        r, g, b = (int(c * 255) for c in colorsys.hsv_to_rgb((hue + hue_shift) % 1.0, 0.6, value))
        img = _pixels(prompt, prompt[nid]["inputs"].get("images"), self.uploads) or Image.new("RGB", (width, height),
                                                                                             (r, g, b))
        if job.start is not None:
            start = job.start
            img = Image.blend(start.image, img, start.denoise)
            if start.mask is not None:  # the rest as the VAE gives it back: close to the start, not exact
                img = Image.composite(img, start.image.point(lambda v: v ^ 1), start.mask)
        if job.control is not None:
            control, amount = job.control
            img = Image.blend(img, control.resize(img.size), amount)
        info = PngImagePlugin.PngInfo()
        info.add_text("prompt", json.dumps(prompt))
        buf = io.BytesIO()
        img.save(buf, format="PNG", pnginfo=info)
        self._files[(filename, subfolder, type_)] = buf.getvalue()
        return {"filename": filename, "subfolder": subfolder, "type": type_}


# -------------------------------------------------------------------- helpers
def _with_prompt_id(value: Any, prompt_id: str | None) -> Any:
    """`value` with every PROMPT_ID key or string replaced by `prompt_id` (unchanged when there is none)."""
    if prompt_id is None:
        return value
    if isinstance(value, dict):
        return {(prompt_id if k == PROMPT_ID else k): _with_prompt_id(v, prompt_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_prompt_id(v, prompt_id) for v in value]
    return prompt_id if value == PROMPT_ID else value


def _dropped_outputs(node_errors: dict[str, Any]) -> set[str]:
    """The outputs validation failed for (those some node with errors feeds)."""
    return {out for entry in node_errors.values() for out in entry["dependent_outputs"]}


def _validation_error() -> dict[str, Any]:
    return {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
            "details": "", "extra_info": {}}


def _node_error(class_type: str, input_name: str, received: str, allowed: list[str]) -> dict[str, Any]:
    """One node's entry of node_errors for a value not in its list, shaped like the recordings."""
    return {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                        "details": f"{input_name}: '{received}' not in {list(allowed)!r}",
                        "extra_info": {"input_name": input_name, "input_config": [list(allowed), {}],
                                       "received_value": received}}],
            "dependent_outputs": ["9"], "class_type": class_type}


def _custom_validation_failed(input_name: str, reason: str) -> dict[str, Any]:
    """A node's VALIDATE_INPUTS refusal (LoadImage of a file the input folder lacks) as 0.3.64 words it: such an
    input skips the list check, so it is never "value_not_in_list"."""
    return {"type": "custom_validation_failed", "message": "Custom validation failed for node",
            "details": f"{input_name} - {reason}", "extra_info": {"input_name": input_name}}


def _input_path(subfolder: str, name: str) -> str:
    """The name LoadImage takes for a file of the input folder."""
    return f"{subfolder}/{name}" if subfolder else name


def _missing_input(input_name: str) -> dict[str, Any]:
    return {"type": "required_input_missing", "message": "Required input is missing", "details": input_name,
            "extra_info": {"input_name": input_name}}


def _lora_shift(prompt: dict[str, Any], outputs: list[str]) -> tuple[float, float]:
    """(hue shift, brightness shift) of the picture from the LoraLoaders the outputs depend on: each LoRA turns
    the hue by an amount of its own times strength_model and the brightness by strength_clip; strength 0
    changes nothing (as in ComfyUI, where a LoRA at strength 0 is skipped)."""
    hue = value = 0.0
    for nid in _execution_order(prompt, outputs):
        node = prompt[nid]
        if node.get("class_type") != "LoraLoader":
            continue
        inputs = node.get("inputs") or {}
        turn = 0.05 + (zlib.crc32(str(inputs.get("lora_name")).encode()) % 1000) / 4000.0  # 0.05 .. 0.3
        hue += turn * float(inputs.get("strength_model") or 0.0)
        value -= 0.1 * float(inputs.get("strength_clip") or 0.0)
    return hue, value


def _execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(nid: str) -> None:
        if nid in seen or nid not in prompt:
            return
        seen.add(nid)
        for value in (prompt[nid].get("inputs") or {}).values():
            if _is_link(value):
                visit(str(value[0]))
        order.append(nid)

    for out in outputs:
        visit(out)
    return order


def _steps_of(prompt: dict[str, Any], nid: str) -> int:
    inputs = prompt[nid].get("inputs") or {}
    if isinstance(inputs.get("steps"), int):
        return max(1, inputs["steps"])
    sigmas = inputs.get("sigmas")
    if isinstance(sigmas, list) and sigmas and str(sigmas[0]) in prompt:
        steps = (prompt[str(sigmas[0])].get("inputs") or {}).get("steps")
        if isinstance(steps, int):
            return max(1, steps)
    return 20


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _linked(prompt: dict[str, Any], value: Any, class_type: str) -> dict[str, Any] | None:
    """The inputs of the `class_type` node that the link `value` comes from; None when it is no link to one."""
    node = prompt.get(str(value[0])) if _is_link(value) else None
    return (node.get("inputs") or {}) if node is not None and node.get("class_type") == class_type else None


@dataclass(frozen=True)
class _Start:
    """What a sampler starts from: the uploaded image (cropped as the VAE crops it), its denoise, and for inpaint
    the mask ("L", the LoadImageMask channel, at the image's size)."""

    image: Image.Image
    denoise: float
    mask: Image.Image | None = None


def _vae_crop(image: Image.Image) -> Image.Image:
    """`image` cropped, centred, to a multiple of LATENT_MULTIPLE on each side (as the VAE encodes it)."""
    w, h = image.width // LATENT_MULTIPLE * LATENT_MULTIPLE, image.height // LATENT_MULTIPLE * LATENT_MULTIPLE
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


def _start_image(prompt: dict[str, Any], uploads: dict[str, bytes]) -> _Start | None:
    """img2img and inpaint: what a sampler starts from (its latent a VAEEncode of a LoadImage of an upload, maybe
    through SetLatentNoiseMask with a LoadImageMask); None when the samplers start from an empty latent."""
    for node in prompt.values():
        inputs = node.get("inputs") or {}
        latent = inputs.get("latent_image") if node.get("class_type") in SAMPLER_CLASSES else None
        noise_mask = _linked(prompt, latent, "SetLatentNoiseMask")
        samples = noise_mask.get("samples") if noise_mask is not None else latent
        composite = _linked(prompt, samples, "LatentCompositeMasked")  # A1111's latent noise or latent nothing
        encode = _linked(prompt, composite.get("destination") if composite is not None else samples, "VAEEncode")
        load = _linked(prompt, encode.get("pixels"), "LoadImage") if encode is not None else None
        if load is None or load.get("image") not in uploads:
            continue
        image = _vae_crop(Image.open(io.BytesIO(uploads[load["image"]])).convert("RGB"))
        scheduler = _linked(prompt, inputs.get("sigmas"), "BasicScheduler") or {}
        denoise = float(inputs.get("denoise", scheduler.get("denoise", 1.0)))
        load_mask = _linked(prompt, noise_mask.get("mask"), "LoadImageMask") if noise_mask is not None else None
        mask = None
        if load_mask is not None and load_mask.get("image") in uploads:
            picture = Image.open(io.BytesIO(uploads[load_mask["image"]])).convert("RGBA")
            mask = _vae_crop(picture.getchannel(load_mask.get("channel", "alpha")[0].upper())).resize(image.size)
            mask = ImageOps.invert(mask) if load_mask.get("channel") == "alpha" else mask  # as ComfyUI: 1 - alpha
        if composite is not None and mask is not None:
            image = _latent_filled(prompt, composite, image, mask)
        return _Start(image, denoise, mask)
    return None


ZERO_LATENT_GREY = (128, 128, 128)  # what the fake's "VAE" makes of an all-zero latent


def _latent_filled(prompt: dict[str, Any], composite: dict[str, Any], image: Image.Image,
                   mask: Image.Image) -> Image.Image:
    """The start image with LatentCompositeMasked's source where its ThresholdMask (of the LoadImageMask) is set: an
    empty latent's zeros as grey, AddNoise's RandomNoise as noise of that seed."""
    threshold = _linked(prompt, composite.get("mask"), "ThresholdMask")
    if threshold is None:
        return image
    hard = mask.point(lambda v: 255 if v > float(threshold.get("value", 0.5)) * 255 else 0)
    added = _linked(prompt, composite.get("source"), "AddNoise")
    noise = _linked(prompt, added.get("noise"), "RandomNoise") if added is not None else None
    if noise is not None:
        fill = Image.frombytes("RGB", image.size,
                               random.Random(int(noise.get("noise_seed", 0))).randbytes(image.width * image.height * 3))
    else:
        fill = Image.new("RGB", image.size, ZERO_LATENT_GREY)
    return Image.composite(fill, image, hard)


def _pixels(prompt: dict[str, Any], link: Any, uploads: dict[str, bytes]) -> Image.Image | None:
    """The picture an IMAGE link carries when it comes from LoadImage of an upload, through ImageUpscaleWithModel
    and ImageScale; None for any other source (a VAEDecode: the fake's usual picture)."""
    node = prompt.get(str(link[0])) if _is_link(link) else None
    inputs = (node or {}).get("inputs") or {}
    kind = (node or {}).get("class_type")
    if kind == "LoadImage" and inputs.get("image") in uploads:
        return Image.open(io.BytesIO(uploads[inputs["image"]])).convert("RGB")
    source = _pixels(prompt, inputs.get("image"), uploads) if kind in ("ImageUpscaleWithModel", "ImageScale") else None
    if source is None:
        return None
    if kind == "ImageUpscaleWithModel":
        loader = _linked(prompt, inputs.get("upscale_model"), "UpscaleModelLoader") or {}
        scale = _model_scale(str(loader.get("model_name", "")))
        return source.resize((source.width * scale, source.height * scale), Image.Resampling.NEAREST)
    width, height = int(inputs.get("width", 0)), int(inputs.get("height", 0))
    if not width and not height:
        return source
    width = width or max(1, round(source.width * height / source.height))  # 0 keeps the aspect, as ComfyUI does
    height = height or max(1, round(source.height * width / source.width))
    method = RESAMPLE.get(inputs.get("upscale_method"), Image.Resampling.NEAREST)
    if inputs.get("crop") == "center":
        return ImageOps.fit(source, (width, height), method)
    return source.resize((width, height), method)


def _model_scale(file_name: str) -> int:
    """The scale an upscale model's file name says ("4x-UltraSharp", "RealESRGAN_x2plus"); 4 when it says none."""
    found = re.search(r"(?:^|[^0-9])([1-8])x|x([1-8])(?:[^0-9]|$)", file_name.rsplit("/", 1)[-1].lower())
    return int(found.group(1) or found.group(2)) if found else 4


def _tiled_scale_steps(width: int, height: int) -> int:
    """ImageUpscaleWithModel's progress steps for an image: its tiles (comfy.utils.get_tiled_scale_steps)."""
    stride = UPSCALE_TILE - UPSCALE_OVERLAP
    return math.ceil(height / stride) * math.ceil(width / stride)


def _control_image(prompt: dict[str, Any], uploads: dict[str, bytes]) -> tuple[Image.Image, float] | None:
    """ControlNet: (the control image, how much of it shows) of the ControlNetApplyAdvanced a sampler's positive comes
    from, its image a LoadImage of an upload; None without one, or at strength 0 (ComfyUI skips it)."""
    for node in prompt.values():
        if node.get("class_type") not in SAMPLER_CLASSES:
            continue
        apply = _linked(prompt, (node.get("inputs") or {}).get("positive"), "ControlNetApplyAdvanced")
        load = _linked(prompt, apply.get("image"), "LoadImage") if apply is not None else None
        if load is None or load.get("image") not in uploads or not apply.get("strength"):
            continue
        amount = min(1.0, float(apply["strength"])) * (float(apply["end_percent"]) - float(apply["start_percent"])) / 2
        return Image.open(io.BytesIO(uploads[load["image"]])).convert("RGB"), max(0.0, amount)
    return None


def _declared_input_errors(prompt: dict[str, Any], inputs: dict[str, Any], info: dict | None) -> list[dict[str, Any]]:
    """As validate_inputs: a link into a declared input must come from an output of its type (return_type_mismatch;
    an output index the node lacks is exception_during_inner_validation), a number within its min and max."""
    declared = {**((info or {}).get("input") or {}).get("required", {}), **((info or {}).get("input") or {}).get(
        "optional", {})}
    errors = []
    for name, value in inputs.items():
        spec = declared.get(name)
        if not isinstance(spec, list) or not spec or not isinstance(spec[0], str):
            continue  # undeclared here, or a list of choices (checked against its list)
        wanted, limits = spec[0], (spec[1] if len(spec) > 1 else {}) or {}
        if _is_link(value):
            source = prompt.get(str(value[0])) or {}
            outputs = OUTPUT_TYPES.get(source.get("class_type"))
            if outputs is None:
                continue
            if not 0 <= value[1] < len(outputs):
                errors.append({"type": "exception_during_inner_validation", "message": "Exception when validating "
                               "inner node", "details": "tuple index out of range", "extra_info": {"input_name": name}})
            elif outputs[value[1]] != wanted:
                errors.append({"type": "return_type_mismatch", "message": "Return type mismatch between linked nodes",
                               "details": f"{name}, received_type({outputs[value[1]]}) mismatch input_type({wanted})",
                               "extra_info": {"input_name": name, "input_config": spec,
                                              "received_type": outputs[value[1]], "linked_node": value}})
        elif wanted in ("INT", "FLOAT") and isinstance(value, (int, float)) and not isinstance(value, bool):
            if "min" in limits and value < limits["min"]:
                errors.append(_out_of_range("value_smaller_than_min", f"Value {value} smaller than min of "
                                            f"{limits['min']}", name, spec, value))
            elif "max" in limits and value > limits["max"]:
                errors.append(_out_of_range("value_bigger_than_max", f"Value {value} bigger than max of "
                                            f"{limits['max']}", name, spec, value))
    return errors


def _out_of_range(kind: str, message: str, name: str, spec: list, value: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": name,
            "extra_info": {"input_name": name, "input_config": spec, "received_value": value}}


def _image_params(prompt: dict[str, Any], start: _Start | None = None, of: str | None = None) -> tuple[int, int, int]:
    """(width, height, seed) of the picture: the empty latent's size, or the size of the image it `start`s from; with
    `of`, of the picture node `of` gets (from the nodes it depends on: one branch of a graph with several)."""
    width, height = start.image.size if start is not None else (512, 512)
    seed = 0
    nodes = [prompt[nid] for nid in _execution_order(prompt, [of])] if of is not None else list(prompt.values())
    for node in nodes:
        inputs = node.get("inputs") or {}
        if node.get("class_type") in ("EmptyLatentImage", "EmptySD3LatentImage"):
            width, height = int(inputs.get("width", 512)), int(inputs.get("height", 512))
        for key in ("seed", "noise_seed"):
            if isinstance(inputs.get(key), int):
                seed = inputs[key]
    return width, height, seed


def _batch_size(prompt: dict[str, Any], nid: str) -> int:
    """How many images node `nid` gets: the batch_size of the empty latent it depends on (1 without one)."""
    sizes = [prompt[n]["inputs"].get("batch_size") for n in _execution_order(prompt, [nid])
             if prompt[n].get("class_type") in ("EmptyLatentImage", "EmptySD3LatentImage")]
    return next((int(size) for size in sizes if isinstance(size, int) and size > 0), 1)


def _preview_jpeg(step: int, total: int, size: int, width: int | None = None, height: int | None = None) -> bytes:
    """A JPEG step preview scaled, as ComfyUI does (ImageOps.contain), to fit size x size with the image's aspect."""
    width, height = width or size, height or size
    if width >= height:
        dims = (size, max(1, round(height * size / width)))
    else:
        dims = (max(1, round(width * size / height)), size)
    shade = int(255 * step / max(total, 1))
    img = Image.new("RGB", dims, (shade, 128, 255 - shade))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake ComfyUI server until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on (ComfyUI's flag)")
    parser.add_argument("--flux", action="store_true", help="install the FLUX.1-dev split files")
    parser.add_argument("--step-delay", type=float, default=0.05, help="seconds per sampler step")
    parser.add_argument("--preview-size", type=int, default=512, help="longest side of the step previews (px)")
    parser.add_argument("--checkpoint", action="append", help="installed checkpoint (repeatable)")
    parser.add_argument("--lora", action="append", help="installed LoRA file (repeatable; default: "
                                                         + ", ".join(DEFAULT_LORAS) + ")")
    parser.add_argument("--upscale-model", action="append", default=[],
                        help="installed upscale model file, e.g. 4x-UltraSharp.pth (repeatable)")
    parser.add_argument("--controlnet", action="append", help="installed ControlNet file (repeatable; default: "
                                                               + ", ".join(DEFAULT_CONTROLNETS) + ")")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # as ComfyUI: no line per request in its log
    fake = FakeComfyUI(port=args.port, host=args.listen, step_delay_s=args.step_delay, preview_size=args.preview_size,
                       checkpoints=args.checkpoint or ["tiny-sd15.safetensors"],
                       loras=args.lora or list(DEFAULT_LORAS), upscale_models=args.upscale_model,
                       controlnets=args.controlnet or list(DEFAULT_CONTROLNETS))
    if args.flux:
        fake.install_flux()
    fake.start()
    log.info("fake ComfyUI listening on %s", fake.url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()


if __name__ == "__main__":
    main()
