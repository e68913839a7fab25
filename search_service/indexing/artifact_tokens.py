"""The ``tokens/`` folder of a build: the on-disk format of the word-piece vectors.

One segment per page, named by the model and the page's content hash (:func:`segment_key`):
``<key>.npy`` holds the float16 word-piece vectors of the page's chunks (read into memory) and
``<key>.ids.npy`` their int32 word-piece ids. ``segments.json`` lists the segments in index order
with each chunk's token count (``{"dimension": d, "segments": [{"key": k, "counts": [n, ...]}]}``),
and ``df.npy`` holds each word piece's document frequency (int32, indexed by word-piece id). A
segment never changes once written, so a re-index hard-links the segments of unchanged pages
from the previous build instead of rewriting them.

:class:`~search_service.indexing.tokens.TokenStore` scores with what :func:`read_segments` returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from search_service.indexing.embedding import TokenVectors

TOKENS_DIR = "tokens"  # inside a build folder
SEGMENTS_FILE = "segments.json"
DF_FILE = "df.npy"
VECTORS_SUFFIX = ".npy"
IDS_SUFFIX = ".ids.npy"
# Long enough that two pages never collide, short enough to keep file names readable.
SEGMENT_KEY_LENGTH = 32


@dataclass
class Segment:
    """The word-piece vectors of one page: either fresh, or an unchanged file of the previous build."""

    key: str
    counts: list[int]  # tokens per chunk, in chunk order
    tokens: list[TokenVectors] | None = None  # fresh vectors to write
    source: Path | None = None  # folder holding <key>.npy and <key>.ids.npy to link instead


@dataclass
class TokenArrays:
    """What a ``tokens/`` folder holds, read back: one in-memory matrix per segment, spans, frequencies."""

    segments: list[npt.NDArray[np.float16]]
    spans: npt.NDArray[np.int64]  # per chunk: segment number, first row, end row
    df: npt.NDArray[np.int32]


def segment_key(model: str, page_hash: str) -> str:
    """The name of a page's segment: the same model and page content give the same files."""
    return hashlib.sha256(f"{model}\n{page_hash}".encode()).hexdigest()[:SEGMENT_KEY_LENGTH]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links: copy instead
        shutil.copyfile(source, target)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _write_segment(directory: Path, segment: Segment, dimension: int) -> npt.NDArray[np.int32]:
    """Write (or hard-link) one segment's two files; returns its word-piece ids."""
    vectors_file, ids_file = directory / f"{segment.key}{VECTORS_SUFFIX}", directory / f"{segment.key}{IDS_SUFFIX}"
    if segment.source is not None:
        _link_or_copy(segment.source / vectors_file.name, vectors_file)
        _link_or_copy(segment.source / ids_file.name, ids_file)
        linked: npt.NDArray[np.int32] = np.load(ids_file)
        return linked
    tokens = segment.tokens or []
    matrix = (np.concatenate([t.vectors for t in tokens]) if tokens
              else np.zeros((0, dimension), np.float16)).astype(np.float16)
    ids = np.concatenate([t.ids for t in tokens]).astype(np.int32) if tokens else np.zeros(0, np.int32)
    np.save(vectors_file, matrix)
    np.save(ids_file, ids)
    _fsync(vectors_file)
    _fsync(ids_file)
    return ids


def _count_documents(df: npt.NDArray[np.int64], ids: npt.NDArray[np.int32], counts: list[int]) -> npt.NDArray[np.int64]:
    """Add one segment's chunks to the document frequencies: each chunk counts a word piece once."""
    start = 0
    for count in counts:
        chunk_ids = np.unique(ids[start: start + count])
        if chunk_ids.size and chunk_ids[-1] >= df.size:
            df = np.concatenate([df, np.zeros(int(chunk_ids[-1]) + 1 - df.size, np.int64)])
        df[chunk_ids] += 1
        start += count
    return df


def write_segments(directory: Path, segments: list[Segment], dimension: int) -> int:
    """Write (or link) the segments of a build, then their listing and document frequencies.

    Returns:
        The number of word-piece vectors stored.

    Raises:
        ValueError: a segment's files hold a different number of tokens than its chunks' counts.
    """
    directory.mkdir(parents=True, exist_ok=True)
    listing: list[dict[str, object]] = []
    df, total = np.zeros(1, dtype=np.int64), 0
    for segment in segments:
        ids = _write_segment(directory, segment, dimension)
        if ids.size != sum(segment.counts):
            raise ValueError(f"segment {segment.key} holds {ids.size} tokens, its chunks {sum(segment.counts)}")
        df = _count_documents(df, ids, segment.counts)
        listing.append({"key": segment.key, "counts": segment.counts})
        total += ids.size
    np.save(directory / DF_FILE, df.astype(np.int32))
    (directory / SEGMENTS_FILE).write_text(json.dumps({"dimension": dimension, "segments": listing}))
    _fsync(directory / DF_FILE)
    _fsync(directory / SEGMENTS_FILE)
    return total


def read_listing(directory: Path) -> dict[str, list[int]]:
    """The segments a ``tokens/`` folder holds, with their chunks' token counts (empty if none or unreadable)."""
    try:
        entries = json.loads((directory / SEGMENTS_FILE).read_text())["segments"]
        return {entry["key"]: [int(c) for c in entry["counts"]] for entry in entries}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def read_segments(directory: Path) -> TokenArrays:
    """Read a ``tokens/`` folder into memory.

    Not memory-mapped: a mapped file truncated or rewritten on disk while served kills the process
    with SIGBUS, and the vectors are small (37 MB for the 49 playbooks, read in well under a second).

    Raises:
        OSError, ValueError, KeyError: a file is missing, unreadable or of the wrong shape.
    """
    listing = json.loads((directory / SEGMENTS_FILE).read_text())
    dimension = int(listing["dimension"])
    segments: list[npt.NDArray[np.float16]] = []
    spans: list[tuple[int, int, int]] = []
    for number, entry in enumerate(listing["segments"]):
        vectors = np.load(directory / f"{entry['key']}{VECTORS_SUFFIX}")
        counts = [int(c) for c in entry["counts"]]
        if vectors.ndim != 2 or vectors.shape[1] != dimension or vectors.shape[0] != sum(counts):
            raise ValueError(f"segment {entry['key']} has shape {vectors.shape}, "
                             f"expected ({sum(counts)}, {dimension})")
        segments.append(vectors)
        start = 0
        for count in counts:
            spans.append((number, start, start + count))
            start += count
    return TokenArrays(segments, np.array(spans, dtype=np.int64).reshape(-1, 3), np.load(directory / DF_FILE))
