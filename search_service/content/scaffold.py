"""``kb new``: scaffold a page with valid front matter and its type's required sections."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from markdown.extensions.toc import slugify

from search_service.content import REQUIRED_SECTIONS, PageType

DEFAULT_AREA = {
    PageType.playbook: "delivery",
    PageType.template: "templates",
    PageType.lesson: "lessons",
    PageType.faq: "faq",
    PageType.guide: "getting-started",
}

SECTION_HINTS = {
    "Purpose": "What this page helps the reader do, in two or three sentences.",
    "When to use": "- The situations where this applies.\n- When *not* to use it, and what to use instead.",
    "Roles": "| Role | Responsibility |\n| --- | --- |\n| Owner | |\n| CoE contact | |",
    "Steps": "1. **First step.** What to do and what it produces.\n2. **Second step.** What to do next.",
    "Checklist": "- [ ] The first thing that must be true before moving on.",
    "Related templates": "- Link the templates a reader fills in while following this page.",
    "How to use": "Who fills this in, when, and who reviews it.",
    "Template": "- **Field:** what to write here.",
    "What happened": "The situation, anonymised, with the figures that matter.",
    "Why it happened": "The root causes, not the symptoms.",
    "What to do differently": "- What teams should do instead, linked to the playbook that covers it.",
}


def page_slug(title: str) -> str:
    """File name stem for a title: lowercase words joined by hyphens."""
    return slugify(title, "-") or "page"


def scaffold_page(page_type: PageType, title: str, *, owner: str, today: dt.date) -> str:
    """Markdown text of a new draft page that passes ``kb lint``."""
    safe_title = title.replace('"', '\\"')
    lines = [
        "---",
        f'title: "{safe_title}"',
        "summary: One sentence saying what the reader gets from this page.",
        f"type: {page_type.value}",
        f'owner: "{owner}"',
        "status: draft",
        f"last_reviewed: {today.isoformat()}",
        "review_every: 180",
        "tags: []",
        "audience: [practitioners]",
        "related: []",
        "---",
        "",
        "One paragraph introducing the page: who it is for and what problem it solves.",
        "",
    ]
    sections = REQUIRED_SECTIONS[page_type] or (
        ("What is the question?",) if page_type is PageType.faq else ("Overview",)
    )
    for name in sections:
        lines += [f"## {name}", "", SECTION_HINTS.get(name, "Write this section."), ""]
    return "\n".join(lines)


def new_page_path(content_dir: Path, page_type: PageType, title: str, area: str | None) -> Path:
    """Where ``kb new`` writes a page; refuses names that escape the content folder."""
    area = area or DEFAULT_AREA[page_type]
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)*", area):
        raise ValueError(f"area {area!r} must be a folder name like 'delivery' or 'governance/risk'")
    return content_dir / area / f"{page_slug(title)}.md"
