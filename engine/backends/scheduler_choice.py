"""The scheduler a local pipeline samples with: the request's sampler (presets/samplers.yaml) built on the model's
own scheduler config, with what the checkpoint itself asks for (v-prediction, a zero terminal SNR schedule).

Each choice starts again from the config the pipeline was loaded with, so nothing of one request's sampler (DPM++ 2M
Karras' sigmas) stays with the next (DPM++ 2M).
"""
from __future__ import annotations

import inspect
import logging
from typing import Any

from ..registry import ModelSpec, load_samplers

logger = logging.getLogger(__name__)

V_PREDICTION = "v_prediction"  # diffusers' prediction_type for a model that predicts v
_LOADED_CONFIG = "_gator_loaded_scheduler_config"  # the pipeline's scheduler config as loaded (set on first choice)
_CHOSEN = "_gator_scheduler_choice"  # what the pipeline's scheduler was last built for


def model_sampling(spec: ModelSpec) -> dict[str, Any]:
    """The scheduler settings the checkpoint asks for: a v-prediction model predicts v; a zero terminal SNR one has
    its betas rescaled to reach pure noise and its steps spaced from the last timestep (diffusers' guide for such
    models); {} for the rest."""
    settings: dict[str, Any] = {}
    if spec.v_prediction:
        settings["prediction_type"] = V_PREDICTION
    if spec.zero_snr:
        settings.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    return settings


def distilled_schedule(scheduler_class: type, steps: int, train_steps: int) -> dict[str, Any]:
    """For a distilled model's scheduler (LCM's, made for a 50-step schedule, which diffusers will not sample with
    more steps): more steps are spread over all `train_steps` of the model's schedule, from pure noise, as A1111's
    and ComfyUI's LCM samplers take any step count; {} for the others, and for LCM at 50 steps or fewer."""
    original = inspect.signature(scheduler_class.__init__).parameters.get("original_inference_steps")
    if original is None or steps <= original.default:
        return {}
    return {"original_inference_steps": max(steps, train_steps)}


def set_scheduler(pipe: Any, sampler: str, spec: ModelSpec, steps: int) -> None:
    """Give `pipe` the scheduler of `sampler` (a samplers.yaml key) for the model `spec` and a request of `steps`,
    unless it already has it."""
    import diffusers

    entry = load_samplers()[sampler]["diffusers"]
    scheduler_class = getattr(diffusers, entry["class"])
    loaded = getattr(pipe, _LOADED_CONFIG, None)
    if loaded is None:
        loaded = dict(pipe.scheduler.config)
        setattr(pipe, _LOADED_CONFIG, loaded)
    settings = {**model_sampling(spec), **entry.get("options", {}),
                **distilled_schedule(scheduler_class, steps, int(loaded.get("num_train_timesteps", 1000)))}
    choice = (entry["class"], tuple(sorted(settings.items())))
    if getattr(pipe, _CHOSEN, None) == choice:
        return
    pipe.scheduler = scheduler_class.from_config(loaded, **settings)
    setattr(pipe, _CHOSEN, choice)
    logger.debug("Scheduler %s for %s (%s)", entry["class"], spec.label, settings or "as loaded")


def seed_scheduler_noise(scheduler: Any, seed: int) -> None:
    """A scheduler that draws its noise itself rather than from the pipeline's generator (DPM++ SDE's Brownian tree,
    otherwise seeded at random) draws it from `seed`, so a seed makes the same picture again."""
    if hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = seed
