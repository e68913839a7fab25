"""Late-interaction re-ranking: stored word-piece vectors, MaxSim against brute force, and faults."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest

from search_service.evaluation import EVAL_VIEWER, comparison_retrievers
from search_service.indexing.artifact import write_checksums
from search_service.indexing.build import IndexLoadError, build_index, current_build, load_index
from search_service.indexing.tokens import TOKENS_DIR, _is_content_piece
from search_service.ranking.retriever import HybridRetriever

QUERIES = [
    "I think one of our AI tools treats some customers unfairly, who do I report it to?",
    "our team wants to set up its own GPU servers for one project, is that ok?",
    "how do we run a pilot evaluation?",
    "what goes into a business case for an AI use case",
]


def test_document_encoding_matches_the_plain_embedding(embedder):
    texts = ["Pilots stall when nobody funds production.", "A short one.", "Governance tiers decide the review depth."]
    vectors, tokens = embedder.encode_documents(texts)
    np.testing.assert_allclose(vectors, embedder.embed_documents(texts), atol=1e-5)
    for text, token in zip(texts, tokens, strict=True):
        ids = embedder.model.tokenizer(text)["input_ids"]
        expected = [i for i in ids if i not in embedder.model.tokenizer.all_special_ids]
        assert token.ids.tolist() == expected
        assert token.vectors.dtype == np.float16 and token.vectors.shape == (len(expected), embedder.dimension)
        np.testing.assert_allclose(np.linalg.norm(token.vectors.astype(np.float32), axis=1), 1.0, atol=1e-2)


def test_stored_tokens_belong_to_their_chunks(retriever, embedder):
    index = retriever.index
    assert index.tokens is not None and index.tokens.n_docs == len(index.chunks)
    assert index.manifest["token_vectors"] == index.tokens.total
    assert len(index.tokens.segments) == len(index.pages)
    for i in (0, len(index.chunks) // 2, len(index.chunks) - 1):
        _, (fresh,) = embedder.encode_documents([index.chunks[i].embed_text()])
        stored = np.asarray(index.tokens.rows(i), np.float32)
        assert stored.shape[0] == fresh.ids.size
        np.testing.assert_allclose(stored, fresh.vectors.astype(np.float32), atol=2e-3)


def test_maxsim_equals_brute_force(retriever, embedder, repo_index_dir):
    store = retriever.index.tokens
    query = embedder.encode_query(QUERIES[0])
    keep = [n for n, piece in enumerate(query.pieces) if _is_content_piece(piece)]
    assert 0 < len(keep) < len(query.pieces)  # stopwords such as "who" and "do" are dropped
    # Document frequencies recomputed from the word-piece ids kept in the embedding cache.
    db = sqlite3.connect(repo_index_dir / "cache.sqlite")
    ids_by_hash = dict(db.execute("SELECT hash, ids FROM tokens WHERE model = ?", [embedder.name]))
    db.close()
    df: dict[int, int] = {}
    for chunk in retriever.index.chunks:
        for piece in set(np.frombuffer(ids_by_hash[chunk.content_hash], dtype=np.int32).tolist()):
            df[piece] = df.get(piece, 0) + 1
    idf = np.array([np.log((store.n_docs + 1) / (df.get(int(query.tokens.ids[n]), 0) + 1)) for n in keep])
    weights = idf / idf.sum()
    chunk_ids = [0, 5, 17, 42]
    expected = []
    for i in chunk_ids:
        doc = np.asarray(store.rows(i), np.float32)
        best = [max(float(doc[t] @ query.tokens.vectors[n].astype(np.float32)) for t in range(len(doc))) for n in keep]
        expected.append(float(np.dot(best, weights)))
    np.testing.assert_allclose(store.maxsim(query, chunk_ids), expected, atol=1e-4)


def fusion_pages(retriever: HybridRetriever, query: str, k: int) -> list[str]:
    """The pages of the same retriever without its re-ranking stage."""
    fusion = comparison_retrievers(retriever)["fusion"]
    return [h.page_path for h in fusion.search(query, k=k, viewer=EVAL_VIEWER).hits]


def test_reranking_only_reorders_the_top_pages(retriever):
    depth = retriever.config.rerank_depth
    for query in QUERIES:
        fused = fusion_pages(retriever, query, 49)
        hybrid = [h.page_path for h in retriever.search(query, k=49, viewer=EVAL_VIEWER).hits]
        assert set(hybrid[:depth]) == set(fused[:depth]), query
        assert hybrid[depth:] == fused[depth:], query


def test_reranking_lifts_the_page_that_answers(retriever):
    """A question whose words miss the page ('unfairly', 'report') but whose meaning matches its section."""
    query = QUERIES[0]
    gold = "governance/responsible-ai-principles.md"
    fused = fusion_pages(retriever, query, 30)
    hybrid = [h.page_path for h in retriever.search(query, k=30, viewer=EVAL_VIEWER).hits]
    assert hybrid.index(gold) < fused.index(gold)


def test_an_index_without_token_vectors_still_searches(tmp_path, repo_index_dir, embedder):
    copy = tmp_path / "index"
    shutil.copytree(repo_index_dir, copy, symlinks=True)
    shutil.rmtree(current_build(copy) / TOKENS_DIR)
    write_checksums(current_build(copy))  # a build made without them: one that lost them is refused
    index = load_index(copy, model=embedder.name)
    assert index.tokens is None
    plain = HybridRetriever(index, embedder)
    for query in QUERIES:
        got = [h.page_path for h in plain.search(query, k=10, viewer=EVAL_VIEWER).hits]
        assert got == fusion_pages(plain, query, 10)


@pytest.mark.parametrize("damage", ["short-segment", "garbage-segment", "missing-segment", "bad-listing"])
def test_damaged_token_vectors_are_refused_with_a_message(tmp_path, repo_index_dir, embedder, damage):
    copy = tmp_path / "index"
    shutil.copytree(repo_index_dir, copy, symlinks=True)
    folder = current_build(copy) / TOKENS_DIR
    segment = min(folder.glob("*.ids.npy")).name.removesuffix(".ids.npy") + ".npy"
    if damage == "short-segment":
        np.save(folder / segment, np.load(folder / segment)[:-5])
    elif damage == "garbage-segment":
        (folder / segment).write_bytes(b"not a numpy file")
    elif damage == "missing-segment":
        (folder / segment).unlink()
    else:
        (folder / "segments.json").write_text("{")
    with pytest.raises(IndexLoadError, match="kb index"):
        load_index(copy, model=embedder.name)


def test_unchanged_pages_link_their_token_vectors(tmp_path, embedder):
    """A re-index writes word-piece vectors for the edited page only; the rest are hard links."""
    from tests.conftest import PLAYBOOKS

    content = tmp_path / "content"
    shutil.copytree(PLAYBOOKS / "faq", content / "faq")
    build_index(content, tmp_path / "index", embedder)
    before = {f.name: f.stat().st_ino for f in (current_build(tmp_path / "index") / TOKENS_DIR).glob("*.npy")}
    page = content / "faq" / "general.md"
    page.write_text(page.read_text() + "\nOne more line.\n")
    report = build_index(content, tmp_path / "index", embedder)
    after = {f.name: f.stat().st_ino for f in (current_build(tmp_path / "index") / TOKENS_DIR).glob("*.npy")}
    shared = {name for name in after if before.get(name) == after[name]}
    assert len(shared) == len(after) - 3  # only the edited page's vectors, ids and the df table are new
    assert report.embedded < 5
    index = load_index(tmp_path / "index", model=embedder.name)
    for i, chunk in enumerate(index.chunks):
        _, (fresh,) = embedder.encode_documents([chunk.embed_text()])
        np.testing.assert_allclose(np.asarray(index.tokens.rows(i), np.float32), fresh.vectors.astype(np.float32),
                                   atol=2e-3)


def test_a_cache_without_token_vectors_is_filled_in(tmp_path, embedder):
    """Upgrading from an index without word-piece vectors re-encodes only what lacks them."""
    from tests.conftest import PLAYBOOKS

    content = tmp_path / "content"
    shutil.copytree(PLAYBOOKS / "faq", content / "faq")
    first = build_index(content, tmp_path / "index", embedder)
    shutil.rmtree(current_build(tmp_path / "index") / TOKENS_DIR)  # as an index of format 2 had none
    db = sqlite3.connect(tmp_path / "index" / "cache.sqlite")
    with db:
        missing = [row[0] for row in db.execute("SELECT hash FROM tokens LIMIT 3")]
        db.executemany("DELETE FROM tokens WHERE hash = ?", [(h,) for h in missing])
    db.close()
    (content / "faq" / "general.md").write_text((content / "faq" / "general.md").read_text() + "\nOne more line.\n")
    second = build_index(content, tmp_path / "index", embedder)
    assert first.embedded == first.chunks
    assert 3 < second.embedded < second.chunks  # the 3 without tokens, plus the edited page's changed chunks
    assert load_index(tmp_path / "index", model=embedder.name).tokens.n_docs == second.chunks


def test_rerank_depth_setting_turns_the_stage_off(retriever, embedder, monkeypatch):
    from search_service.settings import Settings

    monkeypatch.setenv("KB_RERANK_DEPTH", "0")
    off = HybridRetriever.from_settings(retriever.index, embedder, Settings())
    assert off.config.rerank_depth == 0 and off.parts.reranker is None
    query = QUERIES[0]
    assert [h.page_path for h in off.search(query, k=10, viewer=EVAL_VIEWER).hits] == fusion_pages(off, query, 10)
    on = HybridRetriever.from_settings(retriever.index, embedder, Settings(rerank_depth=30))
    assert [h.page_path for h in on.search(query, k=10, viewer=EVAL_VIEWER).hits] != fusion_pages(on, query, 10)
    monkeypatch.setenv("KB_RERANK_DEPTH", "-1")
    with pytest.raises(ValueError):
        Settings()


def test_fusion_and_rerank_weights_come_from_the_settings(retriever, embedder, monkeypatch):
    import dataclasses
    import json

    from search_service.ranking import RankingConfig
    from search_service.settings import TUNING_FILE, Settings
    from tests.conftest import PLAYBOOKS

    untuned = dataclasses.replace(retriever.index, manifest={**retriever.index.manifest, "tuning": None})
    assert HybridRetriever.from_settings(untuned, embedder, Settings()).config == RankingConfig()
    # Our playbooks carry the weights `kb tune --save` chose for them; their index applies them.
    saved = json.loads((PLAYBOOKS / TUNING_FILE).read_text())
    tuned = HybridRetriever.from_settings(retriever.index, embedder, Settings()).config
    assert list(tuned.fusion_weights) == saved["fusion_weights"]
    assert (tuned.rerank_weight, tuned.rerank_depth) == (saved["rerank_weight"], saved["rerank_depth"])
    monkeypatch.setenv("KB_FUSION_WEIGHTS", "[1, 0, 0]")
    monkeypatch.setenv("KB_RERANK_DEPTH", "0")
    dense_only = HybridRetriever.from_settings(retriever.index, embedder, Settings())
    assert dense_only.config.fusion_weights == (1.0, 0.0, 0.0)
    query = QUERIES[1]
    dense = comparison_retrievers(retriever)["dense"]
    assert [h.page_path for h in dense_only.search(query, k=5, viewer=EVAL_VIEWER).hits] == \
        [h.page_path for h in dense.search(query, k=5, viewer=EVAL_VIEWER).hits]
    for bad in ("[0, 0, 0]", "[-1, 1, 1]", "[1, 2]"):
        monkeypatch.setenv("KB_FUSION_WEIGHTS", bad)
        with pytest.raises(ValueError):
            Settings()
