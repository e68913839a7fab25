"""Issue #19, findings 6 and 8: the store fails loudly, feedback belongs to its asker, every /v1 path answers
JSON, request headers are bounded, and reports cannot carry live HTML.

Database faults are made for real under a live server: the SQLite file deleted, replaced by a folder or by
garbage, made read-only, and a PostgreSQL server stopped. Tests run as root, for whom ``chmod 444`` does not
stop a write; the read-only case sets the file and its folder immutable (``chattr +i``), which stops root too.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from search_service.settings import Settings
from tests.conftest import TODAY, LiveServer, throwaway_postgres

pytestmark = pytest.mark.slow

QUESTION = "who pays for pilots?"


def serve(retriever, tmp_path: Path, **overrides) -> tuple[LiveServer, Settings]:
    from search_service.api import create_app

    values = {"today": TODAY, "site_dir": tmp_path / "no-site", "database_url": f"sqlite:///{tmp_path}/kb.sqlite3",
              "user_hash_secret": "s3cret", "rate_limit_per_minute": 100_000}
    settings = Settings(**{**values, **overrides})
    serve_site = (Path(settings.site_dir) / "index.html").is_file()
    return LiveServer(create_app(settings, retriever=retriever, serve_site=serve_site)), settings


@pytest.fixture
def sqlite_service(retriever, tmp_path) -> Iterator[tuple[httpx.Client, Path]]:
    server, _ = serve(retriever, tmp_path)
    with server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client, tmp_path / "kb.sqlite3"


def rate(client: httpx.Client, answer_id: str, **headers: str) -> httpx.Response:
    return client.post("/v1/feedback", json={"answer_id": answer_id, "rating": "up"}, headers=headers)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["message"].startswith("feedback database unavailable: ")


def remove_database(path: Path) -> None:
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        (path.parent / name).unlink(missing_ok=True)


# ---------- 6. the store fails loudly ----------


def test_deleted_database_refuses_writes_and_readiness(sqlite_service):
    client, database = sqlite_service
    before = client.post("/v1/ask", json={"question": QUESTION})
    assert rate(client, before.json()["id"]).status_code == 201
    assert client.get("/readyz").status_code == 200
    remove_database(database)
    # Before the fix this was a 201 written into the deleted file's inode, lost at the next restart.
    assert_unavailable(rate(client, before.json()["id"]))
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "feedback database unavailable" in ready.json()["message"]
    answer = client.post("/v1/ask", json={"question": QUESTION})
    assert answer.status_code == 200 and answer.json()["answered"]  # answers do not go down with the database
    assert answer.headers["x-kb-ask-logged"] == "false"
    assert not database.exists()  # nothing quietly created an empty database in its place
    metrics = client.get("/metrics").text
    assert 'kb_store_errors_total{operation="ask_log"} 1.0' in metrics
    assert 'kb_store_errors_total{operation="feedback"} 1.0' in metrics


@pytest.mark.parametrize("replacement", ["folder", "garbage"])
def test_database_replaced_by_something_else_is_unavailable(sqlite_service, replacement):
    client, database = sqlite_service
    answer_id = client.post("/v1/ask", json={"question": QUESTION}).json()["id"]
    remove_database(database)
    if replacement == "folder":
        database.mkdir()
    else:
        database.write_bytes(b"not a database\n" * 512)
    assert_unavailable(rate(client, answer_id))
    assert client.get("/readyz").status_code == 503


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def read_only(sqlite_service):
    """Make the database file and its folder read-only, for root too (immutable); undo on request and at exit."""
    client, database = sqlite_service
    client.get("/readyz")
    targets = [database, database.parent]

    def make_read_only() -> None:
        for path in targets:
            path.chmod(0o555 if path.is_dir() else 0o444)
        if os.geteuid() == 0:
            try:
                _chattr("+i", *targets)
            except (OSError, subprocess.CalledProcessError) as exc:
                pytest.skip(f"running as root and this filesystem has no immutable flag (chattr +i): {exc}")

    def make_writable() -> None:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", *map(str, targets)], check=False, capture_output=True)
        database.parent.chmod(0o755)
        database.chmod(0o644)

    yield make_read_only, make_writable
    make_writable()


def test_read_only_database_is_unavailable_and_its_answers_say_so(sqlite_service, read_only):
    client, _ = sqlite_service
    make_read_only, make_writable = read_only
    make_read_only()
    answer = client.post("/v1/ask", json={"question": QUESTION})
    assert answer.status_code == 200 and answer.headers["x-kb-ask-logged"] == "false"
    # Before the fix: readiness stayed 200 and this rating answered 404 "no answer with id".
    assert client.get("/readyz").status_code == 503
    assert_unavailable(rate(client, answer.json()["id"]))
    make_writable()
    assert client.get("/readyz").status_code == 200
    unlogged = rate(client, answer.json()["id"])
    assert unlogged.status_code == 409 and "was not logged" in unlogged.json()["error"]["message"]
    fresh = client.post("/v1/ask", json={"question": QUESTION})
    assert "x-kb-ask-logged" not in fresh.headers and rate(client, fresh.json()["id"]).status_code == 201


@pytest.fixture
def postgres_server() -> Iterator[tuple[str, list[str]]]:
    """A PostgreSQL server of this test's own (so stopping it leaves the session's server alone); yields the
    URL and the pg_ctl command that controls it (add "stop" or "start")."""
    with throwaway_postgres() as server:
        yield server


def test_stopped_postgres_is_unavailable_and_recovers(retriever, tmp_path, postgres_server):
    url, pg_ctl = postgres_server
    server, _ = serve(retriever, tmp_path, database_url=url)
    with server, httpx.Client(base_url=server.url, timeout=60) as client:
        answer_id = client.post("/v1/ask", json={"question": QUESTION}).json()["id"]
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=True, capture_output=True)
        assert_unavailable(rate(client, answer_id))
        assert client.get("/readyz").status_code == 503
        lost = client.post("/v1/ask", json={"question": QUESTION})
        assert lost.status_code == 200 and lost.headers["x-kb-ask-logged"] == "false"
        subprocess.run([*pg_ctl, "start"], check=True, capture_output=True)
        assert client.get("/readyz").status_code == 200
        assert rate(client, answer_id).status_code == 201
        assert rate(client, lost.json()["id"]).status_code == 409


# ---------- 8. feedback belongs to its asker ----------


def test_only_the_asker_may_rate_an_answer(retriever, tmp_path):
    server, _ = serve(retriever, tmp_path, auth="proxy", trusted_proxies="127.0.0.1")
    alice, bob = {"X-Forwarded-User": "alice"}, {"X-Forwarded-User": "bob"}
    with server, httpx.Client(base_url=server.url, timeout=60) as client:
        answer_id = client.post("/v1/ask", json={"question": QUESTION}, headers=alice).json()["id"]
        assert client.post("/v1/feedback", json={"answer_id": answer_id, "rating": "up", "comment": "clear"},
                           headers=alice).status_code == 201
        overwrite = client.post("/v1/feedback", json={"answer_id": answer_id, "rating": "down", "comment": "spam"},
                                headers=bob)
        assert overwrite.status_code == 403
        assert "only the person who asked may rate it" in overwrite.json()["error"]["message"]
        counts = client.get("/metrics").text
        assert 'kb_feedback_total{rating="down"}' not in counts
    from search_service.store import Feedback, Store

    store = Store(f"sqlite:///{tmp_path}/kb.sqlite3", user_hash_secret="s3cret")
    with store.session() as session:
        saved = session.get(Feedback, answer_id)
    store.dispose()
    assert saved is not None and (saved.rating, saved.comment) == ("up", "clear")


# ---------- 8. JSON for every /v1 path and method; header limits; nosniff ----------


@pytest.fixture
def site_service(retriever, tmp_path) -> Iterator[httpx.Client]:
    """The API with a built site mounted at / (whose HTML 404 page /v1 paths used to fall through to)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>Portal</title>")
    (site / "404.html").write_text("<!doctype html><title>Not found</title><h1>404</h1>")
    server, _ = serve(retriever, tmp_path, site_dir=site)
    with server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/ask", 405), ("PUT", "/v1/feedback", 405), ("DELETE", "/v1/search", 405),
    ("GET", "/v1/nothing-here", 404), ("POST", "/v1/admin/nothing", 404), ("GET", "/v1", 404),
    ("PATCH", "/v1/a/b/c", 404),
])
def test_every_v1_path_and_method_answers_json(site_service, method, path, status):
    response = site_service.request(method, path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["status"] == status
    if status == 405:
        assert response.headers["allow"] and response.headers["allow"] in response.json()["error"]["message"]
    assert site_service.get("/").status_code == 200  # the site itself is still served


def test_oversized_and_too_many_headers_are_refused(sqlite_service):
    client, _ = sqlite_service
    # The probe's requests: one 2 MB header, and 20,000 headers.
    big = client.get("/v1/search", params={"q": "pilot"}, headers={"X-Padding": "a" * 2_000_000})
    assert big.status_code == 431 and "request headers too large" in big.json()["error"]["message"]
    many = client.get("/healthz", headers=[(f"X-H{i}", "1") for i in range(20_000)])
    assert many.status_code == 431 and "too many request headers" in many.json()["error"]["message"]
    # What browsers and proxies send passes.
    normal = client.get("/v1/search", params={"q": "pilot"}, headers={"Cookie": "a" * 4000, "X-Request-Id": "1"})
    assert normal.status_code == 200


def test_header_limits_hold_at_their_bounds(sqlite_service):
    from search_service.api.hardening import MAX_HEADER_BYTES, MAX_HEADER_COUNT

    client, _ = sqlite_service
    base = len(client.build_request("GET", "/healthz").headers)
    assert client.get("/healthz", headers=[(f"X-H{i}", "1") for i in range(MAX_HEADER_COUNT - base)]).status_code == 200
    assert client.get("/healthz", headers=[(f"X-H{i}", "1") for i in range(MAX_HEADER_COUNT - base + 1)]).status_code == 431
    assert client.get("/healthz", headers={"X-Padding": "a" * (MAX_HEADER_BYTES + 1)}).status_code == 431


def test_markdown_gaps_report_escapes_questions_and_responses_forbid_sniffing(sqlite_service):
    client, _ = sqlite_service
    attack = "<script>alert(1)</script> [click](javascript:alert(2)) how do I reset my VPN password?"
    client.post("/v1/ask", json={"question": attack})
    report = client.get("/v1/analytics/gaps", params={"format": "markdown"})
    assert report.status_code == 200 and report.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in report.text and "](javascript:" not in report.text
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in report.text
    for response in (client.get("/v1/search", params={"q": "pilot"}), client.get("/v1/nothing"),
                     client.get("/healthz")):
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("renderer", ["python-markdown", "commonmark"])
def test_markdown_text_renders_as_the_literal_question(renderer):
    import html

    import markdown
    from markdown_it import MarkdownIt

    from search_service.gaps import markdown_text

    question = "What's the <b>limit</b> for *GPU* [spend](javascript:x) #1? a_b | c `d` \\ e\n- next 1. line {y} !z"
    escaped = markdown_text(question)
    rendered = (markdown.markdown(escaped, extensions=["tables"]) if renderer == "python-markdown"
                else MarkdownIt().render(escaped)).strip()
    assert not any(tag in rendered for tag in ("<b>", "<em>", "<code>", "<a", "<li>"))
    assert html.unescape(rendered.removeprefix("<p>").removesuffix("</p>")) == " ".join(question.split())


def test_unknown_answer_is_still_404_for_its_asker(sqlite_service):
    client, _ = sqlite_service
    missing = rate(client, uuid.uuid4().hex)
    assert missing.status_code == 404 and "no answer with id" in missing.json()["error"]["message"]
