"""The index artifact on disk: the layout of an index folder, the files of a build, and loading one.

Layout of an index folder::

    <index_dir>/current            symlink to the live build (replaced atomically)
    <index_dir>/builds/<id>/       one finished build (the files below)
    <index_dir>/builds/.tmp-<id>/  a build being written; removed by the next build if its writer died
    <index_dir>/cache.sqlite       embeddings and word-piece vectors by (model, content hash), shared by builds
    <index_dir>/.build.lock        held by the one build running

Files of a build (row ``i`` of every index is chunk ``i`` of ``chunks.jsonl``)::

    manifest.json     :class:`Manifest`: format, model, dimension, chunker version, content hash, counts
    chunks.jsonl      one chunk a line, in index order
    pages.json        page path -> front matter, in the row order of bm25-pages/
    page-hashes.json  :class:`PageHashes`, so the next build reuses the chunks of unchanged pages
    dense.faiss       the chunk vectors (FAISS flat or HNSW, inner product = cosine)
    bm25/             BM25 over the chunks' texts
    bm25-pages/       BM25 over whole pages (:func:`page_document`)
    tokens/           word-piece vectors per page; format in :mod:`search_service.indexing.artifact_tokens`
                      (unchanged pages' files are hard links to the previous build's)
    checksums.json    the sha256 of every other file (written last); loading refuses a build whose files
                      differ from it, so a missing or edited file is named instead of served
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import faiss
import numpy as np
import numpy.typing as npt

from search_service.content import Page, PageMeta
from search_service.indexing.artifact_tokens import TOKENS_DIR
from search_service.indexing.chunking import Chunk
from search_service.indexing.errors import IndexLoadError
from search_service.indexing.keyword import KeywordIndex
from search_service.indexing.tokens import TokenStore

logger = logging.getLogger(__name__)

FORMAT_VERSION = 4  # 3: word-piece vectors for late interaction; 4: checksums.json

# The index folder.
CURRENT_LINK = "current"
BUILDS_DIR = "builds"
UNFINISHED_PREFIX = ".tmp-"  # a build folder being written
LINK_PREFIX = ".current-"  # the new symlink, before it replaces CURRENT_LINK
CACHE_FILE = "cache.sqlite"
LOCK_FILE = ".build.lock"

# A build folder.
MANIFEST_FILE = "manifest.json"
CHUNKS_FILE = "chunks.jsonl"
PAGES_FILE = "pages.json"
PAGE_HASHES_FILE = "page-hashes.json"
DENSE_FILE = "dense.faiss"
KEYWORD_DIR = "bm25"
PAGE_KEYWORD_DIR = "bm25-pages"
CHECKSUMS_FILE = "checksums.json"
CHECKSUM_ALGORITHM = "sha256"

IndexType = Literal["flat", "hnsw"]
# HNSW graph degree and search depths: FAISS's customary values, not tuned on this corpus; flat is
# the default and exact, and benchmarks/run.py measures HNSW's speed against it.
HNSW_NEIGHBOURS = 32
HNSW_BUILD_DEPTH = 80
HNSW_SEARCH_DEPTH = 128


class Manifest(TypedDict):
    """``manifest.json``: what a build holds and how it was made (the keys are the file's JSON keys)."""

    format: int
    model: str
    dimension: int
    chunker_version: str
    index_type: str
    content_hash: str
    pages: int
    excluded_pages: int  # pages kept out of search (front matter or KB_SEARCH_EXCLUDE)
    tuning: dict[str, Any] | None  # the content's .kb-tuning.json, if any
    chunks: int
    embedded: int
    cached: int
    token_vectors: int
    built_at: str
    build_seconds: float


class PageHashes(TypedDict):
    """``page-hashes.json``: each page's hash under one chunker version."""

    chunker_version: str
    pages: dict[str, str]


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (new files, renames) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, default=str)
        handle.flush()
        os.fsync(handle.fileno())


