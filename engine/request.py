"""A generation request and the checks that keep bad input away from the backends."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import InvalidRequest
from .registry import load_samplers

MIN_SIDE, MAX_SIDE = 64, 2048
MAX_STEPS = 150
MAX_SEED = 2**32 - 1
BACKENDS = ("auto", "comfyui", "diffusers")


@dataclass(frozen=True)
class GenerationRequest:
    """Everything one image needs. `seed=None` or -1 means "pick one at random"."""

    prompt: str
    negative_prompt: str = ""
    width: int = 1024
    height: int = 1024
    num_inference_steps: int = 20
    guidance_scale: float | None = None
    seed: int | None = None
    model: str | None = None
    backend: str = "auto"
    sampler: str = "euler"
    extra: dict[str, Any] = field(default_factory=dict)

    def validated(self) -> "GenerationRequest":
        """Return a copy with a concrete seed, or raise InvalidRequest with every problem found."""
        problems = validation_errors(self)
        if problems:
            raise InvalidRequest(" ".join(problems))
        seed = self.seed
        if seed is None or int(seed) == -1:
            seed = random.randint(0, MAX_SEED)
        return replace(self, prompt=self.prompt.strip(), seed=int(seed), sampler=sampler_key(self.sampler),
                       width=int(self.width), height=int(self.height),
                       num_inference_steps=int(self.num_inference_steps))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sampler_key(name: Any) -> str:
    """The samplers.yaml key for a key or a label ("dpmpp_2m_karras" or "DPM++ 2M Karras")."""
    text = str(name or "euler").strip()
    for key, entry in load_samplers().items():
        if text.lower() in (key, str(entry.get("label", "")).lower()):
            return key
    return text


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


def validation_errors(req: GenerationRequest) -> list[str]:
    """Every problem with `req`, each as a sentence; empty when the request is fine."""
    problems: list[str] = []
    if not isinstance(req.prompt, str) or not req.prompt.strip():
        problems.append("The prompt is empty: describe the image you want.")
    for name, value in (("Width", req.width), ("Height", req.height)):
        if not _is_int(value):
            problems.append(f"{name} must be a whole number of pixels (got {value!r}).")
        elif not MIN_SIDE <= int(value) <= MAX_SIDE:
            problems.append(f"{name} must be between {MIN_SIDE} and {MAX_SIDE} pixels (got {int(value)}).")
        elif int(value) % 8:
            problems.append(f"{name} must be a multiple of 8 (got {int(value)}; try {int(value) // 8 * 8}).")
    steps = req.num_inference_steps
    if not _is_int(steps) or not 1 <= int(steps) <= MAX_STEPS:
        problems.append(f"Steps must be a whole number from 1 to {MAX_STEPS} (got {steps!r}).")
    if req.guidance_scale is not None:
        try:
            g = float(req.guidance_scale)
        except (TypeError, ValueError):
            problems.append(f"Guidance scale must be a number (got {req.guidance_scale!r}).")
        else:
            if g != g or g < 0 or g > 50:
                problems.append(f"Guidance scale must be between 0 and 50 (got {req.guidance_scale!r}).")
    if req.seed is not None and not (_is_int(req.seed) and -1 <= int(req.seed) <= MAX_SEED):
        problems.append(f"Seed must be -1 (random) or a whole number from 0 to {MAX_SEED} (got {req.seed!r}).")
    samplers = load_samplers()
    if sampler_key(req.sampler) not in samplers:
        problems.append(f"Sampler must be one of {', '.join(samplers)} (got {req.sampler!r}).")
    if req.backend not in BACKENDS:
        problems.append(f"Backend must be one of {', '.join(BACKENDS)} (got {req.backend!r}).")
    return problems
