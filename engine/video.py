"""Storyboard -> keyframes -> frame timeline with transitions -> H.264 mp4 (and optional GIF), as a stream of events.

Every keyframe goes through the manager's `stream_image` (passed in as a callable, so this module never
imports the manager), which picks ComfyUI or diffusers per frame and falls back on its own. With
`use_ai_generation=False` keyframes are title cards drawn with PIL: no model is touched.
"""
from __future__ import annotations

import asyncio
import colorsys
import errno
import hashlib
import json
import logging
import math
import re
import shutil
import time
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

import numpy as np
from PIL import Image, ImageDraw

from .errors import GatorError, GenerationCancelled, InvalidRequest, OutputError, os_reason, output_error
from .events import Done, Event, Failed, Fallback, Progress, Queued, Started
from .limits import Limits
from .outputs import owner_folder
from .storyboard import Storyboard
from .text_drawing import ellipsized, font as text_font, one_line, wrap as wrap_text

logger = logging.getLogger(__name__)

StreamImage = Callable[..., AsyncIterator[Event]]
VIDEO_TYPES = ("multi_frame", "storyboard")  # how a text prompt is read: one scene per line, or storyboard YAML/JSON
MACRO_BLOCK = 16
ENCODE_CHUNK = 24  # frames handed to ffmpeg per thread hop (progress and cancel granularity)
GIF_MAX_SIDE = 512
GIF_MIN_DELAY_CS = 2  # browsers play a GIF frame delay under 2 centiseconds (20 ms) as 100 ms
DISK_FULL_BYTES = 1024 * 1024  # less free space than this after a failed write: the disk was full
TITLE_CARD = "title_card"


@dataclass(frozen=True)
class VideoProgress:
    """Progress inside a video render that is not a finished keyframe.

    phase: "denoising" (a keyframe's steps; `preview` is the step preview), "encoding" (frames written
    to the mp4) or "gif". `done`/`total` count steps or frames; `message` says which scene.
    """

    phase: str
    done: int
    total: int
    message: str = ""
    preview: Image.Image | None = None


# -- timeline -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameSpec:
    """One output frame: image `a`, or `(1 - alpha) * a + alpha * b` when `b` is set."""

    a: int
    b: int | None = None
    alpha: float = 0.0


def transition_frame_count(scene_frames: int, seconds: float, fps: float) -> int:
    """Frames of a transition at the end of a scene: its length, keeping at least one plain frame."""
    wanted = math.floor(max(0.0, seconds) * fps + 0.5)
    return max(0, min(wanted, scene_frames - 1))


def _blend_at(anchors: list[tuple[float, int]], t: float) -> FrameSpec:
    """The frame at position t in [0, 1] between sorted (t, image) anchors."""
    for (t0, i0), (t1, i1) in zip(anchors, anchors[1:]):
        if t0 <= t <= t1:
            if t1 - t0 < 1e-9 or abs(t - t0) < 1e-9:
                return FrameSpec(i0)
            if abs(t - t1) < 1e-9:
                return FrameSpec(i1)
            return FrameSpec(i0, i1, (t - t0) / (t1 - t0))
    return FrameSpec(anchors[-1][1])


def build_timeline(counts: list[int], transition_frames: list[int],
                   anchors: dict[int, list[tuple[float, int]]] | None = None) -> list[FrameSpec]:
    """Every frame of the video in order.

    Scene i (image i) holds for counts[i] frames; its last transition_frames[i] frames move towards
    scene i+1: frame k of n sits at t = k/(n+1) and blends the anchors around t. The default anchors
    [(0, i), (1, i+1)] make a crossfade; seed travel adds its generated in-betweens as anchors.
    """
    frames: list[FrameSpec] = []
    last = len(counts) - 1
    for i, count in enumerate(counts):
        n = transition_frames[i] if i < last else 0
        frames += [FrameSpec(i)] * (count - n)
        points = (anchors or {}).get(i) or [(0.0, i), (1.0, i + 1)]
        frames += [_blend_at(points, k / (n + 1)) for k in range(1, n + 1)]
    return frames


def render_frame(spec: FrameSpec, images: list[np.ndarray]) -> np.ndarray:
    """The RGB uint8 pixels of one frame."""
    a = images[spec.a]
    if spec.b is None:
        return a
    b = images[spec.b]
    return np.rint(a.astype(np.float32) * (1.0 - spec.alpha) + b.astype(np.float32) * spec.alpha).astype(np.uint8)


