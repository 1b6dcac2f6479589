"""Look and feel: a theme with local fonts only (the app must work offline) and a little CSS."""
from __future__ import annotations

import gradio as gr

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


# The logo is inline SVG, not an emoji: many systems (Debian's Chromium without an emoji font) show emoji as boxes.
LOGO_SVG = (
    '<svg class="gator-logo" viewBox="0 0 32 32" xmlns="http://www.w3.org/2000/svg" aria-hidden="true" '
    'focusable="false"><rect width="32" height="32" rx="8" fill="#16a34a"/>'
    '<path d="M3.5 15.5c0-1.9 1.3-3 3.2-3H15c.5-3 2.5-4.8 5.2-4.8 2.3 0 3.9 1.3 4.7 3.2l3.6 2.1v2.5z" fill="#dcfce7"/>'
    '<path d="M6 19.5h22.5c0 2.4-1.8 3.8-4 3.8H10c-2.4 0-4-1.5-4-3.8z" fill="#dcfce7"/>'
    '<path d="M7.5 15.5l1.6 2.6 1.6-2.6zM12.5 15.5l1.6 2.6 1.6-2.6zM17.5 15.5l1.6 2.6 1.6-2.6zM10 19.5l1.6-2.4 '
    '1.6 2.4zM15 19.5l1.6-2.4 1.6 2.4zM20 19.5l1.6-2.4 1.6 2.4z" fill="#fff"/>'
    '<circle cx="21" cy="11" r="1.6" fill="#14532d"/><circle cx="5.8" cy="13.9" r=".7" fill="#14532d"/></svg>')


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="green", secondary_hue="emerald", neutral_hue="slate",
                          font=SYSTEM_FONTS, font_mono=MONO_FONTS)


CSS = """
#gator-header { align-items: center; gap: .5rem 1rem; flex-wrap: wrap; }
#gator-header h1 { margin: 0; font-size: 1.6rem; display: flex; align-items: center; gap: .5rem; }
.gator-logo { width: 2rem; height: 2rem; flex: 0 0 auto; }
.gator-badge { display: inline-flex; align-items: center; gap: .5rem; padding: .35rem .8rem; max-width: 100%;
  box-sizing: border-box; border-radius: 1.25rem; font-weight: 600; font-size: .95rem;
  border: 1px solid transparent; overflow-wrap: anywhere; }
.gator-dot { width: .65rem; height: .65rem; border-radius: 50%; display: inline-block; background: currentColor;
  flex: 0 0 auto; }
.gator-badge-label { min-width: 0; }
.gator-badge-live { background: #e7f7ec; color: #176b34; border-color: #9bd8ae; }
.gator-badge-fallback { background: #fff6e0; color: #8a5a00; border-color: #f0cf7a; }
.gator-badge-demo { background: #fdecec; color: #9b1c1c; border-color: #f2aaaa; }
.gator-badge-starting { background: #eef0f3; color: #4a5568; }
#progress-line { min-height: 1.6rem; }
/* A1111's token counter, in the top right corner of its prompt box (the column holds the box and its counter) */
.gator-counted { position: relative; }
.gator-counted > .gator-token-counter { position: absolute; top: .45rem; right: .75rem; width: auto; z-index: 4; }
.gator-tokens { font-size: .8rem; color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; }
.gator-tokens-over { color: var(--color-accent); font-weight: 600; }
/* Narrow screens get narrower page margins (Gradio's are 2rem); a plain rule, as Gradio scopes media rules to the
   app's contents. The same as before from about 660 px up. */
.gradio-container .main.app { padding-left: clamp(.75rem, 8vw - 1.25rem, 2rem);
  padding-right: clamp(.75rem, 8vw - 1.25rem, 2rem); }
.gator-table { border-collapse: collapse; width: 100%; font-size: .9rem; margin-bottom: 1rem; }
.gator-table th, .gator-table td { border: 1px solid var(--border-color-primary); padding: .3rem .5rem;
  text-align: left; vertical-align: top; }
.gator-up { color: #176b34; font-weight: 600; }
.gator-down { color: #9b1c1c; font-weight: 600; }
.gator-unknown { color: #4a5568; font-weight: 600; }

/* Dark mode: Gradio puts the class "dark" on <body> (OS setting, ?__theme=dark or its settings panel).
   Gradio's ".prose *" rule paints the label in the body text colour, so the label gets the tone's colour here. */
.dark .gator-badge .gator-badge-label { color: inherit; }
.dark .gator-badge-live { background: #0f2e1b; color: #86efac; border-color: #1f6b3a; }
.dark .gator-badge-fallback { background: #33250a; color: #fcd34d; border-color: #7a5a12; }
.dark .gator-badge-demo { background: #3b1416; color: #fca5a5; border-color: #7f1d1d; }
.dark .gator-badge-starting { background: #1e293b; color: #cbd5e1; border-color: #334155; }
.dark .gator-up { color: #4ade80; }
.dark .gator-down { color: #f87171; }
.dark .gator-unknown { color: #94a3b8; }

/* Phones: the header stacks, the badge is a one- or two-line pill, the status tables scroll inside their own box,
   and the scene table's five columns share the width (no page scrolling sideways). */
@media (max-width: 640px) {
  #gator-tabs > .tab-wrapper button { padding-left: .6rem; padding-right: .6rem; }
  #gator-header > * { flex: 1 1 100% !important; min-width: 0 !important; }
  #gator-header h1 { font-size: 1.35rem; }
  .gator-badge { font-size: .85rem; padding: .3rem .7rem; }
  .gator-table { display: block; max-width: 100%; overflow-x: auto; padding: 0; border: 0; }
  #video-scenes .header-table, #video-scenes .virtual-body { width: 100% !important; table-layout: fixed; }
  #video-scenes th, #video-scenes td, #video-scenes .body-cell { min-width: 0 !important; max-width: none !important;
    font-family: var(--font); font-size: .75rem; }
  #video-scenes .cell-wrap { padding: 4px 3px; }
  #video-scenes th .header-content span { font-size: .7rem; word-break: normal; overflow-wrap: normal; }
  #video-scenes .row-number-header, #video-scenes .row-number-cell { width: 6% !important; min-width: 0 !important;
    flex: 0 0 6% !important; padding: 0 2px !important; font-size: .7rem; }
  #video-scenes [data-heading="0"], #video-scenes .sizing-body td:nth-child(2) { width: 25% !important; }
  #video-scenes [data-heading="1"], #video-scenes .sizing-body td:nth-child(3) { width: 19% !important; }
  #video-scenes [data-heading="2"], #video-scenes .sizing-body td:nth-child(4) { width: 17% !important; }
  #video-scenes [data-heading="3"], #video-scenes .sizing-body td:nth-child(5) { width: 20% !important; }
  #video-scenes [data-heading="4"], #video-scenes .sizing-body td:nth-child(6) { width: 13% !important; }
  #video-scenes .body-cell[data-col="0"] { width: 25% !important; flex: 0 0 25% !important; }
  #video-scenes .body-cell[data-col="1"] { width: 19% !important; flex: 0 0 19% !important; }
  #video-scenes .body-cell[data-col="2"] { width: 17% !important; flex: 0 0 17% !important; }
  #video-scenes .body-cell[data-col="3"] { width: 20% !important; flex: 0 0 20% !important; }
  #video-scenes .body-cell[data-col="4"] { width: 13% !important; flex: 0 0 13% !important; }
}
"""
