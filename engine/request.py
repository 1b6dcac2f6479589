"""A generation request, validated once into a typed object (the limits and sentences come from engine/params.py)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from . import params as P
from .controlnet import CANNY, controlnet_problems
from .errors import InvalidRequest
from .inpaint import INPAINT_AREAS, MASKED_CONTENTS, fitted_mask
from .input_images import RESIZE_MODES, fit, output_size, read_input_image
from .limits import Limits
from .upscale import UPSCALERS, hires_target, unknown_upscaler, upscaler_named
from .prompt_syntax import BadTag, LoraUse, take_lora_tags
from .registry import load_samplers, sampler_model_calls

AUTO = "auto"


@dataclass(frozen=True)
class GenerationRequest:
    """Everything one image (or a batch of them) needs. `seed=None` or -1 means "pick one at random"."""

    prompt: str
    negative_prompt: str = ""
    width: int = P.WIDTH.default
    height: int = P.HEIGHT.default
    num_inference_steps: int = P.STEPS.default
    guidance_scale: float | None = P.GUIDANCE.default
    seed: int | None = None
    model: str | None = None
    backend: str = AUTO
    sampler: str = P.SAMPLER.default
    batch_count: int = P.BATCH_COUNT.default
    loras: Any = ()  # after validation a tuple of LoraUse (the prompt's <lora:...> tags included)
    vae: str | None = None  # a VAE file's name; None or "auto": the checkpoint's own
    init_image: Any = None  # img2img: a PIL image (or a path from a trusted caller); after validation fitted
    strength: float = P.STRENGTH.default  # img2img's denoising strength
    resize_mode: str = P.RESIZE_MODE.default
    mask: Any = None  # inpaint: white repaints (a PIL image or a trusted path); after validation "L", fitted as the init
    mask_blur: int = P.MASK_BLUR.default
    masked_content: str = P.MASKED_CONTENT.default  # A1111's: original, fill, latent noise, latent nothing
    inpaint_area: str = P.INPAINT_AREA.default
    only_masked_padding: int = P.ONLY_MASKED_PADDING.default
    outpaint: Any = None  # pixels to add per side (see params.outpaint_amounts); after validation (left, right, up, down)
    hires_scale: float = P.HIRES_SCALE.default  # above 1: the hires fix (made at width x height, then redrawn)
    hires_resize_width: int = P.HIRES_RESIZE_WIDTH.default  # A1111's "Resize width/height to": the hires fix to
    hires_resize_height: int = P.HIRES_RESIZE_HEIGHT.default  # that size instead of by hires_scale (0: unset)
    hires_strength: float = P.HIRES_STRENGTH.default
    hires_steps: int = P.HIRES_STEPS.default  # 0: the same as num_inference_steps
    hires_upscaler: str = P.HIRES_UPSCALER.default
    hires_sampler: str = P.HIRES_SAMPLER.default  # "same": the sampler's
    hires_prompt: str = P.HIRES_PROMPT.default  # empty: the prompt's (after validation: its LoRA tags taken out)
    hires_negative_prompt: str = P.HIRES_NEGATIVE_PROMPT.default
    hires_checkpoint: str = P.HIRES_CHECKPOINT.default  # "Use same checkpoint": the model's (after validation: None)
    hires_loras: Any = None  # after validation with a hires prompt: the hires pass's LoRAs (`loras` and its tags)
    clip_skip: int = P.CLIP_SKIP.default  # A1111's: 1 the text encoder's last layer, 2 the one before...
    variation_seed: int | None = None  # A1111's variation seed (None or -1: random); used when the strength is above 0
    variation_strength: float = P.VARIATION_STRENGTH.default
    freeu: bool = P.FREEU.default  # FreeU with the model family's values
    cfg_rescale: float = P.CFG_RESCALE.default  # 0: off
    tiling: bool = P.TILING.default  # A1111's Tiling: a seamless image (on this machine)
    control_image: Any = None  # ControlNet: a PIL image or a trusted path; after validation RGB, capped, not yet fitted
    controlnet: str | None = None  # a ControlNet's name; None or "none": no ControlNet (after validation: None then)
    controlnet_module: str = P.CONTROLNET_MODULE.default  # the preprocessor (engine/controlnet.py)
    controlnet_weight: float = P.CONTROLNET_WEIGHT.default
    controlnet_start: float = P.CONTROLNET_START.default
    controlnet_end: float = P.CONTROLNET_END.default
    canny_low: int = P.CANNY_LOW.default
    canny_high: int = P.CANNY_HIGH.default
    user_workflow: str | None = None  # a workflow of the workflows folder; None or "none": the app's own graphs
    prompt_template: str | None = None  # the prompt before its wildcards were filled in (engine/wildcards.py)
    negative_template: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_arguments(cls, prompt: Any, *, extra: dict[str, Any] | None = None, **values: Any) -> "GenerationRequest":
        """The request `stream_image`'s arguments ask for (unvalidated): empty choices take their defaults, a size
        left as None the schema's default (with an init image: the image's own), and the aliases (`steps`,
        `guidance`) their parameters' names. TypeError for an argument it does not take."""
        values = {P.ALIASES.get(name, name): value for name, value in values.items()}
        unknown = set(values) - _FIELDS
        if unknown:
            raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
        if values.get("init_image") is None:
            for param in (P.WIDTH, P.HEIGHT):
                values[param.name] = param.default if values.get(param.name) is None else values[param.name]
        for param in (P.BACKEND, P.SAMPLER, P.RESIZE_MODE, P.MASKED_CONTENT, P.INPAINT_AREA, P.HIRES_UPSCALER,
                      P.HIRES_SAMPLER, P.HIRES_CHECKPOINT, P.CONTROLNET_MODULE):
            if param.name in values:
                values[param.name] = values[param.name] or param.default
        values["negative_prompt"] = values.get("negative_prompt") or ""
        for param in (P.HIRES_PROMPT, P.HIRES_NEGATIVE_PROMPT):
            values[param.name] = values.get(param.name) or ""
        values["loras"] = values.get("loras") or ()
        return cls(prompt=prompt, **values, extra=dict(extra or {}))

    def validated(self, backends: Sequence[str] = (), rng: random.Random | None = None,
                  limits: Limits | None = None, upscalers: Sequence[str] = UPSCALERS,
                  unknown_model: Callable[[str], str | None] | None = None) -> "GenerationRequest":
        """A copy with a concrete seed and cast values, or InvalidRequest naming every problem.

        `backends` are the backend names a request may ask for (besides auto); `limits` the work it may ask for;
        `upscalers` the upscaler names the hires fix may use (its name comes back spelled as listed there);
        `unknown_model` the sentence for a model name nobody has (Router.unknown_model), for the hires checkpoint.
        With an init image, a width or height left as None comes from the image (see `output_size`).
        """
        if self.init_image is not None and (self.width is None or self.height is None):
            image = read_input_image(self.init_image, limits or Limits())
            width, height = output_size(image, self.width, self.height, P.WIDTH.multiple_of or 8)
            return replace(self, init_image=image, width=width, height=height).validated(backends, rng, limits,
                                                                                        upscalers, unknown_model)
        problems = validation_errors(self, backends, limits or Limits(), upscalers, unknown_model)
        if problems:
            raise InvalidRequest(" ".join(problems))
        try:
            prompt, tagged = take_lora_tags(self.prompt)
        except BadTag as err:
            raise InvalidRequest(str(err)) from None
        problem = P.PROMPT.problem(prompt)
        if problem:  # nothing but tags
            raise InvalidRequest(problem)
        named = lora_list(self.loras)
        loras = combined_loras([*named, *tagged])
        problem = P.LORAS.problem(list(loras))
        if problem:
            raise InvalidRequest(problem)
        hires: dict[str, Any] = {"hires_prompt": "", "hires_negative_prompt": "", "hires_loras": None,
                                 "hires_checkpoint": None}
        if self.hires:  # the hires pass's own prompts (A1111's), its LoRAs from its own tags
            hires["hires_negative_prompt"] = self.hires_negative_prompt.strip()
            hires["hires_checkpoint"] = chosen_checkpoint(self.hires_checkpoint)
            if self.hires_prompt.strip():
                try:
                    hires_prompt, hires_tagged = take_lora_tags(self.hires_prompt)
                except BadTag as err:
                    raise InvalidRequest(str(err)) from None
                given = self.extra.get(HIRES_LORAS)  # an X/Y/Z plot's cell: the hires pass's LoRAs as worked out
                hires_named = named if given is None else lora_list(given)
                hires_loras = combined_loras([*hires_named, *hires_tagged])
                problem = P.LORAS.problem(list(hires_loras)) or (None if hires_prompt.strip() else
                                                                 "The hires prompt holds nothing but LoRA tags.")
                if problem:
                    raise InvalidRequest(problem)
                hires.update(hires_prompt=hires_prompt.strip(), hires_loras=hires_loras)
        vae = (self.vae or "").strip()
        init_image = mask = None
        outpaint = tuple(int(n) for n in P.outpaint_amounts(self.outpaint))
        if self.init_image is not None:  # read, capped, and fitted to the output size once for every backend
            source = read_input_image(self.init_image, limits or Limits())
            init_image = fit(source, int(self.width), int(self.height), self.resize_mode)
            if self.mask is not None:
                mask = fitted_mask(read_input_image(self.mask, limits or Limits(), "mask"), source.size,
                                   int(self.width), int(self.height), self.resize_mode)
                if mask.getbbox() is None and not any(outpaint):
                    raise InvalidRequest("The mask is all black, so nothing would change: paint white over what "
                                         "should be redrawn.")
        unit: dict[str, Any] = dict(controlnet=None)  # the ControlNet's values are checked only when it is used
        if self.control_image is not None:  # read and capped once; fitted to each pass's size (engine/controlnet.py)
            unit = dict(control_image=read_input_image(self.control_image, limits or Limits(), "control image"),
                        controlnet=self.controlnet.strip(), controlnet_weight=float(self.controlnet_weight),
                        controlnet_start=float(self.controlnet_start), controlnet_end=float(self.controlnet_end))
            if self.controlnet_module == CANNY:
                unit.update(canny_low=int(self.canny_low), canny_high=int(self.canny_high))
        return replace(self, prompt=prompt.strip(), loras=loras, **unit,
                       user_workflow=chosen_workflow(self.user_workflow), vae=None if vae.lower() in ("", AUTO) else vae,
                       init_image=init_image, mask=mask, outpaint=outpaint,
                       hires_upscaler=upscaler_named(self.hires_upscaler, upscalers) or self.hires_upscaler,
                       hires_sampler=self.hires_sampler if self.hires_sampler == P.SAME_SAMPLER else
                       sampler_key(self.hires_sampler), **hires,
                       mask_blur=int(self.mask_blur),
                       only_masked_padding=int(self.only_masked_padding), strength=float(self.strength), hires_scale=float(self.hires_scale),
                       hires_resize_width=int(self.hires_resize_width), hires_resize_height=int(self.hires_resize_height),
                       hires_strength=float(self.hires_strength), hires_steps=int(self.hires_steps), negative_prompt=self.negative_prompt or "",
                       seed=P.concrete_seed(self.seed, rng), sampler=sampler_key(self.sampler),
                       width=int(self.width), height=int(self.height),
                       num_inference_steps=int(self.num_inference_steps),
                       guidance_scale=None if self.guidance_scale is None else float(self.guidance_scale),
                       model=(self.model or "").strip() or None, batch_count=int(self.batch_count),
                       clip_skip=int(self.clip_skip), variation_strength=float(self.variation_strength),
                       variation_seed=P.concrete_seed(self.variation_seed, rng) if self.varies else None)

    @property
    def hires(self) -> bool:
        """True when the hires fix runs: an upscale above 1 or a resize size (any value validation would refuse is
        read as unset, so its sentence, not a guess, answers)."""
        return hires_wanted(self.hires_scale, self.hires_resize_width, self.hires_resize_height)

    def without_hires(self) -> "GenerationRequest":
        """This request as one pass of the hires fix runs it: no upscale and no resize size."""
        return replace(self, hires_scale=1.0, hires_resize_width=0, hires_resize_height=0)

    def hires_output_size(self) -> tuple[int, int]:
        """The hires fix's output size (after validation): by the resize size when one is set, else by the scale."""
        return hires_target(self.width, self.height, self.hires_scale, self.hires_resize_width,
                            self.hires_resize_height, P.WIDTH.multiple_of or 8)

    @property
    def varies(self) -> bool:
        """True when a variation seed's noise is mixed in (strength above 0)."""
        return P.VARIATION_STRENGTH.problem(self.variation_strength) is None and float(self.variation_strength) > 0

    @property
    def uses_workflow(self) -> bool:
        """True (after validation) when the request runs the user's own ComfyUI workflow (engine/user_workflows.py)."""
        return self.user_workflow is not None

    @property
    def uses_controlnet(self) -> bool:
        """True (after validation) when a ControlNet steers the picture (engine/controlnet.py)."""
        return self.controlnet is not None

    @property
    def inpaints(self) -> bool:
        """True (after validation) for inpaint or outpaint: a mask, or pixels to add (engine/inpaint.py)."""
        return self.mask is not None or any(self.outpaint)

    def model_files(self) -> list[str]:
        """The files made for its model the request names, in words ("LoRA detail", "VAE kl-f8"): what a model
        standing in for it cannot load."""
        loras = ", ".join(use.name for use in self.loras or ())
        return [f"{what} {names}" for what, names in (("LoRAs" if len(self.loras or ()) > 1 else "LoRA", loras),
                                                      ("VAE", self.vae or ""), ("ControlNet", self.controlnet or ""))
                if names]

    def without_model_files(self) -> "GenerationRequest":
        """This request without its LoRAs, VAE and ControlNet: what a model standing in for the one asked runs."""
        return replace(self, loras=(), hires_loras=None, vae=None, controlnet=None, control_image=None)

    def for_image(self, index: int) -> "GenerationRequest":
        """The request of image `index` of the batch, a batch of one: its own seed, or with a variation seed (as in
        A1111) the same seed and its own variation seed, so the batch is variations of one image."""
        if self.variation_seed is not None:
            return replace(self, variation_seed=P.seed_after(self.variation_seed, index), batch_count=1)
        return replace(self, seed=P.seed_after(self.seed, index), batch_count=1)


