"""The live backend badge in the header: what a default request would run on right now."""
from __future__ import annotations

import html
import re
from typing import Any

MODELS_ANCHOR = "status-models-section"  # the System status tab's Models heading (ui/status_tab.py)

# The badge's `js_on_load`: a click on the link selects the System status tab (through its tab button, or the
# "More tabs" menu on a narrow screen) and scrolls to the Models section once the tab is shown.
SHOW_MODELS_JS = """
element.addEventListener('click', (event) => {
  const link = event.target.closest('a.gator-badge-link');
  if (!link) return;
  event.preventDefault();
  const name = 'System status';
  const named = (nodes) => [...nodes].find((node) => node.innerText.trim() === name);
  const tab = named(document.querySelectorAll('#gator-tabs [role=tab]'));
  if (tab && tab.offsetParent !== null) {
    tab.click();
  } else {
    const more = document.querySelector("#gator-tabs button[aria-label='More tabs']");
    if (more) more.click();
    setTimeout(() => {
      const item = named(document.querySelectorAll('#gator-tabs .overflow-dropdown button'));
      if (item) item.click(); else if (tab) tab.click();
    }, 50);
  }
  const started = Date.now();
  const scroll = () => {
    const target = document.getElementById(link.getAttribute('href').slice(1));
    if (target && target.offsetParent !== null) {
      target.scrollIntoView({block: 'start'});
    } else if (Date.now() - started < 5000) {
      setTimeout(scroll, 50);
    }
  };
  scroll();
});
"""


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
    text = html.escape(label)
    if tone == "demo":  # the demo model's label links to the status tab's Models section (SHOW_MODELS_JS)
        text = (f'<a class="gator-badge-link" href="#{MODELS_ANCHOR}" style="color: inherit; text-decoration: '
                f'underline; text-underline-offset: 2px">{text}</a>')
    return (f'<div id="backend-badge" class="gator-badge gator-badge-{tone}" data-backend="{backend}"'
            f' data-tone="{tone}"{title}>'
            f'<span class="gator-dot"></span><span class="gator-badge-label">{text}</span></div>')
