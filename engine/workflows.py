"""ComfyUI workflow templates (presets/workflows/*.json) and structural parameter binding.

A template file holds an API-format `graph`, `bindings` that name where each parameter lives
(`{"seed": [["31", "seed"]], ...}`: a list of [node_id, input_name] paths; an empty list means the
template accepts the parameter but has no use for it) and `defaults` applied before the caller's
values. Binding deep-copies the graph and assigns values into it; no text is ever substituted, so
any prompt text survives exactly. LoRAs are added to a bound graph the same way (`add_loras`): LoraLoader
nodes chained after the loader whose MODEL and CLIP the graph uses, found by following its links; so are a VAE
file (`use_vae`), an init image for image-to-image (`use_init_image`), an image with a mask for inpainting
(`use_inpaint`) and a ControlNet steering the samplers' conditioning (`use_controlnet`).
"""
from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .config import PRESETS_DIR
from .errors import GatorError
from .inpaint import LATENT_FILLS, LATENT_NOISE, ORIGINAL

log = logging.getLogger(__name__)

TEMPLATES_DIR = PRESETS_DIR / "workflows"  # generation graphs (a sampler's parameters)
POSTPROCESS_DIR = TEMPLATES_DIR / "postprocess"  # graphs that change a finished image (a model upscale)


class WorkflowError(GatorError, ValueError):
    """A template is malformed, missing, or was given a parameter it does not know."""


@dataclass(frozen=True)
class WorkflowTemplate:
    """One API-format graph plus where its parameters go."""

    name: str
    graph: dict[str, Any]
    bindings: dict[str, list[tuple[str, str]]]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def accepts(self, key: str) -> bool:
        """True when `key` is a parameter of this template (even one it ignores)."""
        return key in self.bindings

    def node_ids(self, class_type: str) -> list[str]:
        """Ids of the nodes of one class, in graph order."""
        return [nid for nid, node in self.graph.items() if node.get("class_type") == class_type]


