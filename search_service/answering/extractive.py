"""Answering: extractive answers with citations (the default), abstention, and the citation check.

The extractive answerer quotes the best evidence (sentences, steps, checklist items, table
rows) from the top sections, in reading order, each followed by its citation ``[n]``; a
numbered procedure stays numbered. When the evidence is too weak it abstains and suggests
the nearest pages instead of guessing.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from search_service.indexing.chunking import Chunk
from search_service.indexing.keyword import tokenize
from search_service.ranking.retriever import Filters, HybridRetriever, SearchResult, Viewer, chunk_url, make_snippet

# How much the share of unknown query words lowers the evidence (see docs/search-quality.md).
COVERAGE_WEIGHT = 0.2
CONFIDENCE_SCALE = 0.05  # width of the logistic around the threshold
NOT_COVERED = "The playbooks don't cover this."

_CITE_RE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_NUMBERED_RE = re.compile(r"^\s*(\d+)[.)]\s+")
_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_STEP_HEADING_RE = re.compile(r"^step\s*(\d+)\s*[:.)\-–—]?\s*(.*)$", re.IGNORECASE)
_PROCEDURE_RE = re.compile(r"\b(how (do|does|should|can|to|would)|steps?|process|procedure|checklist|what do (i|we) (need to )?do)\b", re.I)
MIN_UNIT_WORDS = 5
PRIMARY_MARGIN = 0.1
# A page scoring at least this share of the top page's score is "close": its sections are evidence too.
CLOSE_SHARE = 0.85
# Cross-references such as "See the pilot stagnation FAQ." point elsewhere; they answer nothing.
_POINTER_RE = re.compile(r"^(see|read|follow|use|check)\b.{0,80}\.?$", re.I)


@dataclass
class Citation:
    n: int
    title: str
    section: str
    url: str
    snippet: str
    path: str


@dataclass
class Suggestion:
    title: str
    url: str
    path: str


@dataclass
class AnswerResult:
    answer: str
    answered: bool
    citations: list[Citation]
    confidence: float
    mode: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    suggestions: list[Suggestion] = field(default_factory=list)
    fallback: str | None = None  # why a generative request was answered extractively
    invalid_citations: list[int] = field(default_factory=list)
    sources: list[Chunk] = field(default_factory=list)  # the sections given as evidence, numbered from 1


def abstain_threshold(settings, retriever: HybridRetriever) -> float:
    """``KB_ABSTAIN_THRESHOLD`` when set, else the corpus's calibrated one (`kb tune --save`), else the default."""
    return settings.for_corpus(retriever.index.manifest.get("tuning")).abstain_threshold


def evidence_score(result: SearchResult) -> float:
    """Raw evidence that the content answers the query: best dense similarity, minus unknown words."""
    return result.dense_max - COVERAGE_WEIGHT * (1.0 - result.coverage)


def confidence_from_evidence(evidence: float, threshold: float) -> float:
    """0..1, 0.5 exactly at the abstention threshold."""
    return 1.0 / (1.0 + math.exp(-(evidence - threshold) / CONFIDENCE_SCALE))


@dataclass
class _Unit:
    text: str
    source: int  # index into the source list
    position: int  # order within the source
    numbered: bool
    item: bool
    block: int = 0  # which block (paragraph, list, table) of the section it came from


def _units(chunk: Chunk, source: int) -> list[_Unit]:
    """Sentences, list items and table rows of a section, in reading order."""
    units: list[_Unit] = []
    for block_no, block in enumerate(chunk.blocks or [chunk.text]):
        # Quoted text must not contain anything that reads as one of our citation markers.
        lines = _CITE_RE.sub(lambda m: f"({m.group(1)})", block).splitlines()
        if lines and all(_ITEM_RE.match(line) or line.startswith((" ", "\t")) for line in lines if line.strip()) \
                and _ITEM_RE.match(lines[0]):
            items: list[str] = []
            for line in lines:
                if _ITEM_RE.match(line) and not line.startswith((" ", "\t")):
                    items.append(line.strip())
                elif items:
                    items[-1] += " " + line.strip()
            units += [_Unit(item, source, len(units) + i, bool(_NUMBERED_RE.match(item)), True, block_no)
                      for i, item in enumerate(items) if len(item.split()) >= MIN_UNIT_WORDS]
        elif " | " in block:
            units += [_Unit(line.strip(), source, len(units) + i, False, True, block_no)
                      for i, line in enumerate(lines[1:]) if len(line.split()) >= MIN_UNIT_WORDS]  # rows after the header
        else:
            for sentence in _SENTENCE_RE.split(" ".join(line.strip() for line in lines)):
                if len(sentence.split()) >= MIN_UNIT_WORDS and not (
                        len(sentence.split()) < 10 and _POINTER_RE.match(sentence.strip())):
                    units.append(_Unit(sentence.strip(), source, len(units), False, False, block_no))
    return units


