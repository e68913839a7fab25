"""Access, issue #19 findings 2 and 3: an outsider's responses do not depend on the restricted pages.

The property: every /v1 response an outsider receives (and /readyz and /metrics) is identical whether
or not a restricted page exists in the index, so nothing in them (a successor URL, an answer's
confidence, a BM25 score, a page count) can reveal the page or the words in it. Two indexes of one
small content folder are served, one with a restricted page whose codename occurs nowhere else and
which succeeds a public deprecated page, one without it; the same requests are compared. The second
index is built as an update of the first, so both hold the same vectors for the shared pages (a fresh
build embeds in other batches, which moves vectors in their last float bits).
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import httpx
import pytest

from search_service.content import page_url
from search_service.indexing.chunking import Chunk
from search_service.indexing.keyword import KeywordIndex, tokenize
from search_service.ranking.access import document_words
from search_service.ranking.sections import PageSections
from search_service.settings import Settings
from search_service.store import Store
from tests.conftest import TODAY, LiveServer, page_text, write_page

CODENAME = "bluefinch"
RESTRICTED = "strategy/project-bluefinch.md"
DEPRECATED = "guides/old-vendor-guide.md"
MEMBER_GROUP = "procurement"
PUBLIC_PAGES = {
    DEPRECATED: page_text(
        "Old vendor guide", extra=f"status: deprecated\nsuperseded_by: {RESTRICTED}\n",
        body="Superseded.\n\n## Vendor selection\n\nPick a vendor by price and by the exit clause of the contract.\n"),
    "guides/vendor-contracts.md": page_text(
        "Vendor contracts", extra="tags: [vendors]\n",
        body="How to read a contract.\n\n## Exit clauses\n\nEvery vendor contract needs an exit clause and audit "
             "rights.\n\n## Pricing\n\nCompare pricing benchmarks before you sign.\n"),
    "guides/pilot-funding.md": page_text(
        "Pilot funding", type_="playbook",
        body="Who pays for pilots.\n\n## Budget\n\nThe sponsoring team funds the pilot; finance approves it.\n"),
}
RESTRICTED_PAGE = page_text(
    "Project Bluefinch vendor plan", extra=f"access: [{MEMBER_GROUP}]\n",
    body=f"Confidential.\n\n## Negotiation\n\n{CODENAME.title()} is our walk-away position: the vendor contract "
         f"exit clause, pricing benchmarks and audit rights we insist on for {CODENAME}.\n")

# Request bodies and answers carry fresh random ids; /readyz a build time; /metrics timings and creation times.
RANDOM_KEYS = {"id", "answer_id", "built_at", "build"}  # build: a folder name made of the build time
TIMING_LINE = re.compile(r"_created|_duration_seconds|kb_index_age_seconds")


def outsider_requests(call) -> list[tuple[str, object]]:
    """Every /v1 path (and /readyz, /metrics) as an outsider calls it: (what, status and normalised body)."""
    seen: list[tuple[str, object]] = []

    def record(what: str, response: httpx.Response) -> httpx.Response:
        seen.append((what, (response.status_code, normalised(response))))
        return response

    for query in (CODENAME, "vendor contract exit clause", "old vendor guide", f"{CODENAME} audit rights pricing"):
        record(f"search {query}", call("GET", "/v1/search", params={"q": query, "k": 10}))
    record("search filtered", call("GET", "/v1/search", params={"q": "vendor pricing", "type": "guide", "tag": "vendors"}))
    record("search k=0", call("GET", "/v1/search", params={"q": "vendor", "k": 0}))
    answer_id = None
    for question in (f"what is {CODENAME}?", "what exit clause does a vendor contract need?",
                     f"what are the {CODENAME} pricing benchmarks?"):
        response = record(f"ask {question}", call("POST", "/v1/ask", json={"question": question}))
        answer_id = answer_id or response.json()["id"]
        record(f"ask streamed {question}", call("POST", "/v1/ask", json={"question": question, "stream": True}))
    record("ask about the page", call("POST", "/v1/ask", json={"question": "what is this about?", "page": RESTRICTED}))
    record("ask filtered", call("POST", "/v1/ask", json={"question": "vendor pricing", "filters": {"type": ["guide"]}}))
    record("feedback", call("POST", "/v1/feedback", json={"answer_id": answer_id, "rating": "up"}))
    record("feedback unknown", call("POST", "/v1/feedback", json={"answer_id": "0" * 32, "rating": "up"}))
    record("feedback invalid", call("POST", "/v1/feedback", json={"answer_id": "x", "rating": "sideways"}))
    record("gaps", call("GET", "/v1/analytics/gaps"))
    record("reload", call("POST", "/v1/admin/reload"))
    record("readyz", call("GET", "/readyz"))
    record("metrics", call("GET", "/metrics"))
    return seen


def normalised(response: httpx.Response) -> object:
    """A response body without what differs between any two runs (random ids, times)."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        return [line if not line.startswith("data:") else without_random(httpx.Response(200, content=line[5:]).json())
                for line in response.text.splitlines()]
    if kind.startswith("application/json"):
        return without_random(response.json())
    return [line for line in response.text.splitlines() if not TIMING_LINE.search(line)]