HIRES_LORAS = "hires_loras"  # a request's extra: the hires pass's LoRAs, given apart from `loras` (a plot's cells)

_FIELDS = frozenset(name for name in GenerationRequest.__dataclass_fields__
                    if name not in ("prompt", "extra", "prompt_template", "negative_template", "hires_loras"))


def lora_list(value: Any) -> list[LoraUse]:
    """The LoRAs a `loras` value names (see params.lora_uses), the weight 1 where none is given."""
    return [LoraUse(str(n).strip(), float(w if w is not None else 1.0)) for n, w in P.lora_uses(value)]


def combined_loras(uses: Sequence[LoraUse]) -> tuple[LoraUse, ...]:
    """One entry per LoRA (named twice, its weights add up), in first-named order; weight 0 has no effect
    and is left out."""
    weights: dict[str, LoraUse] = {}
    for use in uses:
        key = use.name.lower()
        earlier = weights.get(key)
        weights[key] = LoraUse(earlier.name, earlier.weight + use.weight) if earlier else use
    return tuple(use for use in weights.values() if use.weight != 0)


def hires_wanted(scale: Any, resize_width: Any, resize_height: Any) -> bool:
    """True when these hires values ask for the hires fix: an upscale above 1, or a resize width or height above 0."""
    return (P.is_number(scale) and scale > 1) or any(P.is_whole(side) and side > 0
                                                      for side in (resize_width, resize_height))


