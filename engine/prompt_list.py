"""A1111's "Prompts from file or textbox": one job that makes an image (or a batch) per line of a text.

A line is a prompt, or A1111's command-line form of one request: `--prompt "a red fox" --negative_prompt "blurry"
--steps 20 --cfg_scale 7 --seed 5 --width 512 --height 512 --sampler_name "DPM++ 2M Karras" --n_iter 2`. A line's
prompt goes at the start or at the end of the form's prompt (joined by a space, as A1111 joins them), and the options
it names replace the form's values for that line only. Seeds as A1111's script: a random seed (-1) draws one for each
line, or one for all lines ("use same random seed"); "iterate seed" starts each line past the seeds the lines before
it used. Every line is read and checked before any work; a problem is a sentence naming its line.
"""
from __future__ import annotations

import random
import shlex
from dataclasses import dataclass
from typing import Any

from . import params as P
from .errors import InvalidRequest

START, END = "start", "end"  # where a line's prompt goes in the form's prompt
POSITIONS = (START, END)

# A1111's option names (its scripts/prompts_from_file.py), as this app's parameter names; the value's kind
OPTIONS: dict[str, tuple[str, str]] = {
    "prompt": ("prompt", "text"), "negative_prompt": ("negative_prompt", "text"), "seed": ("seed", "int"),
    "subseed": (P.VARIATION_SEED.name, "int"), "subseed_strength": (P.VARIATION_STRENGTH.name, "float"),
    "sampler_name": ("sampler", "text"), "n_iter": (P.BATCH_COUNT.name, "int"), "steps": (P.STEPS.name, "int"),
    "cfg_scale": (P.GUIDANCE.name, "float"), "width": (P.WIDTH.name, "int"), "height": (P.HEIGHT.name, "int"),
    "sd_model": ("model", "text"), "styles": ("style", "list"), "tiling": (P.TILING.name, "bool"),
}


@dataclass(frozen=True)
class PromptLine:
    """One line of the list: its number (from 1), its text, and the arguments it gives its request."""

    number: int
    text: str
    arguments: dict[str, Any]

    @property
    def label(self) -> str:
        """The line's prompt as the progress line shows it (shortened)."""
        prompt = " ".join(str(self.arguments.get("prompt") or "").split())
        return prompt if len(prompt) <= 60 else prompt[:59].rstrip() + "…"


def read_lines(text: Any, prompt: str, negative_prompt: str, seed: Any, *, position: str = END,
               iterate_seed: bool = False, same_seed: bool = False, batch_count: Any = 1, limit: int = 0,
               rng: random.Random | None = None) -> list[PromptLine]:
    """The lines of `text` as requests' arguments (the form's `prompt`, `negative_prompt` and `seed` folded in as
    described above; with `iterate_seed` each line starts past the seeds of the images of the lines before it, each
    line making `batch_count` or its own --n_iter); InvalidRequest naming the line of every problem it can see before
    the requests are checked."""
    if not isinstance(text, str):
        raise InvalidRequest("The prompts must be text, one prompt per line.")
    if position not in POSITIONS:
        raise InvalidRequest(f"Where the prompts go must be one of {', '.join(POSITIONS)} (got {position!r}).")
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise InvalidRequest("The list of prompts is empty: write one prompt per line.")
    if limit and len(lines) > limit:
        raise InvalidRequest(f"The list has {len(lines)} prompts; the limit is {limit} (GATOR_MAX_PROMPT_LINES).")
    drawn = P.concrete_seed(seed, rng) if same_seed or iterate_seed else None
    out, problems, made = [], [], 0  # made: the images of the lines before, for iterate_seed
    for number, line in lines:
        try:
            given = _options(line) if line.startswith("--") else {"prompt": line}
        except ValueError as err:
            problems.append(f"Line {number}: {err}")
            continue
        asked = str(given.pop("prompt", "") or "")
        joined = " ".join(part for part in ((asked, prompt) if position == START else (prompt, asked)) if part)
        arguments = {"prompt": joined, "negative_prompt": negative_prompt, **given}
        if "seed" not in given:
            arguments["seed"] = seed if drawn is None else P.seed_after(drawn, made if iterate_seed else 0)
        count = given.get(P.BATCH_COUNT.name, batch_count)
        made += count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1
        out.append(PromptLine(number, line, arguments))
    if problems:
        raise InvalidRequest(" ".join(problems))
    return out


def _options(line: str) -> dict[str, Any]:
    """A1111's `--name value` line as arguments; ValueError with the end of a sentence for one it cannot read."""
    try:
        words = shlex.split(line)
    except ValueError as err:
        raise ValueError(f"its quotes do not pair up ({err}).") from None
    out: dict[str, Any] = {}
    at = 0
    while at < len(words):
        word = words[at]
        name = word[2:].replace("-", "_") if word.startswith("--") else None
        if name not in OPTIONS:
            known = ", ".join(f"--{option}" for option in OPTIONS)
            raise ValueError(f"{word!r} is not an option this app reads (options: {known}).")
        ours, kind = OPTIONS[name]
        if at + 1 >= len(words):
            raise ValueError(f"--{name} has no value.")
        out[ours] = _value(name, kind, words[at + 1])
        at += 2
    return out


def _value(name: str, kind: str, text: str) -> Any:
    """`text` as an option's value of `kind`; ValueError naming the option for one it is not."""
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"--{name} must be a {'whole number' if kind == 'int' else 'number'} "
                         f"(got {text!r}).") from None
    if kind == "bool":
        return text.strip().lower() in ("true", "1", "yes")
    if kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text
