"""The index build in four stages, run one at a time under a lock on the index folder.

    plan     :func:`~search_service.indexing.plan.plan_build`: load the content, hash the pages, reuse the
             previous build's chunks, and tell whether the previous build is already up to date
    embed    :func:`embed_missing`: embed what the cache lacks, committing to the cache as it goes
    write    :func:`write_build`: write the artifact (format in ``artifact.py``) into a hidden build folder
    publish  :func:`~search_service.indexing.publish.publish_build`: rename, swap ``current``, prune

Unchanged chunks are never re-embedded (the cache holds their vectors by content hash) and the
word-piece files of unchanged pages are hard-linked from the previous build. A build killed at
any point leaves the previous index intact and loadable.

Loading lives in ``artifact.py``; its public names are re-exported here for callers that import
them from this module.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from search_service.content import ContentError
from search_service.indexing.artifact import (
    BUILDS_DIR,
    CACHE_FILE,
    FORMAT_VERSION,
    LOCK_FILE,
    IndexType,
    Manifest,
    PageHashes,
    SearchIndex,
    current_build,
    fsync_dir,
    load_index,
    make_dense_index,
    page_document,
    write_checksums,
    write_chunks,
    write_dense,
    write_keyword_indexes,
    write_manifest,
    write_page_hashes,
    write_pages,
)
from search_service.indexing.artifact_tokens import TOKENS_DIR, Segment, write_segments
from search_service.indexing.chunking import CHUNKER_VERSION, Chunk
from search_service.indexing.embedding import DocumentEncoder, EmbeddingCache, TokenVectors
from search_service.indexing.errors import IndexBuildError, IndexLoadError
from search_service.indexing.plan import BuildPlan, content_hash, plan_build
from search_service.indexing.publish import publish_build, remove_unfinished_builds, stage_build

__all__ = [
    "FORMAT_VERSION",
    "BuildReport",
    "IndexBuildError",
    "IndexLoadError",
    "ProgressHooks",
    "SearchIndex",
    "build_index",
    "content_hash",
    "current_build",
    "embed_missing",
    "load_index",
    "page_document",
    "write_build",
]

# Model batches per cache commit: a killed build loses at most this much work, and commits stay few.
BATCHES_PER_COMMIT = 2

_make_faiss = make_dense_index  # the name benchmarks/synthetic.py imports


@dataclass
class BuildReport:
    """What ``kb index`` did."""

    pages: int
    chunks: int
    embedded: int
    cached: int
    removed: int
    seconds: float
    build_dir: str
    errors: list[ContentError] = field(default_factory=list)
    unchanged: bool = False
    excluded: int = 0  # pages kept out of search (front matter ``search: exclude`` or KB_SEARCH_EXCLUDE)


@dataclass
class ProgressHooks:
    """Callbacks for long work: ``start(total)`` then ``advance(n)`` per embedded batch."""

    start: Callable[[int], None] = lambda total: None
    advance: Callable[[int], None] = lambda n: None


class BuildLock:
    """An exclusive lock so two `kb index` runs never write the same folder at once."""

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / LOCK_FILE
        self._handle: TextIO | None = None

    def __enter__(self) -> BuildLock:
        handle = open(self.path, "w")  # held open, and locked, until __exit__
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise IndexBuildError(f"another `kb index` is building {self.path.parent}; wait for it to finish") from exc
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


@dataclass
class EmbeddedChunks:
    """The embed stage's output: vectors by content hash, and what it cost."""

    vectors: dict[str, npt.NDArray[np.float32]]  # every chunk's
    tokens: dict[str, TokenVectors]  # the chunks of pages whose word-piece segment is not linked
    embedded: int  # texts sent to the model
    removed: int  # cache entries of chunks gone from the content

    def matrix(self, chunks: list[Chunk], dimension: int) -> npt.NDArray[np.float32]:
        """The chunks' vectors as rows, in index order."""
        if not chunks:
            return np.zeros((0, dimension), np.float32)
        return np.vstack([self.vectors[chunk.content_hash] for chunk in chunks]).astype(np.float32)


def embed_missing(plan: BuildPlan, embedder: DocumentEncoder, cache: EmbeddingCache, progress: ProgressHooks) -> EmbeddedChunks:
    """Vectors for every chunk of ``plan``, from the cache or, for what it lacks, from the model.

    Missing texts are embedded shortest first and committed to the cache batch by batch, so a
    killed build keeps its work; then the cache forgets chunks that no longer exist.
    """
    hashes = [chunk.content_hash for chunk in plan.chunks]
    need_tokens = plan.hashes_needing_tokens()
    vectors = cache.get_many(embedder.name, hashes, embedder.dimension)
    tokens = cache.get_tokens(embedder.name, sorted(need_tokens), embedder.dimension)
    texts = {chunk.content_hash: chunk.embed_text() for chunk in plan.chunks}
    # Similar lengths in a batch mean little padding: embed shortest to longest.
    missing = sorted(dict.fromkeys(h for h in hashes if h not in vectors or (h in need_tokens and h not in tokens)),
                     key=lambda h: len(texts[h]))
    progress.start(len(missing))
    step = embedder.batch_size * BATCHES_PER_COMMIT
    for start in range(0, len(missing), step):
        part = missing[start: start + step]
        part_vectors, part_tokens = embedder.encode_documents([texts[h] for h in part], on_batch=progress.advance)
        fresh = dict(zip(part, part_vectors, strict=True))
        fresh_tokens = dict(zip(part, part_tokens, strict=True))
        cache.put_many(embedder.name, fresh, fresh_tokens)
        vectors.update(fresh)
        tokens.update(fresh_tokens)
    removed = cache.prune(embedder.name, set(hashes))
    return EmbeddedChunks(vectors, tokens, embedded=len(missing), removed=removed)


