"""The live backend badge in the header: what a default request would run on right now."""
from __future__ import annotations

import html
import re
from typing import Any

def badge_html(active: dict[str, Any] | None) -> str:
    """The badge for `status()["active"]`: its label, coloured by tone (demo model, fallback, live, starting)."""
    active = active or {}
    label = str(active.get("label") or "starting…")
    backend = re.sub(r"[^a-z0-9_-]", "", str(active.get("backend") or "").lower()) or "starting"
    if not active.get("backend"):
        tone = "starting"
    elif active.get("demo"):
        tone = "demo"
    elif active.get("reason"):
        tone = "fallback"
    else:
        tone = "live"
    reason = str(active.get("reason") or "")
    title = f' title="{html.escape(reason)}"' if reason else ""
    return (f'<div id="backend-badge" class="gator-badge gator-badge-{tone}" data-backend="{backend}"'
            f' data-tone="{tone}"{title}>'
            f'<span class="gator-dot"></span><span class="gator-badge-label">{html.escape(label)}</span></div>')
