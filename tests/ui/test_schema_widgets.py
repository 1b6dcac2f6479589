"""The Image tab's widgets and the API take their names, ranges and defaults from engine/params.py."""
from __future__ import annotations

from gradio_client import Client

from engine import params as P
from engine.storyboard import FPS, TRANSITION_DURATION


def test_the_ui_widgets_take_their_limits_from_the_schema(local_app):
    blocks = {getattr(b, "elem_id", None): b for b in local_app.demo.blocks.values()}
    for elem_id, param in (("steps", P.STEPS), ("guidance", P.GUIDANCE), ("batch", P.BATCH_COUNT),
                           ("clip-skip", P.CLIP_SKIP)):
        widget = blocks[elem_id]
        assert (widget.minimum, widget.maximum, widget.step) == (param.minimum, param.maximum, param.step), elem_id
        assert widget.label == param.label and widget.info == param.widget()["info"]
    # number boxes leave the range to the engine's sentence and say it in their help text
    for elem_id, param in (("width", P.WIDTH), ("height", P.HEIGHT), ("seed", P.SEED)):
        widget = blocks[elem_id]
        assert widget.step == param.step and widget.label == param.label, elem_id
        assert f"{param.maximum}" in widget.info and widget.info == param.widget()["info"]
    assert blocks["backend"].choices[0] == ("auto", "auto")
    enabled = {name for name, backend in local_app.manager.backends.items() if backend.enabled}
    assert {value for _, value in blocks["backend"].choices} == {"auto", *enabled}


def test_the_video_tab_takes_its_limits_from_the_schema(local_app):
    blocks = {getattr(b, "elem_id", None): b for b in local_app.demo.blocks.values()}
    slider = blocks["video-transition-duration"]
    assert (slider.minimum, slider.maximum, slider.step, slider.value) == \
        (TRANSITION_DURATION.minimum, TRANSITION_DURATION.maximum, TRANSITION_DURATION.step, TRANSITION_DURATION.default)
    assert slider.info == TRANSITION_DURATION.widget()["info"]
    # empty boxes take the quality preset's values; each says its range in its help text
    for elem_id, param in (("video-width", P.WIDTH), ("video-height", P.HEIGHT), ("video-fps", FPS),
                           ("video-steps", P.STEPS), ("video-seed", P.SEED)):
        widget = blocks[elem_id]
        assert widget.step == param.step and widget.info.startswith(param.widget()["info"]), elem_id
        assert P.number_text(param.maximum) in widget.info, elem_id
    assert blocks["video-seed"].value == P.SEED.default and blocks["video-width"].value is None


def test_the_api_speaks_the_schemas_names_and_batches(local_app):
    client = Client(local_app.url, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate_image"]
    names = [p["parameter_name"] for p in api["parameters"]]
    # the schema's names in the schema's order (style, added after the seed's ten, keeps its place)
    assert [name for name in names if name in P.BY_NAME] == [p.name for p in P.PARAMS]
    assert names[-2:] == ["steps", "guidance"]  # the accepted aliases come last
    path, info = client.predict("a fox", width=64, height=64, num_inference_steps=1, seed=41, batch_count=2,
                                api_name="/generate_image")
    assert [item["seed"] for item in info["batch"]] == [41, 42] and info["seed"] == 41
    assert all(item["saved_path"].endswith(".png") for item in info["batch"])
