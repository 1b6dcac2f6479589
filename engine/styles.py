"""Prompt styles: the app's (presets/styles.yaml) and the user's own, applied as A1111 applies them.

A style has a prompt and a negative prompt. Where its text holds `{prompt}` the user's text takes that place;
otherwise the style's text is added after the user's, joined by ", " (A1111's `merge_prompts`), except that a
negative prompt's terms are added only where the user's does not have them yet (A1111 would repeat them). Several
styles apply in the order chosen.

The user's styles are read where AUTOMATIC1111 and Fooocus keep theirs, in any model folder (`--models-dir` an A1111
or Fooocus install): A1111's `styles*.csv` (columns name, prompt, negative_prompt) at the folder's top, Fooocus's
`sdxl_styles/*.json` (a list of {"name", "prompt", "negative_prompt"}); and every `.csv`, `.json` or `.yaml` in the
styles folder (GATOR_STYLES_DIR, else <GATOR_MODELS_DIR>/styles, else styles/). A user's style with the name of one
of the app's takes its place. A style saved from the app (A1111's "Save style") goes into that folder's styles.csv,
in A1111's columns, replacing one of the same name there.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from .errors import InvalidRequest, OutputError, os_reason
from .recent import Recent

logger = logging.getLogger(__name__)

NO_STYLE = "None"
PLACEHOLDER = "{prompt}"
A1111_FILES = "styles*.csv"  # at the top of an A1111 install
FOOOCUS_FILES = "sdxl_styles/*.json"  # in a Fooocus install
STYLE_SUFFIXES = (".csv", ".json", ".yaml", ".yml")  # in the styles folder


@dataclass(frozen=True)
class Style:
    """One style: its name, prompt and negative prompt (either may hold {prompt}), and the file it came from."""

    name: str
    prompt: str = ""
    negative: str = ""
    source: str = ""


def merge_prompt(style_text: str, text: str) -> str:
    """A1111's merge: the style's text with `text` at {prompt}, or after `text` joined by ", "."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, text.strip())
    return ", ".join(part for part in (text.strip(), style_text.strip()) if part)


def merge_negative(negative: str, extra: str) -> str:
    """`negative` with the style's negative merged in: at {prompt} when it has one (A1111's rule), else its terms
    (split at commas) that `negative` does not have yet, compared without case (the app's own rule: A1111 would add
    every term again), so no term comes twice."""
    if PLACEHOLDER in extra:
        return merge_prompt(extra, negative)
    have = {term.strip().lower() for term in negative.split(",") if term.strip()}
    added = []
    for term in (term.strip() for term in extra.split(",")):
        if term and term.lower() not in have:
            have.add(term.lower())
            added.append(term)
    kept = negative.strip().rstrip(",").strip()
    return ", ".join([kept, *added] if kept else added) if added else negative


def apply_styles(styles: Sequence[Style], prompt: str, negative: str) -> tuple[str, str]:
    """The prompt and negative prompt with each style applied in turn; an empty prompt stays empty (the engine's
    sentence asks for one)."""
    if not prompt.strip():
        return prompt, negative
    for style in styles:
        prompt = merge_prompt(style.prompt, prompt) if style.prompt else prompt
        negative = merge_negative(negative, style.negative) if style.negative else negative
    return prompt, negative


def apply_styles_to_given(styles: Sequence[Style], prompt: str, negative: str) -> tuple[str, str]:
    """Each of the texts that is given (not empty) with the styles applied, the other left empty: a hires pass's own
    prompts, as A1111 styles them (an empty one means the first pass's, already styled)."""
    for style in styles:
        prompt = merge_prompt(style.prompt, prompt) if style.prompt and prompt.strip() else prompt
        negative = merge_negative(negative, style.negative) if style.negative and negative.strip() else negative
    return prompt, negative


def chosen_names(value: Any) -> list[str]:
    """The style names a value asks for: one name, a list of names, or none ("None", empty); InvalidRequest for
    anything else (a number)."""
    if value is not None and not isinstance(value, (str, list, tuple)):
        raise InvalidRequest("Style must be a style's name or a list of names.")
    names = [value] if isinstance(value, str) else list(value or [])
    return [str(name).strip() for name in names if str(name).strip() and str(name).strip() != NO_STYLE]


CSV_COLUMNS = ("name", "prompt", "negative_prompt")  # A1111's styles.csv


