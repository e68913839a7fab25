"""Re-ranking stage: late interaction (MaxSim) between the query's and the sections' word pieces.

The dense stage compares one vector per question with one vector per section, which blurs a
long conversational question ("I think one of our AI tools treats some customers unfairly,
who do I report it to?") into its general drift. Late interaction keeps a vector per word
piece: each query piece is matched with its most similar piece in a section, and the section
scores the IDF-weighted mean of those best similarities (ColBERT's MaxSim). It runs zero-shot
on the embedding model's own contextual token vectors, which the index build gets from the same
forward pass as the sentence vectors, so it costs no extra model call at indexing or at query
time, only a small matrix product over the best sections of the top pages.

The vectors are stored per build in ``tokens/``, one segment per page; the file format is
:mod:`search_service.indexing.artifact_tokens`, which :meth:`TokenStore.write`, :meth:`TokenStore.listing`
and :meth:`TokenStore.load` use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from search_service.indexing.artifact_tokens import TOKENS_DIR, Segment, read_listing, read_segments, segment_key, write_segments
from search_service.indexing.embedding import QueryEncoding
from search_service.indexing.keyword import STOPWORDS

__all__ = ["TOKENS_DIR", "Segment", "TokenStore", "segment_key"]


def _is_content_piece(piece: str) -> bool:
    """Word pieces that carry meaning: continuations, and whole words that are not stopwords."""
    return piece.startswith("##") or (piece.isalnum() and piece.lower() not in STOPWORDS)


class TokenStore:
    """Word-piece vectors of every chunk, with document frequencies for IDF weights."""

    def __init__(self, segments: list[npt.NDArray[np.float16]], spans: npt.NDArray[np.int64],
                 df: npt.NDArray[np.int32]) -> None:
        self.segments = segments
        self.spans = spans  # per chunk: segment number, first row, end row
        self.df = df
        self.n_docs = len(spans)
        self.dimension = int(segments[0].shape[1]) if segments else 0

    @staticmethod
    def write(directory: Path, segments: list[Segment], dimension: int) -> int:
        """Write (or link) the segments of a build; returns the number of token vectors stored."""
        return write_segments(directory, segments, dimension)

    @staticmethod
    def listing(directory: Path) -> dict[str, list[int]]:
        """The segments a build holds, with their chunks' token counts (empty if none or unreadable)."""
        return read_listing(directory)

    @classmethod
    def load(cls, directory: Path) -> TokenStore:
        """The word-piece vectors of a build's ``tokens/`` folder, read into memory.

        Raises:
            OSError, ValueError, KeyError: a file is missing, unreadable or of the wrong shape.
        """
        arrays = read_segments(directory)
        return cls(arrays.segments, arrays.spans, arrays.df)

    @property
    def total(self) -> int:
        """The number of word-piece vectors stored."""
        return int(sum(s.shape[0] for s in self.segments))

    def rows(self, chunk: int) -> npt.NDArray[np.float16]:
        """The word-piece vectors of one chunk (float16)."""
        number, start, end = self.spans[chunk]
        rows: npt.NDArray[np.float16] = self.segments[number][start:end]
        return rows

    def idf(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Inverse document frequency of each word-piece id (unseen pieces count as in no chunk)."""
        df = np.where(ids < self.df.size, self.df[np.minimum(ids, self.df.size - 1)], 0)
        return np.log((self.n_docs + 1) / (df + 1)).astype(np.float32)

    def query_pieces(self, query: QueryEncoding) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The query's content pieces as float32 vectors, and their IDF weights summing to 1."""
        keep = np.array([_is_content_piece(p) for p in query.pieces], dtype=bool)
        if not keep.any():
            keep[:] = True
        vectors = query.tokens.vectors[keep].astype(np.float32)
        weights = self.idf(query.tokens.ids[keep].astype(np.int64))
        total = float(weights.sum())
        weights = weights / total if total > 0 else np.full(weights.size, 1.0 / max(1, weights.size), np.float32)
        return vectors, weights

    def maxsim(self, query: QueryEncoding, chunk_ids: list[int]) -> npt.NDArray[np.float32]:
        """Late-interaction score of each chunk in ``chunk_ids`` (IDF-weighted mean of best matches)."""
        import torch

        parts = [self.rows(i) for i in chunk_ids]
        present = [n for n, part in enumerate(parts) if part.shape[0]]
        if not present or query.tokens.ids.size == 0:
            return np.zeros(len(chunk_ids), dtype=np.float32)
        q, weights = self.query_pieces(query)
        # Each chunk's rows are contiguous, so slicing copies nothing. torch converts
        # float16 several times faster than numpy and multiplies on the model's own threads (numpy's
        # OpenBLAS threads would spin and slow the next query's forward pass).
        rows = torch.from_numpy(np.concatenate([parts[n] for n in present])).float()
        sims = (rows @ torch.from_numpy(q).T).numpy()  # (tokens of all chunks, query pieces)
        starts = np.cumsum([0] + [parts[n].shape[0] for n in present[:-1]])
        out = np.zeros(len(chunk_ids), dtype=np.float32)
        out[present] = np.maximum.reduceat(sims, starts, axis=0) @ weights
        return out
