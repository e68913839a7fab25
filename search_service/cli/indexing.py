"""``kb index``: build or update the search index."""

from __future__ import annotations

from pathlib import Path

import click

from search_service.cli.common import content_option, index_dir_option, run_index, settings


@click.command("index")
@content_option
@index_dir_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def index_command(content_dir: Path | None, index_dir: Path | None, quiet: bool) -> None:
    """Build or update the search index from the Markdown source.

    Only new or changed chunks are embedded; deleted pages leave the index. The new index is
    swapped in atomically, so a killed build leaves the previous one in place.
    """
    from search_service.service import resolve_folders

    config = settings()
    content_dir, index_dir = resolve_folders(config, content_dir, index_dir)
    report, _ = run_index(config, content_dir, index_dir, quiet=quiet)
    state = "unchanged, index kept" if report.unchanged else f"{report.embedded} re-embedded, {report.cached} cached"
    excluded = f", {report.excluded} excluded from search" if report.excluded else ""
    click.echo(f"indexed {report.pages} pages{excluded}, {report.chunks} chunks ({state}) "
               f"in {report.seconds:.1f}s -> {index_dir}")
    if report.errors:
        click.echo(f"{len(report.errors)} page(s) skipped; run `kb lint` for details", err=True)


COMMANDS = [index_command]
