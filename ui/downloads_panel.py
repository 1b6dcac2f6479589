"""The download panel of the System status tab's Models section: a row per downloadable catalogue model with
its progress bar (bytes, speed, time left), Download / Cancel, and "Allow downloads"; the engine's
`Downloads` service does the work."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import gradio as gr

from engine.downloads import human_bytes

from .login import not_an_admin
from .serialize import html_text as _e

class DownloadControls(Protocol):
    """What the panel needs of the engine (AIModelManager's public members)."""

    admins: frozenset[str]

    def downloads_state(self) -> dict[str, Any]: ...

    def start_download(self, model_id: str) -> None: ...

    def cancel_download(self, model_id: str) -> None: ...

    def allow_downloads(self) -> None: ...


RUNNING = ("starting", "downloading", "verifying", "cancelling")
OFFER = ("missing", "partial", "cancelled", "failed")  # states with a Download button (once allowed)
ADMINS_ONLY = "Only an admin login (--admin) can download models on this server."


def slug(model_id: str) -> str:
    """An element-id-safe form of a model id: "sdxl-1.0" -> "sdxl-1-0"."""
    return re.sub(r"[^a-z0-9]+", "-", str(model_id).lower()).strip("-")


def _duration(seconds: Any) -> str:
    try:
        s = max(0, round(float(seconds)))
    except (TypeError, ValueError):
        return ""
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_bar(percent: float | None, elem_id: str) -> str:
    """A bar as HTML: its fill's width is the percentage (unknown total: an empty bar)."""
    value = max(0.0, min(100.0, float(percent or 0.0)))
    return (f'<div id="{elem_id}" class="gator-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
            f'aria-valuenow="{value:.0f}" data-percent="{value:.1f}" style="height: .6rem; border-radius: .3rem; '
            'background: var(--border-color-primary); overflow: hidden; margin: .35rem 0 .2rem; max-width: 40rem">'
            f'<div class="gator-progress-fill" style="width: {value:.1f}%; height: 100%; '
            'background: var(--color-accent); transition: width .4s linear"></div></div>')


def render_download_intro(downloads: dict[str, Any] | None) -> str:
    """The panel's heading and one sentence: whether downloads are on, where files go, or why they cannot."""
    out = ['<div id="status-downloads-intro"><h4 style="margin: .25rem 0">Download a model</h4>']
    downloads = downloads or {}
    folder = downloads.get("folder")
    if not downloads:
        out.append("<p>Starting…</p>")
    elif downloads.get("blocked") and (not folder or downloads.get("offline") or downloads.get("allowed")):
        out.append(f'<p id="status-downloads-blocked">{_e(downloads["blocked"])}</p>')
    elif not downloads.get("allowed"):
        out.append(f"<p>Downloads are off (GATOR_ALLOW_DOWNLOADS=0). \"Allow downloads\" turns them on for this run; "
                   f"files go to the models folder <code>{_e(folder)}</code>.</p>")
    else:
        out.append(f"<p>Files go to the models folder <code>{_e(folder)}</code>, from the Hugging Face Hub. A "
                   "cancelled or interrupted download keeps its partial file (in the folder's hidden "
                   "<code>.cache/huggingface/download/</code>) and Download resumes it.</p>")
    return "".join(out) + "</div>"


def render_download_row(entry: dict[str, Any], model: dict[str, Any] | None = None) -> str:
    """One catalogue model: what it is, whether it is here, and a running download's progress."""
    key = slug(entry.get("model_id"))
    status = entry.get("status") or "missing"
    size = f"about {entry.get('size_gb')} GB" if entry.get("size_gb") else ""
    head = (f"<b>{_e(entry.get('label'))}</b> <code>{_e(entry.get('filename'))}</code> from "
            f"<code>{_e(entry.get('repo_id'))}</code>" + (f", {_e(size)}" if size else ""))
    done, total = entry.get("done_bytes") or 0, entry.get("total_bytes")
    of_total = f"{human_bytes(done)} of {human_bytes(total)}" if total else human_bytes(done)
    if status in ("installed", "done"):
        where = entry.get("installed_at") or "models folder"
        line = (f'<span class="gator-up">Downloaded</span> into the {_e(where)}; listed above and used now.'
                if status == "done" else f'<span class="gator-up">Installed</span> ({_e(where)}).')
    elif status in RUNNING:
        words = {"starting": "Starting…", "verifying": "Checking the file…", "cancelling": "Cancelling…"}
        if status == "downloading":
            parts = [of_total + (f" ({entry['percent']:.0f}%)" if entry.get("percent") is not None else "")]
            if entry.get("speed_bps"):
                parts.append(f"{human_bytes(entry['speed_bps'])}/s")
            if entry.get("eta_s") is not None and entry.get("speed_bps"):
                parts.append(f"about {_duration(entry['eta_s'])} left")
            if entry.get("resumed_from"):
                parts.append(f"resumed from {human_bytes(entry['resumed_from'])}")
            text = " · ".join(parts)
        else:
            text = words.get(status, status)
        line = progress_bar(entry.get("percent"), f"download-bar-{key}") + \
            f'<small id="download-progress-{key}">{_e(text)}</small>'
    elif status == "failed":
        line = f'<span class="gator-down">Failed:</span> {_e(entry.get("error"))}'
    elif status == "cancelled":
        line = f"Cancelled with {_e(human_bytes(done))} here; Download resumes it." if done else "Cancelled."
    elif status == "partial":
        line = f"Partly downloaded: {_e(human_bytes(done))} here; Download resumes it."
    else:
        line = "Not downloaded" + (" (the Models table says why it is missing)." if model and not
                                   model.get("available") else ".")
    return (f'<div id="download-info-{key}-body" data-status="{_e(status)}">{head}<br>'
            f'<span id="download-state-{key}">{line}</span></div>')


def allow_visible(state: dict[str, Any]) -> bool:
    """"Allow downloads" shows while downloads are off and nothing else stops them (a folder, not offline)."""
    return bool(state) and not state.get("allowed") and bool(state.get("folder")) and not state.get("offline")


def row_buttons(state: dict[str, Any], entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Download, Cancel) of one model's row: visibility and Download's label."""
    can_start = bool(state) and bool(state.get("allowed")) and not state.get("blocked")
    status = entry.get("status") or "missing"
    resume = status in ("partial", "cancelled", "failed") and (entry.get("done_bytes") or 0) > 0
    return ({"visible": can_start and status in OFFER, "value": "Resume download" if resume else "Download"},
            {"visible": status in RUNNING and status != "cancelling"})


def download_refusal(username: str | None, admins: Any) -> str:
    """Why this visitor may not allow, start or cancel downloads ("" when they may): with logins (--auth), only
    the admins (--admin) may; without logins, whoever reaches the app may."""
    return ADMINS_ONLY if not_an_admin(username, admins) else ""


@dataclass
class DownloadRow:
    """One model's row of the panel: its text and progress bar, Download and Cancel."""

    model_id: str
    info: gr.HTML
    download: gr.Button
    cancel: gr.Button