def _lead(step: str, max_words: int = 30) -> str:
    """A step's number and first sentence (its lead phrase); a step that opens with a short title
    ("Intake.") keeps its next sentence too, which says what the step is."""
    marker = _ITEM_RE.match(step)
    prefix, rest = (step[: marker.end()], step[marker.end():]) if marker else ("", step)
    sentences = _SENTENCE_RE.split(rest, maxsplit=2)
    words = sentences[0].split()
    if len(words) < 4 and len(sentences) > 1:
        words += sentences[1].split()
    return prefix + " ".join(words[:max_words]) + (" …" if len(words) > max_words else "")


def _heading_steps(chunks: list[Chunk]) -> list[tuple[str, Chunk]]:
    """A procedure written as headings ("### Step 1: Confirm the budget"): (step title, first chunk)
    per step, in step order, from the group of sibling step headings with the most steps."""
    groups: dict[tuple[str, ...], dict[int, tuple[str, Chunk]]] = {}
    for chunk in chunks:
        match = _STEP_HEADING_RE.match(chunk.heading_path[-1]) if len(chunk.heading_path) >= 2 else None
        if match:
            steps = groups.setdefault(tuple(chunk.heading_path[:-1]), {})
            steps.setdefault(int(match.group(1)), (match.group(2).strip() or chunk.heading_path[-1], chunk))
    best = max(groups.values(), key=len, default={})
    return [best[n] for n in sorted(best)] if len(best) >= 2 else []


def _page_rank(sources: list[Chunk], index: int) -> int:
    """0 for sections of the best page, 1 for the second page, ..."""
    pages = list(dict.fromkeys(c.page_path for c in sources))
    return pages.index(sources[index].page_path)


def select_sources(result: SearchResult, *, pages: int = 3, per_page: int = 2, close: float = CLOSE_SHARE) -> list[Chunk]:
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


def make_citations(sources: list[Chunk], used: list[int], terms: list[str], site_url: str) -> list[Citation]:
    return [
        Citation(n=n, title=sources[i].title, section=sources[i].section,
                 url=chunk_url(sources[i], site_url), snippet=make_snippet(sources[i].text, terms), path=sources[i].page_path)
        for n, i in enumerate(used, start=1)
    ]


def abstain(result: SearchResult, confidence: float, mode: str, site_url: str, *, fallback: str | None = None) -> AnswerResult:
    """The 'not covered' answer, with the nearest pages as suggestions."""
    suggestions = [Suggestion(h.meta.title, chunk_url(h.best, site_url).split("#")[0], h.page_path) for h in result.hits[:3]]
    text = NOT_COVERED
    if suggestions:
        text += " The nearest pages are: " + "; ".join(s.title for s in suggestions) + "."
    return AnswerResult(answer=text, answered=False, citations=[], confidence=round(confidence, 4), mode=mode,
                        suggestions=suggestions, fallback=fallback)


