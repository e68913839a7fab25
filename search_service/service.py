"""The service layer: the functions every channel (CLI, REST API, and later MCP and chat) calls.

Channels parse their input, call these with the caller's identity, and format what comes back; none
of them opens an index, builds filters, applies access rules or renders a report on its own.
Errors a user can cause are raised as :class:`ServiceError` (or the indexing stage's own
``IndexLoadError`` / ``IndexBuildError`` / ``ModelLoadError``), each with a message saying what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from search_service import answering
from search_service.answering import AnswerEvent, AnswerMode, AnswerResult, AnswerSettings, ChatClient
from search_service.content import PageMeta
from search_service.gaps import GapsReport, find_gaps, gaps_report, report_html, report_markdown
from search_service.indexing.build import BuildReport, ProgressHooks, build_index, load_index
from search_service.indexing.embedding import Embedder, make_embedder
from search_service.ranking.retriever import ANONYMOUS, Filters, HybridRetriever, Viewer
from search_service.responses import SearchResponse, search_response
from search_service.settings import Settings
from search_service.store import Store, StoreUnavailable

logger = logging.getLogger(__name__)

# "Ask about this page": the page being read, and the pages it names as related, rank a little higher.
CURRENT_PAGE_BOOST = 1.5
RELATED_PAGE_BOOST = 1.2
GAPS_FORMATS = ("json", "markdown", "html")


class ServiceError(Exception):
    """A request the service cannot carry out as asked; the message says what to do instead."""


# --- folders, index, retriever, store ------------------------------------------------------------


def resolve_folders(settings: Settings, content_dir: Path | None = None, index_dir: Path | None = None) -> tuple[Path, Path]:
    """Content and index folders. A content folder other than the configured one gets an index folder of its
    own (next to the configured index), so evaluating a foreign corpus never replaces the portal's index."""
    content = content_dir or settings.content_dir
    if index_dir is not None:
        return content, index_dir
    if content_dir is None or content_dir.resolve() == settings.content_dir.resolve():
        return content, settings.index_dir
    key = hashlib.sha256(str(content_dir.resolve()).encode()).hexdigest()[:10]
    return content, settings.index_dir.parent / "indexes" / f"{content_dir.resolve().name}-{key}"


def open_embedder(settings: Settings) -> Embedder:
    """The embedding model the settings select (raises ModelLoadError with a message)."""
    return make_embedder(settings)


def index_content(settings: Settings, content_dir: Path, index_dir: Path, embedder: Embedder | None = None,
                  *, progress: ProgressHooks | None = None) -> tuple[BuildReport, Embedder]:
    """Build or update the index of ``content_dir`` (incrementally); returns the report and the embedder used."""
    if not content_dir.is_dir():
        raise ServiceError(f"content folder {content_dir} does not exist")
    embedder = embedder or open_embedder(settings)
    report = build_index(content_dir, index_dir, embedder, index_type=settings.index_type, progress=progress,
                         exclude=settings.search_exclude_patterns())
    return report, embedder


def open_retriever(settings: Settings, index_dir: Path | None = None, embedder: Embedder | None = None) -> HybridRetriever:
    """The live index of ``index_dir`` (default: the configured one) with the ranking in force for its corpus.

    Raises:
        IndexLoadError: no index, a broken one, or one built with another model.
        ModelLoadError: the embedding model cannot be loaded.
    """
    embedder = embedder or open_embedder(settings)
    index = load_index(index_dir or settings.index_dir, model=embedder.name, dimension=embedder.dimension)
    return HybridRetriever.from_settings(index, embedder, settings)


def reload_retriever(settings: Settings, current: HybridRetriever) -> HybridRetriever:
    """The build now current in the index folder ``current`` was loaded from, with the same model (and the
    corpus's new tuning, if any), checked like the first load.

    Raises:
        IndexLoadError: the build is missing, broken or changed since it was written.
    """
    return open_retriever(settings, index_dir=current.index.index_dir, embedder=current.embedder)


def open_store(settings: Settings) -> Store:
    """The feedback store, migrated to the latest schema, with logs past retention purged."""
    store = Store.from_settings(settings)
    store.migrate()
    removed = store.purge(settings.log_retention_days)
    if removed:
        logger.info("purged %s ask log(s) older than %s days", removed, settings.log_retention_days)
    return store


def public_index(retriever: HybridRetriever) -> dict[str, object]:
    """The size and a content hash of the pages anyone may see.

    /readyz and /metrics answer anyone, so they count and hash public pages only: figures over every
    page would tell an outsider when a restricted page is added, grows or changes. Administrators get
    the whole manifest from ``POST /v1/admin/reload``.
    """
    public = retriever.visibility.accessible(ANONYMOUS)
    digest = hashlib.sha256()
    chunks = 0
    for path in sorted(public):
        digest.update(path.encode() + b"\0" + retriever.index.pages[path].model_dump_json().encode())
        for i in retriever.sections.ids(path):
            digest.update(retriever.sections.chunks[i].content_hash.encode())
            chunks += 1
    return {"pages": len(public), "chunks": chunks, "content_hash": digest.hexdigest()}


def readiness(retriever: HybridRetriever) -> dict[str, object]:
    """What /readyz reports: a summary of the loaded index (public pages only, see :func:`public_index`)
    and the ranking in force."""
    manifest = retriever.index.manifest
    config = retriever.config
    return {
        "status": "ready",
        "index": {**{key: manifest.get(key) for key in ("model", "dimension", "chunker_version", "index_type",
                                                         "built_at")},
                  **public_index(retriever)},
        "build": retriever.index.path.name,  # which build this worker serves, to see a reload reach every worker
        "ranking": {"fusion_weights": list(config.fusion_weights),
                    "reranking": retriever.parts.reranker is not None,  # what is loaded, not what is configured
                    "rerank_weight": config.rerank_weight, "rerank_depth": config.rerank_depth,
                    "content_tuning": manifest.get("tuning")},  # the content's .kb-tuning.json, if any
    }


