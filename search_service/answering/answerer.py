"""Ask: retrieve, then answer extractively or through an LLM, as a stream of typed events.

Generative mode falls back to the extractive answer on any LLM trouble (down, slow, garbage,
no valid citation) and says why in ``fallback``; with no LLM client it is extractive.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Iterator

from search_service.answering.config import AnswerSettings
from search_service.answering.coverage import abstain, confidence_from_evidence, evidence_score, is_covered
from search_service.answering.extractive import extractive_answer
from search_service.answering.generative import build_messages, finish_generated
from search_service.answering.llm_client import ChatClient, LLMError
from search_service.answering.results import AnswerEvent, AnswerMode, AnswerResult, DoneEvent, TokenEvent
from search_service.answering.sources import select_sources
from search_service.answering.weights import PAGES_SEARCHED
from search_service.ranking.retriever import ANONYMOUS, Filters, HybridRetriever, SearchResult, Viewer

logger = logging.getLogger(__name__)

NO_LLM = "no LLM configured (KB_LLM_BASE_URL is empty)"


def ask_events(
    retriever: HybridRetriever,
    question: str,
    *,
    settings: AnswerSettings,
    llm: ChatClient | None = None,
    filters: Filters | None = None,
    viewer: Viewer = ANONYMOUS,
    mode: AnswerMode = AnswerMode.extractive,
    stream: bool = False,
    boost_pages: dict[str, float] | None = None,
) -> Iterator[AnswerEvent]:
    """Answer ``question``: yields :class:`TokenEvent` pieces (when streaming), then one :class:`DoneEvent`.

    Args:
        retriever: the index to answer from.
        question: the question as asked.
        settings: the abstention threshold and the citation links' prefix.
        llm: the LLM for generative mode; None answers extractively (and says so in ``fallback``).
        filters: page types, tags and audiences to answer from.
        viewer: who asks; pages they may not see are never quoted.
        mode: extractive (quote the sections) or generative (an LLM writes from them).
        stream: yield the text as it is generated; an extractive answer comes as one piece.
        boost_pages: page path -> score factor, to favour the page being read.
    """
    result = retriever.search(question, k=PAGES_SEARCHED, filters=filters, viewer=viewer, boost_pages=boost_pages)
    streamed: list[str] = []
    if mode == AnswerMode.generative and llm is not None:
        answer = yield from _generative(retriever, question, result, llm=llm, settings=settings, stream=stream,
                                        streamed=streamed)
    else:
        fallback = NO_LLM if mode == AnswerMode.generative else None
        answer = extractive_answer(retriever, question, result, settings=settings, fallback=fallback)
    if stream and not streamed:
        yield TokenEvent(answer.answer)
    yield DoneEvent(answer)


def _generative(retriever: HybridRetriever, question: str, result: SearchResult, *, llm: ChatClient,
                settings: AnswerSettings, stream: bool, streamed: list[str]) -> Generator[TokenEvent, None, AnswerResult]:
    """The LLM's checked answer (its pieces yielded, and kept in ``streamed``, when streaming); the
    extractive answer, saying why, when the LLM fails; an abstention without calling it when the
    evidence is weak."""
    confidence = confidence_from_evidence(evidence_score(result), settings.abstain_threshold)
    if not is_covered(result, confidence):
        return abstain(result, confidence, AnswerMode.generative, settings.site_url)
    sources = select_sources(result)
    messages = build_messages(question, sources)
    try:
        if stream:
            for piece in llm.stream(messages):
                streamed.append(piece)
                yield TokenEvent(piece)
            text = "".join(streamed)
        else:
            text = llm.complete(messages)
        return finish_generated(text, result, sources, site_url=settings.site_url, confidence=confidence)
    except LLMError as exc:
        logger.info("generative answer fell back to extractive: %s", exc)
        return extractive_answer(retriever, question, result, settings=settings, fallback=str(exc))


def final_answer(events: Iterable[AnswerEvent]) -> AnswerResult:
    """The answer of the :class:`DoneEvent` that ends ``events`` (consumes them)."""
    answer: AnswerResult | None = None
    for event in events:
        if isinstance(event, DoneEvent):
            answer = event.answer
    if answer is None:
        raise ValueError("the answer events ended without a DoneEvent")
    return answer


def ask(
    retriever: HybridRetriever,
    question: str,
    *,
    settings: AnswerSettings,
    llm: ChatClient | None = None,
    filters: Filters | None = None,
    viewer: Viewer = ANONYMOUS,
    mode: AnswerMode = AnswerMode.extractive,
    boost_pages: dict[str, float] | None = None,
) -> AnswerResult:
    """Answer ``question`` without streaming (see :func:`ask_events`)."""
    return final_answer(ask_events(retriever, question, settings=settings, llm=llm, filters=filters, viewer=viewer,
                                   mode=mode, boost_pages=boost_pages))
