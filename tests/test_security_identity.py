"""Who a request comes from: the socket peer, never a header it chose; rate limits on that identity,
shared by every process; tokens stored under a keyed hash; secrets kept out of the logs.

Issue #19, findings 1 (proxy identity spoofing), 7 (rate limits) and the token parts of 8.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from search_service.api.ratelimit import FAILED_AUTH_PER_MINUTE, WINDOW_SECONDS, RateLimiter
from search_service.api.security import request_address
from search_service.api.server import redact
from search_service.auth import (
    TOKEN_HASH_LABEL,
    AuthError,
    client_address,
    create_token,
    identity_from_proxy,
    identity_from_token,
)
from search_service.settings import Settings
from search_service.store import ApiToken, Store
from tests.conftest import PLAYBOOKS, TODAY, LiveServer, free_port

SECRET_PAGE = "strategy/vendor-negotiation-positions.md"
SECRET_QUERY = "vendor negotiation walk-away positions exit clauses"
LOOPBACK = "127.0.0.1"
PROXY = "10.0.0.5"  # the trusted proxy of the in-process tests
STRANGER = "10.0.0.9"  # a peer that is neither loopback nor trusted
REMOTE_CLIENT = "203.0.113.7"
SECRET = "s3cret"


def fresh_window(needed: float = 15.0) -> None:
    """Wait, if need be, so the next ``needed`` seconds fall in one rate-limit window."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < needed:
        time.sleep(left + 0.1)


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "today": TODAY, "site_dir": tmp_path / "no-site", "database_url": f"sqlite:///{tmp_path}/kb.sqlite3",
        "user_hash_secret": SECRET, "rate_limit_per_minute": 100_000, "trusted_proxies": PROXY}
    return Settings(**{**values, **overrides})


def client(retriever, settings: Settings, peer: str) -> TestClient:
    """An in-process client whose requests arrive from socket peer ``peer``."""
    from search_service.api import create_app

    return TestClient(create_app(settings, retriever=retriever, serve_site=False), client=(peer, 40000))


def search(http: TestClient, headers: dict[str, str] | None = None) -> httpx.Response:
    return http.get("/v1/search", params={"q": SECRET_QUERY, "k": 50}, headers=headers or {})


def paths(response: httpx.Response) -> list[str]:
    return [hit["path"] for hit in response.json()["hits"]]


# ---------- the client's address ----------

@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    (LOOPBACK, "10.0.0.5", LOOPBACK),  # an untrusted peer's header is ignored
    (STRANGER, "127.0.0.1", STRANGER),
    (PROXY, REMOTE_CLIENT, REMOTE_CLIENT),  # a trusted proxy says who its client is
    (PROXY, f"127.0.0.1, {REMOTE_CLIENT}", REMOTE_CLIENT),  # the client's own left-hand entries count for nothing
    (PROXY, f"{REMOTE_CLIENT}, 10.0.0.5", REMOTE_CLIENT),  # a chain of trusted proxies is walked through
    (PROXY, "not-an-address", PROXY),
    (PROXY, None, PROXY),
    (PROXY, f"{REMOTE_CLIENT}:51234", REMOTE_CLIENT),  # entries with a port are addresses too
    (PROXY, "[2001:db8::1]:443", "2001:db8::1"),
    (f"::ffff:{PROXY}", REMOTE_CLIENT, REMOTE_CLIENT),  # an IPv4 proxy seen through a dual-stack socket
])
def test_client_address_comes_from_the_socket_peer_unless_it_is_a_trusted_proxy(peer, forwarded, expected):
    assert client_address(peer, forwarded, "10.0.0.0/29") == expected


def _request(peer: str, headers: list[tuple[str, str]], trusted: str = "10.0.0.0/29") -> Request:
    app = SimpleNamespace(state=SimpleNamespace(settings=Settings(trusted_proxies=trusted)))
    return Request({"type": "http", "method": "GET", "path": "/v1/search", "query_string": b"", "app": app,
                    "client": (peer, 40000), "headers": [(k.lower().encode(), v.encode()) for k, v in headers]})


def test_a_second_forwarded_for_line_added_by_the_proxy_is_the_one_believed():
    """Some proxies (HAProxy's `option forwardfor`) add their own line after the client's."""
    forged = _request(PROXY, [("X-Forwarded-For", "127.0.0.1"), ("X-Forwarded-For", REMOTE_CLIENT)])
    assert request_address(forged) == REMOTE_CLIENT


