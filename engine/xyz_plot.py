"""The X/Y/Z plot (A1111's script): up to three parameters varied over lists of values, one image per cell, and
a labelled grid of them.

Axis types are data (`AXES`): the parameter each varies (its limits and sentences are engine/params.py's), the
`stream_image` argument it sets, and the name A1111's script gives it. Values are written as in A1111: a comma
list (a name in double quotes may hold commas), and for numbers ranges too: "1-5" (1 to 5), "1-10 (+3)" (1, 4,
7, 10), "10-20 [3]" (three values spread evenly: 10, 15, 20). The cells run in A1111's order, X fastest, then Y,
then Z (outermost), each through the manager's `stream_image` (passed in: this module never imports the manager),
so progress, Stop, the fallback from ComfyUI and the saving with its own parameters are a single image's. The grid
is one PNG: X labels above the cells, Y labels on their left, and with a Z axis one such grid per Z value side by
side under its Z label (A1111's combined grid), recorded as A1111 records it: the first cell's parameters plus
"Script: X/Y/Z plot, X Type: Steps, X Values: ...".

Seeds: a plot whose seed is random (-1) draws one seed for all its cells, so they differ only along the axes (A1111
fixes the seed before the first cell too); -1 on a Seed axis draws a seed of its own once for that value, shared by
its row or column and recorded in the grid as "Fixed X Values" (A1111 without "Keep -1 for seeds").
"""
from __future__ import annotations

import asyncio
import csv
import io
import logging
import math
import random
import re
import time
from contextlib import aclosing
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Sequence

from PIL import Image, ImageDraw

from . import params as P
from .errors import InvalidRequest
from .events import Done, Event, Failed, PlotCell, Skipped
from .limits import Limits
from .outputs import save_image
from .registry import sampler_label
from .request import GenerationRequest, sampler_key, sampler_problem
from .result import ImageResult
from .text_drawing import font as text_font, wrap as wrap_text

logger = logging.getLogger(__name__)

StreamImage = Callable[..., AsyncIterator[Event]]
AXIS_NAMES = ("X", "Y", "Z")
MIN_LABEL_PX = 14  # the smallest label text: still legible beside 64-pixel cells
LABEL_FILL, GRID_BACKGROUND = (0, 0, 0), (255, 255, 255)
GRID_SUFFIX = "xyz-grid"  # ends a grid's file name


@dataclass(frozen=True)
class AxisType:
    """What an axis may vary: `param` (its label, limits and sentences), the `stream_image` argument it sets, and
    A1111's name for it (written as "X Type")."""

    key: str
    param: P.Param
    argument: str
    a1111: str

    @property
    def label(self) -> str:
        return self.param.label

    @property
    def numeric(self) -> bool:
        """Numbers (ranges allowed), not names."""
        return self.param.kind in ("int", "float", "seed")

    @property
    def whole(self) -> bool:
        return self.param.kind in ("int", "seed")

    def names(self) -> set[str]:
        """Every name a caller may give the axis type by (lower case): ours, the parameter's, A1111's."""
        return {name.lower() for name in (self.key, self.label, self.a1111, self.param.name, *self.param.aliases)}


(SEED, STEPS, GUIDANCE, SAMPLER, MODEL, LORA_WEIGHT, STRENGTH, CLIP_SKIP, VARIATION_SEED, VARIATION_STRENGTH,
 PROMPT_SR, CFG_RESCALE) = AXES = (
    AxisType("seed", P.SEED, P.SEED.name, "Seed"),
    AxisType("steps", P.STEPS, P.STEPS.name, "Steps"),
    AxisType("guidance", P.GUIDANCE, P.GUIDANCE.name, "CFG Scale"),
    AxisType("sampler", P.SAMPLER, P.SAMPLER.name, "Sampler"),
    AxisType("model", P.MODEL, P.MODEL.name, "Checkpoint name"),
    AxisType("lora_weight", P.LORA_WEIGHT, P.LORAS.name, "LoRA weight"),  # the request's first LoRA's weight
    AxisType("strength", P.STRENGTH, P.STRENGTH.name, "Denoising"),
    AxisType("clip_skip", P.CLIP_SKIP, P.CLIP_SKIP.name, "Clip skip"),
    AxisType("variation_seed", P.VARIATION_SEED, P.VARIATION_SEED.name, "Var. seed"),
    AxisType("variation_strength", P.VARIATION_STRENGTH, P.VARIATION_STRENGTH.name, "Var. strength"),
    AxisType("prompt_sr", P.PROMPT_SR, P.PROMPT.name, "Prompt S/R"),  # the first value replaced in both prompts
    AxisType("cfg_rescale", P.CFG_RESCALE, P.CFG_RESCALE.name, "CFG Rescale"),
)
PROMPTS = (P.PROMPT.name, P.NEGATIVE_PROMPT.name)  # what a Prompt S/R axis searches

