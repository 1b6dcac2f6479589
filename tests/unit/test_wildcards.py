"""Wildcards and {...} options (engine/wildcards.py): picks that follow the seed, weights, counts, nesting, files
from the user's folder before the shipped ones, YAML and JSON files of many wildcards, escapes, and a sentence for each
prompt that cannot be expanded."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from engine.config import PRESETS_DIR
from engine.errors import InvalidRequest
from engine.wildcards import MAX_DEPTH, Wildcards, escaped, has_variants


def prompt_for(wildcards: Wildcards, text: str, seed: int) -> str:
    return wildcards.expand(text, "", seed).prompt


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "wildcards"
    (root / "people").mkdir(parents=True)
    (root / "fruit.txt").write_text("# fruit\napple\n\n  pear  \nplum\n")
    (root / "people" / "hair.txt").write_text("red hair\n__fruit__-colored hair\n")
    (root / "color.txt").write_text("ultramarine\n")  # the user's color.txt hides the shipped one
    (root / "loop.txt").write_text("again __loop__\n")
    (root / "empty.txt").write_text("# nothing here\n\n")
    return root


def test_options_follow_the_seed(folder):
    wildcards = Wildcards([folder])
    picks = {seed: prompt_for(wildcards, "a {red|green|blue} car", seed) for seed in range(40)}
    assert set(picks.values()) == {"a red car", "a green car", "a blue car"}
    assert all(prompt_for(wildcards, "a {red|green|blue} car", seed) == pick for seed, pick in picks.items())
    assert prompt_for(wildcards, "a { red | green } car", 1) in ("a red car", "a green car")  # options trimmed


def test_weights_counts_and_nesting(folder):
    wildcards = Wildcards([folder])
    assert {prompt_for(wildcards, "{0::a|b}", seed) for seed in range(30)} == {"b"}
    heavy = Counter(prompt_for(wildcards, "{9::a|1::b}", seed) for seed in range(300))
    assert heavy["a"] > 230 and heavy["b"] > 5
    for seed in range(20):
        two = prompt_for(wildcards, "{2$$a|b|c}", seed).split(", ")
        assert len(two) == 2 and len(set(two)) == 2 and set(two) <= {"a", "b", "c"}
        assert len(prompt_for(wildcards, "{1-3$$a|b|c}", seed).split(", ")) in (1, 2, 3)
        assert " and " in prompt_for(wildcards, "{2$$ and $$a|b|c}", seed)
        assert len(prompt_for(wildcards, "{2-$$a|b|c|d}", seed).split(", ")) in (2, 3, 4)  # two or more
        assert len(set(prompt_for(wildcards, "{2$$__fruit__}", seed).split(", "))) == 2  # two lines of one file
    assert {prompt_for(wildcards, "{a|{b|c}}", seed) for seed in range(60)} == {"a", "b", "c"}
    assert prompt_for(wildcards, r"a \{literal\} brace \| bar", 0) == "a {literal} brace | bar"


def test_wildcard_files(folder):
    wildcards = Wildcards([folder, PRESETS_DIR / "wildcards"])
    assert {prompt_for(wildcards, "__fruit__", seed) for seed in range(40)} == {"apple", "pear", "plum"}
    hair = {prompt_for(wildcards, "__people/hair__", seed) for seed in range(60)}
    assert "red hair" in hair and {"apple-colored hair", "pear-colored hair"} & hair  # a line's own wildcard
    assert prompt_for(wildcards, "__color__", 3) == "ultramarine"  # the user's file wins
    assert {prompt_for(wildcards, "__f*__", seed) for seed in range(40)} == {"apple", "pear", "plum"}  # a pattern
    assert "hair" in prompt_for(wildcards, "__people/*__", 5)
    assert prompt_for(wildcards, "a __Season__ day", 2).split()[1] in ("spring", "summer", "autumn", "winter")
    assert {"animal", "color", "fruit", "people/hair", "season"} <= set(wildcards.names())
    both = wildcards.expand("__fruit__", "blurry, __fruit__", 7)
    assert both.prompt_template == "__fruit__" and both.negative_template == "blurry, __fruit__"
    plain = wildcards.expand("a fox", "blurry", 7)
    assert (plain.prompt, plain.prompt_template, plain.negative_template) == ("a fox", None, None)


@pytest.mark.parametrize("text, sentence", [
    ("a __nope__", "No wildcard named 'nope': put its options, one a line, in nope.txt in the wildcards folder "
                   "(wildcards here: color, empty, fruit, loop, people/hair)."),
    ("a {red|green", "The prompt has a '{' without its '}'"),
    ("a red} car", "The prompt has a '}' without its '{'"),
    ("__loop__", f"nest more than {MAX_DEPTH} deep"),
    ("__empty__", "The wildcard file empty.txt has no options"),
])
def test_a_prompt_that_cannot_be_expanded_is_a_sentence(folder, text, sentence):
    with pytest.raises(InvalidRequest) as caught:
        Wildcards([folder]).expand(text, "", 1)
    assert sentence in str(caught.value)


def test_a_name_never_reaches_outside_the_folders(folder):
    (folder.parent / "secret.txt").write_text("password\n")
    for name in ("../secret", "/etc/hostname", "people/../../secret"):
        with pytest.raises(InvalidRequest, match="No wildcard named"):
            Wildcards([folder]).expand(f"__{name}__", "", 1)


def test_what_counts_as_variants():
    assert has_variants("a {b|c}") and has_variants("a __color__") and has_variants("{x}")
    assert has_variants(r"a \{brace\}")  # expanded too, so the braces lose their backslashes
    assert not has_variants("a (fox:1.2), [snow], <lora:detail:0.8>")
    assert not has_variants("") and not has_variants(None)


def test_a_filled_in_prompt_escaped_means_itself_again(folder):
    """Reuse puts a filled-in prompt back escaped: its own braces (written as \\{ in the template) stay braces."""
    wildcards = Wildcards([folder])
    filled = prompt_for(wildcards, r"a \{json\} sign, {red|blue}", 3)
    assert filled in ("a {json} sign, red", "a {json} sign, blue")
    assert prompt_for(wildcards, escaped(filled), 99) == filled


def test_yaml_and_json_files_hold_many_wildcards_as_dynamic_prompts_reads_them(folder):
    (folder / "packs").mkdir()
    (folder / "packs" / "looks.yaml").write_text(
        "hair:\n  short: [bob, pixie]\n  long:\n    - braid\n    - text: ponytail\n      weight: 0\n"
        "eyes: [\"9::green\", \"1::grey\"]\nnote: not a list\n", encoding="utf-8")
    (folder / "weather.json").write_text(json.dumps(["rain", "snow"]), encoding="utf-8")
    (folder / "broken.yaml").write_text("hair: [unclosed\n", encoding="utf-8")
    (folder / "odd.yaml").write_text("odd:\n  - text: heavy\n    weight: lots\n  - text: light\n    weight: null\n",
                                     encoding="utf-8")  # weights that are not numbers count as 1
    wildcards = Wildcards([folder])
    names = wildcards.names()
    assert {"packs/hair/short", "packs/hair/long", "packs/eyes", "weather"} <= set(names)  # the keys, under the folder
    assert not any(name.startswith(("packs/looks", "broken", "packs/note")) for name in names)
    assert {prompt_for(wildcards, "__packs/hair/short__", seed) for seed in range(30)} == {"bob", "pixie"}
    assert {prompt_for(wildcards, "__packs/hair/long__", seed) for seed in range(30)} == {"braid"}  # weight 0
    eyes = Counter(prompt_for(wildcards, "__packs/eyes__", seed) for seed in range(300))
    assert set(eyes) == {"green", "grey"} and eyes["green"] > 5 * eyes["grey"]
    assert {prompt_for(wildcards, "__weather__", seed) for seed in range(30)} == {"rain", "snow"}
    assert {prompt_for(wildcards, "__odd__", seed) for seed in range(30)} == {"heavy", "light"}
    assert {prompt_for(wildcards, "__packs/hair/*__", seed) for seed in range(60)} == {"bob", "pixie", "braid"}
    two = prompt_for(wildcards, "{2$$__packs/hair/short__}", 3)
    assert sorted(two.split(", ")) == ["bob", "pixie"]


def test_a_text_files_line_reads_the_same_alone_and_in_a_count(folder):
    (folder / "odd.txt").write_text("apple\n3::heavy\n")  # a text file's line is text, weight marks and all
    wildcards = Wildcards([folder])
    alone = {prompt_for(wildcards, "__odd__", seed) for seed in range(40)}
    counted = {prompt_for(wildcards, "{1$$__odd__}", seed) for seed in range(40)}
    assert alone == counted == {"apple", "3::heavy"}
