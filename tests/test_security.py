"""Security and reliability: authentication modes, access control on every path, abuse limits,
schema fuzzing, start-up faults and hot reload."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from search_service.answering import AnswerSettings, ask
from search_service.indexing.build import build_index, current_build, load_index
from search_service.ranking.retriever import Filters, HybridRetriever, Viewer
from search_service.settings import Settings
from search_service.store import Store
from tests.conftest import TODAY, LiveServer, free_port, page_text, write_page

pytestmark = pytest.mark.slow

SECRET_PAGE = "strategy/vendor-negotiation-positions.md"
SECRET_GROUPS = {"coe-leads", "procurement"}
SECRET_WORDS = "vendor negotiation walk-away positions exit clauses pricing benchmarks audit rights"


def secret_paths(retriever) -> set[str]:
    return {path for path, meta in retriever.index.pages.items() if meta.access}


def make_app(retriever, tmp_path, **overrides):
    from search_service.api import create_app

    values = {"today": TODAY, "site_dir": tmp_path / "no-site", "database_url": f"sqlite:///{tmp_path}/kb.sqlite3",
              "user_hash_secret": "s3cret", "rate_limit_per_minute": 100_000}
    settings = Settings(**{**values, **overrides})
    return create_app(settings, retriever=retriever, serve_site=False), settings


# ---------- access control, every path ----------

def test_restricted_page_is_in_the_index(retriever):
    assert secret_paths(retriever) == {SECRET_PAGE}


@given(
    groups=st.frozensets(st.sampled_from(["coe-leads", "procurement", "finance", "hr", "engineering", "kb-admins"]), max_size=3),
    query=st.one_of(st.sampled_from([SECRET_WORDS, "vendor contract exit clause", "what discount should we push for",
                                     "usage based pricing caps", "who pays for pilots"]),
                    st.text(min_size=1, max_size=60).filter(lambda s: s.strip())),
    types=st.sampled_from([(), ("guide",), ("playbook", "guide")]),
)
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_restricted_chunks_never_reach_viewers_without_the_group(retriever, groups, query, types):
    viewer = Viewer(groups=groups)
    may_see = bool(groups & SECRET_GROUPS)
    result = retriever.search(query, k=50, viewer=viewer, filters=Filters(type=types))
    paths = {h.page_path for h in result.hits} | {m.chunk.page_path for h in result.hits for m in h.sections}
    if not may_see:
        assert SECRET_PAGE not in paths


def test_answers_citations_and_suggestions_respect_access(retriever):
    settings = AnswerSettings.from_settings(Settings(today=TODAY), retriever)
    outsider = ask(retriever, "what are our walk-away positions in vendor negotiations?", settings=settings,
                   viewer=Viewer(groups=frozenset({"finance"})))
    cited = {c.path for c in outsider.citations} | {s.path for s in outsider.suggestions}
    assert SECRET_PAGE not in cited
    assert all(source.page_path != SECRET_PAGE for source in outsider.sources)
    insider = ask(retriever, "what are our walk-away positions in vendor negotiations?", settings=settings,
                  viewer=Viewer(groups=frozenset({"procurement"})))
    assert insider.answered and insider.citations[0].path == SECRET_PAGE


@pytest.fixture(scope="module")
def token_service(retriever, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("token-auth")
    app, settings = make_app(retriever, tmp, auth="token")
    with LiveServer(app) as server:
        store = Store(settings.database_url, user_hash_secret="s3cret")
        store.migrate()
        from search_service.auth import create_token

        tokens = {
            "insider": create_token(store, "insider", ["procurement"]),
            "outsider": create_token(store, "outsider", ["finance"]),
            "admin": create_token(store, "ops", [], admin=True),
        }
        yield server.url, tokens, store, settings
        store.dispose()


def call(url, token, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, url + path, headers=headers, timeout=120, **kwargs)


def test_token_auth_required_and_groups_applied(token_service):
    url, tokens, _, _ = token_service
    anonymous = call(url, None, "GET", "/v1/search", params={"q": "pilot"})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert call(url, "kb_not-a-token", "GET", "/v1/search", params={"q": "pilot"}).status_code == 401
    assert call(url, None, "GET", "/healthz").status_code == 200  # load balancers need no token

    def every_path(token: str) -> str:
        """Everything the service says to this caller about the secret topic, on every path."""
        out = [call(url, token, "GET", "/v1/search", params={"q": SECRET_WORDS, "k": 50}).text,
               call(url, token, "POST", "/v1/ask", json={"question": f"what are our {SECRET_WORDS}?"}).text,
               call(url, token, "POST", "/v1/ask", json={"question": f"what are our {SECRET_WORDS}?", "stream": True}).text,
               call(url, token, "POST", "/v1/ask", json={"question": "x", "page": SECRET_PAGE}).text,
               call(url, token, "GET", "/v1/search", params={"q": SECRET_WORDS, "k": 0}).text]
        return "\n".join(out)

    outsider = every_path(tokens["outsider"])
    assert "vendor-negotiation-positions" not in outsider and "Vendor negotiation" not in outsider
    insider = every_path(tokens["insider"])
    assert "vendor-negotiation-positions" in insider


def test_analytics_never_show_restricted_pages_and_need_admin(token_service):
    url, tokens, _, _ = token_service
    call(url, tokens["insider"], "POST", "/v1/ask", json={"question": "how do I book a meeting room on floor 3?"})
    assert call(url, tokens["outsider"], "GET", "/v1/analytics/gaps").status_code == 403
    report = call(url, tokens["admin"], "GET", "/v1/analytics/gaps")
    assert report.status_code == 200
    assert "vendor-negotiation-positions" not in report.text


def test_revoked_token_is_refused_and_tokens_are_stored_hashed(token_service):
    url, tokens, store, _ = token_service
    from search_service.auth import create_token, list_tokens, revoke_token

    token = create_token(store, "temp", ["finance"])
    assert call(url, token, "GET", "/v1/search", params={"q": "pilot"}).status_code == 200
    revoke_token(store, "temp")
    assert call(url, token, "GET", "/v1/search", params={"q": "pilot"}).status_code == 401
    assert [t.name for t in list_tokens(store) if t.revoked_at] == ["temp"]
    with store.engine.connect() as connection:
        from sqlalchemy import text

        rows = " ".join(str(r) for r in connection.execute(text("SELECT * FROM api_token")).all())
    assert all(t not in rows for t in [*tokens.values(), token])


def test_token_cli_create_list_revoke(tmp_path):
    from click.testing import CliRunner

    from search_service.cli import main
    from search_service.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    created = runner.invoke(main, ["token", "create", "--name", "bot", "--groups", "coe-leads,procurement"])
    assert created.exit_code == 0 and created.stdout.strip().startswith("kb_")
    assert runner.invoke(main, ["token", "create", "--name", "bot"]).exit_code == 1
    listed = runner.invoke(main, ["token", "list"]).stdout
    assert "bot" in listed and "coe-leads,procurement" in listed and created.stdout.strip() not in listed
    assert runner.invoke(main, ["token", "revoke", "bot"]).exit_code == 0
    assert "revoked" in runner.invoke(main, ["token", "list"]).stdout
    assert runner.invoke(main, ["token", "revoke", "nobody"]).exit_code == 1


def test_proxy_headers_trusted_only_from_configured_addresses(retriever, tmp_path):
    app, _ = make_app(retriever, tmp_path, auth="proxy", trusted_proxies="127.0.0.1")
    with LiveServer(app) as server:
        headers = {"X-Forwarded-User": "dana@example.com", "X-Forwarded-Groups": "procurement,staff"}
        hits = httpx.get(server.url + "/v1/search", params={"q": SECRET_WORDS, "k": 50}, headers=headers).json()["hits"]
        assert SECRET_PAGE in [h["path"] for h in hits]
        plain = httpx.get(server.url + "/v1/search", params={"q": SECRET_WORDS, "k": 50},
                          headers={"X-Forwarded-User": "eve@example.com"}).json()["hits"]
        assert SECRET_PAGE not in [h["path"] for h in plain]
        assert httpx.get(server.url + "/v1/search", params={"q": "x"}).status_code == 401  # no user header
    app, _ = make_app(retriever, tmp_path, auth="proxy", trusted_proxies="10.1.2.3")
    with LiveServer(app) as server:
        spoofed = httpx.get(server.url + "/v1/search", params={"q": "x"},
                            headers={"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "procurement"})
        assert spoofed.status_code == 403 and "KB_TRUSTED_PROXIES" in spoofed.json()["error"]["message"]


# ---------- abuse limits ----------

def test_rate_limit_answers_429_with_retry_after(retriever, tmp_path):
    app, _ = make_app(retriever, tmp_path, rate_limit_per_minute=5)
    with LiveServer(app) as server:
        codes = [httpx.get(server.url + "/v1/search", params={"q": "pilot"}) for _ in range(8)]
    assert [r.status_code for r in codes[:5]] == [200] * 5
    limited = codes[-1]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_oversized_body_is_413_and_cors_is_closed_by_default(live_api):
    big = httpx.post(live_api.url + "/v1/ask", content=b'{"question": "' + b"x" * 20000 + b'"}',
                     headers={"content-type": "application/json"})
    assert big.status_code == 413
    preflight = httpx.options(live_api.url + "/v1/search", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers


# ---------- schema fuzzing ----------

def test_fuzzed_requests_never_get_a_server_error(live_api):
    """schemathesis generates requests from our OpenAPI schema; none may get a 5xx or a traceback."""
    schema = schemathesis.openapi.from_url(live_api.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"GET /v1/search", "POST /v1/ask", "POST /v1/feedback"}
    for operation in operations:
        strategy = operation.as_strategy()

        @given(case=strategy)
        @hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, case.query, case.body, response.text[:300])
            assert "Traceback" not in response.text

        check()


# ---------- start-up faults and hot reload ----------

@pytest.mark.parametrize("fault", ["missing", "corrupt", "other-model"])
def test_serve_refuses_to_start_on_a_bad_index(fault, tmp_path, content_dir, embedder):
    index_dir = tmp_path / "index"
    env = {**os.environ, "KB_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1"}
    if fault != "missing":
        write_page(content_dir, "a.md", page_text("A"))
        build_index(content_dir, index_dir, embedder)
        build = current_build(index_dir)
        if fault == "corrupt":
            (build / "chunks.jsonl").write_text("{not json")
        else:
            manifest = json.loads((build / "manifest.json").read_text())
            (build / "manifest.json").write_text(json.dumps({**manifest, "model": "someone/else"}))
    result = subprocess.run([sys.executable, "-m", "search_service.cli", "serve", "--no-build", "--port", str(free_port())],
                            check=False, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "run `kb index" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_public_address_without_auth():
    result = subprocess.run([sys.executable, "-m", "search_service.cli", "serve", "--no-build", "--host", "0.0.0.0"],
                            check=False, env={**os.environ, "KB_AUTH": "none"}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "without authentication" in result.stderr


def test_hot_reload_swaps_index_with_zero_failed_requests(tmp_path, content_dir, embedder):
    for i in range(3):
        write_page(content_dir, f"p/page-{i}.md", page_text(f"Page {i}", body=f"## Topic\n\nFunding rules number {i}.\n"))
    index_dir = tmp_path / "index"
    build_index(content_dir, index_dir, embedder)
    retriever = HybridRetriever(load_index(index_dir), embedder)
    app, _ = make_app(retriever, tmp_path, index_dir=index_dir)
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while not stop.is_set():
                response = client.get("/v1/search", params={"q": "funding rules"})
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    with LiveServer(app) as server:
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        write_page(content_dir, "p/new.md", page_text("Brand new page", body="## Fresh\n\nA new funding rule.\n"))
        build_index(content_dir, index_dir, embedder)
        reloaded = httpx.post(server.url + "/v1/admin/reload", timeout=60)
        assert reloaded.status_code == 200 and reloaded.json()["pages"] == 4
        # a broken new index is refused and the old one keeps serving
        broken = tmp_path / "broken"
        shutil.copytree(current_build(index_dir), broken)
        (broken / "dense.faiss").write_bytes(b"garbage")
        (index_dir / "current").unlink()
        (index_dir / "current").symlink_to(broken)
        refused = httpx.post(server.url + "/v1/admin/reload", timeout=60)
        assert refused.status_code == 409 and "still serving" in refused.json()["error"]["message"]
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
        pages = {h["path"] for h in httpx.get(server.url + "/v1/search", params={"q": "funding", "k": 10}).json()["hits"]}
    assert failures == []
    assert "p/new.md" in pages


def test_sighup_reloads_the_index_of_a_running_kb_serve(tmp_path, content_dir, embedder):
    import signal

    write_page(content_dir, "p/one.md", page_text("One", body="## Topic\n\nFirst funding rule.\n"))
    index_dir = tmp_path / "index"
    build_index(content_dir, index_dir, embedder)
    port = free_port()
    env = {**os.environ, "KB_INDEX_DIR": str(index_dir), "KB_SITE_DIR": str(tmp_path / "no-site"),
           "KB_DATABASE_URL": f"sqlite:///{tmp_path}/kb.sqlite3", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "search_service.cli", "serve", "--no-build", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                before = httpx.get(url + "/readyz", timeout=2).json()["index"]
                break
            except (httpx.HTTPError, KeyError, ValueError):
                assert time.monotonic() < deadline and proc.poll() is None, "kb serve did not start"
                time.sleep(0.3)
        write_page(content_dir, "p/two.md", page_text("Two", body="## Topic\n\nSecond funding rule.\n"))
        build_index(content_dir, index_dir, embedder)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while httpx.get(url + "/readyz", timeout=5).json()["index"]["content_hash"] == before["content_hash"]:
            assert time.monotonic() < deadline, "SIGHUP did not reload the index"
            time.sleep(0.2)
        assert httpx.get(url + "/readyz", timeout=5).json()["index"]["pages"] == before["pages"] + 1
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_labelled_questions_about_the_restricted_page(retriever):
    """tests/eval/restricted.jsonl: members of the page's groups find it, everyone else never does."""
    from search_service.evaluation import load_questions
    from tests.conftest import ROOT

    questions = load_questions(ROOT / "tests" / "eval" / "restricted.jsonl")
    assert questions and all(q.gold == [SECRET_PAGE] for q in questions)
    for q in questions:
        inside = retriever.search(q.question, k=5, viewer=Viewer(groups=frozenset({"procurement"})))
        assert SECRET_PAGE in [h.page_path for h in inside.hits], q.id
        outside = retriever.search(q.question, k=50, viewer=Viewer(groups=frozenset({"finance"})))
        assert SECRET_PAGE not in [h.page_path for h in outside.hits], q.id
