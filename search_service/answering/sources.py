"""Source selection: which sections an answer may quote or give to the LLM."""

from __future__ import annotations

from search_service.answering.weights import WEIGHTS
from search_service.indexing.chunking import Chunk
from search_service.ranking.retriever import SearchResult


def select_sources(result: SearchResult, *, pages: int = WEIGHTS.source_pages,
                   per_page: int = WEIGHTS.sections_per_page, close: float = WEIGHTS.close_share) -> list[Chunk]:
    """The sections given as evidence: the best sections of the top page, plus those of the next
    pages whose score is within ``close`` of the top page's."""
    sources: list[Chunk] = []
    if not result.hits:
        return sources
    top = result.hits[0].score
    for rank, hit in enumerate(result.hits[:pages]):
        if rank and hit.score < close * top:
            break
        sources += [m.chunk for m in hit.sections[:per_page]]
    return sources


def page_rank(sources: list[Chunk], index: int) -> int:
    """0 for sections of the best page, 1 for the second page, ... (pages in order of first source)."""
    pages = list(dict.fromkeys(c.page_path for c in sources))
    return pages.index(sources[index].page_path)


def runner_up_is_close(result: SearchResult, close: float = WEIGHTS.close_share) -> bool:
    """Whether the retriever can barely tell the top two pages apart."""
    return len(result.hits) > 1 and result.hits[1].score >= close * result.hits[0].score