def chosen_checkpoint(value: Any) -> str | None:
    """The model a hires checkpoint value names; None for the first pass's own (empty, "Use same checkpoint", "same",
    "auto", any case)."""
    name = value.strip() if isinstance(value, str) else ""
    return None if name.lower() in ("", P.SAME_CHECKPOINT.lower(), P.SAME_SAMPLER, AUTO) else name


def hires_problems(req: GenerationRequest, limits: Limits, upscalers: Sequence[str] = UPSCALERS,
                   unknown_model: Callable[[str], str | None] | None = None) -> list[str]:
    """Sentences for the hires fix's values (its upscaler one of `upscalers`, its checkpoint one `unknown_model`
    knows) and its second pass's size and work."""
    problems = [problem for param, value in ((P.HIRES_SCALE, req.hires_scale), (P.HIRES_STRENGTH, req.hires_strength),
                                             (P.HIRES_STEPS, req.hires_steps),
                                             (P.HIRES_RESIZE_WIDTH, req.hires_resize_width),
                                             (P.HIRES_RESIZE_HEIGHT, req.hires_resize_height))
                if (problem := param.problem(value))]
    if problems or not req.hires:
        return problems
    if req.init_image is not None:
        return ["The hires fix is for text to image; for an init image, set the width and height you want."]
    if upscaler_named(req.hires_upscaler, upscalers) is None:
        return [unknown_upscaler(req.hires_upscaler, upscalers)]
    problems = [problem for param, value in ((P.HIRES_PROMPT, req.hires_prompt),
                                             (P.HIRES_NEGATIVE_PROMPT, req.hires_negative_prompt))
                if (problem := param.problem(value))]
    problems += limits.prompt_problems([("hires prompt", req.hires_prompt),
                                        ("hires negative prompt", req.hires_negative_prompt)])
    if req.hires_sampler != P.SAME_SAMPLER and sampler_problem(req.hires_sampler) is not None:
        problems.append(f"{P.HIRES_SAMPLER.label} must be {P.SAME_SAMPLER} or one of {', '.join(load_samplers())} "
                        f"(got {req.hires_sampler!r}).")
    if not isinstance(req.hires_checkpoint, (str, type(None))):
        problems.append(f"{P.HIRES_CHECKPOINT.label} must be a model's name (or {P.SAME_CHECKPOINT}).")
    elif unknown_model is not None and chosen_checkpoint(req.hires_checkpoint) is not None:
        unknown = unknown_model(chosen_checkpoint(req.hires_checkpoint))
        if unknown:
            problems.append(f"{P.HIRES_CHECKPOINT.label}: {unknown}")
    if problems:
        return problems
    if not all(P.is_whole(v) for v in (req.width, req.height, req.num_inference_steps, req.batch_count)):
        return []  # the base values' own sentences say what is wrong
    width, height = hires_target(int(req.width), int(req.height), float(req.hires_scale), int(req.hires_resize_width),
                                 int(req.hires_resize_height), P.WIDTH.multiple_of or 8)
    if max(width, height) > P.WIDTH.maximum:
        return [f"The hires fix would make {width}×{height} pixels; the largest side is {P.WIDTH.maximum:g}. Use a "
                "smaller size, Hires upscale or Resize width/height to."]
    if min(width, height) < P.WIDTH.minimum:
        return [f"The hires fix would make {width}×{height} pixels; the smallest side is {P.WIDTH.minimum:g}. Use a "
                "larger Resize width/height to."]
    steps = int(req.hires_steps) or int(req.num_inference_steps)
    sampler = req.sampler if req.hires_sampler == P.SAME_SAMPLER else req.hires_sampler
    problem = limits.image_problem(width, height, steps, int(req.batch_count),
                                   sampler_model_calls(sampler_key(sampler)))
    return [problem.replace("This request", "The hires pass")] if problem else []