def video_size(width: int, height: int) -> tuple[int, int]:
    """The encoded size: each side cut down to a multiple of 16 so every H.264 player accepts it."""
    return max(MACRO_BLOCK, width // MACRO_BLOCK * MACRO_BLOCK), max(MACRO_BLOCK, height // MACRO_BLOCK * MACRO_BLOCK)


def fit_frame(image: Image.Image, width: int, height: int) -> np.ndarray:
    """Resize `image` to the storyboard size if needed, then centre-crop to the video size."""
    image = image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    vw, vh = video_size(width, height)
    left, top = (width - vw) // 2, (height - vh) // 2
    return np.asarray(image.crop((left, top, left + vw, top + vh)), dtype=np.uint8).copy()


# -- title cards --------------------------------------------------------------------------------
def _gradient(width: int, height: int, key: str) -> Image.Image:
    """A diagonal two-colour gradient whose hue follows `key` (stable per prompt)."""
    hue = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:6], 16) / 0xFFFFFF
    top = np.array(colorsys.hsv_to_rgb(hue, 0.55, 0.45)) * 255
    bottom = np.array(colorsys.hsv_to_rgb((hue + 0.12) % 1.0, 0.65, 0.18)) * 255
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    t = np.clip(0.75 * y + 0.25 * x, 0.0, 1.0)[..., None]
    return Image.fromarray(np.rint(top * (1 - t) + bottom * t).astype(np.uint8), "RGB")


