"""The ``kb`` command: a thin CLI over the library functions the API also uses."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from search_service import __version__
from search_service.content import PageType, due_for_review, load_content
from search_service.settings import Settings, get_settings

if TYPE_CHECKING:
    from search_service.evaluation import Question, TuneReport
    from search_service.indexing.embedding import Embedder
    from search_service.ranking import HybridRetriever

logger = logging.getLogger(__name__)


def _settings():
    return get_settings()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kb")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def main(verbose: bool) -> None:
    """Knowledge base of the AI Center of Excellence: author, index, search and serve playbooks.

    \b
    Examples:
      kb new playbook "Running a vendor proof of concept" --area delivery
      kb lint
      kb stale --within 30
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _content_option(f):
    return click.option(
        "--content", "content_dir", type=click.Path(path_type=Path, file_okay=False),
        default=None, help="Folder of Markdown pages [default: KB_CONTENT_DIR or playbooks/].",
    )(f)


@main.command("new")
@click.argument("page_type", metavar="TYPE", type=click.Choice([t.value for t in PageType]))
@click.argument("title")
@click.option("--area", help="Folder under the content folder [default: by type, e.g. templates/].")
@click.option("--owner", help="Owner from CODEOWNERS [default: the CODEOWNERS owner of the folder].")
@_content_option
def new_command(page_type: str, title: str, area: str | None, owner: str | None, content_dir: Path | None) -> None:
    """Scaffold a new page of TYPE titled TITLE, with valid front matter and required sections.

    \b
    Example:
      kb new lesson "Chatbot pilot that nobody used" --owner "@ai-coe/enablement"
    """
    from search_service.content.lint import codeowner_for
    from search_service.content.scaffold import new_page_path, scaffold_page

    settings = _settings()
    content_dir = content_dir or settings.content_dir
    kind = PageType(page_type)
    try:
        path = new_page_path(content_dir, kind, title, area)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if path.exists():
        raise click.ClickException(f"{path} already exists; choose another title or edit that page")
    rel = path.as_posix()
    owner = owner or codeowner_for(rel, settings.codeowners) or "@ai-coe/leadership"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scaffold_page(kind, title, owner=owner, today=settings.current_date()), encoding="utf-8")
    click.echo(f"created {path} (owner {owner}, status draft); fill in the sections, then run `kb lint`")


