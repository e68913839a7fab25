"""POST /v1/ask: an answer with citations, or an honest "not covered"; optionally streamed (SSE)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from search_service import service
from search_service.answering import AnswerMode, AnswerResult, DoneEvent, TokenEvent, final_answer
from search_service.api.deps import IdentityDep, MetricsDep, RetrieverDep, SettingsDep, StoreDep
from search_service.api.metrics import Metrics
from search_service.responses import AskResponse, ask_response
from search_service.store import Store

router = APIRouter(prefix="/v1", tags=["ask"])
# Set to "false" on an answer whose log the database refused: it can then not be rated (409).
ASK_LOGGED_HEADER = "X-KB-Ask-Logged"


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


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _record(store: Store, metrics: Metrics, user_id: str, question: str, answer: AnswerResult, started: float) -> bool:
    """Count and log the ask; False (and counted as a store error) when the log could not be written."""
    metrics.asks.labels(str(answer.answered).lower(), answer.mode).inc()
    logged = service.record_ask(store, user_id=user_id, question=question, answer=answer, started=started)
    if not logged:
        metrics.store_errors.labels("ask_log").inc()
    return logged


@router.post("/ask", response_model=AskResponse, responses={200: {"content": {"text/event-stream": {}}}})
def ask_endpoint(request: AskRequest, retriever: RetrieverDep, settings: SettingsDep, store: StoreDep,
                 metrics: MetricsDep, identity: IdentityDep, response: Response) -> AskResponse | StreamingResponse:
    """Answer a question from the playbooks, citing the sections used.

    With ``"stream": true`` the reply is server-sent events: ``token`` events carry text as it
    is generated, and a final ``done`` event carries the whole response (citations included),
    which replaces the streamed text.

    The answer is given even when the feedback database cannot log it; the ``X-KB-Ask-Logged: false``
    header (not streamed replies, whose headers precede the log) then says it cannot be rated.
    """
    if not request.question.strip():
        from fastapi import HTTPException

        raise HTTPException(status_code=400, detail="question is blank")
    started = time.perf_counter()
    question = request.question.strip()
    filters = service.make_filters(request.filters.type, request.filters.tag, request.filters.audience)
    events = service.ask_events(retriever, question, settings=settings, filters=filters, viewer=identity.viewer,
                                mode=request.mode, stream=request.stream, page=request.page)
    if not request.stream:
        answer = final_answer(events)
        if not _record(store, metrics, identity.user_id, question, answer, started):
            response.headers[ASK_LOGGED_HEADER] = "false"
        return ask_response(answer)

    def body() -> Iterator[str]:
        for event in events:
            if isinstance(event, TokenEvent):
                yield _sse("token", {"text": event.text})
            elif isinstance(event, DoneEvent):
                _record(store, metrics, identity.user_id, question, event.answer, started)
                yield _sse("done", ask_response(event.answer).model_dump(mode="json"))

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