def title_card(prompt: str, number: int, total: int, width: int, height: int, *, detail: str = "",
               title: str = "") -> Image.Image:
    """A readable preview card: scene number, the prompt wrapped on a gradient, and a detail line."""
    card = _gradient(width, height, prompt)
    draw = ImageDraw.Draw(card)
    margin = max(4, width // 16)
    header = f"Scene {number} / {total}" + (f" · {title}" if title else "")
    header_font = text_font(max(8, height // 14), bold=True)
    draw.text((margin, margin), one_line(draw, header, header_font, width - 2 * margin), font=header_font,
              fill=(255, 255, 255))
    body_top = margin + int(header_font.size * 1.6) if hasattr(header_font, "size") else margin * 3
    footer_font = text_font(max(7, height // 20))
    footer_h = int(getattr(footer_font, "size", 10) * 1.6) if detail else 0
    room = height - body_top - margin - footer_h
    size = max(8, height // 9)
    while True:  # shrink the prompt's font until it fits
        font = text_font(size)
        lines = wrap_text(draw, prompt.strip(), font, width - 2 * margin)
        line_h = int(size * 1.25)
        if len(lines) * line_h <= room or size <= 8:
            break
        size = max(8, int(size * 0.85))
    fits = max(1, room // line_h)
    if len(lines) > fits:  # still too long at the smallest size: end with an ellipsis
        lines = lines[:fits - 1] + [ellipsized(draw, lines[fits - 1], font, width - 2 * margin)]
    for n, line in enumerate(lines):
        draw.text((margin, body_top + n * line_h), line, font=font, fill=(255, 255, 255),
                  stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0))
    if detail:
        draw.text((margin, height - margin - footer_h + 2), detail, font=footer_font, fill=(225, 225, 225))
    return card


# -- files --------------------------------------------------------------------------------------
def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].strip("-") or "video"


def _new_stem(folder: Path, label: str) -> str:
    """A file stem in `folder` that no earlier video uses."""
    base = f"{time.strftime('%H%M%S')}-video-{_slug(label)}"
    stem, n = base, 1
    while any((folder / f"{stem}{suffix}").exists() for suffix in (".mp4", ".json", ".gif", "-cards")):
        stem, n = f"{base}-{n}", n + 1
    return stem


def _jsonable(result: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(result, default=str))


class _Cancelled(GenerationCancelled):
    pass


class _KeyframeFailed(GatorError):
    pass


# -- one render ---------------------------------------------------------------------------------
@dataclass
class _Render:
    """The state of one storyboard render: what has been made so far, for the result and the JSON."""

    board: Storyboard
    stream_image: StreamImage | None
    folder: Path
    stem: str
    seeds: list[int]
    use_ai: bool
    cancel: asyncio.Event | None
    can_interpolate: Callable[[str], bool] | None = None  # can this backend make seed-travel in-betweens?
    video_type: str = "storyboard"
    scenes: list[dict[str, Any]] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)  # scene keyframes, then in-betweens
    transitions: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    made: int = 0
    planned: int = 0
    video_path: Path | None = None
    gif_path: Path | None = None
    _anchors: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    _transition_frames: list[int] = field(default_factory=list)

    @property
    def json_path(self) -> Path:
        return self.folder / f"{self.stem}.json"

    def check_cancel(self, where: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled(f"Stopped {where}.")

    def result(self, status: str, error: str | None = None, **extra: Any) -> dict[str, Any]:
        board = self.board
        return {
            "status": status, "error": error,
            "video": str(self.video_path) if self.video_path else None, "gif": None,
            "storyboard_path": str(self.json_path),
            "keyframes": [s["path"] for s in self.scenes if s.get("path")],
            "backends": [s["backend"] for s in self.scenes],
            "inbetweens": [p for t in self.transitions for p in t["inbetweens"]],
            # frames and duration_s are what the video holds (none until it is encoded); planned_duration_s the ask
            "frames": 0, "duration_s": 0.0, "planned_duration_s": round(board.total_duration, 4), "fps": board.fps,
            "width": board.width, "height": board.height,
            "scenes": [dict(s) for s in self.scenes], "transitions": [dict(t) for t in self.transitions],
            "seeds": list(self.seeds), "quality": board.quality, "seed_policy": board.seed_policy,
            "video_type": self.video_type, "use_ai_generation": self.use_ai, "warnings": list(self.warnings),
            "timings": dict(self.timings),
            **extra,
        }

    def kept(self) -> str:
        """The sentence saying what a stopped or failed render keeps: its keyframes, and the mp4 once written."""
        return f"Kept {len(self.scenes)} keyframe(s)" + (" and the mp4." if self.video_path else ".")

    def save_json(self, result: dict[str, Any]) -> None:
        """The storyboard (resolved) plus what this render made, beside the video."""
        data = {**self.board.to_dict(), "render": _jsonable(result)}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.json_path.with_suffix(".json.part")
            tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
            tmp.replace(self.json_path)
        except OSError as err:
            logger.error("Could not save the storyboard in %s: %s", self.folder, err)
            raise output_error("The storyboard", err) from err

    # -- keyframes ------------------------------------------------------------------------------
    async def keyframes(self) -> AsyncIterator[Event | VideoProgress]:
        board, total = self.board, len(self.board.scenes)
        counts = board.frame_counts()
        self.planned = total + (travel_estimate(board, counts) if self.use_ai else 0)
        start = 0
        for i, scene in enumerate(board.scenes):
            self.check_cancel(f"before scene {i + 1}")
            began = time.perf_counter()
            info: dict[str, Any] = {
                "index": i + 1, "prompt": scene.prompt, "negative_prompt": scene.negative_prompt,
                "seed": self.seeds[i], "duration_s": scene.duration, "frames": counts[i], "start_frame": start,
                "transition": scene.transition if i < total - 1 else None,
            }
            start += counts[i]
            if self.use_ai:
                done: dict[str, Any] = {}
                async for event in self._generate(f"Scene {i + 1}/{total}", done, prompt=scene.prompt,
                                                  negative_prompt=scene.negative_prompt, seed=self.seeds[i],
                                                  model=board.model):
                    yield event
                image = done["image"]
                info.update(backend=done.get("backend"), model=done.get("model"),
                            model_id=done.get("model_id"), path=done.get("path"),
                            fallback_reason=done.get("fallback_reason"))
                self.warnings += [f"Scene {i + 1}: {w}" for w in done.get("warnings") or []]
            else:
                detail = f"{scene.duration:g} s" + (f" · {scene.transition} →" if i < total - 1 else "")
                image = await asyncio.to_thread(title_card, scene.prompt, i + 1, total, board.width,
                                                board.height, detail=detail, title=board.title)
                path = self.folder / f"{self.stem}-cards" / f"scene-{i + 1:02d}.png"
                await asyncio.to_thread(self._save_card, image, path)
                info.update(backend=TITLE_CARD, model=None, model_id=None, path=str(path), fallback_reason=None)
            info["seconds"] = round(time.perf_counter() - began, 4)
            self.scenes.append(info)
            self.images.append(image)
            self.made += 1
            yield Progress(step=self.made, total=self.planned, preview=image, backend=info["backend"])

    def _save_card(self, image: Image.Image, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path, format="PNG")
        except OSError as err:
            logger.error("Could not save a title card in %s: %s", path.parent, err)
            raise output_error("A title card", err) from err

    async def _generate(self, label: str, done: dict[str, Any], **kwargs: Any) -> AsyncIterator[Event | VideoProgress]:
        """One image through stream_image; its Done result lands in `done`. Raises on failure or cancel."""
        board = self.board
        params = dict(width=board.width, height=board.height, num_inference_steps=board.steps,
                      guidance_scale=board.guidance_scale, cancel=self.cancel, **kwargs)
        failure: str | None = None
        try:
            async for event in self.stream_image(**params):
                if isinstance(event, Done):
                    done.update(event.result)
                elif isinstance(event, Failed):
                    failure = event.error
                elif isinstance(event, Progress):
                    yield VideoProgress("denoising", event.step, event.total, label, event.preview)
                elif isinstance(event, Fallback):
                    yield Fallback(f"{label}: {event.reason}", event.to_backend)
                elif isinstance(event, Started):  # "Scene 2/3 · Started on ...": which keyframe it begins
                    yield replace(event, stage=label)
                elif isinstance(event, Queued):
                    yield event
        except Exception as err:  # a generator that raises instead of ending in Failed
            logger.exception("%s: image generation raised", label)
            failure = str(err) or type(err).__name__
        self.check_cancel(f"during {label.lower()}")
        if failure is not None or not done or done.get("status", "success") != "success" or done.get("image") is None:
            raise _KeyframeFailed(f"{label} failed: {failure or done.get('error') or 'no image came back'}")

    # -- transitions ----------------------------------------------------------------------------
    async def in_betweens(self) -> AsyncIterator[Event | VideoProgress]:
        """Plan every transition; generate seed-travel in-betweens where both keyframes came from diffusers."""
        board = self.board
        counts = board.frame_counts()
        plans = []
        for i, scene in enumerate(board.scenes[:-1]):
            n = transition_frame_count(counts[i], scene.transition_duration, float(board.fps))
            used = scene.transition if n else "cut"
            reason = self._travel_blocker(i) if used == "seed_travel" else None
            if reason:
                self.warnings.append(f"Scene {i + 1} → {i + 2}: {reason}; used a crossfade instead.")
                used = "crossfade"
            m = min(n, int(board.preset.get("max_travel_inbetweens", n))) if used == "seed_travel" else 0
            plans.append({"from": i + 1, "to": i + 2, "requested": scene.transition, "used": used, "frames": n,
                          "inbetweens": [], "anchors": [], "m": m})
        self.planned = self.made + sum(p["m"] for p in plans)
        for plan in plans:
            if plan["m"]:
                async for event in self._travel(plan):
                    yield event
            self.transitions.append({k: v for k, v in plan.items() if k not in ("anchors", "m")})
        self._anchors = {p["from"] - 1: p["anchors"] for p in plans if p["used"] == "seed_travel" and p["anchors"]}
        self._transition_frames = [p["frames"] if p["used"] != "cut" else 0 for p in plans] + [0]

    def _travel_blocker(self, i: int) -> str | None:
        a, b = self.scenes[i], self.scenes[i + 1]
        if not self.use_ai:
            return "seed travel needs AI keyframes (title-card preview)"
        if (a["backend"], a.get("model_id")) != (b["backend"], b.get("model_id")):
            return "seed travel needs both scenes on the same backend and model"
        if self.can_interpolate is not None and not self.can_interpolate(a["backend"]):
            return f"seed travel needs a backend that can interpolate, and {a['backend']} cannot"
        return None

    async def _travel(self, plan: dict[str, Any]) -> AsyncIterator[Event | VideoProgress]:
        i, m = plan["from"] - 1, plan["m"]
        a, b = self.board.scenes[i], self.board.scenes[i + 1]
        anchors: list[tuple[float, int]] = [(0.0, i)]
        began = time.perf_counter()
        for j in range(1, m + 1):
            self.check_cancel(f"before in-between {j} of scene {i + 1} → {i + 2}")
            t = j / (m + 1)
            label = f"Scene {i + 1} → {i + 2}, in-between {j}/{m}"
            done: dict[str, Any] = {}
            try:
                async for event in self._generate(
                        label, done, prompt=a.prompt, negative_prompt=a.negative_prompt, seed=self.seeds[i],
                        model=self.scenes[i].get("model_id"), backend=self.scenes[i]["backend"],
                        extra={"interpolate": {"seed_b": self.seeds[i + 1], "prompt_b": b.prompt,
                                               "negative_prompt_b": b.negative_prompt, "t": t}}):
                    yield event
            except _KeyframeFailed as err:
                self.warnings.append(f"{str(err).rstrip('.')}; used a crossfade for scene {i + 1} → {i + 2} instead.")
                plan.update(used="crossfade", anchors=[])
                self.planned -= m - j + 1
                return
            anchors.append((t, len(self.images)))
            self.images.append(done["image"])
            plan["inbetweens"].append(done.get("path"))
            self.made += 1
            yield Progress(step=self.made, total=self.planned, preview=done["image"], backend=done.get("backend") or "")
        anchors.append((1.0, i + 1))
        plan["anchors"] = anchors
        plan["seconds"] = round(time.perf_counter() - began, 4)

    # -- encoding -------------------------------------------------------------------------------
    def timeline(self) -> tuple[list[FrameSpec], list[np.ndarray]]:
        board = self.board
        pixels = [fit_frame(img, board.width, board.height) for img in self.images]
        return build_timeline(board.frame_counts(), self._transition_frames, self._anchors), pixels

    async def encode(self, specs: list[FrameSpec], pixels: list[np.ndarray]) -> AsyncIterator[VideoProgress]:
        """Write the mp4 (H.264, yuv420p, faststart) in chunks; a cancel removes the partial file."""
        import imageio_ffmpeg

        board = self.board
        final = self.folder / f"{self.stem}.mp4"
        part = self.folder / f"{self.stem}.part.mp4"
        height, width = pixels[0].shape[:2]
        writer = imageio_ffmpeg.write_frames(
            str(part), (width, height), fps=float(board.fps), codec="libx264", pix_fmt_out="yuv420p",
            quality=float(board.preset.get("crf_quality", 7)), macro_block_size=MACRO_BLOCK,
            ffmpeg_log_level="error", output_params=["-movflags", "+faststart"])
        total = len(specs)
        try:
            await asyncio.to_thread(writer.send, None)
            yield VideoProgress("encoding", 0, total, "Encoding the mp4")
            for first in range(0, total, ENCODE_CHUNK):
                self.check_cancel("while encoding")
                chunk = specs[first:first + ENCODE_CHUNK]
                await asyncio.to_thread(_write_chunk, writer, chunk, pixels)
                yield VideoProgress("encoding", first + len(chunk), total, "Encoding the mp4")
            await asyncio.to_thread(writer.close)
            part.replace(final)
        except (GenerationCancelled, asyncio.CancelledError, GeneratorExit):
            await asyncio.to_thread(_close_quietly, writer)
            part.unlink(missing_ok=True)
            raise
        except Exception as err:  # ffmpeg's errors carry its command line: log them, say a sentence
            await asyncio.to_thread(_close_quietly, writer)
            part.unlink(missing_ok=True)
            logger.error("Encoding %s failed: %s", part, err)
            if _disk_full(self.folder, err):
                raise output_error("The video", OSError(errno.ENOSPC, "No space left on device")) from err
            raise OutputError("The video could not be encoded: ffmpeg stopped while writing it (the server log "
                              "has the details).") from err
        self.video_path = final

    async def gif(self, specs: list[FrameSpec], pixels: list[np.ndarray]) -> AsyncIterator[VideoProgress]:
        """The same timeline as a looping GIF, at most GIF_MAX_SIDE px on its long side; a cancel removes the
        partial file."""
        self.check_cancel("before the GIF")
        path = self.folder / f"{self.stem}.gif"
        shown, delays_ms = gif_schedule(len(specs), float(self.board.fps))

        def frames() -> Iterator[np.ndarray]:  # runs in the writer's thread: Stop ends it between frames
            for index in shown:
                self.check_cancel("while writing the GIF")
                yield render_frame(specs[index], pixels)

        yield VideoProgress("gif", 0, len(shown), "Writing the GIF")
        try:
            await asyncio.to_thread(write_gif, path, frames(), delays_ms)
        except OSError as err:
            logger.error("Writing %s failed: %s", path, err)
            raise output_error("The GIF", err) from err
        self.gif_path = path
        yield VideoProgress("gif", len(shown), len(shown), "Writing the GIF")


def _disk_full(folder: Path, err: BaseException) -> bool:
    """Whether a failed write ran out of space (ffmpeg reports it only as a broken pipe)."""
    if isinstance(err, OSError) and os_reason(err) == "no space left":
        return True
    try:
        return shutil.disk_usage(folder).free < DISK_FULL_BYTES
    except OSError:
        return False


def _write_chunk(writer: Any, specs: list[FrameSpec], pixels: list[np.ndarray]) -> None:
    for spec in specs:
        writer.send(np.ascontiguousarray(render_frame(spec, pixels)).tobytes())


def _close_quietly(writer: Any) -> None:
    try:
        writer.close()
    except Exception:  # ffmpeg already gone; the partial file is removed by the caller
        logger.debug("ffmpeg writer did not close cleanly", exc_info=True)


def gif_schedule(count: int, fps: float) -> tuple[list[int], list[int]]:
    """Which of `count` frames at `fps` a GIF shows, and each one's delay in ms.

    GIF delays are whole centiseconds: each comes from the running total, so the GIF lasts as long as the
    video. Above 50 fps a frame starting under GIF_MIN_DELAY_CS after the last one shown is left out.
    """
    starts = [math.floor(i * 100 / fps + 0.5) for i in range(count + 1)]  # centiseconds; the last is the end
    shown = [0] if count else []
    for i in range(1, count):
        if starts[i] - starts[shown[-1]] >= GIF_MIN_DELAY_CS:
            shown.append(i)
    if len(shown) > 1 and starts[count] - starts[shown[-1]] < GIF_MIN_DELAY_CS:
        shown.pop()  # the last frame would flash too briefly: the one before it holds to the end
    ends = [starts[i] for i in shown[1:]] + [starts[count]]
    return shown, [10 * (end - starts[i]) for i, end in zip(shown, ends)]


def write_gif(path: Path, frames: Iterable[np.ndarray], delays_ms: list[int]) -> Path:
    """A looping GIF of `frames`, each shown for its delay, scaled down to GIF_MAX_SIDE px on the long side;
    nothing is left behind when `frames` raises (a cancel)."""
    def images() -> Iterator[Image.Image]:
        for frame in frames:
            image = Image.fromarray(frame)
            scale = GIF_MAX_SIDE / max(image.size)
            if scale < 1:
                image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                     Image.Resampling.BILINEAR)
            yield image

    sequence = images()
    part = path.with_suffix(".part.gif")
    try:
        first = next(sequence)
        first.save(part, format="GIF", save_all=True, append_images=sequence, duration=delays_ms, loop=0)
        part.replace(path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path


# -- public API ---------------------------------------------------------------------------------
def _error_result(message: str, **extra: Any) -> dict[str, Any]:
    """The result of a render that made nothing."""
    return {"status": "error", "error": message, "keyframes": [], "video": None, **extra}


async def render_storyboard(storyboard: Storyboard | dict[str, Any], stream_image: StreamImage | None,
                            output_dir: str | Path, *, use_ai_generation: bool = True, make_gif: bool = False,
                            cancel: asyncio.Event | None = None, rng: Any = None, video_type: str = "storyboard",
                            can_interpolate: Callable[[str], bool] | None = None, limits: Limits | None = None,
                            owner: str | None = None) -> AsyncIterator[Event | VideoProgress]:
    """Render `storyboard` to an mp4 under output_dir/YYYY-MM-DD/ (output_dir/<owner>/YYYY-MM-DD/ for a login),
    as a stream of events.

    Yields Queued/Started (passed through), VideoProgress (keyframe steps, encoding, GIF), Fallback
    (a keyframe fell back), Progress(step=keyframe, total=keyframes, preview=keyframe, backend=the keyframe's backend)
    per finished keyframe, and finally Done(result) or Failed(error, result). A bad storyboard fails
    before anything is generated; a cancel or a failed keyframe keeps the keyframes made so far
    (listed in the result and in the storyboard JSON). `video_type` is recorded in the result.
    """
    started = time.perf_counter()
    try:
        if isinstance(storyboard, dict):
            storyboard = Storyboard.from_dict(storyboard)
        flags = [f"{name} must be true or false (got {value!r})." for name, value in
                 (("use_ai_generation", use_ai_generation), ("make_gif", make_gif)) if not isinstance(value, bool)]
        if flags:  # "no" would read as true
            raise InvalidRequest(" ".join(flags))
        board = storyboard.validate()
        over = _over_budget(board, limits or Limits(), use_ai_generation)
        if over:
            raise InvalidRequest(" ".join(over))
        if use_ai_generation and stream_image is None:
            raise InvalidRequest("AI generation needs an image generator; use title cards "
                                 "(use_ai_generation=False) to preview without a model.")
    except InvalidRequest as err:
        yield Failed(str(err), _error_result(str(err), video_type=video_type))
        return
    folder = owner_folder(output_dir, owner) / datetime.now().strftime("%Y-%m-%d")
    label = board.title or board.scenes[0].prompt
    seeds = board.resolve_seeds(rng)
    job = _Render(board=board.with_seeds(seeds), stream_image=stream_image, folder=folder,
                  stem=_new_stem(folder, label), seeds=seeds, use_ai=use_ai_generation, cancel=cancel,
                  video_type=video_type, can_interpolate=can_interpolate)
    phase = "keyframes"
    try:
        job.save_json(job.result("rendering"))
        async for event in job.keyframes():
            yield event
        job.timings["keyframes_s"] = round(time.perf_counter() - started, 4)
        phase = "in-betweens"
        mark = time.perf_counter()
        async for event in job.in_betweens():
            yield event
        job.timings["inbetweens_s"] = round(time.perf_counter() - mark, 4)
        phase = "encoding"
        mark = time.perf_counter()
        job.check_cancel("before encoding")
        specs, pixels = await asyncio.to_thread(job.timeline)
        async for event in job.encode(specs, pixels):
            yield event
        job.timings["encode_s"] = round(time.perf_counter() - mark, 4)
        gif_path = None
        if make_gif:
            mark = time.perf_counter()
            async for event in job.gif(specs, pixels):
                yield event
            gif_path = str(job.gif_path)
            job.timings["gif_s"] = round(time.perf_counter() - mark, 4)
        job.timings["total_s"] = round(time.perf_counter() - started, 4)
        height, width = pixels[0].shape[:2]
        result = job.result("success", video=str(job.video_path), gif=gif_path, frames=len(specs),
                            duration_s=round(len(specs) / float(board.fps), 4), width=width, height=height)
        job.save_json(result)
        logger.info("Video %s: %d frames, %d keyframes, %.1fs", job.video_path, len(specs), job.made,
                    job.timings["total_s"])
        yield Done(result)
    except GenerationCancelled as err:
        message = f"Cancelled: {err} {job.kept()}"
        yield Failed(message, _finish_failed(job, "cancelled", message, started))
    except asyncio.CancelledError:  # the consuming task was cancelled: record what was made, then go
        _finish_failed(job, "cancelled", f"Cancelled during {phase}.", started)
        raise
    except GatorError as err:
        message = str(err) + (f" {job.kept()}" if job.scenes else "")
        yield Failed(message, _finish_failed(job, "error", message, started))
    except Exception as err:  # anything unexpected still ends as a sentence
        logger.exception("Video render failed during %s", phase)
        message = f"The video failed during {phase} ({type(err).__name__}); the server log has the details."
        yield Failed(message, _finish_failed(job, "error", message, started))


def travel_estimate(board: Storyboard, counts: list[int]) -> int:
    """In-betweens seed travel will need if every transition can travel (the Progress total, and the budget's)."""
    most = int(board.preset.get("max_travel_inbetweens", 0))
    return sum(min(most, transition_frame_count(counts[i], s.transition_duration, float(board.fps)))
               for i, s in enumerate(board.scenes[:-1]) if s.transition == "seed_travel")


def _over_budget(board: Storyboard, limits: Limits, use_ai: bool) -> list[str]:
    """Sentences for a (validated) storyboard that asks for more work than `limits` allow (seed-travel in-betweens
    counted in, as many as the preset allows)."""
    texts = [(f"scene {n}'s {name}", text) for n, scene in enumerate(board.scenes, start=1)
             for name, text in (("prompt", scene.prompt), ("negative prompt", scene.negative_prompt))]
    counts = board.frame_counts()
    return limits.prompt_problems(texts) + limits.video_problems(
        len(board.scenes), int(board.width), int(board.height), int(board.steps), sum(counts), use_ai,
        travel_estimate(board, counts) if use_ai else 0)


def _finish_failed(job: _Render, status: str, message: str, started: float) -> dict[str, Any]:
    job.timings["total_s"] = round(time.perf_counter() - started, 4)
    result = job.result(status, message)
    try:
        job.save_json(result)
    except OutputError as err:
        result["warnings"].append(str(err))
        result["storyboard_path"] = None
    return result


SCENE_OPTIONS = ("duration", "transition", "transition_duration", "negative_prompt")  # for prompts only


def _coerce_storyboard(prompt: Any, storyboard: Any, video_type: str, quality: str, fps: float | None,
                       overrides: dict[str, Any]) -> Storyboard:
    """The Storyboard a stream_video call describes (a copy: the caller's is left alone); raises InvalidRequest."""
    if video_type not in VIDEO_TYPES:
        raise InvalidRequest(f"video_type must be one of {', '.join(VIDEO_TYPES)} (got {video_type!r}).")
    if storyboard is not None and prompt is not None:
        raise InvalidRequest("Give either a list of prompts or a storyboard, not both.")
    if storyboard is None and video_type == "storyboard" and isinstance(prompt, str):
        storyboard, prompt = prompt, None  # the prompt is the storyboard's YAML/JSON text
    if storyboard is None:
        if not isinstance(prompt, (str, list, tuple)):
            raise InvalidRequest("The storyboard has no scenes: give a list of prompts (one per scene) "
                                 "or a storyboard.")
        scene_options = {k: overrides.pop(k) for k in SCENE_OPTIONS if k in overrides}
        board = Storyboard.from_prompts(prompt, quality=quality, **scene_options)
    elif isinstance(storyboard, Storyboard):
        board = storyboard
    elif isinstance(storyboard, dict):
        board = Storyboard.from_dict(storyboard)
    elif isinstance(storyboard, Path):  # only a Python caller can hand over a path object
        board = Storyboard.load(storyboard)
    elif isinstance(storyboard, str):  # always text, never a file name: web callers cannot read server files
        board = Storyboard.parse(storyboard)
    else:
        raise InvalidRequest("The storyboard must be a Storyboard, a mapping, YAML/JSON text or a pathlib.Path.")
    if fps is not None:
        overrides["fps"] = fps
    return board.with_overrides(**overrides)


async def stream_video(stream_image: StreamImage | None, output_dir: str | Path, *, prompt: Any = None,
                       storyboard: Any = None, video_type: str = "multi_frame", quality: str = "high",
                       use_ai_generation: bool = True, fps: float | None = None, make_gif: bool = False,
                       cancel: asyncio.Event | None = None, can_interpolate: Callable[[str], bool] | None = None,
                       limits: Limits | None = None, owner: str | None = None,
                       **overrides: Any) -> AsyncIterator[Event | VideoProgress]:
    """Render a list of prompts or a storyboard to an mp4, as the events of render_storyboard.

    `prompt`: a list of prompts (one scene each) or text, read per `video_type`: "multi_frame" one scene per
    line, "storyboard" storyboard YAML/JSON. `storyboard`: a Storyboard, a mapping, YAML/JSON text (a string is
    always text, never opened as a file, so web callers cannot read the server's files) or a `pathlib.Path`
    of a .yaml/.json file. `quality` applies to prompts (a storyboard keeps its own). `overrides` set
    Storyboard settings (width, height, seed, seed_policy, steps, guidance_scale, model, title) and, for
    prompts, duration, transition, transition_duration and negative_prompt. Bad input ends the stream with
    one Failed(sentence, result) before anything is generated.
    """
    try:
        text = storyboard if isinstance(storyboard, str) else prompt if isinstance(prompt, str) else \
            "\n".join(p for p in prompt if isinstance(p, str)) if isinstance(prompt, (list, tuple)) else ""
        too_long = (limits or Limits()).storyboard_problem(text)
        if too_long:
            raise InvalidRequest(too_long)
        board = _coerce_storyboard(prompt, storyboard, video_type, quality, fps, dict(overrides))
    except InvalidRequest as err:
        yield Failed(str(err), _error_result(str(err), video_type=video_type))
        return
    async with aclosing(render_storyboard(board, stream_image, output_dir, use_ai_generation=use_ai_generation,
                                          make_gif=make_gif, cancel=cancel, video_type=video_type,
                                          can_interpolate=can_interpolate, limits=limits, owner=owner)) as events:
        async for event in events:
            yield event


async def generate_video(stream_image: StreamImage | None, settings: Any, prompt: Any = None,
                         storyboard: Any = None, video_type: str = "multi_frame", quality: str = "high",
                         use_ai_generation: bool = True, fps: float | None = None, make_gif: bool = False,
                         cancel: asyncio.Event | None = None, can_interpolate: Callable[[str], bool] | None = None,
                         limits: Limits | None = None, owner: str | None = None, **overrides: Any) -> dict[str, Any]:
    """stream_video (see there for the arguments) run to its end: the result dict of its Done or Failed.

    Never raises for bad input: returns {"status": "error", "error": sentence, ...} before any generation.
    """
    final = _error_result("The video render ended without a result.")
    async for event in stream_video(stream_image, settings.output_dir, prompt=prompt, storyboard=storyboard,
                                    video_type=video_type, quality=quality, use_ai_generation=use_ai_generation,
                                    fps=fps, make_gif=make_gif, cancel=cancel, can_interpolate=can_interpolate,
                                    limits=limits, owner=owner, **overrides):
        if isinstance(event, Done):
            final = event.result
        elif isinstance(event, Failed):
            final = event.result or _error_result(event.error)
    return final
