"""A1111's prompt syntax: extra-network tags and attention weights.

`<lora:name>` and `<lora:name:weight>` (the weight defaults to 1) are taken out of the text the encoder sees
and come back as (name, weight) pairs. Attention, `(word)` (x1.1), `[word]` (/1.1), `(word:1.3)` and `\(`
for a literal bracket, is read as A1111 reads it (its `parse_prompt_attention`) and handed on in compel's
syntax, so a prompt weighs the same locally as on ComfyUI, which reads A1111's syntax itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

LORA_TAG = re.compile(r"<\s*(?:lora|lyco)\s*:\s*([^:>]+?)\s*(?::\s*([^:>]*?)\s*)?(?::[^>]*)?>", re.IGNORECASE)
DEFAULT_WEIGHT = 1.0


class BadTag(ValueError):
    """A tag whose weight is not a number; `str(err)` is the sentence."""


@dataclass(frozen=True)
class LoraUse:
    """One LoRA asked for: its name as listed (file name without extension) and its weight."""

    name: str
    weight: float = DEFAULT_WEIGHT

    def tag(self) -> str:
        """The A1111 tag for it, as A1111 writes it into a saved prompt."""
        return f"<lora:{self.name}:{self.weight:g}>"


def take_lora_tags(prompt: str) -> tuple[str, list[LoraUse]]:
    """The prompt without its `<lora:...>` tags (spaces tidied), and the LoRAs the tags ask for, in order."""
    found: list[LoraUse] = []

    def take(match: re.Match[str]) -> str:
        name, weight = match.group(1).strip(), (match.group(2) or "").strip()
        try:
            found.append(LoraUse(name, float(weight) if weight else DEFAULT_WEIGHT))
        except ValueError as err:
            raise BadTag(f"The tag {match.group(0)} has a weight that is not a number; write it as "
                         f"<lora:{name}:0.8>.") from err
        return " "
    text = LORA_TAG.sub(take, prompt or "")
    text = re.sub(r"\s*,\s*(,\s*)+", ", ", text)  # ", , " left where a tag stood between commas
    text = re.sub(r"[ \t]+,", ",", text)
    text = re.sub(r"[ \t]{2,}", " ", text).strip(" \t,")
    return text, found


def with_lora_tags(prompt: str, loras: list[dict] | tuple = ()) -> str:
    """`prompt` with a `<lora:name:weight>` tag per LoRA ({"name", "weight"} dicts or LoraUse), as A1111
    writes a prompt into an image's parameters."""
    uses = [use if isinstance(use, LoraUse) else LoraUse(str(use["name"]), float(use["weight"])) for use in loras]
    return " ".join([prompt.strip(), *(use.tag() for use in uses)]).strip()


ROUND, SQUARE = 1.1, 1 / 1.1
# A1111's parse_prompt_attention pattern, with a weight that is a number ("(cat:1.2.3)" is text, not an error)
_ATTENTION = re.compile(r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)|\)|]|[^\\()\[\]:]+|:")
BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)  # A1111: what follows starts a new 75-token chunk
BREAK_MARK = -1.0  # a fragment weight that marks a BREAK, as in A1111's parse_prompt_attention


def attention_fragments(text: str) -> list[tuple[str, float]]:
    """(text, weight) fragments of an A1111 prompt, as A1111's `parse_prompt_attention` makes them (unclosed
    brackets count as closed at the end; neighbours with one weight are merged)."""
    out: list[list] = []
    round_starts: list[int] = []
    square_starts: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for fragment in out[start:]:
            if fragment[1] != BREAK_MARK:  # a BREAK inside brackets still breaks
                fragment[1] *= factor

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) > 1:
            out.append([token[1:], 1.0])
        elif token == "(":
            round_starts.append(len(out))
        elif token == "[":
            square_starts.append(len(out))
        elif weight is not None and round_starts:
            multiply(round_starts.pop(), float(weight))
        elif token == ")" and round_starts:
            multiply(round_starts.pop(), ROUND)
        elif token == "]" and square_starts:
            multiply(square_starts.pop(), SQUARE)
        else:
            for number, part in enumerate(BREAK.split(token)):
                if number:
                    out.append(["BREAK", BREAK_MARK])
                out.append([part, 1.0])
    for start in round_starts:
        multiply(start, ROUND)
    for start in square_starts:
        multiply(start, SQUARE)
    merged: list[tuple[str, float]] = []
    for fragment, weight in out:
        if merged and merged[-1][1] == weight and weight != BREAK_MARK:
            merged[-1] = (merged[-1][0] + fragment, weight)
        elif fragment or weight == BREAK_MARK:
            merged.append((fragment, weight))
    return merged


