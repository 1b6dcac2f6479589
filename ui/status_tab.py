"""The System status tab: ComfyUI servers, this machine, models (and downloading catalogue models), outputs
and recent backend switches.

Everything comes from `manager.status()` (the health monitor's snapshot, and the downloads' progress); nothing
here touches the network. The Models section's download panel starts and cancels downloads through the
manager (engine/downloads.py does the work in the background).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable, Protocol

import gradio as gr

from engine.errors import GatorError

from .downloads_panel import (DownloadControls, DownloadRow, allow_visible, download_refusal, render_download_intro,
                              render_download_row, row_buttons, slug)
from .login import not_an_admin
from .models import license_text
from .serialize import html_text as _e, jsonable

logger = logging.getLogger(__name__)

REFRESH_S = 2.0
MANAGED_ADMINS_ONLY = "Only an admin login (--admin) can start or stop the managed ComfyUI."


def _gib(nbytes: Any) -> str:
    try:
        return f"{float(nbytes) / 1024**3:.1f} GiB"
    except (TypeError, ValueError):
        return "–"


def _backend_name(backend: dict[str, Any]) -> str:
    """The backend's label, and its API name (`prefer=`) beside it where the two differ ("ComfyUI comfyui" reads
    as a stutter only when they are one word)."""
    label, name = str(backend.get("label") or ""), str(backend.get("name") or "")
    return f"<b>{_e(label)}</b>" + (f" <code>{_e(name)}</code>" if name.lower() != label.lower() else "")


def _ago(epoch: Any) -> str:
    try:
        seconds = max(0.0, time.time() - float(epoch))
    except (TypeError, ValueError):
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _compile_line(compiled: dict[str, Any]) -> str:
    """"auto: off", or "on, blocks, child: ready: 1024x1024 (12 s)" (mode; scope, and the process where it is a
    child or a child could not compile it, while compiling is on; summary)."""
    if not compiled:
        return "–"
    mode = compiled.get("mode", "off")
    if compiled.get("status", "off") != "off" and compiled.get("scope"):
        process = ", child" if compiled.get("process") == "child" else ""
        if compiled.get("inline_reason"):
            process = f", in this process (a child could not: {compiled['inline_reason']})"
        mode = f"{mode}, {compiled['scope']}{process}"
    return f"{mode}: {compiled.get('summary', 'off')}"


def _table(headers: list[str], rows: list[list[str]], elem_id: str) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="gator-table" id="{elem_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _installed(models: Any) -> str:
    if not models:
        return "–"
    models = jsonable(models)
    parts = []
    for kind in ("checkpoints", "unets", "clips", "vaes", "loras", "controlnets"):
        files = models.get(kind) or []
        if files:
            parts.append(f"<b>{kind}</b>: {_e(', '.join(files))}")
    return "<br>".join(parts) or "none"


def _state(up: Any) -> str:
    if up is True:
        return '<span class="gator-up">up</span>'
    if up is False:
        return '<span class="gator-down">down</span>'
    return '<span class="gator-unknown">checking…</span>'


MODELS_HELP = ("To use a real model, put any SD 1.5 or SDXL checkpoint (.safetensors, e.g. from Civitai or Hugging "
               "Face) in the folder GATOR_MODELS_DIR names, or point --models-dir / GATOR_MODEL_FOLDERS at an "
               "AUTOMATIC1111 or ComfyUI install, then press \"Rescan model folders\"; or start ComfyUI with a "
               "checkpoint installed, and the badge switches to it within seconds. Or download SD 1.5 or SDXL "
               "below (\"Download a model\").")


def _last_seen(server: dict[str, Any], text: str) -> str:
    """`text` (what a server said when it was last up) marked as old: "last seen 2 min ago: ..."."""
    return f'<span class="gator-stale"><small>last seen {_e(_ago(server.get("since")))}:</small> {text}</span>'


def _server_row(s: dict[str, Any]) -> list[str]:
    """One server's cells; a server that is not up shows no latency or queue, and its device, VRAM and
    models as last seen."""
    current = s.get("up") is True
    latency = s.get("latency_ms")
    vram = (f"{_gib(s.get('vram_free'))} free of {_gib(s.get('vram_total'))}" if s.get("vram_total") else "–")
    device = _e(s.get("device") or "–") + (f"<br><small>ComfyUI {_e(s.get('comfyui_version'))}</small>"
                                           if s.get("comfyui_version") else "")
    models = _installed(s.get("models"))
    if not current:
        vram = _last_seen(s, vram) if s.get("vram_total") else "–"
        device = _last_seen(s, device) if s.get("device") else "–"
        models = _last_seen(s, models) if s.get("models") else "–"
    return [
        f"<code>{_e(s.get('url'))}</code>",
        _state(s.get("up")) + f"<br><small>since {_e(_ago(s.get('since')))}</small>",
        f"{latency:.0f} ms" if current and isinstance(latency, (int, float)) else "–",
        device,
        vram,
        _e(s.get("queue_remaining")) if current and s.get("queue_remaining") is not None else "–",
        models,
        _e(s.get("last_error") or ""),
    ]


def render_status(status: dict[str, Any]) -> str:
    """The whole tab as HTML (on the tab, the download panel's widgets sit between the two halves)."""
    return '<div id="system-status">' + _render_top(status) + _render_bottom(status) + "</div>"


def _render_top(status: dict[str, Any]) -> str:
    """Active backend, backends, servers, this machine and the Models section (up to its table)."""
    active = status.get("active") or {}
    label = str(active.get("label") or "").removesuffix(str(active.get("hint") or "")) or None
    reason = str(active.get("reason") or "")
    out = [f'<h3>Active backend</h3><p id="status-active"><b>{_e(label)}</b>'
           + (f" — {_e(reason)}" if reason and reason not in (label or "") else "") + "</p>"]  # said once
    if status.get("normal_path"):
        out.append(f'<p id="status-normal-path">{_e(status["normal_path"])}</p>')

    backends = status.get("backends") or []
    out.append("<h3>Backends</h3>")
    out.append(_table(["backend", "state", "summary", "models now"], [[
        _backend_name(b),
        _state(b.get("ready")) if b.get("enabled") else '<span class="gator-unknown">disabled</span>',
        _e(b.get("summary")), _e(len(b.get("models") or [])),
    ] for b in backends], "status-backends"))

    servers = status.get("servers") or []
    out.append("<h3>Servers</h3>")
    if servers:
        rows = [_server_row(s) for s in servers]
        out.append(_table(["server", "state", "latency", "device", "VRAM", "queue", "installed models",
                           "last error"], rows, "status-servers"))
    else:
        out.append('<p id="status-servers">No server configured (or every server backend is disabled).</p>')

    hw = status.get("hardware") or {}
    vram = f"{hw.get('vram_gb')} GiB" if hw.get("vram_gb") else "–"
    out.append("<h3>This machine</h3>")
    compiled = status.get("compile") or {}
    out.append(_table(["device", "name", "RAM", "VRAM", "loaded local model", "precision", "compiled UNet"], [[
        _e(hw.get("device") or "–"), _e(hw.get("name") or hw.get("summary") or "–"),
        f"{_e(hw.get('ram_gb'))} GiB" if hw.get("ram_gb") is not None else "–", _e(vram),
        _e(status.get("loaded_model") or "none yet"), _e(status.get("precision") or "–"),
        _e(_compile_line(compiled)),
    ]], "status-local"))
    workers = status.get("workers") or []
    if len(workers) > 1:  # one local worker per device: where requests went and what each holds
        out.append('<h3 id="status-workers-section">Local workers</h3>')
        out.append(_table(["worker", "device", "VRAM", "state", "loaded model", "jobs done", "compiled UNet"], [[
            f"<code>{_e(w.get('name'))}</code>", _e(w.get("device_name") or w.get("device")),
            f"{_e(w.get('vram_gb'))} GiB" if w.get("vram_gb") else "–", _e(w.get("state")),
            _e(w.get("loaded_model") or "none yet"), _e(w.get("jobs_done")),
            _e((w.get("compile") or {}).get("summary") or "off"),
        ] for w in workers], "status-workers"))

    models = status.get("models") or []
    out.append('<h3 id="status-models-section">Models</h3>')
    if active.get("demo"):
        out.append(f'<p id="status-models-help">{_e(MODELS_HELP)}</p>')
    if models:
        out.append(_table(["model", "id", "family", "backend", "license", "available", "note"], [[
            _e(m.get("label")), f"<code>{_e(m.get('id'))}</code>", _e(m.get("family_label") or ""),
            _e(m.get("backend_label") or m.get("backend")), _e(license_text(m.get("license"))),
            "yes" if m.get("available") else "no",
            _e(m.get("note") or ""),
        ] for m in models], "status-models"))
    return "".join(out)


def _render_bottom(status: dict[str, Any]) -> str:
    """LoRAs, ControlNets, upscalers, VAEs and workflows, notices, folders and recent switches."""
    out: list[str] = []
    for key, title, kind in (("loras", "LoRAs", "LoRA"), ("controlnets", "ControlNets", "ControlNet")):
        files = status.get(key) or []
        if files:
            out.append(f'<h3 id="status-{key}-section">{title}</h3>')
            out.append(_table([kind, "family", "backends"], [[
                f"<code>{_e(entry.get('name'))}</code>", _e(entry.get("family_label") or ""),
                _e(", ".join(entry.get("backends") or [])),
            ] for entry in files], f"status-{key}"))

    extras = [(title, status.get(key) or []) for key, title in
              (("upscalers", "upscalers"), ("vaes", "VAEs"), ("workflows", "ComfyUI workflows"))]
    extras.append(("wildcards", [f"__{name}__" for name in status.get("wildcards") or []]))
    extras.append(("styles", status.get("styles") or []))
    extras.append(("TAESD step previews", status.get("preview_decoders") or []))
    if any(names for _, names in extras):  # what else a request can name: Upscale, Hires fix, VAE, workflow lists
        out.append('<h3 id="status-extras-section">Upscalers, VAEs, workflows, wildcards, styles and previews</h3>')
        out.append(_table(["kind", "names"], [[
            _e(title), ", ".join(f"<code>{_e(name)}</code>" for name in names) or "none",
        ] for title, names in extras], "status-extras"))

    out.append(_render_managed(status.get("managed_comfyui")))

    notices = status.get("notices") or []
    if notices:
        out.append("<h3>Notices</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notices) + "</ul>")

    out.append("<h3>Folders</h3>")
    folders = [["outputs", f'<code id="status-output-dir">{_e(status.get("output_dir"))}</code>']]
    folders += [["model files", f"<code>{_e(folder)}</code>"] for folder in status.get("model_folders") or []]
    if status.get("wildcards_dir"):
        folders.append(["wildcards (one option a line in NAME.txt)", f"<code>{_e(status['wildcards_dir'])}</code>"])
    if status.get("styles_dir"):
        folders.append(["styles (A1111's styles.csv, Fooocus's JSON, YAML; also styles*.csv and sdxl_styles/ in the "
                        "model folders)", f"<code>{_e(status['styles_dir'])}</code>"])
    if status.get("comfyui_dir"):
        folders.append(["ComfyUI install (COMFYUI_DIR)", f"<code>{_e(status.get('comfyui_dir'))}</code>"])
    out.append(_table(["what", "where"], folders, "status-folders"))

    switches = status.get("switches") or []
    out.append("<h3>Recent backend switches</h3>")
    if switches:
        out.append(_table(["time", "event", "reason", "badge then"], [[
            _e(s.get("time")), _e(s.get("event")), _e(s.get("reason") or ""), _e(s.get("backend") or ""),
        ] for s in switches[:20]], "status-switches"))
    else:
        out.append('<p id="status-switches">No switches since start-up.</p>')
    return "".join(out)


def _managed_state(inst: dict[str, Any]) -> str:
    state = str(inst.get("state") or "")
    if state == "restarting" and inst.get("restart_in_s") is not None:
        return f'<span class="gator-down">crashed, restarting in {float(inst["restart_in_s"]):.0f} s</span>'
    css = {"up": "gator-up", "starting": "gator-unknown"}.get(state, "gator-down")
    return f'<span class="{css}">{_e(state)}</span>'


def _render_managed(managed: dict[str, Any] | None) -> str:
    """The Managed ComfyUI section: per instance its state, PID, port, what it last said and its log's last lines
    (nothing without COMFYUI_DIR)."""
    if not managed:
        return ""
    out = ['<h3 id="status-managed-section">Managed ComfyUI</h3>',
           f'<p>From <code>{_e(managed.get("folder"))}</code> with <code>{_e(managed.get("python") or "–")}</code>'
           "</p>"]
    if managed.get("note"):
        out.append(f'<p id="status-managed-note" class="gator-down">{_e(managed["note"])}</p>')
    rows = []
    for inst in managed.get("instances") or []:
        tail = "\n".join(inst.get("log_tail") or [])
        rows.append([_e(inst.get("name")), _managed_state(inst), _e(inst.get("pid") or "–"),
                     _e(inst.get("port") or "–"), _e(inst.get("message") or ""),
                     f'<details><summary>{_e(inst.get("log_path"))}</summary><pre class="gator-log">{_e(tail)}'
                     "</pre></details>" if tail else "–"])
    out.append(_table(["instance", "state", "PID", "port", "last word", "log (last lines)"], rows,
                      "status-managed"))
    return "".join(out)


class ManagedControls(Protocol):
    """What the Managed ComfyUI buttons need of the engine (AIModelManager's public members)."""

    admins: frozenset[str]

    def start_managed_comfyui(self) -> None: ...

    def stop_managed_comfyui(self) -> None: ...

    def restart_managed_comfyui(self) -> None: ...


def build_status_tab(read_status: Callable[[], dict[str, Any]],
                     rescan: Callable[[], Awaitable[Any]],
                     downloads: DownloadControls | None = None,
                     managed: ManagedControls | None = None) -> tuple[gr.HTML, Callable[[], str]]:
    """The tab's contents inside the current gr.Tab; refreshed by its own timer and a button; `rescan` looks
    through the model folders again. With `downloads` (the manager), the Models section gets its download panel:
    "Allow downloads", and per downloadable catalogue model its state, a progress bar, Download and Cancel. With
    `managed` (the manager, when COMFYUI_DIR is set), the Managed ComfyUI section gets Start, Stop and Restart.
    Returns the top view and the function that renders it (the app's page load fills it)."""

    def safe_status() -> dict[str, Any] | None:
        try:
            return read_status()
        except Exception:  # the tab must never show a traceback
            logger.exception("Reading the status failed")
            return None

    def top(status: dict[str, Any] | None) -> str:
        if status is None:
            return ('<div id="system-status"><p>Status is unavailable right now; the server log has the details.'
                    "</p></div>")
        try:
            return '<div id="system-status">' + _render_top(status) + "</div>"
        except Exception as err:
            return f'<div id="system-status"><p>Status is unavailable right now: {_e(err)}</p></div>'

    def bottom(status: dict[str, Any] | None) -> str:
        try:
            return '<div id="system-status-more">' + _render_bottom(status or {}) + "</div>"
        except Exception:
            logger.exception("Rendering the status failed")
            return '<div id="system-status-more"></div>'

    def refresh() -> str:
        return top(safe_status())

    rows: list[DownloadRow] = []

    def panel(status: dict[str, Any] | None) -> list[Any]:
        """The download panel's outputs: intro, Allow downloads, then per model its info, Download and Cancel."""
        if downloads is None:
            return []
        state = (status or {}).get("downloads")
        if state is None:
            try:
                state = downloads.downloads_state()
            except Exception:
                logger.exception("Reading the downloads' state failed")
                state = {}
        models = {m.get("id"): m for m in (status or {}).get("models") or []}
        outputs: list[Any] = [render_download_intro(state), gr.update(visible=allow_visible(state))]
        entries = state.get("models") or {}
        for row in rows:
            entry = entries.get(row.model_id) or {"model_id": row.model_id, "label": row.model_id}
            download, cancel = row_buttons(state, entry)
            outputs += [render_download_row(entry, models.get(row.model_id)), gr.update(**download),
                        gr.update(**cancel)]
        return outputs

    def refresh_all() -> list[Any]:
        status = safe_status()
        return [top(status), *panel(status), bottom(status)]

    async def rescan_and_refresh() -> list[Any]:
        try:
            await rescan()
        except Exception:  # the tab says so; the details stay in the server log
            logger.exception("Rescanning the model folders failed")
            parts = refresh_all()
            parts[0] = parts[0].replace('<div id="system-status">', '<div id="system-status"><p id="status-rescan">'
                                        "Rescanning the model folders failed; the server log has the details.</p>", 1)
            return parts
        return refresh_all()

    def refused(request: gr.Request | None) -> str:
        return download_refusal(getattr(request, "username", None), downloads.admins)

    def message(text: str, slot: str = "downloads") -> str:
        return f'<p id="status-{slot}-message" class="gator-down">{_e(text)}</p>' if text else \
            f'<p id="status-{slot}-message" hidden></p>'

    def outcome(action: Callable[[], None], what: str, refusal: str) -> str:
        """What to tell the visitor after `action` (refused, a sentence from the engine, or "" when it went well)."""
        if refusal:
            return refusal
        try:
            action()
        except GatorError as err:
            return str(err)
        except Exception:
            logger.exception("%s failed", what)
            return f"{what} failed; the server log has the details."
        return ""

    def act(action: Callable[[], None], what: str, request: gr.Request | None) -> list[Any]:
        return [message(outcome(action, what, refused(request))), *refresh_all()]

    def allow(request: gr.Request = None) -> list[Any]:
        return act(downloads.allow_downloads, "Allowing downloads", request)

    def start_for(model_id: str) -> Callable[..., list[Any]]:
        def start(request: gr.Request = None) -> list[Any]:
            return act(lambda: downloads.start_download(model_id), "Starting the download", request)
        return start

    def cancel_for(model_id: str) -> Callable[..., list[Any]]:
        def cancel(request: gr.Request = None) -> list[Any]:
            return act(lambda: downloads.cancel_download(model_id), "Cancelling the download", request)
        return cancel

    def managed_action(action: Callable[[], None], what: str) -> Callable[..., list[Any]]:
        def run(request: gr.Request = None) -> list[Any]:
            username = getattr(request, "username", None)
            refusal = MANAGED_ADMINS_ONLY if not_an_admin(username, managed.admins) else ""
            return [message(outcome(action, what, refusal), "managed"), *refresh_all()]
        return run

    first = safe_status()
    with gr.Row():
        refresh_btn = gr.Button("Refresh", size="sm", scale=0, elem_id="status-refresh")
        rescan_btn = gr.Button("Rescan model folders", size="sm", scale=0, min_width=190, elem_id="status-rescan")
        gr.Markdown(f"Updated every {REFRESH_S:.0f} s from the background health monitor.")
    view = gr.HTML(top(first), elem_id="status-view")
    panel_outputs: list[Any] = []
    if downloads is not None:
        try:
            state = (first or {}).get("downloads") or downloads.downloads_state()
        except Exception:
            logger.exception("Reading the downloads' state failed")
            state = {}
        models = {m.get("id"): m for m in (first or {}).get("models") or []}
        with gr.Column(elem_id="status-downloads", variant="panel"):
            intro = gr.HTML(render_download_intro(state), elem_id="status-downloads-intro-slot")
            allow_btn = gr.Button("Allow downloads", size="sm", scale=0, min_width=160,
                                  visible=allow_visible(state), elem_id="status-allow-downloads")
            notice = gr.HTML(message(""), elem_id="status-downloads-message-slot")
            for model_id, entry in (state.get("models") or {}).items():
                key = slug(model_id)
                download, cancel = row_buttons(state, entry)
                with gr.Row(elem_id=f"download-row-{key}"):
                    info = gr.HTML(render_download_row(entry, models.get(model_id)), elem_id=f"download-info-{key}")
                    start_btn = gr.Button(download["value"], size="sm", scale=0, min_width=150,
                                          visible=download["visible"], variant="primary", elem_id=f"download-{key}")
                    cancel_btn = gr.Button("Cancel", size="sm", scale=0, min_width=100, visible=cancel["visible"],
                                           variant="stop", elem_id=f"download-cancel-{key}")
                rows.append(DownloadRow(model_id, info, start_btn, cancel_btn))
        panel_outputs = [intro, allow_btn, *[c for row in rows for c in (row.info, row.download, row.cancel)]]
    if managed is not None:
        with gr.Row(elem_id="status-managed-buttons"):
            managed_buttons = [gr.Button(label, size="sm", scale=0, min_width=100, elem_id=f"managed-{label.lower()}")
                               for label in ("Start", "Stop", "Restart")]
            managed_notice = gr.HTML(message("", "managed"), elem_id="status-managed-message-slot")
    rest = gr.HTML(bottom(first), elem_id="status-view-more")
    outputs = [view, *panel_outputs, rest]
    if managed is not None:
        actions = (managed.start_managed_comfyui, managed.stop_managed_comfyui, managed.restart_managed_comfyui)
        for button, action, what in zip(managed_buttons, actions, ("Starting", "Stopping", "Restarting")):
            button.click(managed_action(action, f"{what} the managed ComfyUI"), outputs=[managed_notice, *outputs],
                         api_visibility="private", show_progress="hidden")
    if downloads is not None:
        common = dict(outputs=[notice, *outputs], queue=False, api_visibility="private", show_progress="hidden")
        allow_btn.click(allow, **common)
        for row in rows:
            row.download.click(start_for(row.model_id), **common)
            row.cancel.click(cancel_for(row.model_id), **common)
    timer = gr.Timer(REFRESH_S)
    timer.tick(refresh_all, outputs=outputs, queue=False, api_visibility="private", show_progress="hidden")
    refresh_btn.click(refresh_all, outputs=outputs, queue=False, api_visibility="private", show_progress="hidden")
    rescan_btn.click(rescan_and_refresh, outputs=outputs, api_visibility="private", show_progress="hidden")
    return view, refresh
