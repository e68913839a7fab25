"""The index build stage by stage (plan, embed, write, publish), with a word-hash stand-in for the model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from search_service.indexing.artifact import BUILDS_DIR, CACHE_FILE, current_build, load_index
from search_service.indexing.artifact_tokens import TOKENS_DIR
from search_service.indexing.build import BuildLock, ProgressHooks, build_index, embed_missing, write_build
from search_service.indexing.embedding import EmbeddingCache, TokenVectors
from search_service.indexing.errors import IndexBuildError
from search_service.indexing.plan import plan_build
from search_service.indexing.publish import publish_build, remove_unfinished_builds, stage_build
from search_service.settings import TUNING_FILE
from tests.conftest import page_text, write_page


def _unit_vector(word: str, dimension: int) -> np.ndarray:
    rng = np.random.default_rng(int(hashlib.sha256(word.encode()).hexdigest()[:12], 16))
    vector = rng.standard_normal(dimension)
    return vector / np.linalg.norm(vector)


class WordHashEncoder:
    """Test scaffolding: each word a fixed random unit vector; a text their normalised sum. Records its inputs."""

    name = "test/word-hash"
    dimension = 8
    batch_size = 2

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode_documents(self, texts: Sequence[str], *, on_batch: Callable[[int], None] | None = None,
                         ) -> tuple[np.ndarray, list[TokenVectors]]:
        vectors, tokens = [], []
        for text in texts:
            words = text.lower().split() or ["-"]
            rows = np.array([_unit_vector(w, self.dimension) for w in words], np.float32)
            total = rows.sum(axis=0)
            vectors.append(total / np.linalg.norm(total))
            ids = np.array([int(hashlib.sha256(w.encode()).hexdigest()[:4], 16) for w in words], np.int32)
            tokens.append(TokenVectors(ids, rows.astype(np.float16)))
        self.encoded.extend(texts)
        if on_batch:
            on_batch(len(texts))
        return np.array(vectors, np.float32).reshape(len(texts), self.dimension), tokens


def _pages(root, n=3):
    for i in range(n):
        write_page(root, f"area/page-{i}.md", page_text(
            f"Page {i}", body=f"Intro {i}.\n\n## First\n\nAlpha {i} text.\n\n## Second\n\nBeta {i} text.\n"))


def _edit(root, page, old, new):
    path = root / page
    path.write_text(path.read_text().replace(old, new))


@pytest.fixture
def encoder() -> WordHashEncoder:
    return WordHashEncoder()


# --- plan -------------------------------------------------------------------------------------------


def test_plan_of_a_first_build_chunks_every_page_and_reuses_nothing(content_dir, tmp_path):
    _pages(content_dir)
    write_page(content_dir, "area/hidden.md", page_text("Hidden", extra="search:\n  exclude: true\n"))
    write_page(content_dir, "area/skipped.md", page_text("Skipped"))
    write_page(content_dir, "area/broken.md", "---\ntitle: [unclosed\n---\ntext\n")
    plan = plan_build(content_dir, tmp_path / "index", model="m", exclude=["area/skipped.md"])
    assert [p.page.path for p in plan.pages] == ["area/page-0.md", "area/page-1.md", "area/page-2.md"]
    assert plan.excluded == 2 and [e.path for e in plan.errors] == ["area/broken.md"]
    assert plan.previous is None and not plan.up_to_date and plan.linkable_segments == {}
    assert not any(p.reused for p in plan.pages)
    assert all(p.chunks[0].kind == "profile" for p in plan.pages)  # the page profile leads each page
    assert plan.chunks == [c for p in plan.pages for c in p.chunks]
    assert plan.hashes_needing_tokens() == {c.content_hash for c in plan.chunks}
    assert plan.tuning is None and len(plan.content_hash) == 64


def test_plan_after_an_edit_reuses_unchanged_pages_and_links_their_word_pieces(content_dir, tmp_path, encoder):
    _pages(content_dir)
    index_dir = tmp_path / "index"
    build_index(content_dir, index_dir, encoder)
    same = plan_build(content_dir, index_dir, model=encoder.name)
    assert same.up_to_date and all(p.reused for p in same.pages)
    assert same.linkable_segments == {}  # nothing will be written, so nothing is looked up

    _edit(content_dir, "area/page-1.md", "Beta 1 text.", "Beta 1 text, edited.")
    plan = plan_build(content_dir, index_dir, model=encoder.name)
    assert not plan.up_to_date and plan.content_hash != same.content_hash
    assert [p.reused for p in plan.pages] == [True, False, True]
    # The previous build's segments: the edited page's old one too, which no current page matches.
    assert len(plan.linkable_segments) == 3
    linkable = [plan.segment_key(p) in plan.linkable_segments for p in plan.pages]
    assert linkable == [True, False, True]
    assert plan.hashes_needing_tokens() == {c.content_hash for c in plan.pages[1].chunks}
    assert plan.previous == current_build(index_dir)


@pytest.mark.parametrize("change", ["model", "index_type", "tuning"])
def test_plan_is_not_up_to_date_when_model_index_type_or_tuning_differ(content_dir, tmp_path, encoder, change):
    _pages(content_dir, 1)
    index_dir = tmp_path / "index"
    build_index(content_dir, index_dir, encoder)
    model, index_type = encoder.name, "flat"
    if change == "model":
        model = "another/model"
    elif change == "index_type":
        index_type = "hnsw"
    else:
        (content_dir / TUNING_FILE).write_text(json.dumps(
            {"fusion_weights": [0.2, 0.1, 0.4], "rerank_weight": 0.6, "rerank_depth": 20}))
    plan = plan_build(content_dir, index_dir, model=model, index_type=index_type)
    assert not plan.up_to_date
    assert all(p.reused for p in plan.pages)  # the chunks themselves are still the previous build's


def test_plan_refuses_an_unusable_tuning_file(content_dir, tmp_path):
    _pages(content_dir, 1)
    (content_dir / TUNING_FILE).write_text("{not json")
    with pytest.raises(IndexBuildError, match=r"\.kb-tuning\.json: not a usable tuning file"):
        plan_build(content_dir, tmp_path / "index", model="m")


def test_plan_chunks_everything_anew_when_the_previous_build_is_unreadable(content_dir, tmp_path, encoder):
    _pages(content_dir, 2)
    index_dir = tmp_path / "index"
    build_index(content_dir, index_dir, encoder)
    (current_build(index_dir) / "page-hashes.json").write_text("[]")
    (current_build(index_dir) / "manifest.json").write_text("{broken")
    plan = plan_build(content_dir, index_dir, model=encoder.name)
    assert not plan.up_to_date and not any(p.reused for p in plan.pages)


# --- embed ------------------------------------------------------------------------------------------


def test_embed_stage_embeds_only_what_the_cache_lacks_in_batches_and_prunes_the_rest(content_dir, tmp_path, encoder):
    _pages(content_dir, 2)
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    calls: list[tuple[str, int]] = []
    hooks = ProgressHooks(start=lambda n: calls.append(("start", n)), advance=lambda n: calls.append(("advance", n)))
    plan = plan_build(content_dir, index_dir, model=encoder.name)
    with EmbeddingCache(index_dir / CACHE_FILE) as cache:
        first = embed_missing(plan, encoder, cache, hooks)
    unique = {c.content_hash for c in plan.chunks}
    assert first.embedded == len(unique) == len(encoder.encoded) and first.removed == 0
    assert calls[0] == ("start", len(unique)) and sum(n for kind, n in calls[1:] if kind == "advance") == len(unique)
    lengths = [len(text) for text in encoder.encoded]
    assert lengths == sorted(lengths)  # shortest first: little padding in a batch
    assert set(first.vectors) == unique and set(first.tokens) == unique

    (content_dir / "area/page-1.md").unlink()
    encoder.encoded.clear()
    plan = plan_build(content_dir, index_dir, model=encoder.name)
    with EmbeddingCache(index_dir / CACHE_FILE) as cache:
        second = embed_missing(plan, encoder, cache, ProgressHooks())
        assert cache.get_many(encoder.name, sorted(unique), encoder.dimension).keys() == {c.content_hash for c in plan.chunks}
    assert second.embedded == 0 and encoder.encoded == []
    assert second.removed == len(unique) - len({c.content_hash for c in plan.chunks})
    assert np.array_equal(second.matrix(plan.chunks, encoder.dimension),
                          np.vstack([first.vectors[c.content_hash] for c in plan.chunks]))


def test_embed_stage_commits_each_batch_so_a_failed_build_keeps_its_work(content_dir, tmp_path, encoder):
    _pages(content_dir, 3)
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    plan = plan_build(content_dir, index_dir, model=encoder.name)

    class FailsOnSecondCall(WordHashEncoder):
        def encode_documents(self, texts, *, on_batch=None):
            if self.encoded:
                raise KeyboardInterrupt  # as if the build were interrupted mid-way
            return super().encode_documents(texts, on_batch=on_batch)

    failing = FailsOnSecondCall()
    with EmbeddingCache(index_dir / CACHE_FILE) as cache, pytest.raises(KeyboardInterrupt):
        embed_missing(plan, failing, cache, ProgressHooks())
    with EmbeddingCache(index_dir / CACHE_FILE) as cache:
        again = embed_missing(plan, encoder, cache, ProgressHooks())
    unique = {c.content_hash for c in plan.chunks}
    assert len(failing.encoded) == 2 * encoder.batch_size  # one cache commit of two model batches
    assert again.embedded == len(unique) - len(failing.encoded)


# --- build_index: the stages together -----------------------------------------------------------------


def test_rebuild_after_an_edit_embeds_one_chunk_and_hard_links_unchanged_pages_word_pieces(content_dir, tmp_path, encoder):
    _pages(content_dir)
    index_dir = tmp_path / "index"
    first = build_index(content_dir, index_dir, encoder)
    assert first.embedded == first.chunks and first.cached == 0 and not first.unchanged
    before = current_build(index_dir)
    _edit(content_dir, "area/page-1.md", "Beta 1 text.", "Beta 1 text, edited.")
    second = build_index(content_dir, index_dir, encoder)
    assert (second.embedded, second.cached) == (1, second.chunks - 1)
    after = current_build(index_dir)
    segment_files = [f for f in (after / TOKENS_DIR).glob("*.npy") if f.name != "df.npy"]
    linked = [f for f in segment_files if (before / TOKENS_DIR / f.name).exists()]
    assert (len(segment_files), len(linked)) == (3 * 2, 2 * 2)  # a vectors and an ids file a page; 2 pages unchanged
    assert all(f.stat().st_ino == (before / TOKENS_DIR / f.name).stat().st_ino for f in linked)
    unchanged = build_index(content_dir, index_dir, encoder)
    assert unchanged.unchanged and unchanged.embedded == 0 and unchanged.build_dir == str(after)
    manifest = load_index(index_dir).manifest
    assert (manifest["embedded"], manifest["cached"]) == (1, second.chunks - 1)


def test_a_second_build_of_the_same_folder_is_refused_while_the_lock_is_held(content_dir, tmp_path, encoder):
    _pages(content_dir, 1)
    index_dir = tmp_path / "index"
    (index_dir / BUILDS_DIR).mkdir(parents=True)
    with BuildLock(index_dir), pytest.raises(IndexBuildError, match=r"another `kb index` is building .*; wait"):
        build_index(content_dir, index_dir, encoder)
    assert build_index(content_dir, index_dir, encoder).pages == 1  # released on exit


# --- write and publish --------------------------------------------------------------------------------


def _written_build(content_dir, index_dir, encoder):
    """Stages plan, embed and write of a build, not yet published."""
    plan = plan_build(content_dir, index_dir, model=encoder.name)
    with EmbeddingCache(index_dir / CACHE_FILE) as cache:
        embedded = embed_missing(plan, encoder, cache, ProgressHooks())
    staged = stage_build(index_dir)
    write_build(staged.folder, plan, embedded, dimension=encoder.dimension, started=0.0)
    return plan, staged


def test_a_build_written_but_not_published_leaves_the_previous_index_live(content_dir, tmp_path, encoder):
    _pages(content_dir, 1)
    index_dir = tmp_path / "index"
    build_index(content_dir, index_dir, encoder)
    live = current_build(index_dir)
    _pages(content_dir, 2)
    _plan, staged = _written_build(content_dir, index_dir, encoder)  # killed before publishing
    assert current_build(index_dir) == live and len(load_index(index_dir).pages) == 1
    remove_unfinished_builds(index_dir)
    assert not staged.folder.exists() and live.exists()
    report = build_index(content_dir, index_dir, encoder)
    assert report.embedded == 0 and len(load_index(index_dir).pages) == 2  # the killed build's vectors were cached


def test_publish_swaps_current_and_keeps_only_the_new_and_the_replaced_build(content_dir, tmp_path, encoder):
    _pages(content_dir, 1)
    index_dir = tmp_path / "index"
    (index_dir / BUILDS_DIR).mkdir(parents=True)
    published = []
    for n in range(4):
        write_page(content_dir, "area/extra.md", page_text("Extra", body=f"## Note\n\nRevision {n}.\n"))
        plan, staged = _written_build(content_dir, index_dir, encoder)
        unfinished = stage_build(index_dir)  # another build's folder, still being written
        published.append(publish_build(staged, plan.previous))
        assert current_build(index_dir) == published[-1] == staged.final and not staged.folder.exists()
        finished = sorted(p.name for p in (index_dir / BUILDS_DIR).iterdir() if not p.name.startswith("."))
        assert finished == sorted(p.name for p in published[-2:])
        assert unfinished.folder.exists()  # pruning never touches a build in progress
        assert load_index(index_dir).manifest["pages"] == 2
    assert not any(p.name.startswith(".current-") for p in index_dir.iterdir())
