"""Ranking parts on a tiny in-memory index: fusion, reciprocal rank fusion, deprecated pages, filters
and access, boosts, re-ranking, and the comparison retrievers. No model: a fixed-vector embedder."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from search_service.content import PageMeta, Status
from search_service.evaluation import comparison_retrievers
from search_service.ranking import ANONYMOUS, DEFAULT_RANKING, Filters, HybridRetriever, RankingConfig, Viewer
from search_service.ranking.fusion import ReciprocalRankFusion, WeightedFusion, normalise
from search_service.ranking.page_rules import apply_boosts, demote_deprecated
from search_service.ranking.sections import RankedSections, SectionMatch
from search_service.ranking.signals import SignalScores
from tests.unit.synthetic_ranking import SECTIONS, FixedEmbedder, boosted, make_chunks, make_index, unit

EVERYONE = Viewer(all_access=True)


def paths(result) -> list[str]:
    return [hit.page_path for hit in result.hits]


@pytest.fixture
def embedder() -> FixedEmbedder:
    return FixedEmbedder()


@pytest.fixture
def retriever(embedder) -> HybridRetriever:
    return HybridRetriever(make_index(), embedder)


def test_min_max_normalisation():
    np.testing.assert_allclose(normalise(np.array([2.0, 4.0, 3.0], np.float32)), [0.0, 1.0, 0.5])
    # All equal: a positive signal counts fully, a zero one not at all (no division by zero).
    np.testing.assert_array_equal(normalise(np.array([0.3, 0.3], np.float32)), [1.0, 1.0])
    np.testing.assert_array_equal(normalise(np.array([0.0, 0.0], np.float32)), [0.0, 0.0])
    assert normalise(np.array([], np.float32)).size == 0


def _ranked(pages: list[str]) -> RankedSections:
    chunk = make_chunks()[1]
    return RankedSections({path: [SectionMatch(chunk, 0.0)] for path in pages}, {path: [] for path in pages})


def test_weighted_fusion_against_a_hand_computation():
    page_of = ["p", "p", "q", "r"]
    scores = SignalScores(dense={0: 0.8, 1: 0.7, 2: 0.85}, section_keywords={0: 2.0, 2: 4.0},
                          page_keywords={"p": 1.0, "r": 3.0})
    fused = WeightedFusion((0.4, 0.1, 0.1), 0.1, page_of).page_scores(scores, _ranked(["p", "q"]))
    # dense, best + 0.1 x second: p 0.87 (its second section lifts it over q), q 0.85, r (no section)
    # the floor 0.85 -> normalised 1, 0, 0
    # section BM25 / peak, best + 0.1 x second: p 0.5, q 1.0, r 0 -> normalised 0.5, 1, 0
    # page BM25 / peak: p 1/3, q 0, r 1 -> normalised 1/3, 0, 1
    assert list(fused) == ["p", "q", "r"]
    assert fused["p"] == pytest.approx(0.4 * 1 + 0.1 * 0.5 + 0.1 / 3, abs=1e-6)
    assert fused["q"] == pytest.approx(0.1, abs=1e-6)
    assert fused["r"] == pytest.approx(0.1, abs=1e-6)
    dense_only = WeightedFusion((1.0, 0.0, 0.0), 0.1, page_of).page_scores(scores, _ranked(["p", "q"]))
    assert dense_only == pytest.approx({"p": 1.0, "q": 0.0, "r": 0.0})


def test_section_scores_blend_the_section_signals_in_use_equally():
    fusion = WeightedFusion(DEFAULT_RANKING.fusion_weights, 0.1, ["p"] * 4)
    both = SignalScores(dense={0: 0.9, 1: 0.5, 2: 0.7}, section_keywords={0: 2.0, 2: 4.0})
    # dense normalised 1, 0, 0.5; BM25 normalised 0.5, 0, 1 (a section BM25 did not return scores 0)
    np.testing.assert_allclose(fusion.section_scores(both, [0, 1, 2]), [0.75, 0.0, 0.75])
    dense_only = SignalScores(dense={0: 0.9, 1: 0.5, 2: 0.7})
    np.testing.assert_allclose(fusion.section_scores(dense_only, [0, 1, 2]), [1.0, 0.0, 0.5])


def test_reciprocal_rank_fusion_against_a_hand_computation():
    scores = SignalScores(dense={5: 0.9, 3: 0.8, 7: 0.1}, section_keywords={3: 10.0, 9: 4.0})
    fused = ReciprocalRankFusion(60).section_scores(scores, [3, 5, 7, 9])
    # dense ranks 5, 3, 7; BM25 ranks 3, 9
    np.testing.assert_allclose(fused, [1 / 62 + 1 / 61, 1 / 61, 1 / 63, 1 / 62], rtol=1e-6)


def test_baseline_retriever_is_reciprocal_rank_fusion_of_the_section_rankings(retriever):
    """The whole baseline retriever against an independent computation from the two section signals."""
    baseline = comparison_retrievers(retriever)["baseline"]
    for query in ("who funds pilots", "email the intake form", "book leave"):
        visible = retriever.visibility.visible(Filters(), EVERYONE)
        dense = retriever.parts.dense.scores(retriever.embedder.embed_query(query), visible.chunk_ids, 200)
        keyword = retriever.parts.section_keywords.scores(query, visible.chunk_ids, 200)
        fused: dict[int, float] = {}
        for ranking in (dense, keyword):
            for rank, i in enumerate(sorted(ranking, key=ranking.get, reverse=True), start=1):
                fused[i] = fused.get(i, 0.0) + 1 / (60 + rank)
        best: dict[str, float] = {}
        for i, value in fused.items():
            path = retriever.index.chunks[i].page_path
            best[path] = max(best.get(path, 0.0), value)
        # The old intake page is deprecated: it keeps 60%, and its successor takes its score if lower.
        original = best["a/old-intake.md"]
        best["a/old-intake.md"] = 0.6 * original
        best["a/new-intake.md"] = max(best["a/new-intake.md"], original)
        expected = sorted(best, key=lambda path: (-best[path], path))
        assert paths(baseline.search(query, k=10, viewer=EVERYONE)) == expected, query


def test_deprecated_page_is_demoted_and_a_visible_successor_takes_its_score():
    pages = {"old": PageMeta(title="Old", status=Status.deprecated, superseded_by="new"),
             "new": PageMeta(title="New"), "other": PageMeta(title="Other")}
    scores, promoted = demote_deprecated({"old": 1.0, "new": 0.5, "other": 0.8}, pages, frozenset(pages), 0.6)
    assert scores == pytest.approx({"old": 0.6, "new": 1.0, "other": 0.8}) and promoted == {"new": "old"}
    # A successor the viewer may not see is not promoted.
    scores, promoted = demote_deprecated({"old": 1.0, "other": 0.8}, pages, frozenset({"old", "other"}), 0.6)
    assert scores == pytest.approx({"old": 0.6, "other": 0.8}) and promoted == {}
    # A successor that already scores higher keeps its own score.
    scores, promoted = demote_deprecated({"old": 0.5, "new": 0.9}, pages, frozenset(pages), 0.6)
    assert scores == pytest.approx({"old": 0.3, "new": 0.9}) and promoted == {}


def test_search_puts_the_successor_above_the_deprecated_page(retriever):
    result = retriever.search("email the intake form", k=5)
    order = paths(result)
    assert order[0] == "a/new-intake.md" and order.index("a/old-intake.md") > 0
    assert result.hits[0].promoted_from == "a/old-intake.md"
    assert result.hits[order.index("a/old-intake.md")].superseded_by == "a/new-intake.md"


def test_restricted_pages_are_excluded_before_ranking(retriever):
    query = "walk-away discount for GPU vendors"
    anonymous = retriever.search(query, k=10, viewer=ANONYMOUS)
    assert "a/secret.md" not in paths(anonymous)
    # The dense search itself never saw the secret section (its similarity would be 1).
    assert anonymous.dense_max < 0.9
    member = retriever.search(query, k=10, viewer=Viewer(frozenset({"procurement"})))
    assert paths(member)[0] == "a/secret.md" and member.dense_max == pytest.approx(1.0)
    assert "a/secret.md" not in paths(retriever.search(query, k=10, viewer=Viewer(frozenset({"finance"}))))
    secret_ids = {i for i, chunk in enumerate(retriever.index.chunks) if chunk.page_path == "a/secret.md"}
    assert not secret_ids & set(retriever.visibility.visible(Filters(), ANONYMOUS).chunk_ids.tolist())


def test_filters_apply_before_ranking(retriever):
    assert paths(retriever.search("who funds pilots", k=5, filters=Filters(type=("template",)))) == ["a/holidays.md"]
    assert set(paths(retriever.search("who funds pilots", k=5, filters=Filters(tag=("intake",))))) == {
        "a/old-intake.md", "a/new-intake.md"}
    assert retriever.search("who funds pilots", k=5, filters=Filters(audience=("executives",))).hits == []
    visible = retriever.visibility.visible(Filters(tag=("budget",)), EVERYONE)
    assert visible.pages == {"a/funding.md", "a/costs.md"}


def test_author_boost_multiplies_the_score(embedder):
    query = "who funds pilots"
    plain = HybridRetriever(make_index(), embedder).search(query, k=5, viewer=EVERYONE)
    assert paths(plain)[:2] == ["a/funding.md", "a/costs.md"]
    lifted = HybridRetriever(make_index(pages=boosted("a/costs.md", 5.0)), embedder).search(query, k=5, viewer=EVERYONE)
    assert paths(lifted)[:2] == ["a/costs.md", "a/funding.md"]
    before = {hit.page_path: hit.score for hit in plain.hits}
    assert lifted.hits[0].score == pytest.approx(5 * before["a/costs.md"], rel=1e-6)


def test_caller_boost_applies_after_the_authors():
    assert apply_boosts({"a": 1.0, "b": 0.5}, {"b": 2.0}, {"b": 3.0, "missing": 9.0}) == {"a": 1.0, "b": 3.0}


def test_search_boost_pages(retriever):
    query = "who funds pilots"
    plain = {hit.page_path: hit.score for hit in retriever.search(query, k=5).hits}
    scoped = retriever.search(query, k=5, boost_pages={"a/costs.md": 3.0})
    assert paths(scoped)[0] == "a/costs.md"
    assert scoped.hits[0].score == pytest.approx(3 * plain["a/costs.md"], rel=1e-6)


def test_comparison_retrievers_rank_with_one_signal(retriever, embedder):
    """The query's words point at the holidays page, its vector at the funding page."""
    query = "holiday leave booking"
    retrievers = comparison_retrievers(retriever)
    embedder.calls.clear()
    bm25 = retrievers["bm25"].search(query, k=3)
    assert paths(bm25)[0] == "a/holidays.md"
    assert embedder.calls == [] and bm25.query_vector is None  # no dense signal, no model call
    assert paths(retrievers["dense"].search(query, k=3))[0] == "a/funding.md"
    assert retrievers["bm25"].search("zzzz qqqq", k=3).hits == []  # no word known: nothing
    assert retrievers["dense"].search("zzzz qqqq", k=3).hits  # a vector always has neighbours
    assert retrievers["dense"].parts.section_keywords is None and retrievers["bm25"].parts.dense is None


