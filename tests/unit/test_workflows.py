"""Workflow templates load, match the recorded node/input names, and bind values structurally."""
from __future__ import annotations

import json

import pytest

from engine.workflows import (
    WorkflowError, WorkflowTemplate, bind, list_templates, load_template, template_from_dict,
)

TRICKY_PROMPTS = [
    'a "quoted" cat\'s {curly} [square] \\backslash\\ %s {prompt} $x ${y}',
    "line one\nline two\r\n\ttabbed",
    "ünïcödé ✨ 猫 🦊 — emoji and RTL עברית",
    '{"6": {"inputs": {"text": "injection"}}}',
    "",
]


def test_all_templates_load():
    names = list_templates()
    assert {"flux1_dev_split", "flux1_dev_fp8_checkpoint", "checkpoint_generic"} <= set(names)
    for name in names:
        t = load_template(name)
        assert isinstance(t, WorkflowTemplate)
        assert t.node_ids("SaveImage"), name
        for key in ("prompt", "negative_prompt", "seed", "steps", "width", "height", "cfg", "sampler",
                    "guidance", "scheduler", "filename_prefix"):
            assert t.accepts(key), (name, key)


def test_flux_split_matches_checked_graph():
    """Same nodes, classes and links as the graph checked against a real server's /object_info."""
    t = load_template("flux1_dev_split")
    graph = bind(t, {"prompt": "a photo of a red fox in the snow, golden hour", "seed": 42,
                     "filename_prefix": "flux1-dev"})
    assert graph["10"]["class_type"] == "UNETLoader"
    assert graph["11"]["inputs"]["type"] == "flux"
    assert graph["35"] == {"class_type": "FluxGuidance", "inputs": {"conditioning": ["6", 0], "guidance": 3.5}}
    assert graph["33"]["class_type"] == "ConditioningZeroOut"
    ks = graph["31"]["inputs"]
    assert (ks["cfg"], ks["sampler_name"], ks["scheduler"], ks["seed"]) == (1.0, "euler", "simple", 42)
    assert ks["positive"] == ["35", 0] and ks["negative"] == ["33", 0]
    assert graph["27"]["class_type"] == "EmptySD3LatentImage"


def test_flux_split_equals_recorded_graph():
    recorded = {
        "10": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors", "type": "flux", "device": "default"}},
        "12": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo of a red fox in the snow, golden hour", "clip": ["11", 0]}},
        "35": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["6", 0], "guidance": 3.5}},
        "33": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["6", 0]}},
        "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "31": {"class_type": "KSampler", "inputs": {"model": ["10", 0], "positive": ["35", 0], "negative": ["33", 0], "latent_image": ["27", 0],
                                                     "seed": 42, "steps": 20, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["31", 0], "vae": ["12", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "flux1-dev"}},
    }
    graph = bind(load_template("flux1_dev_split"), {
        "prompt": "a photo of a red fox in the snow, golden hour", "seed": 42, "filename_prefix": "flux1-dev"})
    assert graph == recorded


def test_checkpoint_generic_equals_recorded_graph():
    recorded = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo of a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, low quality", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 4, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                                                    "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "probe_main", "images": ["8", 0]}},
    }
    graph = bind(load_template("checkpoint_generic"), {
        "prompt": "a photo of a cat", "negative_prompt": "blurry, low quality", "width": 128, "height": 128,
        "seed": 42, "steps": 4, "ckpt_name": "tiny-sd15.safetensors", "filename_prefix": "probe_main"})
    assert graph == recorded


def test_fp8_checkpoint_binds_ckpt_and_guidance():
    graph = bind(load_template("flux1_dev_fp8_checkpoint"), {"ckpt_name": "x.safetensors", "guidance": 2.0,
                                                             "negative_prompt": "ignored at cfg 1"})
    assert graph["30"]["inputs"]["ckpt_name"] == "x.safetensors"
    assert graph["35"]["inputs"]["guidance"] == 2.0
    assert graph["31"]["inputs"]["cfg"] == 1.0
    assert graph["33"]["inputs"]["text"] == "ignored at cfg 1"


@pytest.mark.parametrize("text", TRICKY_PROMPTS)
@pytest.mark.parametrize("name", ["flux1_dev_split", "flux1_dev_fp8_checkpoint", "checkpoint_generic"])
def test_prompt_text_survives_exactly(name, text):
    t = load_template(name)
    graph = bind(t, {"prompt": text, "negative_prompt": text + " (neg)"})
    (node_id, input_name), = t.bindings["prompt"]
    assert graph[node_id]["inputs"][input_name] == text
    # and through JSON, the way it travels to the server
    assert json.loads(json.dumps(graph))[node_id]["inputs"][input_name] == text
    for nid, inp in t.bindings["negative_prompt"]:
        assert graph[nid]["inputs"][inp] == text + " (neg)"


def test_bind_does_not_touch_template():
    t = load_template("checkpoint_generic")
    before = json.dumps(t.graph, sort_keys=True)
    bind(t, {"prompt": "changed", "seed": 7})
    assert json.dumps(t.graph, sort_keys=True) == before


def test_none_keeps_default_and_defaults_apply():
    t = load_template("flux1_dev_split")
    graph = bind(t, {"guidance": None, "steps": 8})
    assert graph["35"]["inputs"]["guidance"] == 3.5
    assert graph["31"]["inputs"]["steps"] == 8


def test_unknown_key_raises_clear_error():
    with pytest.raises(WorkflowError, match=r"no parameter 'lora'"):
        bind(load_template("checkpoint_generic"), {"lora": "x"})


def test_missing_node_in_template_raises():
    with pytest.raises(WorkflowError, match="node 99"):
        template_from_dict("bad", {"graph": {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}},
                                   "bindings": {"seed": [["99", "seed"]]}})
    with pytest.raises(WorkflowError, match="input 'seed'"):
        template_from_dict("bad", {"graph": {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}},
                                   "bindings": {"seed": [["1", "seed"]]}})


def test_missing_template_and_bad_names():
    with pytest.raises(WorkflowError, match="not found"):
        load_template("no_such_workflow")
    with pytest.raises(WorkflowError):
        load_template("../models")


def test_graph_links_point_at_existing_nodes():
    for name in list_templates():
        t = load_template(name)
        for nid, node in t.graph.items():
            for value in node["inputs"].values():
                if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                    assert value[0] in t.graph, (name, nid, value)