def extractive_answer(
    retriever: HybridRetriever,
    question: str,
    result: SearchResult,
    *,
    threshold: float,
    site_url: str = "/",
    max_units: int = 4,
    mode: str = "extractive",
    fallback: str | None = None,
) -> AnswerResult:
    """Quote the best evidence with citations, or abstain when the evidence is weak."""
    confidence = confidence_from_evidence(evidence_score(result), threshold)
    if confidence < 0.5 or not result.hits:
        return abstain(result, confidence, mode, site_url, fallback=fallback)
    sources = select_sources(result)
    if _PROCEDURE_RE.search(question):
        # The best page's numbered procedures are evidence for a "how" question even when their
        # words matched less than the page's introduction did.
        sources += [c for c in retriever.page_chunks(result.hits[0].page_path)
                    if c not in sources and any(u.numbered for u in _units(c, 0))]
    units = [u for i, chunk in enumerate(sources) for u in _units(chunk, i)]
    if not units:
        return abstain(result, confidence, mode, site_url, fallback=fallback)
    query = result.query_vector if result.query_vector is not None else retriever.embedder.embed_query(question)
    # Score each unit with its heading as context, plus a little for sharing the question's words.
    texts = [f"{sources[u.source].heading_path[-1]}: {u.text}" if sources[u.source].heading_path else u.text for u in units]
    scores = retriever.embedder.embed_documents(texts) @ query
    wanted = set(result.terms)
    overlap = np.array([len(wanted & set(tokenize(u.text))) / (len(wanted) or 1) for u in units], dtype=np.float32)
    # Prefer better-ranked sources a little, so one stray sentence elsewhere does not win.
    rank_penalty = np.array([0.06 * _page_rank(sources, u.source) for u in units], dtype=np.float32)
    # Trust the retriever's choice of section: units of its best-matching section come first.
    section_score = {m.chunk.id: m.score for hit in result.hits for m in hit.sections}
    section_bonus = np.array([0.5 * section_score.get(sources[u.source].id, 0.0) for u in units], dtype=np.float32)
    scores = scores + 0.15 * overlap + section_bonus - rank_penalty
    procedural = bool(_PROCEDURE_RE.search(question))
    if procedural:
        scores = scores + 0.1 * np.array([u.numbered for u in units], dtype=np.float32)
    # Answer from the retriever's best section unless another section has clearly better evidence.
    primary = np.array([u.source == 0 for u in units])
    if primary.any() and scores[~primary].max(initial=-1.0) < scores[primary].max() + PRIMARY_MARGIN:
        scores = np.where(primary, scores, scores - PRIMARY_MARGIN)
    best = int(np.argmax(scores))
    if procedural:
        # A "how do we ..." question is answered by the best-matching procedure of the best page,
        # when that page has one, rather than by its introduction.
        in_top_page = [i for i, u in enumerate(units) if u.numbered and _page_rank(sources, u.source) == 0]
        if in_top_page:
            best = max(in_top_page, key=lambda i: scores[i])
    top = units[best]
    floor = max(float(scores[best]) * 0.8, float(scores[best]) - 0.1)
    heading_steps = _heading_steps(retriever.page_chunks(result.hits[0].page_path)) if procedural else []
    if procedural and heading_steps and not (top.numbered and _page_rank(sources, top.source) == 0):
        # Steps written as headings: one numbered line per step, its title and lead sentence, each
        # citing the step's own section.
        chosen = []
        for n, (title, chunk) in enumerate(heading_steps[:10], start=1):
            if chunk not in sources:
                sources.append(chunk)
            first = _units(chunk, sources.index(chunk))
            lead = f": {_lead(first[0].text)}" if first else ""
            chosen.append(_Unit(f"{n}. {title}{lead}", sources.index(chunk), 0, True, True))
    elif top.numbered and procedural:
        # A "how do we ..." question gets the whole numbered procedure of that section, in order,
        # each step shortened to its lead sentence.
        section = [c for c in retriever.page_chunks(sources[top.source].page_path) if c.anchor == sources[top.source].anchor]
        for chunk in section:
            if chunk not in sources:
                sources.append(chunk)
        steps = [u for i, chunk in enumerate(sources) if chunk in section for u in _units(chunk, i) if u.numbered]
        steps.sort(key=lambda u: (sources[u.source].part, u.position))
        chosen = [_Unit(_lead(u.text), u.source, u.position, True, True) for u in steps[:10]]
    else:
        ranked = [units[i] for i in np.argsort(-scores) if scores[i] >= floor]
        chosen = []
        for unit in ranked:
            if len(chosen) >= max_units or len({sources[u.source].page_path for u in chosen + [unit]}) > 2:
                continue
            chosen.append(unit)
        # Two or more items of one short list were chosen: quote the whole list, it is the answer.
        lists = {(u.source, u.block) for u in chosen if u.item}
        for key in lists:
            members = [u for u in units if (u.source, u.block) == key]
            if sum((u.source, u.block) == key for u in chosen) >= 2 and len(members) <= 7:
                chosen = [u for u in chosen if (u.source, u.block) != key] + members
        # When the retriever can barely tell the top two pages apart, quote the runner-up's best evidence too.
        if len(result.hits) > 1 and result.hits[1].score >= CLOSE_SHARE * result.hits[0].score:
            runner_up = [i for i, u in enumerate(units) if _page_rank(sources, u.source) == 1]
            if runner_up and not any(_page_rank(sources, u.source) == 1 for u in chosen):
                chosen.append(units[max(runner_up, key=lambda i: scores[i])])
        chosen.sort(key=lambda u: (_page_rank(sources, u.source), sources[u.source].ordinal, u.position))
    # One citation number per section (page + anchor), numbered in order of first use.
    keys = {i: (c.page_path, c.anchor) for i, c in enumerate(sources)}
    order = list(dict.fromkeys(keys[u.source] for u in chosen))
    number = {key: n for n, key in enumerate(order, start=1)}
    used = [next(i for i in range(len(sources)) if keys[i] == key) for key in order]
    lines = []
    for unit in chosen:
        cite = f"[{number[keys[unit.source]]}]"
        if unit.item:
            text = unit.text if _ITEM_RE.match(unit.text) else f"- {unit.text}"
            lines.append(f"{text} {cite}")
        else:
            lines.append(f"{unit.text} {cite}")
    joiner = "\n" if any(u.item for u in chosen) else " "
    return AnswerResult(
        answer=joiner.join(lines),
        answered=True,
        citations=make_citations(sources, used, result.terms, site_url),
        confidence=round(confidence, 4),
        mode=mode,
        fallback=fallback,
        sources=[sources[i] for i in used],
    )


