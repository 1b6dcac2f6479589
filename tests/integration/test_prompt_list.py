"""A1111's "Prompts from file or textbox" through the manager: an image per line (a batch per line with --n_iter),
a line's A1111 options for that line only, the form's prompt joined at the start or end, A1111's seed options, every
line checked before any work, a failing line ending the list with its number, Stop and Skip."""
from __future__ import annotations

import asyncio
import random

import pytest

from engine.errors import InvalidRequest
from engine.events import Done, Failed, ListLine, Progress, Skipped
from engine.outputs import read_parameters
from engine.prompt_list import read_lines

SMALL = dict(width=64, height=64, num_inference_steps=2)


def test_lines_are_prompts_or_a1111_options_joined_with_the_forms_prompt():
    text = ('a red fox\n\n   \n--prompt "a blue boat, at dawn" --negative_prompt fog --steps 7 --cfg_scale 3.5 '
            '--sampler_name "DPM++ 2M Karras" --n_iter 2 --width 128\na lighthouse')
    lines = read_lines(text, "oil painting", "blurry", 9, position="start")
    assert [line.number for line in lines] == [1, 4, 5]  # numbered as written: the empty lines are skipped
    assert [line.arguments["prompt"] for line in lines] == ["a red fox oil painting",
                                                            "a blue boat, at dawn oil painting",
                                                            "a lighthouse oil painting"]
    assert lines[1].arguments == {"prompt": "a blue boat, at dawn oil painting", "negative_prompt": "fog",
                                  "num_inference_steps": 7, "guidance_scale": 3.5, "sampler": "DPM++ 2M Karras",
                                  "batch_count": 2, "width": 128, "seed": 9}
    assert read_lines("a fox", "oil painting", "", -1, position="end")[0].arguments["prompt"] == "oil painting a fox"
    assert read_lines("a fox", "", "", -1)[0].arguments["prompt"] == "a fox"


def test_a1111s_seed_options():
    rng = random.Random(4)
    assert [line.arguments["seed"] for line in read_lines("a\nb\nc", "", "", 7)] == [7, 7, 7]
    assert [line.arguments["seed"] for line in read_lines("a\nb\nc", "", "", 7, iterate_seed=True)] == [7, 8, 9]
    random_each = [line.arguments["seed"] for line in read_lines("a\nb", "", "", -1)]
    assert random_each == [-1, -1]  # each line draws its own when its request is checked
    same = [line.arguments["seed"] for line in read_lines("a\nb\nc", "", "", -1, same_seed=True, rng=rng)]
    assert len(set(same)) == 1 and same[0] >= 0
    stepping = [line.arguments["seed"] for line in read_lines("a\nb", "", "", -1, iterate_seed=True, rng=rng)]
    assert stepping[1] == stepping[0] + 1
    assert read_lines("--prompt a --seed 3\nb", "", "", 7, iterate_seed=True)[0].arguments["seed"] == 3
    batches = read_lines("a\nb\n--prompt c --n_iter 3\nd", "", "", 7, iterate_seed=True, batch_count=2)
    assert [line.arguments["seed"] for line in batches] == [7, 9, 11, 14]  # never a seed an earlier line used


@pytest.mark.parametrize("text, sentence", [
    ("", "The list of prompts is empty: write one prompt per line."),
    ("\n  \n", "The list of prompts is empty"),
    ("--prompt a --colour red", "Line 1: '--colour' is not an option this app reads (options: --prompt,"),
    ("a fox\n--prompt 'a fox --steps 2", "Line 2: its quotes do not pair up"),
    ("--steps many", "Line 1: --steps must be a whole number (got 'many')."),
    ("--prompt a --steps", "Line 1: --steps has no value."),
    (5, "The prompts must be text, one prompt per line."),
])
def test_what_cannot_be_read_is_a_sentence_naming_its_line(text, sentence):
    with pytest.raises(InvalidRequest) as err:
        read_lines(text, "", "", -1)
    assert sentence in str(err.value)
    with pytest.raises(InvalidRequest, match="The list has 3 prompts; the limit is 2"):
        read_lines("a\nb\nc", "", "", -1, limit=2)


async def test_an_image_per_line_each_with_its_own_options(manager):
    text = "a red fox\n--prompt \"a blue boat\" --steps 3 --n_iter 2 --seed 40\n\na lighthouse"  # prompts 1 to 3
    events = [e async for e in manager.stream_prompt_list(text, "oil painting", seed=7, **SMALL)]
    lines = [e for e in events if isinstance(e, ListLine)]
    assert [(e.number, e.total, e.label) for e in lines] == [
        (1, 3, "oil painting a red fox"), (2, 3, "oil painting a blue boat"), (3, 3, "oil painting a lighthouse")]
    done = [e.result for e in events if isinstance(e, Done)]
    assert [(r.prompt, r.seed, r.num_inference_steps) for r in done] == [
        ("oil painting a red fox", 7, 2), ("oil painting a blue boat", 40, 3), ("oil painting a blue boat", 41, 3),
        ("oil painting a lighthouse", 7, 2)]
    assert [read_parameters(r.path)["prompt"] for r in done] == [r.prompt for r in done]  # each saved as itself
    drained = await manager.prompt_list("a\nb", "", seed=1, **SMALL)
    assert drained.status == "success" and [r.prompt for r in drained.batch] == ["a", "b"]


async def test_every_line_is_checked_before_any_work(manager):
    events = [e async for e in manager.stream_prompt_list("a fox\n--prompt a --steps 999\n--prompt b --width 100",
                                                          "", **SMALL)]
    assert len(events) == 1 and isinstance(events[0], Failed), events
    assert "Line 2: Steps must be a whole number from 1 to 150 (got 999)." in events[0].error
    assert not list(manager.output_dir.rglob("*.png"))
    unknown = [e async for e in manager.stream_prompt_list("a fox\n--prompt b --sd_model nowhere", "", **SMALL)]
    assert len(unknown) == 1 and unknown[0].error.startswith("Line 2: Unknown model 'nowhere'."), unknown
    assert not list(manager.output_dir.rglob("*.png"))
    bad_style = await manager.prompt_list("a fox", style="Nope", **SMALL)
    assert bad_style.status == "error" and bad_style.error.startswith("Line 1: Unknown style 'Nope'")


async def test_stop_ends_the_list_and_skip_goes_on_with_the_next_line(manager):
    skip, events = asyncio.Event(), []
    async for event in manager.stream_prompt_list("a fox\na boat", "", skip=skip, seed=3,
                                                  **{**SMALL, "num_inference_steps": 40}):
        events.append(event)
        if isinstance(event, Progress) and event.step == 2 and not any(isinstance(e, Skipped) for e in events):
            skip.set()
    assert [e.number for e in events if isinstance(e, Skipped)] == [1]
    assert [e.result.prompt for e in events if isinstance(e, Done)] == ["a boat"]
    cancel, events = asyncio.Event(), []
    async for event in manager.stream_prompt_list("a fox\na boat", "", cancel=cancel, seed=3,
                                                  **{**SMALL, "num_inference_steps": 40}):
        events.append(event)
        if isinstance(event, Progress) and event.step == 2:
            cancel.set()
    assert isinstance(events[-1], Failed) and events[-1].error.startswith("Cancelled")
    assert [e.number for e in events if isinstance(e, ListLine)] == [1]
