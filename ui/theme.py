"""Look and feel: a theme with local fonts only (the app must work offline) and a little CSS."""
from __future__ import annotations

import gradio as gr

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="green", secondary_hue="emerald", neutral_hue="slate",
                          font=SYSTEM_FONTS, font_mono=MONO_FONTS)


CSS = """
#gator-header { align-items: center; gap: 1rem; }
#gator-header h1 { margin: 0; font-size: 1.6rem; }
.gator-badge { display: inline-flex; align-items: center; gap: .5rem; padding: .35rem .8rem;
  border-radius: 999px; font-weight: 600; font-size: .95rem; border: 1px solid transparent; }
.gator-dot { width: .65rem; height: .65rem; border-radius: 50%; display: inline-block; background: currentColor; }
.gator-badge-live { background: #e7f7ec; color: #176b34; border-color: #9bd8ae; }
.gator-badge-fallback { background: #fff6e0; color: #8a5a00; border-color: #f0cf7a; }
.gator-badge-demo { background: #fdecec; color: #9b1c1c; border-color: #f2aaaa; }
.gator-badge-starting { background: #eef0f3; color: #4a5568; }
#progress-line { min-height: 1.6rem; }
.gator-table { border-collapse: collapse; width: 100%; font-size: .9rem; margin-bottom: 1rem; }
.gator-table th, .gator-table td { border: 1px solid var(--border-color-primary); padding: .3rem .5rem;
  text-align: left; vertical-align: top; }
.gator-up { color: #176b34; font-weight: 600; }
.gator-down { color: #9b1c1c; font-weight: 600; }
.gator-unknown { color: #4a5568; font-weight: 600; }
"""
