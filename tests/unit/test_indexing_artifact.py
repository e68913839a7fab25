"""The index artifact on disk: written then loaded with real FAISS and BM25, and every documented load error."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from search_service.indexing.artifact import (
    FORMAT_VERSION,
    chunk_from_json,
    chunk_to_json,
    current_build,
    load_index,
    read_manifest,
    write_checksums,
)
from search_service.indexing.artifact_tokens import Segment, read_listing, read_segments, segment_key, write_segments
from search_service.indexing.build import EmbeddedChunks, write_build
from search_service.indexing.chunking import CHUNKER_VERSION
from search_service.indexing.embedding import QueryEncoding, TokenVectors
from search_service.indexing.errors import IndexLoadError
from search_service.indexing.plan import plan_build
from search_service.indexing.publish import publish_build, stage_build
from search_service.indexing.tokens import TokenStore
from tests.conftest import page_text, write_page

DIMENSION = 6
MODEL = "test/fake-model"
MANIFEST_KEYS = ["format", "model", "dimension", "chunker_version", "index_type", "content_hash", "pages",
                 "excluded_pages", "tuning", "chunks", "embedded", "cached", "token_vectors", "built_at", "build_seconds"]


def _fake_embedding(plan, rng):
    """Random unit vectors and word pieces for every chunk of a plan, as the embed stage would return them."""
    vectors, tokens = {}, {}
    for chunk in plan.chunks:
        vector = rng.standard_normal(DIMENSION).astype(np.float32)
        vectors[chunk.content_hash] = vector / np.linalg.norm(vector)
        n = 1 + len(chunk.text.split())
        rows = rng.standard_normal((n, DIMENSION))
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        tokens[chunk.content_hash] = TokenVectors(rng.integers(0, 50, n).astype(np.int32), rows.astype(np.float16))
    return EmbeddedChunks(vectors, tokens, embedded=len(vectors), removed=0)


@pytest.fixture
def built(content_dir, tmp_path):
    """A published build of three small pages written from a fake embedding, and what went into it."""
    for i in range(3):
        write_page(content_dir, f"area/page-{i}.md", page_text(
            f"Page {i}", body=f"Intro {i}.\n\n## Budget\n\nFunding topic{i} here.\n\n## Risks\n\nDrift {i}.\n"))
    index_dir = tmp_path / "index"
    (index_dir / "builds").mkdir(parents=True)
    plan = plan_build(content_dir, index_dir, model=MODEL)
    embedded = _fake_embedding(plan, np.random.default_rng(7))
    staged = stage_build(index_dir)
    write_build(staged.folder, plan, embedded, dimension=DIMENSION, started=0.0)
    publish_build(staged, plan.previous)
    return index_dir, plan, embedded


def test_a_written_build_loads_back_exactly(built):
    index_dir, plan, embedded = built
    index = load_index(index_dir, model=MODEL, dimension=DIMENSION)
    assert [chunk_to_json(c) for c in index.chunks] == [chunk_to_json(c) for c in plan.chunks]
    assert index.pages == plan.page_meta
    assert np.allclose(index.vectors, embedded.matrix(plan.chunks, DIMENSION))
    assert sorted(p.name for p in index.path.iterdir()) == sorted(
        ["manifest.json", "chunks.jsonl", "pages.json", "page-hashes.json", "dense.faiss", "bm25", "bm25-pages", "tokens",
         "checksums.json"])
    for n, chunk in enumerate(plan.chunks):  # row n of the word-piece store is chunk n's vectors
        assert np.array_equal(index.tokens.rows(n), embedded.tokens[chunk.content_hash].vectors)
    # BM25 rows follow chunk and page order: a word of one chunk finds that chunk and its page first.
    target = next(n for n, c in enumerate(index.chunks) if "topic1" in c.text)
    assert int(np.argmax(index.keyword.scores("topic1"))) == target
    assert list(index.pages)[int(np.argmax(index.page_keyword.scores("topic1")))] == "area/page-1.md"


def test_manifest_keeps_its_keys_in_order_and_counts(built):
    index_dir, plan, embedded = built
    manifest = json.loads((current_build(index_dir) / "manifest.json").read_text())
    assert list(manifest) == MANIFEST_KEYS
    assert manifest | {"built_at": None, "build_seconds": None} == {
        "format": FORMAT_VERSION, "model": MODEL, "dimension": DIMENSION, "chunker_version": CHUNKER_VERSION,
        "index_type": "flat", "content_hash": plan.content_hash, "pages": 3, "excluded_pages": 0, "tuning": None,
        "chunks": len(plan.chunks), "embedded": len(plan.chunks), "cached": 0,
        "token_vectors": sum(t.ids.size for t in embedded.tokens.values()), "built_at": None, "build_seconds": None}
    hashes = json.loads((current_build(index_dir) / "page-hashes.json").read_text())
    assert hashes == {"chunker_version": CHUNKER_VERSION, "pages": {p.page.path: p.page_hash for p in plan.pages}}


def test_chunk_lines_carry_the_id_and_read_back_to_the_same_chunk(built):
    _index_dir, plan, _embedded = built
    for chunk in plan.chunks:
        line = json.loads(json.dumps(chunk_to_json(chunk)))
        assert line["id"] == chunk.id and chunk_from_json(line) == chunk


def _corrupt(index_dir, name, text):
    """Damage a file and re-seal the build, as a faulty writer would: the checks behind the checksums still refuse it."""
    (current_build(index_dir) / name).write_text(text)
    write_checksums(current_build(index_dir))


def _save_sealed(index_dir, path, array):
    np.save(path, array)
    write_checksums(current_build(index_dir))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda d: _corrupt(d, "manifest.json", "{broken"), r"has no readable manifest \(.*\); run `kb index --index-dir "),
    (lambda d: _corrupt(d, "manifest.json", "[1, 2]"), r"has no readable manifest \(manifest.json holds list"),
    (lambda d: _corrupt(d, "manifest.json", json.dumps({**read_manifest(current_build(d)), "format": 2})),
     rf"has format 2, this version reads {FORMAT_VERSION}; run `kb index"),
    (lambda d: _corrupt(d, "dense.faiss", "not a faiss file"), r"is corrupt \(RuntimeError: .*\); run `kb index"),
    (lambda d: _corrupt(d, "chunks.jsonl", "".join((current_build(d) / "chunks.jsonl").read_text().splitlines(True)[1:])),
     r"is inconsistent \(\d+ vectors, \d+ chunks\)"),
    (lambda d: _corrupt(d, "manifest.json", json.dumps({**read_manifest(current_build(d)), "dimension": 5})),
     r"stores 6-d vectors but its manifest says 5"),
    (lambda d: _save_sealed(d, next((current_build(d) / "tokens").glob("*.ids.npy")).with_suffix("").with_suffix(".npy"),
                            np.zeros((1, DIMENSION), np.float16)),
     r"is corrupt \(ValueError: segment \w+ has shape \(1, 6\), expected"),
])
def test_a_damaged_build_gives_the_documented_load_error(built, damage, message):
    index_dir = built[0]
    damage(index_dir)
    with pytest.raises(IndexLoadError, match=message):
        load_index(index_dir)


def test_load_refuses_a_missing_index_another_model_or_dimension(built, tmp_path):
    index_dir = built[0]
    with pytest.raises(IndexLoadError, match=r"no search index at .*nothing: run `kb index --index-dir .*nothing` to build it"):
        load_index(tmp_path / "nothing")
    with pytest.raises(IndexLoadError, match=r"built with model 'test/fake-model' but KB_MODEL selects 'other'; "
                                             r"run `kb index .* with the current model, or set KB_MODEL back"):
        load_index(index_dir, model="other")
    with pytest.raises(IndexLoadError, match="has dimension 6, the model gives 384"):
        load_index(index_dir, dimension=384)


def test_a_build_without_word_pieces_loads_with_reranking_off(built, caplog):
    import shutil

    index_dir = built[0]
    shutil.rmtree(current_build(index_dir) / "tokens")
    write_checksums(current_build(index_dir))  # a build made without them, not one that lost them
    with caplog.at_level(logging.WARNING):
        index = load_index(index_dir)
    assert index.tokens is None and "late-interaction re-ranking is off" in caplog.text


# --- the tokens/ folder -------------------------------------------------------------------------------


def _tokens(ids, seed):
    rows = np.random.default_rng(seed).standard_normal((len(ids), DIMENSION))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return TokenVectors(np.array(ids, np.int32), rows.astype(np.float16))


def test_token_segments_round_trip_with_document_frequencies_and_links(tmp_path):
    first = [_tokens([3, 3, 5], 1), _tokens([5], 2)]  # page A: two chunks; piece 3 twice in one chunk
    second = [_tokens([9, 3], 3)]  # page B: one chunk
    a, b = segment_key("m", "page-a"), segment_key("m", "page-b")
    old = tmp_path / "old"
    assert write_segments(old, [Segment(a, [3, 1], tokens=first), Segment(b, [2], tokens=second)], DIMENSION) == 6
    assert read_listing(old) == {a: [3, 1], b: [2]}
    new = tmp_path / "new"
    write_segments(new, [Segment(b, [2], source=old), Segment(a, [3, 1], tokens=first)], DIMENSION)
    assert (new / f"{b}.npy").stat().st_ino == (old / f"{b}.npy").stat().st_ino  # linked, not rewritten
    arrays = read_segments(new)
    assert arrays.spans.tolist() == [[0, 0, 2], [1, 0, 3], [1, 3, 4]]  # in the new order: B's chunk, then A's two
    assert arrays.df[[3, 5, 9]].tolist() == [2, 2, 1]  # chunks holding each piece, each chunk counted once
    assert np.array_equal(TokenStore.load(new).rows(2), first[1].vectors)
    with pytest.raises(ValueError, match="holds 2 tokens, its chunks 3"):
        write_segments(tmp_path / "bad", [Segment(b, [3], source=old)], DIMENSION)
    assert read_listing(tmp_path / "missing") == {}


def test_maxsim_equals_a_brute_force_idf_weighted_mean_of_best_matches(tmp_path):
    chunks = [_tokens([1, 2, 3], 4), _tokens([2, 4], 5), _tokens([5, 6, 7, 8], 6)]
    write_segments(tmp_path, [Segment("k", [3, 2, 4], tokens=chunks)], DIMENSION)
    store = TokenStore.load(tmp_path)
    query_tokens = _tokens([2, 7, 99], 8)
    query = QueryEncoding(np.zeros(DIMENSION, np.float32), query_tokens, ["budget", "##ing", "the"])  # "the": stopword
    scores = store.maxsim(query, [2, 0, 1])
    q = query_tokens.vectors[:2].astype(np.float32)
    df = {2: 2, 7: 1}
    idf = np.array([np.log((3 + 1) / (df[i] + 1)) for i in (2, 7)])
    expected = [float((chunks[c].vectors.astype(np.float32) @ q.T).max(axis=0) @ (idf / idf.sum())) for c in (2, 0, 1)]
    assert np.allclose(scores, expected, atol=1e-5)


# --- checksums.json: a build is served only as it was written -------------------------------------------


def _edit_a_chunk(build):
    lines = (build / "chunks.jsonl").read_text().splitlines(True)
    lines[0] = lines[0].replace('"text": "', '"text": "Edited: ', 1)
    assert lines[0] != (build / "chunks.jsonl").read_text().splitlines(True)[0]
    (build / "chunks.jsonl").write_text("".join(lines))


@pytest.mark.parametrize(("damage", "message"), [
    (_edit_a_chunk, r"is corrupt: chunks.jsonl was changed after the build \(its sha256 differs"),
    (lambda b: __import__("shutil").rmtree(b / "tokens"), r"is corrupt: tokens/\w+\.ids\.npy is missing or unreadable"),
    (lambda b: next((b / "tokens").glob("*.ids.npy")).unlink(), r"is corrupt: tokens/\w+\.ids\.npy is missing"),
    (lambda b: (b / "pages.json").write_text((b / "pages.json").read_text() + " "), r"pages.json was changed after"),
    (lambda b: (b / "checksums.json").unlink(), r"is corrupt: no readable checksums.json"),
    (lambda b: (b / "checksums.json").write_text('{"algorithm": "md5", "files": {}}'), r"does not list sha256 digests"),
    (lambda b: (b / "tokens" / "extra.npy").write_bytes(b"x"), r"is corrupt: tokens/extra.npy is not a file of the build"),
])
def test_a_build_changed_after_it_was_written_is_refused_naming_the_file(built, damage, message):
    index_dir = built[0]
    damage(current_build(index_dir))
    with pytest.raises(IndexLoadError, match=message) as refused:
        load_index(index_dir)
    assert "run `kb index --index-dir" in str(refused.value)


def test_token_vectors_are_read_into_memory_not_mapped(built):
    """A mapped file truncated on disk kills the process with SIGBUS; an in-memory copy cannot."""
    index_dir = built[0]
    index = load_index(index_dir)
    assert index.tokens is not None and index.index_dir == index_dir
    before = [np.array(index.tokens.rows(n)) for n in range(index.tokens.n_docs)]
    assert not any(isinstance(segment, np.memmap) for segment in index.tokens.segments)
    for path in (current_build(index_dir) / "tokens").glob("*.npy"):
        with open(path, "r+b") as handle:  # truncated in place, as a careless copy would
            handle.truncate(0)
    assert all(np.array_equal(index.tokens.rows(n), before[n]) for n in range(index.tokens.n_docs))
