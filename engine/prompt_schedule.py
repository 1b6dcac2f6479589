"""A1111's prompt editing: `[from:to:when]`, `[to:when]`, `[from::when]` and alternation `[a|b]`.

A prompt becomes a schedule, the text each sampling step sees, read with A1111's own grammar (lark) and its
current rule for `when`: a whole number is a step, a number with a point a share of the steps (`[cat:dog:0.5]`
switches halfway), and in the second pass of a hires fix a whole number counts on from the first pass's steps
and a share above 1 reaches into the second pass (`[cat:dog:1.5]` switches halfway through it). A step at or
before `when` sees `from`, a later one `to`; `[a|b]` changes word every step. Attention syntax (`(word:1.2)`,
`[word]`) is left in each step's text for the encoders. A prompt the grammar cannot read is used as written.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import lark

FIRST_PASS_STEPS = "first_pass_steps"  # a request's extra: a hires fix's first-pass steps, set on its second pass
GRAMMAR = r"""
!start: (prompt | /[][():]/+)*
prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
!emphasized: "(" prompt ")"
        | "(" prompt ":" prompt ")"
        | "[" prompt "]"
scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
alternate: "[" prompt ("|" [prompt])+ "]"
WHITESPACE: /\s+/
plain: /([^\\\[\]():|]|\\.)+/
%import common.SIGNED_NUMBER -> NUMBER
"""


@dataclass(frozen=True)
class StepRange:
    """The text the steps `first` to `last` (0-based, both included) see."""

    first: int
    last: int
    text: str


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    return lark.Lark(GRAMMAR)


@lru_cache(maxsize=256)
def _tree(prompt: str) -> lark.Tree | None:
    try:
        return _parser().parse(prompt)
    except lark.exceptions.LarkError:
        return None


def is_scheduled(prompt: str) -> bool:
    """True when the prompt edits itself during sampling (a `[from:to:when]` or an `[a|b]` A1111 reads)."""
    if not prompt or "[" not in prompt:
        return False
    tree = _tree(prompt)
    return tree is not None and any(True for kind in ("scheduled", "alternate") for _ in tree.find_data(kind))


def _switch_step(number: str, steps: int, first_pass_steps: int | None) -> int:
    """A1111's step for a `when`: a whole number is a step, one with a point a share of the steps (in a hires fix's
    second pass both count from the start of the first pass)."""
    value = float(number)
    if "." in number:
        value = (value - (1.0 if first_pass_steps is not None else 0.0)) * steps
    else:
        value -= first_pass_steps or 0
    return int(max(-1.0, min(float(steps), value)))  # (a `when` of 1e999 is past the last step, not an overflow)


def _text_at(tree: lark.Tree, step: int, steps: int, first_pass_steps: int | None) -> str:
    """The prompt's text at `step` (1-based, as A1111 counts the schedule)."""
    def walk(node: Any) -> str:
        if isinstance(node, lark.Token):
            return str(node)
        if node is None:
            return ""
        if node.data == "scheduled":
            before, after, _space, number, _space_after = node.children
            switch = _switch_step(str(number), steps, first_pass_steps)
            return walk(before) if step <= switch else walk(after)
        if node.data == "alternate":
            options = node.children
            return walk(options[(step - 1) % len(options)])
        return "".join(walk(child) for child in node.children)
    return walk(tree)


def _switch_steps(tree: lark.Tree, steps: int, first_pass_steps: int | None) -> list[int]:
    found = {steps}
    for node in tree.find_data("scheduled"):
        switch = _switch_step(str(node.children[-2]), steps, first_pass_steps)
        if switch >= 1:
            found.add(switch)
    if any(tree.find_data("alternate")):
        found.update(range(1, steps + 1))
    return sorted(found)


def step_ranges(prompt: str, steps: int, first_pass_steps: int | None = None) -> list[StepRange]:
    """The prompt's text for each run of steps of a `steps`-step pass, in order, neighbours with the same text
    merged: one range of the whole prompt when it edits nothing. `first_pass_steps` marks a hires fix's second
    pass. As in A1111 the schedule's entry for step t serves the 0-based steps up to t."""
    steps = max(int(steps), 1)
    tree = _tree(prompt) if is_scheduled(prompt) else None
    if tree is None:
        return [StepRange(0, steps - 1, prompt)]
    ranges: list[StepRange] = []
    first = 0
    for end in _switch_steps(tree, steps, first_pass_steps):
        last = min(end, steps - 1)
        if last < first:
            continue
        text = _text_at(tree, end, steps, first_pass_steps)
        if ranges and ranges[-1].text == text:
            ranges[-1] = StepRange(ranges[-1].first, last, text)
        else:
            ranges.append(StepRange(first, last, text))
        first = last + 1
    return ranges


def text_at_step(ranges: list[StepRange], index: int) -> str:
    """The text step `index` (0-based) sees."""
    for entry in ranges:
        if index <= entry.last:
            return entry.text
    return ranges[-1].text
