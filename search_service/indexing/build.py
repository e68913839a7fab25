"""The index artifact: FAISS + BM25 + chunk metadata + manifest, built incrementally and swapped atomically.

Layout of an index folder::

    <index_dir>/current          symlink to the live build (replaced atomically)
    <index_dir>/builds/<id>/     manifest.json, chunks.jsonl, pages.json, dense.faiss, bm25/, bm25-pages/,
                                 tokens/ (word-piece vectors per page for the late-interaction re-ranker;
                                 unchanged pages' files are hard links to the previous build's)
    <index_dir>/cache.sqlite     embeddings and word-piece vectors by (model, content hash), shared by builds

A build is written to a temporary folder, renamed, and only then made current, so a build
killed at any point leaves the previous index intact and loadable.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from search_service.content import ContentError, Page, PageMeta, excluded_from_search, load_content
from search_service.indexing.chunking import CHUNKER_VERSION, Chunk, chunk_page, page_profile
from search_service.indexing.embedding import Embedder, EmbeddingCache
from search_service.indexing.keyword import KeywordIndex
from search_service.indexing.tokens import TOKENS_DIR, Segment, TokenStore, segment_key
from search_service.settings import load_tuning

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 3: word-piece vectors for late interaction


class IndexLoadError(RuntimeError):
    """The index is missing, corrupt or does not match the configured model."""


class IndexBuildError(RuntimeError):
    """The index cannot be built now (e.g. another build holds the lock)."""





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


def _chunk_to_json(chunk: Chunk) -> dict:
    data = asdict(chunk)
    data["id"] = chunk.id
    return data


def _chunk_from_json(data: dict) -> Chunk:
    data = dict(data)
    data.pop("id", None)
    return Chunk(**data)


def _page_hash(page: Page) -> str:
    return hashlib.sha256(f"{CHUNKER_VERSION}\n{page.meta.model_dump_json()}\n{page.body}".encode()).hexdigest()


def _previous_chunks(build: Path | None) -> dict[tuple[str, str], list[Chunk]]:
    """Chunks of the previous build keyed by (page, page hash), to skip re-chunking unchanged pages."""
    if build is None:
        return {}
    try:
        hashes = json.loads((build / "page-hashes.json").read_text(encoding="utf-8"))
        if hashes.get("chunker_version") != CHUNKER_VERSION:
            return {}
        by_page: dict[str, list[Chunk]] = {}
        with open(build / "chunks.jsonl", encoding="utf-8") as handle:
            for line in handle:
                chunk = _chunk_from_json(json.loads(line))
                by_page.setdefault(chunk.page_path, []).append(chunk)
    except (OSError, ValueError, TypeError):
        return {}  # no usable previous build: chunk everything
    return {(path, digest): by_page[path] for path, digest in hashes["pages"].items() if path in by_page}


def page_document(page: Page) -> str:
    """The text of a whole page for page-level keyword search."""
    return f"{page.meta.title}\n{page.meta.summary}\n{page.body}"


def content_hash(chunks: list[Chunk], pages: dict[str, PageMeta], tuning: dict | None = None) -> str:
    digest = hashlib.sha256()
    if tuning is not None:  # the corpus's ranking weights travel with its index
        digest.update(json.dumps(tuning, sort_keys=True).encode())
    for path in sorted(pages):
        digest.update(path.encode())
        digest.update(pages[path].model_dump_json().encode())
    for chunk in chunks:
        digest.update(chunk.content_hash.encode())
    return digest.hexdigest()


def _make_faiss(vectors: np.ndarray, index_type: str) -> faiss.Index:
    dimension = vectors.shape[1]
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    else:
        index = faiss.IndexFlatIP(dimension)
    if len(vectors):
        index.add(vectors)
    return index


class _BuildLock:
    """An exclusive lock so two `kb index` runs never write the same folder at once."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".build.lock"

    def __enter__(self):
        self.handle = open(self.path, "w")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self.handle.close()
            raise IndexBuildError(f"another `kb index` is building {self.path.parent}; wait for it to finish") from exc
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def current_build(index_dir: Path) -> Path | None:
    """The live build folder, or None when there is no index yet."""
    link = Path(index_dir) / "current"
    if not link.exists():
        return None
    return link.resolve()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, default=str)
        handle.flush()
        os.fsync(handle.fileno())


