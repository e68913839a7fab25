"""Re-ranking stage: late interaction (MaxSim) between the query's and the sections' word pieces.

The dense stage compares one vector per question with one vector per section, which blurs a
long conversational question ("I think one of our AI tools treats some customers unfairly,
who do I report it to?") into its general drift. Late interaction keeps a vector per word
piece: each query piece is matched with its most similar piece in a section, and the section
scores the IDF-weighted mean of those best similarities (ColBERT's MaxSim). It runs zero-shot
on the embedding model's own contextual token vectors, which the index build gets from the same
forward pass as the sentence vectors, so it costs no extra model call at indexing or at query
time, only a small matrix product over the best sections of the top pages.

Stored per build in ``tokens/``, one segment per page, named by the model and the page's content
hash: ``<key>.npy`` (float16 word-piece vectors of the page's chunks, memory-mapped) and
``<key>.ids.npy`` (their word-piece ids); ``segments.json`` lists the segments in index order
with each chunk's token count, and ``df.npy`` holds each word piece's document frequency. A
segment never changes once written, so a re-index hard-links the segments of unchanged pages
from the previous build instead of rewriting them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search_service.indexing.embedding import QueryEncoding, TokenVectors
from search_service.indexing.keyword import STOPWORDS

TOKENS_DIR = "tokens"


def _is_content_piece(piece: str) -> bool:
    """Word pieces that carry meaning: continuations, and whole words that are not stopwords."""
    return piece.startswith("##") or (piece.isalnum() and piece.lower() not in STOPWORDS)


@dataclass
class Segment:
    """The word-piece vectors of one page: either fresh, or an unchanged file of the previous build."""

    key: str
    counts: list[int]  # tokens per chunk, in chunk order
    tokens: list[TokenVectors] | None = None  # fresh vectors to write
    source: Path | None = None  # folder holding <key>.npy and <key>.ids.npy to link instead


def segment_key(model: str, page_hash: str) -> str:
    return hashlib.sha256(f"{model}\n{page_hash}".encode()).hexdigest()[:32]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links: copy instead
        shutil.copyfile(source, target)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


class TokenStore:
    """Word-piece vectors of every chunk, with document frequencies for IDF weights."""

    def __init__(self, segments: list[np.ndarray], spans: np.ndarray, df: np.ndarray) -> None:
        self.segments = segments
        self.spans = spans  # per chunk: segment number, first row, end row
        self.df = df
        self.n_docs = len(spans)
        self.dimension = segments[0].shape[1] if segments else 0

    @staticmethod
    def write(directory: Path, segments: list[Segment], dimension: int) -> int:
        """Write (or link) the segments of a build; returns the number of token vectors stored."""
        directory.mkdir(parents=True, exist_ok=True)
        listing, df, total = [], np.zeros(1, dtype=np.int64), 0
        for segment in segments:
            vectors_file, ids_file = directory / f"{segment.key}.npy", directory / f"{segment.key}.ids.npy"
            if segment.source is not None:
                _link_or_copy(segment.source / vectors_file.name, vectors_file)
                _link_or_copy(segment.source / ids_file.name, ids_file)
                ids = np.load(ids_file)
            else:
                tokens = segment.tokens or []
                matrix = (np.concatenate([t.vectors for t in tokens]) if tokens
                          else np.zeros((0, dimension), np.float16)).astype(np.float16)
                ids = np.concatenate([t.ids for t in tokens]).astype(np.int32) if tokens else np.zeros(0, np.int32)
                np.save(vectors_file, matrix)
                np.save(ids_file, ids)
                _fsync(vectors_file)
                _fsync(ids_file)
            if ids.size != sum(segment.counts):
                raise ValueError(f"segment {segment.key} holds {ids.size} tokens, its chunks {sum(segment.counts)}")
            start = 0
            for count in segment.counts:  # document frequency: each chunk counts a piece once
                chunk_ids = np.unique(ids[start: start + count])
                if chunk_ids.size and chunk_ids[-1] >= df.size:
                    df = np.concatenate([df, np.zeros(int(chunk_ids[-1]) + 1 - df.size, np.int64)])
                df[chunk_ids] += 1
                start += count
            listing.append({"key": segment.key, "counts": segment.counts})
            total += ids.size
        np.save(directory / "df.npy", df.astype(np.int32))
        (directory / "segments.json").write_text(json.dumps({"dimension": dimension, "segments": listing}))
        _fsync(directory / "df.npy")
        _fsync(directory / "segments.json")
        return total

    @staticmethod
    def listing(directory: Path) -> dict[str, list[int]]:
        """The segments a build holds, with their chunks' token counts (empty if none or unreadable)."""
        try:
            entries = json.loads((directory / "segments.json").read_text())["segments"]
            return {entry["key"]: [int(c) for c in entry["counts"]] for entry in entries}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    @classmethod
    def load(cls, directory: Path) -> TokenStore:
        listing = json.loads((directory / "segments.json").read_text())
        dimension = int(listing["dimension"])
        segments, spans = [], []
        for number, entry in enumerate(listing["segments"]):
            vectors = np.load(directory / f"{entry['key']}.npy", mmap_mode="r")
            counts = [int(c) for c in entry["counts"]]
            if vectors.ndim != 2 or vectors.shape[1] != dimension or vectors.shape[0] != sum(counts):
                raise ValueError(f"segment {entry['key']} has shape {vectors.shape}, "
                                 f"expected ({sum(counts)}, {dimension})")
            segments.append(vectors)
            start = 0
            for count in counts:
                spans.append((number, start, start + count))
                start += count
        return cls(segments, np.array(spans, dtype=np.int64).reshape(-1, 3), np.load(directory / "df.npy"))

    @property
    def total(self) -> int:
        return int(sum(s.shape[0] for s in self.segments))

    def rows(self, chunk: int) -> np.ndarray:
        """The word-piece vectors of one chunk (float16, memory-mapped)."""
        number, start, end = self.spans[chunk]
        return self.segments[number][start:end]

    def idf(self, ids: np.ndarray) -> np.ndarray:
        df = np.where(ids < self.df.size, self.df[np.minimum(ids, self.df.size - 1)], 0)
        return np.log((self.n_docs + 1) / (df + 1)).astype(np.float32)

    def query_pieces(self, query: QueryEncoding) -> tuple[np.ndarray, np.ndarray]:
        """The query's content pieces as float32 vectors, and their IDF weights summing to 1."""
        keep = np.array([_is_content_piece(p) for p in query.pieces], dtype=bool)
        if not keep.any():
            keep[:] = True
        vectors = query.tokens.vectors[keep].astype(np.float32)
        weights = self.idf(query.tokens.ids[keep].astype(np.int64))
        total = float(weights.sum())
        weights = weights / total if total > 0 else np.full(weights.size, 1.0 / max(1, weights.size), np.float32)
        return vectors, weights

    def maxsim(self, query: QueryEncoding, chunk_ids: list[int]) -> np.ndarray:
        """Late-interaction score of each chunk in ``chunk_ids`` (IDF-weighted mean of best matches)."""
        import torch

        parts = [self.rows(i) for i in chunk_ids]
        present = [n for n, part in enumerate(parts) if part.shape[0]]
        if not present or query.tokens.ids.size == 0:
            return np.zeros(len(chunk_ids), dtype=np.float32)
        q, weights = self.query_pieces(query)
        # Each chunk's rows are contiguous: slicing the memory map reads only them. torch converts
        # float16 several times faster than numpy and multiplies on the model's own threads (numpy's
        # OpenBLAS threads would spin and slow the next query's forward pass).
        rows = torch.from_numpy(np.concatenate([parts[n] for n in present])).float()
        sims = (rows @ torch.from_numpy(q).T).numpy()  # (tokens of all chunks, query pieces)
        starts = np.cumsum([0] + [parts[n].shape[0] for n in present[:-1]])
        out = np.zeros(len(chunk_ids), dtype=np.float32)
        out[present] = np.maximum.reduceat(sims, starts, axis=0) @ weights
        return out
