"""Async client for one ComfyUI server: HTTP API, websocket progress and preview frames, results.

Every call opens its own aiohttp session inside the running loop, so one client object works from
any event loop (successive `asyncio.run` calls, Gradio's loop, a test's loop). Every failure
becomes a `BackendUnavailable` (or a subclass) whose text is one clear sentence for the user. Every
JSON answer and websocket message is checked against its declared shape (engine/comfyui_answers.py)
before it is read: a wrong shape is an `UnexpectedAnswer`, never a TypeError deep in the client.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import struct
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Iterable, Mapping, Sequence
from urllib.parse import quote

import aiohttp
from PIL import Image, UnidentifiedImageError

from .comfyui_answers import (
    WS_DATA, ExecutionErrorData, FeatureFlags, HistoryEntry, ObjectInfo, PreviewMetadata, ProgressData,
    PromptAccepted, PromptRefused, QueueAnswer, SystemStats, UnexpectedAnswer, UploadedImage, WsMessage, WsScoped,
    check, mapping, parse_json,
)
from .errors import BackendUnavailable, GenerationCancelled
from .events import Progress, Produced

log = logging.getLogger(__name__)

FEATURE_FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
PREVIEW_IMAGE = 1                # legacy frame: uint32 type, uint32 image format (1 JPEG, 2 PNG), image
PREVIEW_IMAGE_WITH_METADATA = 4  # uint32 type, uint32 metadata length, JSON metadata, image

# Which loader input lists which kind of model file.
MODEL_INPUTS: dict[str, dict[str, str]] = {
    "CheckpointLoaderSimple": {"ckpt_name": "checkpoints"},
    "UNETLoader": {"unet_name": "unets"},
    "DualCLIPLoader": {"clip_name1": "clips", "clip_name2": "clips"},
    "CLIPLoader": {"clip_name": "clips"},
    "VAELoader": {"vae_name": "vaes"},
    "LoraLoader": {"lora_name": "loras"},
    "UpscaleModelLoader": {"model_name": "upscale_models"},
    "ControlNetLoader": {"control_net_name": "controlnets"},
}
# Workflow input name -> InstalledModels attribute that must contain its value.
FILE_KEYS: dict[str, str] = {"ckpt_name": "checkpoints", "unet_name": "unets", "clip_name": "clips",
                             "clip_name1": "clips", "clip_name2": "clips", "vae_name": "vaes", "lora_name": "loras",
                             "control_net_name": "controlnets"}
NOT_FILES = {"pixel_space"}  # VAELoader offers this built-in choice beside real files
SAVE_IMAGE_CLASS = "SaveImage"  # the stock node that writes a picture to the output folder


class ComfyUIValidationError(BackendUnavailable):
    """ComfyUI refused the workflow, typically because a model file is not installed: HTTP 400, or a 200 whose
    node_errors name the outputs it dropped while queueing the others."""

    def __init__(self, message: str, *, node_errors: Mapping[str, Any] | None = None,
                 error: Mapping[str, Any] | None = None, missing_files: list[str] | None = None) -> None:
        super().__init__(message)
        self.node_errors = dict(node_errors or {})
        self.error = dict(error or {})
        self.missing_files = list(missing_files or [])


class ComfyUIExecutionError(BackendUnavailable):
    """A node raised while ComfyUI ran the workflow (`execution_error`, e.g. out of memory)."""

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = dict(details or {})


@dataclass
class InstalledModels:
    """Model files a server offers, from its loaders' input lists in /object_info."""

    checkpoints: list[str] = field(default_factory=list)
    unets: list[str] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)
    vaes: list[str] = field(default_factory=list)
    loras: list[str] = field(default_factory=list)
    embeddings: list[str] = field(default_factory=list)  # GET /embeddings: names without extension
    upscale_models: list[str] = field(default_factory=list)  # models/upscale_models (ESRGAN family)
    controlnets: list[str] = field(default_factory=list)  # ControlNetLoader's list (models/controlnet)

    def has_files(self, files: Mapping[str, str]) -> bool:
        """True when every {input_name: filename} (ckpt_name, unet_name, clip_name1, vae_name...) is installed."""
        for key, filename in files.items():
            attr = FILE_KEYS.get(key)
            if attr is None or filename not in getattr(self, attr):
                return False
        return True

    def lora_file(self, name: str) -> str | None:
        """The installed LoRA file `name` means (see `match_file`), or None when the server lacks it."""
        return match_file(name, self.loras)

    def controlnet_file(self, name: str) -> str | None:
        """The installed ControlNet file `name` means (see `match_file`), or None when the server lacks it."""
        return match_file(name, self.controlnets)

    def copy(self) -> "InstalledModels":
        return InstalledModels(list(self.checkpoints), list(self.unets), list(self.clips), list(self.vaes),
                               list(self.loras), list(self.embeddings), list(self.upscale_models),
                               list(self.controlnets))


