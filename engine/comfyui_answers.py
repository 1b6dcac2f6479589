"""The shapes of ComfyUI's JSON answers, checked where they enter (HTTP bodies and websocket messages).

Each answer the client or the health monitor reads is declared here as a pydantic model: lenient where
real servers vary (extra keys are kept, optional fields may be absent), strict where our code relies on
a type (outputs is a mapping of node id -> {"images": [{filename, subfolder, type}]}, a prompt id is a
string, progress counts are whole numbers...). `check` validates one answer and turns a mismatch into
`UnexpectedAnswer`, a `BackendUnavailable` whose text is one short sentence, so auto mode finishes the
request locally and says why.
"""
from __future__ import annotations

import json
import logging
import math
from functools import lru_cache
from typing import Annotated, Any, Mapping, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from .errors import BackendUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_DETAIL = 200  # characters of "what was wrong" in a sentence


class UnexpectedAnswer(BackendUnavailable):
    """ComfyUI answered, but not in a shape we can use (a wrong type, a missing key, not JSON)."""


def _whole_number(value: Any) -> Any:
    """Numbers only (no text, no true/false); pydantic then refuses fractions."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("shape", "must be a whole number")
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


def _progress_count(value: Any) -> Any:
    """A progress bar's value or total: any finite number, counted in whole steps from 0 (a custom node's
    `ProgressBar.update_absolute` may report 2.5 of 10)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PydanticCustomError("shape", "must be a number of steps")
    return max(0, math.floor(value))


ProgressCount = Annotated[int, BeforeValidator(_progress_count)]


class Answer(BaseModel):
    """Base of every declared shape: unknown keys are allowed and kept."""

    model_config = ConfigDict(extra="allow", frozen=True)


# ---------------------------------------------------------------------------- POST /prompt
class PromptAccepted(Answer):
    """200 from POST /prompt: {"prompt_id", "number", "node_errors"}."""

    prompt_id: Annotated[str, Field(min_length=1)]
    number: Any = None  # only logged
    node_errors: Any = None  # not empty: some outputs failed validation and were left out (read as a refusal)


class RefusalError(Answer):
    """The "error" of a 400 from POST /prompt (a bare string is read as its message)."""

    type: str | None = None
    message: str | None = None
    details: Any = None


class ErrorExtra(Answer):
    input_name: str | None = None
    received_value: Any = None


class NodeErrorDetail(Answer):
    type: str | None = None
    message: str | None = None
    details: Any = None
    extra_info: ErrorExtra | None = None


class NodeErrors(Answer):
    errors: list[NodeErrorDetail] = []
    class_type: str | None = None


def _message_of(value: Any) -> Any:
    return {"message": value} if isinstance(value, str) else value


class PromptRefused(Answer):
    """400 from POST /prompt: {"error": {type, message, details}, "node_errors": {node_id: {errors, class_type}}}."""

    error: Annotated[RefusalError | None, BeforeValidator(_message_of)] = None
    node_errors: dict[str, NodeErrors | None] = {}


# ---------------------------------------------------------------------------- POST /upload/image
class UploadedImage(Answer):
    """200 from POST /upload/image: {"name", "subfolder", "type"}: where the server stored the file."""

    name: Annotated[str, Field(min_length=1)]
    subfolder: str = ""
    type: str = "input"


# ---------------------------------------------------------------------------- GET /history/{id}
class ImageRef(Answer):
    """One saved (or preview) image of a node: fetched with GET /view."""

    filename: str
    subfolder: str = ""
    type: str = "output"


class NodeOutput(Answer):
    images: list[ImageRef] = []


class HistoryStatus(Answer):
    status_str: str | None = None
    completed: bool | None = None
    messages: list[tuple[str, dict[str, Any]]] = []


class HistoryEntry(Answer):
    """One prompt's entry of GET /history/{id}: {"prompt", "outputs", "status", "meta"}."""

    outputs: dict[str, NodeOutput]
    status: HistoryStatus | None = None  # ComfyUI writes null when the job ended without a status
    prompt: Any = None
    meta: Any = None


# ---------------------------------------------------------------------------- queue
def _queue_item(value: Any) -> Any:
    if not isinstance(value, list):
        raise PydanticCustomError("shape", "must be a list")
    if len(value) < 2 or not isinstance(value[1], str):
        raise PydanticCustomError("shape", "must be a list [number, prompt_id, ...]")
    return value


QueueItem = Annotated[list[Any], BeforeValidator(_queue_item)]


class QueueAnswer(Answer):
    """GET /queue: items are [number, prompt_id, prompt, extra_data, outputs_to_execute]."""

    queue_running: list[QueueItem]
    queue_pending: list[QueueItem]


class ExecInfo(Answer):
    queue_remaining: WholeNumber


class PromptQueueInfo(Answer):
    """GET /prompt: {"exec_info": {"queue_remaining": n}}."""

    exec_info: ExecInfo


# ---------------------------------------------------------------------------- info
class SystemInfo(Answer):
    comfyui_version: str | None = None


class Device(Answer):
    name: str | None = None
    vram_total: WholeNumber | None = None
    vram_free: WholeNumber | None = None


