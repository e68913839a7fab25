"""Evaluation and tuning on a tiny in-memory index and on hand-made rank tables. No model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search_service.evaluation import (
    COMPARISONS,
    CachedQueries,
    Question,
    RetrievalMetrics,
    ablation_warnings,
    choose_threshold,
    comparison_retrievers,
    evaluate_retrieval,
    save_tuning,
    tune_fusion,
    tune_grid,
)
from search_service.evaluation.abstention import AbstentionRates, AbstentionReport, ThresholdRates, leave_one_out
from search_service.evaluation.metrics import rank_of_gold
from search_service.evaluation.tuning import QUICK_RERANK, QUICK_WEIGHTS, RecommendedSetting, TuneReport, cross_validated_ranks
from search_service.ranking import DEFAULT_RANKING, HybridRetriever
from search_service.settings import TUNING_FILE, Settings
from tests.unit.synthetic_ranking import SECTIONS, FixedEmbedder, make_index

QUESTIONS = [
    Question(id="funds", question="who funds pilots", gold=["a/funding.md"]),
    Question(id="intake", question="email the intake form", gold=["a/new-intake.md"]),
    Question(id="leave", question="book leave", gold=["a/holidays.md"]),
    Question(id="words", question="holiday leave booking", gold=["a/holidays.md"]),
    Question(id="costs", question="who funds pilots", gold=["a/costs.md"]),
    Question(id="none", question="what is the canteen menu", answerable=False),
]


def test_metrics_from_gold_ranks():
    assert rank_of_gold(["a", "b", "c"], ["c", "b"]) == 2 and rank_of_gold(["a"], ["z"]) is None
    metrics = RetrievalMetrics.from_ranks([1, 2, 6, None])
    assert metrics == RetrievalMetrics(recall_at_1=0.25, recall_at_5=0.5, mrr_at_10=round((1 + 1 / 2 + 1 / 6) / 4, 4))
    assert metrics.to_json() == {"recall@1": 0.25, "recall@5": 0.5, "mrr@10": 0.4167}
    assert RetrievalMetrics.from_ranks([11]).mrr_at_10 == 0.0  # beyond the first 10 pages: no credit


def test_eval_warns_when_a_simpler_retriever_wins():
    def m(mrr: float) -> RetrievalMetrics:
        return RetrievalMetrics(0.5, 0.8, mrr)

    metrics = {"hybrid": m(0.70), "fusion": m(0.705), "bm25": m(0.60), "dense": m(0.81), "baseline": m(0.75)}
    [warning] = ablation_warnings(metrics)
    assert "dense 0.810" in warning and "baseline 0.750" in warning and "kb tune" in warning
    assert "fusion" not in warning and "bm25" not in warning  # within the margin, or below
    assert ablation_warnings({"dense": m(0.9)}) == []


def test_retrieval_report_against_hand_ranks():
    retriever = HybridRetriever(make_index(), FixedEmbedder())
    report = evaluate_retrieval(comparison_retrievers(retriever), QUESTIONS)
    assert list(report.metrics) == list(COMPARISONS)
    # By hand: the default weights favour the dense signal, whose vector for "holiday leave booking"
    # means funding (holidays third); "costs" asks what funding answers better (second).
    assert report.metrics["hybrid"] == RetrievalMetrics.from_ranks([1, 1, 1, 3, 2])
    assert report.metrics["bm25"] == RetrievalMetrics.from_ranks([1, 1, 1, 1, 2])  # the words are right
    assert [(m.id, m.rank) for m in report.misses] == [("words", 3), ("costs", 2)]
    [warning] = report.warnings  # BM25 alone beats the hybrid on these questions: `kb tune` is advised
    assert "bm25 0.900" in warning and "kb tune" in warning
    assert (report.questions.total, report.questions.answerable, report.questions.unanswerable) == (6, 5, 1)
    printed = json.loads(json.dumps(report.to_json()))
    assert list(printed) == [*COMPARISONS, "questions", "misses", "warnings"]
    assert printed["hybrid"] == {"recall@1": 0.6, "recall@5": 1.0, "mrr@10": 0.7667}
    assert printed["misses"][0] == {"id": "words", "question": "holiday leave booking", "gold": ["a/holidays.md"],
                                    "rank": 3, "top": ["a/funding.md", "a/costs.md", "a/holidays.md"]}
    assert printed["questions"] == {"total": 6, "answerable": 5, "unanswerable": 1}


def test_threshold_rule_declines_most_while_answering_enough():
    answerable = [0.30, 0.60, 0.70, 0.80, 0.90]
    unanswerable = [0.10, 0.20, 0.55]
    assert choose_threshold(answerable, unanswerable, min_answered=1.0) == pytest.approx(0.25)
    # Declining 0.55 too costs one answerable question in five (0.30), allowed at 0.8.
    assert choose_threshold(answerable, unanswerable, min_answered=0.8) == pytest.approx(0.575)
    # Nothing meets an impossible floor: the lowest cut, which answers everything.
    assert choose_threshold([0.5], [0.6], min_answered=1.0) < 0.5


def test_leave_one_out_judges_each_question_by_a_threshold_chosen_without_it():
    evidence = [(True, 0.6), (True, 0.7), (True, 0.8), (False, 0.1), (False, 0.55)]
    # In-sample the cut 0.575 answers all three and declines both. Left out, the answerable 0.6 meets
    # the cut the others set (0.625) and is declined; the unanswerable 0.55 meets theirs (0.35) and is answered.
    assert choose_threshold([0.6, 0.7, 0.8], [0.1, 0.55], min_answered=1.0) == pytest.approx(0.575)
    assert leave_one_out(evidence, min_answered=1.0) == AbstentionRates(answered_rate=0.6667, abstain_rate=0.5)


def test_cross_validation_scores_each_question_with_a_setting_chosen_without_it():
    # In-sample setting 0 looks best (MRR 0.6 against 0.5). Left out, each of questions 0-3 is judged
    # by the setting the other four prefer, which misses it; question 4 (a tie: the first) is found.
    ranks = np.array([[1, 1, np.inf, np.inf, 1], [np.inf, np.inf, 1, 1, 2]], dtype=float)
    np.testing.assert_array_equal(cross_validated_ranks(ranks, folds=5), [np.inf, np.inf, np.inf, np.inf, 1])


def test_tune_grid_measures_the_setting_in_force():
    assert len(tune_grid(DEFAULT_RANKING, quick=True)) == len(QUICK_WEIGHTS) * len(QUICK_RERANK)
    tuned = DEFAULT_RANKING.with_tuning(fusion_weights=(0.2, 0.1, 0.4), rerank_weight=0.6, rerank_depth=30)
    assert tune_grid(tuned, quick=True)[-1] == ((0.2, 0.1, 0.4), 0.6)
    off = DEFAULT_RANKING.with_tuning(fusion_weights=(0.4, 0.1, 0.1), rerank_weight=0.3, rerank_depth=0)
    assert ((0.4, 0.1, 0.1), 0.0) in tune_grid(off, quick=True)  # depth 0: re-ranking counts as off


def test_cached_queries_encode_each_text_once():
    embedder = FixedEmbedder()
    cached = CachedQueries(embedder)
    for _ in range(3):
        cached.embed_query("book leave")
        cached.encode_query("book leave")
    assert embedder.calls == [("embed", "book leave"), ("encode", "book leave")]


def test_tune_fusion_leaves_the_retriever_alone_and_encodes_each_question_once():
    tokens = [vector for *_, vector in SECTIONS]
    embedder = FixedEmbedder()
    retriever = HybridRetriever(make_index(tokens=tokens), embedder)
    parts, config = retriever.parts, retriever.config
    report = tune_fusion(retriever, QUESTIONS, folds=5, quick=True)
    assert retriever.parts is parts and retriever.config is config and retriever.queries is embedder
    assert report.settings_tried == 6 and report.questions == 5
    texts = {q.question for q in QUESTIONS if q.answerable}
    assert sorted(embedder.calls) == sorted({(kind, t) for kind in ("embed", "encode") for t in texts})
    assert report.current_metrics == evaluate_retrieval({"hybrid": retriever}, QUESTIONS).metrics["hybrid"]


def _tune_report(unanswerable: int) -> TuneReport:
    metrics = RetrievalMetrics(0.7, 0.9, 0.8)
    abstention = AbstentionReport(0.34, 0.95, 0.8, ThresholdRates(0.3, 0.97, 0.6), AbstentionRates(0.94, 0.75),
                                  unanswerable, 0.92)
    return TuneReport(questions=100, settings_tried=7, recommended=RecommendedSetting((0.2, 0.1, 0.4), 0.6, 30),
                      recommended_metrics=metrics, cross_validated=metrics, current_metrics=None, folds=5,
                      abstention=abstention)


def test_tune_report_prints_the_keys_scripts_read():
    printed = _tune_report(20).to_json()
    assert list(printed) == ["questions", "settings_tried", "recommended", "recommended_metrics", "cross_validated",
                             "current_metrics", "folds", "abstention"]
    assert printed["recommended"] == {"fusion_weights": [0.2, 0.1, 0.4], "rerank_weight": 0.6, "rerank_depth": 30}
    assert list(printed["abstention"]) == ["threshold", "answered_rate", "abstain_rate", "current", "leave_one_out",
                                           "unanswerable_questions", "min_answered"]
    assert printed["abstention"]["current"] == {"threshold": 0.3, "answered_rate": 0.97, "abstain_rate": 0.6}


@pytest.mark.parametrize(("unanswerable", "threshold"), [(20, 0.34), (10, None)])
def test_save_tuning_keeps_a_threshold_only_when_enough_questions_calibrated_it(tmp_path, unanswerable, threshold):
    saved = save_tuning(_tune_report(unanswerable), content_dir=tmp_path, questions_file=tmp_path / "q.jsonl",
                        settings=Settings())
    record = json.loads((tmp_path / TUNING_FILE).read_text())
    assert saved.path == tmp_path / TUNING_FILE and saved.threshold_saved is (threshold is not None)
    assert record["fusion_weights"] == [0.2, 0.1, 0.4] and record["abstain_threshold"] == threshold
    assert record["abstention_leave_one_out"] == ({"answered_rate": 0.94, "abstain_rate": 0.75} if threshold else None)
    assert record["questions"] == "q.jsonl" and record["chosen_by"] == "kb tune"
    # The file is what the index carries: the settings read it back as the corpus's tuning.
    assert Settings().ranking_config(record).fusion_weights == (0.2, 0.1, 0.4)