SEED_AXES = (SEED, VARIATION_SEED)  # -1 there draws a seed once, recorded as the axis's fixed values


def axis_choices() -> list[tuple[str, str]]:
    """(label, key) of Nothing and every axis type, for a dropdown."""
    return [(P.NO_AXIS, P.NO_AXIS)] + [(axis.label, axis.key) for axis in AXES]


def axis_type(name: Any) -> AxisType | None:
    """The axis type a name means (None for Nothing or an empty name); InvalidRequest for an unknown one."""
    text = str(name or "").strip().lower()
    if text in ("", P.NO_AXIS.lower(), "none"):
        return None
    found = next((axis for axis in AXES if text in axis.names()), None)
    if found is None:
        raise InvalidRequest(f"Unknown axis type {name!r}; axis types: {', '.join(a.label for a in AXES)} "
                             f"(or {P.NO_AXIS}).")
    return found


# -- values ---------------------------------------------------------------------------------------
_NUMBER = r"[+-]?\s*(?:\d+(?:\.\d*)?|\.\d+)"
_STEP_RANGE = re.compile(rf"\s*({_NUMBER})\s*-\s*({_NUMBER})\s*(?:\(\s*({_NUMBER})\s*\))?\s*")
_COUNT_RANGE = re.compile(rf"\s*({_NUMBER})\s*-\s*({_NUMBER})\s*\[\s*(\d+)\s*\]\s*")


def split_values(text: str) -> list[str]:
    """A1111's value list: comma-separated (lines too), each stripped, empty ones left out; a value in double
    quotes may hold commas ("a, b", c)."""
    try:
        rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    except csv.Error as err:
        raise InvalidRequest(f"The values {text!r} could not be read as a list ({err}).") from None
    return [item.strip() for row in rows for item in row if item.strip()]


class TooManyValues(ValueError):
    """A range with more values than a plot may have images (`count` of them)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count:,} values")
        self.count = count


def _number(text: str, whole: bool) -> int | float:
    """A number as written ("5" an int, "5.5" a float); a whole axis takes "5.0" as 5."""
    text = text.replace(" ", "")
    if text.lstrip("+-").isdigit():  # exactly, however long ("99999999999999999999" is no float's 1e20)
        return int(text)
    value = float(text)
    return int(value) if value.is_integer() and (whole or text.lstrip("+-").isdigit()) else value


def expand(item: str, whole: bool, limit: int = 0) -> list[Any]:
    """One value or range of a numeric axis as its values: "5" -> [5]; "1-5" -> 1..5 (a range counts down when
    its end is below its start); "1-10 (+3)" -> 1, 4, 7, 10; "10-20 [3]" -> 10, 15, 20 (whole axes cut each to a
    whole number, as A1111 does). Text that is no number is kept for the parameter's sentence. ValueError with the
    end of a sentence ("range '5-1 (+1)' has no values...") for a range with no values; TooManyValues for one with
    more than `limit` (0: no limit)."""
    found = _COUNT_RANGE.fullmatch(item)
    if found:
        start, end, count = _number(found[1], False), _number(found[2], False), int(found[3])
        if count < 1:
            raise ValueError(f"range {item!r} asks for no values")
        _check_count(item, count, limit)
        values = [start + (end - start) * i / (count - 1) for i in range(count)] if count > 1 else [start]
        return [int(v) if whole else _tidy(v) for v in values]
    found = _STEP_RANGE.fullmatch(item)
    if found:
        start, end = _number(found[1], whole), _number(found[2], whole)
        step = _number(found[3], whole) if found[3] else (1 if end >= start else -1)
        if step == 0:
            raise ValueError(f"range {item!r} has a step of 0, so it never reaches its end")
        count = math.floor((end - start) / step + 1e-9) + 1
        if count < 1:
            raise ValueError(f"range {item!r} has no values: its step goes the other way")
        _check_count(item, count, limit)
        return [start + i * step if isinstance(start + step, int) else _tidy(start + i * step) for i in range(count)]
    try:
        return [_number(item, whole)]
    except ValueError:
        return [item]  # not a number: the parameter's own sentence names it


def _check_count(item: str, count: int, limit: int) -> None:
    if limit and count > limit:
        raise TooManyValues(count)


def _tidy(value: float) -> float:
    """A float without the last digits' rounding noise (0.30000000000000004 -> 0.3)."""
    return round(value, 10)


