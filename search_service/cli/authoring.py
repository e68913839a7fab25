"""Authoring commands: ``kb new``, ``kb lint``, ``kb stale``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from search_service.cli.common import content_option, settings
from search_service.content import PageType, due_for_review, load_content


@click.command("new")
@click.argument("page_type", metavar="TYPE", type=click.Choice([t.value for t in PageType]))
@click.argument("title")
@click.option("--area", help="Folder under the content folder [default: by type, e.g. templates/].")
@click.option("--owner", help="Owner from CODEOWNERS [default: the CODEOWNERS owner of the folder].")
@content_option
def new_command(page_type: str, title: str, area: str | None, owner: str | None, content_dir: Path | None) -> None:
    """Scaffold a new page of TYPE titled TITLE, with valid front matter and required sections.

    \b
    Example:
      kb new lesson "Chatbot pilot that nobody used" --owner "@ai-coe/enablement"
    """
    from search_service.content.lint import codeowner_for
    from search_service.content.scaffold import new_page_path, scaffold_page

    config = settings()
    content_dir = content_dir or config.content_dir
    kind = PageType(page_type)
    try:
        path = new_page_path(content_dir, kind, title, area)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if path.exists():
        raise click.ClickException(f"{path} already exists; choose another title or edit that page")
    owner = owner or codeowner_for(path.as_posix(), config.codeowners) or "@ai-coe/leadership"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scaffold_page(kind, title, owner=owner, today=config.current_date()), encoding="utf-8")
    click.echo(f"created {path} (owner {owner}, status draft); fill in the sections, then run `kb lint`")


@click.command("lint")
@content_option
@click.option("--codeowners", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CODEOWNERS file [default: KB_CODEOWNERS or ./CODEOWNERS].")
def lint_command(content_dir: Path | None, codeowners: Path | None) -> None:
    """Check every page: schema, required sections, links and anchors, dates, titles, owners.

    Prints one `path:line: message` per problem and exits 1 if there is any.
    """
    from search_service.content.lint import lint_content

    config = settings()
    content_dir = content_dir or config.content_dir
    if not content_dir.is_dir():
        raise click.ClickException(f"content folder {content_dir} does not exist")
    result = lint_content(content_dir, codeowners=codeowners or config.codeowners, today=config.current_date())
    for error in result.errors:
        click.echo(f"{content_dir.as_posix().rstrip('/')}/{error}")
    if result.errors:
        click.echo(f"{len(result.errors)} problem(s) in {result.pages_checked} page(s)", err=True)
        sys.exit(1)
    click.echo(f"{result.pages_checked} page(s) OK", err=True)


@click.command("stale")
@content_option
@click.option("--within", default=0, show_default=True, help="Also list pages due within this many days.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stale_command(content_dir: Path | None, within: int, as_json: bool) -> None:
    """List pages due for review, most overdue first, with their owners."""
    config = settings()
    content_dir = content_dir or config.content_dir
    if not content_dir.is_dir():
        raise click.ClickException(f"content folder {content_dir} does not exist")
    due = due_for_review(load_content(content_dir).pages, config.current_date(), within_days=within)
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


COMMANDS = [new_command, lint_command, stale_command]
