"""Evaluation on labelled questions: the hybrid against its ablations (`kb eval`), answer quality,
and tuning a corpus's weights and abstention threshold (`kb tune`).

Evaluators never change what they evaluate: comparison retrievers are assembled from the
service retriever's parts, and tuning builds one retriever per setting.
"""

from __future__ import annotations

from search_service.evaluation.abstention import (
    MIN_ANSWERED,
    MIN_UNANSWERABLE_TO_SAVE,
    AbstentionRates,
    AbstentionReport,
    ThresholdRates,
    choose_threshold,
    tune_abstention,
)
from search_service.evaluation.answers import AnswerDetail, AnswerReport, evaluate_answers
from search_service.evaluation.comparison import (
    COMPARISONS,
    Miss,
    QuestionCounts,
    RetrievalReport,
    ablation_warnings,
    comparison_retrievers,
    evaluate_retrieval,
)
from search_service.evaluation.metrics import RetrievalMetrics, rank_of_gold
from search_service.evaluation.questions import EVAL_VIEWER, Question, load_questions
from search_service.evaluation.report import EvalReport, evaluate
from search_service.evaluation.tuning import (
    QUICK_RERANK,
    QUICK_WEIGHTS,
    TUNE_RERANK,
    TUNE_WEIGHTS,
    CachedQueries,
    RecommendedSetting,
    SavedTuning,
    TuneReport,
    save_tuning,
    tune_corpus,
    tune_fusion,
    tune_grid,
)

__all__ = [
    "COMPARISONS",
    "EVAL_VIEWER",
    "MIN_ANSWERED",
    "MIN_UNANSWERABLE_TO_SAVE",
    "QUICK_RERANK",
    "QUICK_WEIGHTS",
    "TUNE_RERANK",
    "TUNE_WEIGHTS",
    "AbstentionRates",
    "AbstentionReport",
    "AnswerDetail",
    "AnswerReport",
    "CachedQueries",
    "EvalReport",
    "Miss",
    "Question",
    "QuestionCounts",
    "RecommendedSetting",
    "RetrievalMetrics",
    "RetrievalReport",
    "SavedTuning",
    "ThresholdRates",
    "TuneReport",
    "ablation_warnings",
    "choose_threshold",
    "comparison_retrievers",
    "evaluate",
    "evaluate_answers",
    "evaluate_retrieval",
    "load_questions",
    "rank_of_gold",
    "save_tuning",
    "tune_abstention",
    "tune_corpus",
    "tune_fusion",
    "tune_grid",
]
