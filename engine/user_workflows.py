"""A user's own ComfyUI workflows: API-format graphs ("Save (API)" in ComfyUI) in the workflows folder.

The inputs a request fills are found structurally, never by node title or id: the sampler (KSampler,
KSamplerAdvanced, SamplerCustom, or SamplerCustomAdvanced with its noise, guider, sampler and sigmas nodes) that
starts from an empty latent or an encoded LoadImage; the positive and negative CLIPTextEncode whose conditioning
reaches it (through FluxGuidance, ControlNet apply nodes and the like); seed / noise_seed, steps, cfg (or
FluxGuidance's guidance), sampler_name, scheduler and denoise; the size on the latent (EmptyLatentImage,
EmptySD3LatentImage, EmptyHunyuanLatent..., and ModelSamplingFlux's); the checkpoint loader (ckpt_name or
unet_name) behind the sampler's model; LoadImage for image-to-image. Each binding is a list of (node id, input
name) paths, as in the app's own templates (engine/workflows.py `bind` assigns them); everything else in the file is
sent as it is. The result is the image of an output node downstream of that sampler (`result_nodes`).

The folder's files are listed by file name; a name that reads as "none" (which chooses no workflow) is listed with
" workflow" after it. An upload keeps the letters of any script in its name and never replaces a different workflow
of the same name: it is saved as "name (2)".
"""
from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from .comfyui import FILE_KEYS, MODEL_INPUTS, NOT_FILES, SAVE_IMAGE_CLASS
from .params import NO_WORKFLOW
from .workflows import WorkflowError, WorkflowTemplate, bind, is_link, template_from_dict

log = logging.getLogger(__name__)

SAMPLER_CLASSES = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
SEED_INPUTS = ("seed", "noise_seed")
FLOW_NODE_CLASSES = frozenset({"FluxGuidance", "ModelSamplingFlux"})  # a graph with these samples FLUX's flow
ZEROED_CLASS = "ConditioningZeroOut"  # a negative made by zeroing the positive (FLUX): no text of its own
LOAD_IMAGE_CLASS = "LoadImage"
MAX_DEPTH = 32  # links followed upstream at most (a graph is a DAG; this only guards against a malformed one)
MAX_NESTING = 64  # levels of lists and objects in a node (an export has a handful; Python's stack is finite)
NAME_PUNCTUATION = "._ -"  # kept in an uploaded file's name, beside letters, marks and digits of any script
RESERVED_SUFFIX = " workflow"  # after a file name that reads as "none"
NAME_BYTES = 255  # a file name's longest, in UTF-8 bytes, on common file systems (ext4, APFS, NTFS's in characters)
# What each binding is called in the summary, in the order shown.
LABELS = {"prompt": "Prompt", "negative_prompt": "Negative prompt", "seed": "Seed", "steps": "Steps",
          "cfg": "CFG scale", "guidance": "Guidance", "sampler_name": "Sampler", "scheduler": "Scheduler",
          "denoise": "Denoise (img2img strength)", "width": "Width", "height": "Height", "ckpt_name": "Model",
          "unet_name": "Model", "image": "Init image"}


