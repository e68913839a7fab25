"""POST /v1/feedback and GET /v1/analytics/gaps: closing the loop with authors."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from search_service import service
from search_service.api.deps import IdentityDep, MetricsDep, RetrieverDep, SettingsDep, StoreDep
from search_service.store import NotYourAnswer, StoreUnavailable, UnknownAnswer, UnloggedAnswer

router = APIRouter(prefix="/v1", tags=["feedback"])


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_id: str = Field(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")
    rating: Literal["up", "down"]
    comment: str = Field("", max_length=2000)


class FeedbackOut(BaseModel):
    answer_id: str
    rating: str
    comment: str


@router.post("/feedback", status_code=201, response_model=FeedbackOut)
def post_feedback(body: FeedbackIn, store: StoreDep, identity: IdentityDep, request_metrics: MetricsDep) -> FeedbackOut:
    """Rate an answer you were given. Rating it again replaces your earlier rating (idempotent).

    Only the person who asked may rate an answer (403 for anyone else). An answer given while the
    feedback database could not log it cannot be rated (409); while the database is unavailable,
    every rating is refused with a 503 rather than acknowledged and lost.
    """
    try:
        saved = store.add_feedback(answer_id=body.answer_id, rating=body.rating, comment=body.comment,
                                   user_id=identity.user_id)
    except UnknownAnswer:
        raise HTTPException(status_code=404, detail=f"no answer with id {body.answer_id}") from None
    except UnloggedAnswer:
        raise HTTPException(status_code=409, detail=(
            f"answer {body.answer_id} was given while the feedback database was unavailable, so it was not "
            "logged and cannot be rated; ask the question again and rate the new answer")) from None
    except NotYourAnswer:
        raise HTTPException(status_code=403, detail=(
            f"answer {body.answer_id} was given to someone else; only the person who asked may rate it")) from None
    except StoreUnavailable:
        request_metrics.store_errors.labels("feedback").inc()
        raise
    request_metrics.feedback.labels(body.rating).inc()
    return FeedbackOut(answer_id=saved.answer_id, rating=saved.rating, comment=saved.comment)


@router.get("/analytics/gaps", response_model=None)
def get_gaps(
    store: StoreDep,
    retriever: RetrieverDep,
    settings: SettingsDep,
    identity: IdentityDep,
    days: Annotated[int | None, Query(ge=1, le=3650, description="Only questions from the last N days.")] = None,
    format: Annotated[Literal["json", "markdown", "html"], Query(description="Output format.")] = "json",
) -> dict[str, object] | PlainTextResponse | HTMLResponse:
    """Unanswered and down-rated questions grouped by meaning, with owners to route them to."""
    identity.require_admin()
    report = service.content_gaps(store, retriever, settings=settings, days=days)
    if format == "markdown":
        return PlainTextResponse(service.render_gaps(report, "markdown"), media_type="text/markdown")
    if format == "html":
        return HTMLResponse(service.render_gaps(report, "html"))
    return report.as_dict()