def value_text(value: Any) -> str:
    """A value as a label shows it: 7.5, 20, dpmpp_2m."""
    if isinstance(value, float):
        return f"{round(value, 8):.8g}"
    return str(value)


# -- axes, cells, plot ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One axis as given (`name` X, Y or Z): its type (None: Nothing), its values, and their text as written."""

    name: str
    type: AxisType | None = None
    values: tuple[Any, ...] = (None,)
    text: str = ""
    fixed: tuple[int, ...] = ()  # a Seed axis: its values with each -1 drawn

    def label(self, value: Any) -> str:
        """A value's label on the grid: "Steps: 20", "CFG Scale: 7.5"; a sampler's or model's name alone."""
        if self.type is None:
            return ""
        if self.type is SAMPLER:
            return str(sampler_label(sampler_key(value)) or value)
        if self.type in (MODEL, PROMPT_SR):
            return str(value)
        return f"{self.type.label}: {value_text(value)}"

    def record(self) -> dict[str, Any]:
        """What the grid's PNG says of the axis (A1111's "X Type", "X Values", "Fixed X Values")."""
        if self.type is None:
            return {}
        key = self.name.lower()
        out = {f"{key}_type": self.type.a1111, f"{key}_values": self.text}
        if self.type in SEED_AXES:
            out[f"{key}_fixed_values"] = ", ".join(str(seed) for seed in self.fixed)
        return out


@dataclass(frozen=True)
class Cell:
    """One image of the plot: its number (from 1, in A1111's order), place (x, y, z) and the axes' values there."""

    number: int
    place: tuple[int, int, int]
    values: tuple[tuple[AxisType, Any], ...]
    label: str

    def arguments(self, base: dict[str, Any]) -> dict[str, Any]:
        """`stream_image`'s arguments for this cell: `base` with the cell's values set (a LoRA weight on the
        first of base's `loras`; a Prompt S/R value, a (search, replacement) pair, in place of every occurrence of
        its search in both prompts)."""
        out = dict(base)
        for axis, value in self.values:
            if axis is LORA_WEIGHT:
                first, *rest = out[P.LORAS.name]
                out[P.LORAS.name] = [{**first, "weight": value}, *rest]
            elif axis is PROMPT_SR:
                search, replacement = value
                out.update({name: out[name].replace(search, replacement) for name in PROMPTS if out.get(name)})
            else:
                out[axis.argument] = value
        return out