def _token_segments(plan: BuildPlan, embedded: EmbeddedChunks) -> list[Segment]:
    """Each page's word-piece segment: linked from the previous build when unchanged, else fresh."""
    segments = []
    for page in plan.pages:
        key = plan.segment_key(page)
        if key in plan.linkable_segments:
            segments.append(Segment(key, plan.linkable_segments[key], source=plan.previous_tokens))
        else:
            tokens = [embedded.tokens[chunk.content_hash] for chunk in page.chunks]
            segments.append(Segment(key, [t.ids.size for t in tokens], tokens=tokens))
    return segments


def _manifest(plan: BuildPlan, embedded: EmbeddedChunks, *, dimension: int, token_vectors: int, seconds: float) -> Manifest:
    chunks = len(plan.chunks)
    return Manifest(
        format=FORMAT_VERSION,
        model=plan.model,
        dimension=dimension,
        chunker_version=CHUNKER_VERSION,
        index_type=plan.index_type,
        content_hash=plan.content_hash,
        pages=len(plan.pages),
        excluded_pages=plan.excluded,
        tuning=plan.tuning,
        chunks=chunks,
        embedded=embedded.embedded,
        cached=chunks - embedded.embedded,
        token_vectors=token_vectors,
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        build_seconds=round(seconds, 3),
    )


def write_build(folder: Path, plan: BuildPlan, embedded: EmbeddedChunks, *, dimension: int, started: float) -> None:
    """Write every file of the build into ``folder`` and flush it to disk; the manifest, then the checksums
    of every file, come last.

    ``started`` is the build's ``time.perf_counter()`` start, for the manifest's ``build_seconds``.
    """
    chunks = plan.chunks
    write_dense(folder, embedded.matrix(chunks, dimension), plan.index_type)
    token_vectors = write_segments(folder / TOKENS_DIR, _token_segments(plan, embedded), dimension)
    write_keyword_indexes(folder, chunks, [page.page for page in plan.pages])
    write_chunks(folder, chunks)
    write_pages(folder, plan.page_meta)
    write_page_hashes(folder, PageHashes(chunker_version=CHUNKER_VERSION,
                                         pages={page.page.path: page.page_hash for page in plan.pages}))
    write_manifest(folder, _manifest(plan, embedded, dimension=dimension, token_vectors=token_vectors,
                                     seconds=time.perf_counter() - started))
    write_checksums(folder)
    fsync_dir(folder)


def build_index(
    content_dir: Path,
    index_dir: Path,
    embedder: DocumentEncoder,
    *,
    index_type: IndexType = "flat",
    progress: ProgressHooks | None = None,
    exclude: Sequence[str] = (),
) -> BuildReport:
    """Build (incrementally) the search index of ``content_dir`` into ``index_dir``.

    Unchanged chunks reuse cached vectors; malformed pages are reported and skipped. Pages whose
    front matter says ``search: {exclude: true}``, or whose path matches one of the ``exclude``
    glob patterns, stay on the site but out of the index.

    Raises:
        IndexBuildError: another build holds the lock, or the content's tuning file is unusable.
        FileNotFoundError: ``content_dir`` does not exist.
    """
    started = time.perf_counter()
    progress = progress or ProgressHooks()
    index_dir = Path(index_dir)
    (index_dir / BUILDS_DIR).mkdir(parents=True, exist_ok=True)
    with BuildLock(index_dir):
        remove_unfinished_builds(index_dir)
        plan = plan_build(content_dir, index_dir, model=embedder.name, index_type=index_type, exclude=exclude)
        chunks = len(plan.chunks)
        if plan.up_to_date:
            return BuildReport(len(plan.pages), chunks, 0, chunks, 0, time.perf_counter() - started,
                               str(plan.previous), plan.errors, unchanged=True, excluded=plan.excluded)
        with EmbeddingCache(index_dir / CACHE_FILE) as cache:
            embedded = embed_missing(plan, embedder, cache, progress)
        staged = stage_build(index_dir)
        write_build(staged.folder, plan, embedded, dimension=embedder.dimension, started=started)
        final = publish_build(staged, plan.previous)
        return BuildReport(len(plan.pages), chunks, embedded.embedded, chunks - embedded.embedded, embedded.removed,
                           time.perf_counter() - started, str(final), plan.errors, excluded=plan.excluded)
