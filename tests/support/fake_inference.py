"""A local stand-in for the Hugging Face Inference API's text-to-image route, over real HTTP.

It answers as the hosted API does: the image's bytes with content-type image/png, or a JSON error
({"error": ...}; a 503 while the model loads adds "estimated_time", a 429 sends Retry-After). Answers are scripted
per test (`script`: one entry per request, the last repeated); every TCP connection is counted, so a test can prove
that nothing was sent at all.
"""
from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

COLOUR = (20, 140, 220)


@dataclass
class Answer:
    """One scripted answer: `kind` image | truncated | error | html | slow; `status`, `headers` and `body` for errors."""

    kind: str = "image"
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


IMAGE = Answer()


def unauthorized() -> Answer:
    return Answer("error", 401, {"error": "Invalid credentials in Authorization header"})


def rate_limited(retry_after: float) -> Answer:
    return Answer("error", 429, {"error": "You have exceeded your monthly included credits for Inference Providers."},
                  {"Retry-After": f"{retry_after:g}"})


def loading(estimated_time: float) -> Answer:
    return Answer("error", 503, {"error": "Model black-forest-labs/FLUX.1-schnell is currently loading",
                                 "estimated_time": estimated_time})


class FakeInference:
    """`with FakeInference() as fake:` serves on 127.0.0.1 at `fake.url` until the block ends."""

    def __init__(self, *script: Answer) -> None:
        self.script = list(script) or [IMAGE]
        self.requests: list[dict[str, Any]] = []  # {"path", "json", "authorization"}
        self.connections = 0
        fake = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):  # every accepted connection, whatever it then sends
                fake.connections += 1
                return super().get_request()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                fake.requests.append({"path": self.path, "json": body,
                                      "authorization": self.headers.get("Authorization")})
                answer = fake.script[min(len(fake.requests), len(fake.script)) - 1]
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                if answer.kind == "image":
                    params = (body or {}).get("parameters") or {}
                    size = (int(params.get("width") or 64), int(params.get("height") or 64))
                    out = io.BytesIO()
                    Image.new("RGB", size, COLOUR).save(out, format="PNG")
                    self._send(200, out.getvalue(), "image/png")
                elif answer.kind == "truncated":  # a PNG cut off inside its pixels
                    out = io.BytesIO()
                    Image.effect_noise((64, 64), 50).convert("RGB").save(out, format="PNG")
                    self._send(200, out.getvalue()[:-200], "image/png")
                elif answer.kind == "html":
                    self._send(200, b"<html><body>Service paused</body></html>", "text/html")
                else:
                    self._send(answer.status, json.dumps(answer.body).encode(), "application/json", answer.headers)

            def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeInference":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
