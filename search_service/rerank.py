"""Re-ranking stage: late interaction (MaxSim) between the query's and the sections' word pieces.

The dense stage compares one vector per question with one vector per section, which blurs a
long conversational question ("I think one of our AI tools treats some customers unfairly,
who do I report it to?") into its general drift. Late interaction keeps a vector per word
piece: each query piece is matched with its most similar piece in a section, and the section
scores the IDF-weighted mean of those best similarities (ColBERT's MaxSim). It runs zero-shot
on the embedding model's own contextual token vectors, which the index build gets from the same
forward pass as the sentence vectors, so it costs no extra model call at indexing or at query
time, only a small matrix product over the best sections of the top pages.

Stored per build (``tokens/``): the word-piece vectors of every chunk as one float16 matrix
(memory-mapped), the offsets of each chunk's rows, and each word piece's document frequency.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .embedding import QueryEncoding, TokenVectors
from .keyword import STOPWORDS

TOKENS_DIR = "tokens"


def _is_content_piece(piece: str) -> bool:
    """Word pieces that carry meaning: continuations, and whole words that are not stopwords."""
    return piece.startswith("##") or (piece.isalnum() and piece.lower() not in STOPWORDS)


class TokenStore:
    """Word-piece vectors of every chunk, with document frequencies for IDF weights."""

    def __init__(self, vectors: np.ndarray, offsets: np.ndarray, df: np.ndarray) -> None:
        self.vectors = vectors
        self.offsets = offsets
        self.df = df
        self.n_docs = len(offsets) - 1

    @staticmethod
    def write(directory: Path, tokens: list[TokenVectors], dimension: int) -> None:
        """Write the store for chunks in index order (streamed into a memory-mapped file)."""
        directory.mkdir(parents=True, exist_ok=True)
        sizes = np.array([t.ids.size for t in tokens], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        matrix = np.lib.format.open_memmap(directory / "vectors.npy", mode="w+", dtype=np.float16,
                                           shape=(int(offsets[-1]), dimension))
        vocab = max((int(t.ids.max()) + 1 for t in tokens if t.ids.size), default=1)
        df = np.zeros(vocab, dtype=np.int32)
        for start, t in zip(offsets[:-1], tokens, strict=True):
            matrix[start: start + t.ids.size] = t.vectors
            df[np.unique(t.ids)] += 1
        matrix.flush()
        del matrix
        np.save(directory / "offsets.npy", offsets)
        np.save(directory / "df.npy", df)

    @classmethod
    def load(cls, directory: Path) -> TokenStore:
        vectors = np.load(directory / "vectors.npy", mmap_mode="r")
        offsets = np.load(directory / "offsets.npy")
        df = np.load(directory / "df.npy")
        if offsets.ndim != 1 or offsets.size == 0 or int(offsets[-1]) != vectors.shape[0]:
            raise ValueError(f"token offsets end at {int(offsets[-1]) if offsets.size else None}, "
                             f"but {vectors.shape[0]} token vectors are stored")
        return cls(vectors, offsets, df)

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

        spans = [(int(self.offsets[i]), int(self.offsets[i + 1])) for i in chunk_ids]
        present = [(a, b) for a, b in spans if b > a]
        if not present or query.tokens.ids.size == 0:
            return np.zeros(len(chunk_ids), dtype=np.float32)
        q, weights = self.query_pieces(query)
        # Each chunk's rows are contiguous: slicing the memory map reads only them. torch converts
        # float16 several times faster than numpy and multiplies on the model's own threads (numpy's
        # OpenBLAS threads would spin and slow the next query's forward pass).
        rows = torch.from_numpy(np.concatenate([self.vectors[a:b] for a, b in present])).float()
        sims = (rows @ torch.from_numpy(q).T).numpy()  # (tokens of all chunks, query pieces)
        starts = np.cumsum([0] + [b - a for a, b in present[:-1]])
        best = np.maximum.reduceat(sims, starts, axis=0) @ weights
        out = np.zeros(len(chunk_ids), dtype=np.float32)
        out[[n for n, (a, b) in enumerate(spans) if b > a]] = best
        return out
