"""Labelled question files (JSONL): what each question asks and which pages answer it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from search_service.ranking import Viewer

logger = logging.getLogger(__name__)

# Evaluation measures ranking, not access control: it sees every page.
EVAL_VIEWER = Viewer(all_access=True)


class Question(BaseModel):
    """One labelled question of a JSONL question file."""

    id: str
    question: str = Field(min_length=1)
    answerable: bool = True
    gold: list[str] = Field(default_factory=list)
    section: str = ""
    answer: str = ""


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL question file.

    Raises:
        ValueError: naming the file and line of a question that is not valid.
    """
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = Question.model_validate(json.loads(line))
        except (ValueError, ValidationError) as exc:
            raise ValueError(f"{path}:{number}: not a valid question: {exc}") from exc
        if question.answerable and not question.gold:
            raise ValueError(f"{path}:{number}: answerable question {question.id!r} has no gold page")
        questions.append(question)
    return questions


def answerable(questions: list[Question]) -> list[Question]:
    """The questions that have a gold page."""
    return [q for q in questions if q.answerable]
