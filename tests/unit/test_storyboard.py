"""Storyboard data: validation sentences, files, seed policies, presets, frame arithmetic, timeline."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from engine.errors import InvalidRequest
from engine.params import MAX_SEED
from engine.storyboard import Scene, Storyboard, frame_counts, quality_presets, scene_seeds
from engine.video import FrameSpec, build_timeline, gif_schedule, render_frame, transition_frame_count, video_size


def board(*prompts: str, **kwargs) -> Storyboard:
    return Storyboard.from_prompts(list(prompts) or ["a fox", "a harbour"], **kwargs)


def error_of(sb: Storyboard) -> str:
    with pytest.raises(InvalidRequest) as info:
        sb.validate()
    return str(info.value)


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sb, expected", [
    (Storyboard(scenes=[]), "no scenes"),
    (board("a fox", "   "), "Scene 2 has an empty prompt"),
    (Storyboard(scenes=[Scene("a fox", duration=0)]), "Scene 1's duration must be more than 0 seconds"),
    (Storyboard(scenes=[Scene("a fox", duration=-2)]), "Scene 1's duration must be more than 0 seconds"),
    (Storyboard(scenes=[Scene("a fox", duration="long")]), "Scene 1's duration must be a number"),
    (Storyboard(scenes=[Scene("a", duration=400), Scene("b", duration=300)]), "the longest video is 10 min"),
    (Storyboard(scenes=[Scene("a fox", duration=900)]), "Scene 1 lasts 15 min"),
    (board(fps=0), "Frames per second must be between 1 and 60 (got 0)"),
    (board(fps=61), "Frames per second must be between 1 and 60 (got 61)"),
    (board(width=100), "Width must be a multiple of 8 (got 100; try 96)"),
    (board(height=32), "Height must be between 64 and 2048 pixels (got 32)"),
    (board(width=4096), "Width must be between 64 and 2048"),
    (board(transition="wipe"), "Scene 1's transition must be one of cut, crossfade or seed travel (got 'wipe')"),
    (board(seed_policy="chaos"), "Seed policy must be one of fixed, per_scene, increment (got 'chaos')"),
    (board(quality="ultra"), "Quality must be one of draft, standard, high (got 'ultra')"),
    (board(steps=0), "Steps must be a whole number from 1 to 150"),
    (board(height="tall"), "Height must be a whole number of pixels (got 'tall')"),
    (board(guidance_scale=51), "Guidance scale must be between 0 and 50 (got 51)"),
    (board(seed=2**40), "storyboard seed must be -1 (random)"),
    (Storyboard(scenes=[Scene("a", seed=-5)]), "Scene 1's seed must be -1 (random)"),
    (Storyboard(scenes=[Scene("a", duration=0.05)], fps=8), "shorter than one frame at 8 fps"),
    (Storyboard(scenes=[Scene("a", transition_duration=-1)]), "transition duration must be between 0 and 10"),
    (board(quality=["draft"]), "Quality must be one of draft, standard, high (got ['draft'])"),
    (board(quality={"draft": 1}), "Quality must be one of draft, standard, high (got {'draft': 1})"),
    (board(model=["tiny"]), "The model must be a model name."),
])
def test_bad_storyboards_name_the_problem(sb, expected):
    assert expected in error_of(sb)


def test_every_problem_is_reported_at_once():
    message = error_of(Storyboard(scenes=[Scene(""), Scene("b", duration=0)], fps=100, width=65))
    for part in ("Scene 1 has an empty prompt", "Scene 2's duration", "Frames per second", "Width"):
        assert part in message


def test_good_storyboard_resolves_from_its_preset():
    preset = quality_presets()["draft"]
    sb = board(quality="draft").validate()
    assert (sb.fps, sb.width, sb.height, sb.steps) == (preset["fps"], preset["width"], preset["height"],
                                                       preset["steps"])
    explicit = board(quality="draft", fps=12, width=64, height=128, steps=2).validate()
    assert (explicit.fps, explicit.width, explicit.height, explicit.steps) == (12, 64, 128, 2)


def test_presets_map_quality_to_steps_size_and_fps():
    presets = quality_presets()
    assert list(presets) == ["draft", "standard", "high"]
    assert presets["draft"]["steps"] < presets["standard"]["steps"] < presets["high"]["steps"]
    for values in presets.values():
        assert 8 <= values["fps"] <= 24
        assert values["width"] % 16 == 0 and values["height"] % 16 == 0


def test_names_are_forgiving_about_case_and_dashes():
    sb = Storyboard.from_dict({"scenes": [{"prompt": "a", "transition": "Seed-Travel"},
                                          {"prompt": "b", "transition": "fade"}],
                               "seed_policy": "per-scene", "quality": "HIGH"})
    assert [s.transition for s in sb.scenes] == ["seed_travel", "crossfade"]
    assert (sb.seed_policy, sb.quality) == ("per_scene", "high")
    sb.validate()


# -- files --------------------------------------------------------------------------------------
def full_board() -> Storyboard:
    return Storyboard(
        scenes=[Scene("a fox in the snow", "blurry", 1.5, "crossfade", 0.25, 7),
                Scene("a harbour at dawn", duration=2, transition="seed_travel"),
                Scene("the end card", duration=1)],
        fps=12, width=320, height=192, quality="draft", seed_policy="per_scene", seed=3, steps=4,
        guidance_scale=5.5, model="tiny", title="Trip")


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_file_round_trip(tmp_path, suffix):
    original = full_board()
    path = original.save(tmp_path / f"board{suffix}")
    assert Storyboard.load(path) == original
    if suffix == ".json":
        assert json.loads(path.read_text())["scenes"][0]["negative_prompt"] == "blurry"


def test_text_round_trip_and_short_forms():
    original = full_board()
    assert Storyboard.parse(original.dumps("yaml")) == original
    assert Storyboard.parse(original.dumps("json")) == original
    short = Storyboard.parse("fps: 8\nscenes:\n  - a fox\n  - prompt: a harbour\n    duration: 3\n")
    assert [s.prompt for s in short.scenes] == ["a fox", "a harbour"]
    assert short.scenes[1].duration == 3 and short.fps == 8


def test_saved_render_section_is_ignored_on_load(tmp_path):
    path = tmp_path / "video.json"
    path.write_text(json.dumps({**full_board().to_dict(), "render": {"status": "success"}}))
    assert Storyboard.load(path) == full_board()


@pytest.mark.parametrize("data, expected", [
    ([1, 2], "must be a mapping"),
    ({"fps": 8}, "needs a 'scenes' list"),
    ({"scenes": [{"prompt": "a", "duraton": 2}]}, "Scene 1 has unknown field(s): duraton"),
    ({"scenes": ["a"], "frames_per_second": 8}, "Unknown storyboard field(s): frames_per_second"),
    ({"scenes": [3]}, "Scene 1 must be a prompt or a mapping"),
    ({1: "x", "scenes": ["a"]}, "Unknown storyboard field(s): 1. Known fields: fps,"),
    ({1: "x", "foo": "y", "scenes": ["a"]}, "Unknown storyboard field(s): 1, foo. Known fields:"),
    ({None: 1, "scenes": ["a"]}, "Unknown storyboard field(s): null. Known fields:"),
    ({True: 1, "scenes": ["a"]}, "Unknown storyboard field(s): true. Known fields:"),
    ({"scenes": [{"prompt": "a", 5: "b", "z": "c"}]}, "Scene 1 has unknown field(s): 5, z. Known fields: duration,"),
])
def test_malformed_files_say_what_is_wrong(data, expected):
    with pytest.raises(InvalidRequest, match=None) as info:
        Storyboard.from_dict(data)
    assert expected in str(info.value)


def test_field_names_that_are_not_text_are_named_in_a_sentence():
    with pytest.raises(InvalidRequest) as info:
        Storyboard.parse("1: x\nscenes: [a]")
    assert str(info.value).endswith(" Field names are text.")


def test_unreadable_files_are_invalid_requests(tmp_path):
    with pytest.raises(InvalidRequest, match="Could not read"):
        Storyboard.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        Storyboard.load(bad)
    with pytest.raises(InvalidRequest, match="not valid YAML"):
        Storyboard.parse("scenes: [a, b\n")


def test_with_overrides_is_a_copy_and_leaves_the_original_alone():
    original = full_board()
    before = original.to_dict()
    changed = original.with_overrides(fps=24, seed_policy="Fixed", title="Other")
    assert (changed.fps, changed.seed_policy, changed.title) == (24, "fixed", "Other")
    assert changed.scenes == original.scenes and changed.scenes[0] is not original.scenes[0]
    changed.scenes[0].prompt = "a wolf"
    assert original.to_dict() == before
    with pytest.raises(InvalidRequest, match=r"Unknown video option\(s\): frames, scenes\. Known options: fps, "):
        original.with_overrides(frames=3, scenes=[], fps=1)
    assert original.to_dict() == before


def test_from_prompts_splits_text_into_scenes():
    sb = Storyboard.from_prompts("a fox\n\n  \na harbour\n", duration=3, transition="cut", fps=10)
    assert [s.prompt for s in sb.scenes] == ["a fox", "a harbour"]
    assert all(s.duration == 3 and s.transition == "cut" for s in sb.scenes) and sb.fps == 10


# -- seeds --------------------------------------------------------------------------------------
def test_fixed_policy_gives_every_scene_the_same_seed():
    assert board("a", "b", "c", seed_policy="fixed", seed=42).resolve_seeds() == [42, 42, 42]
    drawn = board("a", "b", "c", seed_policy="fixed").resolve_seeds(random.Random(1))
    assert len(set(drawn)) == 1 and 0 <= drawn[0] <= MAX_SEED


def test_increment_policy_counts_up_from_the_base():
    assert board("a", "b", "c", seed_policy="increment", seed=10).resolve_seeds() == [10, 11, 12]
    assert board("a", "b", seed_policy="increment", seed=MAX_SEED).resolve_seeds() == [MAX_SEED, 0]
    first, second = board("a", "b", seed_policy="increment", seed=-1).resolve_seeds(random.Random(5))
    assert second == first + 1


def test_per_scene_policy_uses_scene_seeds_or_random():
    sb = Storyboard(scenes=[Scene("a", seed=5), Scene("b"), Scene("c", seed=-1), Scene("d", seed=9)],
                    seed_policy="per_scene", seed=1000)
    seeds = sb.resolve_seeds(random.Random(3))
    assert seeds[0] == 5 and seeds[3] == 9
    assert all(0 <= s <= MAX_SEED for s in seeds) and seeds[1] != seeds[2]
    assert sb.resolve_seeds(random.Random(3)) == seeds  # reproducible with the same generator


def test_scene_seeds_is_the_one_policy_rule():
    assert scene_seeds("fixed", 7, [1, 2, 3]) == [7, 7, 7]  # scene seeds count only under per_scene
    assert scene_seeds("increment", MAX_SEED - 1, [None] * 3) == [MAX_SEED - 1, MAX_SEED, 0]
    drawn = random.Random(2)  # -1 and None are drawn from the generator, in scene order
    expected = [5, drawn.randint(0, MAX_SEED), drawn.randint(0, MAX_SEED)]
    assert scene_seeds("per_scene", 7, [5, None, -1], random.Random(2)) == expected
    with pytest.raises(InvalidRequest, match="Seed policy must be one of fixed, per_scene, increment"):
        scene_seeds("chaos", 7, [None])


@pytest.mark.parametrize("policy, base, own", [("fixed", None, [None] * 3), ("increment", -1, [None] * 3),
                                               ("increment", MAX_SEED, [None] * 3), ("per_scene", 4, [5, None, -1])])
def test_with_seeds_writes_out_the_seeds_a_render_used(policy, base, own):
    sb = Storyboard(scenes=[Scene(p, seed=s) for p, s in zip("abc", own)], seed_policy=policy, seed=base)
    seeds = sb.resolve_seeds(random.Random(7))
    written = sb.with_seeds(seeds)
    assert written.resolve_seeds() == seeds and written.seed_policy == policy
    assert Storyboard.parse(written.dumps("json")).resolve_seeds() == seeds
    assert [s.seed for s in sb.scenes] == own and sb.seed == base  # the original is left alone


# -- frame arithmetic and the timeline ----------------------------------------------------------
def test_frame_counts_sum_to_the_total_duration():
    assert frame_counts([1.0, 2.0, 0.5], 8) == [8, 16, 4]
    counts = frame_counts([0.3, 0.3, 0.3, 0.3], 10)
    assert sum(counts) == 12 and all(c >= 1 for c in counts)
    counts = frame_counts([1 / 3] * 9, 24)
    assert sum(counts) == 72 and set(counts) == {8}
    counts = frame_counts([1.5, 1.0, 1.5, 1.0], 1)  # .5 ties never leave a scene without frames
    assert sum(counts) == 5 and min(counts) >= 1


def test_transitions_keep_at_least_one_plain_frame():
    assert transition_frame_count(16, 0.5, 8) == 4
    assert transition_frame_count(3, 2.0, 8) == 2
    assert transition_frame_count(1, 0.5, 8) == 0
    assert transition_frame_count(8, 0, 8) == 0


def test_crossfade_timeline_blends_neighbours_linearly():
    specs = build_timeline([4, 3], [3, 0])
    assert len(specs) == 7
    assert specs[0] == FrameSpec(0) and specs[4:] == [FrameSpec(1)] * 3
    assert [(s.a, s.b) for s in specs[1:4]] == [(0, 1)] * 3
    assert [s.alpha for s in specs[1:4]] == pytest.approx([0.25, 0.5, 0.75])
    a = np.zeros((2, 2, 3), np.uint8)
    b = np.full((2, 2, 3), 200, np.uint8)
    assert render_frame(specs[2], [a, b]).tolist() == np.full((2, 2, 3), 100).tolist()
    assert render_frame(specs[0], [a, b]) is a


def test_seed_travel_anchors_replace_the_blend():
    # scene 0 -> 1 through two generated in-betweens (images 2 and 3) at t = 1/3 and 2/3
    anchors = {0: [(0.0, 0), (1 / 3, 2), (2 / 3, 3), (1.0, 1)]}
    specs = build_timeline([3, 1], [2, 0], anchors)
    assert specs == [FrameSpec(0), FrameSpec(2), FrameSpec(3), FrameSpec(1)]
    # more frames than in-betweens: frames between anchors are blends of the nearest two
    specs = build_timeline([6, 1], [5, 0], {0: [(0.0, 0), (0.5, 2), (1.0, 1)]})
    middle = specs[1:6]
    assert middle[2] == FrameSpec(2)
    assert (middle[0].a, middle[0].b) == (0, 2) and middle[0].alpha == pytest.approx(1 / 3)
    assert (middle[4].a, middle[4].b) == (2, 1) and middle[4].alpha == pytest.approx(2 / 3)


@pytest.mark.parametrize("count, fps", [(48, 24), (100, 50), (120, 60), (7, 60), (31, 30), (1, 60), (90, 45)])
def test_gif_delays_are_whole_centiseconds_of_at_least_two(count, fps):
    shown, delays = gif_schedule(count, fps)
    assert sum(delays) == 10 * round(count * 100 / fps)  # the GIF lasts as long as the video
    assert all(d >= 20 and d % 10 == 0 for d in delays) and len(shown) == len(delays)
    assert shown[0] == 0 and shown == sorted(set(shown))
    if fps <= 50:
        assert shown == list(range(count))  # frames are only left out above 50 fps


def test_video_size_is_a_multiple_of_16():
    assert video_size(512, 288) == (512, 288)
    assert video_size(72, 200) == (64, 192)