@dataclass(frozen=True)
class UserWorkflow:
    """A user's graph and where a request's values go in it (`template.bindings`: name -> [(node id, input)])."""

    name: str
    template: WorkflowTemplate
    sampler: str  # the sampler node's id
    renamed_from: str | None = None  # an upload saved under another name than its file's (one was taken)

    @property
    def graph(self) -> dict[str, Any]:
        return self.template.graph

    @property
    def bindings(self) -> dict[str, list[tuple[str, str]]]:
        return self.template.bindings

    def binds(self, key: str) -> bool:
        """True when the workflow has a place for `key` ("negative_prompt", "image", "ckpt_name"...)."""
        return bool(self.template.bindings.get(key))

    def loads(self, model_files: Mapping[str, str]) -> bool:
        """Whether the workflow has a loader that takes one of a model's files (`ckpt_name`, `unet_name`...)."""
        return any(self.binds(key) for key in model_files)

    def sampling_family(self, chosen: str | None) -> str:
        """The model family whose noise schedule the sampler follows (where a prompt edit's steps fall): `chosen`, the
        family of a chosen model the workflow loads; for the model the file loads (None), FLUX where the graph has
        FLUX's own nodes, else SD's (one schedule for SD 1.5 and SDXL)."""
        if chosen:
            return chosen
        return "flux" if FLOW_NODE_CLASSES.intersection(self.node_classes()) else "sd15"

    def node_classes(self) -> list[str]:
        """Every node class the graph uses, sorted."""
        return sorted({str(node.get("class_type")) for node in self.graph.values()})

    def loaded_files(self, replaced: Iterable[str] = ()) -> list[tuple[str, str, str]]:
        """(node id, input, file) of every model file the stock loaders behind its result name (MODEL_INPUTS:
        CheckpointLoaderSimple's ckpt_name, VAELoader's vae_name...), by node id; without those of the bindings in
        `replaced` (a chosen model's files go there). A loader no result depends on, or a custom node's input of a like
        name (CLIPVisionLoader's clip_name), is the server's to judge, as ComfyUI validates only what outputs need."""
        skip = {path for key in replaced for path in self.bindings.get(key, [])}
        _, producers = self._links()
        needed = {n for end in self.result_nodes() for n in (end, *_reachable(end, producers))}
        return [(node_id, name, value) for node_id, node in sorted(self.graph.items(), key=lambda i: _id_key(i[0]))
                if node_id in needed
                for name, value in node["inputs"].items()
                if name in MODEL_INPUTS.get(node["class_type"], {}) and name in FILE_KEYS and isinstance(value, str)
                and value not in NOT_FILES and (node_id, name) not in skip]

    def result_nodes(self) -> list[str]:
        """The nodes whose image is the result, best first: those downstream of the bound sampler that feed no other
        node (SaveImage, PreviewImage, a custom save node), SaveImage first, then the last stage first (the most
        nodes upstream: a second pass's save before the first pass's), then by node id."""
        consumers, producers = self._links()
        ends = [n for n in _reachable(self.sampler, consumers) if not consumers.get(n)]
        return sorted(ends, key=lambda n: (self.graph[n]["class_type"] != SAVE_IMAGE_CLASS,
                                           -len(_reachable(n, producers)), _id_key(n)))

    def _links(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """Each node's consumers and each node's producers, by the graph's links."""
        consumers: dict[str, set[str]] = {}
        producers: dict[str, set[str]] = {}
        for node_id, node in self.graph.items():
            for value in node["inputs"].values():
                if is_link(value) and str(value[0]) in self.graph:
                    consumers.setdefault(str(value[0]), set()).add(node_id)
                    producers.setdefault(node_id, set()).add(str(value[0]))
        return consumers, producers

    def bound(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A fresh graph with `values` (binding name -> value; None and names it lacks are skipped) in place."""
        return bind(self.template, {k: v for k, v in values.items() if v is not None and self.binds(k)})

    def summary(self) -> dict[str, Any]:
        """What it binds ({label: "node 6 CLIPTextEncode.text"}) and what stays as in the file (one line per other
        node with literal inputs)."""
        bound_paths = {path for paths in self.bindings.values() for path in paths}
        binds: dict[str, str] = {}
        for key, label in LABELS.items():
            paths = self.bindings.get(key) or []
            if paths:
                binds[label] = ", ".join(f"node {n} {self.graph[n]['class_type']}.{i}" for n, i in paths)
        kept = []
        for node_id, node in sorted(self.graph.items(), key=lambda item: _id_key(item[0])):
            literal = {k: v for k, v in node["inputs"].items() if not is_link(v) and (node_id, k) not in bound_paths}
            if literal:
                kept.append(f"node {node_id} {node['class_type']}: "
                            + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)[:60]}" for k, v in literal.items()))
        summary = {"name": self.name, "binds": binds, "kept": kept, "nodes": self.node_classes()}
        return {**summary, "renamed_from": self.renamed_from} if self.renamed_from else summary


def _id_key(node_id: str) -> tuple[int, Any]:
    return (0, int(node_id)) if str(node_id).isdigit() else (1, str(node_id))


def _reachable(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    """The nodes reached from `start` along `edges` (node -> next nodes), `start` excluded."""
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo.extend(edges.get(node_id, ()))
    seen.discard(start)
    return seen


def _nesting(value: Any) -> int:
    """How many levels of lists and objects `value` has (read level by level, never recursively)."""
    depth, level = 0, [value]
    while level:
        level = [item for v in level if isinstance(v, (list, dict))
                 for item in (v.values() if isinstance(v, dict) else v)]
        depth += 1 if level else 0
    return depth


def _node(graph: Mapping[str, Any], link: Any) -> tuple[str, dict[str, Any]] | None:
    """(id, node) a link points at; None for a literal or a dangling link."""
    if is_link(link) and str(link[0]) in graph:
        return str(link[0]), graph[str(link[0])]
    return None


def _literal(node: Mapping[str, Any], name: str) -> bool:
    """True when the node's input `name` is a value (not a link) that a request may replace."""
    return name in node.get("inputs", {}) and not is_link(node["inputs"][name])


def _upstream(graph: Mapping[str, Any], link: Any, through: tuple[str, ...], wanted: Any) -> tuple[str, dict] | None:
    """The first node up `link` for which `wanted(node)` holds, following each node's first linked input of
    `through`."""
    for _ in range(MAX_DEPTH):
        found = _node(graph, link)
        if found is None:
            return None
        if wanted(found[1]):
            return found
        inputs = found[1].get("inputs", {})
        link = next((inputs[name] for name in through if is_link(inputs.get(name))), None)
    return None


# ---------------------------------------------------------------------------- finding the inputs
def _conditioning(graph: Mapping[str, Any], link: Any, side: str) -> tuple[str | None, str | None, bool]:
    """(encoder id, FluxGuidance id, zeroed) for a sampler's `side` ("positive"/"negative") conditioning link:
    followed through nodes with a `conditioning` input or one named `side` (ControlNetApplyAdvanced) to the node
    with a text input (CLIPTextEncode)."""
    guidance = None
    for _ in range(MAX_DEPTH):
        found = _node(graph, link)
        if found is None:
            return None, guidance, False
        node_id, node = found
        inputs = node.get("inputs", {})
        if node.get("class_type") == ZEROED_CLASS:
            return None, guidance, True
        if isinstance(inputs.get("text"), str):
            return node_id, guidance, False
        if "guidance" in inputs and guidance is None and _literal(node, "guidance"):
            guidance = node_id
        link = inputs.get(side) if is_link(inputs.get(side)) else inputs.get("conditioning")
    return None, guidance, False


def _sampler_parts(graph: Mapping[str, Any], sampler_id: str) -> dict[str, Any]:
    """The nodes a sampler's values live on (the sampler itself, or a custom sampler's noise, guider, sampler and
    sigmas nodes), and its model, positive and negative links."""
    node = graph[sampler_id]
    inputs = node["inputs"]
    places = [sampler_id]
    positive, negative, model = inputs.get("positive"), inputs.get("negative"), inputs.get("model")
    for part in ("noise", "guider", "sampler", "sigmas"):
        found = _node(graph, inputs.get(part))
        if found is None:
            continue
        part_id, part_node = found
        places.append(part_id)
        part_inputs = part_node.get("inputs", {})
        if part == "guider":
            positive = part_inputs.get("positive", part_inputs.get("conditioning"))
            negative = part_inputs.get("negative")
        if is_link(part_inputs.get("model")) and not is_link(model):
            model = part_inputs["model"]
    return {"places": places, "positive": positive, "negative": negative, "model": model}


def _first_literal(graph: Mapping[str, Any], places: list[str], names: tuple[str, ...]) -> list[tuple[str, str]]:
    for node_id in places:
        for name in names:
            if _literal(graph[node_id], name):
                return [(node_id, name)]
    return []


def _is_empty_latent(node: Mapping[str, Any]) -> bool:
    return "Latent" in str(node.get("class_type")) and _literal(node, "width") and _literal(node, "height") \
        and not any(is_link(v) for v in node.get("inputs", {}).values())


def _latent_start(graph: Mapping[str, Any], link: Any) -> tuple[str | None, str | None, str | None]:
    """(empty latent id, VAEEncode id, LoadImage id) a sampler's latent_image starts from, through nodes that take
    `samples` (RepeatLatentBatch, SetLatentNoiseMask...)."""
    start = _upstream(graph, link, ("samples",), lambda n: _is_empty_latent(n) or is_link(n["inputs"].get("pixels"))
                      or n.get("class_type") in SAMPLER_CLASSES)
    if start is None or start[1].get("class_type") in SAMPLER_CLASSES:
        return None, None, None
    if _is_empty_latent(start[1]):
        return start[0], None, None
    image = _upstream(graph, start[1]["inputs"]["pixels"], ("image", "pixels"),
                      lambda n: n.get("class_type") == LOAD_IMAGE_CLASS and _literal(n, "image"))
    return None, start[0], image[0] if image else None


def _pick_sampler(name: str, graph: Mapping[str, Any]) -> tuple[str, tuple[str | None, str | None, str | None]]:
    samplers = sorted((nid for nid, node in graph.items() if node.get("class_type") in SAMPLER_CLASSES), key=_id_key)
    if not samplers:
        raise WorkflowError(f"The workflow {name!r} has no sampler ({', '.join(SAMPLER_CLASSES)}) to bind the prompt, "
                            "seed and steps to.")
    for sampler_id in samplers:  # the first pass: the sampler that starts from an empty latent or an image
        start = _latent_start(graph, graph[sampler_id]["inputs"].get("latent_image"))
        if start[0] or start[2]:
            return sampler_id, start
    raise WorkflowError(f"The workflow {name!r} has no empty latent (EmptyLatentImage, EmptySD3LatentImage...) nor "
                        f"LoadImage -> VAEEncode feeding its sampler (node {samplers[0]}), so its size cannot be set.")


def find_inputs(name: str, graph: Mapping[str, Any]) -> UserWorkflow:
    """The workflow with its bindings found structurally. WorkflowError (a sentence naming what is missing) when
    it has no sampler, no latent to size or image to start from, or no prompt text reaching the sampler."""
    graph = _checked_graph(name, graph)
    sampler_id, (latent, _encode, load_image) = _pick_sampler(name, graph)
    parts = _sampler_parts(graph, sampler_id)
    places = parts["places"]
    positive, flux_guidance, _ = _conditioning(graph, parts["positive"], "positive")
    if positive is None:
        raise WorkflowError(f"The workflow {name!r} has no CLIPTextEncode text reaching the positive conditioning of "
                            f"its sampler (node {sampler_id} {graph[sampler_id]['class_type']}).")
    negative, _, _zeroed = _conditioning(graph, parts["negative"], "negative")
    bindings: dict[str, list[tuple[str, str]]] = {"prompt": [(positive, "text")]}
    if negative is not None and negative != positive:
        bindings["negative_prompt"] = [(negative, "text")]
    bindings["seed"] = _first_literal(graph, places, SEED_INPUTS)
    for key in ("steps", "cfg", "sampler_name", "scheduler", "denoise"):
        bindings[key] = _first_literal(graph, places, (key,))
    if flux_guidance is not None:
        bindings["guidance"] = [(flux_guidance, "guidance")]
    if latent is not None:
        sizes = [latent] + [nid for nid, node in graph.items()  # ModelSamplingFlux and the like take the size too
                            if nid != latent and _literal(node, "width") and _literal(node, "height")
                            and is_link(node["inputs"].get("model"))]
        bindings["width"] = [(nid, "width") for nid in sizes]
        bindings["height"] = [(nid, "height") for nid in sizes]
    if load_image is not None:
        bindings["image"] = [(load_image, "image")]
    loader = _upstream(graph, parts["model"], ("model",),
                       lambda n: _literal(n, "ckpt_name") or _literal(n, "unet_name"))
    if loader is not None:
        key = "ckpt_name" if _literal(loader[1], "ckpt_name") else "unet_name"
        bindings[key] = [(loader[0], key)]
    template = template_from_dict(name, {"graph": graph, "bindings": {k: [list(p) for p in v]
                                                                      for k, v in bindings.items() if v}})
    log.debug("workflow %s: sampler %s, bindings %s", name, sampler_id, template.bindings)
    return UserWorkflow(name=name, template=template, sampler=sampler_id)


def _checked_graph(name: str, data: Any) -> dict[str, Any]:
    """The API-format graph in `data`; WorkflowError saying what is wrong (a UI-format file: how to export)."""
    if isinstance(data, Mapping) and isinstance(data.get("nodes"), list) and "links" in data:
        raise WorkflowError(f"The workflow {name!r} is in ComfyUI's UI format: export it with Workflow -> Export (API) "
                            "(\"Save (API)\"), which writes the graph the server runs.")
    if isinstance(data, Mapping) and isinstance(data.get("prompt"), Mapping) and "class_type" not in data["prompt"]:
        data = data["prompt"]  # a POST /prompt body, or a saved /history entry's graph
    if not isinstance(data, Mapping) or not data:
        raise WorkflowError(f"The workflow {name!r} is not a ComfyUI API-format graph (an object of nodes).")
    for node_id, node in data.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str) \
                or not isinstance(node.get("inputs"), Mapping):
            raise WorkflowError(f"The workflow {name!r} is not a ComfyUI API-format graph: node {node_id} needs a "
                                "class_type and an inputs object.")
        if _nesting(node) > MAX_NESTING:
            raise WorkflowError(f"The workflow {name!r} is not a ComfyUI API-format graph: node {node_id} is nested "
                                f"more than {MAX_NESTING} levels deep.")
    nodes = {str(k) for k in data}
    for node_id, node in data.items():  # a link to a node the file lacks: the server's own answer is cryptic
        for input_name, value in node["inputs"].items():
            if is_link(value) and isinstance(value[0], (str, int)) and str(value[0]) not in nodes:
                raise WorkflowError(f"The workflow {name!r} is incomplete: node {node_id} {node['class_type']} takes "
                                    f"{input_name!r} from node {value[0]}, which the file does not have.")
    return {str(k): dict(v) for k, v in data.items()}


# ---------------------------------------------------------------------------- the workflows folder
def workflow_name(filename: str) -> str:
    """The name an uploaded workflow is saved under: its file name without folders and `.json` (Unicode NFC), letters,
    marks and digits of any script and NAME_PUNCTUATION kept, each run of other characters made "-"; a name that
    reads as "none" gets RESERVED_SUFFIX."""
    stem = Path(str(filename).replace("\\", "/")).name
    stem = unicodedata.normalize("NFC", stem[:-5] if stem.lower().endswith(".json") else stem)
    marked = "".join(c if c in NAME_PUNCTUATION or unicodedata.category(c)[0] in "LMN" else "\0" for c in stem)
    name = re.sub("\0+", "-", marked).strip(" .-")
    while len(f"{name} (99).json".encode()) > NAME_BYTES:  # a file system's limit, with room for a number
        name = name[:-1].rstrip(" .-")
    return _usable(name or "workflow")


def _usable(name: str) -> str:
    """`name`, or `name` + RESERVED_SUFFIX when a request would read it as choosing no workflow."""
    return name + RESERVED_SUFFIX if name.strip().lower() in ("", NO_WORKFLOW) else name


def _unique(name: str, taken: Iterable[str]) -> str:
    """`name`, or "name (2)", "name (3)"... the first that `taken` lacks (in any case)."""
    taken = {t.lower() for t in taken}
    found, number = name, 2
    while found.lower() in taken:
        found, number = f"{name} ({number})", number + 1
    return found


def _listed_files(directory: Path | None) -> dict[str, Path]:
    """Each *.json file of `directory` by the name it is listed under: its file name without `.json`, made usable
    (`_usable`) and unique when it reads as "none"; {} when the folder does not exist."""
    if directory is None or not Path(directory).is_dir():
        return {}
    files = sorted((p for p in Path(directory).glob("*.json") if p.is_file()), key=lambda p: p.stem.lower())
    listed: dict[str, Path] = {p.stem: p for p in files if _usable(p.stem) == p.stem}
    for path in files:
        if _usable(path.stem) != path.stem:
            listed[_unique(_usable(path.stem), [*listed, *(p.stem for p in files)])] = path
    return listed


def list_workflows(directory: Path | None) -> list[str]:
    """The workflow names in `directory` (its *.json files, see `_listed_files`), sorted; [] when it does not
    exist."""
    return sorted(_listed_files(directory), key=str.lower)


def parse_workflow(name: str, text: str | bytes) -> UserWorkflow:
    """A workflow from a file's text or bytes (UTF-8, -16 or -32, with or without a byte order mark); WorkflowError
    with a sentence when it is not JSON or lacks an input."""
    if isinstance(text, str):
        text = text.removeprefix("\ufeff")
    try:
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        raise WorkflowError(f"The workflow {name!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02X} at "
                            f"position {exc.start}): save it as UTF-8, as ComfyUI exports it.") from None
    except RecursionError:
        raise WorkflowError(f"The workflow {name!r} is not a ComfyUI API-format graph: it is nested too deeply to "
                            "read.") from None
    except ValueError as exc:
        raise WorkflowError(f"The workflow {name!r} is not JSON ({exc}).") from None
    return find_inputs(name, data)


def load_workflow(name: str, directory: Path | None) -> UserWorkflow:
    """The workflow `name`, one that list_workflows(directory) lists (a file put there by hand keeps its own name,
    "sdxl (copy)"; nothing outside the folder is ever named); WorkflowError with a sentence when it is missing or
    unusable."""
    listed = _listed_files(directory)
    if not isinstance(name, str) or name not in listed:
        known = ", ".join(sorted(listed, key=str.lower)) or "none"
        raise WorkflowError(f"The workflow {name!r} is not in the workflows folder (workflows there: {known}).")
    try:
        data = listed[name].read_bytes()
    except OSError as exc:
        raise WorkflowError(f"The workflow {name!r} could not be read: {exc.strerror or exc}.") from None
    return parse_workflow(name, data)


def save_workflow(directory: Path, filename: str, text: str | bytes) -> UserWorkflow:
    """Check an uploaded workflow and write it into `directory` as <name>.json (`workflow_name`). A different
    workflow already listed under that name is kept: the upload becomes "name (2)" (`renamed_from` says so); the
    same graph again is not written twice."""
    name = workflow_name(filename)
    workflow = parse_workflow(name, text)
    listed = _listed_files(directory)
    if name in listed and _graph_in(listed[name]) == workflow.graph:
        return workflow
    saved = _unique(name, [*listed, *(p.stem for p in listed.values())])
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        with open(Path(directory) / f"{saved}.json", "x", encoding="utf-8") as file:  # never over another file
            file.write(json.dumps(workflow.graph, indent=2, ensure_ascii=False))
    except OSError as exc:
        raise WorkflowError(f"The workflow could not be saved in {directory}: {exc.strerror or exc}.") from None
    log.info("Saved workflow %s in %s%s", saved, directory, f" ({name!r} is taken)" if saved != name else "")
    return replace(workflow, name=saved, renamed_from=name) if saved != name else workflow


def _graph_in(path: Path) -> Any:
    """The JSON in `path`, or None when it cannot be read as JSON."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None


def missing_nodes(classes: list[str], known: Mapping[str, bool]) -> list[str]:
    """The node classes of `classes` a server does not have (`known`: class -> present)."""
    return [c for c in classes if not known.get(c)]
