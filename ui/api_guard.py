"""A sentence for malformed calls of the app's API endpoints (too few or too many values, a list or a file
where text belongs), before Gradio's own processing answers them with an empty error."""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any, Callable, NamedTuple

from gradio.data_classes import FileData

# Gradio's routes for a call by name: the values in order ("data": [...]) on call/, run/ and api/, by their names
# (an object of arguments) on call/v2/
CALL_PATH = re.compile(r"^/gradio_api/(?:call|run|api)/([A-Za-z0-9_]+)/?$")
NAMED_CALL_PATH = re.compile(r"^/gradio_api/call/v2/([A-Za-z0-9_]+)/?$")
JOIN_PATH = "/gradio_api/queue/join"
MAX_BODY = 64 * 1024 * 1024  # larger bodies go to Gradio untouched (its own limits apply)


def uploaded_path(value: Any) -> str | None:
    """The path of a file the caller uploaded (Gradio keeps uploads in its upload folder), or None: a file
    value naming any other path on the server is never opened."""
    path = getattr(value, "path", None) or (value.get("path") if isinstance(value, dict) else None)
    if not isinstance(path, str) or not path:
        return None
    from gradio.utils import get_upload_folder

    try:
        Path(path).resolve().relative_to(Path(get_upload_folder()).resolve())
    except (ValueError, OSError):
        return None
    return path


TEXT, FILE, OPTIONAL_FILE, ANY = "text", "file", "optional file", "any"


class EndpointValue(NamedTuple):
    """One value an endpoint takes: its name, its kind (text, file, optional file: a file or None, or any), and
    whether a call must give it (it has no default)."""

    name: str
    kind: str
    required: bool


def endpoint_spec(fn: Callable[..., Any]) -> list[EndpointValue]:
    """Each value an endpoint function takes, in order (the gr.Request left out)."""
    spec = []
    for name, param in inspect.signature(fn).parameters.items():
        if name == "request":
            continue
        annotation = param.annotation
        kind = TEXT if annotation in (str, "str") else FILE if annotation in (FileData, "FileData") else \
            OPTIONAL_FILE if annotation in (FileData | None, "FileData | None") else ANY
        spec.append(EndpointValue(name, kind, param.default is inspect.Parameter.empty))
    return spec


def problem_with(api_name: str, spec: list[EndpointValue], data: Any) -> tuple[str, str] | None:
    """(the value, a sentence) saying what is wrong with the values `data` for endpoint `api_name`, or None."""
    names = ", ".join(value.name for value in spec)
    if not isinstance(data, list):
        return "data", f"/{api_name} takes a list of values ({names})."
    if len(data) != len(spec):
        return "data", f"/{api_name} takes {len(spec)} values in this order: {names}; got {len(data)}."
    for expected, value in zip(spec, data):
        problem = _value_problem(expected.name, expected.kind, value)
        if problem:
            return expected.name, problem
    return None


def named_problem_with(api_name: str, spec: list[EndpointValue], arguments: Any) -> tuple[str, str] | None:
    """As `problem_with`, for values given by name (Gradio's call/v2 route): an object of the names, every required
    one among them."""
    names = ", ".join(value.name for value in spec)
    if not isinstance(arguments, dict):
        return "data", f"/{api_name} takes an object of named values ({names})."
    missing = [value.name for value in spec if value.required and value.name not in arguments]
    if missing:
        return missing[0], f"/{api_name} needs a value named {missing[0]!r}; its values: {names}."
    kinds = {value.name: value.kind for value in spec}
    for name, value in arguments.items():
        if name not in kinds:
            return str(name), f"/{api_name} has no value named {str(name)!r}; its values: {names}."
        problem = _value_problem(name, kinds[name], value)
        if problem:
            return name, problem
    return None


def _value_problem(name: str, kind: str, value: Any) -> str | None:
    """The sentence for one value of the wrong kind (text that is not text, a file that was not uploaded)."""
    what = name.replace("_", " ")
    if kind == TEXT and value is not None and not isinstance(value, str):
        return f"The {what} must be text, not {_kind(value)}."
    if (kind == FILE or (kind == OPTIONAL_FILE and value is not None)) and uploaded_path(value) is None:
        return (f"The {what} must be a file uploaded with the call (gradio_client: handle_file(path)); a path on the "
                "server is never opened.")
    return None


def _kind(value: Any) -> str:
    if isinstance(value, dict) and "path" in value:
        return "a file"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "that"


class ApiArguments:
    """ASGI middleware: checks calls of the endpoints in `specs` ({api_name: endpoint_spec(fn)}); `fn_names`
    maps Gradio's fn_index to an api_name for queue joins."""

    def __init__(self, app: Any, specs: dict[str, list[EndpointValue]],
                 fn_names: Callable[[], dict[int, str]]) -> None:
        self.app = app
        self.specs = specs
        self.fn_names = fn_names

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")
        posted = scope.get("type") == "http" and scope.get("method") == "POST"
        named = NAMED_CALL_PATH.match(path) if posted else None
        call = (CALL_PATH.match(path) if posted else None) or named
        if call is None and not (posted and path == JOIN_PATH):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more and len(body) <= MAX_BODY:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        problem = self._problem(call.group(1) if call else None, body, named is not None) if not more else None
        if problem:
            name, sentence = problem  # "detail" as gradio_client reads a validation failure
            payload = json.dumps({"error": sentence, "detail": [{"__type__": "validate", "is_valid": False,
                                                                 "parameter_name": name, "message": sentence}]})
            payload = payload.encode()
            await send({"type": "http.response.start", "status": 422,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": payload})
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)

    def _problem(self, api_name: str | None, body: bytes, named: bool = False) -> tuple[str, str] | None:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return None  # Gradio answers malformed JSON itself
        if named:
            spec = self.specs.get(api_name or "")
            return named_problem_with(api_name, spec, payload) if spec is not None else None
        if not isinstance(payload, dict):
            return None
        if api_name is None:
            index = payload.get("fn_index")
            api_name = self.fn_names().get(index) if isinstance(index, int) else None
        spec = self.specs.get(api_name or "")
        return problem_with(api_name, spec, payload.get("data")) if spec is not None else None