def _check_paths(name: str, graph: Mapping[str, Any], bindings: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    checked: dict[str, list[tuple[str, str]]] = {}
    for key, paths in bindings.items():
        if not isinstance(paths, list):
            raise WorkflowError(f"Workflow {name!r}: binding {key!r} must be a list of [node_id, input] pairs.")
        out: list[tuple[str, str]] = []
        for path in paths:
            if not (isinstance(path, (list, tuple)) and len(path) == 2):
                raise WorkflowError(f"Workflow {name!r}: binding {key!r} has a malformed path {path!r}.")
            node_id, input_name = str(path[0]), str(path[1])
            node = graph.get(node_id)
            if not isinstance(node, dict):
                raise WorkflowError(f"Workflow {name!r}: binding {key!r} points at node {node_id}, which the graph lacks.")
            if input_name not in node.get("inputs", {}):
                raise WorkflowError(
                    f"Workflow {name!r}: binding {key!r} points at input {input_name!r} of node {node_id} "
                    f"({node.get('class_type')}), which that node lacks.")
            out.append((node_id, input_name))
        checked[key] = out
    return checked


def template_from_dict(name: str, data: Mapping[str, Any]) -> WorkflowTemplate:
    """Build and check a template from its JSON data."""
    graph = data.get("graph")
    if not isinstance(graph, dict) or not graph:
        raise WorkflowError(f"Workflow {name!r} has no graph.")
    for node_id, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node or not isinstance(node.get("inputs"), dict):
            raise WorkflowError(f"Workflow {name!r}: node {node_id} needs a class_type and an inputs object.")
    bindings = _check_paths(name, graph, data.get("bindings") or {})
    defaults = dict(data.get("defaults") or {})
    unknown = sorted(set(defaults) - set(bindings))
    if unknown:
        raise WorkflowError(f"Workflow {name!r}: defaults for unknown parameters {unknown}.")
    return WorkflowTemplate(name=name, graph=graph, bindings=bindings, defaults=defaults,
                            description=str(data.get("description", "")))


def list_templates(directory: Path | None = None) -> list[str]:
    """Names of the templates found in `directory` (default presets/workflows)."""
    directory = Path(directory or TEMPLATES_DIR)
    return sorted(p.stem for p in directory.glob("*.json"))


def load_template(name: str, directory: Path | None = None) -> WorkflowTemplate:
    """Read presets/workflows/<name>.json; raise WorkflowError when missing or malformed."""
    directory = Path(directory or TEMPLATES_DIR)
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise WorkflowError(f"{name!r} is not a workflow template name.")
    path = directory / f"{name}.json"
    if not path.is_file():
        raise WorkflowError(f"Workflow template {name!r} was not found in {directory}.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WorkflowError(f"Workflow template {name!r} could not be read: {exc}.") from exc
    return template_from_dict(name, data)


def bind(template: WorkflowTemplate, values: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh API-format graph with the template's defaults, then `values`, assigned in place.

    Values of None are skipped (the template's own value stays). Unknown keys raise WorkflowError.
    """
    unknown = sorted(k for k in values if k not in template.bindings)
    if unknown:
        raise WorkflowError(
            f"Workflow {template.name!r} has no parameter {', '.join(map(repr, unknown))} "
            f"(it accepts {', '.join(sorted(template.bindings))}).")
    graph = copy.deepcopy(template.graph)
    merged = {**template.defaults, **{k: v for k, v in values.items() if v is not None}}
    for key, value in merged.items():
        for node_id, input_name in template.bindings[key]:
            node = graph.get(node_id)
            if node is None or input_name not in node.get("inputs", {}):
                raise WorkflowError(f"Workflow {template.name!r}: node {node_id} input {input_name!r} is missing.")
            node["inputs"][input_name] = copy.deepcopy(value)
    return graph


# ---------------------------------------------------------------------------- a VAE file
def use_vae(graph: Mapping[str, Any], vae_file: str) -> dict[str, Any]:
    """A copy of `graph` whose every `vae` input (VAEDecode, VAEEncode...) takes a VAELoader of `vae_file` instead
    of the checkpoint's own VAE."""
    out = copy.deepcopy(dict(graph))
    node_id = str(_next_id(out))
    out[node_id] = {"class_type": "VAELoader", "inputs": {"vae_name": vae_file}}
    for node in list(out.values()):
        if is_link(node.get("inputs", {}).get("vae")):
            node["inputs"]["vae"] = [node_id, 0]
    return out


# ---------------------------------------------------------------------------- LoRAs
LORA_CLASS = "LoraLoader"  # inputs model, clip, lora_name, strength_model, strength_clip; outputs MODEL, CLIP


def is_link(value: Any) -> bool:
    """True for an API-format link: [source node id, output index]."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and not isinstance(value[1], bool)


def _links_to(value: Any, source: tuple[str, int]) -> bool:
    """True when `value` is a link to output `source` (node id, output index)."""
    return is_link(value) and (str(value[0]), value[1]) == source


def _rewire(graph: Mapping[str, Any], source: tuple[str, int], link: list, only: Sequence[str] | None = None) -> None:
    """Every input of `graph` (of its nodes `only`, when given) linked to output `source` (node id, output index)
    takes `link` instead, in place."""
    for node_id, node in graph.items():
        if only is not None and node_id not in only:
            continue
        inputs = node.get("inputs", {})
        for name, value in inputs.items():
            if _links_to(value, source):
                inputs[name] = list(link)


def _next_id(graph: Mapping[str, Any]) -> int:
    """The first free node id after the graph's highest numeric one."""
    return max((int(k) for k in graph if str(k).isdigit()), default=0) + 1


def source_of(graph: Mapping[str, Any], input_name: str) -> tuple[str, int] | None:
    """The (node id, output index) that first provides what every `input_name` input ("model", "clip") carries:
    each such link is followed upstream through nodes that take that input themselves (ModelSamplingFlux,
    CLIPSetLastLayer...) to the loader that made it. None when no node has such an input. WorkflowError when
    the links lead to more than one loader (a graph with two models)."""
    roots: set[tuple[str, int]] = set()
    for node in graph.values():
        link = node.get("inputs", {}).get(input_name)
        seen: set[str] = set()
        while is_link(link) and str(link[0]) in graph and str(link[0]) not in seen:
            seen.add(str(link[0]))
            upstream = graph[str(link[0])].get("inputs", {}).get(input_name)
            if not is_link(upstream):
                roots.add((str(link[0]), link[1]))
                break
            link = upstream
    if len(roots) > 1:
        raise WorkflowError(f"the graph has {len(roots)} sources of {input_name!r} "
                            f"({', '.join(f'node {n} output {i}' for n, i in sorted(roots))}), not one.")
    return next(iter(roots), None)


def add_loras(graph: Mapping[str, Any], loras: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """A copy of the API-format `graph` with one LoraLoader per (lora file, weight), in order, chained right after
    the node that provides MODEL and CLIP (see `source_of`); every input that consumed those outputs (the
    sampler's model, each CLIPTextEncode's clip, any other) then takes the last LoraLoader's instead. The weight
    goes to both strength_model and strength_clip. New node ids follow the graph's highest numeric id. No LoRAs:
    the graph unchanged. WorkflowError when the graph has no single MODEL and CLIP source."""
    out = copy.deepcopy(dict(graph))
    if not loras:
        return out
    model, clip = source_of(out, "model"), source_of(out, "clip")
    if model is None or clip is None:
        raise WorkflowError(f"the graph has no {'model' if model is None else 'CLIP'} input to put a LoRA in front of.")
    first = _next_id(out)
    last = str(first + len(loras) - 1)
    _rewire(out, model, [last, 0])  # the graph's consumers take the last LoraLoader's outputs (added below)
    _rewire(out, clip, [last, 1])
    model_link, clip_link = [model[0], model[1]], [clip[0], clip[1]]
    for number, (lora_file, weight) in enumerate(loras):
        node_id = str(first + number)
        out[node_id] = {"class_type": LORA_CLASS, "inputs": {
            "model": model_link, "clip": clip_link, "lora_name": lora_file,
            "strength_model": float(weight), "strength_clip": float(weight)}}
        model_link, clip_link = [node_id, 0], [node_id, 1]
    log.debug("added %d LoraLoader node(s) after node %s (MODEL) and node %s (CLIP)", len(loras), model[0], clip[0])
    return out


# ---------------------------------------------------------------------------- Clip skip
CLIP_LAST_LAYER_CLASS = "CLIPSetLastLayer"  # inputs clip, stop_at_clip_layer (-1: the last layer); output CLIP


def use_clip_skip(graph: Mapping[str, Any], clip_skip: int) -> dict[str, Any]:
    """A copy of `graph` whose CLIP stops at layer -`clip_skip` (A1111's Clip skip 2 is ComfyUI's -2): a
    CLIPSetLastLayer right after the node that provides CLIP, which every consumer of it then takes instead.
    Clip skip 1: the graph unchanged. WorkflowError when the graph has no single CLIP source."""
    out = copy.deepcopy(dict(graph))
    if clip_skip <= 1:
        return out
    clip = source_of(out, "clip")
    if clip is None:
        raise WorkflowError("the graph has no CLIP input to set a clip skip on.")
    node_id = str(_next_id(out))
    _rewire(out, clip, [node_id, 0])  # before the node is added: its own input keeps the source
    out[node_id] = {"class_type": CLIP_LAST_LAYER_CLASS,
                    "inputs": {"clip": [clip[0], clip[1]], "stop_at_clip_layer": -int(clip_skip)}}
    return out


# ---------------------------------------------------------------------------- an init image (img2img)
LATENT_INPUT = "latent_image"  # the samplers' (KSampler, SamplerCustomAdvanced) starting latent
LOAD_IMAGE_CLASS = "LoadImage"  # input image: a file in the server's input folder; outputs IMAGE, MASK
ENCODE_CLASS = "VAEEncode"  # inputs pixels, vae; output LATENT
LOAD_MASK_CLASS = "LoadImageMask"  # inputs image (a file in the input folder), channel; output MASK
MASK_CHANNEL = "red"  # of a grey mask image: white (1.0) is repainted
NOISE_MASK_CLASS = "SetLatentNoiseMask"  # inputs samples, mask; output LATENT (the sampler changes only the mask)
# A1111's latent noise / latent nothing under the mask, with core nodes (comfy_extras nodes_mask, nodes_custom_sampler)
THRESHOLD_MASK_CLASS = "ThresholdMask"  # inputs mask, value; output MASK (1 where the mask is above the value)
COMPOSITE_LATENT_CLASS = "LatentCompositeMasked"  # inputs destination, source, x, y, resize_source, mask; LATENT
ADD_NOISE_CLASS = "AddNoise"  # inputs model, noise, sigmas, latent_image; LATENT (noise x the sigmas' span added)
RANDOM_NOISE_CLASS = "RandomNoise"  # input noise_seed; output NOISE (the noise a KSampler draws for that seed)
SCHEDULER_CLASS = "BasicScheduler"  # inputs model, scheduler, steps, denoise; output SIGMAS
FIRST_SIGMA_CLASS = "SetFirstSigma"  # inputs sigmas, sigma; output SIGMAS
UNIT_NOISE_SIGMAS = (1, 1.0)  # one step, its first sigma set to 1: AddNoise adds the seed's noise as it is drawn


def use_init_image(graph: Mapping[str, Any], image_name: str, denoise: float) -> dict[str, Any]:
    """A copy of `graph` that starts from the server's input image `image_name` instead of an empty latent.

    The node that first makes the samplers' latent (EmptyLatentImage, EmptySD3LatentImage...: see `source_of`)
    gives way to LoadImage -> VAEEncode, which encodes with the VAE the graph decodes with; every input that
    took that latent takes the encoded one. `denoise` goes to each sampler that started from it: KSampler's own
    input, or the BasicScheduler behind a custom sampler's sigmas. New node ids follow the graph's highest
    numeric id. WorkflowError when the graph has no latent to replace, no VAE, or no denoise to set.
    """
    return _start_from(graph, image_name, None, denoise).graph


def use_inpaint(graph: Mapping[str, Any], image_name: str, mask_name: str, denoise: float,
                masked_content: str = ORIGINAL, seed: int = 0) -> dict[str, Any]:
    """`use_init_image`, with the samplers redrawing only where the server's input image `mask_name` is white:
    LoadImage -> VAEEncode -> SetLatentNoiseMask (the mask from LoadImageMask, its red channel) in place of the empty
    latent. New node ids: LoadImage, VAEEncode, LoadImageMask, SetLatentNoiseMask, after the graph's highest.

    A1111's `masked_content` "latent nothing" puts the graph's own empty latent under the mask (zeros of the VAE's
    latents: the model's zeros for SD and SDXL, as in A1111; FLUX's and SD3's latents are shifted, so theirs sit a
    little off zero), "latent noise" the `seed`'s noise (RandomNoise through AddNoise at sigma 1 on that empty latent),
    both by LatentCompositeMasked with the mask thresholded at one half (A1111 rounds its latent mask) before
    SetLatentNoiseMask; "fill" is a picture already filled (engine/inpaint.py), so it changes nothing here. Checked
    on a real ComfyUI 0.3.64: zeros and the KSampler's own noise for the seed under the mask, the encoding outside."""
    started = _start_from(graph, image_name, mask_name, denoise, keep_empty_latent=masked_content in LATENT_FILLS)
    out = started.graph
    if masked_content not in LATENT_FILLS:
        return out
    first = _next_id(out)
    ids = [str(first + n) for n in range(6)]
    fill = list(started.empty_latent)
    if masked_content == LATENT_NOISE:
        model = source_of(out, "model")
        if model is None:
            raise WorkflowError("the graph has no model to make latent noise for.")
        noise_id, scheduler_id, sigma_id, add_id = ids[2:6]
        steps, sigma = UNIT_NOISE_SIGMAS
        out[noise_id] = {"class_type": RANDOM_NOISE_CLASS, "inputs": {"noise_seed": int(seed)}}
        out[scheduler_id] = {"class_type": SCHEDULER_CLASS, "inputs": {"model": list(model), "scheduler": "normal",
                                                                       "steps": steps, "denoise": 1.0}}
        out[sigma_id] = {"class_type": FIRST_SIGMA_CLASS, "inputs": {"sigmas": [scheduler_id, 0], "sigma": sigma}}
        out[add_id] = {"class_type": ADD_NOISE_CLASS, "inputs": {"model": list(model), "noise": [noise_id, 0],
                                                                 "sigmas": [sigma_id, 0], "latent_image": fill}}
        fill = [add_id, 0]
    threshold_id, composite_id = ids[:2]
    out[threshold_id] = {"class_type": THRESHOLD_MASK_CLASS, "inputs": {"mask": [started.mask_id, 0], "value": 0.5}}
    out[composite_id] = {"class_type": COMPOSITE_LATENT_CLASS, "inputs": {
        "destination": [started.encode_id, 0], "source": fill, "x": 0, "y": 0, "resize_source": False,
        "mask": [threshold_id, 0]}}
    out[started.noise_mask_id]["inputs"]["samples"] = [composite_id, 0]
    log.debug("masked content %s: %s under the mask (node %s)", masked_content, out[fill[0]]["class_type"],
              composite_id)
    return out


@dataclass(frozen=True)
class _Started:
    """A graph that starts from an input image, and the ids of what `_start_from` added or replaced."""

    graph: dict[str, Any]
    empty_latent: tuple[str, int]  # the latent it replaced (gone from the graph unless kept)
    encode_id: str
    mask_id: str
    noise_mask_id: str


def _start_from(graph: Mapping[str, Any], image_name: str, mask_name: str | None, denoise: float,
                keep_empty_latent: bool = False) -> _Started:
    """The graph starting from the input image `image_name` (see `use_init_image`), masked by `mask_name`;
    `keep_empty_latent` keeps the replaced latent's node (for a latent fill under the mask)."""
    if not 0.0 <= float(denoise) <= 1.0:
        raise WorkflowError(f"the denoise must be between 0 and 1 (got {denoise!r}).")
    out = copy.deepcopy(dict(graph))
    latent = source_of(out, LATENT_INPUT)
    if latent is None:
        raise WorkflowError(f"the graph has no sampler {LATENT_INPUT!r} input to start from an image.")
    vae = source_of(out, "vae")
    if vae is None:
        raise WorkflowError("the graph has no VAE to encode the init image with.")
    starts = [_denoise_inputs(out, node_id) for node_id, node in out.items()
              if _links_to(node.get("inputs", {}).get(LATENT_INPUT), latent)]
    first = _next_id(out)
    load_id, encode_id, mask_id, noise_mask_id = (str(first + n) for n in range(4))
    start_id = encode_id if mask_name is None else noise_mask_id
    _rewire(out, latent, [start_id, 0])
    for inputs in starts:
        inputs["denoise"] = float(denoise)
    out[load_id] = {"class_type": LOAD_IMAGE_CLASS, "inputs": {"image": image_name}}
    out[encode_id] = {"class_type": ENCODE_CLASS, "inputs": {"pixels": [load_id, 0], "vae": [vae[0], vae[1]]}}
    if mask_name is not None:
        out[mask_id] = {"class_type": LOAD_MASK_CLASS, "inputs": {"image": mask_name, "channel": MASK_CHANNEL}}
        out[noise_mask_id] = {"class_type": NOISE_MASK_CLASS, "inputs": {"samples": [encode_id, 0],
                                                                         "mask": [mask_id, 0]}}
    replaced = out[latent[0]]["class_type"]
    links = (v for node in out.values() for v in node.get("inputs", {}).values() if is_link(v))
    if not keep_empty_latent and not any(str(link[0]) == latent[0] for link in links):  # nothing reads it: it goes
        del out[latent[0]]
    log.debug("init image %s (mask %s): %s (node %s) replaced by %s -> %s, denoise %g", image_name, mask_name,
              replaced, latent[0], LOAD_IMAGE_CLASS, ENCODE_CLASS, denoise)
    return _Started(out, (latent[0], latent[1]), encode_id, mask_id, noise_mask_id)


def _denoise_inputs(graph: Mapping[str, Any], sampler_id: str) -> dict[str, Any]:
    """The inputs that hold the denoise of sampler `sampler_id`: its own (KSampler), else those of the scheduler
    its sigmas come from (BasicScheduler behind SamplerCustomAdvanced)."""
    node = graph[sampler_id]
    if "denoise" in node["inputs"]:
        return node["inputs"]
    sigmas = node["inputs"].get("sigmas")
    scheduler = graph.get(str(sigmas[0])) if is_link(sigmas) else None
    if scheduler is not None and "denoise" in scheduler.get("inputs", {}):
        return scheduler["inputs"]
    raise WorkflowError(f"the sampler {node['class_type']} (node {sampler_id}) has no denoise to start from an "
                        "image with (nor a scheduler with one).")


# ---------------------------------------------------------------------------- a ControlNet
CONTROLNET_LOADER_CLASS = "ControlNetLoader"  # input control_net_name; output CONTROL_NET
CONTROLNET_APPLY_CLASS = "ControlNetApplyAdvanced"  # inputs positive, negative, control_net, image, strength,
#                                                     start_percent, end_percent; outputs positive, negative


def use_controlnet(graph: Mapping[str, Any], controlnet_file: str, image_name: str, strength: float, start: float,
                   end: float) -> dict[str, Any]:
    """A copy of `graph` whose samplers' conditioning passes through a ControlNet: LoadImage of the server's input
    image `image_name` (the control map) and ControlNetLoader of `controlnet_file` feed a ControlNetApplyAdvanced
    spliced between the prompts and each sampler that takes positive and negative links (one per distinct pair);
    the sampler then takes its positive and negative outputs. New node ids follow the graph's highest numeric id.
    WorkflowError when no sampler takes positive and negative conditioning (a FLUX guider graph)."""
    out = copy.deepcopy(dict(graph))
    samplers = [node["inputs"] for node in out.values()
                if is_link(node.get("inputs", {}).get("positive")) and is_link(node.get("inputs", {}).get("negative"))]
    if not samplers:
        raise WorkflowError("the graph has no sampler with positive and negative conditioning to apply a ControlNet "
                            "to.")
    next_id = _next_id(out)
    load_id, loader_id = str(next_id), str(next_id + 1)
    out[load_id] = {"class_type": LOAD_IMAGE_CLASS, "inputs": {"image": image_name}}
    out[loader_id] = {"class_type": CONTROLNET_LOADER_CLASS, "inputs": {"control_net_name": controlnet_file}}
    applied: dict[tuple[str, ...], str] = {}
    for inputs in samplers:
        pair = (*map(str, inputs["positive"]), *map(str, inputs["negative"]))
        if pair not in applied:
            applied[pair] = apply_id = str(_next_id(out))
            out[apply_id] = {"class_type": CONTROLNET_APPLY_CLASS, "inputs": {
                "positive": list(inputs["positive"]), "negative": list(inputs["negative"]),
                "control_net": [loader_id, 0], "image": [load_id, 0], "strength": float(strength),
                "start_percent": float(start), "end_percent": float(end)}}
        inputs["positive"], inputs["negative"] = [applied[pair], 0], [applied[pair], 1]
    log.debug("ControlNet %s on %d sampler(s), map %s, strength %g from %g to %g", controlnet_file, len(samplers),
              image_name, strength, start, end)
    return out


# ---------------------------------------------------------------------------- prompt editing and BREAK
ENCODE_TEXT_CLASS = "CLIPTextEncode"  # inputs text, clip; output CONDITIONING
TIMESTEP_RANGE_CLASS = "ConditioningSetTimestepRange"  # inputs conditioning, start, end (0-1 shares); CONDITIONING
COMBINE_CLASS = "ConditioningCombine"  # inputs conditioning_1, conditioning_2; output CONDITIONING (both lists)
CONCAT_CLASS = "ConditioningConcat"  # inputs conditioning_to, conditioning_from; output CONDITIONING (tokens joined)


def use_prompt_parts(graph: Mapping[str, Any], node_id: str, parts: Sequence[tuple[Sequence[str], float, float]]) \
        -> dict[str, Any]:
    """A copy of `graph` whose CLIPTextEncode `node_id` becomes the conditioning of `parts`: (chunks, start, end)
    each, the chunks a text's parts between A1111's BREAKs and start and end the share of the steps it is for.
    A text's chunks are encoded each and joined by ConditioningConcat; each distinct text is encoded once (the node
    itself keeps the first chunk of the first), limited to its steps by a ConditioningSetTimestepRange when there are
    several, and those joined by ConditioningCombine nodes, whose output every consumer of the node then takes. One
    part of one chunk: the node's text set, nothing added."""
    out = copy.deepcopy(dict(graph))
    node = out.get(node_id)
    if node is None or node.get("class_type") != ENCODE_TEXT_CLASS:
        raise WorkflowError(f"node {node_id} is not a {ENCODE_TEXT_CLASS} to write the prompt in.")
    first = tuple(parts[0][0])
    node["inputs"]["text"] = first[0]
    if len(parts) == 1 and len(first) == 1:
        return out
    consumers = list(out)  # the nodes already there: those added below keep the node's own output
    clip = node["inputs"]["clip"]
    next_id = _next_id(out)

    def add(class_type: str, inputs: dict[str, Any]) -> list:
        nonlocal next_id
        out[str(next_id)] = {"class_type": class_type, "inputs": inputs}
        next_id += 1
        return [str(next_id - 1), 0]

    def encoded(chunks: tuple[str, ...], link: list | None = None) -> list:
        link = link or add(ENCODE_TEXT_CLASS, {"text": chunks[0], "clip": copy.deepcopy(clip)})
        for chunk in chunks[1:]:
            more = add(ENCODE_TEXT_CLASS, {"text": chunk, "clip": copy.deepcopy(clip)})
            link = add(CONCAT_CLASS, {"conditioning_to": link, "conditioning_from": more})
        return link

    texts = {first: encoded(first, [node_id, 0])}
    joined = texts[first]
    if len(parts) > 1:
        ranges = []
        for chunks, start, end in parts:
            chunks = tuple(chunks)
            if chunks not in texts:
                texts[chunks] = encoded(chunks)
            ranges.append(add(TIMESTEP_RANGE_CLASS, {"conditioning": texts[chunks], "start": float(start),
                                                     "end": float(end)}))
        joined = ranges[0]
        for ranged in ranges[1:]:
            joined = add(COMBINE_CLASS, {"conditioning_1": joined, "conditioning_2": ranged})
    _rewire(out, (node_id, 0), joined, only=consumers)
    log.debug("prompt of node %s written as %d part(s), %d text(s)", node_id, len(parts), len(texts))
    return out


# ---------------------------------------------------------------------------- FreeU
FREEU_CLASS = "FreeU"  # inputs model, b1, b2, s1, s2; output MODEL (comfy_extras/nodes_freelunch.py)
# the nodes that sample with a model (a custom sampler's guider among them)
MODEL_TAKERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "BasicGuider", "CFGGuider", "DualCFGGuider")
FREEU_FACTORS = ("b1", "b2", "s1", "s2")


def use_freeu(graph: Mapping[str, Any], values: Mapping[str, float]) -> dict[str, Any]:
    """A copy of `graph` whose samplers (and custom samplers' guiders) take their model through a FreeU node with
    `values` (b1, b2, s1, s2): one per distinct model link, so LoRAs chained before stay in it. WorkflowError when no
    node samples with a model."""
    return _model_patched(graph, FREEU_CLASS, {k: float(values[k]) for k in FREEU_FACTORS}, "FreeU")


RESCALE_CFG_CLASS = "RescaleCFG"  # inputs model, multiplier (0-1); output MODEL (comfy_extras/nodes_model_advanced.py)


def use_rescale_cfg(graph: Mapping[str, Any], multiplier: float) -> dict[str, Any]:
    """A copy of `graph` whose samplers (and guiders) take their model through a RescaleCFG node of `multiplier`,
    after whatever patched it before (LoRAs, FreeU). WorkflowError when no node samples with a model."""
    return _model_patched(graph, RESCALE_CFG_CLASS, {"multiplier": float(multiplier)}, "CFG rescale")


def _model_patched(graph: Mapping[str, Any], class_type: str, values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A copy of `graph` where every node of MODEL_TAKERS takes its model through a `class_type` node (inputs: the
    model and `values`), one per distinct model link."""
    out = copy.deepcopy(dict(graph))
    takers = [node["inputs"] for node in out.values()
              if node.get("class_type") in MODEL_TAKERS and is_link(node.get("inputs", {}).get("model"))]
    if not takers:
        raise WorkflowError(f"the graph has no sampler taking a model to apply {what} to.")
    patched: dict[tuple[str, int], str] = {}
    for inputs in takers:
        link = (str(inputs["model"][0]), inputs["model"][1])
        if link not in patched:
            patched[link] = node_id = str(_next_id(out))
            out[node_id] = {"class_type": class_type, "inputs": {"model": list(inputs["model"]), **values}}
        inputs["model"] = [patched[link], 0]
    return out