def test_comparison_retrievers_share_the_index_and_leave_the_hybrid_alone(retriever):
    retrievers = comparison_retrievers(retriever)
    assert retrievers["hybrid"] is retriever
    assert all(r.index is retriever.index and r.embedder is retriever.embedder for r in retrievers.values())
    assert retriever.parts.page_keywords is not None and retrievers["baseline"].parts.page_keywords is None


def _reranking_index() -> tuple[HybridRetriever, FixedEmbedder]:
    """Word pieces that favour the costs page's section, which the sentence vectors rank second."""
    tokens = [vector for *_, vector in SECTIONS]
    costs = next(i for i, (page, heading, *_) in enumerate(SECTIONS) if page == "a/costs.md" and heading)
    tokens[costs] = unit(0, 0, 1, 0)
    embedder = FixedEmbedder(token_vectors={"who funds pilots": unit(0, 0, 1, 0)})
    config = dataclasses.replace(DEFAULT_RANKING, rerank_depth=2, rerank_weight=5.0)
    return HybridRetriever(make_index(tokens=tokens), embedder, config), embedder


def test_reranking_reorders_only_the_top_pages():
    hybrid, embedder = _reranking_index()
    fused = comparison_retrievers(hybrid)["fusion"].search("who funds pilots", k=10)
    reranked = hybrid.search("who funds pilots", k=10)
    assert paths(fused)[:2] == ["a/funding.md", "a/costs.md"]
    assert paths(reranked)[:2] == ["a/costs.md", "a/funding.md"]
    assert paths(reranked)[2:] == paths(fused)[2:]
    # Re-ranked pages stay within the range their fused scores had.
    low, high = fused.hits[1].score, fused.hits[0].score
    assert all(low - 1e-6 <= h.score <= high + 1e-6 for h in reranked.hits[:2])
    assert reranked.hits[1].score > fused.hits[2].score
    assert ("encode", "who funds pilots") in embedder.calls


