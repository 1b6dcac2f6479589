"""A1111's prompt editing on the local backend: each run of steps (engine/prompt_schedule.py) gets its own prompt
embeddings, encoded once before the first step and handed to the pipeline by its step callback (diffusers lets a
callback replace `prompt_embeds`, and SDXL's pooled `add_text_embeds`, for the steps that follow)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..prompt_schedule import StepRange, is_scheduled, step_ranges
from .prompt_weights import is_weighted, weighted_inputs

logger = logging.getLogger(__name__)

POOLED = ("pooled_prompt_embeds", "negative_pooled_prompt_embeds")  # SDXL's, beside the token embeddings


@dataclass(frozen=True)
class _Segment:
    last: int  # the last 0-based step with these embeddings
    inputs: dict[str, Any]  # prompt_embeds, negative_prompt_embeds (and SDXL's pooled ones)


class ScheduledPrompts:
    """The embeddings of each run of steps of one image, and the callback work that swaps them in."""

    def __init__(self, segments: list[_Segment]):
        self.segments = segments

    def first_inputs(self) -> dict[str, Any]:
        """The pipeline keyword arguments for the first step."""
        return dict(self.segments[0].inputs)

    def tensor_inputs(self, pipe: Any) -> list[str]:
        """What the step callback must be given to swap embeddings in `pipe`."""
        return [name for name in ("prompt_embeds", "add_text_embeds") if name in pipe._callback_tensor_inputs]

    def swap(self, pipe: Any, index: int, tensors: dict[str, Any]) -> dict[str, Any]:
        """`tensors` after step `index`, with the next step's embeddings where they change there."""
        import torch

        now, then = self._segment(index), self._segment(index + 1)
        if now is then:
            return tensors
        inputs, guided = then.inputs, pipe.do_classifier_free_guidance

        def joined(negative: str, positive: str, like: Any) -> Any:
            value = inputs[positive]
            if guided:  # the pipeline runs the negative and the positive as one batch, negative first
                value = torch.cat([inputs[negative], value])
            return value.to(like.device, like.dtype)

        tensors["prompt_embeds"] = joined("negative_prompt_embeds", "prompt_embeds", tensors["prompt_embeds"])
        if "add_text_embeds" in tensors and "pooled_prompt_embeds" in inputs:
            tensors["add_text_embeds"] = joined(*POOLED[::-1], tensors["add_text_embeds"])
        return tensors

    def _segment(self, index: int) -> _Segment:
        return next((segment for segment in self.segments if index <= segment.last), self.segments[-1])


def scheduled_prompts(pipe: Any, family: str, prompt: str, negative_prompt: str, steps: int, guidance: float,
                      first_pass_steps: int | None = None) -> ScheduledPrompts | None:
    """The schedule of a prompt (or negative prompt) that edits itself over `steps` steps, its texts encoded
    (weighted ones through compel, plain ones with the pipeline's own encoder: a schedule that never switches within
    these steps is its one text, as the plain prompt would be); None when neither edits itself."""
    if not (is_scheduled(prompt) or is_scheduled(negative_prompt or "")):
        return None
    positive = step_ranges(prompt, steps, first_pass_steps)
    negative = step_ranges(negative_prompt or "", steps, first_pass_steps)
    segments: list[_Segment] = []
    encoded: dict[tuple[str, str], dict[str, Any]] = {}
    for last in sorted({entry.last for entry in (*positive, *negative)}):
        texts = (_text_until(positive, last), _text_until(negative, last))
        if texts not in encoded:
            encoded[texts] = _encode(pipe, family, *texts, guidance)
        segments.append(_Segment(last, encoded[texts]))
    logger.debug("prompt schedule over %d steps: %d runs, %d encodings", steps, len(segments), len(encoded))
    return ScheduledPrompts(segments)


def _text_until(ranges: list[StepRange], last: int) -> str:
    return next(entry.text for entry in ranges if last <= entry.last)


def _encode(pipe: Any, family: str, prompt: str, negative_prompt: str, guidance: float) -> dict[str, Any]:
    if is_weighted(prompt, negative_prompt):
        return weighted_inputs(pipe, family, prompt, negative_prompt)
    device, guided = pipe._execution_device, guidance > 1.0
    if family == "sdxl":
        embeds = pipe.encode_prompt(prompt=prompt, device=device, num_images_per_prompt=1,
                                    do_classifier_free_guidance=guided, negative_prompt=negative_prompt or None)
        names = ("prompt_embeds", "negative_prompt_embeds", *POOLED)
    else:
        embeds = pipe.encode_prompt(prompt, device, 1, guided, negative_prompt or None)
        names = ("prompt_embeds", "negative_prompt_embeds")
    return {name: value for name, value in zip(names, embeds) if value is not None}
