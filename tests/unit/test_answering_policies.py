"""The extractive policies on hand-made pages: which policy answers which question, and what it quotes.

The sentence model is replaced by a bag-of-words embedder (hashed word stems, L2-normalised), so
a unit's similarity to the question is its share of the question's words: the tests can say in
advance which units match, and need no model.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from search_service.answering import AnswerMode, AnswerSettings, DoneEvent, TokenEvent, ask, ask_events
from search_service.answering.answerer import NO_LLM
from search_service.answering.extractive import extractive_answer
from search_service.content import PageMeta
from search_service.indexing.chunking import Chunk
from search_service.indexing.keyword import tokenize
from search_service.ranking.retriever import Hit, SearchResult, SectionMatch

SETTINGS = AnswerSettings(abstain_threshold=0.34, site_url="/")


class BagOfWordsEmbedder:
    """Deterministic stand-in for the sentence model: hashed word-stem counts, L2-normalised."""

    dimension = 1024

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for stem in tokenize(text):
            vector[zlib.crc32(stem.encode()) % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)


def page(path: str, title: str, *sections: tuple[list[str], list[str]]) -> list[Chunk]:
    """Chunks of one page: (heading path, blocks) per section, in reading order."""
    return [Chunk(page_path=path, title=title, heading_path=headings,
                  anchor=re.sub(r"[^a-z0-9]+", "-", headings[-1].lower()).strip("-"),
                  text="\n\n".join(blocks), blocks=blocks) for headings, blocks in sections]


class Library:
    """Hand-made pages and a hand-made ranking of them: what the answerer reads from a retriever."""

    def __init__(self, *pages: list[Chunk], scores: dict[str, float], dense_max: float = 0.6) -> None:
        self.chunks = [chunk for chunks in pages for chunk in chunks]
        for ordinal, chunk in enumerate(self.chunks):
            chunk.ordinal = ordinal
        self.scores, self.dense_max = scores, dense_max
        self.embedder = BagOfWordsEmbedder()

    def page_chunks(self, path: str) -> list[Chunk]:
        return [c for c in self.chunks if c.page_path == path]

    def search(self, question: str, k: int = 5, **_: object) -> SearchResult:
        """Pages in the given score order, each with its sections ranked by similarity to the question."""
        query = self.embedder.embed_query(question)
        hits = []
        for path in sorted(self.scores, key=lambda p: -self.scores[p])[:k]:
            chunks = self.page_chunks(path)
            similarity = self.embedder.embed_documents([c.embed_text() for c in chunks]) @ query
            sections = [SectionMatch(chunks[i], float(similarity[i])) for i in np.argsort(-similarity, kind="stable")]
            hits.append(Hit(page_path=path, meta=PageMeta(title=chunks[0].title), score=self.scores[path],
                            sections=sections[:3]))
        return SearchResult(query=question, hits=hits, terms=tokenize(question), dense_max=self.dense_max,
                            coverage=1.0, query_vector=query)

    def answer(self, question: str):
        return extractive_answer(self, question, self.search(question), settings=SETTINGS)


ROLLOUT = page(
    "delivery/rollout.md", "Rolling out document automation",
    (["Overview"], ["Rolling out document automation touches the operators, the sponsor and the service desk. "
                    "Each rollout of document automation is owned by one sponsor."]),
    (["Rollout"], ["1. Confirm the sponsor and the budget for the rollout.\n"
                   "2. Train the operators on the new document workflow.\n"
                   "3. Switch the old workflow off after two stable weeks."]),
)

PRODUCTION = page(
    "delivery/production.md", "From pilot to production",
    (["Path to production"], ["A pilot reaches production in three stages, each with its own owner and gate."]),
    (["Path to production", "Step 1: Confirm the money"],
     ["The sponsor confirms the production budget in writing. Finance records it."]),
    (["Path to production", "Step 2: Harden the model"],
     ["The team adds monitoring, alerting and a rollback plan before go-live."]),
    (["Path to production", "Step 3: Hand over"],
     ["Operations takes over the model with a signed runbook and an on-call rota."]),
)


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_how_question_gets_the_numbered_procedure_not_the_introduction():
    library = Library(ROLLOUT, scores={"delivery/rollout.md": 1.0})
    answer = library.answer("how do we roll out document automation?")
    assert lines(answer.answer) == [
        "1. Confirm the sponsor and the budget for the rollout. [1]",
        "2. Train the operators on the new document workflow. [1]",
        "3. Switch the old workflow off after two stable weeks. [1]",
    ]
    assert [c.url for c in answer.citations] == ["/delivery/rollout/#rollout"]  # one section, one number


def test_the_same_page_answers_a_what_question_with_passages():
    library = Library(ROLLOUT, scores={"delivery/rollout.md": 1.0})
    answer = library.answer("who owns a rollout of document automation?")
    assert answer.answered and answer.mode == AnswerMode.extractive
    assert "Each rollout of document automation is owned by one sponsor. [1]" in answer.answer
    assert not answer.answer.startswith("1.")
    assert answer.citations[0].url == "/delivery/rollout/#overview"


def test_steps_written_as_headings_become_one_numbered_line_each_citing_its_section():
    library = Library(PRODUCTION, scores={"delivery/production.md": 1.0})
    answer = library.answer("how do we get a model into production?")
    assert lines(answer.answer) == [
        "1. Confirm the money: The sponsor confirms the production budget in writing. [1]",
        "2. Harden the model: The team adds monitoring, alerting and a rollback plan before go-live. [2]",
        "3. Hand over: Operations takes over the model with a signed runbook and an on-call rota. [3]",
    ]
    assert [c.url.split("#")[1] for c in answer.citations] == [
        "step-1-confirm-the-money", "step-2-harden-the-model", "step-3-hand-over"]


def checklist(items: list[str]) -> list[Chunk]:
    return page("ops/security.md", "Security review",
                (["Checklist"], ["Every vendor goes through the security review before any contract is signed.",
                                 "\n".join(f"- {item}" for item in items)]))


SHORT_LIST = ["Security checks the vendor's data retention terms", "Security checks the vendor's encryption at rest",
              "Legal reviews the liability clauses of the contract", "Procurement files the signed forms afterwards"]


def test_two_matching_items_of_a_short_list_bring_the_whole_list():
    library = Library(checklist(SHORT_LIST), scores={"ops/security.md": 1.0})
    answer = library.answer("what does security check about the vendor?")
    assert lines(answer.answer) == [f"- {item} [1]" for item in SHORT_LIST]


def test_a_long_list_is_not_quoted_whole():
    long_list = SHORT_LIST + [f"Team {name} signs off on the rollout plan for its region" for name in
                              ("north", "south", "east", "west")]
    library = Library(checklist(long_list), scores={"ops/security.md": 1.0})
    answer = library.answer("what does security check about the vendor?")
    assert lines(answer.answer)[:2] == [f"- {item} [1]" for item in SHORT_LIST[:2]]
    assert not any("signs off" in line for line in lines(answer.answer))


FUNDING = page("ops/funding.md", "Funding pilots",
               (["Who pays"], ["Pilots are paid by the sponsoring department from its own budget."]))
PLATFORM = page("ops/platform.md", "Platform costs",
                (["Shared costs"], ["The shared platform is paid centrally from the CoE budget every year."]))


def test_a_close_runner_up_page_is_quoted_and_cited_too():
    library = Library(FUNDING, PLATFORM, scores={"ops/funding.md": 1.0, "ops/platform.md": 0.9})
    answer = library.answer("who pays for pilots and the platform?")
    assert lines(answer.answer) == [
        "Pilots are paid by the sponsoring department from its own budget. [1] "
        "The shared platform is paid centrally from the CoE budget every year. [2]"]
    assert [c.path for c in answer.citations] == ["ops/funding.md", "ops/platform.md"]


def test_a_distant_second_page_is_not_quoted():
    library = Library(FUNDING, PLATFORM, scores={"ops/funding.md": 1.0, "ops/platform.md": 0.5})
    answer = library.answer("who pays for pilots?")
    assert [c.path for c in answer.citations] == ["ops/funding.md"]


def test_weak_evidence_abstains_with_the_nearest_pages():
    library = Library(FUNDING, scores={"ops/funding.md": 1.0}, dense_max=0.2)  # below the 0.34 threshold
    answer = library.answer("how do I reset my VPN password?")
    assert not answer.answered and answer.citations == [] and answer.confidence < 0.5
    assert answer.answer.startswith("The playbooks don't cover this.")
    assert [s.path for s in answer.suggestions] == ["ops/funding.md"]


def test_streaming_an_extractive_answer_sends_it_as_one_token_then_done():
    library = Library(FUNDING, scores={"ops/funding.md": 1.0})
    events = list(ask_events(library, "who pays for pilots?", settings=SETTINGS, stream=True))  # type: ignore[arg-type]
    assert [type(e) for e in events] == [TokenEvent, DoneEvent]
    assert events[0].text == events[1].answer.answer and events[1].answer.answered


def test_generative_without_a_client_answers_extractively_and_says_why():
    library = Library(FUNDING, scores={"ops/funding.md": 1.0})
    answer = ask(library, "who pays for pilots?", settings=SETTINGS, mode=AnswerMode.generative)  # type: ignore[arg-type]
    assert answer.mode == AnswerMode.extractive and answer.fallback == NO_LLM and answer.answered
