"""Running the portal: ``kb serve``, API tokens (``kb token``) and the content-gaps report (``kb gaps``)."""

from __future__ import annotations

from pathlib import Path

import click

from search_service.cli.common import index_dir_option, open_retriever, run_index, settings, user_errors
from search_service.settings import Settings


def _refuse_open_bind(config: Settings, host: str) -> None:
    from search_service.auth import is_loopback

    if config.auth == "none" and not is_loopback(host):
        raise click.ClickException(
            f"refusing to serve on {host} without authentication: anyone who can reach it could read every page. "
            "Set KB_AUTH=token (and create tokens with `kb token create`) or KB_AUTH=proxy behind your SSO proxy, "
            "or bind to 127.0.0.1.")


def _check_store(config: Settings) -> None:
    """Open the database once, so a broken KB_DATABASE_URL fails now, with a message."""
    from search_service import service

    try:
        service.open_store(config).dispose()
    except Exception as exc:  # any driver error (PostgreSQL unreachable, bad URL) becomes one message
        raise click.ClickException(f"cannot open the feedback database {config.database_url!r}: {exc}") from exc


@click.command("serve")
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

    from search_service import service
    from search_service.api.app import create_app
    from search_service.api.server import uvicorn_options

    config = settings()
    host, port = host or config.host, port or config.port
    _refuse_open_bind(config, host)
    if build:
        click.echo("updating the search index…", err=True)
        report, _ = run_index(config, config.content_dir, config.index_dir)
        click.echo(f"index: {report.pages} pages, {report.chunks} chunks ({report.embedded} re-embedded)", err=True)
        click.echo("building the site…", err=True)
        with user_errors():
            service.build_site(config_file)
    retriever = open_retriever(config)
    _check_store(config)
    click.echo(f"portal on http://{host}:{port}/  API on http://{host}:{port}/v1  (Ctrl+C stops)", err=True)
    if workers > 1:
        from search_service.api.workers import serve_workers

        del retriever  # each worker process loads its own copy
        serve_workers(workers, **uvicorn_options(host, port))  # SIGHUP reloads each worker instead of restarting it
    else:
        uvicorn.run(create_app(config, retriever=retriever), **uvicorn_options(host, port))


@click.group("token")
def token_group() -> None:
    """API tokens for KB_AUTH=token: create (shown once), list, revoke."""


@token_group.command("create")
@click.option("--name", required=True, help="Who or what the token is for (unique).")
@click.option("--groups", default="", help="Comma-separated groups, e.g. coe-leads,procurement.")
@click.option("--admin", is_flag=True, help="May reload the index and read analytics.")
def token_create(name: str, groups: str, admin: bool) -> None:
    """Create a bearer token. It is printed once; only its HMAC, keyed with KB_USER_HASH_SECRET, is stored.

    Changing KB_USER_HASH_SECRET invalidates every token: create them again.
    """
    from search_service import service
    from search_service.auth import create_token

    config = settings()
    if not config.user_hash_secret:
        # Tokens are stored as an HMAC keyed with this secret: one made with another key never matches.
        raise click.ClickException("set KB_USER_HASH_SECRET to the value the server uses (tokens are stored as an "
                                   "HMAC keyed with it), then create the token again")
    store = service.open_store(config)
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
    from search_service import service
    from search_service.auth import list_tokens

    store = service.open_store(settings())
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
    from search_service import service
    from search_service.auth import revoke_token

    store = service.open_store(settings())
    try:
        revoke_token(store, name)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    finally:
        store.dispose()
    click.echo(f"token {name!r} revoked")


@click.command("gaps")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="Only questions from the last N days [default: all].")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json", "html"]), default="markdown", show_default=True)
@index_dir_option
def gaps_command(days: int | None, fmt: str, index_dir: Path | None) -> None:
    """Group unanswered and down-rated questions by meaning, with the owners to route them to.

    Reads the feedback store (KB_DATABASE_URL); also lists public pages due for review.

    \b
    Example:
      kb gaps --days 30 > gaps.md
    """
    from search_service import service

    config = settings()
    retriever = open_retriever(config, index_dir)
    store = service.open_store(config)
    try:
        report = service.content_gaps(store, retriever, settings=config, days=days)
    finally:
        store.dispose()
    click.echo(service.render_gaps(report, fmt))


COMMANDS = [serve_command, token_group, gaps_command]
