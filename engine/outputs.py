"""Every result is written to disk, with its parameters, before anyone sees it."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from PIL import Image

from . import params as P
from .controlnet import a1111_entry, read_a1111_entry
from .embedded_text import PARAMETERS, embedded_texts
from .errors import output_error
from .png_encoding import encode_png
from .prompt_syntax import with_lora_tags
from .registry import sampler_label

logger = logging.getLogger(__name__)

JSON_CHUNK = "gator"


def day_folder(output_dir: Path) -> Path:
    """outputs/YYYY-MM-DD/, created if needed."""
    return Path(output_dir) / datetime.now().strftime("%Y-%m-%d")


_OWNER_SAFE = re.compile(r"[^a-z0-9_-]+")
_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")


def owner_folder_name(owner: str) -> str:
    """The folder name of a login's outputs: the name itself when it is plain (lower-case letters, digits, "_",
    "-"), else a cleaned-up form, ".", and a hash of the exact name ("Ann" -> "ann.17239b6e2501"). So no name
    leaves the outputs folder ("../x", "/", "."), two logins never share a folder (a plain name has no "."), and
    none looks like a day folder."""
    plain = _OWNER_SAFE.sub("_", owner.lower()).strip("_-")[:40]
    if plain and plain == owner and not _DAY_NAME.fullmatch(plain):
        return plain
    digest = hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{plain or 'user'}.{digest}"


def owner_folder(output_dir: str | Path, owner: str | None) -> Path:
    """Where results are saved: outputs/<owner>/ for a login, the outputs folder itself without one."""
    return Path(output_dir) if owner is None else Path(output_dir) / owner_folder_name(owner)


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].strip("-") or "image"


COMFYUI_CHUNK = "prompt"  # ComfyUI's text chunk: the API-format graph (engine/png_info.py reads it)
A1111_ORDER = ("num_inference_steps", "sampler", "guidance_scale", "seed", "size", "model_hash", "model",
               "variation_seed", "variation_strength", "vae", "strength", "clip_skip", "freeu", "cfg_rescale", "tiling",
               "lora_hashes", "mask_blur", "masked_content", "inpaint_area", "only_masked_padding", "outpaint",
               "hires_scale", "hires_resize", "hires_steps", "hires_upscaler", "hires_checkpoint", "hires_sampler", "hires_prompt", "hires_negative_prompt",
               "backend", "user_workflow", "upscale_by", "upscaler",
               "model_license", "prompt_template", "negative_template")


def a1111_parameters(params: dict[str, Any]) -> str:
    """The A1111 `parameters` text: prompt, `Negative prompt:` line, then `Key: value` pairs (keys from
    engine/params.py)."""
    lines = [with_lora_tags(params.get("prompt", ""), params.get("loras") or ())]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    pairs = []
    for name in A1111_ORDER:
        if name == "size":
            pairs.append(("Size", f"{params.get('width')}x{params.get('height')}"))
        elif name == "hires_resize":  # "Hires resize: 1024x1536", as A1111 writes its resize width and height
            resize = (params.get(P.HIRES_RESIZE_WIDTH.name), params.get(P.HIRES_RESIZE_HEIGHT.name))
            pairs.append((P.HIRES_RESIZE_KEY, f"{resize[0]}x{resize[1]}" if all(resize) else None))
        elif name == P.OUTPAINT.name:  # "Outpaint: right 64 down 32", read back by params.outpaint_amounts
            pairs.append((P.OUTPAINT.a1111_key, P.outpaint_text(params.get(name))))
        elif name in (P.SAMPLER.name, P.HIRES_SAMPLER.name):  # A1111's label, as it (and sites reading it) know it
            pairs.append((P.BY_NAME[name].a1111_key, sampler_label(params.get(name))))
        else:
            pairs.append((P.BY_NAME[name].a1111_key, params.get(name)))
    plot = params.get("plot") or {}  # an X/Y/Z plot's grid: "Script: X/Y/Z plot, X Type: Steps, X Values: ..."
    pairs += [(param.a1111_key, plot.get(param.name)) for param in P.PLOT_PARAMS]
    unit = a1111_entry(params)  # sd-webui-controlnet's entry: its own pairs, in quotes as any value with commas
    if unit is not None:
        pairs.append((CONTROLNET_KEY, unit))
    lines.append(", ".join(f"{k}: {a1111_quoted(v)}" for k, v in pairs if v is not None))
    return "\n".join(lines)


def a1111_quoted(value: Any) -> Any:
    """A value as A1111 writes it in its settings line: in JSON quotes when it holds a comma, colon or newline
    ("X Values: \"2,3\""), so the line still splits at its commas."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else value


