"""A fake Hugging Face Hub: a real aiohttp HTTP server on 127.0.0.1 that serves a few files the way
huggingface_hub 2.x asks for them, for tests and manual runs.

It runs in a background thread with its own event loop (like tests/support/fake_comfyui.py), so sync tests,
async tests and a Gradio app in the same process can all use it.

    with FakeHub() as hub:                     # or hub = FakeHub().start(); ...; hub.close()
        hub.add_file("org/repo", "model.safetensors", data)  # at /org/repo/resolve/{main|<commit>}/model.safetensors
        url = hub.url                          # http://127.0.0.1:<port>: HF_ENDPOINT / Settings.hf_endpoint
        hub.bytes_per_s = 512 * 1024           # throttle every body (None: as fast as it goes); read live
        hub.drop_after(1_000_000)              # the next GET body is cut (connection closed) after 1 MB
        hub.clear_drops()                      # ... unless cleared first
        hub.redirect_to_cdn = True             # HEAD/GET /resolve answer 302 to a "CDN" on another port, with
                                               # X-Linked-Etag / X-Linked-Size, as the Hub does for LFS files
        hub.requests                           # [{"method", "path", "range", "status", "file", "auth"}, ...]
        hub.bytes_sent                         # body bytes sent in all

What huggingface_hub checks (file_download.get_hf_file_metadata): `X-Repo-Commit`, `X-Linked-Etag` or
`ETag`, `X-Linked-Size` or `Content-Length`; errors carry `X-Error-Code` (RepoNotFound, EntryNotFound).
A GET with `Range: bytes=N-` is answered 206 with `Content-Range`; a range past the end, 416.

CLI for manual runs (serves catalogue-named small SD 1.5 / SDXL-shaped files):
    python -m tests.support.fake_hub --port 8765 [--speed 1000000]
    HF_ENDPOINT=http://127.0.0.1:8765 GATOR_MODELS_DIR=/tmp/models ./launch.sh
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

CHUNK = 16 * 1024
COMMIT = "a" * 8 + "0123456789abcdef0123456789abcdef"  # 40 hex characters, like a git commit

SD15_REPO, SD15_FILE = "stable-diffusion-v1-5/stable-diffusion-v1-5", "v1-5-pruned-emaonly.safetensors"
SDXL_REPO, SDXL_FILE = "stabilityai/stable-diffusion-xl-base-1.0", "sd_xl_base_1.0.safetensors"


# -- deterministic files ------------------------------------------------------------------------------------------

def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], size: int, seed: int = 0) -> bytes:
    """A valid safetensors file of about `size` bytes: the named tensors (dtype, shape) with seeded random
    contents, then a U8 padding tensor that brings the file to `size`."""
    itemsize = {"F16": 2, "F32": 4, "U8": 1}
    table: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        table[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + count * itemsize[dtype]]}
        offset += count * itemsize[dtype]

    def header(padding: int) -> bytes:
        full = dict(table, **{"gator_test.padding": {"dtype": "U8", "shape": [padding],
                                                     "data_offsets": [offset, offset + padding]}})
        raw = json.dumps(full, separators=(",", ":")).encode()
        return raw + b" " * (-len(raw) % 8)

    padding = max(0, size - 8 - len(header(size)) - offset)
    head = header(padding)
    body = random.Random(seed).randbytes(offset + padding)
    return struct.pack("<Q", len(head)) + head + body


def sd15_checkpoint(size: int = 2 * 1024 * 1024, seed: int = 15) -> bytes:
    """A small file an SD 1.5 checkpoint's header would describe (LDM key names, 768-wide cross-attention):
    listed as SD 1.5 by the model scan; not loadable as a pipeline (most tensors are missing)."""
    return safetensors_bytes({
        "model.diffusion_model.input_blocks.0.0.weight": ("F16", [320, 4, 3, 3]),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 768]),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": ("F32", [1, 77]),
    }, size, seed)


def sdxl_checkpoint(size: int = 2 * 1024 * 1024, seed: int = 50) -> bytes:
    """A small SDXL-shaped file (conditioner.embedders, 2048-wide cross-attention), like sd15_checkpoint."""
    return safetensors_bytes({
        "model.diffusion_model.input_blocks.0.0.weight": ("F16", [320, 4, 3, 3]),
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [640, 2048]),
        "conditioner.embedders.0.transformer.text_model.embeddings.position_ids": ("F32", [1, 77]),
    }, size, seed)


@dataclass
class HubFile:
    repo_id: str
    filename: str
    content: bytes
    commit: str = COMMIT

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


class FakeHub:
    """Controllable fake Hub; every public knob may be changed from any thread."""

    def __init__(self, files: dict[tuple[str, str], bytes] | None = None, *, bytes_per_s: float | None = None,
                 port: int = 0) -> None:
        self.port = port
        self.cdn_port = 0
        self.bytes_per_s = bytes_per_s
        self.redirect_to_cdn = False
        self.requests: list[dict[str, Any]] = []
        self.bytes_sent = 0
        self._files: dict[tuple[str, str], HubFile] = {}
        self._by_sha: dict[str, HubFile] = {}
        self._drops: list[int] = []  # body bytes after which the next GETs are cut, one entry each
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._socks: list[socket.socket] = []
        for (repo_id, filename), content in (files or {}).items():
            self.add_file(repo_id, filename, content)

    # ---------------------------------------------------------------- control
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_file(self, repo_id: str, filename: str, content: bytes) -> HubFile:
        entry = HubFile(repo_id, filename, bytes(content))
        with self._lock:
            self._files[(repo_id, filename)] = entry
            self._by_sha[entry.sha256] = entry
        return entry

    def remove_file(self, repo_id: str, filename: str) -> None:
        with self._lock:
            self._files.pop((repo_id, filename), None)

    def file(self, repo_id: str, filename: str) -> HubFile:
        return self._files[(repo_id, filename)]

    def drop_after(self, nbytes: int, times: int = 1) -> None:
        """Cut the next `times` GET bodies after `nbytes` bytes of each (the connection is closed mid-body)."""
        with self._lock:
            self._drops.extend([nbytes] * times)

    def clear_drops(self) -> None:
        """Forget the cuts not used yet."""
        with self._lock:
            self._drops.clear()

    def gets(self, filename: str | None = None) -> list[dict[str, Any]]:
        """The GET requests for file bodies so far (of `filename` only, when given)."""
        return [r for r in self.requests if r["method"] == "GET" and (filename is None or r["file"] == filename)]

    def start(self) -> "FakeHub":
        if self._thread is None:
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._thread = threading.Thread(target=self._thread_main, args=(ready,), name="fake-hub", daemon=True)
            self._thread.start()
            ready.wait()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def close(self) -> None:
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._thread = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- server
    def _thread_main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    async def _serve(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/cdn/{sha}", self._cdn)
        app.router.add_route("*", "/{namespace}/{name}/resolve/{revision}/{filename:.+}", self._resolve)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        for attr in ("port", "cdn_port"):  # the CDN is another origin, as on the real Hub
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", getattr(self, attr)))
            setattr(self, attr, sock.getsockname()[1])
            await web.SockSite(self._runner, sock).start()
            self._socks.append(sock)

    async def _shutdown(self) -> None:
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        await runner.cleanup()
        for sock in self._socks:
            sock.close()
        self._socks.clear()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _record(self, request: web.Request, entry: HubFile | None, status: int) -> None:
        with self._lock:
            self.requests.append({"method": request.method, "path": request.path, "status": status,
                                  "range": request.headers.get("Range"),
                                  "file": entry.filename if entry else None,
                                  "auth": request.headers.get("Authorization") is not None})

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        repo_id = f"{request.match_info['namespace']}/{request.match_info['name']}"
        filename, revision = request.match_info["filename"], request.match_info["revision"]
        with self._lock:
            entry = self._files.get((repo_id, filename))
            repo_known = any(repo == repo_id for repo, _ in self._files)
        if entry is None or revision not in ("main", entry.commit):
            code = "EntryNotFound" if repo_known else "RepoNotFound"
            self._record(request, entry, 404)
            return web.Response(status=404, headers={"X-Error-Code": code, "X-Error-Message": f"{code}."},
                                text=json.dumps({"error": f"{code}."}), content_type="application/json")
        if self.redirect_to_cdn:
            headers = {"Location": f"http://127.0.0.1:{self.cdn_port}/cdn/{entry.sha256}?signature=x",
                       "X-Repo-Commit": entry.commit, "X-Linked-Etag": f'"{entry.sha256}"',
                       "X-Linked-Size": str(len(entry.content)), "ETag": '"0123456789abcdef"'}
            self._record(request, entry, 302)
            return web.Response(status=302, headers=headers)
        return await self._body(request, entry, {"X-Repo-Commit": entry.commit, "ETag": f'"{entry.sha256}"'})

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            entry = self._by_sha.get(request.match_info["sha"])
        if entry is None or request.url.port != self.cdn_port:
            self._record(request, entry, 404)
            return web.Response(status=404, text="not found")
        return await self._body(request, entry, {"ETag": f'"{entry.sha256}"'})

    async def _body(self, request: web.Request, entry: HubFile, headers: dict[str, str]) -> web.StreamResponse:
        """HEAD: the headers; GET: the bytes (a Range from its start), throttled and maybe cut."""
        data, total = entry.content, len(entry.content)
        start, end, status = 0, total - 1, 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", "").strip())
        if wanted:
            start = int(wanted.group(1))
            end = min(int(wanted.group(2)), total - 1) if wanted.group(2) else total - 1
            if start >= total:
                self._record(request, entry, 416)
                return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        headers.update({"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"})
        self._record(request, entry, status)
        if request.method == "HEAD":
            headers["Content-Length"] = str(end - start + 1)
            response = web.StreamResponse(status=status, headers=headers)
            response.content_length = end - start + 1
            await response.prepare(request)
            return response
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = end - start + 1
        await response.prepare(request)
        with self._lock:
            cut = self._drops.pop(0) if self._drops else None
        sent, position, began = 0, start, time.monotonic()
        while position <= end:
            piece = data[position:min(position + CHUNK, end + 1)]
            if cut is not None and sent + len(piece) > cut:
                piece = piece[:cut - sent]
                if piece:
                    await response.write(piece)
                    self.bytes_sent += len(piece)
                log.info("fake hub: cutting %s after %d bytes", entry.filename, cut)
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write(piece)
            sent += len(piece)
            position += len(piece)
            self.bytes_sent += len(piece)
            speed = self.bytes_per_s
            if speed:
                ahead = began + sent / speed - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                elif ahead < -1.0:  # the speed was raised: do not burst to catch up
                    began = time.monotonic() - sent / speed
        await response.write_eof()
        return response


def catalogue_hub(size: int = 2 * 1024 * 1024, **kwargs: Any) -> FakeHub:
    """A fake Hub with the catalogue's two downloadable files (presets/models.yaml), small and SD-shaped."""
    return FakeHub({(SD15_REPO, SD15_FILE): sd15_checkpoint(size), (SDXL_REPO, SDXL_FILE): sdxl_checkpoint(size)},
                   **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--speed", type=float, default=None, help="bytes per second (default: as fast as it goes)")
    parser.add_argument("--size", type=int, default=64 * 1024 * 1024, help="size of each served file in bytes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    hub = catalogue_hub(args.size, bytes_per_s=args.speed, port=args.port).start()
    print(f"fake Hugging Face Hub on {hub.url} (CDN port {hub.cdn_port}); Ctrl+C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.close()


if __name__ == "__main__":
    main()
