"""Weighted prompts on the local backend: A1111's `(word:1.3)` / `[word]` through compel (its SD 1.5 and SDXL
wrappers), as prompt embeddings for the pipeline call. Prompts without weights keep the pipeline's own
encoding, so their pixels do not change."""
from __future__ import annotations

import logging
from typing import Any

from ..prompt_syntax import has_attention, to_compel

logger = logging.getLogger(__name__)


def is_weighted(prompt: str, negative_prompt: str) -> bool:
    return has_attention(prompt or "") or has_attention(negative_prompt or "")


def weighted_inputs(pipe: Any, family: str, prompt: str, negative_prompt: str) -> dict[str, Any]:
    """Pipeline keyword arguments with the prompts as compel's embeddings (long prompts are encoded in
    75-token chunks, as A1111 does, instead of being cut)."""
    from compel import CompelForSD, CompelForSDXL, DiffusersTextualInversionManager

    embeddings = DiffusersTextualInversionManager(pipe)  # textual-inversion tokens keep their vectors
    device = str(pipe._execution_device)
    if family == "sdxl":
        conditioning = CompelForSDXL(pipe, textual_inversion_manager=embeddings, device=device)(
            to_compel(prompt), negative_prompt=to_compel(negative_prompt or ""))
        return {"prompt_embeds": conditioning.embeds, "pooled_prompt_embeds": conditioning.pooled_embeds,
                "negative_prompt_embeds": conditioning.negative_embeds,
                "negative_pooled_prompt_embeds": conditioning.negative_pooled_embeds}
    conditioning = CompelForSD(pipe, textual_inversion_manager=embeddings, device=device)(
        to_compel(prompt), negative_prompt=to_compel(negative_prompt or ""))
    return {"prompt_embeds": conditioning.embeds, "negative_prompt_embeds": conditioning.negative_embeds}


SDXL_EMBEDS = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
SD_EMBEDS = ("prompt_embeds", "negative_prompt_embeds")


def plain_inputs(pipe: Any, family: str, prompt: str, negative_prompt: str, guided: bool) -> dict[str, Any]:
    """Pipeline keyword arguments with the prompts encoded by the pipeline's own encoder (cut at its token limit),
    as the pipeline would encode them itself; `guided`: classifier-free guidance (the negative is encoded too)."""
    device = pipe._execution_device
    if family == "sdxl":
        embeds = pipe.encode_prompt(prompt=prompt, device=device, num_images_per_prompt=1,
                                    do_classifier_free_guidance=guided, negative_prompt=negative_prompt or None)
        names = SDXL_EMBEDS
    else:
        embeds = pipe.encode_prompt(prompt, device, 1, guided, negative_prompt or None)
        names = SD_EMBEDS
    return {name: value for name, value in zip(names, embeds) if value is not None}
