"""A1111's token counter: the counts its `tokenize_line` gives, with CLIP's real vocabulary."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from engine.token_count import CHUNK_TOKENS, TokenCounter, chunk_limit


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


def test_plain_prompts_count_clip_tokens(counter):
    assert counter.count("", 20).label == "0/75"
    assert counter.count("a red fox in the snow", 20).label == "6/75"
    assert counter.count("masterpiece, golden-hour", 20).label == "5/75"  # masterpiece , golden - hour


def test_weights_brackets_and_lora_tags_are_not_tokens(counter):
    plain = counter.count("a red fox in the snow", 20).tokens
    assert counter.count("(a red:1.3) [fox] in ((the)) snow <lora:detail:0.8>", 20).tokens == plain
    assert counter.count(r"a red fox \(in\) the snow", 20).tokens == plain + 2  # escaped brackets are text


def test_break_closes_its_chunk_and_its_unused_places_count(counter):
    assert counter.count("a red fox BREAK snow", 20).label == "76/150"
    assert counter.count("a BREAK b BREAK c", 20).label == "151/225"


def test_a_full_chunk_moves_the_words_after_its_last_comma_to_the_next(counter):
    words = " ".join(["a"] * 70) + ", " + " ".join(["b"] * 10)  # 70 + 1 + 10 = 81 tokens
    # the chunk fills at 75 with 4 b's after the comma; they move on, so the first chunk counts 75: 75 + 10
    assert counter.count(words, 20).label == "85/150"
    no_comma = " ".join(["a"] * 81)
    assert counter.count(no_comma, 20).label == "81/150"
    far_comma = "a, " + " ".join(["a"] * 80)  # the comma is more than 20 tokens back: no move
    assert counter.count(far_comma, 20).label == "82/150"


def test_an_embedding_counts_its_vectors_and_is_never_split(counter):
    assert counter.count("photo of my_style", 20, {"my_style": 8}).label == "10/75"
    assert counter.count("my_stylex photo", 20, {"my_style": 8}).tokens > 2  # not the name: text
    crowded = " ".join(["a"] * 70) + " my_style"
    assert counter.count(crowded, 20, {"my_style": 8}).label == "83/150"  # 70 + the chunk's 5 unused + 8


def test_prompt_editing_counts_its_longest_text_and_a_half_typed_one_as_written(counter):
    short, long = "a cat", "a very fluffy striped cat on a windowsill"
    edited = counter.count("[a cat:a very fluffy striped cat on a windowsill:0.5]", 20)
    assert edited.tokens == counter.count(long, 20).tokens > counter.count(short, 20).tokens
    assert counter.count("[a cat:a dog", 20).tokens == 5  # "[" is not a token: a cat : a dog


def test_only_the_lora_tags_go_and_an_embedding_meets_the_comma_backtrack_too(counter):
    assert counter.count("red cat, " * 25, 20).label == "75/75"  # the last comma stays, as A1111 counts it
    assert counter.count("a, " * 37 + "a my_style b", 20, {"my_style": 8}).label == "85/150"


def test_chunk_limit_is_a_multiple_of_75():
    assert [chunk_limit(n) for n in (0, 1, 75, 76, 150, 151)] == [75, 75, 75, 150, 150, 225]
    assert CHUNK_TOKENS == 75


async def test_the_manager_counts_with_styles_and_the_embeddings_in_the_model_folders(manager):
    folder = manager.settings.models_dir / "embeddings"
    folder.mkdir(parents=True)
    save_file({"emb_params": torch.zeros(6, 32)}, str(folder / "gator_look.safetensors"))
    save_file({"clip_l": torch.zeros(3, 768), "clip_g": torch.zeros(3, 1280)}, str(folder / "xl_look.safetensors"))
    await manager.rescan_models()
    assert manager.prompt_tokens("gator_look, a fox", 20).label == "9/75"  # 6 + ", a fox"
    assert manager.prompt_tokens("xl_look", 20).label == "3/75"
    style = next(name for name in manager.available_styles()[1:] if manager.styled(name, "x", "")[0] != "x")
    styled_prompt = manager.styled(style, "a fox", "")[0]
    assert manager.prompt_tokens("a fox", 20, [style]) == manager.prompt_tokens(styled_prompt, 20)
    styled_negative = manager.styled(style, "a fox", "blurry")[1]
    assert manager.prompt_tokens("blurry", 20, [style], negative=True) == manager.prompt_tokens(styled_negative, 20) \
        != manager.prompt_tokens("blurry", 20)
    assert manager.prompt_tokens("a fox", "not a number", ["no such style"]).label == "2/75"
