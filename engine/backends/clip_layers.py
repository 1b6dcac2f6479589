"""A1111's Clip skip on a local pipeline: the text encoder stops `clip_skip - 1` layers before its end, so the
prompt's embedding is the output of an earlier layer (through the encoder's final layer norm, as A1111 takes it).
The layers are left out for the length of one generation, so every way a prompt is encoded (the pipeline's own,
compel's weighted prompts, seed travel) sees the same encoder."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import InvalidRequest


def _encoder(pipe: Any) -> Any:
    """The CLIP text encoder's stack of layers (None for a pipeline without one)."""
    text_encoder = getattr(pipe, "text_encoder", None)
    model = getattr(text_encoder, "text_model", text_encoder)  # transformers 4 wraps it; 5 does not
    return getattr(model, "encoder", None)


def encoder_layer_count(pipe: Any) -> int | None:
    """How many layers `pipe`'s text encoder has (None without one)."""
    encoder = _encoder(pipe)
    return len(encoder.layers) if encoder is not None else None


@contextmanager
def clip_skipped(pipe: Any, clip_skip: int) -> Iterator[None]:
    """`pipe`'s text encoder without its last `clip_skip - 1` layers inside the block (1: unchanged). Nothing that
    walks the pipe's modules (loading or switching LoRAs) may run inside it: the layers left out are not there."""
    encoder = _encoder(pipe)
    if clip_skip <= 1 or encoder is None:
        yield
        return
    layers = encoder.layers
    if clip_skip > len(layers):
        raise InvalidRequest(f"Clip skip {clip_skip} is more than this model's text encoder has layers "
                             f"({len(layers)}); use 1 to {len(layers)}.")
    encoder.layers = layers[:len(layers) - (clip_skip - 1)]
    try:
        yield
    finally:
        encoder.layers = layers