def without_random(value: object) -> object:
    if isinstance(value, dict):
        return {key: without_random(item) for key, item in value.items() if key not in RANDOM_KEYS}
    if isinstance(value, list):
        return [without_random(item) for item in value]
    return value


def serve(content: Path, index_dir: Path, tmp_path: Path, embedder):
    """Index ``content``, serve it with token auth, and return the app's server and tokens by role."""
    from search_service.api import create_app
    from search_service.auth import create_token
    from search_service.indexing.build import build_index, load_index
    from search_service.ranking.retriever import HybridRetriever

    build_index(content, index_dir, embedder)
    settings = Settings(today=TODAY, site_dir=tmp_path / "no-site", database_url=f"sqlite:///{tmp_path}/kb.sqlite3",
                        user_hash_secret="s3cret", rate_limit_per_minute=100_000, auth="token")
    retriever = HybridRetriever.from_settings(load_index(index_dir, model=embedder.name), embedder, settings)
    app = create_app(settings, retriever=retriever, serve_site=False)
    store = Store(settings.database_url, user_hash_secret="s3cret")
    store.migrate()
    tokens = {"outsider": create_token(store, "outsider", ["finance"]),
              "member": create_token(store, "member", [MEMBER_GROUP])}
    store.dispose()
    return LiveServer(app), tokens, retriever


def caller(url: str, token: str):
    def call(method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, url + path, headers={"Authorization": f"Bearer {token}"}, timeout=120, **kwargs)
    return call


@pytest.mark.slow
def test_outsider_responses_identical_with_and_without_the_restricted_page(tmp_path, embedder):
    worlds = {}
    for name, pages in (("without", PUBLIC_PAGES), ("with", {**PUBLIC_PAGES, RESTRICTED: RESTRICTED_PAGE})):
        content = tmp_path / name / "content"
        for rel, text in pages.items():
            write_page(content, rel, text)
        if name == "with":  # an update of the other build: the shared pages' vectors come from its cache
            shutil.copytree(tmp_path / "without" / "index", tmp_path / name / "index", symlinks=True)
        worlds[name] = serve(content, tmp_path / name / "index", tmp_path / name, embedder)
    (server_with, tokens_with, retriever_with), (server_without, tokens_without, _) = worlds["with"], worlds["without"]
    with server_with, server_without:
        with_page = outsider_requests(caller(server_with.url, tokens_with["outsider"]))
        without_page = outsider_requests(caller(server_without.url, tokens_without["outsider"]))
        for (what, seen_with), (_, seen_without) in zip(with_page, without_page, strict=True):
            assert seen_with == seen_without, what
        assert "project-bluefinch" not in str(with_page)

        # A member of the page's group sees it: found, named as the successor, cited; the codename is covered.
        member = caller(server_with.url, tokens_with["member"])
        hits = member("GET", "/v1/search", params={"q": CODENAME}).json()["hits"]
        assert hits[0]["path"] == RESTRICTED
        old = member("GET", "/v1/search", params={"q": "old vendor guide", "k": 10}).json()["hits"]
        successor_url = Settings().site_url.rstrip("/") + "/" + page_url(RESTRICTED)
        assert [h["superseded_by"] for h in old if h["path"] == DEPRECATED] == [successor_url]
        answer = member("POST", "/v1/ask", json={"question": f"what is {CODENAME}?"}).json()
        assert answer["citations"] and answer["citations"][0]["url"].split("#")[0] == successor_url

    # Viewers who may see every page rank exactly as before: the index's own keyword indexes and vocabulary.
    from search_service.ranking.retriever import Viewer

    everything = Viewer(all_access=True)
    assert retriever_with.keyword_views.for_pages(retriever_with.visibility.accessible(everything)) is \
        retriever_with.keyword_views.full
    assert retriever_with.search(CODENAME, viewer=everything).coverage == 1.0
    assert retriever_with.search(CODENAME, viewer=Viewer(groups=frozenset({"finance"}))).coverage == 0.0


def test_page_words_are_recovered_exactly_from_a_page_level_index():
    """The per-viewer page index is rebuilt from the stored one; its words must be the pages' own."""
    texts = ["Vendor contracts: exit clauses, exit fees and pricing.", "Pilot funding and pilot budgets, pilot pilot.",
             "Pricing benchmarks for vendor audits."]
    keyword = KeywordIndex.build(texts)
    paths = [f"p{i}.md" for i in range(len(texts))]
    sections = PageSections([Chunk(path, path, [], "", text) for path, text in zip(paths, texts, strict=True)])
    recovered = document_words(keyword, paths, sections)
    assert [Counter(words) for words in recovered] == [Counter(tokenize(text)) for text in texts]


def test_a_page_whose_every_word_repeats_falls_back_to_its_chunks(caplog):
    texts = ["alpha alpha beta beta", "gamma delta epsilon", "delta zeta"]
    paths = ["a.md", "b.md", "c.md"]
    sections = PageSections([Chunk(path, path, [], "", text) for path, text in zip(paths, texts, strict=True)])
    words = document_words(KeywordIndex.build(texts), paths, sections)
    assert sorted(words[0]) == ["alpha", "alpha", "beta", "beta"]
    assert "a.md" in caplog.text
