"""Checkpoint hashes as A1111 writes them: the SHA-256 of the file, read once per file version, remembered across
restarts in a JSON file, hashed in the background."""
from __future__ import annotations

import hashlib
import os

from engine.file_hashes import TENSOR_DATA, FileHashes, sha256_of, short_hash


def test_a_file_is_hashed_once_per_version_and_remembered(tmp_path):
    model = tmp_path / "model.safetensors"
    model.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several read pieces and a short last one
    cache = tmp_path / "cache" / "hashes.json"
    hashes = FileHashes(cache)
    assert hashes.known(model) is None
    hashes.start(model).join(10)
    expected = hashlib.sha256(model.read_bytes()).hexdigest()
    assert hashes.known(model) == expected and short_hash(expected) == expected[:10]
    assert hashes.start(model) is None  # known: not read again
    assert FileHashes(cache).known(model) == expected  # a restart reads the cache, not the file

    model.write_bytes(b"another version")  # size and time change: unknown until hashed again
    assert hashes.known(model) is None and FileHashes(cache).known(model) is None
    hashes.start(model).join(10)
    assert hashes.known(model) == hashlib.sha256(b"another version").hexdigest()


def test_a_bad_cache_or_a_missing_file_or_an_unwritable_folder_is_no_error(tmp_path):
    cache = tmp_path / "hashes.json"
    cache.write_text("{not json")
    hashes = FileHashes(cache)
    assert hashes.known(tmp_path / "missing.safetensors") is None
    hashes.start(tmp_path / "missing.safetensors").join(10)  # logged, nothing remembered
    assert hashes.known(tmp_path / "missing.safetensors") is None
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"weights")
    in_memory = FileHashes(blocker / "hashes.json")  # cannot be saved: kept in memory
    in_memory.start(model).join(10)
    assert in_memory.known(model) == hashlib.sha256(b"weights").hexdigest()
    assert short_hash(None) is None


def test_a_loras_hash_covers_its_tensor_data_only(tmp_path):
    header = b'{"__metadata__": {"ss_output_name": "x"}}'
    data = os.urandom(2 * 1024 * 1024 + 5)
    lora = tmp_path / "x.safetensors"
    lora.write_bytes(len(header).to_bytes(8, "little") + header + data)
    assert sha256_of(lora, TENSOR_DATA) == hashlib.sha256(data).hexdigest()  # the header (metadata) left out
    assert sha256_of(lora) == hashlib.sha256(lora.read_bytes()).hexdigest()
    hashes = FileHashes(None)
    hashes.start(lora, TENSOR_DATA).join(10)
    assert hashes.known(lora, TENSOR_DATA) == hashlib.sha256(data).hexdigest() and hashes.known(lora) is None
