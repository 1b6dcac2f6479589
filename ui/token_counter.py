"""A1111's token counter in the corner of each prompt box: "12/75", the prompt's CLIP tokens and the places of the
75-token chunks they fill (engine/token_count.py counts; this only shows it)."""
from __future__ import annotations

import html

import gradio as gr

from engine.token_count import CHUNK_TOKENS, TokenCount

EMPTY = TokenCount(0, CHUNK_TOKENS)
EXPLAINED = (f"CLIP tokens this prompt takes, with the selected styles / the places of the {CHUNK_TOKENS}-token "
             f"chunks they fill. Past {CHUNK_TOKENS} the prompt is encoded in chunks of {CHUNK_TOKENS} "
             "(BREAK starts a new one).")


def counter_html(count: TokenCount) -> str:
    """The counter's markup: the label, and a mark when the prompt runs over one chunk."""
    over = " gator-tokens-over" if count.limit > CHUNK_TOKENS else ""
    return (f'<span class="gator-tokens{over}" title="{html.escape(EXPLAINED)}">'
            f"{html.escape(count.label)}</span>")


def layout_token_counter(elem_id: str) -> gr.HTML:
    """The counter for the prompt box laid out just before it (both inside a column with the class gator-counted)."""
    return gr.HTML(counter_html(EMPTY), elem_id=elem_id, elem_classes="gator-token-counter", js_on_load=None)