def save_image(image: Image.Image, params: dict[str, Any], output_dir: Path, owner: str | None = None,
               suffix: str = "", graph: dict[str, Any] | None = None) -> Path:
    """Write `image` as PNG with `parameters` (A1111) and `gator` (JSON) text chunks under
    outputs/[<owner>/]YYYY-MM-DD/; return its path. `suffix` ends the file's name ("xyz-grid"). `graph` (the
    ComfyUI API-format graph that made it) goes into a `prompt` chunk, as ComfyUI saves it.

    Raises OutputError with a clear sentence when the folder cannot be written.
    """
    folder = day_folder(owner_folder(output_dir, owner))
    texts = {PARAMETERS: a1111_parameters(params), JSON_CHUNK: json.dumps(params, default=str, ensure_ascii=False)}
    if graph is not None:
        texts[COMFYUI_CHUNK] = json.dumps(graph, ensure_ascii=False)
    png = encode_png(image, texts)
    stem = f"{time.strftime('%H%M%S')}-{params.get('seed', 0)}-{_slug(params.get('prompt', ''))}"
    stem += f"-{_slug(suffix)}" if suffix else ""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = _written_under_a_free_name(folder, stem, png)
    except OSError as err:
        logger.error("Could not save an image in %s: %s", folder, err)
        raise output_error("The image", err) from err
    logger.info("Saved %s", path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what an ordinary file gets here (read once, at start: umask is process-wide)


def _written_under_a_free_name(folder: Path, stem: str, data: bytes) -> Path:
    """`data` in folder/stem.png, or stem-1.png, stem-2.png... when taken. Written whole to a private partial file
    first, then hard-linked to the name: a link fails rather than replaces a name another save (another thread or
    process, the same second, seed and prompt) took meanwhile, and nobody sees a half-written image. On a file
    system without hard links the first free name is taken by a rename."""
    handle, partial = tempfile.mkstemp(prefix=f".{stem[:40]}-", suffix=".png.part", dir=folder)
    tmp = Path(partial)
    try:
        if hasattr(os, "fchmod"):  # mkstemp's file is the owner's only: an image is as readable as any file written
            os.fchmod(handle, FILE_MODE)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        n = 0
        while True:
            path = folder / (f"{stem}-{n}.png" if n else f"{stem}.png")
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                pass
            except OSError:  # no hard links here (some network or FAT file systems)
                if not path.exists():
                    tmp.replace(path)
                    return path
            n += 1
    finally:
        tmp.unlink(missing_ok=True)


# "Key: value" pairs; a value in quotes may hold commas and colons (A1111's `ControlNet 0: "Module: canny, ..."`)
_PAIR = re.compile(r'\s*([A-Za-z][A-Za-z0-9 ]*?):\s*("(?:\\.|[^\\"])*"|[^,]+)')
SCHEDULE_TYPE_KEY = "Schedule type"  # A1111 1.9+ writes the scheduler apart: "Sampler: DPM++ 2M, Schedule type: Karras"
CONTROLNET_KEY = "ControlNet 0"  # sd-webui-controlnet's first unit (the only one this app uses)


def parse_a1111_parameters(text: str) -> dict[str, Any]:
    """Parse an A1111 `parameters` text back into prompt, negative_prompt and the settings line."""
    lines = text.strip("\n").split("\n")
    last = lines[-1]  # the settings line: after a prompt, or alone when the prompt was empty (A1111: 3 pairs or more)
    is_settings = _PAIR.match(last) and "Steps:" in last and (len(lines) > 1 or len(_PAIR.findall(last)) >= 3)
    settings_line = last if is_settings else ""
    body = lines[:-1] if settings_line else lines
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in body:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].lstrip()
        (negative_lines if in_negative else prompt_lines).append(line)
    result: dict[str, Any] = {"prompt": "\n".join(prompt_lines), "negative_prompt": "\n".join(negative_lines)}
    keys = P.a1111_keys()
    schedule = ""
    for key, value in _PAIR.findall(settings_line):
        key, value = key.strip(), _unquoted(value.strip())
        try:
            if key == CONTROLNET_KEY:
                result.update(read_a1111_entry(_PAIR.findall(value)))
            elif key in ("Size", P.HIRES_RESIZE_KEY):
                w, _, h = value.partition("x")
                sides = (P.WIDTH, P.HEIGHT) if key == "Size" else (P.HIRES_RESIZE_WIDTH, P.HIRES_RESIZE_HEIGHT)
                result.update({sides[0].name: sides[0].from_text(w), sides[1].name: sides[1].from_text(h)})
            elif key == SCHEDULE_TYPE_KEY:
                schedule = value
            elif key in keys:
                param = P.BY_NAME[keys[key]]
                result[param.name] = param.from_text(value)
        except ValueError:  # one odd value (another tool's, or edited by hand) is left out, not the whole text
            logger.info("Unreadable %r in a PNG's parameters: %r", key, value)
    if schedule and schedule.lower() != "automatic" and isinstance(result.get(P.SAMPLER.name), str):
        result[P.SAMPLER.name] = f"{result[P.SAMPLER.name]} {schedule}"  # "DPM++ 2M" + "Karras": a sampler's label
    return result


