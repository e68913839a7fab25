"""POST /v1/ask: an answer with citations, or an honest "not covered"; optionally streamed (SSE)."""

from __future__ import annotations

import json
import logging
import time

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from search_service.answering import AnswerMode, AnswerResult, AnswerSettings, ChatClient, TokenEvent, ask_events, final_answer
from search_service.api.deps import IdentityDep, MetricsDep, RetrieverDep, SettingsDep, StoreDep
from search_service.ranking.retriever import Filters

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["ask"])


class FiltersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: list[str] = Field(default_factory=list, max_length=10)
    tag: list[str] = Field(default_factory=list, max_length=20)
    audience: list[str] = Field(default_factory=list, max_length=10)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=500, description="The question, in your own words.")
    filters: FiltersIn = Field(default_factory=FiltersIn)
    mode: AnswerMode = AnswerMode.extractive
    stream: bool = False
    page: str | None = Field(None, max_length=300, description="Path of the page being read, to boost it and its related pages.")


class CitationOut(BaseModel):
    n: int
    title: str
    section: str
    url: str
    snippet: str = Field(description="HTML-escaped, query terms in <mark>.")


class SuggestionOut(BaseModel):
    title: str
    url: str


class AskResponse(BaseModel):
    answer: str = Field(description="Plain text with [n] citation markers (not HTML: escape before inserting).")
    answered: bool
    citations: list[CitationOut]
    confidence: float = Field(ge=0, le=1)
    mode: AnswerMode
    id: str
    suggestions: list[SuggestionOut] = Field(default_factory=list)
    fallback: str | None = Field(None, description="Why a generative request was answered extractively.")
    invalid_citations: list[int] = Field(default_factory=list, description="Citation numbers the LLM made up (removed).")


def to_response(answer: AnswerResult) -> AskResponse:
    return AskResponse(
        answer=answer.answer, answered=answer.answered, confidence=answer.confidence, mode=answer.mode, id=answer.id,
        citations=[CitationOut(n=c.n, title=c.title, section=c.section, url=c.url, snippet=c.snippet) for c in answer.citations],
        suggestions=[SuggestionOut(title=s.title, url=s.url) for s in answer.suggestions],
        fallback=answer.fallback, invalid_citations=answer.invalid_citations,
    )


def boosts_for(retriever, page: str | None, viewer) -> dict[str, float] | None:
    """'Ask about this page': favour the current page and the pages it names as related."""
    if not page:
        return None
    page = page.strip("/")
    known = {path: meta for path, meta in retriever.index.pages.items() if viewer.may_see(meta)}
    if page not in known:
        matches = [p for p in known if p.removesuffix(".md") == page.removesuffix(".md")]
        if not matches:
            return None
        page = matches[0]
    boosts = {page: 1.5}
    for related in known[page].related:
        if related in known:
            boosts.setdefault(related, 1.2)
    return boosts


def _sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def record(store, metrics, identity, question: str, answer: AnswerResult, started: float) -> None:
    """Log the ask (pseudonymous) and count it; a logging failure never fails the answer."""
    metrics.asks.labels(str(answer.answered).lower(), answer.mode).inc()
    try:
        store.log_ask(answer_id=answer.id, question=question, answered=answer.answered,
                      confidence=answer.confidence, cited_pages=[c.path for c in answer.citations],
                      latency_ms=(time.perf_counter() - started) * 1000, mode=answer.mode,
                      fallback=answer.fallback, user_id=identity.user_id)
    except Exception:
        logger.exception("could not log ask %s", answer.id)


@router.post("/ask", response_model=AskResponse, responses={200: {"content": {"text/event-stream": {}}}})
def ask_endpoint(request: AskRequest, retriever: RetrieverDep, settings: SettingsDep, store: StoreDep,
                 metrics: MetricsDep, identity: IdentityDep):
    """Answer a question from the playbooks, citing the sections used.

    With ``"stream": true`` the reply is server-sent events: ``token`` events carry text as it
    is generated, and a final ``done`` event carries the whole response (citations included),
    which replaces the streamed text.
    """
    if not request.question.strip():
        from fastapi import HTTPException

        raise HTTPException(status_code=400, detail="question is blank")
    started = time.perf_counter()
    question = request.question.strip()
    filters = Filters(tuple(request.filters.type), tuple(request.filters.tag), tuple(request.filters.audience))
    events = ask_events(retriever, question, settings=AnswerSettings.from_settings(settings, retriever),
                        llm=ChatClient.from_settings(settings), filters=filters, mode=request.mode,
                        stream=request.stream, viewer=identity.viewer,
                        boost_pages=boosts_for(retriever, request.page, identity.viewer))
    if not request.stream:
        answer = final_answer(events)
        record(store, metrics, identity, question, answer, started)
        return to_response(answer)

    def body():
        for event in events:
            if isinstance(event, TokenEvent):
                yield _sse("token", {"text": event.text})
            else:
                record(store, metrics, identity, question, event.answer, started)
                yield _sse("done", to_response(event.answer).model_dump(mode="json"))

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
