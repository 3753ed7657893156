"""Digests of what a fit reads: validated data and arrays (a network's
parameters: ``activation_store.state_fingerprint``). They identify equal
inputs (the same data on every torchrun rank, an exact probe or a trained
fit seen before); none of them is a security boundary."""

from __future__ import annotations

import hashlib
import os

import numpy as np

_BLOCK_BYTES = 1 << 24  # rows hashed at a time: a bounded copy of a strided array


def _hash_item(h, *parts: bytes) -> None:
    # each part length-prefixed, so that no two sequences of items hash alike
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)


def _hash_rows(h, array: np.ndarray, kind: bytes) -> None:
    _hash_item(h, kind, f"{array.dtype.str}|{array.shape}".encode())
    row_bytes = max(1, array[:1].nbytes)
    step = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, len(array), step):
        h.update(np.ascontiguousarray(array[start:start + step]).data)


def file_content_digest(path: str) -> str:
    """A digest of a file's bytes. By content: a file rewritten in place can
    keep its size and (within the file system's clock resolution, or
    restored by a copy tool) its modification time."""
    h = hashlib.blake2b(b"file-bytes\0", digest_size=16)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hash_data(h, data, *, file_contents: bool) -> None:
    storage = getattr(data, "storage", None)
    if storage is None:
        _hash_rows(h, np.asarray(data), b"table")
    elif storage == "array":
        _hash_rows(h, data.data, f"images|{data.scale!r}".encode())
    elif storage == "text":
        for text in data.data:
            _hash_item(h, b"text", text.encode("utf-8", "surrogatepass"))
    else:
        for item in data.data:
            if isinstance(item, (str, os.PathLike)):
                path = os.fspath(item)
                size = str(os.stat(path).st_size).encode()
                _hash_item(h, b"file", os.fsencode(path), size)
                if file_contents:
                    _hash_item(h, file_content_digest(path).encode())
            else:
                _hash_item(h, b"pil", item.mode.encode(), str(item.size).encode(),
                           item.tobytes())


def data_digest(data) -> int:
    """A digest of validated ``data`` (a table, ``CheckedImages`` or
    ``CheckedTexts``) that changes with the content and the position of any
    row: a 52-bit integer, exact as a float64, so ranks can compare it
    through a collective.

    Arrays count by their values (not their memory layout), texts by their
    UTF-8 bytes, PIL images by their pixels, and image files by their path and
    size, without reading them (copies of a data set on several machines
    keep their sizes, not always their modification times)."""
    h = hashlib.blake2b(digest_size=8)
    _hash_data(h, data, file_contents=False)
    return int.from_bytes(h.digest(), "little") >> 12


def fit_data_digest(data, *arrays) -> str:
    """A digest of validated ``data`` and the arrays that go with it
    (targets, sample weights, masks), for recognising a fit seen before in
    this process or another one on the same machine: image files count by
    path and content."""
    h = hashlib.blake2b(b"fit-data", digest_size=16)
    _hash_data(h, data, file_contents=True)
    for array in arrays:
        _hash_rows(h, np.asarray(array), b"array")
    return h.hexdigest()


def arrays_digest(header: str, *arrays) -> str:
    """A digest of ``header`` and ``arrays`` (by dtype, shape and values)."""
    h = hashlib.blake2b(header.encode(), digest_size=16)
    for array in arrays:
        _hash_rows(h, np.asarray(array), b"array")
    return h.hexdigest()
