"""Plan stage of an index build: the content as it is now, and what the previous build lets us reuse.

The plan loads the pages (minus those kept out of search) and the corpus's tuning file, hashes
each page, takes the chunks of unchanged pages from the previous build instead of re-chunking
them, and hashes the whole content to tell whether the previous build is already up to date. It
reads the previous build but writes nothing, so it is safe to run while a service reads the index.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from search_service.content import ContentError, Page, PageMeta, excluded_from_search, load_content
from search_service.indexing.artifact import (
    FORMAT_VERSION,
    IndexType,
    current_build,
    read_chunks,
    read_manifest,
    read_page_hashes,
)
from search_service.indexing.artifact_tokens import TOKENS_DIR, read_listing, segment_key
from search_service.indexing.chunking import CHUNKER_VERSION, Chunk, chunk_page, page_profile
from search_service.indexing.errors import IndexBuildError
from search_service.settings import load_tuning

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PagePlan:
    """One searchable page: its hash, its chunks (profile first), and whether they were reused."""

    page: Page
    page_hash: str
    chunks: list[Chunk]
    reused: bool  # the chunks come from the previous build: the page and the chunker are unchanged


@dataclass(frozen=True)
class BuildPlan:
    """What the next build will hold, and what it can take from the previous one."""

    model: str
    index_type: IndexType
    pages: list[PagePlan]
    errors: list[ContentError]  # pages that did not load, reported and left out
    excluded: int  # pages kept out of search
    tuning: dict[str, Any] | None  # the content's tuning file, as it travels in the manifest
    content_hash: str
    previous: Path | None  # the live build when the plan was made
    up_to_date: bool  # the previous build already holds exactly this content, model and format
    # Word-piece segments the previous build holds (key -> token counts), linked instead of re-encoded.
    linkable_segments: dict[str, list[int]] = field(default_factory=dict)

    @cached_property
    def chunks(self) -> list[Chunk]:
        """Every chunk of the build, in index order (page by page)."""
        return [chunk for page in self.pages for chunk in page.chunks]

    @cached_property
    def page_meta(self) -> dict[str, PageMeta]:
        """Page path -> front matter, in page order."""
        return {plan.page.path: plan.page.meta for plan in self.pages}

    @property
    def previous_tokens(self) -> Path | None:
        """The previous build's word-piece folder, source of the linkable segments."""
        return self.previous / TOKENS_DIR if self.previous is not None else None

    def segment_key(self, page: PagePlan) -> str:
        """The name of a page's word-piece segment under this plan's model."""
        return segment_key(self.model, page.page_hash)

    def hashes_needing_tokens(self) -> set[str]:
        """Content hashes of the chunks whose word-piece vectors must come from the cache or the model."""
        return {chunk.content_hash for page in self.pages if self.segment_key(page) not in self.linkable_segments
                for chunk in page.chunks}


def page_hash(page: Page) -> str:
    """A page's hash: equal hashes give equal chunks (same chunker, front matter and body)."""
    return hashlib.sha256(f"{CHUNKER_VERSION}\n{page.meta.model_dump_json()}\n{page.body}".encode()).hexdigest()


def content_hash(chunks: list[Chunk], pages: Mapping[str, PageMeta], tuning: Mapping[str, Any] | None = None) -> str:
    """The hash of everything a build's search results depend on: tuning, page metadata, chunk texts."""
    digest = hashlib.sha256()
    if tuning is not None:  # the corpus's ranking weights travel with its index
        digest.update(json.dumps(tuning, sort_keys=True).encode())
    for path in sorted(pages):
        digest.update(path.encode())
        digest.update(pages[path].model_dump_json().encode())
    for chunk in chunks:
        digest.update(chunk.content_hash.encode())
    return digest.hexdigest()


def previous_chunks(build: Path | None) -> dict[tuple[str, str], list[Chunk]]:
    """Chunks of a build keyed by (page, page hash), to skip re-chunking unchanged pages."""
    if build is None:
        return {}
    try:
        hashes = read_page_hashes(build)
        if hashes.get("chunker_version") != CHUNKER_VERSION:
            return {}
        by_page: dict[str, list[Chunk]] = {}
        for chunk in read_chunks(build):
            by_page.setdefault(chunk.page_path, []).append(chunk)
    except (OSError, ValueError, TypeError):
        return {}  # no usable previous build: chunk everything
    return {(path, digest): by_page[path] for path, digest in hashes["pages"].items() if path in by_page}


def plan_page(page: Page, reusable: Mapping[tuple[str, str], list[Chunk]]) -> PagePlan:
    """A page's chunks: the previous build's if the page is unchanged, else chunked anew."""
    digest = page_hash(page)
    chunks = reusable.get((page.path, digest))
    if chunks is not None:
        return PagePlan(page, digest, chunks, reused=True)
    body_chunks = chunk_page(page)
    return PagePlan(page, digest, [page_profile(page, body_chunks), *body_chunks], reused=False)


def _tuning_json(content_dir: Path) -> dict[str, Any] | None:
    try:
        tuning = load_tuning(content_dir)
    except ValueError as exc:
        raise IndexBuildError(str(exc)) from exc
    return tuning.model_dump(mode="json") if tuning is not None else None


def _is_up_to_date(previous: Path, digest: str, model: str, index_type: str) -> bool:
    """The previous build holds this content, made by this model, format, index type and chunker."""
    try:
        manifest = read_manifest(previous)
    except (OSError, ValueError):
        logger.warning("previous index at %s is unreadable; rebuilding from scratch", previous)
        return False
    return (manifest.get("content_hash") == digest and manifest.get("model") == model
            and manifest.get("format") == FORMAT_VERSION and manifest.get("index_type") == index_type
            and manifest.get("chunker_version") == CHUNKER_VERSION)


def plan_build(content_dir: Path, index_dir: Path, *, model: str, index_type: IndexType = "flat",
               exclude: Sequence[str] = ()) -> BuildPlan:
    """Plan a build of ``content_dir`` against the live build in ``index_dir``.

    Raises:
        IndexBuildError: the content's tuning file is unusable.
        FileNotFoundError: ``content_dir`` does not exist.
    """
    content = load_content(content_dir)
    tuning = _tuning_json(content_dir)
    searchable = [page for page in content.pages if not excluded_from_search(page, exclude)]
    previous = current_build(index_dir)
    reusable = previous_chunks(previous)
    pages = [plan_page(page, reusable) for page in searchable]
    chunks = [chunk for page in pages for chunk in page.chunks]
    digest = content_hash(chunks, {page.page.path: page.page.meta for page in pages}, tuning)
    up_to_date = previous is not None and _is_up_to_date(previous, digest, model, index_type)
    # Only a build that will be written needs to know which word-piece files it can link.
    linkable = read_listing(previous / TOKENS_DIR) if previous is not None and not up_to_date else {}
    return BuildPlan(model=model, index_type=index_type, pages=pages, errors=content.errors,
                     excluded=len(content.pages) - len(searchable), tuning=tuning, content_hash=digest,
                     previous=previous, up_to_date=up_to_date, linkable_segments=linkable)