@main.command("lint")
@_content_option
@click.option("--codeowners", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CODEOWNERS file [default: KB_CODEOWNERS or ./CODEOWNERS].")
def lint_command(content_dir: Path | None, codeowners: Path | None) -> None:
    """Check every page: schema, required sections, links and anchors, dates, titles, owners.

    Prints one `path:line: message` per problem and exits 1 if there is any.
    """
    from search_service.content.lint import lint_content

    settings = _settings()
    content_dir = content_dir or settings.content_dir
    if not content_dir.is_dir():
        raise click.ClickException(f"content folder {content_dir} does not exist")
    result = lint_content(content_dir, codeowners=codeowners or settings.codeowners, today=settings.current_date())
    for error in result.errors:
        click.echo(f"{content_dir.as_posix().rstrip('/')}/{error}")
    if result.errors:
        click.echo(f"{len(result.errors)} problem(s) in {result.pages_checked} page(s)", err=True)
        sys.exit(1)
    click.echo(f"{result.pages_checked} page(s) OK", err=True)


@main.command("stale")
@_content_option
@click.option("--within", default=0, show_default=True, help="Also list pages due within this many days.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stale_command(content_dir: Path | None, within: int, as_json: bool) -> None:
    """List pages due for review, most overdue first, with their owners."""
    settings = _settings()
    content_dir = content_dir or settings.content_dir
    if not content_dir.is_dir():
        raise click.ClickException(f"content folder {content_dir} does not exist")
    content = load_content(content_dir)
    due = due_for_review(content.pages, settings.current_date(), within_days=within)
    if as_json:
        click.echo(json.dumps([
            {"path": d.page.path, "title": d.page.meta.title, "owner": d.page.meta.owner,
             "last_reviewed": str(d.page.meta.last_reviewed), "due": str(d.due), "days_overdue": d.days_overdue}
            for d in due
        ], indent=2))
        return
    if not due:
        click.echo("no pages due for review")
        return
    width = max(len(d.page.path) for d in due)
    for d in due:
        state = f"{d.days_overdue} days overdue" if d.days_overdue > 0 else f"due in {-d.days_overdue} days"
        click.echo(f"{d.page.path:<{width}}  {d.page.meta.owner or '(no owner)':<24} due {d.due}  {state}")


def _progress_hooks(label: str, quiet: bool):
    """tqdm progress bar on stderr for embedding work."""
    from tqdm import tqdm

    from search_service.indexing.build import ProgressHooks

    state: dict = {}

    def start(total: int) -> None:
        if total and not quiet:
            state["bar"] = tqdm(total=total, desc=label, unit="chunk", file=sys.stderr, leave=False)

    def advance(n: int) -> None:
        if "bar" in state:
            state["bar"].update(n)

    return ProgressHooks(start=start, advance=advance), state


def _embedder(settings):
    from search_service.indexing.embedding import ModelLoadError, make_embedder

    try:
        return make_embedder(settings)
    except ModelLoadError as exc:
        raise click.ClickException(str(exc)) from exc


def run_index(settings, content_dir: Path, index_dir: Path, embedder=None, *, quiet: bool = False):
    """Build the index with a progress bar; shared by `kb index`, `kb eval` and `kb serve`."""
    from search_service.indexing.build import IndexBuildError, build_index

    if not content_dir.is_dir():
        raise click.ClickException(f"content folder {content_dir} does not exist")
    embedder = embedder or _embedder(settings)
    hooks, state = _progress_hooks("embedding", quiet)
    try:
        report = build_index(content_dir, index_dir, embedder, index_type=settings.index_type, progress=hooks,
                             exclude=settings.search_exclude_patterns())
    except IndexBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if "bar" in state:
            state["bar"].close()
    for error in report.errors:
        click.echo(f"skipped {content_dir.as_posix().rstrip('/')}/{error}", err=True)
    return report, embedder


def _index_dir_for(settings, content_dir: Path | None, index_dir: Path | None) -> tuple[Path, Path]:
    """Content and index folders; a foreign --content gets its own index folder by default."""
    import hashlib

    content = content_dir or settings.content_dir
    if index_dir is not None:
        return content, index_dir
    if content_dir is None or content_dir.resolve() == settings.content_dir.resolve():
        return content, settings.index_dir
    key = hashlib.sha256(str(content_dir.resolve()).encode()).hexdigest()[:10]
    return content, settings.index_dir.parent / "indexes" / f"{content_dir.resolve().name}-{key}"


def _index_dir_option(f):
    return click.option("--index-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                        help="Index folder [default: KB_INDEX_DIR or .kb/index].")(f)


@main.command("index")
@_content_option
@_index_dir_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def index_command(content_dir: Path | None, index_dir: Path | None, quiet: bool) -> None:
    """Build or update the search index from the Markdown source.

    Only new or changed chunks are embedded; deleted pages leave the index. The new index is
    swapped in atomically, so a killed build leaves the previous one in place.
    """
    settings = _settings()
    content_dir, index_dir = _index_dir_for(settings, content_dir, index_dir)
    report, _ = run_index(settings, content_dir, index_dir, quiet=quiet)
    state = "unchanged, index kept" if report.unchanged else f"{report.embedded} re-embedded, {report.cached} cached"
    excluded = f", {report.excluded} excluded from search" if report.excluded else ""
    click.echo(f"indexed {report.pages} pages{excluded}, {report.chunks} chunks ({state}) in {report.seconds:.1f}s -> {index_dir}")
    if report.errors:
        click.echo(f"{len(report.errors)} page(s) skipped; run `kb lint` for details", err=True)


def load_retriever(settings, index_dir: Path, embedder=None):
    """Embedder + loaded index + retriever, with clear errors."""
    from search_service.indexing.build import IndexLoadError, load_index
    from search_service.ranking.retriever import HybridRetriever

    embedder = embedder or _embedder(settings)
    try:
        index = load_index(index_dir, model=embedder.name, dimension=embedder.dimension)
    except IndexLoadError as exc:
        raise click.ClickException(str(exc)) from exc
    return HybridRetriever.from_settings(index, embedder, settings)


@main.command("search")
@click.argument("query")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 50), help="Number of pages.")
@click.option("--type", "types", multiple=True, help="Only pages of this type (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only pages with this tag (repeatable).")
@click.option("--audience", "audiences", multiple=True, help="Only pages for this audience (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@_index_dir_option
def search_command(query: str, k: int, types, tags, audiences, as_json: bool, index_dir: Path | None) -> None:
    """Search the playbooks from the terminal.

    \b
    Example:
      kb search "our pilot works but never reaches production" --k 3
    """
    from search_service.ranking.retriever import Filters
    from search_service.results import search_response

    settings = _settings()
    retriever = load_retriever(settings, index_dir or settings.index_dir)
    result = search_response(retriever, query, k=k, filters=Filters(tuple(types), tuple(tags), tuple(audiences)),
                             settings=settings)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    if not result.hits:
        click.echo("no matching pages")
    for n, hit in enumerate(result.hits, start=1):
        flags = " [stale]" if hit.stale else ""
        flags += " [deprecated]" if hit.deprecated else ""
        click.echo(f"{n}. {hit.title} — {hit.section or '(page)'}{flags}\n   {hit.url}  score {hit.score:.3f}")


def _labelled_corpus(settings: Settings, questions_file: Path, content_dir: Path | None, index_dir: Path | None, *,
                     quiet: bool) -> tuple[list[Question], HybridRetriever]:
    """Questions of a JSONL file and a retriever over the (freshly indexed) content they are about."""
    from search_service.evaluation import load_questions

    try:
        questions = load_questions(questions_file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    content_dir, index_dir = _index_dir_for(settings, content_dir, index_dir)
    _, embedder = run_index(settings, content_dir, index_dir, quiet=quiet)
    return questions, load_retriever(settings, index_dir, embedder)


@main.command("eval")
@click.option("--questions", "questions_file", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="JSONL file of labelled questions.")
@_content_option
@_index_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_command(questions_file: Path, content_dir: Path | None, index_dir: Path | None, as_json: bool) -> None:
    """Measure retrieval quality (recall@1, recall@5, MRR@10) and answer quality on labelled questions.

    Retrieval is measured for the hybrid and, in the same run, for its ablations: the fusion
    without re-ranking, BM25 alone, dense alone, and a naive baseline (reciprocal rank fusion of
    BM25 and dense sections). Indexes --content first if needed (incrementally).
    """
    from search_service.evaluation import evaluate

    settings = _settings()
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


@main.command("tune")
@click.option("--questions", "questions_file", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="JSONL file of labelled questions about this content.")
@_content_option
@_index_dir_option
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

    settings = _settings()
    content_dir, index_dir = _index_dir_for(settings, content_dir, index_dir)
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


def build_site(config_file: Path = Path("mkdocs.yml"), *, strict: bool = True) -> None:
    """Build the MkDocs site (the portal) in-process."""
    import os

    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    if not config_file.is_file():
        raise click.ClickException(f"no {config_file} here; run kb serve from the repository root")
    try:
        build(load_config(str(config_file), strict=strict))
    except (MkDocsException, SystemExit) as exc:
        raise click.ClickException(f"site build failed: {exc}") from exc


@main.command("serve")
@click.option("--host", default=None, help="Address to bind [default: KB_HOST or 127.0.0.1].")
@click.option("--port", default=None, type=int, help="Port [default: KB_PORT or 8000].")
@click.option("--build/--no-build", default=True, show_default=True,
              help="Update the index and rebuild the site before serving.")
@click.option("--config-file", type=click.Path(path_type=Path, dir_okay=False), default=Path("mkdocs.yml"),
              show_default=True, help="MkDocs configuration of the portal.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="uvicorn worker processes; each loads the (read-only) index.")
def serve_command(host: str | None, port: int | None, build: bool, config_file: Path, workers: int) -> None:
    """Serve the portal at / and the API at /v1 on one port.

    Without authentication (KB_AUTH=none) it only binds to loopback. `kill -HUP <pid>` or
    POST /v1/admin/reload swaps in a rebuilt index without dropping requests.

    \b
    Example:
      kb serve                                   # http://127.0.0.1:8000
      KB_AUTH=proxy KB_TRUSTED_PROXIES=10.0.0.5 kb serve --host 0.0.0.0 --workers 4
    """
    import uvicorn

    from search_service.api.app import create_app, load_state
    from search_service.auth import is_loopback
    from search_service.indexing.build import IndexLoadError
    from search_service.indexing.embedding import ModelLoadError

    settings = _settings()
    host = host or settings.host
    port = port or settings.port
    if settings.auth == "none" and not is_loopback(host):
        raise click.ClickException(
            f"refusing to serve on {host} without authentication: anyone who can reach it could read every page. "
            "Set KB_AUTH=token (and create tokens with `kb token create`) or KB_AUTH=proxy behind your SSO proxy, "
            "or bind to 127.0.0.1.")
    if build:
        click.echo("updating the search index…", err=True)
        report, _ = run_index(settings, settings.content_dir, settings.index_dir)
        click.echo(f"index: {report.pages} pages, {report.chunks} chunks ({report.embedded} re-embedded)", err=True)
        click.echo("building the site…", err=True)
        build_site(config_file)
    try:
        retriever = load_state(settings)
        from search_service.api.app import open_store

        open_store(settings).dispose()  # fail now, with a message, if the database is unusable
    except (IndexLoadError, ModelLoadError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:
        raise click.ClickException(f"cannot open the feedback database {settings.database_url!r}: {exc}") from exc
    click.echo(f"portal on http://{host}:{port}/  API on http://{host}:{port}/v1  (Ctrl+C stops)", err=True)
    if workers > 1:
        del retriever  # each worker process loads its own copy
        uvicorn.run("search_service.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info")
    else:
        uvicorn.run(create_app(settings, retriever=retriever), host=host, port=port, log_level="info")


@main.group("token")
def token_group() -> None:
    """API tokens for KB_AUTH=token: create (shown once), list, revoke."""


def _store():
    from search_service.api.app import open_store

    return open_store(_settings())


@token_group.command("create")
@click.option("--name", required=True, help="Who or what the token is for (unique).")
@click.option("--groups", default="", help="Comma-separated groups, e.g. coe-leads,procurement.")
@click.option("--admin", is_flag=True, help="May reload the index and read analytics.")
def token_create(name: str, groups: str, admin: bool) -> None:
    """Create a bearer token. It is printed once; only its hash is stored."""
    from search_service.auth import create_token

    store = _store()
    try:
        token = create_token(store, name, [g.strip() for g in groups.split(",") if g.strip()], admin=admin)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.dispose()
    click.echo(token)
    click.echo(f"token {name!r} created; copy it now, it cannot be shown again", err=True)


@token_group.command("list")
def token_list() -> None:
    """List tokens (names, groups, state; never the tokens themselves)."""
    from search_service.auth import list_tokens

    store = _store()
    try:
        tokens = list_tokens(store)
    finally:
        store.dispose()
    if not tokens:
        click.echo("no tokens")
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
        click.echo(f"{t.name:<24} groups={','.join(t.groups) or '-':<30} admin={'yes' if t.admin else 'no':<4} {state}")


@token_group.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke the token called NAME; requests using it get 401 from then on."""
    from search_service.auth import revoke_token

    store = _store()
    try:
        revoke_token(store, name)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    finally:
        store.dispose()
    click.echo(f"token {name!r} revoked")


@main.command("ask")
@click.argument("question")
@click.option("--mode", type=click.Choice(["extractive", "generative"]), default="extractive", show_default=True,
              help="generative needs KB_LLM_BASE_URL (an OpenAI-compatible endpoint); it falls back to extractive.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@_index_dir_option
def ask_command(question: str, mode: str, as_json: bool, index_dir: Path | None) -> None:
    """Answer a question from the playbooks, with citations, or say they do not cover it.

    \b
    Example:
      kb ask "how do we decide whether a pilot can scale?"
    """
    from search_service.answering.extractive import ask
    from search_service.api.ask import to_response

    settings = _settings()
    if not question.strip():
        raise click.ClickException("the question is empty")
    retriever = load_retriever(settings, index_dir or settings.index_dir)
    answer = ask(retriever, question, settings=settings, mode=mode)
    if as_json:
        click.echo(to_response(answer).model_dump_json(indent=2))
        return
    click.echo(answer.answer)
    if answer.citations:
        click.echo("")
        for citation in answer.citations:
            click.echo(f"[{citation.n}] {citation.title} — {citation.section or '(page)'}  {citation.url}")
    for suggestion in answer.suggestions:
        click.echo(f"  nearest: {suggestion.title}  {suggestion.url}")
    if answer.fallback:
        click.echo(f"(answered extractively: {answer.fallback})", err=True)
    click.echo(f"confidence {answer.confidence:.2f}", err=True)


@main.command("gaps")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="Only questions from the last N days [default: all].")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json", "html"]), default="markdown", show_default=True)
@_index_dir_option
def gaps_command(days: int | None, fmt: str, index_dir: Path | None) -> None:
    """Group unanswered and down-rated questions by meaning, with the owners to route them to.

    Reads the feedback store (KB_DATABASE_URL); also lists public pages due for review.

    \b
    Example:
      kb gaps --days 30 > gaps.md
    """
    from search_service.api.app import open_store
    from search_service.gaps import find_gaps, gaps_report, report_html, report_markdown

    settings = _settings()
    retriever = load_retriever(settings, index_dir or settings.index_dir)
    store = open_store(settings)
    try:
        report = gaps_report(find_gaps(store, retriever, days=days), retriever, settings.current_date())
    finally:
        store.dispose()
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
    elif fmt == "html":
        click.echo(report_html(report))
    else:
        click.echo(report_markdown(report))


if __name__ == "__main__":
    main()