def inpaint_problems(req: GenerationRequest, limits: Limits) -> list[str]:
    """Sentences for the mask and outpaint values, and for the outpainted picture's size and work."""
    outpaint = P.OUTPAINT.problem(req.outpaint)
    if req.mask is None and not outpaint and not any(P.outpaint_amounts(req.outpaint)):
        return []
    if req.init_image is None:
        return ["A mask or outpaint needs an init image: the mask (white = repaint) marks what to redraw in it."]
    problems = [problem for problem in (outpaint, P.MASK_BLUR.problem(req.mask_blur),
                                        P.ONLY_MASKED_PADDING.problem(req.only_masked_padding)) if problem]
    if req.inpaint_area not in INPAINT_AREAS:
        problems.append(f"Inpaint area must be one of {', '.join(INPAINT_AREAS)} (got {req.inpaint_area!r}).")
    if req.masked_content not in MASKED_CONTENTS:
        problems.append(f"{P.MASKED_CONTENT.label} must be one of {', '.join(MASKED_CONTENTS)} "
                        f"(got {req.masked_content!r}).")
    if problems or not all(P.is_whole(v) for v in (req.width, req.height, req.num_inference_steps, req.batch_count)):
        return problems  # the base values' own sentences say what is wrong
    left, right, up, down = (int(n) for n in P.outpaint_amounts(req.outpaint))
    if not left + right + up + down:
        return []
    width, height = int(req.width) + left + right, int(req.height) + up + down
    if max(width, height) > P.WIDTH.maximum:
        return [f"Outpainting would make {width}×{height} pixels; the largest side is {P.WIDTH.maximum:g}. Extend "
                "less or start from a smaller size."]
    problem = limits.image_problem(width, height, int(req.num_inference_steps), int(req.batch_count),
                                   sampler_model_calls(sampler_key(req.sampler)))
    return [problem.replace("This request", "The outpainted image")] if problem else []


