"""Wildcards and variants in prompts, as Fooocus and A1111's Dynamic Prompts write them.

`{red|green|blue}` picks one option, `{2::red|blue}` weighs an option (2 to 1 here), `{2$$a|b|c}` picks two
different ones joined by ", " (`{1-3$$...}` one to three, `{2-$$...}` two or more, `{2$$ and $$a|b|c}` joined by
" and ", `{2$$__color__}` two lines of one file). `__color__` picks a line of the wildcard file color.txt
(`__people/hair__`: people/hair.txt; `__people/*__`: any file the pattern matches), from the user's wildcards
folder or the ones presets/wildcards ships; options and lines may hold more of either. As in Dynamic Prompts, a
YAML or JSON file holds many wildcards: a mapping's keys name them (`hair: {short: [...]}` is `__hair/short__`,
under the file's folder; the file's own name is not part of it), a plain list is the file's name, and an entry may
carry a weight (`"2::red"`, or `{text: red, weight: 2}`). `\\{`, `\\}` and `\\|` are the
characters themselves. The picks follow the image's seed, so one seed gives the same prompt again and each image
of a batch (seed + 1, ...) gets its own.
"""
from __future__ import annotations

import fnmatch
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from .errors import InvalidRequest
from .recent import Recent

logger = logging.getLogger(__name__)

WILDCARD = re.compile(r"__([\w\-./*]+?)__")  # "*" matches several files: __colors*__, __people/*__
SUFFIX = ".txt"
STRUCTURED_SUFFIXES = (".yaml", ".yml", ".json")  # many wildcards in one file, named by its keys
MAX_DEPTH = 10  # options and wildcard lines inside each other; deeper is a loop (a file naming itself)
MAX_FILE_BYTES = 1024 * 1024
MAX_EXPANDED_CHARS = 100_000  # what one expansion may grow to before the prompt limit (engine/limits.py) is checked
MAX_LISTED = 20  # names a sentence lists
ESCAPED = "{}|"
COUNT = re.compile(r"\s*(\d+)?\s*(-)?\s*(\d+)?\s*\$\$")  # "2$$", "1-3$$", "-2$$" (up to two), "2-$$" (two or more)
WEIGHT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*::")


def has_variants(text: object) -> bool:
    """Whether `text` uses `{...}` options or `__name__` wildcards, or has a brace to check or unescape."""
    if not text or not isinstance(text, str):
        return False
    return "{" in text or "}" in text or WILDCARD.search(text) is not None


def escaped(text: str) -> str:
    """`text` with its braces escaped, so a filled-in prompt put back into a form means itself again."""
    return text.replace("{", "\\{").replace("}", "\\}")


@dataclass(frozen=True)
class Expansion:
    """One image's prompts after expansion, and the templates they came from (None where nothing was expanded)."""

    prompt: str
    negative_prompt: str
    prompt_template: str | None = None
    negative_template: str | None = None


Entries = list[tuple[str, float]]  # a wildcard's options and their weights


@dataclass(frozen=True)
class Source:
    """Where a wildcard's options are: a text file (one a line), or a list in a YAML or JSON file (its `entries`)."""

    path: Path
    entries: tuple[tuple[str, float], ...] | None = None

    @property
    def shown(self) -> str:
        """The file as a sentence names it."""
        return self.path.name


def _entries(items: list[Any]) -> Entries:
    """A YAML/JSON list's options as Dynamic Prompts reads them: text, "2::text", or {text|content, weight}."""
    out: Entries = []
    for item in items:
        if isinstance(item, dict):
            text = str(item.get("text") or item.get("content") or "")
            try:
                weight = float(item.get("weight", 1))
            except (TypeError, ValueError):
                logger.warning("Wildcard entry %r has a weight that is not a number; it counts as 1.", item)
                weight = 1.0
        elif isinstance(item, (str, int, float)) and str(item).strip():
            text, weight = str(item), 1.0
            found = WEIGHT.match(text)
            if found and text[0].isdigit():
                text, weight = text[found.end():], float(found.group(1))
        else:
            continue
        if text.strip():
            out.append((text.strip(), weight))
    return out


def _structured(path: Path, prefix: str) -> list[tuple[str, Source]]:
    """The wildcards of one YAML or JSON file (names under `prefix`, its folder); a file that cannot be read, or
    holds an entry of a shape no wildcard has, is logged and left out."""
    def walk(node: Any, keys: tuple[str, ...]) -> Iterator[tuple[str, Source]]:
        for key, value in node.items():
            if isinstance(value, list):
                yield prefix + "/".join((*keys, str(key))), Source(path, tuple(_entries(value)))
            elif isinstance(value, dict):
                yield from walk(value, (*keys, str(key)))

    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES // 1024 // 1024} MB")
        text = path.read_text(encoding="utf-8", errors="replace")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        if isinstance(data, dict):
            return list(walk(data, ()))
        return [(prefix + path.stem, Source(path, tuple(_entries(data))))] if isinstance(data, list) else []
    except (OSError, TypeError, ValueError, RecursionError, yaml.YAMLError) as err:
        logger.warning("The wildcard file %s could not be read: %s", path, err)
        return []


