"""Quality floors on the labelled questions: retrieval and answers must not silently regress.

The floors are asserted on held-out figures, not on the questions the weights were chosen on.
Our playbooks' tuning file (playbooks/.kb-tuning.json) and its abstention threshold were chosen
on every question of tests/eval/golden.jsonl, so `kb eval`'s figures for them are in-sample.
Here the file is split in two, fixed: its odd-numbered lines (1st, 3rd, ...) and its
even-numbered lines. On each half the fusion weights (`kb tune --quick`'s grid, from the built-in
defaults) and the abstention threshold (`kb tune`'s rule) are chosen, and every question of the
other half is judged by them (two-fold cross-validation): each question is judged once, by a
choice it took no part in. The grid's candidates and the defaults were themselves proposed in
earlier rounds on all these questions (docs/search-quality.md), so the figures are still a little
optimistic; tests/test_foreign_eval.py covers content we did not write.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from search_service.cli import main
from search_service.evaluation import (
    AnswerReport,
    Question,
    RetrievalReport,
    TuneReport,
    choose_threshold,
    comparison_retrievers,
    evaluate_answers,
    evaluate_retrieval,
    load_questions,
    tune_fusion,
)
from search_service.evaluation.answers import evidence_of
from search_service.ranking import DEFAULT_RANKING, HybridRetriever
from search_service.settings import Settings
from tests.conftest import GOLDEN, PLAYBOOKS

pytestmark = pytest.mark.slow

# Floors sit a little under the measured held-out figures (recall@5 0.88, MRR@10 0.747; answered
# 0.97, citation hits 0.753, declined 0.70), to allow for floating-point differences between
# machines, not for regressions.
FLOORS = {"recall@5": 0.86, "mrr@10": 0.73}
ANSWER_FLOORS = {"answered_rate": 0.94, "citation_hit_rate": 0.73, "abstain_rate": 0.65}


def halves(questions: list[Question]) -> tuple[list[Question], list[Question]]:
    """The golden file's odd-numbered and even-numbered lines."""
    return questions[0::2], questions[1::2]


@dataclass(frozen=True)
class Fold:
    """Weights and threshold chosen on one half of the golden questions, and the other half judged by them."""

    tuned: TuneReport
    threshold: float
    retrieval: RetrievalReport
    answers: AnswerReport


def judge_fold(retriever: HybridRetriever, chosen_on: list[Question], judged_on: list[Question]) -> Fold:
    tuned = tune_fusion(retriever, chosen_on, quick=True)
    evidence = list(zip(chosen_on, evidence_of(retriever, chosen_on), strict=True))
    threshold = choose_threshold([e for q, e in evidence if q.answerable], [e for q, e in evidence if not q.answerable])
    chosen = HybridRetriever(retriever.index, retriever.embedder, tuned.recommended.applied_to(retriever.config))
    return Fold(tuned, threshold, evaluate_retrieval(comparison_retrievers(chosen), judged_on),
                evaluate_answers(chosen, judged_on, settings=Settings(abstain_threshold=threshold)))


@pytest.fixture(scope="module")
def folds(retriever) -> list[Fold]:
    assert retriever.config == DEFAULT_RANKING  # the built-in defaults, not the playbooks' tuning file
    first, second = halves(load_questions(GOLDEN))
    return [judge_fold(retriever, first, second), judge_fold(retriever, second, first)]


def test_golden_file_is_well_formed():
    questions = load_questions(GOLDEN)
    answerable = [q for q in questions if q.answerable]
    assert len(questions) >= 60 and len(questions) - len(answerable) >= 12
    pages = {p.relative_to(PLAYBOOKS).as_posix() for p in PLAYBOOKS.rglob("*.md")}
    for q in answerable:
        assert set(q.gold) <= pages, q.id
    # The two halves of the held-out check are alike: as many answerable, as many unanswerable.
    first, second = halves(questions)
    assert sum(q.answerable for q in first) == sum(q.answerable for q in second) >= 40
    assert len(first) == len(second) and sum(not q.answerable for q in first) >= 6


@pytest.fixture
def report(golden_report):
    return golden_report


def test_eval_reports_all_retrievers(report):
    for name in ("hybrid", "fusion", "bm25", "dense", "baseline"):
        assert set(report[name]) == {"recall@1", "recall@5", "mrr@10"}
        assert all(0.0 <= v <= 1.0 for v in report[name].values())
    assert list(report)[:5] == ["hybrid", "fusion", "bm25", "dense", "baseline"]
    assert report["questions"]["answerable"] >= 48
    assert len(report["answers"]["details"]) == report["questions"]["total"]
    assert report["warnings"] == []  # on our pages no simpler retriever beats the hybrid


def test_held_out_hybrid_meets_floors_and_beats_the_ablations(folds):
    # Both judged halves have as many answerable questions: the pooled figure is the mean of the two.
    metrics = {name: {metric: sum(f.retrieval.metrics[name].to_json()[metric] for f in folds) / len(folds)
                      for metric in ("recall@1", "recall@5", "mrr@10")} for name in folds[0].retrieval.metrics}
    hybrid = metrics["hybrid"]
    for metric, floor in FLOORS.items():
        assert hybrid[metric] >= floor, metrics
    assert hybrid["mrr@10"] > metrics["bm25"]["mrr@10"] and hybrid["mrr@10"] > metrics["dense"]["mrr@10"], metrics
    # The reference point, reciprocal rank fusion of BM25 and dense sections: nothing tuned.
    assert hybrid["recall@5"] > metrics["baseline"]["recall@5"], metrics
    assert hybrid["mrr@10"] > metrics["baseline"]["mrr@10"], metrics


