"""Textual-inversion embeddings on the local backend, as A1111 uses them: an embedding file's name written in
the prompt (or the negative prompt) is its trigger. Each file is loaded into the loaded pipeline once
(diffusers' `load_textual_inversion`; an SDXL file's clip_l and clip_g halves into both text encoders)."""
from __future__ import annotations

import logging
from typing import Any

from ..errors import first_line
from ..model_files import ModelFile, UnreadableModel, read_header
from ..prompt_syntax import embedding_names

logger = logging.getLogger(__name__)


def named_in(files: list[ModelFile], *texts: str) -> list[ModelFile]:
    """The embedding files whose name appears as a word in any of `texts`."""
    joined = "\n".join(t for t in texts if t)
    return [f for f in files if embedding_names([f.name]).search(joined)]


def vector_count(entry: ModelFile) -> int:
    """How many token places the embedding takes in a prompt (its vectors), read from the file's header; 1 when
    the header does not say."""
    try:
        table = read_header(entry.path)
    except UnreadableModel:
        return 1
    for key in ("emb_params", "clip_l", *table):  # A1111's, SDXL's first half, else the first tensor
        shape = (table.get(key) or {}).get("shape") or []
        if shape:
            return max(int(shape[0]), 1) if len(shape) > 1 else 1
    return 1


class Embeddings:
    """The embeddings loaded into one pipeline object (a new pipeline starts with none)."""

    def __init__(self) -> None:
        self._pipe_id: int | None = None
        self._loaded: dict[str, tuple[str, int, float]] = {}  # token -> the file stamp it came from
        self._tokens: dict[str, list[str]] = {}  # token -> every token its vectors were added under (name, name_1...)

    def apply(self, pipe: Any, files: list[ModelFile], family: str, model_label: str) -> list[str]:
        """Load every file in `files` not loaded yet; returns a warning per one that cannot be used."""
        if id(pipe) != self._pipe_id:
            self._pipe_id, self._loaded, self._tokens = id(pipe), {}, {}
        warnings = []
        for entry in files:
            if self._loaded.get(entry.name) == entry.stamp:
                continue
            if entry.name in self._loaded:  # the file changed since it was loaded: its old vectors go first
                self._unload(pipe, self._tokens.pop(entry.name, [entry.name]))
                del self._loaded[entry.name]
            if entry.family and family and entry.family != family:
                warnings.append(f"The embedding {entry.name} is for another model family; {model_label} read "
                                "its name as a plain word.")
                continue
            added = set(pipe.tokenizer.get_added_vocab())
            try:
                self._load(pipe, entry)
            except Exception as err:
                logger.info("Embedding %s did not load on %s: %s", entry.path.name, model_label, err)
                warnings.append(f"The embedding {entry.name} does not fit {model_label} ({first_line(err, 200)}); "
                                "its name was read as a plain word.")
                continue
            self._loaded[entry.name] = entry.stamp
            self._tokens[entry.name] = sorted(set(pipe.tokenizer.get_added_vocab()) - added)
        return warnings

    @staticmethod
    def _unload(pipe: Any, tokens: list[str]) -> None:
        """Take an embedding's `tokens` (those its load added) out of every text encoder of `pipe`."""
        for tokenizer, encoder in ((getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None)),
                                   (getattr(pipe, "tokenizer_2", None), getattr(pipe, "text_encoder_2", None))):
            if tokenizer is None or encoder is None:
                continue
            present = [token for token in tokens if token in tokenizer.get_added_vocab()]
            if present:
                pipe.unload_textual_inversion(tokens=present, tokenizer=tokenizer, text_encoder=encoder)
        logger.info("Unloaded embedding %s (its file changed)", tokens[0] if tokens else "?")

    @staticmethod
    def _load(pipe: Any, entry: ModelFile) -> None:
        from safetensors.torch import load_file

        if entry.family == "sdxl":  # one file, two halves: one per text encoder
            halves = load_file(str(entry.path))
            pipe.load_textual_inversion(halves["clip_l"], token=entry.name, text_encoder=pipe.text_encoder,
                                        tokenizer=pipe.tokenizer)
            pipe.load_textual_inversion(halves["clip_g"], token=entry.name, text_encoder=pipe.text_encoder_2,
                                        tokenizer=pipe.tokenizer_2)
        else:
            pipe.load_textual_inversion(str(entry.path), token=entry.name)
        logger.info("Loaded embedding %s", entry.path.name)
