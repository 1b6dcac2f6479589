"""Model file hashes as AUTOMATIC1111 writes them: a checkpoint's SHA-256, whose first 10 hex digits are the PNG's
"Model hash", and a LoRA's SHA-256 of its tensor data alone (the bytes after a safetensors file's header, as
kohya's trainer and A1111 compute it), whose first 12 make its entry in "Lora hashes"; how A1111 and Civitai
recognise a model. A file is read once per version (size and modified time): the hashes are kept in a small JSON
file, so a restart does not read multi-gigabyte files again, and a file is hashed in a background thread, so no
request waits for it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

WHOLE_FILE, TENSOR_DATA = "file", "tensors"  # what is hashed: a checkpoint's whole file, a LoRA's tensor data
MODEL_HASH_DIGITS = 10  # A1111's "Model hash": the first 10 hex digits ("AutoV2" on Civitai)
LORA_HASH_DIGITS = 12  # A1111's "Lora hashes" entries: the first 12 of the tensor data's hash
CHUNK_BYTES = 1 << 20


def without_hash(title: str) -> str:
    """A model's name from A1111's title of it, "name [hash]" ("control_canny [e3fe7712]" -> "control_canny")."""
    title = title.strip()
    return title.rsplit(" [", 1)[0] if title.endswith("]") and " [" in title else title


def short_hash(sha256: str | None, digits: int = MODEL_HASH_DIGITS) -> str | None:
    """The first `digits` hex digits of a full SHA-256 (None stays None)."""
    return sha256[:digits] if sha256 else None


def sha256_of(path: Path, part: str = WHOLE_FILE) -> str:
    """The SHA-256 of the file at `path` (TENSOR_DATA: of a safetensors file's bytes after its header), read in
    1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        if part == TENSOR_DATA:
            file.seek(8 + int.from_bytes(file.read(8), "little"))
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class FileHashes:
    """SHA-256 of model files, remembered per file version in `cache_file` (None: in memory only)."""

    def __init__(self, cache_file: Path | None) -> None:
        self.cache_file = cache_file
        self._lock = threading.Lock()
        self._hashing: set[str] = set()
        self._known: dict[str, dict[str, object]] = self._read()

    def known(self, path: str | Path, part: str = WHOLE_FILE) -> str | None:
        """The hash of the file's `part` when it was hashed in its present version, else None (nothing is read)."""
        key, stamp = self._key(path, part)
        with self._lock:
            entry = self._known.get(key)
        return str(entry["sha256"]) if entry and stamp and entry.get("stamp") == stamp else None

    def start(self, path: str | Path, part: str = WHOLE_FILE) -> threading.Thread | None:
        """Hash the file's `part` in a background thread unless it is known or being hashed; the thread, or None."""
        key, _ = self._key(path, part)
        with self._lock:
            if key in self._hashing:
                return None
            self._hashing.add(key)
        if self.known(path, part):
            with self._lock:
                self._hashing.discard(key)
            return None
        thread = threading.Thread(target=self._hash, args=(Path(path), part), name="file-hash", daemon=True)
        thread.start()
        return thread

    def _hash(self, path: Path, part: str) -> None:
        key, stamp = self._key(path, part)
        try:
            sha256 = sha256_of(path, part)
        except OSError as err:
            logger.warning("Could not hash %s: %s", path.name, err)
            return
        finally:
            with self._lock:
                self._hashing.discard(key)
        if self._key(path, part)[1] != stamp:  # changed while it was read: hashed again when next used
            return
        logger.info("Hash of %s (%s): %s", path.name, part, short_hash(sha256, LORA_HASH_DIGITS))
        with self._lock:
            self._known[key] = {"stamp": stamp, "sha256": sha256}
            self._write()

    @staticmethod
    def _key(path: str | Path, part: str) -> tuple[str, list[float] | None]:
        """(the cache's key: part and resolved path, the file's [size, modified time] or None when it is gone)."""
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except OSError:
            return f"{part}:{resolved}", None
        return f"{part}:{resolved}", [stat.st_size, stat.st_mtime]

    def _read(self) -> dict[str, dict[str, object]]:
        if self.cache_file is None or not self.cache_file.is_file():
            return {}
        try:
            data = json.loads(self.cache_file.read_text())
        except (OSError, ValueError) as err:
            logger.warning("Ignoring the unreadable hash cache %s: %s", self.cache_file, err)
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)} \
            if isinstance(data, dict) else {}

    def _write(self) -> None:
        """Save the cache (called with the lock held), merged with what another process may have saved meanwhile
        and written to a file of its own first, so two apps sharing a models folder never mix their writes; a
        folder that cannot be written keeps it in memory."""
        if self.cache_file is None:
            return
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            self._known = {**self._read(), **self._known}
            handle, part = tempfile.mkstemp(prefix=self.cache_file.name + ".", suffix=".part",
                                            dir=self.cache_file.parent)
            with os.fdopen(handle, "w") as file:
                json.dump(self._known, file, indent=1)
            os.replace(part, self.cache_file)
        except OSError as err:
            logger.info("Could not save the hash cache %s (%s); hashes stay in memory", self.cache_file, err)