# --- search and answers ----------------------------------------------------------------------------


def make_filters(types: Sequence[str] = (), tags: Sequence[str] = (), audiences: Sequence[str] = ()) -> Filters:
    """Filters from the lists a channel received (empty lists restrict nothing)."""
    return Filters(tuple(types), tuple(tags), tuple(audiences))


def visible_pages(retriever: HybridRetriever, viewer: Viewer) -> dict[str, PageMeta]:
    """The pages this viewer may see; every field of a response is built from these only."""
    return {path: meta for path, meta in retriever.index.pages.items() if viewer.may_see(meta)}


def search(retriever: HybridRetriever, query: str, *, settings: Settings, k: int = 10, filters: Filters | None = None,
           viewer: Viewer = ANONYMOUS) -> SearchResponse:
    """The pages that answer ``query``, best first, as clients receive them."""
    query = query.strip()
    if not query:
        raise ServiceError("the query is blank: type a question or some keywords")
    result = retriever.search(query, k=k, filters=filters or Filters(), viewer=viewer)
    return search_response(result, k=k, settings=settings, visible_pages=set(visible_pages(retriever, viewer)))


def page_boosts(retriever: HybridRetriever, page: str | None, viewer: Viewer) -> dict[str, float] | None:
    """'Ask about this page': favour the page being read and the pages it names as related (visible ones only)."""
    if not page:
        return None
    page = page.strip("/")
    known = visible_pages(retriever, viewer)
    if page not in known:
        matches = [p for p in known if p.removesuffix(".md") == page.removesuffix(".md")]
        if not matches:
            return None
        page = matches[0]
    boosts = {page: CURRENT_PAGE_BOOST}
    for related in known[page].related:
        if related in known:
            boosts.setdefault(related, RELATED_PAGE_BOOST)
    return boosts


def ask_events(retriever: HybridRetriever, question: str, *, settings: Settings, filters: Filters | None = None,
               viewer: Viewer = ANONYMOUS, mode: AnswerMode = AnswerMode.extractive, stream: bool = False,
               page: str | None = None) -> Iterator[AnswerEvent]:
    """Answer ``question`` for ``viewer``: text pieces while streaming, then the whole answer.

    Generative mode uses the LLM the settings configure (``KB_LLM_BASE_URL``) and falls back to the
    extractive answer, saying why, when there is none or it fails.
    """
    question = question.strip()
    if not question:
        raise ServiceError("the question is blank")
    return answering.ask_events(retriever, question, settings=AnswerSettings.from_settings(settings, retriever),
                                llm=ChatClient.from_settings(settings), filters=filters, viewer=viewer, mode=mode,
                                stream=stream, boost_pages=page_boosts(retriever, page, viewer))


def ask(retriever: HybridRetriever, question: str, *, settings: Settings, filters: Filters | None = None,
        viewer: Viewer = ANONYMOUS, mode: AnswerMode = AnswerMode.extractive, page: str | None = None) -> AnswerResult:
    """Answer ``question`` without streaming (see :func:`ask_events`)."""
    return answering.final_answer(ask_events(retriever, question, settings=settings, filters=filters, viewer=viewer,
                                             mode=mode, page=page))


def record_ask(store: Store, *, user_id: str, question: str, answer: AnswerResult, started: float) -> bool:
    """Log an ask (the user pseudonymised by the store); False when the log could not be written.

    Answers do not go down with the database: the caller still answers, counts the failure and may
    tell the client. Feedback on an unlogged answer is then refused with a reason (``UnloggedAnswer``),
    never a bare "no answer with id". ``started`` is the ``time.perf_counter()`` reading taken when the
    request arrived.
    """
    try:
        store.log_ask(answer_id=answer.id, question=question, answered=answer.answered,
                      confidence=answer.confidence, cited_pages=[c.path for c in answer.citations],
                      latency_ms=(time.perf_counter() - started) * 1000, mode=answer.mode,
                      fallback=answer.fallback, user_id=user_id)
    except StoreUnavailable as exc:  # already logged by the store, with its reason
        logger.error("ask %s answered but not logged: %s", answer.id, exc)
        return False
    except Exception:  # anything else must not take answers down either
        logger.exception("could not log ask %s", answer.id)
        return False
    return True


# --- content gaps ----------------------------------------------------------------------------------


def content_gaps(store: Store, retriever: HybridRetriever, *, settings: Settings, days: int | None = None) -> GapsReport:
    """The content-gaps report: failed questions grouped by meaning, routed to owners; pages due for review."""
    return gaps_report(find_gaps(store, retriever, days=days), retriever, settings.current_date())


def render_gaps(report: GapsReport, fmt: str) -> str:
    """The gaps report as ``json``, ``markdown`` or ``html`` text."""
    if fmt == "markdown":
        return report_markdown(report)
    if fmt == "html":
        return report_html(report)
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2)
    raise ServiceError(f"unknown report format {fmt!r}; use one of {', '.join(GAPS_FORMATS)}")


# --- the portal --------------------------------------------------------------------------------------


def build_site(config_file: Path = Path("mkdocs.yml"), *, strict: bool = True) -> None:
    """Build the MkDocs site (the portal) in-process; raises ServiceError with MkDocs' message on failure."""
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    if not config_file.is_file():
        raise ServiceError(f"no {config_file} here; run kb serve from the repository root")
    try:
        build(load_config(str(config_file), strict=strict))
    except (MkDocsException, SystemExit) as exc:
        raise ServiceError(f"site build failed: {exc}") from exc