@dataclass(frozen=True)
class Plot:
    """The three axes (X, Y, Z; an unused one is Nothing with one empty value)."""

    axes: tuple[Axis, Axis, Axis]

    @property
    def count(self) -> int:
        return math.prod(len(axis.values) for axis in self.axes)

    def cells(self) -> list[Cell]:
        """Every cell, Z outermost, then Y, then X (A1111's order: the cell index is x + y*len(X) + z*len(X)*len(Y))."""
        x, y, z = self.axes
        cells = []
        for (iz, zv), (iy, yv), (ix, xv) in product(enumerate(z.values), enumerate(y.values), enumerate(x.values)):
            chosen = [(axis, value) for axis, value in ((x, xv), (y, yv), (z, zv)) if axis.type is not None]
            cells.append(Cell(len(cells) + 1, (ix, iy, iz),
                              tuple((axis.type, (axis.values[0], value) if axis.type is PROMPT_SR else value)
                                    for axis, value in chosen),
                              ", ".join(axis.label(value) for axis, value in chosen)))
        return cells

    def record(self) -> dict[str, Any]:
        """The grid's `plot` parameters: {"script": "X/Y/Z plot", "x_type": "Steps", "x_values": "2,3", ...}."""
        out: dict[str, Any] = {P.PLOT_SCRIPT.name: P.XYZ_SCRIPT}
        for axis in self.axes:
            out.update(axis.record())
        return out

    def strongest_variation(self, req: GenerationRequest) -> float:
        """The largest variation strength a cell uses (the request's, or a Var. strength axis value)."""
        values = [float(value) for axis in self.axes if axis.type is VARIATION_STRENGTH for value in axis.values]
        return max([float(req.variation_strength) if req.varies else 0.0, *values])

    def searches_written_prompt(self) -> bool:
        """True when a Prompt S/R axis searches the prompt as written, LoRA tags included (unless a LoRA weight axis
        sets the first LoRA's weight: then the tags are the request's LoRAs and the text is searched alone)."""
        kinds = {axis.type for axis in self.axes}
        return PROMPT_SR in kinds and LORA_WEIGHT not in kinds

    def request_problems(self, req: GenerationRequest, limits: Limits, prompts: Sequence[str] = ()) -> list[str]:
        """Sentences for what the validated request cannot vary, and for the whole plot's work budget. `prompts`:
        the prompt and negative prompt the cells start from (default: the request's)."""
        problems = []
        kinds = {axis.type for axis in self.axes}
        for search in (str(axis.values[0]) for axis in self.axes if axis.type is PROMPT_SR):
            if not search:
                problems.append("Prompt S/R's first value is the text the others replace: it cannot be empty.")
            elif not any(search in text for text in (prompts or (req.prompt, req.negative_prompt)) if text):
                problems.append(f'Prompt S/R did not find "{search}" in the prompt or the negative prompt: its '
                                "first value is the text the others replace.")
        if LORA_WEIGHT in kinds and not req.loras:
            problems.append("The LoRA weight axis varies the weight of the request's first LoRA, and it has none: "
                            "add one (<lora:name:1> in the prompt, or the LoRA picker).")
        if VARIATION_SEED in kinds and VARIATION_STRENGTH not in kinds and not req.varies:
            problems.append(f"The {VARIATION_SEED.label} axis changes nothing while {P.VARIATION_STRENGTH.label} "
                            "is 0: set a strength above 0 (or add a Var. strength axis).")
        if STRENGTH in kinds and req.init_image is None:
            problems.append("The Denoising strength axis needs an init image (Image to image or Inpaint): without "
                            "one, the strength changes nothing.")
        steps = sum(dict(cell.values).get(STEPS, req.num_inference_steps) for cell in self.cells())
        problem = limits.grid_problem(req.width, req.height, steps, self.count)
        return problems + ([problem] if problem else [])


def plan_plot(axes: Sequence[tuple[Any, Any]], limits: Limits, model_problem: Callable[[str], str | None],
              rng: random.Random | None = None) -> Plot:
    """The plot of up to three (type, values) pairs (X, Y, Z; values as text in A1111's syntax or a list), each
    value checked by its parameter's rules and named by its axis; InvalidRequest with every problem's sentence."""
    problems: list[str] = []
    parsed: list[Axis] = []
    seen: dict[AxisType, str] = {}
    for name, (kind, values) in zip(AXIS_NAMES, [*axes, *[(None, "")] * (3 - len(axes))]):
        try:
            found = axis_type(kind)
        except InvalidRequest as err:
            problems.append(str(err).replace("Unknown axis type", f"Unknown {name} axis type", 1))
            continue
        if found is None:
            parsed.append(Axis(name))
            continue
        if found in seen and found is not PROMPT_SR:  # (A1111 lets several axes search and replace)
            problems.append(f"The {seen[found]} and {name} axes both vary {found.label}; give each axis its own "
                            "parameter.")
            continue
        seen[found] = name
        try:
            axis = _axis(name, found, values, limits.max_grid_images, rng)
        except TooManyValues as err:
            problems.append(limits.grid_images_problem(err.count, at_least=True) or "")
            continue
        except ValueError as err:
            problems.append(f"The {name} axis ({found.label}) {err}.")
            continue
        problems += _value_problems(axis, model_problem)
        parsed.append(axis)
    if not problems and not seen:
        problems.append("Choose what the plot varies: an X axis type and its values (Y and Z are optional).")
    if not problems:
        plot = Plot(tuple(parsed))  # type: ignore[arg-type]
        problem = limits.grid_images_problem(plot.count)
        if problem is None:
            return plot
        problems.append(problem)
    raise InvalidRequest(" ".join(problems))


