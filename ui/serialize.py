"""Make engine results and status safe for the API and the browser: JSON without images or dataclasses, text
escaped for HTML."""
from __future__ import annotations

import dataclasses
import html
import math
from pathlib import Path
from typing import Any

DROP_KEYS = {"image"}


def jsonable(value: Any) -> Any:
    """A copy of `value` made only of dicts, lists, strings, numbers, booleans and None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if k not in DROP_KEYS}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "size") and hasattr(value, "mode"):  # a PIL image that slipped through
        return None
    return str(value)


def api_safe(value: Any) -> Any:
    """`jsonable(value)` with every "path" key renamed "saved_path".

    Gradio treats any dict with a "path" key as a file to upload or download; results name files on
    the server, which an API client should see as plain strings.
    """
    value = jsonable(value)
    if isinstance(value, dict):
        return {("saved_path" if k == "path" else k): api_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [api_safe(v) for v in value]
    return value


def html_text(value: Any) -> str:
    """`value` as text safe inside HTML (None: empty)."""
    return html.escape("" if value is None else str(value))
