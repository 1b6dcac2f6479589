"""Command-line flags and environment for app.py, and launching with a share link that may fail offline."""
from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Sequence

from engine.backends import prefer_choices
from engine.compiled import COMPILE_MODES
from engine.errors import first_line
from starlette.middleware import Middleware

from .login import ClientAddress, LoginGuard

logger = logging.getLogger("gator.app")
# How long the app waits for its own page to answer after launch. Gradio's own check gives it one 3 s try, and a
# loaded machine (a small cloud CPU, a model loading beside it) can take longer: Gradio then refuses to start.
PAGE_WAIT_S = 60.0
PROXY_HINT = "Let requests to localhost bypass any proxy (NO_PROXY=127.0.0.1,localhost)"


class NotServed(RuntimeError):
    """The app could not serve its page on this machine (the sentence says what to check)."""


def parse_auth(text: str | None) -> list[tuple[str, str]] | None:
    """"user:pass" (or several, comma-separated) -> [(user, pass), ...]; None when empty.

    Raises ValueError with a sentence for anything else.
    """
    if not text or not text.strip():
        return None
    pairs = []
    for item in text.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError("--auth / GATOR_AUTH must be user:password (several separated by commas).")
        pairs.append((user, password))
    return pairs


def parse_admins(text: str | None, pairs: list[tuple[str, str]] | None) -> frozenset[str]:
    """"user" (or several, comma-separated) -> the logins that see everyone's outputs.

    Raises ValueError with a sentence for a name that --auth does not define; without --auth, admins have no
    effect (everyone sees everything) and a warning says so.
    """
    names = frozenset(name.strip() for name in (text or "").split(",") if name.strip())
    if not names:
        return names
    if not pairs:
        logger.warning("--admin / GATOR_ADMINS has no effect without --auth: everyone sees every output.")
        return names
    unknown = sorted(names - {user for user, _ in pairs})
    if unknown:
        raise ValueError(f"--admin / GATOR_ADMINS names users that --auth / GATOR_AUTH does not define: "
                         f"{', '.join(unknown)}.")
    return names


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(prog="app.py", description="Gator Studio: AI images and storyboard videos.")
    parser.add_argument("--host", default=env.get("GATOR_HOST") or env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
                        help="interface to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=int(env.get("GATOR_PORT") or env.get("GRADIO_SERVER_PORT")
                                                       or 7860), help="port (default 7860)")
    parser.add_argument("--share", action="store_true", default=env.get("GATOR_SHARE", "") in ("1", "true", "yes"),
                        help="also create a temporary public gradio.live link (needs internet)")
    parser.add_argument("--auth", default=env.get("GATOR_AUTH"), metavar="USER:PASS",
                        help="require a login (or GATOR_AUTH); several as u1:p1,u2:p2")
    parser.add_argument("--admin", default=env.get("GATOR_ADMINS"), metavar="USER[,USER]",
                        help="with --auth: users who see everyone's outputs (or GATOR_ADMINS); the others see "
                             "only their own")
    parser.add_argument("--comfyui-url", default=None, metavar="URL[,URL...]",
                        help="ComfyUI server(s), overrides COMFYUI_API_URL")
    parser.add_argument("--comfyui-dir", default=None, metavar="FOLDER",
                        help="a ComfyUI install the app starts (and stops) itself when no server answers at "
                             "COMFYUI_API_URL; overrides COMFYUI_DIR")
    parser.add_argument("--output-dir", default=None, help="where results are saved, overrides GATOR_OUTPUT_DIR")
    parser.add_argument("--models-dir", action="append", default=[], metavar="FOLDER",
                        help="also find checkpoints, LoRAs, VAEs and embeddings here (e.g. an A1111 or ComfyUI "
                             "install); may be given more than once, adds to GATOR_MODEL_FOLDERS")
    parser.add_argument("--compile", choices=COMPILE_MODES, default=None,
                        help="compile the UNet in the background (auto: on CUDA GPUs; overrides GATOR_COMPILE)")
    parser.add_argument("--prefer", choices=prefer_choices(), default=(env.get("GATOR_PREFER") or "").strip().lower()
                        or None, help="the backend auto mode tries first: local (this machine), or a backend's name "
                                      "(overrides GATOR_PREFER; default: ComfyUI, then this machine, then the cloud)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags (unknown ones are ignored so `gradio app.py` reload mode and Spaces runners still work)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        logger.debug("Ignoring arguments: %s", " ".join(unknown))
    if args.prefer and args.prefer not in prefer_choices():
        parser.error(f"GATOR_PREFER must be one of {', '.join(prefer_choices())} (got {args.prefer!r}).")
    try:
        args.auth_pairs = parse_auth(args.auth)
        args.admins = parse_admins(args.admin, args.auth_pairs)
    except ValueError as err:
        parser.error(str(err))
    return args


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from engine.config import Settings, parse_server_urls

    overrides: dict[str, Any] = {}
    if args.comfyui_url:
        overrides["comfyui_urls"] = parse_server_urls(args.comfyui_url)
    if args.comfyui_dir:
        overrides["comfyui_dir"] = Path(args.comfyui_dir)
    if args.output_dir:
        overrides["output_dir"] = Path(args.output_dir)
    if args.models_dir:
        overrides["model_folders"] = (*Settings.from_env().model_folders, *(Path(d) for d in args.models_dir))
    if args.compile:
        overrides["compile_mode"] = args.compile
    if args.prefer:
        overrides["prefer"] = args.prefer
    return overrides


def serve(demo: Any, args: argparse.Namespace, launch_options: dict[str, Any], *, block: bool = True) -> Any:
    """Launch `demo`. `--share` without auth warns; a share link that cannot be made leaves the app local."""
    if args.share and not args.auth_pairs:
        logger.warning("--share makes this app reachable by anyone with the link; consider --auth user:pass.")
    auth = LoginGuard.from_env(args.auth_pairs).check if args.auth_pairs else None
    if auth:  # the guard counts failures per address too
        app_kwargs = dict(launch_options.get("app_kwargs") or {})
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(ClientAddress)]
        launch_options = {**launch_options, "app_kwargs": app_kwargs}
    own_check = "_frontend" in inspect.signature(demo.launch).parameters  # else Gradio's single 3 s try
    try:
        result = demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                             auth_message="Gator Studio: please log in." if args.auth_pairs else None,
                             prevent_thread_lock=True, ssr_mode=False, **({"_frontend": False} if own_check else {}),
                             **launch_options)
    except Exception as err:  # a port in use, a proxy that refuses localhost: a sentence, not a traceback
        with contextlib.suppress(Exception):  # a server started before the failure lets its port go
            demo.close()
        hint = "Choose another port with --port" if isinstance(err, OSError) else PROXY_HINT
        raise NotServed(f"The app could not start serving on {args.host}:{args.port} ({first_line(err)}). "
                        f"{hint}.") from err
    if own_check and not args.share:
        problem = page_problem(demo.local_url, PAGE_WAIT_S)
        if problem:
            demo.close()
            raise NotServed(f"The app's page at {demo.local_url} did not answer within {PAGE_WAIT_S:g} s "
                            f"({problem}). {PROXY_HINT}, or run with --share.")
    if share_failed(demo, args):
        logger.warning("Could not create a share link (no internet?); still serving locally at %s", demo.local_url)
    if block:
        demo.block_thread()
    return result


def page_problem(url: str, limit_s: float) -> str | None:
    """None once `url` answers (a page, a login, a redirect), tried until `limit_s` has passed; else what the last
    try got."""
    deadline, problem = time.monotonic() + limit_s, "no answer"
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10):
                return None
        except urllib.error.HTTPError as err:
            if err.code == 401:  # the login page's guard
                return None
            problem = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            problem = str(getattr(err, "reason", err))
        if time.monotonic() >= deadline:
            return problem
        time.sleep(0.2)


def stop_on_sigterm() -> None:
    """Make SIGTERM (`kill`, `docker stop`, systemd) end the app as Ctrl+C does: the server closes and the caller's
    clean-up runs (atexit too, during start-up), so a ComfyUI the app started is stopped. Only the main thread can set
    a handler."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    logger.info("Stopping (signal %d).", signum)
    raise KeyboardInterrupt


def share_failed(demo: Any, args: argparse.Namespace) -> bool:
    """True when a share link was asked for but none could be made (the app still serves locally)."""
    return bool(args.share and not getattr(demo, "share_url", None))
