"""A1111's prompt editing on the local backend: each run of steps (engine/prompt_schedule.py) gets its own prompt
embeddings, encoded once before the first step and handed to the pipeline by its step callback (diffusers lets a
callback replace `prompt_embeds` for the steps that follow; SDXL's pooled `add_text_embeds` is overwritten in place,
since not every SDXL pipeline takes it back from the callback: the ControlNet inpaint one keeps its own)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..prompt_schedule import is_scheduled, step_ranges, text_at_step
from ..prompt_syntax import BREAK
from .prompt_weights import SDXL_EMBEDS, is_weighted, plain_inputs, weighted_inputs

logger = logging.getLogger(__name__)

POOLED = SDXL_EMBEDS[2:]  # SDXL's pooled embeddings, beside the token embeddings


@dataclass(frozen=True)
class _Segment:
    last: int  # the last 0-based step with these embeddings
    inputs: dict[str, Any]  # prompt_embeds, negative_prompt_embeds (and SDXL's pooled ones)


class ScheduledPrompts:
    """The embeddings of each run of steps of one image, and the callback work that swaps them in."""

    def __init__(self, segments: list[_Segment], plain: list[tuple[str, str]]):
        self.segments = segments
        self.plain = plain  # the (prompt, negative) texts encoded by the pipeline's own encoder (cut at its limit)

    def first_inputs(self) -> dict[str, Any]:
        """The pipeline keyword arguments for the first step; the pooled embeddings are copies, so that `swap`'s
        in-place write can never reach the stored ones (a text met again later in the schedule)."""
        return {name: value.clone() if name in POOLED and value is not None else value
                for name, value in self.segments[0].inputs.items()}

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
            tensors["add_text_embeds"].copy_(joined(*POOLED[::-1], tensors["add_text_embeds"]))
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
        texts = (text_at_step(positive, last), text_at_step(negative, last))
        if texts not in encoded:
            encoded[texts] = _encode(pipe, family, *texts, guidance)
        segments.append(_Segment(last, encoded[texts]))
    logger.debug("prompt schedule over %d steps: %d runs, %d encodings", steps, len(segments), len(encoded))
    return ScheduledPrompts(segments, [texts for texts in encoded if not is_weighted(*texts)])


def _encode(pipe: Any, family: str, prompt: str, negative_prompt: str, guidance: float) -> dict[str, Any]:
    if is_weighted(prompt, negative_prompt):
        return weighted_inputs(pipe, family, prompt, negative_prompt)
    return plain_inputs(pipe, family, prompt, negative_prompt, guidance > 1.0)


def settled(text: str, steps: int) -> str:
    """The text a prompt ends as: its edits at the last of `steps` steps, its BREAKs as commas (for what cannot follow
    a schedule or chunks, such as a seed-travel in-between's lerp of two prompts' embeddings)."""
    text = step_ranges(text, steps)[-1].text if is_scheduled(text) else text
    return BREAK.sub(", ", text)
