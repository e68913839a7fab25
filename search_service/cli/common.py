"""What every command shares: the settings, the folder options, progress bars and the mapping of
library errors to one-line messages (never a traceback)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from search_service.settings import Settings, get_settings

if TYPE_CHECKING:  # the heavy modules load only when a command needs them
    from search_service.indexing.build import BuildReport, ProgressHooks
    from search_service.indexing.embedding import Embedder
    from search_service.ranking.retriever import HybridRetriever

F = TypeVar("F", bound=Callable[..., Any])


def settings() -> Settings:
    """The process settings (``KB_*`` variables and ``.env``), read once."""
    return get_settings()


def content_option(f: F) -> F:
    return click.option(
        "--content", "content_dir", type=click.Path(path_type=Path, file_okay=False),
        default=None, help="Folder of Markdown pages [default: KB_CONTENT_DIR or playbooks/].",
    )(f)


def index_dir_option(f: F) -> F:
    return click.option("--index-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                        help="Index folder [default: KB_INDEX_DIR or .kb/index].")(f)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause (a missing index, a model that does not load, a folder that does not
    exist, a build already running) into a ClickException with the library's message."""
    from search_service.indexing.build import IndexBuildError, IndexLoadError
    from search_service.indexing.embedding import ModelLoadError
    from search_service.service import ServiceError

    try:
        yield
    except (ServiceError, IndexLoadError, IndexBuildError, ModelLoadError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def embedding_progress(label: str, *, quiet: bool) -> Iterator[ProgressHooks]:
    """Progress hooks showing a tqdm bar on stderr while chunks are embedded."""
    from tqdm import tqdm

    from search_service.indexing.build import ProgressHooks

    bars: list[Any] = []

    def start(total: int) -> None:
        if total and not quiet:
            bars.append(tqdm(total=total, desc=label, unit="chunk", file=sys.stderr, leave=False))

    def advance(n: int) -> None:
        for bar in bars:
            bar.update(n)

    try:
        yield ProgressHooks(start=start, advance=advance)
    finally:
        for bar in bars:
            bar.close()


def run_index(settings: Settings, content_dir: Path, index_dir: Path, embedder: Embedder | None = None, *,
              quiet: bool = False) -> tuple[BuildReport, Embedder]:
    """Build the index with a progress bar and report skipped pages; shared by index, eval, tune and serve."""
    from search_service import service

    with user_errors(), embedding_progress("embedding", quiet=quiet) as hooks:
        report, embedder = service.index_content(settings, content_dir, index_dir, embedder, progress=hooks)
    for error in report.errors:
        click.echo(f"skipped {content_dir.as_posix().rstrip('/')}/{error}", err=True)
    return report, embedder


def open_retriever(settings: Settings, index_dir: Path | None = None, embedder: Embedder | None = None) -> HybridRetriever:
    """The retriever of an index folder, with clear errors."""
    from search_service import service

    with user_errors():
        return service.open_retriever(settings, index_dir, embedder)