def test_an_identity_header_sent_twice_is_refused():
    headers = _request(PROXY, [("X-Forwarded-User", "eve"), ("X-Forwarded-User", "dana"),
                               ("X-Forwarded-Groups", "procurement")]).headers
    with pytest.raises(AuthError) as refused:
        identity_from_proxy(headers, PROXY, "10.0.0.0/29")
    assert refused.value.status == 400
    once = _request(PROXY, [("X-Forwarded-User", "dana"), ("X-Forwarded-Groups", "procurement")]).headers
    assert identity_from_proxy(once, PROXY, "10.0.0.0/29") == ("sso:dana", frozenset({"procurement"}))


# ---------- tokens: keyed hashes ----------

def test_tokens_are_stored_as_an_hmac_keyed_with_the_store_secret(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/kb.sqlite3", user_hash_secret=SECRET)
    store.migrate()
    token = create_token(store, "bot", ["finance"])
    with store.session() as session:
        stored = session.get(ApiToken, "bot")
    assert stored is not None
    assert stored.token_hash != hashlib.sha256(token.encode()).hexdigest()  # not the unkeyed hash
    assert stored.token_hash == hmac.new(SECRET.encode(), TOKEN_HASH_LABEL + token.encode(), hashlib.sha256).hexdigest()
    assert identity_from_token(store, f"Bearer {token}")[0] == "token:bot"
    other_key = Store(store.url, user_hash_secret="another-secret")  # a stolen table without the key verifies nothing
    with pytest.raises(Exception, match="invalid or revoked"):
        identity_from_token(other_key, f"Bearer {token}")
    store.dispose()
    other_key.dispose()


def test_a_token_stored_under_the_old_unkeyed_hash_keeps_working_and_is_rehashed(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/kb.sqlite3", user_hash_secret=SECRET)
    store.migrate()
    legacy = "kb_" + "x" * 43
    with store.session.begin() as session:
        session.add(ApiToken(name="old", token_hash=hashlib.sha256(legacy.encode()).hexdigest(),
                             groups=json.dumps(["procurement"]), admin=False))
    user, groups, _ = identity_from_token(store, f"Bearer {legacy}")
    assert (user, groups) == ("token:old", frozenset({"procurement"}))
    with store.session() as session:
        stored = session.get(ApiToken, "old")
    assert stored is not None and stored.token_hash != hashlib.sha256(legacy.encode()).hexdigest()
    assert identity_from_token(store, f"Bearer {legacy}")[0] == "token:old"  # and again, under the keyed hash
    store.dispose()


def test_token_create_refuses_without_the_servers_secret(monkeypatch):
    from click.testing import CliRunner

    from search_service.cli import main
    from search_service.settings import get_settings

    monkeypatch.setenv("KB_USER_HASH_SECRET", "")
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["token", "create", "--name", "bot"])
    assert result.exit_code == 1 and "KB_USER_HASH_SECRET" in result.output


# ---------- secrets out of the logs ----------

def test_redact_hides_query_tokens_and_api_tokens_anywhere():
    token = "kb_" + "A1b2-C3d4_" * 4
    line = f'127.0.0.1:5000 - "GET /v1/search?q=pilot&token={token}&k=5 HTTP/1.1" 401'
    assert token not in redact(line) and "q=pilot" in redact(line) and "k=5" in redact(line)
    assert token not in redact(f"/v1/search?q={token}")
    assert redact("/v1/search?q=kb_index+size&access_token=abc") == "/v1/search?q=kb_index+size&access_token=[redacted]"


# ---------- rate limits shared through the database ----------

@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_stores_on_one_database_share_the_rate_limit(tmp_path, request, backend):
    url = f"sqlite:///{tmp_path}/kb.sqlite3" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    first, second = Store(url, user_hash_secret=SECRET), Store(url, user_hash_secret=SECRET)
    first.migrate()
    first.prune_rate_counters(before=2**31 - 1)  # the PostgreSQL server is shared by the session
    frozen = 1_000_000 * WINDOW_SECONDS + 10.0
    limiter_a, limiter_b = RateLimiter(4, clock=lambda: frozen), RateLimiter(4, clock=lambda: frozen)
    waits = [limiter.take(store, "token:bot") for limiter, store in [(limiter_a, first), (limiter_b, second)] * 3]
    assert waits[:4] == [0.0] * 4 and waits[4] == waits[5] == WINDOW_SECONDS - 10.0
    assert limiter_a.take(first, "token:other") == 0.0  # per identity
    later = RateLimiter(4, clock=lambda: frozen + WINDOW_SECONDS)
    assert later.take(second, "token:bot") == 0.0  # a new window starts afresh
    first.dispose()
    second.dispose()


@pytest.mark.slow
def test_two_app_instances_on_one_sqlite_file_share_the_limit(retriever, tmp_path):
    """Two workers (or replicas) on one database: together they allow the limit, not twice it."""
    settings = settings_for(tmp_path, rate_limit_per_minute=6)
    fresh_window()
    with client(retriever, settings, LOOPBACK) as first, client(retriever, settings, LOOPBACK) as second:
        codes = [http.get("/v1/search", params={"q": "pilot"}).status_code for http in (first, second) * 4]
        limited = second.get("/v1/search", params={"q": "pilot"})
    assert codes[:6] == [200] * 6 and codes[6:] == [429, 429]
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= WINDOW_SECONDS


@pytest.mark.slow
def test_repeated_invalid_tokens_get_429_with_retry_after_even_for_a_good_token(retriever, tmp_path):
    settings = settings_for(tmp_path, auth="token")
    fresh_window()
    with client(retriever, settings, STRANGER) as guesser, client(retriever, settings, "10.0.0.10") as other:
        store = guesser.app.state.store  # type: ignore[attr-defined]
        good = create_token(store, "bot", ["finance"])
        codes = [guesser.get("/v1/search", params={"q": "pilot"}, headers={"Authorization": f"Bearer kb_guess{i}"})
                 .status_code for i in range(FAILED_AUTH_PER_MINUTE + 2)]
        assert codes[:FAILED_AUTH_PER_MINUTE] == [401] * FAILED_AUTH_PER_MINUTE
        assert codes[FAILED_AUTH_PER_MINUTE:] == [429, 429]
        locked = guesser.get("/v1/search", params={"q": "pilot"}, headers={"Authorization": f"Bearer {good}"})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1  # a right guess teaches nothing
        assert "failed authentications" in locked.json()["error"]["message"]
        # Only that address is held back; headers cannot move a request to another address.
        assert other.get("/v1/search", params={"q": "pilot"}, headers={"Authorization": f"Bearer {good}"}).status_code == 200
        spoofed = guesser.get("/v1/search", params={"q": "pilot"},
                              headers={"Authorization": f"Bearer {good}", "X-Forwarded-For": "10.0.0.10"})
        assert spoofed.status_code == 429


@pytest.mark.slow
def test_rotating_x_forwarded_for_does_not_escape_the_limit_on_a_real_server(retriever, tmp_path):
    """KB_AUTH=none through uvicorn with the options `kb serve` uses: every request counts as the peer's."""
    from search_service.api import create_app

    settings = settings_for(tmp_path, rate_limit_per_minute=5, trusted_proxies="")
    fresh_window()
    with LiveServer(create_app(settings, retriever=retriever, serve_site=False)) as server:
        # Loopback-looking values, as in the probe: each passed the loopback check as a new identity.
        codes = [httpx.get(server.url + "/v1/search", params={"q": "pilot"},
                           headers={"X-Forwarded-For": f"127.0.0.{i + 10}"}).status_code for i in range(10)]
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}


