"""Finding a user's ComfyUI workflow inputs structurally, on real-looking "Save (API)" exports
(tests/support/workflows/): SD 1.5's default graph, SDXL with KSamplerAdvanced, FLUX with SamplerCustomAdvanced and
EmptySD3LatentImage, img2img from LoadImage; and the sentences for graphs that lack something essential."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.request import chosen_workflow
from engine.user_workflows import find_inputs, list_workflows, load_workflow, parse_workflow, save_workflow
from engine.workflows import WorkflowError

FOLDER = Path(__file__).parents[1] / "support" / "workflows"


def graph_of(name: str) -> dict:
    return json.loads((FOLDER / f"{name}.json").read_text())


def test_the_folder_lists_every_export():
    assert list_workflows(FOLDER) == ["flux_custom_sampler", "sd15_custom_node", "sd15_default", "sd15_img2img",
                                      "sdxl_advanced"]
    assert list_workflows(FOLDER / "nope") == []


def test_sd15_default_workflow():
    w = load_workflow("sd15_default", FOLDER)
    assert w.sampler == "3"
    assert w.bindings == {
        "prompt": [("6", "text")], "negative_prompt": [("7", "text")], "seed": [("3", "seed")],
        "steps": [("3", "steps")], "cfg": [("3", "cfg")], "sampler_name": [("3", "sampler_name")],
        "scheduler": [("3", "scheduler")], "denoise": [("3", "denoise")], "width": [("5", "width")],
        "height": [("5", "height")], "ckpt_name": [("4", "ckpt_name")]}


def test_sdxl_with_ksampler_advanced_binds_noise_seed():
    w = load_workflow("sdxl_advanced", FOLDER)
    assert w.sampler == "10"
    assert w.bindings["seed"] == [("10", "noise_seed")] and w.bindings["steps"] == [("10", "steps")]
    assert w.bindings["prompt"] == [("6", "text")] and w.bindings["negative_prompt"] == [("7", "text")]
    assert not w.binds("denoise")  # KSamplerAdvanced has start_at_step instead
    assert w.bindings["ckpt_name"] == [("4", "ckpt_name")]
    kept = "\n".join(w.summary()["kept"])
    assert "start_at_step=0" in kept and "return_with_leftover_noise=\"disable\"" in kept


def test_flux_custom_sampler_chain():
    w = load_workflow("flux_custom_sampler", FOLDER)
    b = w.bindings
    assert w.sampler == "13"
    assert b["prompt"] == [("6", "text")] and not w.binds("negative_prompt")  # BasicGuider: no negative
    assert b["seed"] == [("25", "noise_seed")]  # RandomNoise
    assert b["steps"] == [("17", "steps")] and b["scheduler"] == [("17", "scheduler")]  # BasicScheduler
    assert b["denoise"] == [("17", "denoise")] and b["sampler_name"] == [("16", "sampler_name")]  # KSamplerSelect
    assert b["guidance"] == [("26", "guidance")] and not w.binds("cfg")  # FluxGuidance
    assert b["width"] == [("27", "width"), ("30", "width")]  # EmptySD3LatentImage and ModelSamplingFlux
    assert b["unet_name"] == [("12", "unet_name")]  # UNETLoader behind ModelSamplingFlux


def test_img2img_binds_load_image_and_no_size():
    w = load_workflow("sd15_img2img", FOLDER)
    assert w.bindings["image"] == [("2", "image")] and w.bindings["denoise"] == [("6", "denoise")]
    assert not w.binds("width") and not w.binds("height")


def test_flux_ksampler_negative_zeroed_out_is_not_a_text():
    graph = {
        "10": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "a", "clip_name2": "b", "type": "flux"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["11", 0]}},
        "35": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["6", 0], "guidance": 3.5}},
        "33": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["6", 0]}},
        "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "31": {"class_type": "KSampler", "inputs": {"model": ["10", 0], "positive": ["35", 0], "negative": ["33", 0],
                                                     "latent_image": ["27", 0], "seed": 1, "steps": 20, "cfg": 1.0,
                                                     "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}}}
    w = find_inputs("flux", graph)
    assert w.bindings["guidance"] == [("35", "guidance")] and w.bindings["cfg"] == [("31", "cfg")]
    assert not w.binds("negative_prompt") and w.bindings["unet_name"] == [("10", "unet_name")]


def test_bound_values_replace_only_their_inputs():
    w = load_workflow("sdxl_advanced", FOLDER)
    original = graph_of("sdxl_advanced")
    graph = w.bound({"prompt": "a fox", "seed": 7, "width": 832, "image": "ignored.png"})
    assert graph["6"]["inputs"]["text"] == "a fox" and graph["10"]["inputs"]["noise_seed"] == 7
    assert graph["5"]["inputs"]["width"] == 832
    expected = copy.deepcopy(original)
    expected["6"]["inputs"]["text"], expected["10"]["inputs"]["noise_seed"] = "a fox", 7
    expected["5"]["inputs"]["width"] = 832
    assert graph == expected and w.graph == original  # the workflow itself is unchanged


def test_a_second_sampler_of_a_two_pass_graph_is_not_the_one_bound():
    graph = graph_of("sd15_default")
    graph["20"] = {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "upscale_method": "nearest-exact",
                                                            "width": 1024, "height": 1024, "crop": "disabled"}}
    graph["21"] = {"class_type": "KSampler", "inputs": {**graph["3"]["inputs"], "latent_image": ["20", 0],
                                                         "denoise": 0.5}}
    graph["1"] = graph.pop("8")
    graph["1"]["inputs"]["samples"] = ["21", 0]
    graph["9"]["inputs"]["images"] = ["1", 0]
    w = find_inputs("two pass", graph)
    assert w.sampler == "3" and w.bindings["width"] == [("5", "width")]


def test_the_result_is_a_save_downstream_of_the_bound_sampler_the_last_stage_first():
    graph = graph_of("sd15_default")  # first pass: 3 -> 8 -> SaveImage 9
    graph["20"] = {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "upscale_method": "nearest-exact",
                                                            "width": 1024, "height": 1024, "crop": "disabled"}}
    graph["21"] = {"class_type": "KSampler", "inputs": {**graph["3"]["inputs"], "latent_image": ["20", 0]}}
    graph["22"] = {"class_type": "VAEDecode", "inputs": {"samples": ["21", 0], "vae": ["4", 2]}}
    graph["23"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "hires", "images": ["22", 0]}}
    graph["2"] = {"class_type": "PreviewImage", "inputs": {"images": ["22", 0]}}
    graph["30"] = {"class_type": "LoadImage", "inputs": {"image": "other.png"}}  # not the sampler's: never the result
    graph["31"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "input", "images": ["30", 0]}}
    w = find_inputs("two pass", graph)
    assert w.sampler == "3" and w.result_nodes() == ["23", "9", "2"]


def test_the_model_files_its_loaders_name_but_those_a_chosen_model_replaces():
    w = load_workflow("flux_custom_sampler", FOLDER)
    assert w.loaded_files() == [("10", "vae_name", "ae.safetensors"), ("11", "clip_name1", "t5xxl_fp16.safetensors"),
                                ("11", "clip_name2", "clip_l.safetensors"),
                                ("12", "unet_name", "flux1-dev.safetensors")]
    assert w.loaded_files(["unet_name"]) == w.loaded_files()[:3]  # the chosen model's file goes there
    graph = graph_of("sd15_default")
    graph["30"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "vit-h.safetensors"}}  # not a text encoder
    graph["31"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "old_experiment.safetensors"}}
    graph["32"] = {"class_type": "IPAdapterApply", "inputs": {"clip_vision": ["30", 0], "model": ["4", 0]}}
    graph["3"]["inputs"]["model"] = ["32", 0]
    files = parse_workflow("vision", json.dumps(graph)).loaded_files()
    assert files == [("4", "ckpt_name", graph["4"]["inputs"]["ckpt_name"])]  # 31 feeds nothing; 30 is not a CLIP


@pytest.mark.parametrize("change, missing", [
    (lambda g: g["3"].update(class_type="MySampler"), "has no sampler"),
    (lambda g: g["3"]["inputs"].update(latent_image=["8", 0]), "no empty latent"),
    (lambda g: g["3"]["inputs"].update(positive=["4", 1]), "no CLIPTextEncode text"),
])
def test_a_workflow_lacking_something_essential_is_a_sentence(change, missing):
    graph = graph_of("sd15_default")
    change(graph)
    with pytest.raises(WorkflowError, match=missing) as err:
        find_inputs("mine", graph)
    assert "'mine'" in str(err.value)


def test_a_link_to_a_node_the_file_lacks_is_a_sentence_naming_both():
    graph = graph_of("sd15_default")
    graph["8"]["inputs"]["samples"] = ["99", 0]  # VAEDecode from a node that is not there
    with pytest.raises(WorkflowError, match="node 8 VAEDecode takes 'samples' from node 99, which the file does not"):
        parse_workflow("cut", json.dumps(graph))


def test_ui_format_and_bad_json_are_sentences(tmp_path):
    ui_format = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": [[1, 4, 0, 3, 0, "MODEL"]]}
    with pytest.raises(WorkflowError, match="Export \\(API\\)"):
        parse_workflow("ui", json.dumps(ui_format))
    with pytest.raises(WorkflowError, match="is not JSON"):
        parse_workflow("broken", "{nope")
    with pytest.raises(WorkflowError, match="class_type"):
        parse_workflow("nodes", json.dumps({"1": {"inputs": {}}}))
    with pytest.raises(WorkflowError, match="not in"):
        load_workflow("absent", tmp_path)
    for outside in ("../etc/passwd", "/etc/passwd", "", None):
        with pytest.raises(WorkflowError, match="is not in the workflows folder"):
            load_workflow(outside, tmp_path)


def test_a_file_put_in_the_folder_by_hand_loads_under_its_own_name(tmp_path):
    text = (FOLDER / "sd15_default.json").read_text()
    names = ["sdxl (copy)", "flux+lora", "Café", "workflow_api (1)"]
    for name in names:
        (tmp_path / f"{name}.json").write_text(text)
    assert sorted(list_workflows(tmp_path)) == sorted(names)
    for name in names:  # a browser's second download, accents: listed, so usable
        assert load_workflow(name, tmp_path).graph == graph_of("sd15_default")


def test_an_upload_is_checked_then_saved_under_its_file_name(tmp_path):
    text = (FOLDER / "sd15_default.json").read_text()
    w = save_workflow(tmp_path / "wf", "C:\\Users\\me\\My flow (API).json", text)
    assert w.name == "My flow -API" and list_workflows(tmp_path / "wf") == ["My flow -API"]
    assert load_workflow("My flow -API", tmp_path / "wf").graph == graph_of("sd15_default")
    with pytest.raises(WorkflowError):
        save_workflow(tmp_path / "wf", "bad.json", "[]")
    assert list_workflows(tmp_path / "wf") == ["My flow -API"]


def test_other_encodings_a_byte_order_mark_and_deep_nesting(tmp_path):
    graph = graph_of("sd15_default")
    graph["6"]["inputs"]["text"] = "café"
    (tmp_path / "latin1.json").write_bytes(json.dumps(graph, ensure_ascii=False).encode("cp1252"))
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(graph, ensure_ascii=False).encode())
    with pytest.raises(WorkflowError, match=r"The workflow 'latin1' is not UTF-8 text \(byte 0xE9 at position \d+\): "
                                            "save it as UTF-8"):
        load_workflow("latin1", tmp_path)
    assert load_workflow("bom", tmp_path).graph["6"]["inputs"]["text"] == "café"
    assert parse_workflow("bom", "\ufeff" + json.dumps(graph)).graph == graph  # an upload read as text
    with pytest.raises(WorkflowError, match="'deep' is not a ComfyUI API-format graph: it is nested too deeply"):
        parse_workflow("deep", "[" * 100_000 + "]" * 100_000)
    graph["6"]["inputs"]["extra"] = json.loads("[" * 500 + "]" * 500)  # readable, but past any graph's depth
    with pytest.raises(WorkflowError, match="node 6 is nested more than 64 levels deep"):
        parse_workflow("deep", json.dumps(graph))


def test_a_file_named_none_is_listed_and_saved_under_a_name_that_can_be_chosen(tmp_path):
    text = (FOLDER / "sd15_default.json").read_text()
    (tmp_path / "None.json").write_text(text)
    assert list_workflows(tmp_path) == ["None workflow"] and chosen_workflow("None workflow") == "None workflow"
    assert load_workflow("None workflow", tmp_path).graph == graph_of("sd15_default")
    saved = save_workflow(tmp_path / "uploads", "none.json", text)
    assert saved.name == "none workflow" and list_workflows(tmp_path / "uploads") == ["none workflow"]


def test_upload_names_keep_every_script_and_never_replace_another_workflow(tmp_path):
    first, second = graph_of("sd15_default"), graph_of("sd15_default")
    second["6"]["inputs"]["text"] = "SECOND"
    assert save_workflow(tmp_path, "портрет.json", json.dumps(first)).name == "портрет"
    assert save_workflow(tmp_path, "风景.json", json.dumps(second)).name == "风景"
    assert save_workflow(tmp_path, "Cafe\u0301 (copy).json", json.dumps(first)).name == "Café -copy"  # NFC
    again = save_workflow(tmp_path, "портрет.json", json.dumps(second))
    assert again.name == "портрет (2)" and again.summary()["renamed_from"] == "портрет"
    assert load_workflow("портрет", tmp_path).graph == first
    assert load_workflow("портрет (2)", tmp_path).graph == second
    assert save_workflow(tmp_path, "портрет.json", json.dumps(first)).name == "портрет"  # the same: not again
    assert list_workflows(tmp_path) == ["Café -copy", "портрет", "портрет (2)", "风景"]
    long = save_workflow(tmp_path, "风" * 120 + ".json", json.dumps(first))  # 360 bytes: past a file name's 255
    assert long.name == "风" * 81 and load_workflow(long.name, tmp_path).graph == first
