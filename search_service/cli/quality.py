"""Measuring and tuning quality on labelled questions: ``kb eval`` and ``kb tune``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from search_service.cli.common import content_option, index_dir_option, open_retriever, run_index
from search_service.cli.common import settings as current_settings
from search_service.service import resolve_folders
from search_service.settings import Settings

if TYPE_CHECKING:
    from search_service.evaluation import Question, TuneReport
    from search_service.indexing.embedding import Embedder
    from search_service.ranking import HybridRetriever


def _labelled_corpus(settings: Settings, questions_file: Path, content_dir: Path | None, index_dir: Path | None, *,
                     quiet: bool) -> tuple[list[Question], HybridRetriever]:
    """Questions of a JSONL file and a retriever over the (freshly indexed) content they are about."""
    from search_service.evaluation import load_questions

    try:
        questions = load_questions(questions_file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    content_dir, index_dir = resolve_folders(settings, content_dir, index_dir)
    _, embedder = run_index(settings, content_dir, index_dir, quiet=quiet)
    return questions, open_retriever(settings, index_dir, embedder)


@click.command("eval")
@click.option("--questions", "questions_file", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="JSONL file of labelled questions.")
@content_option
@index_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_command(questions_file: Path, content_dir: Path | None, index_dir: Path | None, as_json: bool) -> None:
    """Measure retrieval quality (recall@1, recall@5, MRR@10) and answer quality on labelled questions.

    Retrieval is measured for the hybrid and, in the same run, for its ablations: the fusion
    without re-ranking, BM25 alone, dense alone, and a naive baseline (reciprocal rank fusion of
    BM25 and dense sections). Indexes --content first if needed (incrementally).
    """
    from search_service.evaluation import evaluate

    settings = current_settings()
    questions, retriever = _labelled_corpus(settings, questions_file, content_dir, index_dir, quiet=as_json)
    report = evaluate(retriever, questions, settings=settings)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    q = report.retrieval.questions
    click.echo(f"{q.answerable} answerable / {q.unanswerable} unanswerable questions")
    click.echo(f"{'':10}{'recall@1':>10}{'recall@5':>10}{'mrr@10':>10}")
    for name, m in report.retrieval.metrics.items():
        click.echo(f"{name:10}{m.recall_at_1:>10.3f}{m.recall_at_5:>10.3f}{m.mrr_at_10:>10.3f}")
    a = report.answers
    click.echo(f"answers (extractive, threshold {a.threshold}): answered_rate {a.answered_rate:.3f}  "
               f"citation_hit_rate {a.citation_hit_rate:.3f}  abstain_rate {a.abstain_rate:.3f}")
    for warning in report.retrieval.warnings:
        click.echo(f"warning: {warning}", err=True)


@click.command("tune")
@click.option("--questions", "questions_file", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="JSONL file of labelled questions about this content.")
@content_option
@index_dir_option
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20), help="Cross-validation folds.")
@click.option("--quick", is_flag=True, help="Try 6 settings instead of 144.")
@click.option("--save", is_flag=True, help=(
    "Write the recommended weights (and the abstention threshold, when 15 or more unanswerable questions "
    "calibrated it) to the content folder's .kb-tuning.json and re-index, so this corpus uses them "
    "wherever it is indexed (KB_ variables that are set still win)."))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def tune_command(questions_file: Path, content_dir: Path | None, index_dir: Path | None, folds: int, quick: bool,
                 save: bool, as_json: bool) -> None:
    """Choose fusion weights and the abstention threshold for a corpus from its own labelled questions.

    Tries each setting of a grid of fusion and re-ranking weights, recommends the best by
    MRR@10, and estimates by cross-validation what the choice is worth on questions it was
    not chosen on. When the file has unanswerable questions, also recommends the abstention
    threshold that declines the most of them while answering at least 92% of the answerable
    ones, with a leave-one-out estimate. Prints the KB_ settings to use.
    """
    import dataclasses

    from tqdm import tqdm

    from search_service.evaluation import tune_corpus, tune_grid

    settings = current_settings()
    content_dir, index_dir = resolve_folders(settings, content_dir, index_dir)
    questions, retriever = _labelled_corpus(settings, questions_file, content_dir, index_dir, quiet=as_json)
    total = len(tune_grid(retriever.config, quick=quick))
    with tqdm(total=total, desc="settings", unit="setting", disable=as_json) as bar:
        try:
            report = tune_corpus(retriever, questions, settings=settings, folds=folds, quick=quick, progress=bar.update)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    if save:
        saved = _save_tuning(settings, report, questions_file=questions_file, content_dir=content_dir,
                             index_dir=index_dir, embedder=retriever.embedder)
        report = dataclasses.replace(report, saved=str(saved))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    _print_tune_report(report)


def _print_tune_report(report: TuneReport) -> None:
    """`kb tune`'s figures and the KB_ settings to use, as text."""
    rec = report.recommended
    click.echo(f"{report.questions} answerable questions, {report.settings_tried} settings")
    for label, m in (("current", report.current_metrics), ("recommended", report.recommended_metrics),
                     ("cross-validated", report.cross_validated)):
        if m is not None:
            click.echo(f"{label:16} recall@1 {m.recall_at_1:.3f}  recall@5 {m.recall_at_5:.3f}  mrr@10 {m.mrr_at_10:.3f}")
    click.echo(f"KB_FUSION_WEIGHTS='{json.dumps(list(rec.fusion_weights))}' KB_RERANK_WEIGHT={rec.rerank_weight} "
               f"KB_RERANK_DEPTH={rec.rerank_depth}")
    click.echo("The cross-validated line is the honest estimate: if it is not better than 'current', keep the defaults.")
    abstention = report.abstention
    if abstention is None:
        click.echo("No unanswerable questions in the file: add some to calibrate the abstention threshold.")
        return
    now, loo = abstention.current, abstention.leave_one_out
    click.echo(f"abstention over {abstention.unanswerable_questions} unanswerable questions:")
    click.echo(f"{'current':16} threshold {now.threshold:.3f}  answered {now.answered_rate:.3f}  "
               f"declined {now.abstain_rate:.3f}")
    click.echo(f"{'recommended':16} threshold {abstention.threshold:.3f}  answered {abstention.answered_rate:.3f}  "
               f"declined {abstention.abstain_rate:.3f}")
    click.echo(f"{'leave-one-out':16}                  answered {loo.answered_rate:.3f}  declined {loo.abstain_rate:.3f}")
    click.echo(f"KB_ABSTAIN_THRESHOLD={abstention.threshold}")


def _save_tuning(settings: Settings, report: TuneReport, *, questions_file: Path, content_dir: Path, index_dir: Path,
                 embedder: Embedder) -> Path:
    """Save the recommended weights next to the content (see ``save_tuning``), say what was kept, and
    re-index so they apply."""
    from search_service.evaluation import MIN_UNANSWERABLE_TO_SAVE, save_tuning

    saved = save_tuning(report, content_dir=content_dir, questions_file=questions_file, settings=settings)
    if not saved.threshold_saved:
        click.echo(f"abstention threshold not saved: {saved.unanswerable_questions} unanswerable questions, "
                   f"at least {MIN_UNANSWERABLE_TO_SAVE} are needed to calibrate it", err=True)
    run_index(settings, content_dir, index_dir, embedder, quiet=True)
    click.echo(f"saved {saved.path}; the index at {index_dir} now uses these settings "
               "(a running service: kill -HUP or POST /v1/admin/reload)", err=True)
    if saved.overridden:
        click.echo(f"note: {', '.join('KB_' + name.upper() for name in saved.overridden)} set in the environment "
                   "still override the saved weights", err=True)
    return saved.path


COMMANDS = [eval_command, tune_command]
