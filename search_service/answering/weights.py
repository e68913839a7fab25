"""Every number that shapes an answer, named once.

How they were chosen: the evidence weight and the confidence scale come from the abstention
calibration (docs/search-quality.md, "Answers and abstention"). The extractive weights were set
by hand when the answerer was written (no tuning run is recorded for them) and are judged by the
golden set's answer figures (``kb eval``: answered, citation hit and abstain rates). The scores
they adjust are cosine similarities, so 0.1 is a large step. Change one only with ``kb eval``
figures before and after.
"""

from __future__ import annotations

from dataclasses import dataclass

# Evidence and abstention.
# How much the share of unknown query words lowers the evidence: calibrated with the threshold.
COVERAGE_WEIGHT = 0.2
# Width of the logistic that turns evidence into confidence around the threshold (0.5 at it).
CONFIDENCE_SCALE = 0.05
# Confidence below this abstains; it is the threshold itself, by the logistic's definition.
ANSWER_CONFIDENCE = 0.5

# Pages retrieved per question: more than the sources an answer quotes (at most ExtractiveWeights.source_pages).
PAGES_SEARCHED = 5
# Nearest pages offered with an abstention: a short list a reader will scan.
SUGGESTED_PAGES = 3

# Unit splitting.
# Shorter fragments ("Owner: CoE.") say too little on their own to quote as an answer.
MIN_UNIT_WORDS = 5
# A cross-reference ("See the pilot stagnation FAQ.") shorter than this answers nothing: dropped.
POINTER_MAX_WORDS = 10
# A quoted step's lead stops after this many words (" …" marks the cut), so a procedure stays a list.
LEAD_MAX_WORDS = 30
# A step whose first sentence is shorter than this is a title ("Intake."): its next sentence is kept too.
TITLE_MAX_WORDS = 4
# Sibling "Step N" headings needed to make a procedure: one "Step 1" heading alone is not one.
MIN_HEADING_STEPS = 2


@dataclass(frozen=True)
class ExtractiveWeights:
    """The weights and limits of the extractive policies (see the module docstring for their origin)."""

    # Source selection: the sections given as evidence.
    source_pages: int = 3  # pages whose sections may be quoted
    sections_per_page: int = 2  # best sections taken from each of those pages
    close_share: float = 0.85  # a page within this share of the top page's score is "close": evidence too

    # Unit scoring: dense similarity of "heading: unit" to the question, then these adjustments.
    word_overlap: float = 0.15  # per share of the question's words the unit contains: exact wording helps a little
    section_trust: float = 0.5  # times the retriever's section score: its best section's units come first
    page_rank_penalty: float = 0.06  # per page below the best: one stray sentence elsewhere does not win
    numbered_bonus: float = 0.1  # numbered steps, for "how do we ..." questions
    primary_margin: float = 0.1  # another section must beat the retriever's best section by this much

    # Ranked passages: which units are quoted.
    keep_share: float = 0.8  # units scoring at least this share of the best ...
    keep_gap: float = 0.1  # ... and within this of it are worth quoting: near-ties only
    max_units: int = 4  # at most this many quoted units ...
    max_pages: int = 2  # ... from at most this many pages
    short_list_items: int = 7  # a list this short is quoted whole when two or more of its items were chosen
    whole_list_trigger: int = 2  # chosen items of one list that make it the answer

    # Procedures.
    max_steps: int = 10  # steps quoted from one procedure; longer ones are cut, the reader follows the citation


WEIGHTS = ExtractiveWeights()

# Generative replies without [n] markers (small models often leave them out): a sentence is attributed
# to the given section that holds the largest share of its content words, when that share is at least
# this much; a reply with any substantial sentence below it is not trusted (the extractive answer is
# given instead). Set by hand: a sentence that restates a section keeps most of its words, one that
# adds outside knowledge does not.
GROUNDED_SHARE = 0.6
# Sentences with fewer content words than this ("Here are the steps:") are neither attributed nor judged.
MIN_ATTRIBUTED_WORDS = 3
