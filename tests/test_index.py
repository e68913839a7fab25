"""The index artifact: incremental builds, manifest checks, corruption, atomic swap under SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import numpy as np
import pytest

from search_service.indexing.build import IndexLoadError, build_index, current_build, load_index
from tests.conftest import PLAYBOOKS, page_text, write_page

pytestmark = pytest.mark.slow


def _pages(root, n=3):
    for i in range(n):
        write_page(root, f"area/page-{i}.md", page_text(
            f"Page {i}", body=f"Intro {i}.\n\n## First\n\nAlpha {i} text.\n\n## Second\n\nBeta {i} text.\n"))


def test_rebuild_after_editing_one_page_embeds_only_its_changed_chunks(content_dir, tmp_path, embedder):
    _pages(content_dir)
    index_dir = tmp_path / "index"
    first = build_index(content_dir, index_dir, embedder)
    assert first.embedded == first.chunks and first.cached == 0
    page = content_dir / "area/page-1.md"
    page.write_text(page.read_text().replace("Beta 1 text.", "Beta 1 text, now edited."))
    second = build_index(content_dir, index_dir, embedder)
    assert second.embedded == 1  # only the edited section
    assert second.cached == second.chunks - 1
    assert second.build_dir != first.build_dir
    unchanged = build_index(content_dir, index_dir, embedder)
    assert unchanged.unchanged and unchanged.embedded == 0


def test_deleted_pages_disappear_from_the_index(content_dir, tmp_path, embedder):
    _pages(content_dir)
    index_dir = tmp_path / "index"
    build_index(content_dir, index_dir, embedder)
    (content_dir / "area/page-2.md").unlink()
    report = build_index(content_dir, index_dir, embedder)
    index = load_index(index_dir)
    assert "area/page-2.md" not in index.pages
    assert all(c.page_path != "area/page-2.md" for c in index.chunks)
    assert report.removed > 0 and report.embedded == 0


def test_malformed_page_is_reported_and_the_rest_indexed(content_dir, tmp_path, embedder):
    _pages(content_dir, 2)
    write_page(content_dir, "area/broken.md", "---\ntitle: [unclosed\n---\ntext\n")
    report = build_index(content_dir, tmp_path / "index", embedder)
    assert [e.path for e in report.errors] == ["area/broken.md"]
    assert sorted(load_index(tmp_path / "index").pages) == ["area/page-0.md", "area/page-1.md"]


def test_manifest_records_model_dimension_and_counts(repo_index_dir, embedder):
    index = load_index(repo_index_dir)
    manifest = index.manifest
    assert manifest["model"] == embedder.name and manifest["dimension"] == embedder.dimension == 384
    assert manifest["chunks"] == len(index.chunks) == index.dense.ntotal
    assert manifest["pages"] == len(index.pages)
    assert len(manifest["content_hash"]) == 64 and manifest["chunker_version"]


def test_load_refuses_other_model_or_dimension_with_rebuild_hint(repo_index_dir):
    with pytest.raises(IndexLoadError, match=r"built with model .* run `kb index"):
        load_index(repo_index_dir, model="some/other-model")
    with pytest.raises(IndexLoadError, match="dimension 384, the model gives 768"):
        load_index(repo_index_dir, dimension=768)


def test_missing_and_corrupt_index_get_clear_messages(content_dir, tmp_path, embedder):
    with pytest.raises(IndexLoadError, match="no search index at"):
        load_index(tmp_path / "nothing")
    _pages(content_dir, 1)
    build_index(content_dir, tmp_path / "index", embedder)
    build = current_build(tmp_path / "index")
    (build / "dense.faiss").write_bytes(b"not a faiss file")
    with pytest.raises(IndexLoadError, match="is corrupt"):
        load_index(tmp_path / "index")
    (build / "manifest.json").write_text("{broken")
    with pytest.raises(IndexLoadError, match="no readable manifest"):
        load_index(tmp_path / "index")


def test_faiss_results_equal_brute_force_numpy(retriever, embedder):
    index = retriever.index
    vectors = index.vectors
    for query in ("how do we fund AI pilots", "model drift alert thresholds", "who approves high-risk models"):
        q = embedder.embed_query(query)
        scores, ids = index.dense.search(q.reshape(1, -1), 10)
        brute = vectors @ q
        expected = np.argsort(-brute, kind="stable")[:10]
        assert list(ids[0]) == list(expected)
        assert np.allclose(scores[0], brute[expected], atol=1e-5)


def test_hnsw_index_agrees_with_flat_on_top_hit(content_dir, tmp_path, embedder):
    _pages(content_dir, 3)
    build_index(content_dir, tmp_path / "flat", embedder)
    build_index(content_dir, tmp_path / "hnsw", embedder, index_type="hnsw")
    flat, hnsw = load_index(tmp_path / "flat"), load_index(tmp_path / "hnsw")
    assert hnsw.manifest["index_type"] == "hnsw"
    q = embedder.embed_query("Beta 2").reshape(1, -1)
    assert flat.dense.search(q, 1)[1][0][0] == hnsw.dense.search(q, 1)[1][0][0]


def _cached_vectors(index_dir) -> int:
    """Vectors the embedding cache holds now (0 while it does not exist or is being written)."""
    try:
        with closing(sqlite3.connect(f"file:{index_dir / 'cache.sqlite'}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM vectors").fetchone()[0]
    except sqlite3.Error:
        return 0


def _wait_for_a_cache_commit(proc, index_dir, timeout=300.0) -> None:
    """Until the build commits embedded vectors, or ends: kill points tied to progress, not to the machine's speed."""
    seen, deadline = _cached_vectors(index_dir), time.monotonic() + timeout
    while proc.poll() is None and _cached_vectors(index_dir) <= seen and time.monotonic() < deadline:
        time.sleep(0.05)


