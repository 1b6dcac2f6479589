"""The Image tab's queue list: the session's waiting jobs in order, a Cancel beside each, and Clear queue.

One row per place the queue has (its limit), hidden while empty; the ids of the jobs on show travel in a
gr.State so a Cancel removes the job its row showed, even when the queue moved on since.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import gradio as gr

from .job_queue import QueuedJob


@dataclass
class QueuePanel:
    """The panel's components; `outputs` is the list every refresh writes, in `refresh`'s order."""

    box: Any
    header: gr.Markdown
    clear: gr.Button
    shown_ids: gr.State
    rows: list[Any]
    texts: list[gr.Markdown]
    cancels: list[gr.Button]

    @property
    def outputs(self) -> list[Any]:
        return [self.box, self.header, self.shown_ids, *self.rows, *self.texts]

    def refresh(self, waiting: list[QueuedJob], note: str = "") -> list[Any]:
        """Updates for `outputs` showing `waiting` (the running job is not in it) and what the last click
        on the queue did (`note`; the progress line belongs to the running job)."""
        on_show = waiting[:len(self.rows)]
        header = f"**Queue:** {len(waiting)} waiting; each starts when the one before it ends."
        header += f" {note}" if note else ""
        updates: list[Any] = [gr.update(visible=bool(waiting)), header, [job.id for job in on_show]]
        updates += [gr.update(visible=index < len(on_show)) for index in range(len(self.rows))]
        updates += [f"{index + 1}\\. {_plain(on_show[index].summary())}" if index < len(on_show) else ""
                    for index in range(len(self.rows))]
        return updates


def _plain(text: str) -> str:
    """`text` shown as written in Markdown (a prompt's * or _ is not emphasis)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~])", r"\\\1", text)


def layout_queue_panel(places: int) -> QueuePanel:
    """The panel, hidden until a job waits, with `places` rows."""
    rows, texts, cancels = [], [], []
    with gr.Column(visible=False, elem_id="job-queue") as box:
        with gr.Row(equal_height=True):
            header = gr.Markdown("", elem_id="job-queue-header")
            clear = gr.Button("Clear queue", size="sm", scale=0, min_width=110, elem_id="job-queue-clear")
        for index in range(places):
            with gr.Row(visible=False, equal_height=True, elem_id=f"job-queue-row-{index + 1}",
                        elem_classes=["job-queue-row"]) as row:
                texts.append(gr.Markdown("", elem_id=f"job-queue-text-{index + 1}"))
                cancels.append(gr.Button("Cancel", size="sm", scale=0, min_width=80,
                                         elem_id=f"job-queue-cancel-{index + 1}"))
            rows.append(row)
    return QueuePanel(box=box, header=header, clear=clear, shown_ids=gr.State([]), rows=rows, texts=texts,
                      cancels=cancels)
