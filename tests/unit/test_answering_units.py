"""Answering building blocks on hand-made sections: unit splitting, step leads, step headings,
citation numbering, the citation check, evidence and confidence. No model, no index."""

from __future__ import annotations

import pytest

from search_service.answering import NOT_COVERED, check_citations, confidence_from_evidence, evidence_score
from search_service.answering.citations import number_sections, render_answer
from search_service.answering.coverage import abstain, is_covered
from search_service.answering.procedures import heading_steps
from search_service.answering.results import AnswerMode
from search_service.answering.units import Unit, lead, split_units
from search_service.content import PageMeta
from search_service.indexing.chunking import Chunk
from search_service.ranking.retriever import Hit, SearchResult, SectionMatch


def section(*blocks: str, heading: str = "Funding", page: str = "ops/funding.md", part: int = 0) -> Chunk:
    return Chunk(page_path=page, title="Funding", heading_path=[heading], anchor=heading.lower().replace(" ", "-"),
                 text="\n\n".join(blocks), part=part, blocks=list(blocks))


def texts(units: list[Unit]) -> list[str]:
    return [u.text for u in units]


def test_paragraph_splits_into_sentences_in_reading_order():
    units = split_units(section("Pilots are paid by the sponsoring department. The CoE funds the shared "
                                "platform from its own budget. Short one."), 0)
    assert texts(units) == ["Pilots are paid by the sponsoring department.",
                            "The CoE funds the shared platform from its own budget."]  # "Short one." is a fragment
    assert [u.position for u in units] == [0, 1]
    assert not any(u.item or u.numbered for u in units)


def test_pointer_sentences_are_dropped_but_long_sentences_starting_alike_are_kept():
    units = split_units(section("See the pilot stagnation FAQ for the details. Use the scorecard when the pilot "
                                "ends, and send the scored sheet to the portfolio board before the review meeting."), 0)
    assert texts(units) == ["Use the scorecard when the pilot ends, and send the scored sheet to the portfolio "
                            "board before the review meeting."]


def test_list_items_keep_their_continuation_lines():
    block = ("1. Confirm the budget with the sponsor\n   and record it in the tracker.\n"
             "2. Book the review meeting with the portfolio board.\n"
             "3. Too short.")
    units = split_units(section("Before you start, read the whole checklist carefully.", block), 4)
    assert texts(units) == [
        "Before you start, read the whole checklist carefully.",
        "1. Confirm the budget with the sponsor and record it in the tracker.",
        "2. Book the review meeting with the portfolio board.",
    ]
    assert [(u.numbered, u.item, u.block, u.source) for u in units] == [
        (False, False, 0, 4), (True, True, 1, 4), (True, True, 1, 4)]


def test_bullets_are_items_but_not_numbered_steps():
    units = split_units(section("- Data owner signs the data sharing agreement\n- Security reviews the vendor"), 0)
    assert texts(units) == ["- Data owner signs the data sharing agreement", "- Security reviews the vendor"]
    assert all(u.item and not u.numbered for u in units)


def test_table_rows_after_the_header_are_items():
    table = "Role | Owner | When\nSponsor | business unit head | at intake\nReviewer | CoE architect | before build"
    units = split_units(section(table), 0)
    assert texts(units) == ["Sponsor | business unit head | at intake", "Reviewer | CoE architect | before build"]
    assert all(u.item for u in units)


def test_text_that_reads_like_a_citation_marker_is_neutralised():
    units = split_units(section("The budget rule is described in annex [3] of the finance policy."), 0)
    assert texts(units) == ["The budget rule is described in annex (3) of the finance policy."]


def test_step_leads_keep_the_sentence_that_explains_a_short_title():
    assert lead("1. Intake. Teams submit a one-page idea through their spoke. Then more.") == \
        "1. Intake. Teams submit a one-page idea through their spoke."
    assert lead("2. Score value and feasibility with the matrix. Details follow.") == \
        "2. Score value and feasibility with the matrix."
    long_step = "3. " + " ".join(f"word{i}" for i in range(40)) + "."
    assert lead(long_step) == "3. " + " ".join(f"word{i}" for i in range(30)) + " …"


