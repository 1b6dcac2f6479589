"""A1111's prompt editing read as A1111 reads it (the cases of its prompt_parser doctests, as (end step, text) pairs
over 10 steps), its current rule for `when` (a point makes it a share) and the hires fix's second pass; and the shares
of ComfyUI's schedulers that the ranges on ComfyUI are cut at."""
from __future__ import annotations

import pytest

from engine.prompt_schedule import is_scheduled, step_ranges, text_at_step
from engine.timestep_ranges import step_shares, timestep_ranges


def schedule(prompt: str, steps: int = 10, first_pass_steps: int | None = None) -> list[list]:
    """As A1111's get_learned_conditioning_prompt_schedules writes it: [end step, text], the last entry at `steps`."""
    ranges = step_ranges(prompt, steps, first_pass_steps)
    return [[entry.last if entry is not ranges[-1] else steps, entry.text] for entry in ranges]


@pytest.mark.parametrize("prompt, expected", [
    ("test", [[10, "test"]]),
    ("a [b:3]", [[3, "a "], [10, "a b"]]),
    ("a [b: 3]", [[3, "a "], [10, "a b"]]),
    ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
    ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
    ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
    ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
    ("a [unbalanced", [[10, "a [unbalanced"]]),
    ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
    ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
    ("[a|(b:1.1)]", [[1, "a"], [2, "(b:1.1)"], [3, "a"], [4, "(b:1.1)"], [5, "a"], [6, "(b:1.1)"], [7, "a"],
                     [8, "(b:1.1)"], [9, "a"], [10, "(b:1.1)"]]),
    ("[fe|]male", [[1, "female"], [2, "male"], [3, "female"], [4, "male"], [5, "female"], [6, "male"], [7, "female"],
                   [8, "male"], [9, "female"], [10, "male"]]),
])
def test_a1111s_own_cases(prompt, expected):
    ranges = step_ranges(prompt, 10)
    for index in range(10):  # A1111: step `index` (0-based) takes the first entry whose end step is not before it
        assert text_at_step(ranges, index) == next(text for step, text in expected if index <= step), index
    if "|" not in prompt:  # (A1111 lists an alternation's entry per step; here runs of steps are merged)
        assert schedule(prompt) == expected


def test_a_point_makes_when_a_share_and_a_whole_number_a_step():
    assert schedule("[cat:dog:0.5]", 20) == [[10, "cat"], [20, "dog"]]
    assert schedule("[cat:dog:1.0]", 20) == [[20, "cat"]]  # a share of 1: never switches
    assert schedule("[cat:dog:1]", 20) == [[1, "cat"], [20, "dog"]]  # step 1
    assert schedule("[cat:dog:0]", 20) == [[20, "dog"]] and schedule("[cat:dog:40]", 20) == [[20, "cat"]]
    assert schedule("[cat:dog:1e999]", 20) == [[20, "cat"]] and schedule("[cat:dog:-1e999]", 20) == [[20, "dog"]]


def test_the_hires_pass_counts_on_from_the_first_pass():
    assert schedule("[cat:dog:25]", 10, first_pass_steps=20) == [[5, "cat"], [10, "dog"]]
    assert schedule("[cat:dog:1.5]", 10, first_pass_steps=20) == [[5, "cat"], [10, "dog"]]
    assert schedule("[cat:dog:0.5]", 10, first_pass_steps=20) == [[10, "dog"]]  # switched in the first pass
    assert schedule("[cat:dog:15]", 10, first_pass_steps=20) == [[10, "dog"]]


def test_attention_and_plain_brackets_are_not_edits():
    assert not is_scheduled("a (red:1.2) [fox]") and not is_scheduled("plain") and not is_scheduled("a | b")
    assert is_scheduled("[a|b]") and is_scheduled("x [a::3]") and is_scheduled("[to:0.2]")


@pytest.mark.parametrize("family, scheduler", [("sd15", "normal"), ("sd15", "karras"), ("sdxl", "exponential"),
                                               ("sd15", "sgm_uniform"), ("sd15", "simple"), ("flux", "simple"),
                                               ("flux", "normal"), ("sd15", "beta")])
def test_shares_rise_from_noise_and_ranges_tile_the_scale(family, scheduler):
    for steps, denoise in ((1, 1.0), (7, 1.0), (30, 1.0), (20, 0.6)):
        shares = step_shares(family, scheduler, steps, denoise)
        assert len(shares) == steps and all(a < b for a, b in zip(shares, shares[1:]))
        assert 0.0 <= shares[0] and shares[-1] <= 1.0
        assert (shares[0] == 0.0) == (denoise == 1.0)  # a partial denoise starts part-way
        parts = timestep_ranges(step_ranges("[a|b|c]", steps), shares)
        assert parts[0][1] == 0.0 and parts[-1][2] == 1.0
        assert all(left[2] == right[1] for left, right in zip(parts, parts[1:]))
        for index, share in enumerate(shares):  # each step's share lies in its own text's range only
            owners = [text for text, start, end in parts if start <= share <= end]
            assert owners == [text_at_step(step_ranges("[a|b|c]", steps), index)]


def test_comfyuis_normal_and_ddim_uniform_counts():
    assert step_shares("sd15", "normal", 10) == pytest.approx([i / 9 for i in range(10)], abs=1e-6)
    assert step_shares("flux", "simple", 4) == pytest.approx([0, 0.25, 0.5, 0.75])
    assert len(step_shares("sd15", "ddim_uniform", 30)) == 31  # 1000 // 30 = 33: ComfyUI runs 31 steps
    assert len(step_shares("sd15", "karras", 10, sampler="uni_pc")) == 10  # one more sigma made, one dropped