class Wildcards:
    """The wildcard files of `folders` (the first folder holding a name wins) and the expansion of prompts."""

    def __init__(self, folders: Iterable[Path | None]) -> None:
        self.folders = [Path(folder) for folder in folders if folder]
        self._names = Recent(lambda: list(self.files()))  # the status tab's list: a folder walk every few seconds
        self._parsed: dict[Path, tuple[tuple[int, float], list[tuple[str, Source]]]] = {}  # YAML/JSON, by stamp

    def files(self) -> dict[str, Source]:
        """Each wildcard's name ("color", "people/hair") and where its options are."""
        found: dict[str, Source] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (SUFFIX, *STRUCTURED_SUFFIXES)):
                if path.suffix.lower() == SUFFIX:
                    found.setdefault(path.relative_to(folder).with_suffix("").as_posix(), Source(path))
                    continue
                for name, source in self._structured(path, folder):
                    found.setdefault(name, source)
        return dict(sorted(found.items()))

    def _structured(self, path: Path, folder: Path) -> list[tuple[str, Source]]:
        """A YAML/JSON file's wildcards, read again only when the file changes."""
        try:
            stat = path.stat()
        except OSError:
            return []
        stamp = (stat.st_size, stat.st_mtime)
        known = self._parsed.get(path)
        if known is None or known[0] != stamp:
            parent = path.parent.relative_to(folder).as_posix()
            known = self._parsed[path] = (stamp, _structured(path, "" if parent == "." else parent + "/"))
        return known[1]

    def names(self) -> list[str]:
        """The wildcards a prompt may name, sorted (walked again when a few seconds old; expansion always walks)."""
        return list(self._names.get())

    def expand(self, prompt: str, negative_prompt: str, seed: int) -> Expansion:
        """Both prompts expanded for `seed`; InvalidRequest with a sentence for a prompt that cannot be."""
        files = self.files()
        expanded = []
        for text, stream in ((prompt, str(seed)), (negative_prompt, f"negative {seed}")):
            if has_variants(text):
                expanded.append(_Expander(files, random.Random(stream)).run(text, 0))
            else:
                expanded.append(text)
        return Expansion(expanded[0], expanded[1], prompt if expanded[0] != prompt else None,
                         negative_prompt if expanded[1] != negative_prompt else None)