def test_numbered_headings_that_are_not_steps_stay_out_of_procedures():
    def chunk(*path: str) -> Chunk:
        return Chunk(page_path="p.md", title="P", heading_path=list(path), anchor=path[-1].lower(), text="Text here.")

    principles = [chunk("Principles", "1. People stay accountable"), chunk("Principles", "2. Fair outcomes")]
    assert heading_steps(principles) == []
    steps = [chunk("Steps", "Step 2: Review"), chunk("Steps", "Step 1: Plan"), chunk("Other", "Step 1: Alone")]
    assert [title for title, _ in heading_steps(steps)] == ["Plan", "Review"]
    assert heading_steps([chunk("Steps", "Step 1: Plan")]) == []  # one step alone is no procedure


def test_one_citation_number_per_section_in_order_of_first_use():
    sources = [section("a", heading="Who pays"), section("b", heading="Approval"),
               section("c", heading="Who pays", part=1)]  # a second part of the first section
    chosen = [Unit("Approval needs the head.", 1, 0, False, False), Unit("Pilots are paid.", 2, 0, False, False),
              Unit("The CoE pays.", 0, 1, False, False)]
    numbers, used = number_sections(chosen, sources)
    assert numbers == [1, 2, 2]  # both parts of "Who pays" share number 2
    assert used == [1, 0]  # each number described by the first source of its section
    assert render_answer(chosen, numbers) == "Approval needs the head. [1] Pilots are paid. [2] The CoE pays. [2]"


def test_items_are_rendered_one_per_line_with_a_bullet_when_they_have_no_marker():
    chosen = [Unit("1. Plan the pilot.", 0, 0, True, True), Unit("Sponsor | head | at intake", 0, 1, False, True)]
    assert render_answer(chosen, [1, 1]) == "1. Plan the pilot. [1]\n- Sponsor | head | at intake [1]"


def test_citation_check_removes_numbers_that_were_not_given():
    text, valid, invalid = check_citations("Fund it centrally [1]. Pilots cost money [7]. Both [2, 9].", allowed=3)
    assert text == "Fund it centrally [1]. Pilots cost money. Both [2]."
    assert valid == [1, 2] and invalid == [7, 9]


def test_confidence_is_one_half_at_the_threshold_and_rises_with_evidence():
    assert confidence_from_evidence(0.34, 0.34) == pytest.approx(0.5)
    assert confidence_from_evidence(0.30, 0.34) < 0.5 < confidence_from_evidence(0.38, 0.34)


def test_unknown_query_words_lower_the_evidence():
    full = SearchResult(query="q", hits=[], dense_max=0.5, coverage=1.0)
    half = SearchResult(query="q", hits=[], dense_max=0.5, coverage=0.5)
    assert evidence_score(full) == pytest.approx(0.5)
    assert evidence_score(half) == pytest.approx(0.4)  # 0.2 x the share of unknown words


def test_abstention_names_the_nearest_pages():
    chunk = section("Pilots are paid by the sponsoring department.")
    hit = Hit(page_path=chunk.page_path, meta=PageMeta(title="Funding"), score=1.0, sections=[SectionMatch(chunk, 1.0)])
    result = SearchResult(query="vpn", hits=[hit], dense_max=0.1)
    assert not is_covered(result, confidence_from_evidence(evidence_score(result), 0.34))
    answer = abstain(result, 0.01, AnswerMode.extractive, "/kb/")
    assert not answer.answered and answer.citations == []
    assert answer.answer == f"{NOT_COVERED} The nearest pages are: Funding."
    assert [(s.title, s.url) for s in answer.suggestions] == [("Funding", "/kb/ops/funding/")]