def _axis(name: str, kind: AxisType, values: Any, limit: int, rng: random.Random | None) -> Axis:
    """The axis `name` of type `kind` with its values read (ValueError with a sentence when it has none)."""
    if isinstance(values, (list, tuple)):
        items, text = list(values), ", ".join(value_text(v) for v in values)
    else:
        text = "" if values is None else str(values)
        items = split_values(text)
    if kind.numeric:
        items = [value for item in items
                 for value in (expand(item, kind.whole, limit) if isinstance(item, str) else [item])]
    if not items:
        example = "1, 2, 3 or a range such as 10-30 (+10)" if kind.numeric else "names separated by commas"
        raise ValueError(f"has no values: enter {example}")
    fixed: tuple[int, ...] = ()
    if kind in SEED_AXES:  # -1: a seed drawn now, the same for the whole row or column
        items = [P.concrete_seed(item, rng) if P.is_random_seed(item) else item for item in items]
        fixed = tuple(int(item) for item in items if P.is_whole(item))
    return Axis(name, kind, tuple(items), text.strip(), fixed)


def _value_problems(axis: Axis, model_problem: Callable[[str], str | None]) -> list[str]:
    """Each bad value's sentence, the axis named in it ("Steps on the X axis must be ...")."""
    kind, subject = axis.type, f"{axis.type.label} on the {axis.name} axis"
    problems = []
    for value in axis.values:
        if kind is SAMPLER:
            problem = sampler_problem(value, subject)
        elif kind is MODEL:
            problem = model_problem(str(value))
            problem = f"The {axis.name} axis (Model): {problem}" if problem else None
        else:
            problem = kind.param.problem(value, subject)
        if problem and problem not in problems:
            problems.append(problem)
    return problems


# -- the stream ---------------------------------------------------------------------------------------
async def stream_plot(stream_image: StreamImage, plot: Plot, arguments: dict[str, Any], output_dir: Path, *,
                      owner: str | None = None, cancel: asyncio.Event | None = None, skip: asyncio.Event | None = None,
                      previews: bool = True) -> AsyncIterator[Event]:
    """Every cell through `stream_image` (PlotCell, then the cell's own events and its Done), then the grid saved
    as its own PNG and a Done whose result is the grid's with the cells' results in `batch`. A cell that fails or
    is stopped ends the plot with its Failed (the cells made before it stay saved; no grid is written). A cell
    that `skip` ends (Skipped) stays blank in the grid, as in A1111, and the plot goes on."""
    started = time.perf_counter()
    cells: list[ImageResult | None] = []  # each cell's result, None where it was skipped
    for cell in plot.cells():
        if cancel is not None and cancel.is_set():
            yield _failed("Cancelled: the plot stopped before its next cell.", cells)
            return
        yield PlotCell(cell.number, plot.count, cell.label)
        async with aclosing(stream_image(**cell.arguments(arguments), cancel=cancel, skip=skip, previews=previews,
                                         owner=owner)) as events:
            async for event in events:
                if isinstance(event, Done):
                    cells.append(event.result)
                elif isinstance(event, Skipped):
                    cells.append(None)
                    event = Skipped(cell.number, plot.count)
                elif isinstance(event, Failed):
                    error = event.error if event.error.startswith("Cancelled") else \
                        f"Cell {cell.number}/{plot.count} ({cell.label}): {event.error}"
                    yield _failed(error, cells, event.result)
                    return
                yield event
    if cancel is not None and cancel.is_set():
        yield _failed("Cancelled: the plot stopped before its grid was drawn.", cells)
        return
    results = [result for result in cells if result is not None]
    if not results:
        yield _failed("Skipped: every cell of the plot was skipped, so there is no grid.", cells)
        return
    grid = await asyncio.to_thread(draw_grid, plot, [result.image if result else None for result in cells])
    record = replace(results[0], plot=plot.record(), server=None, prompt_id=None, comfyui_workflow=None,
                     fallback_reason=None, warnings=_warnings(plot, cells))
    path = await asyncio.to_thread(save_image, grid, record.parameters(), output_dir, owner, GRID_SUFFIX)
    logger.info("X/Y/Z plot: %d images and their grid %s", len(results), path)
    yield Done(replace(record, image=grid, path=str(path), batch=results,
                       timings={"total_s": round(time.perf_counter() - started, 4)}))


