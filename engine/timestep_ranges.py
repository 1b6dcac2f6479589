"""Where each step of a ComfyUI KSampler falls on the 0-1 scale of ConditioningSetTimestepRange.

ComfyUI gives a conditioning to a step when the step's sigma lies between the sigmas its `start` and `end` shares
stand for (`model_sampling.percent_to_sigma`). A prompt that changes at a step (engine/prompt_schedule.py) becomes
one range per text, with each boundary halfway between the shares of the two steps it separates, so every step sees
exactly its own text. The shares follow ComfyUI's schedulers (comfy/samplers.py) over its two model samplings: the
discrete one of SD 1.x, SD 2.x and SDXL (1000 steps of the scaled-linear betas) and FLUX's shifted flow. A
scheduler not written out here (beta, linear_quadratic, kl_optimal) is taken as evenly spaced.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .prompt_schedule import StepRange

FLOW_FAMILIES = frozenset({"flux"})  # families sampled as a shifted flow (ModelSamplingFlux)
FLUX_SHIFT = 1.15  # ModelSamplingFlux's default shift (FLUX.1-dev's sampling settings)
FLOW_TIMESTEPS = 10000  # ModelSamplingFlux's table
DISCRETE_TIMESTEPS = 1000  # ModelSamplingDiscrete's table
KARRAS_RHO = 7.0
# samplers ComfyUI runs one sigma more for and then drops the next-to-last (KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS)
DISCARD_PENULTIMATE = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})


@lru_cache(maxsize=1)
def _discrete_sigmas() -> np.ndarray:
    """ModelSamplingDiscrete's sigmas (scaled-linear betas from 0.00085 to 0.012), as float32 like ComfyUI's."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, DISCRETE_TIMESTEPS, dtype=np.float64) ** 2
    cumulative = np.cumprod(1.0 - betas)
    return (((1 - cumulative) / cumulative) ** 0.5).astype(np.float32)


def _flow_sigma(t: np.ndarray | float, shift: float) -> np.ndarray:
    """FLUX's sigma for a time in (0, 1] (flux_time_shift with its fixed shift)."""
    return math.exp(shift) / (math.exp(shift) + (1 / np.asarray(t, dtype=np.float64) - 1))


class _Sampling:
    """The little of a ComfyUI model_sampling a schedule needs: its sigma table and the share each sigma is at."""

    def __init__(self, flow: bool, shift: float = FLUX_SHIFT):
        self.flow, self.shift = flow, shift
        if flow:
            self.sigmas = _flow_sigma(np.arange(1, FLOW_TIMESTEPS + 1) / FLOW_TIMESTEPS, shift)
        else:
            self.sigmas = _discrete_sigmas().astype(np.float64)
        self.log_sigmas = np.log(self.sigmas)

    def share(self, sigma: np.ndarray) -> np.ndarray:
        """The 0-1 share whose percent_to_sigma is `sigma` (0: pure noise)."""
        sigma = np.asarray(sigma, dtype=np.float64)
        if self.flow:  # percent_to_sigma(p) = sigma(1 - p)
            return 1 - 1 / (1 + math.exp(self.shift) * (1 / sigma - 1))
        # percent_to_sigma(p) = sigma((1 - p) * 999), with sigma() interpolating the log sigmas between table steps
        return 1 - np.interp(np.log(sigma), self.log_sigmas, np.arange(len(self.sigmas))) / (len(self.sigmas) - 1)

    def sigma_at(self, timesteps: np.ndarray) -> np.ndarray:
        if self.flow:
            return _flow_sigma(timesteps, self.shift)
        return np.exp(np.interp(timesteps, np.arange(len(self.sigmas)), self.log_sigmas))

    def timestep(self, sigma: float) -> float:
        if self.flow:
            return sigma
        return float(np.abs(math.log(sigma) - self.log_sigmas).argmin())


def _sigmas(sampling: _Sampling, scheduler: str, steps: int) -> np.ndarray | None:
    """The sigmas of ComfyUI's `scheduler` for `steps` steps, without the final 0; None for one not written out."""
    table, low, high = sampling.sigmas, float(sampling.sigmas[0]), float(sampling.sigmas[-1])
    if scheduler == "simple":
        stride = len(table) / steps
        return np.array([table[-(1 + int(x * stride))] for x in range(steps)])
    if scheduler in ("normal", "sgm_uniform"):
        start, end = sampling.timestep(high), sampling.timestep(low)
        times = np.linspace(start, end, steps + 1)[:-1] if scheduler == "sgm_uniform" else np.linspace(start, end, steps)
        return sampling.sigma_at(times)
    if scheduler == "karras":
        ramp = np.linspace(0, 1, steps)
        return (high ** (1 / KARRAS_RHO) + ramp * (low ** (1 / KARRAS_RHO) - high ** (1 / KARRAS_RHO))) ** KARRAS_RHO
    if scheduler == "exponential":
        return np.exp(np.linspace(math.log(high), math.log(low), steps))
    if scheduler == "ddim_uniform":
        stride = max(len(table) // steps, 1)
        return np.array(table[1::stride][::-1])
    return None


def step_shares(family: str, scheduler: str, steps: int, denoise: float = 1.0, sampler: str = "") -> list[float]:
    """The 0-1 share of each step a KSampler with these settings runs (its count is the number of steps it runs,
    which ddim_uniform can make differ from `steps`)."""
    sampling = _Sampling(flow=family in FLOW_FAMILIES)
    partial = 0 < denoise <= 0.9999  # KSampler.set_steps: sigmas for steps / denoise, the last steps of them run
    total = int(steps / denoise) if partial else steps
    discard = sampler in DISCARD_PENULTIMATE
    sigmas = _sigmas(sampling, scheduler, total + 1 if discard else total)
    if sigmas is None:  # evenly spaced
        return [i / total for i in range(total)][-steps:]
    if discard:  # the list's next-to-last sigma (before its final 0) is dropped
        sigmas = sigmas[:-1]
    if partial:
        sigmas = sigmas[-steps:]
    return [float(share) for share in sampling.share(np.clip(sigmas, 1e-12, None))]


def timestep_ranges(ranges: list[StepRange], shares: list[float]) -> list[tuple[str, float, float]]:
    """(text, start, end) per run of steps: each boundary halfway between the shares of the steps either side."""
    out = []
    for entry in ranges:
        start = 0.0 if entry.first <= 0 else (shares[entry.first - 1] + shares[entry.first]) / 2
        end = 1.0 if entry.last >= len(shares) - 1 else (shares[entry.last] + shares[entry.last + 1]) / 2
        out.append((entry.text, round(start, 6), round(end, 6)))
    return out