def _csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A style CSV's columns (A1111's three first, then any others it has) and its rows; ValueError for a file
    without a name column."""
    text = path.read_text(encoding="utf-8-sig").lstrip("\r\n")  # blank lines before the header are no header
    # as A1111 reads it: a space after a comma is not part of the value; a quoted prompt keeps its line breaks
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    rows = list(reader)  # every row, comments too: a save rewrites the file with them
    fields = list(reader.fieldnames or [])
    if fields and "name" not in fields:
        raise ValueError("its first line must name the columns name, prompt, negative_prompt")
    return [*CSV_COLUMNS, *(field for field in fields if field not in CSV_COLUMNS)], rows


def _read(path: Path) -> list[Style]:
    """The styles of one file (A1111's CSV, a JSON list as Fooocus's, or a YAML mapping as presets/styles.yaml);
    ValueError with the reason for a file of another shape."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        _, rows = _csv_rows(path)  # "# ..." rows are comments; A1111's first files had a "text" column, no "prompt"
        return [Style(str(row["name"]).strip(), str(row.get("prompt") or row.get("text") or ""),
                      str(row.get("negative_prompt") or ""), str(path))
                for row in rows if str(row.get("name") or "").strip() and not str(row["name"]).startswith("#")]
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".json":
        entries = json.loads(text)
        if not isinstance(entries, list):
            raise ValueError("a style file in JSON is a list of {name, prompt, negative_prompt}")
        return [Style(str(entry["name"]).strip(), str(entry.get("prompt") or ""),
                      str(entry.get("negative_prompt") or ""), str(path))
                for entry in entries if isinstance(entry, dict) and str(entry.get("name") or "").strip()]
    entries = yaml.safe_load(text) or {}
    if not isinstance(entries, dict) or not all(isinstance(spec, dict) or spec is None for spec in entries.values()):
        raise ValueError("a style file in YAML maps each name to its prompt and negative")
    return [Style(str(name), str((spec or {}).get("prompt") or ""), str((spec or {}).get("negative") or ""),
                  str(path)) for name, spec in entries.items() if str(name) != NO_STYLE]


SAVED_STYLES = "styles.csv"  # in the styles folder: the styles saved from the app, in A1111's columns
STYLE_NAME_CHARS = 100


