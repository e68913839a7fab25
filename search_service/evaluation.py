"""Retrieval evaluation on labelled questions: recall@1, recall@5 and MRR@10 per retriever."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from search_service.ranking.retriever import HybridRetriever, RetrievalParams, Viewer

# Evaluation measures ranking, not access control: it sees every page.
EVAL_VIEWER = Viewer(all_access=True)
MODES = ("hybrid", "fusion", "bm25", "dense", "baseline")  # see retrieval.Mode


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
    report["warnings"] = ablation_warnings(report)
    return report


def ablation_warnings(report: dict, *, margin: float = 0.01) -> list[str]:
    """Advice when a simpler retriever beats the hybrid's MRR@10 on these questions by more than
    ``margin`` (one question moving from rank 1 to 2 in 40 is 0.0125): another corpus may want
    other weights (`kb tune`)."""
    if "hybrid" not in report:
        return []
    hybrid = report["hybrid"]["mrr@10"]
    beaten = [f"{mode} {report[mode]['mrr@10']:.3f}" for mode in MODES[1:]
              if mode in report and report[mode]["mrr@10"] > hybrid + margin]
    if not beaten:
        return []
    message = (f"on these questions the hybrid (MRR@10 {hybrid:.3f}) is beaten by {', '.join(beaten)}: "
               "the default weights may not suit this corpus; run `kb tune` with the same questions")
    return [message]


def evaluate_answers(retriever: HybridRetriever, questions: list[Question], *, settings) -> dict:
    """Answer metrics of the extractive answerer (see module docstring of ``answering``).

    ``answered_rate``: answerable questions that got an answer; ``citation_hit_rate``: answered
    answerable questions whose first or second citation is a gold page; ``abstain_rate``:
    unanswerable questions that were declined.
    """
    from search_service.answering import AnswerSettings, ask

    answer_settings = AnswerSettings.from_settings(settings, retriever)
    answered = hits = declined = 0
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    details = []
    for q in questions:
        result = ask(retriever, q.question, settings=answer_settings, viewer=EVAL_VIEWER)
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
        "threshold": answer_settings.abstain_threshold,
        "details": details,
    }


# Fusion settings `kb tune` tries: (dense, section keywords, page keywords) x re-rank weight (0 = off).
TUNE_WEIGHTS = [(d, c, p) for d in (0.2, 0.4, 0.6, 0.8) for c in (0.1, 0.2, 0.3) for p in (0.1, 0.2, 0.3, 0.4)]
TUNE_RERANK = (0.0, 0.3, 0.6)
QUICK_WEIGHTS = [(0.4, 0.1, 0.1), (0.4, 0.3, 0.4), (0.8, 0.1, 0.2)]
QUICK_RERANK = (0.0, 0.3)


def tune_grid(params: RetrievalParams, *, quick: bool = False) -> list[tuple[tuple[float, float, float], float]]:
    """The (fusion weights, re-rank weight) settings `kb tune` tries: its grid, plus the setting in
    force when the grid lacks it (weights from a tuning file, say), so that one is always measured."""
    grid = [(w, r) for w in (QUICK_WEIGHTS if quick else TUNE_WEIGHTS) for r in (QUICK_RERANK if quick else TUNE_RERANK)]
    in_force = ((params.dense_weight, params.chunk_keyword_weight, params.page_keyword_weight),
                params.rerank_weight if params.rerank_depth else 0.0)
    return grid if in_force in grid else [*grid, in_force]


def tune_fusion(retriever: HybridRetriever, questions: list[Question], *, folds: int = 5, quick: bool = False,
                progress=None) -> dict:
    """Choose fusion weights for this corpus on its labelled questions, with an honest estimate.

    Every setting of the grid ranks every answerable question once. The setting with the best
    MRR@10 (then recall@5) over all questions is recommended; k-fold cross-validation repeats
    that choice without each fold's questions and scores it on them, which estimates what the
    choice is worth on questions it was not chosen on. ``progress(n)`` is called per setting.
    """
    import dataclasses

    import numpy as np

    answerable = [q for q in questions if q.answerable]
    if len(answerable) < folds:
        raise ValueError(f"tuning needs at least {folds} answerable questions, got {len(answerable)}")
    base = retriever.params
    # Settings with re-ranking on use the configured depth, or the default one if it is turned off.
    depth = base.rerank_depth or RetrievalParams().rerank_depth
    encodings: dict[str, object] = {}
    embedder = retriever.embedder
    original = embedder.encode_query

    def cached(text: str):  # each question is encoded once, not once per setting
        if text not in encodings:
            encodings[text] = original(text)
        return encodings[text]

    grid = tune_grid(base, quick=quick)
    ranks = np.full((len(grid), len(answerable)), np.inf)
    embedder.encode_query = cached  # type: ignore[method-assign]
    try:
        for g, ((dense, section, page), rerank) in enumerate(grid):
            retriever.params = dataclasses.replace(base, dense_weight=dense, chunk_keyword_weight=section,
                                                   page_keyword_weight=page, rerank_weight=rerank,
                                                   rerank_depth=depth if rerank else 0)
            for n, q in enumerate(answerable):
                result = retriever.search(q.question, k=10, viewer=EVAL_VIEWER)
                rank = rank_of_gold([h.page_path for h in result.hits], q.gold)
                ranks[g, n] = rank if rank is not None else np.inf
            if progress:
                progress(1)
    finally:
        retriever.params = base
        embedder.encode_query = original  # type: ignore[method-assign]

    def metrics(row: np.ndarray) -> dict[str, float]:
        return retrieval_metrics([None if np.isinf(r) else int(r) for r in row])

    def best(columns: np.ndarray) -> int:
        def key(g: int) -> tuple[float, float]:
            m = metrics(ranks[g, columns])
            return m["mrr@10"], m["recall@5"]

        return max(range(len(grid)), key=key)

    order = np.random.default_rng(0).permutation(len(answerable))
    held_out = np.full(len(answerable), np.inf)
    for fold in range(folds):
        test = order[fold::folds]
        train = np.setdiff1d(order, test)
        held_out[test] = ranks[best(train), test]
    chosen = best(np.arange(len(answerable)))
    (dense, section, page), rerank = grid[chosen]
    current = next((g for g, ((d, c, p), r) in enumerate(grid)
                    if (d, c, p) == (base.dense_weight, base.chunk_keyword_weight, base.page_keyword_weight)
                    and r == (base.rerank_weight if base.rerank_depth else 0.0)), None)
    return {
        "questions": len(answerable),
        "settings_tried": len(grid),
        "recommended": {"fusion_weights": [dense, section, page], "rerank_weight": rerank,
                        "rerank_depth": depth if rerank else 0},
        "recommended_metrics": metrics(ranks[chosen]),
        "cross_validated": metrics(held_out),
        "current_metrics": metrics(ranks[current]) if current is not None else None,
        "folds": folds,
    }


MIN_ANSWERED = 0.92  # the abstention rule's floor: at least this share of answerable questions answered
MIN_UNANSWERABLE_TO_SAVE = 15  # `kb tune --save` keeps a threshold calibrated on at least this many


def choose_threshold(answerable: list[float], unanswerable: list[float], *, min_answered: float = MIN_ANSWERED) -> float:
    """The abstention threshold that declines the most unanswerable questions while answering at
    least ``min_answered`` of the answerable ones (ties: the one answering the most), placed midway
    between the two evidence values it separates."""
    values = sorted(set(answerable) | set(unanswerable))
    # Rounded as printed for KB_ABSTAIN_THRESHOLD, so the rates reported are those of the printed value.
    cuts = [round(values[0] - 0.01, 4)] + [round((a + b) / 2, 4) for a, b in itertools.pairwise(values)]
    best, best_key = cuts[0], (-1.0, -1.0)
    for cut in cuts:
        answered = sum(e >= cut for e in answerable) / (len(answerable) or 1)
        if answered < min_answered:
            continue
        key = (sum(e < cut for e in unanswerable) / (len(unanswerable) or 1), answered)
        if key > best_key:
            best, best_key = cut, key
    return best


def tune_abstention(retriever: HybridRetriever, questions: list[Question], *, current: float,
                    min_answered: float = MIN_ANSWERED) -> dict | None:
    """Recommend ``KB_ABSTAIN_THRESHOLD`` for a corpus from its labelled questions, with a
    leave-one-out estimate (the threshold re-chosen without the question being judged).
    None when the file has no unanswerable questions to calibrate on."""
    from search_service.answering import evidence_score

    evidence = [(q.answerable, evidence_score(retriever.search(q.question, k=10, viewer=EVAL_VIEWER))) for q in questions]
    answerable = [e for ok, e in evidence if ok]
    unanswerable = [e for ok, e in evidence if not ok]
    if not unanswerable or not answerable:
        return None

    def rates(threshold: float) -> dict[str, float]:
        return {"answered_rate": round(sum(e >= threshold for e in answerable) / len(answerable), 4),
                "abstain_rate": round(sum(e < threshold for e in unanswerable) / len(unanswerable), 4)}

    threshold = choose_threshold(answerable, unanswerable, min_answered=min_answered)
    answered = declined = 0
    for n, (ok, value) in enumerate(evidence):
        rest = evidence[:n] + evidence[n + 1:]
        cut = choose_threshold([e for a, e in rest if a], [e for a, e in rest if not a], min_answered=min_answered)
        answered += ok and value >= cut
        declined += (not ok) and value < cut
    return {"threshold": round(threshold, 4), **rates(threshold), "current": {"threshold": current, **rates(current)},
            "leave_one_out": {"answered_rate": round(answered / len(answerable), 4),
                              "abstain_rate": round(declined / len(unanswerable), 4)},
            "unanswerable_questions": len(unanswerable), "min_answered": min_answered}

