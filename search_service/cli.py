"""The ``kb`` command: a thin CLI over the library functions the API also uses."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .content import PageType, due_for_review, load_content
from .settings import get_settings

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
    from .lint import codeowner_for
    from .scaffold import new_page_path, scaffold_page

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
    from .lint import lint_content

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
