"""PNG info: the generation parameters any PNG carries, under the parameter schema's names.

Ours (the `gator` JSON chunk, then its A1111 text), A1111's and Forge's (`parameters` text), and ComfyUI's
(the `prompt` chunk: the API-format graph, read for the sampler's seed, steps, cfg and sampler, the
prompts wired into it, the latent's size, the checkpoint and a ControlNetApplyAdvanced before the sampler). `source` says which was read ("gator", "a1111", "comfyui workflow").
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from . import params as P
from .comfyui import file_stem
from .controlnet import NONE
from .errors import InvalidRequest
from .file_hashes import without_hash
from .backends.comfyui import our_sampler
from .embedded_text import PARAMETERS, UnreadableImage, embedded_texts
from .outputs import COMFYUI_CHUNK, JSON_CHUNK, parameters_from_texts
from .request import sampler_key, sampler_problem

logger = logging.getLogger(__name__)

SAMPLER_CLASSES = ("KSampler", "KSamplerAdvanced")
CONTROLNET_APPLY_CLASSES = ("ControlNetApplyAdvanced",)  # outputs positive, negative


def png_info(path: str | Path) -> dict[str, Any]:
    """The parameters `path` carries ({} when none), with "source": gator, a1111 or comfyui workflow.

    Raises InvalidRequest with a sentence when the file is not an image or its texts cannot be read."""
    try:
        text = embedded_texts(path)
    except UnreadableImage as err:
        raise InvalidRequest(str(err)) from None
    if JSON_CHUNK in text or PARAMETERS in text:
        return _saved_parameters(text, path)
    if COMFYUI_CHUNK in text:
        try:
            graph = json.loads(text[COMFYUI_CHUNK])
        except (json.JSONDecodeError, RecursionError):
            logger.info("Unreadable ComfyUI prompt chunk in %s", path)
            return {}
        params = comfyui_parameters(graph) if isinstance(graph, dict) else {}
        return {**params, "source": "comfyui workflow"} if params else {}
    return {}


def _saved_parameters(text: dict[str, str], path: str | Path) -> dict[str, Any]:
    """The parameters of an image this app or A1111 made (its `text`), under this app's names ({} for none)."""
    params = parameters_from_texts(text, path)
    if isinstance(params.get("sampler"), str):  # A1111 writes its label ("DPM++ 2M Karras")
        params["sampler"] = sampler_key(params["sampler"])
    if isinstance(params.get(P.HIRES_CHECKPOINT.name), str):  # A1111 writes "name [hash]"
        params[P.HIRES_CHECKPOINT.name] = without_hash(params[P.HIRES_CHECKPOINT.name])
    if isinstance(params.get(P.HIRES_SAMPLER.name), str):  # likewise; one this app lacks: the first pass's
        known = sampler_key(params[P.HIRES_SAMPLER.name])
        params[P.HIRES_SAMPLER.name] = known if sampler_problem(known) is None else P.SAME_SAMPLER
    return {**params, "source": "gator" if JSON_CHUNK in text else "a1111"} if params else {}


def comfyui_parameters(graph: Mapping[str, Any]) -> dict[str, Any]:
    """Prompt, negative prompt, seed, steps, guidance, sampler, size and model from a ComfyUI API graph (the
    first sampler's; what the graph does not say is left out)."""
    sampler = next((node for node in graph.values() if isinstance(node, dict)
                    and node.get("class_type") in SAMPLER_CLASSES), None)
    if sampler is None:
        return {}
    inputs = _inputs(sampler)
    out: dict[str, Any] = {}
    for ours, theirs in (("seed", "seed"), ("seed", "noise_seed"), ("num_inference_steps", "steps"),
                         ("guidance_scale", "cfg")):
        if isinstance(inputs.get(theirs), (int, float)) and not isinstance(inputs.get(theirs), bool):
            out.setdefault(ours, inputs[theirs])
    if isinstance(inputs.get("sampler_name"), str):
        out["sampler"] = our_sampler(inputs["sampler_name"], inputs.get("scheduler"))
    for ours, theirs in (("prompt", "positive"), ("negative_prompt", "negative")):
        text = _text_of(graph, inputs.get(theirs))
        if text is not None:
            out[ours] = text
    latent = _node(graph, inputs.get("latent_image"))
    if latent is not None:
        size = _inputs(latent)
        if isinstance(size.get("width"), int) and isinstance(size.get("height"), int):
            out["width"], out["height"] = size["width"], size["height"]
    model = _upstream(graph, inputs.get("model"), "ckpt_name") or _upstream(graph, inputs.get("model"), "unet_name")
    if model:
        out["model"] = model
    return {**out, **_controlnet_of(graph, inputs.get("positive"))}


def _controlnet_of(graph: Mapping[str, Any], link: Any) -> dict[str, Any]:
    """The ControlNet of a ControlNetApplyAdvanced the sampler's positive comes from ({} without one): its file's
    name, strength and percents (the map is the graph's image as it is: preprocessor none)."""
    node = _node(graph, link)
    if node is None or node.get("class_type") not in CONTROLNET_APPLY_CLASSES:
        return {}
    inputs = _inputs(node)
    loader = _node(graph, inputs.get("control_net")) or {}
    name = _inputs(loader).get("control_net_name")
    if not isinstance(name, str):
        return {}
    out: dict[str, Any] = {P.CONTROLNET.name: file_stem(name), P.CONTROLNET_MODULE.name: NONE}
    for ours, theirs in ((P.CONTROLNET_WEIGHT, "strength"), (P.CONTROLNET_START, "start_percent"),
                         (P.CONTROLNET_END, "end_percent")):
        if isinstance(inputs.get(theirs), (int, float)) and not isinstance(inputs.get(theirs), bool):
            out[ours.name] = float(inputs[theirs])
    return out


def _inputs(node: dict[str, Any]) -> dict[str, Any]:
    """A node's inputs ({} when the graph gives something else)."""
    inputs = node.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def _node(graph: Mapping[str, Any], link: Any) -> dict[str, Any] | None:
    if isinstance(link, list) and len(link) == 2 and str(link[0]) in graph and isinstance(graph[str(link[0])], dict):
        return graph[str(link[0])]
    return None


def _text_of(graph: Mapping[str, Any], link: Any, depth: int = 8) -> str | None:
    """The text of the CLIPTextEncode a conditioning link comes from (through FluxGuidance, a ControlNet's apply
    node and the like)."""
    node = _node(graph, link)
    while node is not None and depth > 0:
        inputs = _inputs(node)
        if isinstance(inputs.get("text"), str):
            return inputs["text"]
        if node.get("class_type") in CONTROLNET_APPLY_CLASSES:  # output 0 carries its positive, 1 its negative
            link = inputs.get("negative" if link[1] == 1 else "positive")
        else:
            link = inputs.get("conditioning")
        node, depth = _node(graph, link), depth - 1
    return None


def _upstream(graph: Mapping[str, Any], link: Any, key: str, depth: int = 16) -> str | None:
    """`key` of the first node up the `model` links that has it (the loader behind LoRAs and samplings)."""
    node = _node(graph, link)
    while node is not None and depth > 0:
        inputs = _inputs(node)
        if isinstance(inputs.get(key), str):
            return inputs[key]
        node, depth = _node(graph, inputs.get("model")), depth - 1
    return None
