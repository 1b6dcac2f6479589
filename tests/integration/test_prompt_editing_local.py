"""A1111's prompt editing on the local backend (the tiny model): `[from:to:when]` and `[a|b]` give each step the
embeddings of its own text (seen at the UNet), a schedule that never switches is its one text's image, and a
hires fix's second pass counts on from the first pass's steps."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from engine.manager import AIModelManager

SIZE = dict(width=64, height=64, num_inference_steps=4, seed=5, model="tiny", guidance_scale=5.0)


async def image(manager: AIModelManager, prompt: str, **extra) -> np.ndarray:
    result = await manager.generate_image(prompt, **{**SIZE, **extra})
    assert result.status == "success", result.error
    return np.asarray(result.image)


def text_embedding(pipe, text: str) -> torch.Tensor:
    return pipe.encode_prompt(text, pipe._execution_device, 1, False)[0]


class UNetInputs:
    """The positive text embeddings the UNet is given at each call (the second half of the CFG batch)."""

    def __init__(self, pipe):
        self.seen: list[torch.Tensor] = []
        self.handle = pipe.unet.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, _module, args, kwargs):
        states = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        self.seen.append(states.chunk(2)[1].detach().clone())

    def texts(self, candidates: dict[str, torch.Tensor]) -> list[str]:
        self.handle.remove()
        return [next(name for name, value in candidates.items() if torch.allclose(seen, value, atol=1e-5))
                for seen in self.seen]


async def test_each_step_gets_the_embeddings_of_its_own_text(manager):
    await image(manager, "a cat")  # loads the pipeline
    pipe = manager.backends["diffusers"].pool[0].pipe
    names = {text: text_embedding(pipe, text) for text in ("a cat", "a dog", "a bird", "a")}

    watch = UNetInputs(pipe)
    await image(manager, "a [cat:dog:1]")  # A1111: steps up to `when` (0-based 0 and 1) see "cat"
    assert watch.texts(names) == ["a cat", "a cat", "a dog", "a dog"]

    watch = UNetInputs(pipe)
    await image(manager, "a [cat:dog:0.5]", num_inference_steps=6)  # a share: switch at step 3
    assert watch.texts(names) == ["a cat"] * 4 + ["a dog"] * 2

    watch = UNetInputs(pipe)
    await image(manager, "a [cat|dog|bird]", num_inference_steps=5)  # alternation, counted as A1111 does
    assert watch.texts(names) == ["a cat", "a cat", "a dog", "a bird", "a cat"]

    watch = UNetInputs(pipe)
    await image(manager, "a [cat::2]")  # [from::when] removes the words after `when`
    assert watch.texts(names) == ["a cat", "a cat", "a cat", "a"]


async def test_a_second_order_sampler_switches_between_whole_steps(manager):
    """Heun calls the model twice a step (once at its last): both calls of a step see that step's text."""
    await image(manager, "a cat")
    pipe = manager.backends["diffusers"].pool[0].pipe
    names = {text: text_embedding(pipe, text) for text in ("a cat", "a dog")}
    watch = UNetInputs(pipe)
    await image(manager, "a [cat:dog:1]", sampler="heun")  # steps 0 and 1 "cat", 2 and 3 "dog"
    assert watch.texts(names) == ["a cat"] * 4 + ["a dog"] * 3


async def test_a_schedule_that_never_switches_is_its_text(manager):
    dog = await image(manager, "a dog")
    assert np.array_equal(await image(manager, "a [cat:dog:0]"), dog)  # switched before the first step
    cat = await image(manager, "a cat")
    assert np.array_equal(await image(manager, "a [cat:dog:3]"), cat)  # 4 steps: step 3 is the last
    edited = await image(manager, "a [cat:dog:2]")
    assert not np.array_equal(edited, cat) and not np.array_equal(edited, dog)
    negative = await image(manager, "a cat", negative_prompt="[blurry:sharp:1]")  # the negative prompt too
    assert not np.array_equal(negative, cat)
    weighted = await image(manager, "a [(cat:1.4):dog:2]")  # attention syntax inside the texts is kept
    assert not np.array_equal(weighted, edited)


