"""With logins, each login's saved results are served to that login (and admins) only: Gradio's file route
checks that someone is logged in, not whose file it is, so this ASGI middleware refuses a request for a
file in another login's outputs folder (and for files saved before logins, unless the user is an admin)."""
from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from engine.outputs import owner_folder

# Gradio serves a file by its path on `file=<path>` and on the older `file/<path>`, under /gradio_api or not (and
# under the path the app is mounted at): the path after the first of these is the file asked for.
FILE_ROUTE = re.compile(r"/file[=/]")


class OwnFilesOnly:
    """Refuses (403, with a sentence) a file under `output_dir` that is not the logged-in user's."""

    def __init__(self, app: Any, output_dir: str | Path, admins: Callable[[], frozenset[str]]) -> None:
        self.app = app
        self.output_dir = Path(output_dir).resolve()
        self.admins = admins

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "") if scope.get("type") == "http" else ""
        route = FILE_ROUTE.search(path)
        if route is None or self._allowed(scope, unquote(path[route.end():])):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "This file belongs to another login."}).encode()
        await send({"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: dict, requested: str) -> bool:
        gradio = scope.get("app")
        if getattr(gradio, "auth", None) is None:
            return True  # no logins: every result is everyone's, as before
        try:
            target = Path(requested).resolve()
        except (OSError, ValueError):
            return True  # not a file path we own: Gradio answers it
        if not target.is_relative_to(self.output_dir):
            return True
        user = _user(gradio, scope)
        if user is None or user in self.admins():
            return user is not None
        return target.is_relative_to(owner_folder(self.output_dir, user).resolve())


def _user(gradio: Any, scope: dict) -> str | None:
    """The logged-in user of a request, from Gradio's access-token cookie."""
    cookies = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookies.load(value.decode("latin-1"))
    cookie_id = getattr(gradio, "cookie_id", "")
    for key in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if key in cookies:
            return getattr(gradio, "tokens", {}).get(cookies[key].value)
    return None