def attention_chunks(text: str) -> list[list[tuple[str, float]]]:
    """The (text, weight) fragments of each part of the prompt between A1111's BREAK keywords (brackets may span
    one: their weight applies on both sides); empty parts are left out, one part at least."""
    chunks: list[list[tuple[str, float]]] = [[]]
    for fragment, weight in attention_fragments(text):
        if weight == BREAK_MARK:
            chunks.append([])
        else:
            chunks[-1].append((fragment, weight))
    kept = [chunk for chunk in chunks if "".join(fragment for fragment, _ in chunk).strip()]
    return kept or [[("", 1.0)]]


def has_break(text: str) -> bool:
    """True when the prompt uses A1111's BREAK."""
    return bool(BREAK.search(text or ""))


def has_attention(text: str) -> bool:
    """True when the prompt uses attention syntax at all (brackets, weights, escapes, BREAK): plain prompts keep the
    pipeline's own encoding."""
    fragments = attention_fragments(text)
    return any(weight != 1.0 for _, weight in fragments) or "".join(f for f, _ in fragments) != text


def to_compel(text: str) -> str:
    """An A1111 prompt in compel's syntax: `(text)weight` per weighted fragment, brackets escaped, and a
    word-final + or - (compel's own weighting) kept as plain text. Parts between BREAKs become a compel
    conjunction, `("part one", "part two").and()`, which encodes each in its own chunks, as A1111 does."""
    def plain(fragment: str) -> str:
        fragment = re.sub(r"([()\[\]\\])", r"\\\1", fragment)
        return re.sub(r"(?<=\w)([+-]+)(?=\s|$|[,.;])", r" \1", fragment)

    def written(chunk: list[tuple[str, float]]) -> str:
        parts = []
        for fragment, weight in chunk:
            # compel encodes each fragment on its own, so a space around a weighted group changes no token
            parts.append(plain(fragment) if weight == 1.0 else f" ({plain(fragment).strip()}){weight:.4g} ")
        return re.sub(r" {2,}", " ", "".join(parts)).strip()
    chunks = [written(chunk) for chunk in attention_chunks(text)]
    if len(chunks) == 1:
        return chunks[0]
    quoted = ", ".join('"' + chunk.replace('"', '\\"') + '"' for chunk in chunks)
    return f"({quoted}).and()"


def for_comfyui(text: str, embeddings: Iterable[str] = ()) -> str:
    """An A1111 prompt as ComfyUI reads it: an embedding's bare name (A1111's trigger) becomes
    `embedding:name`, and each weighted fragment is written out as `(text:weight)` (ComfyUI understands that
    and `\\(`, not `[text]`); a BREAK stays as written (`comfyui_chunks` splits there for a CLIPTextEncode each). A
    prompt with neither is sent exactly as written."""
    text = _with_embeddings(text, embeddings)
    if not has_attention(text):
        return text
    return " BREAK ".join(_comfyui_written(fragments) for fragments in attention_chunks(text))


def comfyui_chunks(text: str, embeddings: Iterable[str] = ()) -> tuple[str, ...]:
    """The prompt in ComfyUI's syntax, one text per part between A1111's BREAKs (each its own CLIPTextEncode,
    joined by ConditioningConcat)."""
    if not has_break(text):
        return (for_comfyui(text, embeddings),)
    return tuple(_comfyui_written(fragments) for fragments in attention_chunks(_with_embeddings(text, embeddings)))


def embedding_names(names: Iterable[str], not_after: str = "") -> re.Pattern | None:
    """A pattern finding any of `names` as a whole word of a prompt, as A1111 finds an embedding's trigger: not inside
    a longer word or hyphenated name (nor right after a character of `not_after`), the longest name first; None for
    no names."""
    ordered = sorted(set(names), key=len, reverse=True)
    if not ordered:
        return None
    return re.compile(rf"(?<![\w{re.escape(not_after)}-])(?:{'|'.join(map(re.escape, ordered))})(?![\w-])")


def _with_embeddings(text: str, embeddings: Iterable[str]) -> str:
    """`text` with each embedding's bare name written as ComfyUI's `embedding:name`."""
    pattern = embedding_names(embeddings, not_after=":")  # one written already stays as it is
    return pattern.sub(lambda found: f"embedding:{found.group(0)}", text) if pattern else text


def _comfyui_written(fragments: list[tuple[str, float]]) -> str:
    parts = []
    for fragment, weight in fragments:
        escaped = re.sub(r"([()\\])", r"\\\1", fragment)
        parts.append(escaped if weight == 1.0 else f"({escaped}:{weight:.4g})")
    return "".join(parts)