# ---------- spoofed headers per auth mode ----------

@pytest.mark.slow
@pytest.mark.parametrize(("peer", "forwarded", "status"), [
    (LOOPBACK, REMOTE_CLIENT, 200),  # a loopback peer's header is not believed either way
    (STRANGER, "127.0.0.1", 403),  # a remote peer cannot claim to be loopback
    (PROXY, REMOTE_CLIENT, 403),  # a trusted proxy forwarding a remote client: no anonymous access
    (PROXY, "127.0.0.1", 200),
])
def test_none_mode_judges_the_client_by_its_address(retriever, tmp_path, peer, forwarded, status):
    with client(retriever, settings_for(tmp_path), peer) as http:
        assert search(http, {"X-Forwarded-For": forwarded}).status_code == status


@pytest.mark.slow
@pytest.mark.parametrize("peer", [LOOPBACK, PROXY])
def test_token_mode_ignores_identity_headers_from_loopback_and_from_a_trusted_peer(retriever, tmp_path, peer):
    with client(retriever, settings_for(tmp_path, auth="token"), peer) as http:
        outsider = create_token(http.app.state.store, "outsider", ["finance"])  # type: ignore[attr-defined]
        forged = {"X-Forwarded-For": PROXY, "X-Forwarded-User": "eve", "X-Forwarded-Groups": "procurement,kb-admins"}
        assert search(http, forged).status_code == 401
        as_outsider = search(http, {**forged, "Authorization": f"Bearer {outsider}"})
        assert as_outsider.status_code == 200 and SECRET_PAGE not in paths(as_outsider)
        assert http.post("/v1/admin/reload", headers={**forged, "Authorization": f"Bearer {outsider}"}).status_code == 403


