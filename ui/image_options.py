"""The Image tab's optional boxes (Image to image, Hires fix, the LoRA picker): their layouts, and the helpers
that turn their values into the engine's arguments."""
from __future__ import annotations

from typing import Any

import gradio as gr

from engine import params as P
from engine.input_images import RESIZE_MODES
from engine.prompt_syntax import DEFAULT_WEIGHT, LORA_TAG, LoraUse
from engine.upscale import UPSCALERS

from .models import lora_choices
from .widgets import widget


def layout_img2img_box() -> dict[str, Any]:
    """Image to image, closed until opened: the init image, denoising strength, resize mode, keep its size."""
    with gr.Accordion("Image to image", open=False, elem_id="img2img-box") as img2img_box:
        with gr.Row(equal_height=False):
            init_image = gr.Image(label="Init image (Generate redraws it)", type="filepath",
                                  sources=["upload", "clipboard"], height=180, elem_id="init-image", scale=2)
            with gr.Column(scale=3):
                strength = gr.Slider(**widget(P.STRENGTH), elem_id="strength")
                resize_mode = gr.Dropdown(list(RESIZE_MODES), value=P.RESIZE_MODE.default,
                                          label=P.RESIZE_MODE.label, elem_id="resize-mode")
                init_size = gr.Checkbox(True, label="Keep the init image's size (else width and height below)",
                                        elem_id="init-size")
    return dict(img2img_box=img2img_box, init_image=init_image, strength=strength, resize_mode=resize_mode,
                init_size=init_size)


def layout_hires_box() -> dict[str, Any]:
    """Hires fix, closed until opened: upscale, its denoising strength and steps, the upscaler."""
    with gr.Accordion("Hires fix", open=False, elem_id="hires-box"):
        with gr.Row():
            hires_scale = gr.Slider(**widget(P.HIRES_SCALE), elem_id="hires-scale")
            hires_strength = gr.Slider(**widget(P.HIRES_STRENGTH), elem_id="hires-strength")
        with gr.Row():
            hires_steps = gr.Slider(**widget(P.HIRES_STEPS), elem_id="hires-steps")
            hires_upscaler = gr.Dropdown(list(UPSCALERS), value=P.HIRES_UPSCALER.default,
                                         label=P.HIRES_UPSCALER.label, elem_id="hires-upscaler")
    return dict(hires_scale=hires_scale, hires_strength=hires_strength, hires_steps=hires_steps,
                hires_upscaler=hires_upscaler)


def layout_lora_row(loras: list[dict[str, Any]]) -> dict[str, Any]:
    """A1111's extra networks: a LoRA goes into the prompt as a tag, at the weight chosen."""
    with gr.Row(equal_height=False):
        lora = gr.Dropdown(lora_choices(loras), value=None, label="LoRA", info="Adds <lora:name:weight> to the prompt.",
                           elem_id="lora-pick", scale=3)
        lora_weight = gr.Slider(minimum=P.LORAS.minimum, maximum=P.LORAS.maximum, step=P.LORAS.step,
                                value=DEFAULT_WEIGHT, label="LoRA weight", elem_id="lora-weight", scale=3)
        lora_add = gr.Button("Add to prompt", size="sm", scale=1, min_width=110, elem_id="lora-add")
    return dict(lora=lora, lora_weight=lora_weight, lora_add=lora_add)


def hires_args(args: dict[str, Any]) -> dict[str, Any]:
    """The engine's hires-fix arguments of a queued job (those left empty take the engine's defaults)."""
    return {k: v for k, v in (args.get("hires") or {}).items() if v is not None}


def image_to_image_args(args: dict[str, Any]) -> dict[str, Any]:
    """The engine's image-to-image arguments of a queued job ({} without an init image)."""
    if not args.get("init_image"):
        return {}
    strength = args.get("strength")
    return {"init_image": args["init_image"], "resize_mode": args.get("resize_mode") or P.RESIZE_MODE.default,
            "strength": float(strength) if strength is not None else P.STRENGTH.default}


def add_lora_tag(prompt: str, name: str | None, weight: Any):
    """The prompt with `<lora:name:weight>` (a tag of the same LoRA already there takes the new weight)."""
    if not name:
        return gr.skip()
    tag = LoraUse(name, float(weight if weight is not None else DEFAULT_WEIGHT)).tag()
    prompt = prompt or ""
    same = [m for m in LORA_TAG.finditer(prompt) if m.group(1).strip().lower() == name.lower()]
    if same:
        return prompt[:same[0].start()] + tag + prompt[same[0].end():]
    return f"{prompt.rstrip()} {tag}".strip()
