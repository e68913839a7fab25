"""Per-viewer word-piece frequencies read from a build's files: a damaged file degrades, never crashes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from search_service.indexing.artifact_tokens import IDS_SUFFIX, SEGMENTS_FILE
from search_service.indexing.tokens import TokenStore
from search_service.ranking.access import visible_tokens


def _store() -> TokenStore:
    vectors = np.zeros((3, 4), np.float16)
    return TokenStore([vectors], np.array([[0, 0, 2], [0, 2, 3]], np.int64), np.zeros(1, np.int32))


def _listing(folder: Path) -> None:
    (folder / SEGMENTS_FILE).write_text(json.dumps({"dimension": 4, "segments": [{"key": "k", "counts": [2, 1]}]}))


def test_frequencies_are_counted_over_the_visible_chunks_only(tmp_path):
    _listing(tmp_path)
    np.save(tmp_path / f"k{IDS_SUFFIX}", np.array([5, 7, 9], np.int32))  # chunk 0: pieces 5, 7; chunk 1: piece 9
    view = visible_tokens(_store(), tmp_path, np.array([1]))
    assert view.n_docs == 1 and view.df[9] == 1 and view.df[5] == 0 and view.df[7] == 0


def test_a_truncated_ids_file_weighs_pieces_alike_instead_of_failing(tmp_path):
    _listing(tmp_path)
    (tmp_path / f"k{IDS_SUFFIX}").write_bytes(b"")  # truncated in place under a running server
    view = visible_tokens(_store(), tmp_path, np.array([0, 1]))
    assert view.n_docs == 2 and not view.df.any()