class _Expander:
    """One prompt's expansion: its own random stream over the wildcard files found for the request."""

    def __init__(self, files: dict[str, Source], rng: random.Random) -> None:
        self.files, self.rng = files, rng
        self.lines: dict[str, Entries] = {}
        self.size = 0

    def run(self, text: str, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"Wildcards and {{...}} options nest more than {MAX_DEPTH} deep (does a wildcard "
                                 "file name itself?).")
        out: list[str] = []
        index = 0
        while index < len(text):
            char = text[index]
            if char == "\\" and text[index + 1:index + 2] in tuple(ESCAPED):
                out.append(text[index + 1])
                index += 2
            elif char == "{":
                end = _closing(text, index)
                out.append(self.choose(text[index + 1:end], depth))
                index = end + 1
            elif char == "}":
                raise InvalidRequest("The prompt has a '}' without its '{' (write \\} for the character itself).")
            elif (match := WILDCARD.match(text, index)) is not None:
                out.append(self.run(self.pick(self.lines_of(match.group(1))), depth + 1))
                index = match.end()
            else:
                out.append(char)
                index += 1
            self.size += len(out[-1])
            if self.size > MAX_EXPANDED_CHARS:
                raise InvalidRequest(f"The prompt grows past {MAX_EXPANDED_CHARS:,} characters as its wildcards are "
                                     "filled in.")
        return "".join(out)

    def choose(self, body: str, depth: int) -> str:
        """`body` of one `{...}`: its options picked (by weight; a count picks several different ones), expanded."""
        low, high, separator = 1, 1, ", "
        count = COUNT.match(body)
        if count:
            body = body[count.end():]
            if "$$" in body.split("|", 1)[0]:  # "{2$$ and $$a|b}": a separator of its own
                separator, body = body.split("$$", 1)
        options = _split_options(body)
        weights: list[float] = []
        if count:
            whole = WILDCARD.fullmatch(options[0].strip()) if len(options) == 1 else None
            if whole:  # "{2$$__color__}": several different lines of one wildcard, with the weights it gives them
                entries = self.lines_of(whole.group(1))  # (a text file's line "3::x" is text, as in __color__)
                options, weights = [option.strip() for option, _ in entries], [weight for _, weight in entries]
            low = int(count.group(1)) if count.group(1) else 1
            high = int(count.group(3)) if count.group(3) else len(options) if count.group(2) else low
        if not weights:  # "{2::a|b}": each option's own weight
            for position, option in enumerate(options):
                weight = WEIGHT.match(option)
                weights.append(float(weight.group(1)) if weight else 1.0)
                options[position] = (option[weight.end():] if weight else option).strip()
        wanted = min(self.rng.randint(min(low, high), max(low, high)), len(options))
        picked: list[str] = []
        pool = [(option, weight) for option, weight in zip(options, weights) if weight > 0]  # 0: never picked
        while len(picked) < wanted and pool:
            picked.append(pool.pop(_drawn(self.rng, pool))[0])
        return separator.join(self.run(option, depth + 1) for option in picked)

    def pick(self, entries: Entries) -> str:
        """One option of a wildcard: by its weights, or (every weight 1, as in text files) uniformly."""
        if all(weight == 1.0 for _, weight in entries):
            return self.rng.choice(entries)[0]
        pool = [(option, weight) for option, weight in entries if weight > 0] or entries
        return pool[_drawn(self.rng, pool)][0]

    def lines_of(self, name: str) -> Entries:
        """The options of wildcard `name` and their weights (a text file's: one a line, weight 1; blank lines and
        # comments left out)."""
        if name in self.lines:
            return self.lines[name]
        if "*" in name:  # every file the pattern matches, their lines together
            matched = [n for n in self.files if fnmatch.fnmatchcase(n.lower(), name.lower())]
            if matched:
                self.lines[name] = [line for n in matched for line in self.lines_of(n)]
                return self.lines[name]
        source = self.files.get(name) or next((p for n, p in self.files.items() if n.lower() == name.lower()), None)
        if source is None:
            known = list(self.files)
            listed = ", ".join(known[:MAX_LISTED]) + (" ..." if len(known) > MAX_LISTED else "")
            raise InvalidRequest(f"No wildcard named {name!r}: put its options, one a line, in {name}{SUFFIX} in the "
                                 f"wildcards folder" + (f" (wildcards here: {listed})." if known else " (it is empty)."))
        if source.entries is not None:
            if not source.entries:
                raise InvalidRequest(f"The wildcard {name} in {source.shown} has no options.")
            self.lines[name] = list(source.entries)
            return self.lines[name]
        path = source.path
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise InvalidRequest(f"The wildcard file {name}{SUFFIX} is larger than "
                                     f"{MAX_FILE_BYTES // 1024 // 1024} MB.")
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            logger.warning("Could not read the wildcard file %s: %s", path, err)
            raise InvalidRequest(f"The wildcard file {name}{SUFFIX} could not be read.") from None
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
        if not lines:
            raise InvalidRequest(f"The wildcard file {name}{SUFFIX} has no options (one a line).")
        self.lines[name] = [(line, 1.0) for line in lines]
        return self.lines[name]


def _drawn(rng: random.Random, pool: Entries) -> int:
    """The position of an option of `pool` drawn by weight (the last one when rounding leaves the point past every
    reach)."""
    point, reach = rng.uniform(0, sum(weight for _, weight in pool)), 0.0
    for position, (_, weight) in enumerate(pool):
        reach += weight
        if point <= reach:
            return position
    return len(pool) - 1


def _unescaped(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """Each character of `text` from `start` that is not escaped (`\\{`), with the brace depth after it."""
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char == "\\" and text[index + 1:index + 2] in tuple(ESCAPED):
            index += 2
            continue
        depth += (char == "{") - (char == "}")
        yield index, char, depth
        index += 1


def _closing(text: str, start: int) -> int:
    """The index of the `}` that closes the `{` at `start` (nested ones and escapes skipped)."""
    for index, char, depth in _unescaped(text, start):
        if char == "}" and depth == 0:
            return index
    raise InvalidRequest("The prompt has a '{' without its '}' (write \\{ for the character itself).")


def _split_options(body: str) -> list[str]:
    """`a|{b|c}|d` as ["a", "{b|c}", "d"]: split at the `|`s outside nested braces (escapes kept for later)."""
    options, start = [], 0
    for index, char, depth in _unescaped(body):
        if char == "|" and depth == 0:
            options.append(body[start:index])
            start = index + 1
    options.append(body[start:])
    return options
