"""Every sampler of presets/samplers.yaml. Locally: its diffusers scheduler (class and options), one UNet call a step
(two for a second-order one, Heun's, but its last) and one preview per step, the same picture for the same seed (the
SDE samplers draw their noise from it) and a picture of its own; LCM past the 50 steps it was distilled for. On
ComfyUI: a sampler_name and scheduler ComfyUI 0.3.64 lists (the fake's lists are the real server's), read back as the
same sampler, with a prompt edit switching inside its run. A1111's PNG labels come back as ours."""
from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from engine.backends.comfyui import comfy_sampler, our_sampler
from engine.events import Progress
from engine.outputs import parse_a1111_parameters
from engine.registry import load_samplers
from engine.request import sampler_key
from tests.support.fake_comfyui import SAMPLERS as COMFY_SAMPLER_NAMES, SCHEDULERS as COMFY_SCHEDULERS

SAMPLERS = load_samplers()
RUN = dict(width=64, height=64, num_inference_steps=4, seed=3)
LONG = {**RUN, "num_inference_steps": 16}  # diffusers' 3rd-order DPM++ runs as 2nd order below 15 steps


def fingerprint(image: Image.Image) -> str:
    return hashlib.sha256(np.asarray(image.convert("RGB")).tobytes()).hexdigest()


async def test_each_sampler_takes_its_model_calls_and_one_preview_per_step(manager):
    assert (await manager.generate_image("a fox", **RUN)).status == "success"  # the pipeline, loaded
    pipe = manager.backends["diffusers"].pool[0].pipe
    calls: list[int] = []
    hook = pipe.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    made: dict[str, str] = {}
    try:
        for key, entry in SAMPLERS.items():
            calls.clear()
            events = [event async for event in manager.stream_image("a fox in snow", sampler=entry["label"], **LONG)]
            result = events[-1].result
            assert result.status == "success" and result.sampler == key, (key, result.error)
            scheduler = manager.backends["diffusers"].pool[0].pipe.scheduler
            model_calls = LONG["num_inference_steps"] * scheduler.order - (scheduler.order - 1)  # Heun's last: one
            assert len(calls) == model_calls, (key, len(calls))  # classifier-free guidance batched
            assert [e.step for e in events if isinstance(e, Progress)] == list(range(1, 17)), key
            assert all(e.preview is not None for e in events if isinstance(e, Progress)), key
            assert type(scheduler).__name__ == entry["diffusers"]["class"], key
            for option, value in entry["diffusers"].get("options", {}).items():
                assert scheduler.config[option] == value, (key, option)
            if "_a" in key or "sde" in key or key == "lcm":  # one that adds noise as it goes: from the seed
                again = await manager.generate_image("a fox in snow", sampler=key, **LONG)
                assert fingerprint(again.image) == fingerprint(result.image), key
            made[key] = fingerprint(result.image)
    finally:
        hook.remove()
    twins = {key: [other for other in made if other != key and made[other] == made[key]] for key in made}
    assert len(set(made.values())) == len(SAMPLERS), {key: same for key, same in twins.items() if same}  # each sampler's own picture: no two mapped alike


async def test_lcm_takes_more_steps_than_its_distilled_schedule(manager):
    events = [event async for event in manager.stream_image("a fox", sampler="LCM", **{**RUN,
                                                                                      "num_inference_steps": 60})]
    result = events[-1].result
    assert result.status == "success", result.error
    assert [e.step for e in events if isinstance(e, Progress)] == list(range(1, 61))
    scheduler = manager.backends["diffusers"].pool[0].pipe.scheduler
    assert len(scheduler.timesteps) == 60 and len(set(scheduler.timesteps.tolist())) == 60  # none repeated
    assert scheduler.timesteps[0] == scheduler.config.num_train_timesteps - 1  # from pure noise
    short = await manager.generate_image("a fox", sampler="lcm", **RUN)  # within 50: LCM's own schedule again
    assert short.status == "success"
    assert manager.backends["diffusers"].pool[0].pipe.scheduler.config.original_inference_steps == 50
    moved = await manager.generate_image("a fox", sampler="lcm", init_image=result.image, strength=0.5,
                                         **{**RUN, "num_inference_steps": 80})
    assert moved.status == "success", moved.error  # image to image: 40 of 80 steps


def test_each_sampler_is_one_comfyui_knows_and_reads_back_as_itself():
    for key, entry in SAMPLERS.items():
        name, scheduler = comfy_sampler(entry["label"])
        assert name in COMFY_SAMPLER_NAMES and (scheduler is None or scheduler in COMFY_SCHEDULERS), key
        assert (name, scheduler) == comfy_sampler(key)
        assert our_sampler(name, scheduler or "normal") == key


