"""The Image tab's optional boxes (Image to image, Inpaint / outpaint, Hires fix, ControlNet, X/Y/Z plot, the LoRA
picker): their layouts, and the helpers that turn their values into the engine's arguments."""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from engine import params as P
from engine.controlnet import MODULES, preprocess
from engine.errors import InvalidRequest
from engine.inpaint import INPAINT_AREAS, MASKED_CONTENTS
from engine.input_images import RESIZE_MODES, read_input_image
from engine.limits import Limits
from engine.prompt_list import END as LIST_END, START as LIST_START
from engine.prompt_syntax import DEFAULT_WEIGHT, LORA_TAG, LoraUse
from engine.upscale import upscaler_named
from engine.xyz_plot import AXIS_NAMES, axis_choices, axis_type

from .models import controlnet_choices, lora_choices
from .token_counter import layout_token_counter
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


def layout_inpaint_box() -> dict[str, Any]:
    """Inpaint / outpaint, closed until opened: the picture with a white brush to paint what is redrawn, the
    mask's blur, what the masked part starts from, the area redrawn, and how far to extend each side."""
    with gr.Accordion("Inpaint / outpaint", open=False, elem_id="inpaint-box") as inpaint_box:
        mask_editor = gr.ImageEditor(label="Upload a picture, then paint (white) what to redraw", type="pil",
                                     sources=["upload", "clipboard"], height=300, elem_id="mask-editor",
                                     brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed"))
        with gr.Row():
            inpaint_strength = gr.Slider(**widget(P.STRENGTH), elem_id="inpaint-strength")
            mask_blur = gr.Slider(**widget(P.MASK_BLUR), elem_id="mask-blur")
        masked_content = gr.Radio(list(MASKED_CONTENTS), value=P.MASKED_CONTENT.default, label=P.MASKED_CONTENT.label,
                                  info=P.MASKED_CONTENT.help, elem_id="masked-content")
        with gr.Row():
            inpaint_area = gr.Radio(list(INPAINT_AREAS), value=P.INPAINT_AREA.default, label=P.INPAINT_AREA.label,
                                    info=P.INPAINT_AREA.help, elem_id="inpaint-area")
            only_masked_padding = gr.Slider(**widget(P.ONLY_MASKED_PADDING), elem_id="masked-padding")
        with gr.Row():
            outpaint = [gr.Number(0, label=f"Outpaint {side}", minimum=P.OUTPAINT.minimum, maximum=P.OUTPAINT.maximum,
                                  step=P.OUTPAINT.step, precision=0, min_width=90, elem_id=f"outpaint-{side}")
                        for side in P.OUTPAINT_SIDES]
    return dict(inpaint_box=inpaint_box, mask_editor=mask_editor, inpaint_strength=inpaint_strength,
                mask_blur=mask_blur, masked_content=masked_content, inpaint_area=inpaint_area,
                only_masked_padding=only_masked_padding,
                **{f"outpaint_{side}": box for side, box in zip(P.OUTPAINT_SIDES, outpaint)})


INPAINT_INPUTS = ("mask_editor", "inpaint_strength", "mask_blur", "masked_content", "inpaint_area",
                  "only_masked_padding",
                  *(f"outpaint_{side}" for side in P.OUTPAINT_SIDES))  # the box's values a job keeps, in order


def painted_mask(editor: dict[str, Any] | None) -> Image.Image | None:
    """The editor's paint as a mask (white where any layer is painted), or None when nothing is painted."""
    layers = [layer for layer in (editor or {}).get("layers") or [] if isinstance(layer, Image.Image)]
    if not layers:
        return None
    alpha = np.zeros((layers[0].height, layers[0].width), dtype=bool)
    for layer in layers:
        alpha |= np.asarray(layer.convert("RGBA"))[..., 3] > 0
    return Image.fromarray((alpha * 255).astype(np.uint8), "L") if alpha.any() else None


def inpaint_args(values: dict[str, Any]) -> dict[str, Any]:
    """The engine's inpaint arguments of a queued job ({} when the box has no picture, or neither paint nor
    outpaint)."""
    editor = values.get("mask_editor") or {}
    picture = editor.get("background")
    if not isinstance(picture, Image.Image):
        return {}
    mask = painted_mask(editor)
    outpaint = {side: int(values.get(f"outpaint_{side}") or 0) for side in P.OUTPAINT_SIDES}
    if mask is None and not any(outpaint.values()):
        return {}
    strength = values.get("inpaint_strength")
    return {"init_image": picture.convert("RGB"), "mask": mask, "outpaint": outpaint,
            "strength": float(strength) if strength is not None else P.STRENGTH.default,
            "mask_blur": int(values.get("mask_blur") or 0), "masked_content": values.get("masked_content"),
            "inpaint_area": values.get("inpaint_area"),
            "only_masked_padding": int(values.get("only_masked_padding") or 0)}


def layout_hires_box(upscalers: list[str], samplers: list[tuple[str, str]],
                     checkpoints: list[tuple[str, str]]) -> dict[str, Any]:
    """Hires fix, closed until opened: upscale (or A1111's resize width and height), its denoising strength and steps, the upscaler (one of
    `upscalers`: Lanczos, then the model upscalers the engine lists), and A1111's hires checkpoint (one of
    `checkpoints`, hires_checkpoint_choices), hires sampler (same, or one of `samplers`: (label, key)), hires prompt
    and hires negative prompt."""
    with gr.Accordion("Hires fix", open=False, elem_id="hires-box") as hires_box:
        with gr.Row():
            hires_scale = gr.Slider(**widget(P.HIRES_SCALE), elem_id="hires-scale")
            hires_strength = gr.Slider(**widget(P.HIRES_STRENGTH), elem_id="hires-strength")
        with gr.Row():
            hires_resize_width = gr.Slider(**widget(P.HIRES_RESIZE_WIDTH), elem_id="hires-resize-width")
            hires_resize_height = gr.Slider(**widget(P.HIRES_RESIZE_HEIGHT), elem_id="hires-resize-height")
        with gr.Row():
            hires_steps = gr.Slider(**widget(P.HIRES_STEPS), elem_id="hires-steps")
            hires_upscaler = gr.Dropdown(upscalers, value=P.HIRES_UPSCALER.default,
                                         label=P.HIRES_UPSCALER.label, elem_id="hires-upscaler")
            hires_sampler = gr.Dropdown([(P.SAME_SAMPLER, P.SAME_SAMPLER), *samplers], value=P.SAME_SAMPLER,
                                        label=P.HIRES_SAMPLER.label, info=P.HIRES_SAMPLER.help,
                                        elem_id="hires-sampler")
        hires_checkpoint = gr.Dropdown(checkpoints, value=P.SAME_CHECKPOINT, label=P.HIRES_CHECKPOINT.label,
                                       info=P.HIRES_CHECKPOINT.help, allow_custom_value=True,
                                       elem_id="hires-checkpoint")
        with gr.Column(elem_classes="gator-counted"):
            hires_prompt = gr.Textbox(label=P.HIRES_PROMPT.label, info=P.HIRES_PROMPT.help, lines=2,
                                      elem_id="hires-prompt")
            hires_prompt_tokens = layout_token_counter("hires-prompt-tokens")
        with gr.Column(elem_classes="gator-counted"):
            hires_negative_prompt = gr.Textbox(label=P.HIRES_NEGATIVE_PROMPT.label,
                                               info=P.HIRES_NEGATIVE_PROMPT.help, lines=1,
                                               elem_id="hires-negative-prompt")
            hires_negative_prompt_tokens = layout_token_counter("hires-negative-prompt-tokens")
    return dict(hires_box=hires_box, hires_scale=hires_scale, hires_strength=hires_strength, hires_steps=hires_steps,
                hires_sampler=hires_sampler, hires_prompt=hires_prompt, hires_negative_prompt=hires_negative_prompt,
                hires_checkpoint=hires_checkpoint, hires_resize_width=hires_resize_width,
                hires_resize_height=hires_resize_height, hires_prompt_tokens=hires_prompt_tokens, hires_negative_prompt_tokens=hires_negative_prompt_tokens,
                hires_upscaler=hires_upscaler)


HIRES_INPUTS = ("hires_scale", "hires_strength", "hires_steps", "hires_upscaler", "hires_sampler", "hires_prompt",
                "hires_negative_prompt", "hires_checkpoint", "hires_resize_width", "hires_resize_height")
HIRES_CHOICES = ("hires_upscaler", "hires_sampler", "hires_prompt", "hires_negative_prompt",
                 "hires_checkpoint")  # the ones not numbers


def saved_hires(params: dict[str, Any], upscalers: list[str]) -> dict[str, Any]:
    """The hires box's values from an image's saved parameters: its hires fix (the pass's strength is the
    image's denoising strength, as A1111 records it), or off (upscale 1, no resize size) for an image made without
    one. An upscaler this app lacks becomes Lanczos."""
    sizes = (P.HIRES_SCALE, P.HIRES_RESIZE_WIDTH, P.HIRES_RESIZE_HEIGHT)
    if not any(params.get(param.name) for param in sizes):
        return {P.HIRES_SCALE.name: 1.0, P.HIRES_RESIZE_WIDTH.name: 0, P.HIRES_RESIZE_HEIGHT.name: 0,
                P.HIRES_SAMPLER.name: P.SAME_SAMPLER, P.HIRES_PROMPT.name: "", P.HIRES_NEGATIVE_PROMPT.name: "",
                P.HIRES_CHECKPOINT.name: P.SAME_CHECKPOINT}
    known = upscaler_named(params.get(P.HIRES_UPSCALER.name), upscalers)
    return {**{param.name: params.get(param.name) or param.default for param in sizes},
            P.HIRES_STRENGTH.name: params.get(P.STRENGTH.name) or P.HIRES_STRENGTH.default,
            P.HIRES_STEPS.name: params.get(P.HIRES_STEPS.name) or 0,
            P.HIRES_UPSCALER.name: known or P.HIRES_UPSCALER.default,
            P.HIRES_SAMPLER.name: params.get(P.HIRES_SAMPLER.name) or P.SAME_SAMPLER,
            P.HIRES_PROMPT.name: params.get(P.HIRES_PROMPT.name) or "",
            P.HIRES_NEGATIVE_PROMPT.name: params.get(P.HIRES_NEGATIVE_PROMPT.name) or "",
            P.HIRES_CHECKPOINT.name: params.get(P.HIRES_CHECKPOINT.name) or P.SAME_CHECKPOINT}


def saved_plot(params: dict[str, Any]) -> dict[str, Any] | None:
    """The X/Y/Z box's values from a grid's saved parameters (ours nest them under "plot"; A1111's text gives
    them flat, its axis types by label), or None for an image that is not a grid."""
    plot = params.get("plot") or {param.name: params.get(param.name) for param in P.PLOT_PARAMS}
    if not plot.get(P.PLOT_SCRIPT.name):
        return None
    out: dict[str, Any] = {}
    for axis in AXIS_NAMES:
        kind_name, values_name = f"{axis.lower()}_type", f"{axis.lower()}_values"
        try:
            kind = axis_type(plot.get(kind_name))
        except InvalidRequest:  # an axis this app does not plot (A1111 has many more): left out
            kind = None
        out[kind_name] = kind.key if kind else P.NO_AXIS
        out[values_name] = str(plot.get(values_name) or "") if kind else ""
    return out


PLOT_INPUTS = tuple(f"{axis.lower()}_{part}" for axis in AXIS_NAMES for part in ("type", "values"))
PLOT_EXAMPLE = "2, 3  ·  1-10 (+3)  ·  10-20 [3]"


def layout_xyz_box() -> dict[str, Any]:
    """X/Y/Z plot, closed until opened: what each axis varies and its values (A1111's syntax), and Plot, which
    runs the form once per cell like Generate and adds the labelled grid."""
    with gr.Accordion("X/Y/Z plot", open=False, elem_id="xyz-box") as xyz_box:
        boxes: dict[str, Any] = {}
        params = {param.name: param for param in P.PLOT_PARAMS}
        for axis in AXIS_NAMES:
            kind, values = params[f"{axis.lower()}_type"], params[f"{axis.lower()}_values"]
            with gr.Row(equal_height=True):
                boxes[kind.name] = gr.Dropdown(axis_choices(), value="seed" if axis == "X" else P.NO_AXIS,
                                               label=kind.label, scale=1, min_width=140,
                                               elem_id=f"xyz-{axis.lower()}-type")
                boxes[values.name] = gr.Textbox(label=values.label, placeholder=PLOT_EXAMPLE, info=values.help
                                                if axis == "X" else None, scale=3, elem_id=f"xyz-{axis.lower()}-values")
        plot = gr.Button("Plot", variant="primary", size="sm", elem_id="xyz-plot")
    return dict(**boxes, plot=plot, xyz_box=xyz_box)


LIST_INPUTS = ("prompt_list", "list_position", "iterate_seed", "same_seed")


def layout_prompt_list_box() -> dict[str, Any]:
    """Prompts from file or textbox (A1111's script), closed until opened: a prompt (or A1111's `--prompt ...
    --steps ...` form) per line, where each goes in the form's prompt, A1111's two seed options, and Generate from
    the list, which runs the form once per line like Generate."""
    with gr.Accordion("Prompts from file or textbox", open=False, elem_id="prompt-list-box") as prompt_list_box:
        prompt_list = gr.Textbox(label="Prompts, one per line", lines=4, elem_id="prompt-list",
                                 placeholder='a red fox in the snow\n--prompt "a harbour at dawn" --steps 30 --n_iter 2',
                                 info="Each line makes its own image (a batch with --n_iter); A1111's --prompt, "
                                      "--negative_prompt, --steps, --cfg_scale, --seed, --width, --height, "
                                      "--sampler_name... set that line's values.")
        with gr.Row(equal_height=True):
            list_position = gr.Radio([("the start", LIST_START), ("the end", LIST_END)], value=LIST_END,
                                     label="Each line goes at the … of the prompt above", elem_id="list-position")
            iterate_seed = gr.Checkbox(False, label="Iterate seed every line", elem_id="iterate-seed")
            same_seed = gr.Checkbox(False, label="Use same random seed for all lines", elem_id="same-seed")
        from_list = gr.Button("Generate from the list", variant="primary", size="sm", elem_id="generate-list")
        prompt_list_file = gr.File(label="Or open a text file of prompts", file_types=[".txt"], type="filepath",
                                   elem_id="prompt-list-file")
    return dict(prompt_list=prompt_list, list_position=list_position, iterate_seed=iterate_seed, same_seed=same_seed,
                from_list=from_list, prompt_list_file=prompt_list_file, prompt_list_box=prompt_list_box)


def layout_controlnet_box(controlnets: list[dict[str, Any]]) -> dict[str, Any]:
    """ControlNet, closed until opened: the control image beside its preprocessed map, the ControlNet, the
    preprocessor, the weight, guidance start and end, and canny's thresholds."""
    with gr.Accordion("ControlNet", open=False, elem_id="controlnet-box") as controlnet_box:
        with gr.Row(equal_height=False):
            control_image = gr.Image(label="Control image", type="filepath",
                                     sources=["upload", "clipboard"], height=180, elem_id="control-image")
            control_map = gr.Image(label="Preprocessed map", type="pil", interactive=False, height=180,
                                   elem_id="control-map")
        with gr.Row():
            controlnet = gr.Dropdown(controlnet_choices(controlnets), value=P.NO_CONTROLNET, label=P.CONTROLNET.label,
                                     info=P.CONTROLNET.help, allow_custom_value=True, elem_id="controlnet-model")
            controlnet_module = gr.Dropdown(list(MODULES), value=P.CONTROLNET_MODULE.default,
                                            label=P.CONTROLNET_MODULE.label, info=P.CONTROLNET_MODULE.help,
                                            elem_id="controlnet-module")
        with gr.Row():
            controlnet_weight = gr.Slider(**widget(P.CONTROLNET_WEIGHT), elem_id="controlnet-weight")
            controlnet_start = gr.Slider(**widget(P.CONTROLNET_START), elem_id="controlnet-start")
            controlnet_end = gr.Slider(**widget(P.CONTROLNET_END), elem_id="controlnet-end")
        with gr.Row():
            canny_low = gr.Slider(**widget(P.CANNY_LOW), elem_id="canny-low")
            canny_high = gr.Slider(**widget(P.CANNY_HIGH), elem_id="canny-high")
    return dict(controlnet_box=controlnet_box, control_image=control_image, control_map=control_map,
                controlnet=controlnet, controlnet_module=controlnet_module, controlnet_weight=controlnet_weight,
                controlnet_start=controlnet_start, controlnet_end=controlnet_end, canny_low=canny_low,
                canny_high=canny_high)


CONTROLNET_INPUTS = ("control_image", "controlnet", "controlnet_module", "controlnet_weight", "controlnet_start",
                     "controlnet_end", "canny_low", "canny_high")  # the box's values a job keeps, in order
PREVIEW_SIDE = 512  # the map preview is made on the control image scaled to fit this square


def controlnet_args(values: dict[str, Any]) -> dict[str, Any]:
    """The engine's ControlNet arguments of a queued job ({} while no ControlNet is chosen: a control image left in
    the box is then not used)."""
    name = values.get("controlnet")
    if not name or name == P.NO_CONTROLNET:
        return {}
    return {"control_image": values.get("control_image") or None, "controlnet": name,
            **{key: values.get(key) for key in CONTROLNET_INPUTS[2:] if values.get(key) is not None}}


def control_map_preview(path: str | None, module: str, low: Any, high: Any, limits: Limits) -> Image.Image | None:
    """What the preprocessor makes of the control image (scaled to fit PREVIEW_SIDE), or None without one."""
    if not path:
        return None
    try:
        image = read_input_image(path, limits, "control image")
    except InvalidRequest:  # Generate says why
        return None
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    thresholds = (int(low), int(high)) if P.is_number(low) and P.is_number(high) else ()
    return preprocess(image, module if module in MODULES else P.CONTROLNET_MODULE.default, *thresholds)


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
    return {k: v for k, v in (args.get("hires") or {}).items() if v is not None and v != ""}


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
