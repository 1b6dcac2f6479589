"""The Image tab's "ComfyUI workflow" box: the user's own workflows (the workflows folder) in a dropdown, an upload
that adds one, and a read-only summary of what the chosen one binds and what stays as in its file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from engine import params as P
from engine.manager import AIModelManager


def workflow_choices(names: list[str]) -> list[str]:
    """The dropdown's choices: "none" (the app's own graphs), then the folder's workflows."""
    return [P.NO_WORKFLOW, *names]


def summary_markdown(summary: dict[str, Any]) -> str:
    """A workflow's summary (manager.workflow_summary) as Markdown: its bound inputs, then what stays as in the file."""
    if summary.get("error"):
        return f"**Cannot use this workflow:** {summary['error']}"
    lines = [f"Saved as **{summary['name']}**: another workflow is named {summary['renamed_from']}."] \
        if summary.get("renamed_from") else []
    lines.append(f"**{summary['name']}** runs on ComfyUI only. These controls go into it:")
    lines += [f"- **{label}** → {where}" for label, where in summary["binds"].items()]
    lines.append("As in the file (read-only):")
    lines += [f"- `{line}`" for line in summary["kept"]] or ["- nothing else"]
    return "\n".join(lines)


def layout_workflow_box(names: list[str]) -> dict[str, Any]:
    """The box inside the current layout; returns its components by name."""
    with gr.Accordion(P.USER_WORKFLOW.label, open=False, elem_id="workflow-box") as box:
        with gr.Row(equal_height=False):
            workflow = gr.Dropdown(workflow_choices(names), value=P.NO_WORKFLOW, label=P.USER_WORKFLOW.label,
                                   info=P.USER_WORKFLOW.help, elem_id="user-workflow", scale=2)
            upload = gr.File(label="Add a workflow (ComfyUI: Workflow → Export (API))", file_types=[".json"],
                             type="filepath", elem_id="workflow-upload", scale=1)
        summary = gr.Markdown("", elem_id="workflow-summary")
    return dict(workflow_box=box, user_workflow=workflow, workflow_upload=upload, workflow_summary=summary)


class WorkflowBoxHandlers:
    """Choosing and uploading workflows, through the manager's public methods."""

    def __init__(self, manager: AIModelManager) -> None:
        self.manager = manager

    def show(self, name: str | None) -> str:
        """The summary of the chosen workflow ("" for none)."""
        if not name or name == P.NO_WORKFLOW:
            return ""
        return summary_markdown(self.manager.workflow_summary(name))

    def add(self, path: str | None):
        """An uploaded file into the workflows folder; the dropdown then lists and picks it."""
        if not path:
            return gr.skip(), gr.skip()
        try:
            text = Path(path).read_bytes()
        except OSError as err:
            return gr.skip(), f"**Cannot use this workflow:** the upload could not be read ({err.strerror})."
        summary = self.manager.add_workflow(Path(path).name, text)
        if summary.get("error"):
            return gr.skip(), summary_markdown(summary)
        choices = workflow_choices(self.manager.available_workflows())
        return gr.update(choices=choices, value=summary["name"]), summary_markdown(summary)


def wire_workflow_box(manager: AIModelManager, c: dict[str, Any]) -> None:
    """Connect the box's components."""
    h = WorkflowBoxHandlers(manager)
    private = {"queue": False, "api_visibility": "private"}
    c["user_workflow"].change(h.show, inputs=c["user_workflow"], outputs=c["workflow_summary"], **private)
    c["workflow_upload"].upload(h.add, inputs=c["workflow_upload"],
                                outputs=[c["user_workflow"], c["workflow_summary"]], **private)