def _read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object; ValueError otherwise."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} holds {type(data).__name__}, not a JSON object")
    return data


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` (the last file of a build)."""
    _write_json(folder / MANIFEST_FILE, manifest)


def read_manifest(build: Path) -> Manifest:
    """A build's manifest, as written; callers check the keys they rely on.

    Raises:
        OSError, ValueError: the file is missing, unreadable or not a JSON object.
    """
    return cast(Manifest, _read_json_object(build / MANIFEST_FILE))


def chunk_to_json(chunk: Chunk) -> dict[str, Any]:
    """One line of ``chunks.jsonl``: the chunk's fields and its id."""
    data = asdict(chunk)
    data["id"] = chunk.id
    return data


def chunk_from_json(data: Mapping[str, Any]) -> Chunk:
    """The chunk a line of ``chunks.jsonl`` describes (its ``id`` is derived, not stored)."""
    fields = dict(data)
    fields.pop("id", None)
    return Chunk(**fields)


def write_chunks(folder: Path, chunks: list[Chunk]) -> None:
    """Write ``chunks.jsonl`` in index order."""
    with open(folder / CHUNKS_FILE, "w", encoding="utf-8") as handle:
        for chunk in chunks:
            handle.write(json.dumps(chunk_to_json(chunk), ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_chunks(build: Path) -> list[Chunk]:
    """The chunks of a build, in index order.

    Raises:
        OSError, ValueError, TypeError: the file is missing, unreadable or holds other fields.
    """
    with open(build / CHUNKS_FILE, encoding="utf-8") as handle:
        return [chunk_from_json(json.loads(line)) for line in handle if line.strip()]


def write_pages(folder: Path, pages: Mapping[str, PageMeta]) -> None:
    """Write ``pages.json``; its order is the row order of the page-level BM25 index."""
    _write_json(folder / PAGES_FILE, {path: meta.model_dump(mode="json") for path, meta in pages.items()})


def read_pages(build: Path) -> dict[str, PageMeta]:
    """Page path -> front matter of a build's pages.

    Raises:
        OSError, ValueError: the file is missing, unreadable or a page's metadata is invalid.
    """
    return {path: PageMeta.model_validate(meta) for path, meta in _read_json_object(build / PAGES_FILE).items()}


def write_page_hashes(folder: Path, hashes: PageHashes) -> None:
    """Write ``page-hashes.json``."""
    _write_json(folder / PAGE_HASHES_FILE, hashes)


def read_page_hashes(build: Path) -> PageHashes:
    """A build's page hashes.

    Raises:
        OSError, ValueError: the file is missing, unreadable or not shaped as written.
    """
    data = _read_json_object(build / PAGE_HASHES_FILE)
    if not isinstance(data.get("pages"), dict):
        raise ValueError(f"{PAGE_HASHES_FILE} has no pages")
    return cast(PageHashes, data)


def build_files(build: Path) -> list[str]:
    """The files of a build folder (paths relative to it, ``/``-separated, sorted), its checksums file aside."""
    return sorted(path.relative_to(build).as_posix() for path in build.rglob("*")
                  if path.is_file() and path.name != CHECKSUMS_FILE)


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, CHECKSUM_ALGORITHM).hexdigest()


def write_checksums(build: Path) -> None:
    """Write ``checksums.json``: the digest of every other file of the build (call when they are all written)."""
    _write_json(build / CHECKSUMS_FILE, {"algorithm": CHECKSUM_ALGORITHM,
                                         "files": {name: file_digest(build / name) for name in build_files(build)}})


def _checksum_listing(build: Path) -> dict[str, str]:
    """The file name -> digest mapping ``checksums.json`` holds; ValueError when it is not shaped as written."""
    listing = _read_json_object(build / CHECKSUMS_FILE)
    files = listing.get("files")
    if listing.get("algorithm") != CHECKSUM_ALGORITHM or not isinstance(files, dict):
        raise ValueError(f"{CHECKSUMS_FILE} does not list {CHECKSUM_ALGORITHM} digests of files")
    return {str(name): str(digest) for name, digest in files.items()}


def verify_checksums(build: Path, rebuild: str) -> None:
    """Every file of the build is present, unchanged since the build, and listed.

    Raises:
        IndexLoadError: naming the first file that is missing, edited or foreign to the build.
    """
    try:
        expected = _checksum_listing(build)
    except (OSError, ValueError) as exc:
        raise IndexLoadError(f"index at {build} is corrupt: no readable {CHECKSUMS_FILE} ({exc}); {rebuild}") from exc
    for name, digest in expected.items():
        try:
            actual = file_digest(build / name)
        except OSError as exc:
            raise IndexLoadError(f"index at {build} is corrupt: {name} is missing or unreadable "
                                 f"({exc.strerror or exc}); {rebuild}") from exc
        if actual != digest:
            raise IndexLoadError(f"index at {build} is corrupt: {name} was changed after the build "
                                 f"(its {CHECKSUM_ALGORITHM} differs from {CHECKSUMS_FILE}); {rebuild}")
    foreign = [name for name in build_files(build) if name not in expected]
    if foreign:
        raise IndexLoadError(f"index at {build} is corrupt: {foreign[0]} is not a file of the build; {rebuild}")


def make_dense_index(vectors: npt.NDArray[np.float32], index_type: str) -> faiss.Index:
    """A FAISS inner-product index of ``vectors`` (HNSW when ``index_type`` is "hnsw", else flat)."""
    dimension = vectors.shape[1]
    index: faiss.Index
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_BUILD_DEPTH
    else:
        index = faiss.IndexFlatIP(dimension)
    if len(vectors):
        index.add(vectors)
    return index


def write_dense(folder: Path, vectors: npt.NDArray[np.float32], index_type: str) -> None:
    """Write ``dense.faiss``, row ``i`` being chunk ``i``'s vector."""
    faiss.write_index(make_dense_index(vectors, index_type), str(folder / DENSE_FILE))


def page_document(page: Page) -> str:
    """The text of a whole page for page-level keyword search."""
    return f"{page.meta.title}\n{page.meta.summary}\n{page.body}"


def write_keyword_indexes(folder: Path, chunks: list[Chunk], pages: list[Page]) -> None:
    """Write BM25 over the chunks (``bm25/``) and over whole pages (``bm25-pages/``)."""
    # An empty corpus still gets a one-document index, so loading never special-cases it.
    KeywordIndex.build([c.embed_text() for c in chunks] or [""]).save(folder / KEYWORD_DIR)
    # Page-level BM25: a question's words are often spread over several sections of one page.
    KeywordIndex.build([page_document(page) for page in pages] or [""]).save(folder / PAGE_KEYWORD_DIR)


def current_build(index_dir: Path) -> Path | None:
    """The live build folder, or None when there is no index yet."""
    link = Path(index_dir) / CURRENT_LINK
    if not link.exists():
        return None
    return link.resolve()


@dataclass
class SearchIndex:
    """A loaded index: chunks, page metadata, dense and keyword indexes, manifest."""

    chunks: list[Chunk]
    pages: dict[str, PageMeta]
    dense: faiss.Index
    keyword: KeywordIndex
    page_keyword: KeywordIndex
    manifest: Manifest
    path: Path
    tokens: TokenStore | None = None  # word-piece vectors; None disables the late-interaction re-ranker
    index_dir: Path | None = None  # the index folder whose ``current`` link led here, which reloads follow

    @property
    def vectors(self) -> npt.NDArray[np.float32]:
        """All chunk vectors (reconstructed from FAISS), for brute-force checks."""
        vectors: npt.NDArray[np.float32] = self.dense.reconstruct_n(0, self.dense.ntotal)
        return vectors


def _checked_manifest(build: Path, rebuild: str, *, model: str | None, dimension: int | None) -> Manifest:
    """The build's manifest, if this code can read the build and it matches ``model``/``dimension``."""
    try:
        manifest = read_manifest(build)
    except (OSError, ValueError) as exc:
        raise IndexLoadError(f"index at {build} has no readable manifest ({exc}); {rebuild}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexLoadError(f"index at {build} has format {manifest.get('format')}, "
                             f"this version reads {FORMAT_VERSION}; {rebuild}")
    if model is not None and manifest.get("model") != model:
        raise IndexLoadError(
            f"index at {build} was built with model {manifest.get('model')!r} but KB_MODEL selects {model!r}; "
            f"{rebuild} with the current model, or set KB_MODEL back"
        )
    if dimension is not None and manifest.get("dimension") != dimension:
        raise IndexLoadError(f"index at {build} has dimension {manifest.get('dimension')}, "
                             f"the model gives {dimension}; {rebuild}")
    return manifest


def _read_build(build: Path, manifest: Manifest, rebuild: str) -> SearchIndex:
    """Every file of a build; any failure is reported as corruption."""
    try:
        chunks = read_chunks(build)
        pages = read_pages(build)
        dense = faiss.read_index(str(build / DENSE_FILE))
        keyword = KeywordIndex.load(build / KEYWORD_DIR)
        page_keyword = KeywordIndex.load(build / PAGE_KEYWORD_DIR)
        tokens = TokenStore.load(build / TOKENS_DIR) if (build / TOKENS_DIR).is_dir() else None
    except Exception as exc:
        raise IndexLoadError(f"index at {build} is corrupt ({type(exc).__name__}: {exc}); {rebuild}") from exc
    return SearchIndex(chunks=chunks, pages=pages, dense=dense, keyword=keyword, page_keyword=page_keyword,
                       manifest=manifest, path=build, tokens=tokens)


def _check_consistency(index: SearchIndex, rebuild: str) -> None:
    """The files of a build agree with each other and with the manifest."""
    build, dense, chunks, manifest, tokens = index.path, index.dense, index.chunks, index.manifest, index.tokens
    if dense.ntotal != len(chunks) or manifest.get("chunks") != len(chunks):
        raise IndexLoadError(f"index at {build} is inconsistent ({dense.ntotal} vectors, {len(chunks)} chunks); {rebuild}")
    if dense.d != manifest.get("dimension"):
        raise IndexLoadError(f"index at {build} stores {dense.d}-d vectors "
                             f"but its manifest says {manifest.get('dimension')}; {rebuild}")
    if tokens is not None and (tokens.n_docs != len(chunks) or (tokens.segments and tokens.dimension != dense.d)):
        raise IndexLoadError(f"index at {build} has word-piece vectors for {tokens.n_docs} chunks of "
                             f"{tokens.dimension} dimensions, not {len(chunks)} of {dense.d}; {rebuild}")


def load_index(index_dir: Path, *, model: str | None = None, dimension: int | None = None) -> SearchIndex:
    """Load the live index, checking it is complete, unchanged since its build, and matches ``model``/``dimension``.

    Every file is read into memory (none stays memory-mapped), so a file changed or truncated on disk
    later cannot crash the process; the next reload refuses it instead.

    Raises:
        IndexLoadError: with a message that says how to rebuild.
    """
    index_dir = Path(index_dir)
    build = current_build(index_dir)
    rebuild = f"run `kb index --index-dir {index_dir}` to build it"
    if build is None or not build.is_dir():
        raise IndexLoadError(f"no search index at {index_dir}: {rebuild}")
    manifest = _checked_manifest(build, rebuild, model=model, dimension=dimension)
    verify_checksums(build, rebuild)
    index = _read_build(build, manifest, rebuild)
    index.index_dir = index_dir
    _check_consistency(index, rebuild)
    if index.tokens is None:
        logger.warning("index at %s has no word-piece vectors: late-interaction re-ranking is off; %s", build, rebuild)
    if isinstance(index.dense, faiss.IndexHNSW):
        index.dense.hnsw.efSearch = HNSW_SEARCH_DEPTH
    return index
