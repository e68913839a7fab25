"""`kb tune`: choose a corpus's fusion weights from its own labelled questions, estimate what the
choice is worth by cross-validation, and save it next to the content."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search_service.evaluation.abstention import MIN_UNANSWERABLE_TO_SAVE, AbstentionReport, tune_abstention
from search_service.evaluation.answers import threshold_in_force
from search_service.evaluation.metrics import RetrievalMetrics, rank_of_gold
from search_service.evaluation.questions import EVAL_VIEWER, Question, answerable
from search_service.indexing.embedding import QueryEncoding
from search_service.ranking import DEFAULT_RANKING, FusionWeights, HybridRetriever, QueryEncoder, RankingConfig
from search_service.settings import TUNING_FILE, CorpusTuning, Settings

logger = logging.getLogger(__name__)

# Fusion settings `kb tune` tries: (dense, section keywords, page keywords) x re-rank weight (0 = off).
TUNE_WEIGHTS = [(d, c, p) for d in (0.2, 0.4, 0.6, 0.8) for c in (0.1, 0.2, 0.3) for p in (0.1, 0.2, 0.3, 0.4)]
TUNE_RERANK = (0.0, 0.3, 0.6)
# `--quick`: the defaults, the previous defaults (chosen on our pages alone) and a dense-heavy setting.
QUICK_WEIGHTS = [(0.4, 0.1, 0.1), (0.4, 0.3, 0.4), (0.8, 0.1, 0.2)]
QUICK_RERANK = (0.0, 0.3)
FOLD_SEED = 0  # fixed, so that the cross-validated estimate is the same on every run

GridSetting = tuple[FusionWeights, float]  # fusion weights and re-rank weight (0: re-ranking off)
Progress = Callable[[int], object]


def tune_grid(config: RankingConfig, *, quick: bool = False) -> list[GridSetting]:
    """The (fusion weights, re-rank weight) settings `kb tune` tries: its grid, plus the setting in
    force when the grid lacks it (weights from a tuning file, say), so that one is always measured."""
    weights, reranks = (QUICK_WEIGHTS, QUICK_RERANK) if quick else (TUNE_WEIGHTS, TUNE_RERANK)
    grid = [(w, r) for w in weights for r in reranks]
    in_force = setting_in_force(config)
    return grid if in_force in grid else [*grid, in_force]


def setting_in_force(config: RankingConfig) -> GridSetting:
    """A configuration's place in the grid (a re-ranker of depth 0 counts as weight 0)."""
    return config.fusion_weights, config.rerank_weight if config.rerank_depth else 0.0


def rerank_depth_for(config: RankingConfig, rerank_weight: float) -> int:
    """The depth of a setting: 0 without re-ranking, else the configured depth (or the default one if
    the configuration turns the stage off, so that the tuner still tries it)."""
    return (config.rerank_depth or DEFAULT_RANKING.rerank_depth) if rerank_weight else 0


def config_for(config: RankingConfig, setting: GridSetting) -> RankingConfig:
    """The configuration with one grid setting applied."""
    weights, rerank = setting
    return config.with_tuning(fusion_weights=weights, rerank_weight=rerank, rerank_depth=rerank_depth_for(config, rerank))


class CachedQueries:
    """A query encoder that encodes each text once: `kb tune` asks every question under every setting."""

    def __init__(self, encoder: QueryEncoder) -> None:
        self.encoder = encoder
        self._vectors: dict[str, np.ndarray] = {}
        self._encodings: dict[str, QueryEncoding] = {}

    def embed_query(self, text: str) -> np.ndarray:
        """The query's sentence vector, computed on first use."""
        if text not in self._vectors:
            self._vectors[text] = self.encoder.embed_query(text)
        return self._vectors[text]

    def encode_query(self, text: str) -> QueryEncoding:
        """The query's sentence and word-piece vectors, computed on first use."""
        if text not in self._encodings:
            self._encodings[text] = self.encoder.encode_query(text)
        return self._encodings[text]


@dataclass(frozen=True)
class RecommendedSetting:
    """The ranking weights `kb tune` recommends (the tunable part of a :class:`RankingConfig`)."""

    fusion_weights: FusionWeights
    rerank_weight: float
    rerank_depth: int

    def to_json(self) -> dict[str, Any]:
        """The setting as `kb tune --json` prints it."""
        return {"fusion_weights": list(self.fusion_weights), "rerank_weight": self.rerank_weight,
                "rerank_depth": self.rerank_depth}

    def applied_to(self, config: RankingConfig) -> RankingConfig:
        """The configuration with this setting in force."""
        return config.with_tuning(fusion_weights=self.fusion_weights, rerank_weight=self.rerank_weight,
                                  rerank_depth=self.rerank_depth)


@dataclass(frozen=True)
class TuneReport:
    """What `kb tune` measured: the recommended setting with its figures on every question, the
    cross-validated estimate of choosing that way, the current setting's figures, and the
    abstention threshold (None without unanswerable questions)."""

    questions: int  # answerable questions ranked
    settings_tried: int
    recommended: RecommendedSetting
    recommended_metrics: RetrievalMetrics
    cross_validated: RetrievalMetrics
    current_metrics: RetrievalMetrics | None
    folds: int
    abstention: AbstentionReport | None = None
    saved: str | None = None  # the tuning file written by `--save`

    def to_json(self) -> dict[str, Any]:
        """The report as `kb tune --json` prints it."""
        out = {"questions": self.questions, "settings_tried": self.settings_tried,
               "recommended": self.recommended.to_json(), "recommended_metrics": self.recommended_metrics.to_json(),
               "cross_validated": self.cross_validated.to_json(),
               "current_metrics": self.current_metrics.to_json() if self.current_metrics else None,
               "folds": self.folds, "abstention": self.abstention.to_json() if self.abstention else None}
        return {**out, "saved": self.saved} if self.saved is not None else out


