"""A1111's <lora:name:weight> tags: taken out of the text the encoder sees, written back as A1111 does."""
from __future__ import annotations

import pytest

from engine.errors import InvalidRequest
from engine.prompt_syntax import LoraUse, take_lora_tags, with_lora_tags
from engine.request import GenerationRequest
from ui.image_tab import add_lora_tag


@pytest.mark.parametrize("prompt, text, loras", [
    ("a fox, <lora:detail:0.8>, snow", "a fox, snow", [LoraUse("detail", 0.8)]),
    ("<LORA:style x> a cat", "a cat", [LoraUse("style x", 1.0)]),
    ("a cat <lora:a:-0.5><lyco:b:2>", "a cat", [LoraUse("a", -0.5), LoraUse("b", 2.0)]),
    ("a cat <lora:a:0.6:0.2>", "a cat", [LoraUse("a", 0.6)]),  # A1111's separate text-encoder weight: ignored
    ("no tags (word:1.2)", "no tags (word:1.2)", []),
])
def test_tags_are_taken_out(prompt, text, loras):
    assert take_lora_tags(prompt) == (text, loras)


def test_the_request_merges_tags_and_the_parameter():
    req = GenerationRequest("a fox <lora:detail:0.5>", loras=[{"name": "Detail", "weight": 0.25}, "style:0",
                                                               ("other", 1)]).validated()
    assert req.prompt == "a fox" and req.loras == (LoraUse("Detail", 0.75), LoraUse("other", 1.0))
    with pytest.raises(InvalidRequest, match="not a number"):
        GenerationRequest("a fox <lora:detail:lots>").validated()
    with pytest.raises(InvalidRequest, match="empty"):
        GenerationRequest("<lora:detail:1>").validated()
    with pytest.raises(InvalidRequest, match="At most 8 LoRAs"):
        GenerationRequest("a fox", loras=[f"l{i}" for i in range(9)]).validated()


def test_written_back_as_a1111_writes_them_and_the_picker_edits_in_place():
    assert with_lora_tags("a fox", [{"name": "detail", "weight": 0.8}]) == "a fox <lora:detail:0.8>"
    assert add_lora_tag("a fox", "detail", 0.8) == "a fox <lora:detail:0.8>"
    assert add_lora_tag("a fox <lora:Detail:0.8>, snow", "detail", 0.3) == "a fox <lora:detail:0.3>, snow"
    assert add_lora_tag("", "detail", 1) == "<lora:detail:1>"
