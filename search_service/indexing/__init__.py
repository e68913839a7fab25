"""Indexing stage: chunking, embedding, keyword index, word-piece vectors, the index artifact and its build.

    chunking.py        heading-aware chunks of a page
    embedding.py       embedding backends (sentence-transformers, ONNX int8) and the vector cache
    keyword.py         BM25 and the tokenizer it shares with ranking
    tokens.py          late-interaction scoring over the stored word-piece vectors
    artifact.py        the on-disk format of a build, and loading it (``load_index``)
    artifact_tokens.py the format of a build's ``tokens/`` folder
    plan.py            build stage 1: what the content is, what the previous build lets us reuse
    build.py           build stages 2 and 3 (embed, write) and ``build_index``, which runs all four
    publish.py         build stage 4: the atomic swap of ``current`` and pruning

The names below are imported on first use, so importing ``search_service.indexing.chunking`` (as
the linter does) does not load FAISS and BM25.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search_service.indexing.artifact import FORMAT_VERSION, SearchIndex, current_build, load_index, page_document
    from search_service.indexing.build import BuildReport, ProgressHooks, build_index
    from search_service.indexing.errors import IndexBuildError, IndexLoadError
    from search_service.indexing.plan import content_hash

_EXPORTS = {
    "FORMAT_VERSION": "artifact",
    "SearchIndex": "artifact",
    "current_build": "artifact",
    "load_index": "artifact",
    "page_document": "artifact",
    "BuildReport": "build",
    "ProgressHooks": "build",
    "build_index": "build",
    "IndexBuildError": "errors",
    "IndexLoadError": "errors",
    "content_hash": "plan",
}

__all__ = [
    "FORMAT_VERSION",
    "BuildReport",
    "IndexBuildError",
    "IndexLoadError",
    "ProgressHooks",
    "SearchIndex",
    "build_index",
    "content_hash",
    "current_build",
    "load_index",
    "page_document",
]


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