async def test_the_hires_pass_counts_on_from_the_first_pass(manager):
    await image(manager, "a cat")
    pipe = manager.backends["diffusers"].pool[0].pipe
    pipe_texts = {text: text_embedding(pipe, text) for text in ("a cat", "a dog")}
    watch = UNetInputs(pipe)
    # 4 steps, then a hires pass of 4 steps at strength 1: step 5 of the whole run is the second pass's step 1
    await image(manager, "a [cat:dog:5]", hires_scale=1.5, hires_strength=1.0, hires_steps=4)
    assert watch.texts(pipe_texts) == ["a cat"] * 4 + ["a cat", "a cat", "a dog", "a dog"]
    watch = UNetInputs(pipe)
    await image(manager, "a [cat:dog:0.5]", hires_scale=1.5, hires_strength=1.0, hires_steps=4)  # done by pass 2
    assert watch.texts(pipe_texts) == ["a cat"] * 3 + ["a dog"] * 5


async def test_break_encodes_each_part_in_its_own_chunk(manager):
    plain = await image(manager, "a fox, snow")
    pipe = manager.backends["diffusers"].pool[0].pipe
    watch = UNetInputs(pipe)
    broken = await image(manager, "a fox BREAK snow")
    watch.handle.remove()
    seen = watch.seen[0]
    assert seen.shape[1] == 2 * pipe.tokenizer.model_max_length  # two chunks of 77 tokens
    assert torch.allclose(seen[:, :77], text_embedding(pipe, "a fox"), atol=1e-5)
    assert torch.allclose(seen[:, 77:], text_embedding(pipe, "snow"), atol=1e-5)
    assert not np.array_equal(plain, broken)
    watch = UNetInputs(pipe)
    await image(manager, "a [fox:cat:1] BREAK snow")  # with prompt editing: each step its own two chunks
    watch.handle.remove()
    assert [states.shape[1] for states in watch.seen] == [154] * 4
    assert torch.allclose(watch.seen[0][:, :77], text_embedding(pipe, "a fox"), atol=1e-5)
    assert torch.allclose(watch.seen[3][:, :77], text_embedding(pipe, "a cat"), atol=1e-5)


async def sdxl_texts_by_step(manager: AIModelManager, prompt: str, texts: tuple[str, ...], **request):
    """Which of `texts` the UNet of the small SDXL `tinyXL` was given at each step of `prompt`, its token and its
    pooled embeddings both (SDXL's add_text_embeds); and the result."""
    pipe = manager.backends["diffusers"].pool[0].pipe
    encoded = {text: pipe.encode_prompt(prompt=text, device=pipe._execution_device, num_images_per_prompt=1,
                                        do_classifier_free_guidance=False) for text in texts}
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def record(_module, args, kwargs):
        states = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        seen.append((states.chunk(2)[-1].clone(), kwargs["added_cond_kwargs"]["text_embeds"].chunk(2)[-1].clone()))
    handle = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        result = await manager.generate_image(prompt, model="tinyXL", width=64, height=64, seed=1, **request)
    finally:
        handle.remove()
    assert result.status == "success", result.error

    def which(states: torch.Tensor, pooled: torch.Tensor) -> str:
        return next((text for text, (embeds, _, pooled_text, _) in encoded.items()
                     if torch.allclose(states, embeds, atol=1e-4) and torch.allclose(pooled, pooled_text, atol=1e-4)),
                    "neither")
    return [which(*step) for step in seen], result


async def tiny_sdxl(tmp_path, small_sdxl_manager) -> AIModelManager:
    """A manager over the small SDXL checkpoint `tinyXL`, loaded."""
    from tests.support.ldm_checkpoint import cached_checkpoint

    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    (folder / "tinyXL.safetensors").symlink_to(cached_checkpoint("sdxl-small"))
    manager = await small_sdxl_manager(folder)
    await image(manager, "a fox", model="tinyXL", num_inference_steps=1)
    return manager