def check_citations(text: str, allowed: int) -> tuple[str, list[int], list[int]]:
    """Keep only ``[n]`` with 1 <= n <= allowed. Returns (clean text, valid numbers used, invalid numbers)."""
    valid: list[int] = []
    invalid: list[int] = []

    def fix(match: re.Match) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        good = [n for n in numbers if 1 <= n <= allowed]
        invalid.extend(n for n in numbers if not 1 <= n <= allowed)
        valid.extend(n for n in good if n not in valid)
        return "".join(f"[{n}]" for n in good)

    cleaned = _CITE_RE.sub(fix, text)
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()
    return cleaned, valid, invalid


def ask_events(
    retriever: HybridRetriever,
    question: str,
    *,
    settings,
    filters: Filters | None = None,
    viewer: Viewer | None = None,
    mode: str = "extractive",
    stream: bool = False,
    boost_pages: dict[str, float] | None = None,
) -> Iterator[tuple[str, object]]:
    """Answer ``question``: yields ``("token", text)`` pieces (when streaming) then ``("done", AnswerResult)``.

    Generative mode falls back to the extractive answer on any LLM trouble (down, slow, garbage,
    no valid citation) and says why in ``fallback``; with no LLM configured it is extractive.
    """
    from search_service.answering.generative import LLMError, build_messages, complete, finish_generated, stream_completion

    result = retriever.search(question, k=5, filters=filters, viewer=viewer or Viewer(), boost_pages=boost_pages)
    threshold, site_url = abstain_threshold(settings, retriever), settings.site_url

    def extractive(fallback: str | None = None) -> AnswerResult:
        return extractive_answer(retriever, question, result, threshold=threshold, site_url=site_url, fallback=fallback)

    answer: AnswerResult | None = None
    streamed = False
    if mode == "generative" and not settings.llm_base_url:
        answer = extractive("no LLM configured (KB_LLM_BASE_URL is empty)")
    elif mode == "generative":
        confidence = confidence_from_evidence(evidence_score(result), threshold)
        if confidence < 0.5 or not result.hits:
            answer = abstain(result, confidence, "generative", site_url)
        else:
            sources = select_sources(result)
            messages = build_messages(question, sources)
            try:
                if stream:
                    pieces = []
                    for delta in stream_completion(settings, messages):
                        pieces.append(delta)
                        streamed = True
                        yield "token", delta
                    text = "".join(pieces)
                else:
                    text = complete(settings, messages)
                answer = finish_generated(text, result, sources, settings=settings, confidence=confidence)
            except LLMError as exc:
                answer = extractive(str(exc))
    else:
        answer = extractive()
    if stream and not streamed:
        yield "token", answer.answer
    yield "done", answer


def ask(retriever: HybridRetriever, question: str, **kwargs) -> AnswerResult:
    """Answer ``question`` without streaming (see :func:`ask_events`)."""
    kwargs["stream"] = False
    events = list(ask_events(retriever, question, **kwargs))
    return events[-1][1]  # type: ignore[return-value]
