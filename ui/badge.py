"""The live backend badge in the header: what a default request would run on right now."""
from __future__ import annotations

import html
from typing import Any

KINDS = {"comfyui": "comfyui", "diffusers": "diffusers", "tiny": "tiny"}


def badge_html(active: dict[str, Any] | None) -> str:
    """The badge for `status()["active"]`: its label, coloured by backend kind."""
    active = active or {}
    label = str(active.get("label") or "starting…")
    kind = KINDS.get(str(active.get("backend") or ""), "starting")
    reason = str(active.get("reason") or "")
    title = f' title="{html.escape(reason)}"' if reason else ""
    return (f'<div id="backend-badge" class="gator-badge gator-badge-{kind}" data-backend="{kind}"{title}>'
            f'<span class="gator-dot"></span><span class="gator-badge-label">{html.escape(label)}</span></div>')