def _unquoted(value: str) -> str:
    """A settings-line value without the JSON quotes `a1111_quoted` (or A1111) put around it."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    try:
        return str(json.loads(value))
    except json.JSONDecodeError:
        return value


def read_parameters(path: str | Path) -> dict[str, Any]:
    """Generation parameters saved in an image: the JSON chunk when present, else the A1111 text (a PNG's chunk or
    a JPEG's or WebP's EXIF UserComment).

    Returns {} for an image with no parameters; raises UnreadableImage (an OSError) for a file that is none.
    """
    return parameters_from_texts(embedded_texts(path), path)


def parameters_from_texts(text: dict[str, str], path: str | Path = "an image") -> dict[str, Any]:
    """`read_parameters` of an image's texts (embedded_text.embedded_texts); `path` names it in the log."""
    if JSON_CHUNK in text:
        try:
            saved = json.loads(text[JSON_CHUNK])
        except (json.JSONDecodeError, RecursionError):  # not JSON, or nested beyond reason
            saved = None
        if isinstance(saved, dict):
            return _of_their_types({P.RESULT_ALIASES.get(k, k): v for k, v in saved.items()}, path)
        logger.warning("Unreadable %s chunk in %s; using the A1111 text.", JSON_CHUNK, path)
    if PARAMETERS in text:
        return parse_a1111_parameters(text[PARAMETERS])
    return {}