def test_killed_build_leaves_previous_index_loadable(tmp_path, copy_of_playbooks, embedder):
    """SIGKILL `kb index` at several points; the previous index must stay intact each time."""
    small = tmp_path / "small"
    _pages(small, 2)
    index_dir = tmp_path / "index"
    build_index(small, index_dir, embedder)
    before = load_index(index_dir)
    env = {**os.environ, "KB_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1"}
    seen = []
    # While the model loads; then 0, 1.5 and 4 s after the build has committed a batch of new vectors.
    for after_commit, delay in ((False, 0.5), (True, 0.0), (True, 1.5), (True, 4.0)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "search_service.cli", "index", "--content", str(copy_of_playbooks),
             "--index-dir", str(index_dir), "-q"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if after_commit:
            _wait_for_a_cache_commit(proc, index_dir)
        time.sleep(delay)
        if proc.poll() is not None:
            break  # finished before this kill point; the checks below still hold
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = load_index(index_dir)  # loadable after every kill
        seen.append((after.manifest["content_hash"], sorted(after.pages)))
    # a later, uninterrupted build reuses what the killed ones cached and completes
    report = build_index(copy_of_playbooks, index_dir, embedder)
    complete = load_index(index_dir)
    assert sorted(complete.pages) == sorted(p.relative_to(copy_of_playbooks).as_posix()
                                            for p in copy_of_playbooks.rglob("*.md"))
    # Each kill left either the previous index or, when it landed after the atomic swap while the
    # process was exiting, the complete new one: never a mixture.
    old_state = (before.manifest["content_hash"], sorted(before.pages))
    new_state = (complete.manifest["content_hash"], sorted(complete.pages))
    assert all(state in (old_state, new_state) for state in seen)
    if seen:  # the first kill (0.5 s, the model still loading) cannot have swapped
        assert seen[0] == old_state
    assert report.cached > 0
    leftovers = [p.name for p in (index_dir / "builds").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    assert json.loads((current_build(index_dir) / "manifest.json").read_text())["pages"] == report.pages


def test_repository_index_covers_every_page(retriever):
    assert len(retriever.index.pages) == len(list(PLAYBOOKS.rglob("*.md")))


def test_incremental_build_equals_a_build_from_scratch(tmp_path, copy_of_playbooks, embedder):
    """Reused chunks of unchanged pages plus re-chunked edited pages == chunking everything anew."""
    incremental = tmp_path / "incremental"
    build_index(copy_of_playbooks, incremental, embedder)
    page = copy_of_playbooks / "delivery" / "pilot-to-production.md"
    page.write_text(page.read_text().replace("## Purpose\n", "## Purpose\n\nA new first sentence.\n", 1))
    (copy_of_playbooks / "faq" / "general.md").unlink()
    build_index(copy_of_playbooks, incremental, embedder)
    scratch = tmp_path / "scratch"
    build_index(copy_of_playbooks, scratch, embedder)
    a, b = load_index(incremental), load_index(scratch)
    assert [(c.id, c.text) for c in a.chunks] == [(c.id, c.text) for c in b.chunks]
    assert a.manifest["content_hash"] == b.manifest["content_hash"]
    assert np.allclose(a.vectors, b.vectors, atol=1e-5)


def test_corpus_tuning_file_travels_with_the_index(content_dir, tmp_path, embedder, monkeypatch):
    """`kb tune --save` writes .kb-tuning.json; the index carries it; KB_ variables still win."""
    from search_service.answering import abstain_threshold
    from search_service.ranking.retriever import HybridRetriever
    from search_service.settings import TUNING_FILE, Settings

    _pages(content_dir)
    index_dir = tmp_path / "index"
    build_index(content_dir, index_dir, embedder)
    untuned = load_index(index_dir)
    assert untuned.manifest["tuning"] is None
    defaults = HybridRetriever.from_settings(untuned, embedder, Settings()).config
    assert defaults.fusion_weights == Settings().fusion_weights

    (content_dir / TUNING_FILE).write_text(json.dumps(
        {"fusion_weights": [0.2, 0.1, 0.4], "rerank_weight": 0.6, "rerank_depth": 20, "chosen_by": "kb tune"}))
    report = build_index(content_dir, index_dir, embedder)
    assert not report.unchanged and report.embedded == 0  # a new build, every vector reused
    tuned = load_index(index_dir)
    config = HybridRetriever.from_settings(tuned, embedder, Settings()).config
    assert config.fusion_weights == (0.2, 0.1, 0.4)
    assert (config.rerank_weight, config.rerank_depth) == (0.6, 20)

    assert abstain_threshold(Settings(), HybridRetriever(tuned, embedder)) == Settings().abstain_threshold  # not in the file

    monkeypatch.setenv("KB_FUSION_WEIGHTS", "[0.8, 0.1, 0.1]")
    config = HybridRetriever.from_settings(tuned, embedder, Settings()).config
    assert config.fusion_weights == (0.8, 0.1, 0.1)
    assert config.rerank_weight == 0.6  # not set in the environment: still the corpus's

    (content_dir / TUNING_FILE).write_text(json.dumps(
        {"fusion_weights": [0.2, 0.1, 0.4], "rerank_weight": 0.6, "rerank_depth": 20, "abstain_threshold": 0.25}))
    build_index(content_dir, index_dir, embedder)
    calibrated = HybridRetriever(load_index(index_dir), embedder)
    assert abstain_threshold(Settings(), calibrated) == 0.25
    monkeypatch.setenv("KB_ABSTAIN_THRESHOLD", "0.4")
    assert abstain_threshold(Settings(), calibrated) == 0.4


def test_unusable_tuning_file_is_refused_and_the_index_kept(content_dir, tmp_path, embedder):
    from search_service.indexing.build import IndexBuildError
    from search_service.settings import TUNING_FILE

    _pages(content_dir)
    index_dir = tmp_path / "index"
    build_index(content_dir, index_dir, embedder)
    before = load_index(index_dir).manifest["content_hash"]
    for bad in ('{"fusion_weights": [0, 0, 0], "rerank_weight": 0.3, "rerank_depth": 30}', "{not json"):
        (content_dir / TUNING_FILE).write_text(bad)
        with pytest.raises(IndexBuildError, match=r"\.kb-tuning\.json: not a usable tuning file"):
            build_index(content_dir, index_dir, embedder)
        assert load_index(index_dir).manifest["content_hash"] == before


def test_quick_successive_builds_keep_the_current_and_previous_build(content_dir, tmp_path, embedder):
    """Builds finished within one second used to be pruned by a random name order, which could
    delete the build just swapped in."""
    _pages(content_dir, 1)
    index_dir = tmp_path / "index"
    for n in range(6):  # all vectors cached after the first: each build takes a few milliseconds
        write_page(content_dir, "area/extra.md", page_text("Extra", body=f"## Note\n\nRevision {n}.\n"))
        build_index(content_dir, index_dir, embedder)
        assert load_index(index_dir).manifest["pages"] == 2
        assert len([p for p in (index_dir / "builds").iterdir() if not p.name.startswith(".")]) == min(n + 1, 2)