@pytest.mark.slow
def test_proxy_mode_believes_only_a_trusted_socket_peer(retriever, tmp_path):
    settings = settings_for(tmp_path, auth="proxy")
    forged = {"X-Forwarded-For": PROXY, "X-Forwarded-User": "eve", "X-Forwarded-Groups": "procurement,kb-admins"}
    for peer in (LOOPBACK, STRANGER):
        with client(retriever, settings, peer) as http:
            assert search(http, forged).status_code == 403
            assert http.get("/v1/analytics/gaps", headers=forged).status_code == 403
    with client(retriever, settings, PROXY) as proxy:
        sidecar = search(proxy, {"X-Forwarded-For": REMOTE_CLIENT, "X-Forwarded-User": "dana",
                                 "X-Forwarded-Groups": "procurement"})
        assert sidecar.status_code == 200 and SECRET_PAGE in paths(sidecar)
        plain = search(proxy, {"X-Forwarded-For": REMOTE_CLIENT, "X-Forwarded-User": "eve"})
        assert plain.status_code == 200 and SECRET_PAGE not in paths(plain)


# ---------- the real thing: `kb serve` behind a sidecar proxy ----------

def _start_kb_serve(tmp_path: Path, index_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "KB_INDEX_DIR": str(index_dir), "KB_SITE_DIR": str(tmp_path / "no-site"),
           "KB_CONTENT_DIR": str(PLAYBOOKS), "KB_DATABASE_URL": f"sqlite:///{tmp_path}/kb.sqlite3",
           "KB_AUTH": "proxy", "KB_TRUSTED_PROXIES": "127.0.0.3", "KB_USER_HASH_SECRET": SECRET,
           "KB_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    env.pop("FORWARDED_ALLOW_IPS", None)  # uvicorn's own default, as in production
    return subprocess.Popen([sys.executable, "-m", "search_service.cli", "serve", "--no-build"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_until_up(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "kb serve did not start"
        time.sleep(0.3)


@pytest.mark.slow
def test_kb_serve_refuses_a_spoofed_proxy_and_serves_the_real_sidecar(repo_index_dir, tmp_path):
    """Finding 1 as reported: X-Forwarded-For naming the trusted proxy, sent from 127.0.0.1, must not
    make the request count as the proxy's; the sidecar on 127.0.0.3 works, with or without that header."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start_kb_serve(tmp_path, repo_index_dir, port)
    token = "kb_" + "Zq9" * 15
    try:
        _wait_until_up(url, proc)
        forged = {"X-Forwarded-For": "127.0.0.3", "X-Forwarded-User": "eve",
                  "X-Forwarded-Groups": "procurement,kb-admins"}
        with httpx.Client(base_url=url, timeout=60) as attacker:
            assert attacker.get("/v1/search", params={"q": SECRET_QUERY, "k": 50}, headers=forged).status_code == 403
            assert attacker.post("/v1/admin/reload", headers=forged).status_code == 403
            assert attacker.get("/v1/analytics/gaps", headers=forged).status_code == 403
        sidecar_transport = httpx.HTTPTransport(local_address="127.0.0.3")
        with httpx.Client(base_url=url, timeout=60, transport=sidecar_transport) as sidecar:
            response = sidecar.get("/v1/search", params={"q": SECRET_QUERY, "k": 50},
                                   headers={"X-Forwarded-For": REMOTE_CLIENT, "X-Forwarded-User": "dana",
                                            "X-Forwarded-Groups": "procurement"})
            assert response.status_code == 200 and SECRET_PAGE in paths(response)
            assert sidecar.get("/v1/search", params={"q": "pilot", "token": token},
                               headers={"X-Forwarded-User": "dana"}).status_code == 200
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert "GET /v1/search" in output  # the access log is on ...
    assert token not in output and "token=[redacted]" in output  # ... and keeps the secret out