def _failed(error: str, cells: list[ImageResult | None], result: ImageResult | None = None) -> Failed:
    """The plot's end without a grid: the sentence, and the cells made so far in the result's `batch`."""
    base = result if isinstance(result, ImageResult) else ImageResult(status="error", error=error)
    return Failed(error, replace(base, error=error, batch=[made for made in cells if made is not None]))


def _warnings(plot: Plot, cells: Iterable[ImageResult | None]) -> list[str]:
    """The cells' warnings once each, which cells fell back to another backend, and which were skipped."""
    out: list[str] = []
    for cell, result in zip(plot.cells(), cells):
        if result is None:
            found = [f"Cell {cell.number} ({cell.label}) was skipped: it is blank in the grid."]
        else:
            found = list(result.warnings)
            if result.fallback_reason:
                found.append(f"Cell {cell.number} ({cell.label}) was made on {result.backend}: "
                             f"{result.fallback_reason}")
        out += [warning for warning in found if warning not in out]
    return out


# -- the grid -----------------------------------------------------------------------------------------
def draw_grid(plot: Plot, images: Sequence[Image.Image | None]) -> Image.Image:
    """The labelled grid: X labels above the cells, Y labels on their left, and one such grid per Z value side by
    side, each under its Z label. Cells take the first image's size (a None cell, skipped, stays blank); labels are
    at least MIN_LABEL_PX high."""
    width, height = next(image for image in images if image is not None).size
    size = max(MIN_LABEL_PX, (width + height) // 25)
    face, pad, line = text_font(size), max(4, size // 2), round(size * 1.25)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x, y, z = plot.axes

    def lines(axis: Axis, room: float) -> list[list[str]]:
        return [wrap_text(measure, axis.label(value), face, room) for value in axis.values] if axis.type else []

    def band(labels: list[list[str]]) -> int:
        return max(len(text) for text in labels) * line + 2 * pad if labels else 0

    x_lines = lines(x, max(width - 2 * pad, size * 4))
    y_lines = lines(y, max(width, size * 10))
    top = band(x_lines)
    left = max((measure.textlength(text, font=face) for block in y_lines for text in block), default=0)
    left = math.ceil(left) + 2 * pad if y_lines else 0
    sub_width, sub_height = left + len(x.values) * width, top + len(y.values) * height
    z_lines = lines(z, max(sub_width - 2 * pad, size * 4))
    title, gap = band(z_lines), 2 * pad if len(z.values) > 1 else 0
    canvas = Image.new("RGB", (len(z.values) * (sub_width + gap) - gap, title + sub_height), GRID_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for cell, image in zip(plot.cells(), images):
        ix, iy, iz = cell.place
        origin = iz * (sub_width + gap)
        if image is not None and image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        if image is not None:
            canvas.paste(image.convert("RGB"), (origin + left + ix * width, title + top + iy * height))
        if ix == 0 and iy == 0 and z_lines:
            _centred(draw, z_lines[iz], (origin, 0, origin + sub_width, title), face, line)
        if iy == 0 and x_lines:
            cell_left = origin + left + ix * width
            _centred(draw, x_lines[ix], (cell_left, title, cell_left + width, title + top), face, line)
        if ix == 0 and y_lines:
            cell_top = title + top + iy * height
            _centred(draw, y_lines[iy], (origin, cell_top, origin + left, cell_top + height), face, line)
    return canvas


def _centred(draw: ImageDraw.ImageDraw, lines: list[str], box: tuple[int, int, int, int], face: Any,
             line: int) -> None:
    """`lines` centred in `box` (left, top, right, bottom), one under the other."""
    left, top, right, bottom = box
    y = top + (bottom - top - len(lines) * line) / 2
    for text in lines:
        x = left + (right - left - draw.textlength(text, font=face)) / 2
        draw.text((x, y), text, font=face, fill=LABEL_FILL)
        y += line
