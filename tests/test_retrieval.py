"""Hybrid retrieval: filters, access, deprecated pages and their successors, snippets."""

from __future__ import annotations

import pytest

from search_service.evaluation import comparison_retrievers
from search_service.indexing.build import build_index, load_index
from search_service.ranking.retriever import ANONYMOUS, Filters, HybridRetriever, Viewer, chunk_url, make_snippet
from tests.conftest import page_text, write_page

pytestmark = pytest.mark.slow


@pytest.fixture
def small_retriever(content_dir, tmp_path, embedder):
    write_page(content_dir, "p/old-intake.md", page_text(
        "Old intake form", type_="guide", extra="status: deprecated\nsuperseded_by: p/new-intake.md\ntags: [intake]\n",
        body="## How to submit an idea\n\nEmail the intake form for AI use-case ideas to the CoE mailbox.\n"))
    write_page(content_dir, "p/new-intake.md", page_text(
        "Idea submission", type_="playbook", extra="tags: [intake]\n",
        body="## Submitting\n\nUse the portal to propose an initiative; the triage board meets weekly.\n"))
    write_page(content_dir, "p/secret.md", page_text(
        "Vendor pricing positions", extra="access: [procurement]\ntags: [vendors]\n",
        body="## Discounts\n\nOur walk-away discount for GPU vendors is 30 percent.\n"))
    write_page(content_dir, "p/budget.md", page_text(
        "Funding", type_="template", extra="tags: [budget]\naudience: [executives]\n".replace("audience: [executives]\n", ""),
        body="## Budget lines\n\nPilots are funded by the department that benefits; platforms centrally.\n"))
    build_index(content_dir, tmp_path / "idx", embedder)
    return HybridRetriever(load_index(tmp_path / "idx"), embedder)


def paths(result):
    return [h.page_path for h in result.hits]


def test_filters_apply_before_ranking(small_retriever):
    query = "how do I submit an AI idea"
    assert paths(small_retriever.search(query, k=5, filters=Filters(type=("template",)))) == ["p/budget.md"]
    assert set(paths(small_retriever.search(query, k=5, filters=Filters(tag=("intake",))))) <= {
        "p/old-intake.md", "p/new-intake.md"}
    assert paths(small_retriever.search(query, k=5, filters=Filters(audience=("executives",)))) == []


def test_restricted_page_invisible_without_group(small_retriever):
    query = "walk-away discount for GPU vendors"
    assert "p/secret.md" not in paths(small_retriever.search(query, k=10, viewer=ANONYMOUS))
    assert "p/secret.md" not in paths(small_retriever.search(query, k=10, viewer=Viewer(frozenset({"finance"}))))
    allowed = small_retriever.search(query, k=10, viewer=Viewer(frozenset({"procurement"})))
    assert paths(allowed)[0] == "p/secret.md"


def test_deprecated_page_is_demoted_and_its_successor_takes_its_place(small_retriever):
    result = small_retriever.search("email the intake form to the CoE mailbox", k=5)
    order = paths(result)
    assert order.index("p/new-intake.md") < order.index("p/old-intake.md")
    successor = result.hits[order.index("p/new-intake.md")]
    assert successor.promoted_from == "p/old-intake.md"
    old = result.hits[order.index("p/old-intake.md")]
    assert old.superseded_by == "p/new-intake.md"


def test_comparison_retrievers_rank_with_one_signal(small_retriever):
    retrievers = comparison_retrievers(small_retriever)
    assert paths(retrievers["bm25"].search("walk-away discount", k=3, viewer=Viewer(all_access=True)))[0] == "p/secret.md"
    assert retrievers["bm25"].search("zzzz qqqq", k=3).hits == []
    assert retrievers["dense"].search("who pays for pilots", k=1).hits[0].page_path == "p/budget.md"


def test_section_urls_carry_anchor(small_retriever):
    hit = small_retriever.search("triage board meets weekly", k=1).hits[0]
    assert chunk_url(hit.best) == "/p/new-intake/#submitting"
    assert chunk_url(hit.best, "https://kb.example.com/portal") == "https://kb.example.com/portal/p/new-intake/#submitting"