def build_index(
    content_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    *,
    index_type: str = "flat",
    progress: ProgressHooks | None = None,
    exclude: Sequence[str] = (),
) -> BuildReport:
    """Build (incrementally) the search index of ``content_dir`` into ``index_dir``.

    Unchanged chunks reuse cached vectors; malformed pages are reported and skipped. Pages whose
    front matter says ``search: {exclude: true}``, or whose path matches one of the ``exclude``
    glob patterns, stay on the site but out of the index.
    """
    started = time.perf_counter()
    progress = progress or ProgressHooks()
    index_dir = Path(index_dir)
    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    with _BuildLock(index_dir):
        for leftover in builds.glob(".tmp-*"):  # from a build that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        content = load_content(content_dir)
        try:
            tuning = load_tuning(content_dir)
        except ValueError as exc:
            raise IndexBuildError(str(exc)) from exc
        tuning_json = tuning.model_dump(mode="json") if tuning is not None else None
        searchable = [page for page in content.pages if not excluded_from_search(page, exclude)]
        excluded = len(content.pages) - len(searchable)
        content.pages = searchable
        pages = {page.path: page.meta for page in content.pages}
        previous = current_build(index_dir)
        reusable = _previous_chunks(previous)
        page_hashes: dict[str, str] = {}
        chunks: list[Chunk] = []
        page_chunk_lists: list[list[Chunk]] = []
        for page in content.pages:
            page_hashes[page.path] = _page_hash(page)
            # An unchanged page keeps its chunks from the previous build: no re-parsing.
            page_chunks = reusable.get((page.path, page_hashes[page.path]))
            if page_chunks is None:
                body_chunks = chunk_page(page)
                page_chunks = [page_profile(page, body_chunks), *body_chunks]
            chunks.extend(page_chunks)
            page_chunk_lists.append(page_chunks)
        digest = content_hash(chunks, pages, tuning_json)

        if previous is not None:
            try:
                manifest = json.loads((previous / "manifest.json").read_text())
                if (manifest.get("content_hash") == digest and manifest.get("model") == embedder.name
                        and manifest.get("format") == FORMAT_VERSION
                        and manifest.get("index_type") == index_type and manifest.get("chunker_version") == CHUNKER_VERSION):
                    return BuildReport(len(pages), len(chunks), 0, len(chunks), 0, time.perf_counter() - started,
                                       str(previous), content.errors, unchanged=True, excluded=excluded)
            except (OSError, ValueError):
                logger.warning("previous index at %s is unreadable; rebuilding from scratch", previous)

        # Word-piece vectors of unchanged pages are linked from the previous build, not re-read.
        keys = [segment_key(embedder.name, page_hashes[page.path]) for page in content.pages]
        previous_tokens = previous / TOKENS_DIR if previous is not None else None
        linkable = TokenStore.listing(previous_tokens) if previous_tokens is not None else {}
        cache = EmbeddingCache(index_dir / "cache.sqlite")
        try:
            hashes = [chunk.content_hash for chunk in chunks]
            known = cache.get_many(embedder.name, hashes, embedder.dimension)
            need_tokens = {c.content_hash for key, page_chunks in zip(keys, page_chunk_lists, strict=True)
                           if key not in linkable for c in page_chunks}
            known_tokens = cache.get_tokens(embedder.name, sorted(need_tokens), embedder.dimension)
            texts = {chunk.content_hash: chunk.embed_text() for chunk in chunks}
            # Similar lengths in a batch mean little padding: embed shortest to longest.
            missing = sorted(dict.fromkeys(h for h in hashes if h not in known or (h in need_tokens and h not in known_tokens)),
                             key=lambda h: len(texts[h]))
            progress.start(len(missing))
            # Commit vectors to the cache as they come, so a killed build keeps its work.
            step = embedder.batch_size * 2
            for start in range(0, len(missing), step):
                part = missing[start: start + step]
                vectors, tokens = embedder.encode_documents([texts[h] for h in part], on_batch=progress.advance)
                fresh = dict(zip(part, vectors, strict=True))
                fresh_tokens = dict(zip(part, tokens, strict=True))
                cache.put_many(embedder.name, fresh, fresh_tokens)
                known.update(fresh)
                known_tokens.update(fresh_tokens)
            removed = cache.prune(embedder.name, set(hashes))
        finally:
            cache.close()
        matrix = np.vstack([known[h] for h in hashes]).astype(np.float32) if chunks else np.zeros((0, embedder.dimension), np.float32)

        build_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]
        tmp = builds / f".tmp-{build_id}"
        tmp.mkdir()
        faiss.write_index(_make_faiss(matrix, index_type), str(tmp / "dense.faiss"))
        segments = []
        for key, page_chunks in zip(keys, page_chunk_lists, strict=True):
            if key in linkable:
                segments.append(Segment(key, linkable[key], source=previous_tokens))
            else:
                tokens = [known_tokens[c.content_hash] for c in page_chunks]
                segments.append(Segment(key, [t.ids.size for t in tokens], tokens=tokens))
        token_vectors = TokenStore.write(tmp / TOKENS_DIR, segments, embedder.dimension)
        KeywordIndex.build([c.embed_text() for c in chunks] or [""]).save(tmp / "bm25")
        # Page-level BM25: a question's words are often spread over several sections of one page.
        KeywordIndex.build([page_document(page) for page in content.pages] or [""]).save(tmp / "bm25-pages")
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(json.dumps(_chunk_to_json(chunk), ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # Page order here is the row order of the page-level BM25 index.
        _write_json(tmp / "pages.json", {path: meta.model_dump(mode="json") for path, meta in pages.items()})
        _write_json(tmp / "page-hashes.json", {"chunker_version": CHUNKER_VERSION, "pages": page_hashes})
        seconds = time.perf_counter() - started
        _write_json(tmp / "manifest.json", {
            "format": FORMAT_VERSION,
            "model": embedder.name,
            "dimension": embedder.dimension,
            "chunker_version": CHUNKER_VERSION,
            "index_type": index_type,
            "content_hash": digest,
            "pages": len(pages),
            "excluded_pages": excluded,
            "tuning": tuning_json,
            "chunks": len(chunks),
            "embedded": len(missing),
            "cached": len(chunks) - len(missing),
            "token_vectors": token_vectors,
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "build_seconds": round(seconds, 3),
        })
        _fsync_dir(tmp)
        final = builds / build_id
        os.rename(tmp, final)
        _fsync_dir(builds)
        link_tmp = index_dir / f".current-{build_id}"
        os.symlink(Path("builds") / build_id, link_tmp)
        os.replace(link_tmp, index_dir / "current")  # the atomic swap
        _fsync_dir(index_dir)
        # Keep the new build and the one it replaced (a service may still be reading it). By name,
        # not by sort order: builds finished within the same second used to sort at random.
        keep = {final.name} | ({previous.name} if previous is not None else set())
        for old in builds.iterdir():
            if not old.name.startswith(".") and old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
        return BuildReport(len(pages), len(chunks), len(missing), len(chunks) - len(missing), removed,
                           time.perf_counter() - started, str(final), content.errors, excluded=excluded)


@dataclass
class SearchIndex:
    """A loaded index: chunks, page metadata, dense and keyword indexes, manifest."""

    chunks: list[Chunk]
    pages: dict[str, PageMeta]
    dense: faiss.Index
    keyword: KeywordIndex
    page_keyword: KeywordIndex
    manifest: dict
    path: Path
    tokens: TokenStore | None = None  # word-piece vectors; None disables the late-interaction re-ranker

    @property
    def vectors(self) -> np.ndarray:
        """All chunk vectors (reconstructed from FAISS), for brute-force checks."""
        return self.dense.reconstruct_n(0, self.dense.ntotal)


def load_index(index_dir: Path, *, model: str | None = None, dimension: int | None = None) -> SearchIndex:
    """Load the live index, checking it is complete and matches ``model``/``dimension``.

    Raises:
        IndexLoadError: with a message that says how to rebuild.
    """
    index_dir = Path(index_dir)
    build = current_build(index_dir)
    rebuild = f"run `kb index --index-dir {index_dir}` to build it"
    if build is None or not build.is_dir():
        raise IndexLoadError(f"no search index at {index_dir}: {rebuild}")
    try:
        manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexLoadError(f"index at {build} has no readable manifest ({exc}); {rebuild}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexLoadError(f"index at {build} has format {manifest.get('format')}, this version reads {FORMAT_VERSION}; {rebuild}")
    if model is not None and manifest.get("model") != model:
        raise IndexLoadError(
            f"index at {build} was built with model {manifest.get('model')!r} but KB_MODEL selects {model!r}; "
            f"{rebuild} with the current model, or set KB_MODEL back"
        )
    if dimension is not None and manifest.get("dimension") != dimension:
        raise IndexLoadError(f"index at {build} has dimension {manifest.get('dimension')}, the model gives {dimension}; {rebuild}")
    try:
        with open(build / "chunks.jsonl", encoding="utf-8") as handle:
            chunks = [_chunk_from_json(json.loads(line)) for line in handle if line.strip()]
        pages = {path: PageMeta.model_validate(meta) for path, meta in
                 json.loads((build / "pages.json").read_text(encoding="utf-8")).items()}
        dense = faiss.read_index(str(build / "dense.faiss"))
        keyword = KeywordIndex.load(build / "bm25")
        page_keyword = KeywordIndex.load(build / "bm25-pages")
        tokens = TokenStore.load(build / TOKENS_DIR) if (build / TOKENS_DIR).is_dir() else None
    except Exception as exc:
        raise IndexLoadError(f"index at {build} is corrupt ({type(exc).__name__}: {exc}); {rebuild}") from exc
    if dense.ntotal != len(chunks) or manifest.get("chunks") != len(chunks):
        raise IndexLoadError(f"index at {build} is inconsistent ({dense.ntotal} vectors, {len(chunks)} chunks); {rebuild}")
    if dense.d != manifest.get("dimension"):
        raise IndexLoadError(f"index at {build} stores {dense.d}-d vectors but its manifest says {manifest.get('dimension')}; {rebuild}")
    if tokens is not None and (tokens.n_docs != len(chunks) or (tokens.segments and tokens.dimension != dense.d)):
        raise IndexLoadError(f"index at {build} has word-piece vectors for {tokens.n_docs} chunks of "
                             f"{tokens.dimension} dimensions, not {len(chunks)} of {dense.d}; {rebuild}")
    if tokens is None:
        logger.warning("index at %s has no word-piece vectors: late-interaction re-ranking is off; %s", build, rebuild)
    if isinstance(dense, faiss.IndexHNSW):
        dense.hnsw.efSearch = 128
    return SearchIndex(chunks=chunks, pages=pages, dense=dense, keyword=keyword, page_keyword=page_keyword,
                       manifest=manifest, path=build, tokens=tokens)
