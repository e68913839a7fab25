"""Answering stage: extractive answers with citations, abstention, and generative answers through an LLM.

Where things are:

- ``answerer``: :func:`ask_events` / :func:`ask`, the entry points every channel calls.
- ``extractive``: the extractive answer, a dispatcher over the policies in ``procedures``
  (numbered procedures, steps written as headings) and ``passages`` (ranked passages, whole
  short lists, the runner-up page).
- ``units`` (sentences, list items, table rows), ``sources`` (which sections are evidence),
  ``evidence`` (unit scores), ``citations`` (numbering and the ``[n]`` check), ``coverage``
  (evidence score, confidence, abstention).
- ``weights``: every weight and limit above, named once.
- ``generative`` (prompt, reply check) and ``llm_client`` (the OpenAI-compatible client).
"""

from __future__ import annotations

from search_service.answering.answerer import ask, ask_events, final_answer
from search_service.answering.citations import check_citations
from search_service.answering.config import AnswerSettings, abstain_threshold
from search_service.answering.coverage import NOT_COVERED, confidence_from_evidence, evidence_score
from search_service.answering.llm_client import ChatClient, LLMError
from search_service.answering.results import (
    AnswerEvent,
    AnswerMode,
    AnswerResult,
    Citation,
    DoneEvent,
    Suggestion,
    TokenEvent,
)

__all__ = [
    "NOT_COVERED", "AnswerEvent", "AnswerMode", "AnswerResult", "AnswerSettings", "ChatClient", "Citation", "DoneEvent",
    "LLMError", "Suggestion", "TokenEvent", "abstain_threshold", "ask", "ask_events", "check_citations",
    "confidence_from_evidence", "evidence_score", "final_answer",
]
