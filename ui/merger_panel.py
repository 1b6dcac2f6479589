"""The Checkpoint merger (A1111's tab of that name), on the System status tab: two checkpoints (three for add
difference) merged into a new one in the models folder (engine/merge.py), listed at once. With logins only an admin
may merge (the models folder is everyone's)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from engine import params as P
from engine.errors import GatorError
from engine.manager import AIModelManager
from engine.merge import METHOD_LABELS, METHODS, WEIGHTED_SUM

from .login import not_an_admin
from .widgets import widget

MERGE_ADMINS_ONLY = "Only an admin login (--admin) can merge checkpoints on this server: the models folder is everyone's."


class MergerHandlers:
    """The panel's handlers, bound to the manager."""

    def __init__(self, manager: AIModelManager) -> None:
        self.manager = manager

    def choices(self):
        """The checkpoints the merger can take now, for its three boxes."""
        names = self.manager.mergeable_checkpoints()
        return (gr.update(choices=names),) * 3

    async def merge(self, primary: str | None, secondary: str | None, tertiary: str | None, name: str,
                    multiplier: Any, method: str, half: bool, request: gr.Request = None):
        """Merge, then the sentence and the boxes' choices (the new checkpoint among them)."""
        if not_an_admin(getattr(request, "username", None), self.manager.admins):
            return (MERGE_ADMINS_ONLY, *(gr.skip(),) * 3)
        try:
            note = await self.manager.merge_checkpoints(primary or "", secondary or "", multiplier, name or "",
                                                        method=method or WEIGHTED_SUM, tertiary=tertiary, half=half)
        except GatorError as err:
            return (str(err), *(gr.skip(),) * 3)
        return (note, *self.choices())


def build_merger_panel(manager: AIModelManager) -> None:
    """The Checkpoint merger, closed until opened (its boxes list the checkpoints when it opens)."""
    h = MergerHandlers(manager)
    with gr.Accordion("Checkpoint merger", open=False, elem_id="merger-box") as box:
        gr.Markdown("A1111's merger: **weighted sum** A × (1 − M) + B × M, or **add difference** A + (B − C) × M "
                    "(a finetune's change added to another model). The result is saved in the models folder and "
                    "listed at once; checkpoints of different families cannot be merged.")
        with gr.Row():
            boxes = [gr.Dropdown([], label=label, elem_id=f"merge-{key}") for key, label in
                     (("a", "Primary model (A)"), ("b", "Secondary model (B)"), ("c", "Tertiary model (C)"))]
        with gr.Row():
            name = gr.Textbox(label="Custom name", max_lines=1, placeholder="myMix_v1", elem_id="merge-name")
            multiplier = gr.Slider(**widget(P.MERGE_MULTIPLIER), elem_id="merge-multiplier")
        with gr.Row():
            method = gr.Radio([(METHOD_LABELS[key], key) for key in METHODS], value=WEIGHTED_SUM,
                              label="Interpolation method", elem_id="merge-method")
            half = gr.Checkbox(False, label="Save as float16", elem_id="merge-half")
        merge = gr.Button("Merge", variant="primary", elem_id="merge")
        note = gr.Markdown("", elem_id="merge-note")
    private = {"api_visibility": "private"}
    box.expand(h.choices, outputs=boxes, queue=False, **private)
    merge.click(h.merge, inputs=[*boxes, name, multiplier, method, half], outputs=[note, *boxes], **private)