def test_a1111_labels_with_a_schedule_type_read_as_our_samplers():
    for text, key in (("Sampler: DPM++ 2M SDE, Schedule type: Karras", "dpmpp_2m_sde_karras"),
                      ("Sampler: DPM++ 3M SDE, Schedule type: Karras", "dpmpp_3m_sde_karras"),
                      ("Sampler: Euler, Schedule type: Karras", "euler_karras"),
                      ("Sampler: UniPC, Schedule type: Automatic", "unipc"),
                      ("Sampler: LCM", "lcm"), ("Sampler: DPM++ 2M SDE Karras", "dpmpp_2m_sde_karras"),
                      ("Sampler: DPM++ SDE, Schedule type: Karras", "dpmpp_sde_karras"), ("Sampler: Heun", "heun"),
                      ("Sampler: DPM++ 2M SDE, Schedule type: Exponential", "dpmpp_2m_sde_exponential"),
                      ("Sampler: DPM2 a Karras", "dpm2_a_karras"), ("Sampler: LMS, Schedule type: Karras",
                                                                    "lms_karras")):
        params = parse_a1111_parameters(f"a fox\nSteps: 20, {text}, CFG scale: 7, Seed: 1, Size: 512x512")
        assert sampler_key(params["sampler"]) == key, text


async def test_a_new_sampler_on_comfyui_is_its_sampler_and_scheduler(comfy_manager, fake):
    result = await comfy_manager.generate_image("a fox", sampler="DPM++ 2M SDE Karras", backend="comfyui", **RUN)
    assert result.status == "success" and result.sampler == "dpmpp_2m_sde_karras", result.error
    (sampler,) = [node["inputs"] for node in fake.prompts[-1].values() if node["class_type"] == "KSampler"]
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("dpmpp_2m_sde", "karras")
    result = await comfy_manager.generate_image("a fox", sampler="LCM", backend="comfyui", **RUN)
    (sampler,) = [node["inputs"] for node in fake.prompts[-1].values() if node["class_type"] == "KSampler"]
    assert result.status == "success" and (sampler["sampler_name"], sampler["scheduler"]) == ("lcm", "sgm_uniform")


async def test_prompt_editing_places_its_switch_on_each_samplers_comfyui_schedule(comfy_manager, fake):
    for key in SAMPLERS:
        result = await comfy_manager.generate_image("a [fox:cat:0.5] in snow", sampler=key, backend="comfyui", **RUN)
        assert result.status == "success", (key, result.error)
        ranges = sorted((node["inputs"]["start"], node["inputs"]["end"]) for node in fake.prompts[-1].values()
                        if node["class_type"] == "ConditioningSetTimestepRange")
        assert len(ranges) == 2 and ranges[0][0] == 0 and ranges[1][1] == 1, (key, ranges)
        assert ranges[0][1] == ranges[1][0] and 0 < ranges[0][1] < 1, (key, ranges)  # one switch, inside the run


def test_a1111_api_sampler_and_schedule_type_are_ours():
    """A1111's API sends the sampler and its schedule type apart; "Automatic" is the sampler's own in A1111 1.9."""
    from engine.a1111_api import a1111_sampler

    for name, schedule, key in (("DPM++ 2M", "Automatic", "dpmpp_2m_karras"), ("DPM++ 2M", None, "dpmpp_2m_karras"),
                                ("DPM++ 2M", "Uniform", "dpmpp_2m"), ("DPM++ 2M", "Karras", "dpmpp_2m_karras"),
                                ("DPM++ 2M SDE", "Automatic", "dpmpp_2m_sde_exponential"),
                                ("DPM++ 3M SDE", "", "dpmpp_3m_sde_exponential"), ("DPM2 a", None, "dpm2_a_karras"),
                                ("Euler a", "Automatic", "euler_a"), ("Heun", "Automatic", "heun"),
                                ("DPM++ 2M Karras", None, "dpmpp_2m_karras"), ("euler", None, "euler"),
                                ("LMS", "Karras", "lms_karras"), ("DPM++ 2M", "automatic", "dpmpp_2m_karras"),
                                ("DPM++ 2M", "karras", "dpmpp_2m_karras"), ("DPM2", "Automatic", "dpm2_karras"),
                                ("DPM++ 2M Karras", "Karras", "dpmpp_2m_karras"),
                                ("DPM++ 2M SDE Karras", "Automatic", "dpmpp_2m_sde_karras")):
        assert a1111_sampler(name, schedule) == key, (name, schedule)
    assert a1111_sampler("DPM++ 2M", "Polyexponential") == "DPM++ 2M Polyexponential"  # for validation to name


async def test_a_second_order_samplers_steps_count_twice_in_the_work_budget(manager):
    """Heun runs the model twice a step: the budget (GATOR_MAX_PIXEL_STEPS) counts it so."""
    from engine.limits import Limits

    budget = Limits().max_pixel_steps
    steps = budget // (1024 * 1024) // 2 + 1  # within the budget once, over it twice
    assert Limits().image_problem(1024, 1024, steps, 1) is None
    refused = await manager.generate_image("a fox", sampler="heun", width=1024, height=1024,
                                           num_inference_steps=steps)
    assert refused.status == "error" and f"× {steps} steps × 2 model calls a step × 1 image" in refused.error