def chosen_workflow(value: Any) -> str | None:
    """The user workflow a request's value names; None for none (empty or "none", any case)."""
    name = value.strip() if isinstance(value, str) else ""
    return None if name.lower() in ("", P.NO_WORKFLOW) else name


def workflow_problems(req: GenerationRequest) -> list[str]:
    """Sentences for a user workflow's name and for what cannot go with one (its graph is the user's own)."""
    if not isinstance(req.user_workflow, (str, type(None))):
        return [f"{P.USER_WORKFLOW.label} must be a workflow's name (or {P.NO_WORKFLOW})."]
    if chosen_workflow(req.user_workflow) is None:
        return []
    unused = [what for what, used in (("the hires fix", req.hires),
                                      ("a mask or outpaint", req.mask is not None or any(
                                          n for n in _outpaint_or_none(req.outpaint))),
                                      ("a ControlNet", req.control_image is not None),
                                      ("a variation seed", req.varies)) if used]
    if unused:
        return [f"A ComfyUI workflow of your own runs as you built it: {' and '.join(unused)} cannot be added to it "
                f"(choose {P.USER_WORKFLOW.label} {P.NO_WORKFLOW} for {'them' if len(unused) > 1 else 'that'})."]
    return []


def _outpaint_or_none(value: Any) -> tuple[Any, ...]:
    try:
        return P.outpaint_amounts(value)
    except ValueError:
        return ()


