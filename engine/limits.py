"""How much work one request may ask for: a budget per image request and per video, and the longest prompt.

The defaults fit what people make every day (1024² × 30 steps × a batch of 8; 2048² × 60 steps; a
ten-minute 720p storyboard; an X/Y/Z plot of 8 × 8 images) and refuse what would hold the machine for hours. Each is set by an
environment variable; a request over a limit gets a sentence naming the limit and what to lower.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class Limits:
    """Per-request limits; 0 turns one off."""

    max_pixel_steps: int = 2**28  # GATOR_MAX_PIXEL_STEPS: width × height × steps × batch count (268 million;
    # a second-order sampler's step counts twice)
    max_prompt_chars: int = 5000  # GATOR_MAX_PROMPT_CHARS: a prompt or negative prompt
    max_video_pixel_steps: int = 2**32  # GATOR_MAX_VIDEO_PIXEL_STEPS: keyframes × width × height × steps
    max_video_pixels: int = 2**35  # GATOR_MAX_VIDEO_PIXELS: frames × width × height of the video (34 billion)
    max_video_keyframe_pixels: int = 2**29  # GATOR_MAX_VIDEO_KEYFRAME_PIXELS: the pictures a render holds until it
    # encodes (keyframes or title cards, and seed-travel in-betweens) × width × height (537 million: about 3 GB)
    max_storyboard_chars: int = 256 * 1024  # GATOR_MAX_STORYBOARD_CHARS: storyboard YAML/JSON text or file
    max_input_pixels: int = 4096 * 4096  # GATOR_MAX_INPUT_PIXELS: an image a request starts from (img2img)
    max_grid_images: int = 64  # GATOR_MAX_GRID_IMAGES: the cells of one X/Y/Z plot
    max_prompt_lines: int = 100  # GATOR_MAX_PROMPT_LINES: the prompts of one prompt list

    ENV = {"max_pixel_steps": "GATOR_MAX_PIXEL_STEPS", "max_prompt_chars": "GATOR_MAX_PROMPT_CHARS",
           "max_video_pixel_steps": "GATOR_MAX_VIDEO_PIXEL_STEPS", "max_video_pixels": "GATOR_MAX_VIDEO_PIXELS",
           "max_video_keyframe_pixels": "GATOR_MAX_VIDEO_KEYFRAME_PIXELS",
           "max_storyboard_chars": "GATOR_MAX_STORYBOARD_CHARS", "max_input_pixels": "GATOR_MAX_INPUT_PIXELS",
           "max_grid_images": "GATOR_MAX_GRID_IMAGES", "max_prompt_lines": "GATOR_MAX_PROMPT_LINES"}

    @classmethod
    def from_env(cls) -> "Limits":
        values = {}
        for name, var in cls.ENV.items():
            text = (os.environ.get(var) or "").strip()
            if not text:
                continue
            try:
                values[name] = int(float(text))
            except (ValueError, OverflowError):
                raise ValueError(f"{var} must be a whole number, 0 to turn the limit off (got {text!r}).") from None
            if values[name] < 0:
                raise ValueError(f"{var} must be a whole number, 0 to turn the limit off (got {text!r}).")
        return cls(**values)

    def prompt_problems(self, texts: Iterable[tuple[str, Any]]) -> list[str]:
        """Sentences for (name, text) pairs longer than the prompt limit."""
        if not self.max_prompt_chars:
            return []
        return [f"The {name} is too long: {len(text):,} characters; the limit is {self.max_prompt_chars:,} "
                f"({self.ENV['max_prompt_chars']})."
                for name, text in texts if isinstance(text, str) and len(text) > self.max_prompt_chars]

    def storyboard_problem(self, text: str) -> str | None:
        """A sentence when a storyboard's text is longer than the limit."""
        if not self.max_storyboard_chars or len(text) <= self.max_storyboard_chars:
            return None
        return (f"The storyboard is too long: {len(text):,} characters; the limit is {self.max_storyboard_chars:,} "
                f"({self.ENV['max_storyboard_chars']}).")

    def input_image_problem(self, width: int, height: int, what: str = "init image") -> str | None:
        """A sentence when an image a request starts from has more pixels than the cap."""
        if not self.max_input_pixels or width * height <= self.max_input_pixels:
            return None
        return (f"The {what} is too large: {width}×{height} = {_millions(width * height)} pixels; the limit is "
                f"{_millions(self.max_input_pixels)} ({self.ENV['max_input_pixels']}). Scale it down first.")

    def image_problem(self, width: int, height: int, steps: int, count: int, model_calls: int = 1) -> str | None:
        """A sentence when width × height × steps × count is over the budget (each step counted as often as it runs
        the model: `model_calls`, 2 for a second-order sampler's)."""
        work = width * height * steps * count * model_calls
        if not self.max_pixel_steps or work <= self.max_pixel_steps:
            return None
        images = f"{count} images" if count > 1 else "1 image"
        calls = f" × {model_calls} model calls a step" if model_calls > 1 else ""
        return (f"This request is too large: {width}×{height} pixels × {steps} steps{calls} × {images} = "
                f"{_millions(work)} pixel-steps; the limit is {_millions(self.max_pixel_steps)} "
                f"({self.ENV['max_pixel_steps']}). Use a smaller size, fewer steps or a smaller batch.")

    def grid_images_problem(self, count: int, at_least: bool = False) -> str | None:
        """A sentence when an X/Y/Z plot would make more images than the cap (`at_least`: one axis alone would)."""
        if not self.max_grid_images or count <= self.max_grid_images:
            return None
        return (f"This plot would make {'at least ' if at_least else ''}{count:,} images; the limit is "
                f"{self.max_grid_images:,} "
                f"({self.ENV['max_grid_images']}). Use fewer values on its axes.")

    def grid_problem(self, width: int, height: int, steps: int, cells: int) -> str | None:
        """A sentence when a whole X/Y/Z plot is over the work budget: width × height × the steps of all its
        `cells` together (`steps`), the rule a batch follows."""
        work = width * height * steps
        if not self.max_pixel_steps or work <= self.max_pixel_steps:
            return None
        return (f"This plot is too large: {width}×{height} pixels × {steps:,} steps over its {cells} images = "
                f"{_millions(work)} pixel-steps; the limit is {_millions(self.max_pixel_steps)} "
                f"({self.ENV['max_pixel_steps']}). Use fewer values, a smaller size or fewer steps.")

    def video_problems(self, keyframes: int, width: int, height: int, steps: int, frames: int,
                       ai_keyframes: bool, inbetweens: int = 0) -> list[str]:
        """Sentences for a video over its keyframe budget (its `keyframes` and seed-travel `inbetweens`, made with AI
        or not), over what it holds until it encodes, or over its frame budget."""
        out = []
        pictures = keyframes + inbetweens
        counted = f"{keyframes} keyframes" + (f" + {inbetweens} seed-travel in-betweens" if inbetweens else "")
        work = pictures * width * height * steps
        if ai_keyframes and self.max_video_pixel_steps and work > self.max_video_pixel_steps:
            out.append(f"This video is too large: {counted} × {width}×{height} pixels × {steps} steps = "
                       f"{_millions(work)} pixel-steps; the limit is {_millions(self.max_video_pixel_steps)} "
                       f"({self.ENV['max_video_pixel_steps']}). Use fewer scenes, a smaller size or fewer steps"
                       + (", or crossfades instead of seed travel." if inbetweens else "."))
        held = pictures * width * height
        if self.max_video_keyframe_pixels and held > self.max_video_keyframe_pixels:
            out.append(f"This video is too large: {counted} × {width}×{height} pixels = {_millions(held)} pixels "
                       f"held until it is encoded; the limit is {_millions(self.max_video_keyframe_pixels)} "
                       f"({self.ENV['max_video_keyframe_pixels']}). Use fewer scenes or a smaller size.")
        pixels = frames * width * height
        if self.max_video_pixels and pixels > self.max_video_pixels:
            out.append(f"This video is too large: {frames:,} frames × {width}×{height} pixels = {_millions(pixels)} "
                       f"pixels; the limit is {_millions(self.max_video_pixels)} ({self.ENV['max_video_pixels']}). "
                       "Use a shorter video, fewer frames per second or a smaller size.")
        return out


def _millions(n: int) -> str:
    return f"{n / 1e6:,.1f} million"
