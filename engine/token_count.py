"""A1111's prompt token counter: how many CLIP tokens a prompt takes, and the 75-token chunks that holds.

CLIP reads 75 tokens at a time (77 with its start and end marks); a longer prompt is cut into chunks of 75
encoded one by one. The count follows A1111's `tokenize_line`, so the number matches the one its counter shows:
LoRA tags are left out, attention brackets and weights are not tokens, BREAK closes a chunk (its unused places
count), a chunk that fills up moves the words after its last comma (up to 20 tokens back) into the next one,
and a textual-inversion embedding counts its vectors, never split across chunks. A prompt with prompt editing
counts its longest text; one that does not parse yet (half typed) counts as written.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Mapping

from .prompt_schedule import step_ranges
from .prompt_syntax import BREAK_MARK, LORA_TAG, attention_fragments, embedding_names

logger = logging.getLogger(__name__)

CHUNK_TOKENS = 75  # CLIP's 77 places less its start and end marks
COMMA_BACKTRACK = 20  # A1111's comma_padding_backtrack default


@dataclass(frozen=True)
class TokenCount:
    """A prompt's token count and the chunk capacity it fills (75, 150, ...)."""

    tokens: int
    limit: int

    @property
    def label(self) -> str:
        """As A1111 shows it: "12/75"."""
        return f"{self.tokens}/{self.limit}"


def chunk_limit(tokens: int) -> int:
    """The places of the chunks `tokens` tokens fill: a multiple of 75, one chunk at least."""
    return math.ceil(max(tokens, 1) / CHUNK_TOKENS) * CHUNK_TOKENS


class TokenCounter:
    """Counts prompts with CLIP's tokenizer (built once, on first use, from the vocabulary launch.sh installs)."""

    def __init__(self) -> None:
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        with self._lock:
            if self._tokenizer is None:
                from transformers import CLIPTokenizer

                from .clip_vocab import build_vocab

                vocab, merges = build_vocab()
                # no model_max_length: a long prompt is what is counted, not a mistake to warn about
                self._tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges])
                self._comma = self._tokenizer(",", add_special_tokens=False)["input_ids"][0]
        return self._tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]

    def count(self, prompt: str, steps: int, embeddings: Mapping[str, int] | None = None) -> TokenCount:
        """The count of `prompt` for a `steps`-step pass; `embeddings` maps an embedding's name to its vectors."""
        text = LORA_TAG.sub("", prompt or "")  # as A1111's extra_networks.parse_prompt: the tags out, nothing else
        try:
            texts = sorted({part.text for part in step_ranges(text, steps)})
        except Exception:  # a prompt being typed: "[a:b" is counted as it stands
            texts = [text]
        tokens = max(self._line_tokens(line, embeddings or {}) for line in texts)
        return TokenCount(tokens, chunk_limit(tokens))

    def _line_tokens(self, line: str, embeddings: Mapping[str, int]) -> int:
        """A1111's tokenize_line count for one text: every closed chunk counts 75, the last its tokens."""
        pieces = _pieces(attention_fragments(line), embeddings)
        texts = [piece for piece in pieces if isinstance(piece, str)]
        words = self._tokenize(texts) if texts else []
        counted = 0
        chunk: list[int] = []  # the current chunk's tokens (an embedding's vectors as -1)
        last_comma = -1

        def close() -> None:
            nonlocal counted, chunk, last_comma
            counted += CHUNK_TOKENS
            chunk, last_comma = [], -1

        def make_room(comma: bool) -> None:
            """Before a token (or an embedding) goes in: a full chunk moves its words after its last comma (up to
            COMMA_BACKTRACK back) to the next chunk, or else closes."""
            nonlocal chunk, last_comma
            if comma:
                last_comma = len(chunk)
            elif len(chunk) == CHUNK_TOKENS and last_comma != -1 and len(chunk) - last_comma <= COMMA_BACKTRACK:
                moved = chunk[last_comma + 1:]
                chunk = chunk[:last_comma + 1]
                close()
                chunk = moved
            if len(chunk) == CHUNK_TOKENS:
                close()

        word_lists = iter(words)
        for piece in pieces:
            if piece is None:  # BREAK
                close()
                continue
            if isinstance(piece, int):  # an embedding: kept whole in one chunk
                make_room(False)
                if len(chunk) + piece > CHUNK_TOKENS:
                    close()
                chunk.extend([-1] * piece)
                continue
            for token in next(word_lists):
                make_room(token == self._comma)
                chunk.append(token)
        return counted + len(chunk)


def _pieces(fragments: list[tuple[str, float]], embeddings: Mapping[str, int]) -> list[str | int | None]:
    """The fragments' text split around embedding names: text (str), an embedding's vectors (int), BREAK (None)."""
    pattern = embedding_names(embeddings)  # as the local backend finds them in a prompt
    pieces: list[str | int | None] = []
    for text, weight in fragments:
        if weight == BREAK_MARK:
            pieces.append(None)
            continue
        start = 0
        for found in pattern.finditer(text) if pattern else ():
            pieces.append(text[start:found.start()])
            pieces.append(embeddings[found.group(0)])
            start = found.end()
        pieces.append(text[start:])
    return pieces