def file_stem(filename: str) -> str:
    """A listed model file's name without its folders and extension ("sdxl/detail.safetensors" -> "detail");
    ComfyUI lists files in subfolders with "/" (or "\\" on Windows)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def match_file(name: str, files: Iterable[str]) -> str | None:
    """The file of `files` that `name` means, case-insensitive: its full name ("sdxl/detail.safetensors"), that
    without the extension ("sdxl/detail"), else its bare stem ("detail"; the first in list order when several
    folders hold one)."""
    key = (name or "").strip().replace("\\", "/").lower()
    files = list(files)
    if not key:
        return None

    def full(f: str) -> str:
        return f.replace("\\", "/").lower()

    def no_extension(f: str) -> str:
        folder, _, base = full(f).rpartition("/")
        return (folder + "/" if folder else "") + file_stem(base).lower()

    for same in (full, no_extension, lambda f: file_stem(f).lower()):
        found = next((f for f in files if same(f) == key), None)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class QueueInfo:
    """Prompt ids running and waiting on a server (from GET /queue)."""

    running: list[str]
    pending: list[str]

    @property
    def remaining(self) -> int:
        return len(self.running) + len(self.pending)


def combo_options(spec: Any) -> list[str]:
    """The choices of a combo input spec: `[[...], {...}]` (classic) or `["COMBO", {"options": [...]}]`."""
    if isinstance(spec, list) and spec:
        if isinstance(spec[0], list):
            return [str(x) for x in spec[0]]
        if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
            options = spec[1].get("options")
            return [str(x) for x in options] if isinstance(options, list) else []
    return []


def installed_models_from_object_info(infos: Mapping[str, Any]) -> InstalledModels:
    """Build InstalledModels from {node_class: object_info entry}; missing classes count as empty."""
    found = InstalledModels()
    for node_class, inputs in MODEL_INPUTS.items():
        entry = infos.get(node_class)
        if not isinstance(entry, dict):
            continue
        spec = entry.get("input") or {}
        for input_name, attr in inputs.items():
            options = combo_options((spec.get("required") or {}).get(input_name)
                                    or (spec.get("optional") or {}).get(input_name))
            target = getattr(found, attr)
            target.extend(o for o in options if o not in NOT_FILES and o not in target)
    return found


def _node_sort_key(node_id: str) -> tuple[int, Any]:
    return (0, int(node_id)) if str(node_id).isdigit() else (1, str(node_id))


def describe_validation_error(body: Mapping[str, Any]) -> tuple[str, list[str]]:
    """One sentence for a 400 /prompt body, and the model files it says are missing."""
    parts: list[str] = []
    missing: list[str] = []
    node_errors = body.get("node_errors") or {}
    for node_id in sorted(node_errors, key=_node_sort_key):
        node = node_errors[node_id] or {}
        class_type = node.get("class_type") or "node"
        for err in node.get("errors") or []:
            extra = err.get("extra_info") or {}
            input_name = extra.get("input_name")
            received = extra.get("received_value")
            where = f'{class_type} "{input_name}" on node {node_id}' if input_name else f"{class_type} on node {node_id}"
            if err.get("type") == "value_not_in_list" and input_name in FILE_KEYS and received is not None:
                missing.append(str(received))
                parts.append(f"{received} is not installed ({where})")
            elif err.get("type") == "value_not_in_list" and received is not None:
                parts.append(f"{received!r} is not an accepted value ({where})")
            else:
                text = err.get("message") or err.get("type") or "invalid input"
                if err.get("details"):
                    text = f"{text}: {err['details']}"
                parts.append(f"{text} ({where})")
    if not parts:
        error = body.get("error") or {}
        if isinstance(error, str):
            parts.append(error)
        else:
            text = error.get("message") or error.get("type") or "the server rejected it"
            if error.get("details"):  # "Cannot execute because node X does not exist." + "Node ID '#3'"
                text = f"{text.rstrip('.')} ({error['details']})"
            parts.append(text)
    sentence = "ComfyUI cannot run this workflow: " + "; ".join(p.rstrip(".") for p in parts) + "."
    return sentence, missing


def decode_preview_frame(data: bytes) -> tuple[int, dict[str, Any] | None, Image.Image | None]:
    """(event type, metadata or None, image or None) of a binary websocket frame, in either layout."""
    if len(data) < 8:
        return -1, None, None
    event_type, second = struct.unpack(">II", data[:8])
    metadata: dict[str, Any] | None = None
    if event_type == PREVIEW_IMAGE:
        payload = data[8:]
    elif event_type == PREVIEW_IMAGE_WITH_METADATA:
        try:
            metadata = json.loads(data[8:8 + second].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            metadata = {}
        payload = data[8 + second:]
    else:
        return event_type, None, None
    try:
        image = Image.open(io.BytesIO(payload))
        image.load()
        return event_type, metadata, image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        log.debug("undecodable preview frame (%d bytes)", len(payload))
        return event_type, metadata, None


@dataclass
class _Run:
    """What one run has seen so far on the websocket."""

    prompt_id: str
    step: int = 0
    total: int = 0
    started: bool = False
    metadata_previews: bool = False
    held: Progress | None = None          # legacy layout: progress waits for the frame after it
    stashed: Image.Image | None = None    # metadata layout: the frame arrives before its progress
    done: bool = False
    cancel_requested: bool = False

    def where(self) -> str:
        return f"step {self.step}/{self.total}" if self.total else "before the first step"


class ComfyUIClient:
    """Talks to one ComfyUI server at `base_url`."""

    def __init__(self, base_url: str, *, timeout_s: float = 600.0, request_timeout_s: float = 10.0,
                 stall_s: float = 30.0, history_wait_s: float = 5.0, poll_s: float = 0.05) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)            # longest one job may take, queue wait included
        self.request_timeout_s = float(request_timeout_s)  # longest one HTTP call / ws handshake may take
        self.stall_s = float(stall_s)                # websocket silence after which the server is probed
        self.history_wait_s = float(history_wait_s)  # how long /history may lag behind the done signal
        self.poll_s = float(poll_s)                  # how often the cancel flag is looked at

    def __repr__(self) -> str:
        return f"ComfyUIClient({self.base_url!r})"

    # ------------------------------------------------------------------ plumbing
    def _session(self) -> aiohttp.ClientSession:
        t = self.request_timeout_s
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=t, sock_connect=t))

    def _unreachable(self, exc: BaseException, action: str) -> BackendUnavailable:
        if isinstance(exc, asyncio.TimeoutError):
            return BackendUnavailable(f"ComfyUI at {self.base_url} did not answer {action} within "
                                      f"{self.request_timeout_s:g} s.")
        if isinstance(exc, aiohttp.ClientConnectorError):
            if isinstance(exc.os_error, ConnectionRefusedError):
                return BackendUnavailable(f"ComfyUI at {self.base_url} refused the connection (is it running?).")
            return BackendUnavailable(f"ComfyUI at {self.base_url} is not reachable ({exc.os_error}).")
        if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError)):
            return BackendUnavailable(f"ComfyUI at {self.base_url} closed the connection during {action}.")
        return BackendUnavailable(f"ComfyUI at {self.base_url} failed during {action} ({exc.__class__.__name__}: {exc}).")

    async def _request(self, session: aiohttp.ClientSession, method: str, path: str, *,
                       json_body: Any = None, form: aiohttp.FormData | None = None,
                       params: Mapping[str, str] | None = None, want: str = "json",
                       timeout: float | None = None) -> Any:
        """One HTTP call (a JSON body or a multipart `form`); returns parsed JSON, bytes (want="bytes") or None
        (want="none")."""
        action = f"{method} {path}"
        kwargs: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=timeout or self.request_timeout_s)}
        if json_body is not None:
            kwargs["json"] = json_body
        if form is not None:
            kwargs["data"] = form
        if params is not None:
            kwargs["params"] = dict(params)
        try:
            async with session.request(method, self.base_url + path, **kwargs) as resp:
                body = await resp.read()
                status = resp.status
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc, action) from exc
        if path == "/prompt" and method == "POST" and status == 400:
            self._raise_validation(body)
        if status >= 400:
            raise BackendUnavailable(f"ComfyUI at {self.base_url} answered HTTP {status} to {action}.")
        if want == "bytes":
            return body
        if want == "none":
            return None
        return parse_json(body, server=self.base_url, what=f"answer to {action}")

    def _check(self, shape: Any, data: Any, what: str, subject: str = "the answer") -> Any:
        """`data` as `shape`, or UnexpectedAnswer naming this server and `what` it sent."""
        return check(shape, data, server=self.base_url, what=what, subject=subject)

    def _raise_validation(self, body: bytes) -> None:
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            text = body.decode("utf-8", "replace").strip()[:200]
            raise ComfyUIValidationError(f"ComfyUI cannot run this workflow: {text or 'HTTP 400'}.") from None
        raise self._refusal(data, "answer to POST /prompt (HTTP 400)")

    def _refusal(self, data: Any, what: str) -> ComfyUIValidationError:
        """The validation error a /prompt answer with node_errors (checked as a refusal) stands for."""
        self._check(PromptRefused, data, what)
        sentence, missing = describe_validation_error(data)
        error = data.get("error") if isinstance(data.get("error"), dict) else {"message": data.get("error")}
        return ComfyUIValidationError(sentence, node_errors=data.get("node_errors") or {}, error=error,
                                      missing_files=missing)

    # ------------------------------------------------------------------ simple calls
    async def system_stats(self) -> dict[str, Any]:
        """GET /system_stats: {"system": {...comfyui_version...}, "devices": [{name, vram_total, vram_free...}]}."""
        async with self._session() as s:
            data = await self._request(s, "GET", "/system_stats")
        self._check(SystemStats, data, "answer to GET /system_stats")
        return data

    async def queue_info(self) -> QueueInfo:
        """GET /queue as the ids running and pending."""
        async with self._session() as s:
            return self._queue(await self._request(s, "GET", "/queue"))

    async def object_info(self, node_class: str) -> dict[str, Any]:
        """GET /object_info/{node_class}: that class's entry, or {} when the server lacks the class."""
        async with self._session() as s:
            data = await self._request(s, "GET", f"/object_info/{node_class}")
        self._check(ObjectInfo, data, f"answer to GET /object_info/{node_class}")
        return data.get(node_class) or {}

    async def missing_nodes(self, node_classes: Iterable[str]) -> list[str]:
        """The node classes of `node_classes` this server lacks (a custom node not installed there): GET
        /object_info/{class} answers {} for a class it does not know."""
        classes = list(dict.fromkeys(node_classes))
        async with self._session() as s:
            answers = await asyncio.gather(*(self._request(s, "GET", "/object_info/" + quote(c, safe=""))
                                             for c in classes))
        missing = []
        for node_class, answer in zip(classes, answers):
            self._check(ObjectInfo, answer, f"answer to GET /object_info/{node_class}")
            if node_class not in answer:
                missing.append(node_class)
        return missing

    async def installed_models(self) -> InstalledModels:
        """Model files in the loaders' lists (CheckpointLoaderSimple, UNETLoader, DualCLIPLoader, CLIPLoader, VAELoader,
        LoraLoader, UpscaleModelLoader, ControlNetLoader)."""
        async with self._session() as s:
            answers = await asyncio.gather(*(self._request(s, "GET", f"/object_info/{c}") for c in MODEL_INPUTS))
            try:
                embeddings = self._check(list[str], await self._request(s, "GET", "/embeddings"),
                                         "answer to GET /embeddings")
            except BackendUnavailable as err:  # a server without the route: no embeddings, not a dead server
                log.info("No embeddings list from %s: %s", self.base_url, err)
                embeddings = []
        infos: dict[str, Any] = {}
        for node_class, answer in zip(MODEL_INPUTS, answers):
            self._check(ObjectInfo, answer, f"answer to GET /object_info/{node_class}")
            infos.update(answer)
        return replace(installed_models_from_object_info(infos), embeddings=list(embeddings))

    async def upload_image(self, image: Image.Image, name_hint: str) -> str:
        """PNG-encode `image` and POST it to /upload/image (into the server's input folder, under a new name made
        from `name_hint`); returns the name LoadImage knows it by ("subfolder/name" when the server put it in one)."""
        hint = re.sub(r"[^A-Za-z0-9_-]+", "-", name_hint).strip("-")[:40]
        filename = f"gator-{hint + '-' if hint else ''}{uuid.uuid4().hex}.png"
        png = await asyncio.to_thread(_png_bytes, image)
        form = aiohttp.FormData()
        form.add_field("image", png, filename=filename, content_type="image/png")
        form.add_field("type", "input")
        form.add_field("subfolder", "")
        form.add_field("overwrite", "true")
        async with self._session() as s:
            data = await self._request(s, "POST", "/upload/image", form=form)
        stored: UploadedImage = self._check(UploadedImage, data, "answer to POST /upload/image")
        name = f"{stored.subfolder}/{stored.name}" if stored.subfolder else stored.name
        log.info("ComfyUI %s stored the %dx%d %s image as %s (%d bytes)", self.base_url, image.width, image.height,
                 name_hint, name, len(png))
        return name

    async def submit(self, graph: Mapping[str, Any], client_id: str) -> str:
        """POST /prompt; returns the prompt id or raises ComfyUIValidationError when the server refuses the graph or
        any of its outputs (a prompt queued without some outputs is deleted first)."""
        async with self._session() as s:
            return (await self._submit(s, graph, client_id))[0]

    async def _submit(self, session: aiohttp.ClientSession, graph: Mapping[str, Any], client_id: str,
                      expected: Sequence[str] = ()) -> tuple[str, str | None]:
        """(the prompt id, a warning when outputs other than the first `expected` one were dropped)."""
        data = await self._request(session, "POST", "/prompt", json_body={"prompt": graph, "client_id": client_id})
        accepted: PromptAccepted = self._check(PromptAccepted, data, "answer to POST /prompt")
        dropped = {str(out) for entry in accepted.node_errors.values() if isinstance(entry, Mapping)
                   for out in entry.get("dependent_outputs") or ()}
        if accepted.node_errors and expected and str(expected[0]) not in dropped:  # the result's output still runs
            sentence, _ = describe_validation_error(data)
            log.info("ComfyUI %s queued %s without outputs %s: %s", self.base_url, accepted.prompt_id,
                     sorted(dropped), sentence)
            return accepted.prompt_id, f"ComfyUI left out output(s) {', '.join(sorted(dropped))} of the graph: {sentence}"
        if accepted.node_errors:  # only the outputs that validated were queued: not the graph that was sent
            await self._abandon(session, accepted.prompt_id)
            refusal = self._refusal(data, "answer to POST /prompt")
            log.warning("ComfyUI %s queued %s without the outputs that failed validation; deleted it: %s",
                        self.base_url, accepted.prompt_id, refusal)
            raise refusal
        return accepted.prompt_id, None

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The /history entry of one prompt (checked), or None while the server has none."""
        async with self._session() as s:
            data = await self._request(s, "GET", f"/history/{prompt_id}")
        return None if self._history_entry(data, prompt_id) is None else data[prompt_id]

    def _history_entry(self, data: Any, prompt_id: str) -> HistoryEntry | None:
        """The checked entry of `prompt_id` in a /history answer; None while there is none."""
        what = f"answer to GET /history/{prompt_id}"
        raw = mapping(data, server=self.base_url, what=what).get(prompt_id)
        if raw is None:
            return None
        return self._check(HistoryEntry, raw, what, subject="the prompt's entry")

    def _queue(self, data: Any) -> QueueInfo:
        """A checked GET /queue answer as the ids running and pending."""
        answer: QueueAnswer = self._check(QueueAnswer, data, "answer to GET /queue")
        return QueueInfo(running=[str(item[1]) for item in answer.queue_running],
                         pending=[str(item[1]) for item in answer.queue_pending])

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """POST /interrupt (only the given prompt when it is the one running; everything when None)."""
        async with self._session() as s:
            await self._request(s, "POST", "/interrupt", want="none",
                                json_body={"prompt_id": prompt_id} if prompt_id else {})

    async def delete(self, prompt_ids: list[str]) -> None:
        """POST /queue {"delete": ids}: drop pending prompts."""
        async with self._session() as s:
            await self._request(s, "POST", "/queue", json_body={"delete": list(prompt_ids)}, want="none")

    async def cancel(self, prompt_id: str) -> None:
        """Delete the prompt if pending, interrupt it if running; errors are logged, not raised."""
        async with self._session() as s:
            await self._cancel(s, prompt_id)

    # ------------------------------------------------------------------ the job
    async def run(self, graph: Mapping[str, Any], cancel: Any = None,
                  expected: Sequence[str] = ()) -> AsyncIterator[Progress | Produced]:
        """Queue `graph` and yield Progress per sampler step, then one Produced: the first image of the output node
        the caller expects (`chosen_output`: the first of `expected` that made one, else the graph's first
        SaveImage...). Only that image is downloaded; when the graph made others, its info's "warnings" says so.

        `cancel` is anything with `is_set()` (asyncio.Event or threading.Event); once set, the job is
        deleted or interrupted on the server and GenerationCancelled is raised.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        client_id = uuid.uuid4().hex
        async with self._session() as session:
            try:
                ws = await asyncio.wait_for(
                    session.ws_connect(f"{self.base_url}/ws", params={"clientId": client_id},
                                       autoping=True, max_msg_size=0),
                    self.request_timeout_s)
            except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise self._unreachable(exc, "the websocket handshake") from exc
            run: _Run | None = None
            finished = False
            try:
                try:
                    await ws.send_json(FEATURE_FLAGS)
                except (aiohttp.ClientError, OSError, ConnectionError) as exc:
                    raise self._unreachable(exc, "the websocket handshake") from exc
                if _is_set(cancel):
                    raise GenerationCancelled("Generation cancelled.")
                prompt_id, partial = await self._submit(session, graph, client_id, expected)
                run = _Run(prompt_id)
                log.info("ComfyUI %s queued prompt %s", self.base_url, run.prompt_id)
                async with aclosing(self._follow(ws, session, run, cancel, deadline)) as steps:
                    async for progress in steps:
                        yield progress
                images = _images_by_node(await self._wait_history(session, run))
                node = chosen_output(images, graph, expected)
                ref = images[node][0]
                info: dict[str, Any] = {"prompt_id": run.prompt_id, "server": self.base_url, **ref, "node": node}
                left_out = _left_out(images, graph, node)
                if left_out:
                    log.info("ComfyUI %s: %s", self.base_url, left_out)
                info["warnings"] = [warning for warning in (partial, left_out) if warning]
                yield Produced(image=await self._view(session, ref), info=info)
                finished = True
            except (GeneratorExit, asyncio.CancelledError):
                if run is not None and not run.done:
                    await self._abandon(session, run.prompt_id)
                raise
            finally:
                if not finished:
                    log.debug("ComfyUI %s run ended early (prompt %s)", self.base_url, run and run.prompt_id)
                await ws.close()

    async def _follow(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession, run: _Run,
                      cancel: Any, deadline: float) -> AsyncIterator[Progress]:
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        lost_probes = 0
        receiving: asyncio.Future | None = None
        try:
            while not run.done:
                now = loop.time()
                if _is_set(cancel):
                    run.cancel_requested = True
                    await self._cancel(session, run.prompt_id)
                    raise GenerationCancelled("Generation cancelled.")
                if now >= deadline:
                    await self._abandon(session, run.prompt_id)
                    raise BackendUnavailable(f"ComfyUI at {self.base_url} did not finish the job within "
                                             f"{self.timeout_s:g} s ({run.where()}).")
                if now - last_heard >= self.stall_s:
                    entry_done, lost = await self._probe(session, run)
                    if entry_done:
                        run.done = True
                        break
                    lost_probes = lost_probes + 1 if lost else 0
                    if lost_probes >= 2:
                        raise BackendUnavailable(f"ComfyUI at {self.base_url} lost the job ({run.where()}): it is "
                                                 "neither queued nor finished.")
                    last_heard = loop.time()
                if receiving is None:
                    receiving = asyncio.ensure_future(ws.receive())
                wait = min(self.poll_s if cancel is not None else 1.0, max(deadline - now, 0.0),
                           max(self.stall_s - (now - last_heard), 0.0))
                done, _ = await asyncio.wait({receiving}, timeout=max(wait, 0.001))
                if not done:
                    continue
                try:
                    msg = receiving.result()
                    msg_type, msg_data = msg.type, msg.data
                except (aiohttp.ClientError, OSError, ConnectionError):
                    msg_type, msg_data = aiohttp.WSMsgType.ERROR, None
                receiving = None
                last_heard = loop.time()
                if msg_type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR):
                    closed = BackendUnavailable(f"ComfyUI at {self.base_url} stopped answering during generation "
                                                f"({run.where()}): the connection was closed.")  # seen now
                    await self._abandon(session, run.prompt_id, timeout=1.0)
                    raise closed
                try:
                    if msg_type == aiohttp.WSMsgType.TEXT:
                        progresses = self._on_text(run, msg_data)
                    elif msg_type == aiohttp.WSMsgType.BINARY:
                        progresses = self._on_binary(run, msg_data)
                    else:  # ping/pong and the like
                        progresses = []
                except UnexpectedAnswer:  # nonsense about our job: stop it on the server, fail it here
                    await self._abandon(session, run.prompt_id, timeout=1.0)
                    raise
                for progress in progresses:
                    yield progress
            if run.held is not None:
                yield run.held
                run.held = None
        finally:
            if receiving is not None and not receiving.done():
                receiving.cancel()

    def _on_text(self, run: _Run, raw: str) -> list[Progress]:
        """Act on one text frame; UnexpectedAnswer when it, or a message about our job, has the wrong shape."""
        out: list[Progress] = []
        message: WsMessage = self._check(WsMessage, parse_json(raw, server=self.base_url, what="websocket message"),
                                         "websocket message", subject="the message")
        if run.held is not None:  # legacy layout: no frame followed the progress message
            out.append(run.held)
            run.held = None
        kind = message.type
        if kind not in WS_DATA:  # status, executed, progress_state, custom nodes' messages...: not ours to read
            return out
        what = f'"{kind}" message'
        if kind == "feature_flags":
            flags: FeatureFlags = self._check(FeatureFlags, message.data, what, subject="data")
            run.metadata_previews = flags.supports_preview_metadata
            return out
        scope: WsScoped = self._check(WsScoped, message.data, what, subject="data")
        ours = scope.prompt_id == run.prompt_id
        if kind == "progress":  # progress without a prompt_id (old servers) is ours once our job has started
            if ours or (scope.prompt_id is None and run.started):
                step: ProgressData = self._check(ProgressData, message.data, what, subject="data")
                run.started = True
                run.step, run.total = step.value, step.max
                if run.metadata_previews:
                    out.append(Progress(run.step, run.total, preview=run.stashed, backend="comfyui"))
                    run.stashed = None
                else:
                    run.held = Progress(run.step, run.total, preview=None, backend="comfyui")
            return out
        if not ours:
            return out
        data = self._check(WS_DATA[kind], message.data, what, subject="data")
        if kind in ("execution_start", "execution_cached"):
            run.started = True
        elif kind == "executing":
            if data.node is None:
                run.done = True
            else:
                run.started = True
        elif kind == "execution_error":
            error: ExecutionErrorData = data
            text = str(error.exception_message or error.exception_type or "unknown error").strip()[:200]
            raise ComfyUIExecutionError(f"ComfyUI at {self.base_url} failed while running {error.node_type or 'node'} "
                                        f"(node {error.node_id}): {text.rstrip('.')}.", details=message.data)
        elif kind == "execution_interrupted":
            if run.cancel_requested:
                raise GenerationCancelled("Generation cancelled.")
            raise BackendUnavailable(f"ComfyUI at {self.base_url} interrupted the job ({run.where()}); someone "
                                     "stopped it on the server.")
        return out

    def _on_binary(self, run: _Run, data: bytes) -> list[Progress]:
        out: list[Progress] = []
        event_type, metadata, image = decode_preview_frame(data)
        if event_type == PREVIEW_IMAGE_WITH_METADATA:
            head: PreviewMetadata = self._check(PreviewMetadata, {} if metadata is None else metadata,
                                                "preview frame", subject="its metadata")
            if head.prompt_id not in (None, run.prompt_id):
                return out
            if run.held is not None:  # this frame belongs to the next step, not the held one
                out.append(run.held)
                run.held = None
            run.metadata_previews = True
            run.stashed = image
        elif event_type == PREVIEW_IMAGE:
            if run.held is not None:
                out.append(Progress(run.held.step, run.held.total, preview=image, backend="comfyui"))
                run.held = None
            elif run.metadata_previews and run.started:
                run.stashed = image
        return out

    async def _probe(self, session: aiohttp.ClientSession, run: _Run) -> tuple[bool, bool]:
        """After a silent spell: (finished per /history, neither queued nor finished)."""
        try:
            if self._history_entry(await self._request(session, "GET", f"/history/{run.prompt_id}"),
                                   run.prompt_id) is not None:
                return True, False
            queue = self._queue(await self._request(session, "GET", "/queue"))
        except UnexpectedAnswer:
            raise
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"ComfyUI at {self.base_url} stopped answering during generation "
                                     f"({run.where()}).") from exc
        return False, run.prompt_id not in queue.running + queue.pending

    async def _wait_history(self, session: aiohttp.ClientSession, run: _Run) -> HistoryEntry:
        """The finished job's /history entry (checked); it can lag a moment behind the websocket."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.history_wait_s
        delay = 0.02
        while True:
            entry = self._history_entry(await self._request(session, "GET", f"/history/{run.prompt_id}"),
                                        run.prompt_id)
            if entry is not None:
                break
            if loop.time() >= give_up:
                raise BackendUnavailable(f"ComfyUI at {self.base_url} finished the job but kept no result for it "
                                         f"(no /history entry after {self.history_wait_s:g} s).")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)
        if entry.status is not None and entry.status.status_str == "error":
            for kind, data in entry.status.messages:
                if kind in ("execution_error", "execution_interrupted"):
                    self._on_text(run, json.dumps({"type": kind, "data": data}))
            raise BackendUnavailable(f"ComfyUI at {self.base_url} reports the job failed.")
        if not _images_by_node(entry):
            raise BackendUnavailable(f"ComfyUI at {self.base_url} finished the job without producing an image.")
        return entry

    async def _view(self, session: aiohttp.ClientSession, ref: Mapping[str, str]) -> Image.Image:
        params = {"filename": ref["filename"], "subfolder": ref.get("subfolder", ""), "type": ref.get("type", "output")}
        data = await self._request(session, "GET", "/view", params=params, want="bytes")
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise BackendUnavailable(f"ComfyUI at {self.base_url} sent something that is not an image for "
                                     f"{ref['filename']} ({len(data)} bytes).") from exc
        return image

    async def _cancel(self, session: aiohttp.ClientSession, prompt_id: str, timeout: float | None = None) -> None:
        """Delete the prompt if still pending, interrupt it if running; best effort."""
        t = min(timeout or self.request_timeout_s, self.request_timeout_s)
        try:
            queue = self._queue(await self._request(session, "GET", "/queue", timeout=t))
            if prompt_id in queue.pending:
                await self._request(session, "POST", "/queue", json_body={"delete": [prompt_id]}, want="none",
                                    timeout=t)
                queue = self._queue(await self._request(session, "GET", "/queue", timeout=t))  # it may have started
            if prompt_id in queue.running:
                await self._request(session, "POST", "/interrupt", json_body={"prompt_id": prompt_id},
                                    want="none", timeout=t)
        except BackendUnavailable as exc:
            log.warning("could not cancel prompt %s on %s: %s", prompt_id, self.base_url, exc)

    async def _abandon(self, session: aiohttp.ClientSession, prompt_id: str, timeout: float = 2.0) -> None:
        """Best-effort cancel of a job nobody will collect."""
        try:
            await asyncio.wait_for(self._cancel(session, prompt_id, timeout), timeout * 3)
        except (asyncio.TimeoutError, Exception) as exc:  # never mask the original error
            log.debug("abandoning %s on %s failed: %r", prompt_id, self.base_url, exc)


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _is_set(cancel: Any) -> bool:
    return cancel is not None and bool(cancel.is_set())


def _images_by_node(entry: HistoryEntry) -> dict[str, list[dict[str, str]]]:
    """Every image of a /history entry ({filename, subfolder, type}, in the order the node made them) by node id."""
    images: dict[str, list[dict[str, str]]] = {}
    for node_id, output in entry.outputs.items():
        refs = [{"filename": image.filename, "subfolder": image.subfolder, "type": image.type or "output"}
                for image in output.images if image.filename]
        if refs:
            images[str(node_id)] = refs
    return images


def chosen_output(images: Mapping[str, list[dict[str, str]]], graph: Mapping[str, Any],
                  expected: Sequence[str] = ()) -> str:
    """The node whose image a run keeps (`images`: a run's images by node, not empty): the first of `expected` that
    made one, else the graph's first SaveImage (by node id) that did, else the first node (by id) that saved a file,
    else the first that made a preview. A server lists its outputs in no fixed order, so order is never read there."""
    saves = sorted((n for n, node in graph.items() if isinstance(node, Mapping)
                    and node.get("class_type") == SAVE_IMAGE_CLASS), key=_node_sort_key)
    found = next((n for n in [*expected, *saves] if n in images), None)
    if found is not None:
        return found
    by_id = sorted(images, key=_node_sort_key)
    return next((n for n in by_id if any(ref["type"] == "output" for ref in images[n])), by_id[0])


def _left_out(images: Mapping[str, list[dict[str, str]]], graph: Mapping[str, Any], kept: str) -> str | None:
    """The warning for the saved images a run made beside the one kept from node `kept` (previews count only when
    nothing was saved); None when there are none."""
    saved = {n: [r for r in refs if r["type"] == "output"] for n, refs in images.items()}
    images = {n: refs for n, refs in saved.items() if refs} if any(saved.values()) else images
    total = sum(len(refs) for refs in images.values())
    if total <= 1:
        return None

    def named(node_id: str) -> str:
        node = graph.get(node_id)
        class_type = node.get("class_type") if isinstance(node, Mapping) else None
        return f"node {node_id} {class_type}" if class_type else f"node {node_id}"

    made = ", ".join(f"{named(n)}: {len(images[n])}" for n in sorted(images, key=_node_sort_key))
    return (f"The ComfyUI graph made {total} images ({made}); the first of {named(kept)} is this result, the "
            "others were left out.")