def _of_their_types(saved: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """`saved` without the values that are not of their parameter's type (a file edited by hand or made elsewhere:
    "Clip skip" as text, a plot that is not a mapping), each logged: one odd value is left out, not the image."""
    kept: dict[str, Any] = {}
    for name, value in saved.items():
        param = P.BY_NAME.get(name)
        if (param is not None and not param.holds(value)) or (name == "plot" and not isinstance(value, (dict, type(None)))):
            logger.info("Left out %s=%r of %s: not a %s value", name, value, path, param.kind if param else "plot")
            continue
        kept[name] = value
    return kept


# -- the outputs folder as a whole --------------------------------------------------------------
PARTIAL_SUFFIXES = (".png.part", ".part.mp4", ".part.gif", ".json.part")  # what our writers leave mid-write
IMAGE_SUFFIXES = (".png",)
VIDEO_SUFFIXES = (".mp4",)
STORYBOARD_JSON_MAX_BYTES = 16 * 1024 * 1024  # a storyboard JSON is a few kB; larger files are not ours


@dataclass(frozen=True)
class SweepReport:
    """What `sweep_leftovers` did: partial files removed, storyboards marked interrupted, files it could not handle."""

    removed: tuple[Path, ...] = ()
    removed_bytes: int = 0
    interrupted: tuple[Path, ...] = ()
    failed: tuple[Path, ...] = ()

    @property
    def found(self) -> bool:
        """True when there was anything to clean up (or that could not be cleaned up)."""
        return bool(self.removed or self.interrupted or self.failed)

    @property
    def notice(self) -> str:
        """One sentence for the log and the status tab ("" when nothing was found); it names no path."""
        if not self.found:
            return ""
        done = []
        if self.removed:
            done.append(f"removed {_count(len(self.removed), 'partial file')} ({_size(self.removed_bytes)})")
        if self.interrupted:
            done.append(f"marked {_count(len(self.interrupted), 'storyboard')} interrupted")
        text = "Cleaned up after an interrupted run: " + (", ".join(done) if done else "nothing removed")
        if self.failed:
            text += f"; {_count(len(self.failed), 'file')} could not be cleaned up (see the log)"
        return text + "."


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return _count(nbytes, "byte")


def _regular_files(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file under `root` with its lstat: symlinks (to files or folders) are neither followed nor
    listed; an unreadable folder is logged and skipped."""
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                found = list(entries)
        except OSError as err:
            logger.warning("Could not list %s: %s", folder, err.strerror or err)
            continue
        for entry in found:
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    yield Path(entry.path), entry.stat(follow_symlinks=False)
            except OSError as err:
                logger.warning("Could not read %s: %s", entry.path, err.strerror or err)


def _inside(path: Path, root: Path) -> bool:
    """True when the real path of `path` is inside the (resolved) folder `root`."""
    try:
        return path.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):
        return False


def _resolved_folder(output_dir: str | Path) -> Path | None:
    try:
        root = Path(output_dir).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return root if root.is_dir() else None


def _mark_interrupted(path: Path, when: str) -> bool:
    """Rewrite a storyboard JSON whose render is still "rendering" as "interrupted" (atomically, via a temp file).

    Returns False when the file is not such a storyboard. Raises OSError / ValueError when it cannot be read or
    written.
    """
    raw = path.read_bytes()
    if b'"rendering"' not in raw:
        return False
    data = json.loads(raw.decode("utf-8"))
    render = data.get("render") if isinstance(data, dict) else None
    if not isinstance(render, dict) or render.get("status") != "rendering":
        return False
    render["status"] = "interrupted"
    render["interrupted_at"] = when
    render["error"] = render.get("error") or "The app stopped before this render finished."
    tmp = path.with_suffix(".json.part")
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def sweep_leftovers(output_dir: str | Path) -> SweepReport:
    """Clean up after a run that was killed mid-write: delete partial files (*.png.part, *.part.mp4, *.part.gif,
    *.json.part) and mark storyboard JSONs still "rendering" as "interrupted" with the time.

    Only regular files inside `output_dir` are touched; symlinks are never followed. Never raises: a file that
    cannot be read or changed is logged and listed in the report's `failed`.
    """
    removed: list[Path] = []
    interrupted: list[Path] = []
    failed: list[Path] = []
    removed_bytes = 0
    try:
        root = _resolved_folder(output_dir)
        if root is None:
            return SweepReport()
        when = datetime.now().astimezone().isoformat(timespec="seconds")
        for path, st in list(_regular_files(root)):
            name = path.name
            try:
                if not _inside(path, root):
                    continue
                if name.endswith(PARTIAL_SUFFIXES):
                    path.unlink()
                    removed.append(path)
                    removed_bytes += st.st_size
                    logger.debug("Removed the partial file %s", path)
                elif name.endswith(".json") and st.st_size <= STORYBOARD_JSON_MAX_BYTES:
                    if _mark_interrupted(path, when):
                        interrupted.append(path)
                        logger.debug("Marked the storyboard %s interrupted", path)
            except OSError as err:  # unreadable or not writable: leave it, say so
                logger.warning("Could not clean up %s: %s", path, err.strerror or err)
                failed.append(path)
            except ValueError as err:  # not UTF-8 or not JSON: not a storyboard of ours
                logger.info("Left %s alone: it is not a storyboard JSON (%s).", path, err)
    except Exception:  # the sweep must never stop the app from starting
        logger.exception("The clean-up of the outputs folder stopped early")
    report = SweepReport(tuple(removed), removed_bytes, tuple(interrupted), tuple(failed))
    if report.found:
        logger.warning("%s", report.notice)
    return report


def saved_images(output_dir: str | Path, limit: int = 60, owner: str | None = None) -> list[Path]:
    """The newest saved images under `output_dir` (newest first, at most `limit`): regular files only, never a
    symlink, and only files whose real path is inside the outputs folder. `owner`: only that login's folder
    (outputs/<owner>/); None lists everything."""
    root = _resolved_folder(output_dir)
    if root is None or limit <= 0:
        return []
    folder = root
    if owner is not None:
        folder = root / owner_folder_name(owner)
        if folder.is_symlink() or not folder.is_dir():
            return []
    found = [(st.st_mtime, path) for path, st in _regular_files(folder)
             if path.name.lower().endswith(IMAGE_SUFFIXES) and _inside(path, folder)]
    found.sort(key=lambda item: item[0], reverse=True)
    return [path for _, path in found[:limit]]


def _listing_folder(output_dir: str | Path, owner: str | None) -> Path | None:
    """The resolved folder a listing or a deletion works in: the outputs folder, or `owner`'s folder inside it
    (None when it does not exist or is a symlink)."""
    root = _resolved_folder(output_dir)
    if root is None or owner is None:
        return root
    folder = root / owner_folder_name(owner)
    if folder.is_symlink() or not folder.is_dir():
        return None
    return folder


def saved_outputs(output_dir: str | Path, owner: str | None = None) -> list[Path]:
    """Every saved image (.png) and video (.mp4) under `output_dir`, newest first, with no limit: regular files
    only, never a symlink or a partial file, and only files whose real path is inside the folder. `owner` as in
    `saved_images`."""
    folder = _listing_folder(output_dir, owner)
    if folder is None:
        return []
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    found = [(st.st_mtime, path) for path, st in _regular_files(folder)
             if path.name.lower().endswith(suffixes) and not path.name.endswith(PARTIAL_SUFFIXES)
             and _inside(path, folder)]
    found.sort(key=lambda item: item[0], reverse=True)
    return [path for _, path in found]


class DeleteRefused(ValueError):
    """A file that may not be deleted from the outputs folder; the message is a sentence for the user."""


def delete_output(output_dir: str | Path, path: str | Path, owner: str | None = None) -> Path:
    """Delete one saved result: only a regular file (not a symlink, not a folder) whose real path is inside the
    outputs folder (`owner`'s folder when given). Returns the deleted path.

    Raises DeleteRefused with a sentence for anything else, or when the file cannot be removed.
    """
    name = Path(str(path)).name or "that file"
    folder = _listing_folder(output_dir, owner)
    if folder is None:
        raise DeleteRefused(f"Could not delete {name}: the outputs folder was not found.")
    candidate = Path(str(path))
    if not candidate.is_absolute():
        raise DeleteRefused(f"Could not delete {name}: only a saved file in the outputs folder can be deleted.")
    if candidate.is_symlink() or not candidate.is_file():
        raise DeleteRefused(f"Could not delete {name}: it is not a saved file (it may already be deleted).")
    if not _inside(candidate, folder):
        raise DeleteRefused(f"Could not delete {name}: only files inside the outputs folder can be deleted.")
    try:
        candidate.unlink()
    except OSError as err:
        logger.warning("Could not delete %s: %s", candidate, err.strerror or err)
        raise DeleteRefused(f"Could not delete {name} ({err.strerror or 'the file could not be removed'}).") \
            from err
    logger.info("Deleted %s", candidate)
    return candidate
