"""Retrieval evaluation on labelled questions: recall@1, recall@5 and MRR@10 per retriever."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from .retrieval import HybridRetriever, Viewer

# Evaluation measures ranking, not access control: it sees every page.
EVAL_VIEWER = Viewer(all_access=True)
MODES = ("hybrid", "fusion", "bm25", "dense")  # fusion: hybrid without the re-ranking stage


class Question(BaseModel):
    """One labelled question of a JSONL question file."""

    id: str
    question: str = Field(min_length=1)
    answerable: bool = True
    gold: list[str] = Field(default_factory=list)
    section: str = ""
    answer: str = ""


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL question file; raises ValueError naming the bad line."""
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = Question.model_validate(json.loads(line))
        except (ValueError, ValidationError) as exc:
            raise ValueError(f"{path}:{number}: not a valid question: {exc}") from exc
        if question.answerable and not question.gold:
            raise ValueError(f"{path}:{number}: answerable question {question.id!r} has no gold page")
        questions.append(question)
    return questions


def rank_of_gold(pages: list[str], gold: list[str]) -> int | None:
    """1-based rank of the first gold page in a ranked page list, or None."""
    for rank, path in enumerate(pages, start=1):
        if path in gold:
            return rank
    return None


def retrieval_metrics(ranks: list[int | None]) -> dict[str, float]:
    """recall@1, recall@5 and mrr@10 from the gold ranks of answerable questions."""
    n = len(ranks) or 1
    return {
        "recall@1": round(sum(1 for r in ranks if r is not None and r <= 1) / n, 4),
        "recall@5": round(sum(1 for r in ranks if r is not None and r <= 5) / n, 4),
        "mrr@10": round(sum(1.0 / r for r in ranks if r is not None and r <= 10) / n, 4),
    }


def evaluate_retrieval(retriever: HybridRetriever, questions: list[Question], *, modes=MODES) -> dict:
    """Metrics per retrieval mode over the answerable questions, plus the misses of the hybrid."""
    answerable = [q for q in questions if q.answerable]
    report: dict = {}
    misses = []
    for mode in modes:
        ranks = []
        for q in answerable:
            result = retriever.search(q.question, k=10, mode=mode, viewer=EVAL_VIEWER)
            rank = rank_of_gold([h.page_path for h in result.hits], q.gold)
            ranks.append(rank)
            if mode == "hybrid" and (rank is None or rank > 1):
                misses.append({"id": q.id, "question": q.question, "gold": q.gold, "rank": rank,
                               "top": [h.page_path for h in result.hits[:3]]})
        report[mode] = retrieval_metrics(ranks)
    report["questions"] = {"total": len(questions), "answerable": len(answerable),
                           "unanswerable": len(questions) - len(answerable)}
    report["misses"] = misses
    return report


def evaluate_answers(retriever: HybridRetriever, questions: list[Question], *, settings) -> dict:
    """Answer metrics of the extractive answerer (see module docstring of ``answering``).

    ``answered_rate``: answerable questions that got an answer; ``citation_hit_rate``: answered
    answerable questions whose first or second citation is a gold page; ``abstain_rate``:
    unanswerable questions that were declined.
    """
    from .answering import ask

    answered = hits = declined = 0
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    details = []
    for q in questions:
        result = ask(retriever, q.question, settings=settings, viewer=EVAL_VIEWER)
        cited = [c.path for c in result.citations[:2]]
        if q.answerable and result.answered:
            answered += 1
            hits += any(path in q.gold for path in cited)
        if not q.answerable and not result.answered:
            declined += 1
        details.append({"id": q.id, "answerable": q.answerable, "answered": result.answered,
                        "confidence": result.confidence, "cited": cited})
    return {
        "answered_rate": round(answered / (len(answerable) or 1), 4),
        "citation_hit_rate": round(hits / (answered or 1), 4),
        "abstain_rate": round(declined / (len(unanswerable) or 1), 4),
        "threshold": settings.abstain_threshold,
        "details": details,
    }