def test_snippet_marks_terms_and_escapes_html():
    snippet = make_snippet("Use <script>alert(1)</script> for funding pilots", ["fund", "pilot"])
    assert "<script>" not in snippet and "&lt;script&gt;" in snippet
    assert "<mark>funding</mark>" in snippet and "<mark>pilots</mark>" in snippet


def test_repository_questions_land_on_the_right_page(retriever):
    top = retriever.search("our proof of concept worked but it never went live, what now?", k=3)
    assert "delivery/pilot-to-production.md" in paths(top) or "faq/pilot-stagnation.md" in paths(top)


def test_baseline_is_reciprocal_rank_fusion_of_the_section_rankings(retriever):
    """Checked against an independent computation on the same BM25 and dense section scores."""
    query = "how do we train staff in AI skills"
    everyone = Viewer(all_access=True)
    visible = retriever.visibility.visible(Filters(), everyone).chunk_ids
    candidates = retriever.config.candidates
    dense = retriever.parts.dense.scores(retriever.embedder.embed_query(query), visible, candidates)
    keyword = retriever.parts.section_keywords.scores(query, visible, candidates)
    candidates = {retriever.index.chunks[i].page_path for i in {*dense, *keyword}}
    assert not any(retriever.index.pages[path].status.value == "deprecated" for path in candidates), (
        "pick a query without deprecated candidates: their demotion is not part of this computation")
    fused: dict[int, float] = {}
    for scores in (dense, keyword):
        for rank, i in enumerate(sorted(scores, key=scores.get, reverse=True), start=1):
            fused[i] = fused.get(i, 0.0) + 1 / (60 + rank)
    best: dict[str, float] = {}
    for i, value in fused.items():
        path = retriever.index.chunks[i].page_path
        best[path] = max(best.get(path, 0.0), value)
    expected = sorted(best, key=lambda path: (-best[path], path))[:10]
    result = comparison_retrievers(retriever)["baseline"].search(query, k=10, viewer=everyone)
    assert paths(result) == expected
    assert paths(result) != paths(retriever.search(query, k=10, viewer=everyone))  # a different ranker


def test_search_front_matter_excludes_and_boosts_pages(content_dir, tmp_path, embedder, monkeypatch):
    body = "## Funding\n\nPilots are funded by the department that benefits from them.\n"
    write_page(content_dir, "a/funding.md", page_text("Pilot funding", body=body))
    write_page(content_dir, "a/costs.md", page_text("Cost notes", body="## Costs\n\nSome pilots are paid for centrally.\n"))
    write_page(content_dir, "a/changelog.md", page_text("Changelog", extra="search:\n  exclude: true\n", body=body))
    write_page(content_dir, "old/notes.md", page_text("Old notes", body=body))
    write_page(content_dir, "a/holidays.md", page_text("Holidays", body="## Leave\n\nBook leave in the HR system.\n"))
    report = build_index(content_dir, tmp_path / "idx", embedder, exclude=["old/*"])
    assert report.excluded == 2 and report.pages == 3
    index = load_index(tmp_path / "idx")
    assert set(index.pages) == {"a/funding.md", "a/costs.md", "a/holidays.md"}
    assert index.manifest["excluded_pages"] == 2
    query = "which department funds pilots"
    plain = HybridRetriever(index, embedder).search(query, k=5)
    assert paths(plain)[:2] == ["a/funding.md", "a/costs.md"]

    write_page(content_dir, "a/costs.md", page_text("Cost notes", extra="search:\n  boost: 5\n",
                                                    body="## Costs\n\nSome pilots are paid for centrally.\n"))
    build_index(content_dir, tmp_path / "idx", embedder, exclude=["old/*"])
    boosted = HybridRetriever(load_index(tmp_path / "idx"), embedder).search(query, k=5)
    assert paths(boosted)[:2] == ["a/costs.md", "a/funding.md"]
    before = {h.page_path: h.score for h in plain.hits}
    assert boosted.hits[0].score == pytest.approx(5 * before["a/costs.md"], rel=1e-5)