def sampler_key(name: Any) -> str:
    """The samplers.yaml key for a key or a label ("dpmpp_2m_karras" or "DPM++ 2M Karras")."""
    text = str(name or P.SAMPLER.default).strip()
    for key, entry in load_samplers().items():
        if text.lower() in (key, str(entry.get("label", "")).lower()):
            return key
    return text


def sampler_problem(name: Any, subject: str = P.SAMPLER.label) -> str | None:
    """A sentence when `name` is neither a sampler's key nor its label; None when it is one."""
    samplers = load_samplers()
    if sampler_key(name) in samplers:
        return None
    return f"{subject} must be one of {', '.join(samplers)} (got {name!r})."


def validation_errors(req: GenerationRequest, backends: Sequence[str] = (),
                      limits: Limits | None = None, upscalers: Sequence[str] = UPSCALERS,
                      unknown_model: Callable[[str], str | None] | None = None) -> list[str]:
    """Every problem with `req`, each as a sentence; empty when the request is fine."""
    limits = limits or Limits()
    problems = limits.prompt_problems([("prompt", req.prompt), ("negative prompt", req.negative_prompt)])
    if problems:  # a huge text is not worth checking further (nor echoing back)
        return problems
    checked = ((P.PROMPT, req.prompt), (P.NEGATIVE_PROMPT, req.negative_prompt or ""), (P.WIDTH, req.width),
               (P.HEIGHT, req.height), (P.STEPS, req.num_inference_steps), (P.GUIDANCE, req.guidance_scale),
               (P.SEED, req.seed), (P.BATCH_COUNT, req.batch_count), (P.LORAS, req.loras),
               (P.CLIP_SKIP, req.clip_skip), (P.VARIATION_SEED, req.variation_seed),
               (P.VARIATION_STRENGTH, req.variation_strength), (P.FREEU, req.freeu),
               (P.CFG_RESCALE, req.cfg_rescale), (P.TILING, req.tiling))
    for param, value in checked:
        problem = param.problem(value)
        if problem:
            problems.append(problem)
    if not problems:
        problem = limits.image_problem(int(req.width), int(req.height), int(req.num_inference_steps),
                                       int(req.batch_count), sampler_model_calls(sampler_key(req.sampler)))
        if problem:
            problems.append(problem)
    problem = sampler_problem(req.sampler)
    if problem:
        problems.append(problem)
    if req.model is not None and not isinstance(req.model, str):
        problems.append("The model must be a model name.")
    if req.vae is not None and not isinstance(req.vae, str):
        problems.append("The VAE must be a VAE's name (or auto).")
    problems += hires_problems(req, limits, upscalers, unknown_model)
    problems += inpaint_problems(req, limits)
    problems += controlnet_problems(req)
    problems += workflow_problems(req)
    if req.varies and (req.mask is not None or any(n for n in _outpaint_or_none(req.outpaint))):
        problems.append(f"{P.VARIATION_SEED.label} works with text to image (and its hires fix) and image to image: "
                        f"set {P.VARIATION_STRENGTH.label} to 0 for inpaint or outpaint.")
    if req.init_image is not None:
        problem = P.STRENGTH.problem(req.strength)
        if problem:
            problems.append(problem)
        if req.resize_mode not in RESIZE_MODES:
            problems.append(f"Resize mode must be one of {', '.join(RESIZE_MODES)} (got {req.resize_mode!r}).")
    choices = (AUTO, *backends)
    if req.backend not in choices:
        problems.append(f"Backend must be one of {', '.join(choices)} (got {req.backend!r}).")
    return problems