def test_rerank_depth_zero_or_no_word_pieces_turns_the_stage_off(embedder):
    off = HybridRetriever(make_index(tokens=[v for *_, v in SECTIONS]), embedder,
                          dataclasses.replace(DEFAULT_RANKING, rerank_depth=0))
    assert off.parts.reranker is None
    assert HybridRetriever(make_index(), embedder).parts.reranker is None
    embedder.calls.clear()
    off.search("who funds pilots")
    assert embedder.calls == [("embed", "who funds pilots")]


def test_page_chunks_exclude_the_profile(retriever):
    chunks = retriever.page_chunks("a/funding.md")
    assert [c.section for c in chunks] == ["Budget lines", "Platforms"]
    hit = retriever.search("who funds pilots", k=1).hits[0]
    assert all(m.chunk.kind != "profile" for m in hit.sections)


def test_config_is_the_source_of_the_settings_defaults(monkeypatch):
    from search_service.settings import Settings

    settings = Settings()
    assert settings.fusion_weights == DEFAULT_RANKING.fusion_weights
    assert (settings.rerank_weight, settings.rerank_depth) == (DEFAULT_RANKING.rerank_weight, DEFAULT_RANKING.rerank_depth)
    assert settings.ranking_config() == RankingConfig()
    tuning = {"fusion_weights": [0.2, 0.1, 0.4], "rerank_weight": 0.6, "rerank_depth": 20}
    tuned = settings.ranking_config(tuning)
    assert (tuned.fusion_weights, tuned.rerank_weight, tuned.rerank_depth) == ((0.2, 0.1, 0.4), 0.6, 20)
    assert tuned.candidates == DEFAULT_RANKING.candidates  # what tuning does not choose stays the default
    monkeypatch.setenv("KB_RERANK_DEPTH", "0")
    assert Settings().ranking_config(tuning).rerank_depth == 0  # a KB_ variable that is set wins
    assert HybridRetriever.from_settings(make_index(), FixedEmbedder(), settings).config == RankingConfig()