class SystemStats(Answer):
    """GET /system_stats: {"system": {comfyui_version...}, "devices": [{name, vram_total, vram_free...}]}."""

    system: SystemInfo
    devices: list[Device] = []


class NodeInputs(Answer):
    required: dict[str, Any] = {}
    optional: dict[str, Any] = {}


class NodeInfo(Answer):
    input: NodeInputs = NodeInputs()


ObjectInfo = dict[str, NodeInfo]  # GET /object_info[/{class}]: {node_class: {"input": {...}, ...}}


# ---------------------------------------------------------------------------- websocket
class WsMessage(Answer):
    """A text frame: {"type": ..., "data": ...} (every text frame ComfyUI sends has this envelope)."""

    type: str
    data: Any = None


class WsScoped(Answer):
    """The part of a message's data that says whose it is."""

    prompt_id: str | None = None


class FeatureFlags(Answer):
    supports_preview_metadata: bool = False


class ProgressData(WsScoped):
    value: ProgressCount
    max: ProgressCount
    node: str | None = None


class ExecutingData(WsScoped):
    node: str | None  # required: null is the "done" signal


class ExecutionErrorData(WsScoped):
    node_id: Any = None
    node_type: str | None = None
    exception_message: Any = None
    exception_type: Any = None


class PreviewMetadata(WsScoped):
    """The JSON head of a type-4 binary preview frame."""

    node_id: Any = None
    image_type: str | None = None


# Messages the client acts on, and the shape of their data; any other type is ignored.
WS_DATA: dict[str, type[Answer]] = {
    "feature_flags": FeatureFlags,
    "progress": ProgressData,
    "executing": ExecutingData,
    "execution_start": WsScoped,
    "execution_cached": WsScoped,
    "execution_error": ExecutionErrorData,
    "execution_interrupted": WsScoped,
}


# ---------------------------------------------------------------------------- checking
@lru_cache(maxsize=None)
def _adapter(shape: Any) -> TypeAdapter:
    return TypeAdapter(shape)


def check(shape: type[T] | Any, data: Any, *, server: str, what: str, subject: str = "the answer") -> T:
    """`data` validated as `shape`, or UnexpectedAnswer: "ComfyUI at <server> sent an unexpected <what>: ...".

    `what` names the answer ("answer to GET /queue", "progress message"); `subject` is how the whole
    value is called when it is itself of the wrong type.
    """
    try:
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            return shape.model_validate(data)
        return _adapter(shape).validate_python(data)
    except ValidationError as exc:
        sentence = f"ComfyUI at {server} sent an unexpected {what}: {describe(exc, subject)}."
        log.debug("%s", sentence)
        raise UnexpectedAnswer(sentence) from None


def parse_json(body: bytes | str, *, server: str, what: str) -> Any:
    """The JSON in `body`, or UnexpectedAnswer ("... sent an <what> that is not JSON.")."""
    try:
        return json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError):
        article = "an" if what[:1].lower() in "aeiou" else "a"
        sentence = f"ComfyUI at {server} sent {article} {what} that is not JSON."
        log.debug("%s", sentence)
        raise UnexpectedAnswer(sentence) from None


def mapping(data: Any, *, server: str, what: str, subject: str = "the answer") -> Mapping[str, Any]:
    """`data` if it is a JSON object, else UnexpectedAnswer."""
    return check(dict[str, Any], data, server=server, what=what, subject=subject)


_PHRASES = {
    "dict_type": "must be a mapping", "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
    "list_type": "must be a list", "tuple_type": "must be a list",
    "string_type": "must be a string", "string_too_short": "must not be empty",
    "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number", "float_parsing": "must be a number",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "missing": "is missing", "too_short": "has too few items", "too_long": "has too many items",
}
_NO_GOT = {"missing", "too_short", "too_long"}


def describe(exc: ValidationError, subject: str = "the answer") -> str:
    """What was wrong, in at most MAX_DETAIL characters: "outputs must be a mapping (got "nope")"."""
    problems = []
    for error in exc.errors(include_url=False):
        where = _path(error["loc"]) or subject
        kind = error["type"]
        phrase = _PHRASES.get(kind) or (error["msg"] if kind == "shape" else f"is wrong ({error['msg'].lower()})")
        got = "" if kind in _NO_GOT else f" (got {_got(error.get('input'))})"
        problems.append(f"{where} {phrase}{got}")
    text = problems[0]
    for i, problem in enumerate(problems[1:], start=1):
        rest = len(problems) - i - 1
        more = f" (and {rest} more)" if rest else ""
        if len(text) + len(problem) + len(more) + 2 > MAX_DETAIL:
            text += f" (and {len(problems) - i} more)"
            break
        text += f"; {problem}"
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL - 3].rstrip() + "..."


def _path(loc: tuple[Any, ...]) -> str:
    """('outputs', '9', 'images', 0, 'filename') -> outputs.9.images[0].filename (validator tags dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part):  # e.g. "function-before[_queue_item(), list[any]]": not a key
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _got(value: Any) -> str:
    """A short JSON-ish name of what was there, never a dump of a large body."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 20 else "a number"
    if isinstance(value, str):
        return json.dumps(value) if len(value) <= 30 else f"a string of {len(value)} characters"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