def test_held_out_answers_meet_floors(folds):
    gold = {q.id: q.gold for q in load_questions(GOLDEN)}
    details = [d for fold in folds for d in fold.answers.details]
    assert sorted(d.id for d in details) == sorted(gold)  # every question judged once
    assert [fold.answers.threshold for fold in folds] == [fold.threshold for fold in folds]  # chosen on the other half
    answered = [d for d in details if d.answerable and d.answered]
    rates = {
        "answered_rate": len(answered) / sum(d.answerable for d in details),
        "citation_hit_rate": sum(any(path in gold[d.id] for path in d.cited) for d in answered) / len(answered),
        "abstain_rate": sum(not d.answerable and not d.answered for d in details) / sum(not d.answerable for d in details),
    }
    for metric, floor in ANSWER_FLOORS.items():
        assert rates[metric] >= floor, rates


def test_eval_rejects_malformed_question_file(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "a", "question": "x", "answerable": true, "gold": []}\n')
    result = CliRunner().invoke(main, ["eval", "--questions", str(bad)])
    assert result.exit_code == 1 and "q.jsonl:1: answerable question 'a' has no gold page" in result.output


def test_tune_recommends_a_setting_with_a_cross_validated_estimate(repo_index_dir, report):
    from search_service.evaluation import QUICK_RERANK, QUICK_WEIGHTS
    from search_service.settings import TUNING_FILE

    result = CliRunner().invoke(main, ["tune", "--questions", str(GOLDEN), "--content", str(PLAYBOOKS),
                                       "--index-dir", str(repo_index_dir), "--quick", "--json"])
    assert result.exit_code == 0, result.output
    tuned = json.loads(result.stdout)
    # The quick grid, plus the weights in force (the playbooks' tuning file) when the grid lacks them.
    assert tuned["settings_tried"] in (len(QUICK_WEIGHTS) * len(QUICK_RERANK), len(QUICK_WEIGHTS) * len(QUICK_RERANK) + 1)
    in_force = json.loads((PLAYBOOKS / TUNING_FILE).read_text())["fusion_weights"] if (PLAYBOOKS / TUNING_FILE).exists() else None
    assert tuple(tuned["recommended"]["fusion_weights"]) in {*QUICK_WEIGHTS, tuple(in_force or QUICK_WEIGHTS[0])}
    # The weights in force are in the grid, so their figures must equal what `kb eval` measured for the hybrid.
    assert tuned["current_metrics"] == report["hybrid"]
    assert tuned["recommended_metrics"]["mrr@10"] >= tuned["current_metrics"]["mrr@10"]
    assert all(0.0 <= v <= 1.0 for v in tuned["cross_validated"].values())
    # The abstention rule re-derives the documented calibration (docs/search-quality.md) and its
    # figures at the current threshold equal what `kb eval` measured for the answers.
    abstention = tuned["abstention"]
    assert abs(abstention["threshold"] - 0.34) <= 0.02, abstention
    assert abstention["answered_rate"] >= 0.92 and abstention["unanswerable_questions"] == report["questions"]["unanswerable"]
    assert {k: abstention["current"][k] for k in ("answered_rate", "abstain_rate")} == {
        k: report["answers"][k] for k in ("answered_rate", "abstain_rate")}
    assert set(abstention["leave_one_out"]) == {"answered_rate", "abstain_rate"}


def test_tune_needs_enough_questions(tmp_path, repo_index_dir):
    few = tmp_path / "few.jsonl"
    few.write_text('{"id": "a", "question": "who pays for pilots?", "gold": ["strategy/budgeting-and-funding.md"]}\n')
    result = CliRunner().invoke(main, ["tune", "--questions", str(few), "--content", str(PLAYBOOKS),
                                       "--index-dir", str(repo_index_dir)])
    assert result.exit_code == 1 and "at least 5 answerable questions" in result.output


def test_tune_tries_reranking_even_when_it_is_switched_off(retriever):
    off = HybridRetriever(retriever.index, retriever.embedder, dataclasses.replace(retriever.config, rerank_depth=0))
    tuned = tune_fusion(off, load_questions(GOLDEN), quick=True)
    rec = tuned.recommended
    # On our pages re-ranking wins (see test_reranking_earns_its_cost_across_corpora), so the
    # tuner must have really run it, at the default depth, and recommend it.
    assert rec.rerank_weight > 0 and rec.rerank_depth == 30, tuned
    assert tuned.current_metrics is not None and tuned.current_metrics.mrr_at_10 < tuned.recommended_metrics.mrr_at_10


def test_tune_save_writes_weights_the_next_search_uses(tmp_path):
    import shutil

    from search_service.settings import TUNING_FILE

    content = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, content)
    index_dir = tmp_path / "index"
    args = ["tune", "--questions", str(GOLDEN), "--content", str(content), "--index-dir", str(index_dir), "--quick", "--json"]
    first = CliRunner().invoke(main, [*args, "--save"])
    assert first.exit_code == 0, first.output
    tuned = json.loads(first.stdout)
    saved = json.loads((content / TUNING_FILE).read_text())
    assert tuned["saved"] == str(content / TUNING_FILE)
    assert saved["fusion_weights"] == tuned["recommended"]["fusion_weights"]
    assert saved["cross_validated"] == tuned["cross_validated"]
    assert saved["abstain_threshold"] == tuned["abstention"]["threshold"]  # 20 unanswerable questions: enough
    # Tuning again now starts from the saved weights: they are "current", and measure the same.
    again = json.loads(CliRunner().invoke(main, args).stdout)
    assert again["current_metrics"] == tuned["recommended_metrics"]