class StyleLibrary:
    """The styles of the app's file and of the user's files, by name; read again when a few seconds old."""

    def __init__(self, builtin: Path, styles_dir: Path | None, model_roots: Iterable[Path] = ()) -> None:
        self.builtin, self.styles_dir, self.model_roots = Path(builtin), styles_dir, [Path(p) for p in model_roots]
        self._read = Recent(self._read_all)

    def files(self) -> list[Path]:
        """The user's style files, in the order they are read."""
        found: list[Path] = []
        if self.styles_dir is not None and Path(self.styles_dir).is_dir():
            found += sorted(p for p in Path(self.styles_dir).iterdir() if p.suffix.lower() in STYLE_SUFFIXES)
        for root in self.model_roots:
            if root.is_dir():
                found += sorted(root.glob(A1111_FILES)) + sorted(root.glob(FOOOCUS_FILES))
        saved = self.saved_file()
        if saved is not None and saved in found:  # read last: a style saved here wins over one of that name elsewhere
            found = [path for path in found if path != saved] + [saved]
        return found

    def saved_file(self) -> Path | None:
        """Where Save style writes: the styles folder's styles.csv (None without a styles folder)."""
        return Path(self.styles_dir) / SAVED_STYLES if self.styles_dir is not None else None

    def _load(self) -> tuple[dict[str, Style], list[str]]:
        return self._read.get()

    def _read_all(self) -> tuple[dict[str, Style], list[str]]:
        """Every style by name, and a sentence per file that could not be read."""
        styles: dict[str, Style] = {style.name: style for style in _read(self.builtin)}
        problems: list[str] = []
        for path in self.files():
            try:
                styles.update({style.name: style for style in _read(path)})
            except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError, csv.Error) as err:
                problems.append(f"The style file {path} could not be read ({err}).")
                logger.warning("style file %s could not be read: %s", path, err)
        return styles, problems

    def names(self) -> list[str]:
        """"None", then every style's name (the app's first)."""
        return [NO_STYLE, *self._load()[0]]

    def problems(self) -> list[str]:
        """A sentence per style file that could not be read."""
        return list(self._load()[1])

    def save(self, name: Any, prompt: Any, negative: Any) -> Style:
        """Save a style (A1111's Save style) into the styles folder's styles.csv, replacing one of that name there; it
        is offered at once. InvalidRequest for a name or texts it cannot take, OutputError when the file cannot be
        written."""
        name = name.strip() if isinstance(name, str) else ""
        if not name or name == NO_STYLE or len(name) > STYLE_NAME_CHARS or any(c in name for c in "\r\n"):
            raise InvalidRequest(f"A style needs a name of 1 to {STYLE_NAME_CHARS} characters on one line, other "
                                 f"than {NO_STYLE}.")
        if not isinstance(prompt, str) or not isinstance(negative, str) or not (prompt.strip() or negative.strip()):
            raise InvalidRequest("A style needs a prompt or a negative prompt: write them in the prompt boxes, then "
                                 "save them as a style.")
        path, columns, rows = self._saved_rows("nothing was saved")
        saved = Style(name, prompt.strip(), negative.strip(), str(path))
        rows = [row for row in rows if str(row.get("name") or "").strip() != name]
        rows.append({"name": saved.name, "prompt": saved.prompt, "negative_prompt": saved.negative})
        self._write(path, columns, rows, "The style could not be saved in the styles folder")
        self._read.forget()
        logger.info("Saved the style %r in %s", name, path)
        return saved

    def delete(self, name: Any) -> str:
        """Delete a style saved in the styles folder's styles.csv (A1111's style editor); its name. InvalidRequest
        for a name that is not there (a style of the app's or of another file says where it is), OutputError when the
        file cannot be written."""
        name = name.strip() if isinstance(name, str) else ""
        path, columns, rows = self._saved_rows("nothing was deleted")
        kept = [row for row in rows if str(row.get("name") or "").strip() != name]
        if len(kept) == len(rows):
            elsewhere = self._load()[0].get(name)
            where = f": it comes from {elsewhere.source}, which the app does not change" if elsewhere else ""
            raise InvalidRequest(f"There is no style {name!r} in {path}{where}.")
        self._write(path, columns, kept, "The style could not be deleted from the styles folder")
        self._read.forget()
        logger.info("Deleted the style %r from %s", name, path)
        return name

    def _saved_rows(self, otherwise: str) -> tuple[Path, list[str], list[dict[str, str]]]:
        """The styles folder's styles.csv, its columns and its rows as they are (any other columns of theirs kept);
        InvalidRequest ending with `otherwise` when it cannot be read or rewritten whole."""
        path = self.saved_file()
        if path is None:
            raise InvalidRequest("No styles folder is set (GATOR_STYLES_DIR).")
        try:
            columns, rows = _csv_rows(path) if path.is_file() else (list(CSV_COLUMNS), [])
            if any(None in row for row in rows):  # rewriting would cut the values beyond its columns
                raise ValueError("a row has more values than the file has columns: put a text with commas in quotes")
        except (OSError, ValueError, csv.Error) as err:
            raise InvalidRequest(f"The style file {path} could not be read ({err}), so {otherwise}.") from None
        return path, columns, rows

    @staticmethod
    def _write(path: Path, columns: list[str], rows: list[dict[str, str]], failed: str) -> None:
        """`rows` as the whole of `path` (written to a partial file, then put in its place); OutputError starting
        with `failed` when it cannot be."""
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: value for key, value in row.items() if key in columns} for row in rows)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.part")
            partial.write_text(text.getvalue(), encoding="utf-8")
            partial.replace(path)
        except OSError as err:
            logger.error("Could not write %s: %s", path, err)
            raise OutputError(f"{failed} ({os_reason(err)}).") from err

    def chosen(self, value: Any) -> list[Style]:
        """The styles `value` names (see `chosen_names`); InvalidRequest naming an unknown one."""
        styles = self._load()[0]
        unknown = [name for name in chosen_names(value) if name not in styles]
        if unknown:
            raise InvalidRequest(f"Unknown style {unknown[0]!r}; the styles are listed in the Styles box (and by "
                                 f"/status), e.g. {', '.join(list(styles)[:4])}.")
        return [styles[name] for name in chosen_names(value)]

    def apply(self, value: Any, prompt: str, negative: str) -> tuple[str, str]:
        """The prompt and negative prompt with the styles `value` names applied."""
        return apply_styles(self.chosen(value), prompt, negative)

    def apply_to_given(self, value: Any, prompt: str, negative: str) -> tuple[str, str]:
        """`apply_styles_to_given` with the styles `value` names (a hires pass's own prompts)."""
        return apply_styles_to_given(self.chosen(value), prompt, negative)
