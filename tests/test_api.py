"""The search API over real HTTP on loopback."""

from __future__ import annotations

import json

import pytest

from tests.conftest import PLAYBOOKS

pytestmark = pytest.mark.slow


@pytest.fixture
def client(api_client):
    return api_client


def test_search_returns_hits_with_section_urls(client):
    response = client.get("/v1/search", params={"q": "who pays for the shared AI platform", "k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "who pays for the shared AI platform" and len(body["hits"]) == 5
    hit = body["hits"][0]
    for field in ("url", "title", "section", "snippet", "score", "type", "owner", "last_reviewed", "stale"):
        assert field in hit
    assert hit["url"].startswith("/") and "#" in hit["url"]
    assert "<mark>" in hit["snippet"]
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_filters_restrict_results(client):
    body = client.get("/v1/search", params={"q": "pilot", "type": "template", "k": 10}).json()
    assert body["hits"] and {h["type"] for h in body["hits"]} == {"template"}
    body = client.get("/v1/search", params=[("q", "pilot"), ("type", "lesson"), ("type", "faq")]).json()
    assert {h["type"] for h in body["hits"]} <= {"lesson", "faq"}


def test_stale_flag_follows_review_date(client):
    body = client.get("/v1/search", params={"q": "build buy or partner decision", "k": 10}).json()
    hit = next(h for h in body["hits"] if h["path"] == "strategy/build-buy-partner.md")
    assert hit["stale"] is True


def test_restricted_page_never_returned_anonymously(client):
    body = client.get("/v1/search", params={"q": "vendor negotiation walk-away positions exit clauses", "k": 50}).json()
    assert all(h["path"] != "strategy/vendor-negotiation-positions.md" for h in body["hits"])
    assert "negotiation positions" not in str(body).lower()


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"q": ""}, 422, "q"),
        ({}, 422, "q"),
        ({"q": "   "}, 400, "blank"),
        ({"q": "x" * 501}, 422, "q"),
        ({"q": "pilot", "k": 0}, 422, "k"),
        ({"q": "pilot", "k": 51}, 422, "k"),
        ({"q": "pilot", "k": "ten"}, 422, "k"),
    ],
    ids=["empty", "missing", "blank", "too-long", "k-zero", "k-too-big", "k-not-int"],
)
def test_bad_parameters_get_json_errors(client, params, status, fragment):
    response = client.get("/v1/search", params=params)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["status"] == status and fragment in error["message"]


def test_health_readiness_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["index"]["chunks"] > 0 and ready["index"]["model"]
    ranking = ready["ranking"]
    assert len(ranking["fusion_weights"]) == 3 and ranking["rerank_depth"] >= 0
    tuning_file = json.loads((PLAYBOOKS / ".kb-tuning.json").read_text())
    assert ranking["content_tuning"]["fusion_weights"] == tuning_file["fusion_weights"]
    schema = client.get("/openapi.json").json()
    assert "/v1/search" in schema["paths"]


def test_unknown_route_is_json_404(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["status"] == 404