async def test_sdxl_gets_its_pooled_embeddings_swapped_too(tmp_path, small_sdxl_manager):
    """A small SDXL checkpoint: the pooled text embedding (SDXL's add_text_embeds) follows the schedule as well."""
    manager = await tiny_sdxl(tmp_path, small_sdxl_manager)
    assert type(manager.backends["diffusers"].pool[0].pipe).__name__ == "StableDiffusionXLPipeline"
    guided, _ = await sdxl_texts_by_step(manager, "a [fox:cat:1]", ("a fox", "a cat"), num_inference_steps=3)
    assert guided == ["a fox", "a fox", "a cat"]
    # without guidance (no CFG batch to split): each text's pooled embedding, a text met again as it was
    unguided, _ = await sdxl_texts_by_step(manager, "a [fox|cat]", ("a fox", "a cat"), num_inference_steps=4,
                                           guidance_scale=1.0)
    assert unguided == ["a fox", "a fox", "a cat", "a fox"]  # as A1111 counts: a step ends at its number

    broken = await manager.generate_image("a fox BREAK snow", model="tinyXL", width=64, height=64,
                                          num_inference_steps=1, seed=1)
    assert broken.status == "success", broken.error
    long = await manager.generate_image("a [fox:cat:1], " + "very detailed, " * 40, model="tinyXL", width=64,
                                        height=64, num_inference_steps=2, seed=1)  # a plain text past 77 tokens
    assert long.status == "success" and any("75-token limit" in w for w in long.warnings), long.warnings


async def test_sdxl_controlnet_inpaint_follows_the_schedule_with_its_pooled_embeddings(tmp_path, small_sdxl_manager):
    """diffusers' SDXL ControlNet inpaint pipeline does not take a pooled embedding back from the step callback (its
    other SDXL pipelines do): the engine swaps it in place, so it follows the schedule there too."""
    from diffusers import ControlNetModel, UNet2DConditionModel
    from safetensors.torch import save_file
    from tests.support.ldm_checkpoint import small_sdxl_configs

    (tmp_path / "models" / "ControlNet").mkdir(parents=True)
    controlnet = ControlNetModel.from_unet(UNet2DConditionModel.from_config(small_sdxl_configs()["unet"]))
    save_file({k: v.contiguous() for k, v in controlnet.state_dict().items()},
              str(tmp_path / "models" / "ControlNet" / "tinyXLCanny.safetensors"))
    manager = await tiny_sdxl(tmp_path, small_sdxl_manager)
    mask = Image.new("L", (64, 64))
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=255)
    picture = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(picture).ellipse((12, 12, 52, 52), outline="black", width=3)
    steps, result = await sdxl_texts_by_step(manager, "a [fox:cat:1]", ("a fox", "a cat"), num_inference_steps=4,
                                             init_image=picture, mask=mask, mask_blur=0, control_image=picture,
                                             controlnet="tinyXLCanny")  # strength 0.75: 3 of the 4 steps run
    assert steps == ["a fox", "a fox", "a cat"]
    assert result.controlnet == "tinyXLCanny"  # steered, and inpainted: the unmasked half is the picture's own
    assert np.array_equal(np.asarray(result.image)[:, 32:], np.asarray(picture)[:, 32:])


async def test_a_seed_travel_in_between_blends_the_prompts_as_they_end(manager):
    """An in-between lerps two prompts' embeddings: each is taken as it ends (its last edit, BREAKs as commas), the
    same image as those texts written out, and the result says so."""
    travel = {"seed_b": 9, "prompt_b": "a bird BREAK snow", "negative_prompt_b": "", "t": 0.5}
    edited = await manager.generate_image("a [cat:dog:1]", extra={"interpolate": travel}, **SIZE)
    assert edited.status == "success", edited.error
    assert any("blends the prompts as they end" in warning for warning in edited.warnings), edited.warnings
    written = await manager.generate_image("a dog", extra={"interpolate": {**travel, "prompt_b": "a bird, snow"}},
                                           **SIZE)
    assert np.array_equal(np.asarray(edited.image), np.asarray(written.image))
    assert not any("blends" in warning for warning in written.warnings)