def grid_ranks(retriever: HybridRetriever, grid: list[GridSetting], questions: list[Question],
               progress: Progress | None = None) -> np.ndarray:
    """The gold rank (inf: not in the top 10) of each question under each setting: one retriever per
    setting over the same index, each query encoded once. ``progress(1)`` after each setting."""
    queries = CachedQueries(retriever.queries)
    ranks = np.full((len(grid), len(questions)), np.inf)
    for g, setting in enumerate(grid):
        tried = HybridRetriever(retriever.index, retriever.embedder, config_for(retriever.config, setting),
                                queries=queries)
        for n, q in enumerate(questions):
            rank = rank_of_gold([h.page_path for h in tried.search(q.question, k=10, viewer=EVAL_VIEWER).hits], q.gold)
            ranks[g, n] = rank if rank is not None else np.inf
        if progress:
            progress(1)
    return ranks


def _metrics(ranks: np.ndarray) -> RetrievalMetrics:
    return RetrievalMetrics.from_ranks([None if np.isinf(r) else int(r) for r in ranks])


def _best(ranks: np.ndarray, columns: np.ndarray) -> int:
    """The setting with the best MRR@10 (then recall@5) on these questions (ties: the first)."""
    return max(range(ranks.shape[0]), key=lambda g: _metrics(ranks[g, columns]).sort_key())


def cross_validated_ranks(ranks: np.ndarray, folds: int) -> np.ndarray:
    """Each question's rank under the setting chosen without its fold (k-fold cross-validation)."""
    n = ranks.shape[1]
    order = np.random.default_rng(FOLD_SEED).permutation(n)
    held_out = np.full(n, np.inf)
    for fold in range(folds):
        test = order[fold::folds]
        held_out[test] = ranks[_best(ranks, np.setdiff1d(order, test)), test]
    return held_out


def tune_fusion(retriever: HybridRetriever, questions: list[Question], *, folds: int = 5, quick: bool = False,
                progress: Progress | None = None) -> TuneReport:
    """Choose fusion weights for this corpus on its labelled questions, with an honest estimate.

    Every setting of the grid ranks every answerable question once. The setting with the best
    MRR@10 (then recall@5) over all questions is recommended; k-fold cross-validation repeats
    that choice without each fold's questions and scores it on them, which estimates what the
    choice is worth on questions it was not chosen on. The retriever is not changed.

    Raises:
        ValueError: with fewer answerable questions than folds.
    """
    labelled = answerable(questions)
    if len(labelled) < folds:
        raise ValueError(f"tuning needs at least {folds} answerable questions, got {len(labelled)}")
    grid = tune_grid(retriever.config, quick=quick)
    ranks = grid_ranks(retriever, grid, labelled, progress)
    chosen = _best(ranks, np.arange(len(labelled)))
    weights, rerank = grid[chosen]
    current = grid.index(setting_in_force(retriever.config))
    return TuneReport(
        questions=len(labelled), settings_tried=len(grid),
        recommended=RecommendedSetting(weights, rerank, rerank_depth_for(retriever.config, rerank)),
        recommended_metrics=_metrics(ranks[chosen]), cross_validated=_metrics(cross_validated_ranks(ranks, folds)),
        current_metrics=_metrics(ranks[current]), folds=folds,
    )


def tune_corpus(retriever: HybridRetriever, questions: list[Question], *, settings: Settings, folds: int = 5,
                quick: bool = False, progress: Progress | None = None) -> TuneReport:
    """`kb tune`: the fusion weights (:func:`tune_fusion`) and the abstention threshold
    (:func:`tune_abstention`, against the threshold in force) for a corpus."""
    report = tune_fusion(retriever, questions, folds=folds, quick=quick, progress=progress)
    abstention = tune_abstention(retriever, questions, current=threshold_in_force(settings, retriever))
    return dataclasses.replace(report, abstention=abstention)


@dataclass(frozen=True)
class SavedTuning:
    """What `kb tune --save` wrote, and what still overrides it."""

    path: Path
    threshold_saved: bool  # False when too few unanswerable questions calibrated it
    unanswerable_questions: int
    overridden: list[str]  # settings set in the environment, which still win over the file


def save_tuning(report: TuneReport, *, content_dir: Path, questions_file: Path, settings: Settings) -> SavedTuning:
    """Write the recommended weights (and the abstention threshold, when at least
    ``MIN_UNANSWERABLE_TO_SAVE`` unanswerable questions calibrated it) to the content folder's
    tuning file. Re-index the content for them to apply."""
    rec, abstention = report.recommended, report.abstention
    found = abstention.unanswerable_questions if abstention is not None else 0
    calibrated = abstention if abstention is not None and found >= MIN_UNANSWERABLE_TO_SAVE else None
    tuning = CorpusTuning(fusion_weights=rec.fusion_weights, rerank_weight=rec.rerank_weight,
                          rerank_depth=rec.rerank_depth,
                          abstain_threshold=calibrated.threshold if calibrated is not None else None)
    record = {**tuning.model_dump(mode="json"), "chosen_by": "kb tune", "questions": questions_file.name,
              "answerable_questions": report.questions, "recommended_metrics": report.recommended_metrics.to_json(),
              "cross_validated": report.cross_validated.to_json(),
              "abstention_leave_one_out": dataclasses.asdict(calibrated.leave_one_out) if calibrated else None,
              "saved_on": settings.current_date().isoformat()}
    path = content_dir / TUNING_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    overridden = sorted(set(CorpusTuning.model_fields) & settings.model_fields_set)
    return SavedTuning(path, calibrated is not None, found, overridden)
