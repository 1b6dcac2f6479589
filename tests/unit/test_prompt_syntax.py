"""A1111's <lora:name:weight> tags: taken out of the text the encoder sees, written back as A1111 does; its attention
weights and BREAK written for compel and ComfyUI."""
from __future__ import annotations

import pytest

from engine.errors import InvalidRequest
from engine.prompt_syntax import (LoraUse, attention_chunks, attention_fragments, comfyui_chunks, for_comfyui,
                                   has_attention, has_break, take_lora_tags, to_compel, with_lora_tags)
from engine.request import GenerationRequest
from ui.image_options import add_lora_tag


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


@pytest.mark.parametrize("prompt, fragments", [
    ("a (fox:1.5) in [snow]", [("a ", 1.0), ("fox", 1.5), (" in ", 1.0), ("snow", 1 / 1.1)]),
    ("a ((red)) cat", [("a ", 1.0), ("red", 1.1 * 1.1), (" cat", 1.0)]),
    ("(a (b:2) c:0.5)", [("a ", 0.5), ("b", 1.0), (" c", 0.5)]),  # A1111 multiplies nested weights
    ("a \\(literal\\) cat", [("a (literal) cat", 1.0)]),
    ("(unclosed", [("unclosed", 1.1)]),
    ("plain, t-shirt", [("plain, t-shirt", 1.0)]),
    ("(cat:.5)", [("cat", 0.5)]),
    ("a (cat:1.2.3)", [("a ", 1.0), ("cat:1.2.3", 1.1)]),  # a mistyped weight is text, never an error
    ("(cat:1..2) (dog:.)", [("cat:1..2", 1.1), (" ", 1.0), ("dog:.", 1.1)]),
])
def test_attention_is_read_as_a1111_reads_it(prompt, fragments):
    got = attention_fragments(prompt)
    assert [text for text, _ in got] == [text for text, _ in fragments]
    assert [round(w, 6) for _, w in got] == [round(w, 6) for _, w in fragments]


def test_weights_go_to_compel_and_comfyui_in_their_own_syntax():
    assert to_compel("a (fox:1.5) in [snow]") == "a (fox)1.5 in (snow)0.9091"
    assert to_compel("a cat+ here, (big:1.2)") == "a cat + here, (big)1.2"  # a word-final + is not compel's
    assert for_comfyui("a (fox:1.5) in [snow]") == "a (fox:1.5) in (snow:0.9091)"
    assert for_comfyui("no syntax: kept as written") == "no syntax: kept as written"
    assert not has_attention("plain text") and has_attention("a (b:1.0)") and has_attention("a \\(b\\)")


def test_comfyui_reads_an_embeddings_name_as_embedding_colon_name():
    assert for_comfyui("a cat, badhands", ["badhands"]) == "a cat, embedding:badhands"
    assert for_comfyui("embedding:badhands, badhands2", ["badhands"]) == "embedding:badhands, badhands2"
    assert for_comfyui("(badhands:1.2)", ["badhands"]) == "(embedding:badhands:1.2)"  # ComfyUI splits at the last :


def test_break_splits_the_prompt_into_chunks_for_compel_and_comfyui():
    assert attention_chunks("a fox BREAK in snow") == [[("a fox", 1.0)], [("in snow", 1.0)]]
    assert attention_chunks("(a fox BREAK in snow:1.2)") == [[("a fox", 1.2)], [("in snow", 1.2)]]  # weight spans it
    assert attention_chunks("a BREAKFAST, BREAK") == [[("a BREAKFAST,", 1.0)]]  # a word, and an empty last part
    assert to_compel("a (fox:1.5) BREAK say \"hi\"") == '("a (fox)1.5", "say \\"hi\\"").and()'
    assert comfyui_chunks("a (fox:1.5) BREAK snow, badhands", ["badhands"]) == ("a (fox:1.5)",
                                                                                "snow, embedding:badhands")
    assert comfyui_chunks("no break here") == ("no break here",) and has_attention("a BREAK b")
    assert has_break("x BREAK y") and not has_break("breakfast BREAKS")
