"""Shared fixtures: the real model, a real index of the repository's playbooks, a live server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
GOLDEN = ROOT / "tests" / "eval" / "golden.jsonl"
# A fixed "today" so stale checks on the real content do not drift with the calendar.
TODAY = "2026-11-22"


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """Every test gets its own index folder and a fixed date; settings are re-read."""
    from search_service.settings import get_settings

    monkeypatch.setenv("KB_INDEX_DIR", str(tmp_path / "kb-index"))
    monkeypatch.setenv("KB_TODAY", TODAY)
    monkeypatch.setenv("KB_CODEOWNERS", str(ROOT / "CODEOWNERS"))
    monkeypatch.setenv("KB_CONTENT_DIR", str(PLAYBOOKS))
    monkeypatch.setenv("KB_DATABASE_URL", f"sqlite:///{tmp_path / 'kb.sqlite3'}")
    monkeypatch.setenv("KB_USER_HASH_SECRET", "test-secret")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def embedder():
    from search_service.indexing.embedding import Embedder

    return Embedder("")


@pytest.fixture(scope="session")
def repo_index_dir(tmp_path_factory, embedder) -> Path:
    """An index of the repository's playbooks, built once per session."""
    from search_service.indexing.build import build_index

    directory = tmp_path_factory.mktemp("repo-index")
    build_index(PLAYBOOKS, directory, embedder)
    return directory


@pytest.fixture(scope="session")
def retriever(repo_index_dir, embedder):
    from search_service.indexing.build import load_index
    from search_service.ranking.retriever import HybridRetriever

    return HybridRetriever(load_index(repo_index_dir, model=embedder.name), embedder)


@pytest.fixture(scope="session")
def golden_report(tmp_path_factory) -> dict:
    """`kb eval --json` on the repository's playbooks and tests/eval/golden.jsonl."""
    from click.testing import CliRunner

    from search_service.cli import main

    index_dir = tmp_path_factory.mktemp("eval-index")
    result = CliRunner().invoke(main, ["eval", "--questions", str(GOLDEN), "--content", str(PLAYBOOKS),
                                       "--index-dir", str(index_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def content_dir(tmp_path) -> Path:
    """An empty content folder to write pages into."""
    path = tmp_path / "content"
    path.mkdir()
    return path


@pytest.fixture
def copy_of_playbooks(tmp_path) -> Path:
    path = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server on loopback, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        from search_service.api.server import uvicorn_options

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The options `kb serve` uses, so tests meet the same proxy-header and logging behaviour.
        self.server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options("127.0.0.1", self.port, log_level="warning")))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_api(retriever, tmp_path_factory):
    """The API (no site) served over HTTP with the repository index."""
    from search_service.api import create_app
    from search_service.settings import Settings

    data = tmp_path_factory.mktemp("live-api")
    settings = Settings(today=TODAY, site_dir=data / "no-site", database_url=f"sqlite:///{data}/kb.sqlite3",
                        user_hash_secret="test-secret", rate_limit_per_minute=100_000)
    with LiveServer(create_app(settings, retriever=retriever, serve_site=False)) as server:
        yield server


@pytest.fixture(scope="session")
def api_client(live_api):
    """An HTTP client for the live API."""
    import httpx

    with httpx.Client(base_url=live_api.url, timeout=60) as http:
        yield http


def write_page(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def page_text(title: str, *, type_: str = "guide", owner: str = "@ai-coe/delivery", last_reviewed: str = "2026-10-01",
              body: str = "Intro.\n\n## Overview\n\nText.\n", extra: str = "") -> str:
    return (
        f"---\ntitle: {title}\nsummary: About {title}.\ntype: {type_}\nowner: \"{owner}\"\n"
        f"last_reviewed: {last_reviewed}\naudience: [practitioners]\n{extra}---\n\n{body}"
    )


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@contextlib.contextmanager
def throwaway_postgres(*, max_connections: int = 100) -> Iterator[tuple[str, list[str]]]:
    """A PostgreSQL server of its own on loopback (initdb + pg_ctl): yields its URL and the pg_ctl
    command that controls it (add "start" or "stop"); stopped and deleted afterwards."""
    import subprocess
    import tempfile

    bindir = _postgres_bin()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed (scripts/test installs it: apt-get install postgresql)")
    # Not under pytest's tmp folder: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="kb-pg-"))
    data, sockets = base / "data", base / "sockets"
    data.mkdir()
    sockets.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        for path in (base, data, sockets):
            shutil.chown(path, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    port = free_port()
    pg_ctl = [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w",
              "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections={max_connections}"]
    subprocess.run([*pg_ctl, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", pg_ctl
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback, for the same tests as SQLite."""
    with throwaway_postgres(max_connections=200) as (url, _):
        yield url


def read_sse(response) -> list[tuple[str, dict]]:
    """(event, data) pairs of a server-sent-events response."""
    import json

    events, event = [], None
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            events.append((event, json.loads(line[5:])))
    return events
