"""Issue #19, findings 4 and 5: a reload reaches every worker, and a build is served only as it was written.

Real processes: ``kb serve --workers 2`` on a small index, rebuilt while it serves; the build's files
damaged on disk, refused on reload while the old index keeps serving; token files rewritten in place
under a running server, which must not die of it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from search_service.api.live_index import FOLLOW_INTERVAL_SECONDS
from search_service.indexing.build import build_index, current_build
from tests.conftest import free_port, page_text, write_page

pytestmark = pytest.mark.slow

SEARCHES = 40  # anonymous searches counted after a reload, each on a fresh connection
SECRET = "p/secret.md"
OTHER = "p/other.md"
QUERY = "zephyr budget approval"
START_SECONDS = 180  # two workers each loading the model on two shared cores
# A worker notices a new build within the follow interval, then loads it (a small index: about a second).
FOLLOW_DEADLINE_SECONDS = FOLLOW_INTERVAL_SECONDS + 15


def _pages(content: Path, restricted: set[str]) -> None:
    """Three pages that all answer QUERY; those named in ``restricted`` only for the group ``insiders``."""
    for rel, title in ((SECRET, "Zephyr secret"), (OTHER, "Zephyr other"), ("p/public.md", "Zephyr public")):
        extra = "access: [insiders]\n" if rel in restricted else ""
        write_page(content, rel, page_text(title, extra=extra,
                                           body=f"## Budget\n\nZephyr budget approval rules for {title}.\n"))


def _env(tmp_path: Path, index_dir: Path) -> dict[str, str]:
    return {**os.environ, "KB_AUTH": "none", "KB_INDEX_DIR": str(index_dir), "KB_SITE_DIR": str(tmp_path / "no-site"),
            "KB_DATABASE_URL": f"sqlite:///{tmp_path}/kb.sqlite3", "KB_RATE_LIMIT_PER_MINUTE": "100000",
            "HF_HUB_OFFLINE": "1"}


@contextmanager
def _serve(tmp_path: Path, index_dir: Path, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``kb serve --no-build`` in a process of its own, once it answers /readyz."""
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below, read when a test fails
    proc = subprocess.Popen([sys.executable, "-m", "search_service.cli", "serve", "--no-build", "--port", str(port),
                             "--workers", str(workers)], env=_env(tmp_path, index_dir), stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _ready(url):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _fresh(url: str, path: str, **params: object) -> httpx.Response:
    """A request on a new connection, so the kernel may hand it to either worker."""
    with httpx.Client(timeout=30) as client:
        return client.get(url + path, params=params, headers={"Connection": "close"})


def _search_paths(url: str) -> set[str]:
    response = _fresh(url, "/v1/search", q=QUERY, k=10)
    assert response.status_code == 200, response.text
    return {hit["path"] for hit in response.json()["hits"]}


def _worker_pids(supervisor: int) -> set[int]:
    """The supervisor's worker processes (spawned interpreters; its multiprocessing resource tracker aside)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()}


def _every_worker_serves(url: str, build: str, workers: int) -> None:
    """Wait (within the promised time) until fresh connections only ever meet ``build``, on ``workers`` workers."""
    deadline = time.monotonic() + FOLLOW_DEADLINE_SECONDS
    while True:
        builds = {_fresh(url, "/readyz").json()["build"] for _ in range(4 * workers)}
        if builds == {build}:
            return
        assert time.monotonic() < deadline, f"workers still serve {builds - {build}} after {FOLLOW_DEADLINE_SECONDS} s"
        time.sleep(0.2)


def test_a_reload_reaches_both_workers(tmp_path, content_dir, embedder):
    """Made restricted, rebuilt, reloaded once: no anonymous search on either worker returns the page."""
    index_dir = tmp_path / "index"
    _pages(content_dir, restricted=set())
    build_index(content_dir, index_dir, embedder)
    with _serve(tmp_path, index_dir, workers=2) as (proc, url):
        assert SECRET in _search_paths(url)
        workers = _worker_pids(proc.pid)
        assert len(workers) == 2

        _pages(content_dir, restricted={SECRET})
        build_index(content_dir, index_dir, embedder)
        new_build = current_build(index_dir).name
        reloaded = httpx.post(url + "/v1/admin/reload", timeout=60)
        assert reloaded.status_code == 200, reloaded.text
        body = reloaded.json()
        # Honest: what this worker serves now, and how the others follow, not "reloaded" for all.
        assert body["build"] == new_build and body["scope"] == "this worker" and body["worker"] in workers
        assert f"every {FOLLOW_INTERVAL_SECONDS:g} s" in body["other_workers"]
        _every_worker_serves(url, new_build, workers=2)
        leaks = sum(SECRET in _search_paths(url) for _ in range(SEARCHES))
        assert leaks == 0, f"{leaks} of {SEARCHES} anonymous searches returned the restricted page"

        # kill -HUP to the supervisor reloads each worker in place: the same processes serve the new build.
        _pages(content_dir, restricted={SECRET, OTHER})
        build_index(content_dir, index_dir, embedder)
        hup_build = current_build(index_dir).name
        proc.send_signal(signal.SIGHUP)
        _every_worker_serves(url, hup_build, workers=2)
        leaks = sum(OTHER in _search_paths(url) for _ in range(SEARCHES))
        assert leaks == 0, f"{leaks} of {SEARCHES} anonymous searches returned the page restricted before SIGHUP"
        assert _worker_pids(proc.pid) == workers, "SIGHUP restarted the workers instead of reloading them"
        assert proc.poll() is None


def _edit_chunks(build: Path) -> str:
    text = (build / "chunks.jsonl").read_text()
    (build / "chunks.jsonl").write_text(text.replace("Zephyr budget approval", "Edited text served", 1))
    return "chunks.jsonl was changed after the build"


def _drop_tokens(build: Path) -> str:
    shutil.rmtree(build / "tokens")
    return "tokens/"


@pytest.mark.parametrize("damage", [_edit_chunks, _drop_tokens])
def test_a_damaged_build_is_refused_on_load_and_on_reload(tmp_path, content_dir, embedder, damage):
    index_dir = tmp_path / "index"
    _pages(content_dir, restricted=set())
    build_index(content_dir, index_dir, embedder)
    with _serve(tmp_path, index_dir, workers=1) as (proc, url):
        before = _fresh(url, "/readyz").json()
        assert before["ranking"]["reranking"] is True  # the word-piece vectors are loaded
        # A new build, damaged before the service loads it: refused by the explicit reload and by following.
        write_page(content_dir, "p/new.md", page_text("New", body="## New\n\nZephyr news.\n"))
        build_index(content_dir, index_dir, embedder)
        fragment = damage(current_build(index_dir))
        refused = httpx.post(url + "/v1/admin/reload", timeout=60)
        assert refused.status_code == 409, refused.text
        message = refused.json()["error"]["message"]
        assert "still serving the previous one" in message and fragment in message
        time.sleep(FOLLOW_INTERVAL_SECONDS * 3)  # the follower sees the same build and refuses it too
        assert _fresh(url, "/readyz").json()["build"] == before["build"]
        assert "p/new.md" not in _search_paths(url) and proc.poll() is None
    # On start-up the same build is refused with the same message.
    result = subprocess.run([sys.executable, "-m", "search_service.cli", "serve", "--no-build", "--port",
                             str(free_port())], env=_env(tmp_path, index_dir), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 1 and fragment in result.stderr and "Traceback" not in result.stderr


def test_token_files_rewritten_in_place_do_not_kill_the_server(tmp_path, content_dir, embedder):
    """Memory-mapped vectors died of SIGBUS when their file was truncated; read into memory, nothing happens."""
    index_dir = tmp_path / "index"
    _pages(content_dir, restricted=set())
    build_index(content_dir, index_dir, embedder)
    with _serve(tmp_path, index_dir, workers=1) as (proc, url):
        expected = _search_paths(url)
        for path in (current_build(index_dir) / "tokens").glob("*.npy"):
            with open(path, "r+b") as handle:  # in place: same inode, as `cp` over it or a crashed writer would
                handle.truncate(0)
        for _ in range(5):
            assert _search_paths(url) == expected  # re-ranking reads the vectors of these pages
        assert proc.poll() is None
        refused = httpx.post(url + "/v1/admin/reload", timeout=60)
        assert refused.status_code == 409 and "tokens/" in refused.json()["error"]["message"]
