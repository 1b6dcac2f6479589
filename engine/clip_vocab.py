"""OpenAI CLIP's BPE vocabulary (vocab.json + merges.txt, as Hugging Face's CLIP tokenizers have them).

The files are not committed: they are derived from OpenAI's `bpe_simple_vocab_16e6.txt.gz`, which
ships in the open-clip-torch wheel. launch.sh downloads that wheel (no install, no dependencies)
into `<venv>/share/gator-studio/`; this module reads the archive by path and never imports open_clip.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import sys
import zipfile
from pathlib import Path

from .tiny_model import bytes_to_unicode

logger = logging.getLogger(__name__)

WHEEL_DIR = Path(sys.prefix) / "share" / "gator-studio"
WHEEL_PATTERN = "open_clip_torch-*.whl"
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
MERGES_HEADER = "#version: 0.2"
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


def _read_bpe_merges() -> list[str]:
    """The 48894 merges of OpenAI's BPE file, read from the open-clip-torch wheel."""
    wheels = sorted(WHEEL_DIR.glob(WHEEL_PATTERN))
    if not wheels:
        raise FileNotFoundError(f"The CLIP vocabulary (an open-clip-torch wheel) is missing from {WHEEL_DIR}: run "
                                f"./launch.sh once, or pip download --no-deps open-clip-torch -d {WHEEL_DIR}")
    with zipfile.ZipFile(wheels[-1]) as wheel:  # any version: OpenAI's file never changed
        lines = gzip.decompress(wheel.read(BPE_MEMBER)).decode("utf-8").split("\n")
    # As CLIP's SimpleTokenizer: skip the header line, keep as many merges as fill the 49408 ids.
    return lines[1:VOCAB_SIZE - 256 * 2 - len(SPECIAL_TOKENS) + 1]


def build_vocab() -> tuple[dict[str, int], list[str]]:
    """CLIP's token -> id table and its merge list, exactly as openai/clip-vit-large-patch14 has them."""
    merges = _read_bpe_merges()
    chars = list(bytes_to_unicode().values())  # CLIP's byte -> character table, in its order
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + list(SPECIAL_TOKENS)
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"The CLIP vocabulary has {len(vocab)} tokens instead of {VOCAB_SIZE}.")
    return vocab, merges


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def ensure_tokenizer_files(folder: Path) -> None:
    """Write vocab.json and merges.txt into `folder` unless both are already there."""
    folder = Path(folder)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    if vocab_file.is_file() and merges_file.is_file():
        return
    vocab, merges = build_vocab()
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(merges_file, "\n".join([MERGES_HEADER, *merges]) + "\n")
    _write_atomic(vocab_file, json.dumps(vocab, ensure_ascii=False))
    logger.info("Wrote the CLIP vocabulary (%d tokens, %d merges) to %s", len(vocab), len(merges), folder)
