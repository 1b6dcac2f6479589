"""Checkpoint hashes as AUTOMATIC1111 writes them: the file's SHA-256, whose first 10 hex digits are the PNG's
"Model hash" (how A1111 and Civitai recognise a checkpoint). A file is read once per version (size and modified
time): the hashes are kept in a small JSON file, so a restart does not read multi-gigabyte files again, and a file
is hashed in a background thread, so no request waits for it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

SHORT_HASH_DIGITS = 10  # A1111's "Model hash": the first 10 hex digits of the SHA-256 ("AutoV2" on Civitai)
CHUNK_BYTES = 1 << 20


def short_hash(sha256: str | None) -> str | None:
    """The PNG's "Model hash" of a full SHA-256 (None stays None)."""
    return sha256[:SHORT_HASH_DIGITS] if sha256 else None


def sha256_of(path: Path) -> str:
    """The SHA-256 of the file at `path`, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
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

    def known(self, path: str | Path) -> str | None:
        """The file's SHA-256 when it was hashed in its present version, else None (nothing is read)."""
        key, stamp = self._stamp(path)
        with self._lock:
            entry = self._known.get(key)
        return str(entry["sha256"]) if entry and stamp and entry.get("stamp") == stamp else None

    def start(self, path: str | Path) -> threading.Thread | None:
        """Hash the file in a background thread unless it is known or being hashed; the thread, or None."""
        key, _ = self._stamp(path)
        with self._lock:
            if key in self._hashing:
                return None
            self._hashing.add(key)
        if self.known(path):
            with self._lock:
                self._hashing.discard(key)
            return None
        thread = threading.Thread(target=self._hash, args=(Path(path),), name="file-hash", daemon=True)
        thread.start()
        return thread

    def _hash(self, path: Path) -> None:
        key, stamp = self._stamp(path)
        try:
            sha256 = sha256_of(path)
        except OSError as err:
            logger.warning("Could not hash %s: %s", path.name, err)
            return
        finally:
            with self._lock:
                self._hashing.discard(key)
        if self._stamp(path)[1] != stamp:  # changed while it was read: hashed again when next used
            return
        logger.info("Model hash of %s: %s", path.name, short_hash(sha256))
        with self._lock:
            self._known[key] = {"stamp": stamp, "sha256": sha256}
            self._write()

    @staticmethod
    def _stamp(path: str | Path) -> tuple[str, list[float] | None]:
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except OSError:
            return str(resolved), None
        return str(resolved), [stat.st_size, stat.st_mtime]

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
        """Save the cache (called with the lock held); a folder that cannot be written keeps it in memory."""
        if self.cache_file is None:
            return
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            part = self.cache_file.with_name(self.cache_file.name + ".part")
            part.write_text(json.dumps(self._known, indent=1))
            os.replace(part, self.cache_file)
        except OSError as err:
            logger.info("Could not save the hash cache %s (%s); hashes stay in memory", self.cache_file, err)
