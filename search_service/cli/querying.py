"""Asking from the terminal: ``kb search`` and ``kb ask``."""

from __future__ import annotations

from pathlib import Path

import click

from search_service.cli.common import index_dir_option, open_retriever, settings, user_errors


@click.command("search")
@click.argument("query")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 50), help="Number of pages.")
@click.option("--type", "types", multiple=True, help="Only pages of this type (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only pages with this tag (repeatable).")
@click.option("--audience", "audiences", multiple=True, help="Only pages for this audience (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@index_dir_option
def search_command(query: str, k: int, types: tuple[str, ...], tags: tuple[str, ...], audiences: tuple[str, ...],
                   as_json: bool, index_dir: Path | None) -> None:
    """Search the playbooks from the terminal.

    \b
    Example:
      kb search "our pilot works but never reaches production" --k 3
    """
    from search_service import service

    config = settings()
    retriever = open_retriever(config, index_dir)
    with user_errors():
        # The terminal user runs the service locally, with the same view as an anonymous reader.
        result = service.search(retriever, query, settings=config, k=k, filters=service.make_filters(types, tags, audiences))
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    if not result.hits:
        click.echo("no matching pages")
    for n, hit in enumerate(result.hits, start=1):
        flags = " [stale]" if hit.stale else ""
        flags += " [deprecated]" if hit.deprecated else ""
        click.echo(f"{n}. {hit.title} — {hit.section or '(page)'}{flags}\n   {hit.url}  score {hit.score:.3f}")


@click.command("ask")
@click.argument("question")
@click.option("--mode", type=click.Choice(["extractive", "generative"]), default="extractive", show_default=True,
              help="generative needs KB_LLM_BASE_URL (an OpenAI-compatible endpoint); it falls back to extractive.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@index_dir_option
def ask_command(question: str, mode: str, as_json: bool, index_dir: Path | None) -> None:
    """Answer a question from the playbooks, with citations, or say they do not cover it.

    \b
    Example:
      kb ask "how do we decide whether a pilot can scale?"
    """
    from search_service import service
    from search_service.answering import AnswerMode
    from search_service.responses import ask_response

    config = settings()
    if not question.strip():
        raise click.ClickException("the question is empty")
    retriever = open_retriever(config, index_dir)
    with user_errors():
        answer = service.ask(retriever, question, settings=config, mode=AnswerMode(mode))
    if as_json:
        click.echo(ask_response(answer).model_dump_json(indent=2))
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


COMMANDS = [search_command, ask_command]
