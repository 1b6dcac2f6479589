"""A1111's extra-network tags in a prompt: `<lora:name>` and `<lora:name:weight>` (the weight defaults to 1).

The tags are taken out of the text the encoder sees and come back as (name, weight) pairs; everything else
in the prompt is left as written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

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
