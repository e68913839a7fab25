"""The authoring linter: schema, required sections, links and anchors, dates, titles, owners.

Every problem is a :class:`~search_service.content.ContentError` printed as ``path:line: message``;
a malformed file is reported, never a crash.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from search_service.content import (
    REQUIRED_SECTIONS,
    ContentError,
    Page,
    iter_markdown_files,
    key_line,
    load_content,
)
from search_service.content.markdown import iter_headings, iter_links

_EXTERNAL_RE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


@dataclass
class LintResult:
    """Every problem found, and how many Markdown files were looked at."""

    errors: list[ContentError]
    pages_checked: int

    @property
    def ok(self) -> bool:
        return not self.errors


def read_codeowners(path: Path) -> set[str]:
    """Owners (``@user``, ``@org/team`` or e-mail) named anywhere in a CODEOWNERS file."""
    if not path.is_file():
        return set()
    owners: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        rule = line.split("#", 1)[0].strip()
        if not rule:
            continue
        owners.update(token for token in rule.split()[1:] if token.startswith("@") or "@" in token)
    return owners


def codeowner_for(path: str, codeowners: Path) -> str | None:
    """First owner of the last CODEOWNERS rule matching ``path`` (a repository-relative path)."""
    if not codeowners.is_file():
        return None
    owner = None
    for line in codeowners.read_text(encoding="utf-8").splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) < 2:
            continue
        pattern = parts[0]
        anchored = pattern.startswith("/")
        pattern = pattern.strip("/")
        if (anchored and (path == pattern or path.startswith(pattern + "/"))) or (
            not anchored and (f"/{pattern}/" in f"/{path}/" or path.endswith(pattern))
        ):
            owner = parts[1]
    return owner


def _check_sections(page: Page) -> list[ContentError]:
    required = REQUIRED_SECTIONS[page.meta.type]
    present = {h.text.strip().lower() for h in iter_headings(page.body) if h.level == 2}
    return [
        ContentError(
            page.path,
            page.body_start_line,
            f"missing required section '## {name}' for a {page.meta.type.value} "
            f"(a {page.meta.type.value} needs: {', '.join(required)})",
        )
        for name in required
        if name.lower() not in present
    ]


def _check_links(page: Page, anchors: dict[str, set[str] | None], restricted: set[str]) -> list[ContentError]:
    errors = []
    here = posixpath.dirname(page.path)
    for index, target in iter_links(page.body):
        line = page.body_start_line + index
        if _EXTERNAL_RE.match(target) or target.startswith("/"):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(here, path_part)) if path_part else page.path
        if resolved not in anchors:
            if path_part.endswith(".md") or not posixpath.splitext(path_part)[1]:
                errors.append(ContentError(page.path, line, f"broken link: '{target}' (no page at {resolved})"))
            continue
        target_anchors = anchors[resolved]
        if anchor and target_anchors is not None and anchor not in target_anchors:
            message = f"broken anchor: '{target}' (no heading with id '{anchor}' in {resolved})"
            errors.append(ContentError(page.path, line, message))
        if resolved in restricted and page.path not in restricted:
            message = f"public page links to restricted page {resolved}; readers without access get a broken link"
            errors.append(ContentError(page.path, line, message))
    return errors


def _check_review_and_owner(page: Page, *, today: dt.date, owners: set[str], codeowners: Path) -> list[ContentError]:
    meta, header = page.meta, page.front_matter
    errors = []
    if meta.last_reviewed and meta.last_reviewed > today:
        message = f"last_reviewed {meta.last_reviewed} is in the future"
        errors.append(ContentError(page.path, key_line(header, "last_reviewed"), message))
    if not owners:
        message = f"no CODEOWNERS file at {codeowners}; owners cannot be checked"
        errors.append(ContentError(page.path, key_line(header, "owner"), message))
    elif meta.owner not in owners:
        message = f"owner '{meta.owner}' is not listed in CODEOWNERS ({codeowners})"
        errors.append(ContentError(page.path, key_line(header, "owner"), message))
    return errors


def _check_page_references(page: Page, known: set[str], unsearchable: set[str]) -> list[ContentError]:
    """``related`` and ``superseded_by`` name existing pages, and a successor is searchable."""
    meta, header = page.meta, page.front_matter
    errors = []
    successors = [meta.superseded_by] if meta.superseded_by else []
    for field_name, targets in (("related", meta.related), ("superseded_by", successors)):
        for target in targets:
            if target not in known:
                message = f"{field_name}: no page at '{target}' (paths are relative to the content folder)"
                errors.append(ContentError(page.path, key_line(header, field_name), message))
    if meta.superseded_by in unsearchable:
        message = (f"superseded_by: '{meta.superseded_by}' is excluded from search (search: exclude), "
                   "so search cannot send readers of this page to it")
        errors.append(ContentError(page.path, key_line(header, "superseded_by"), message))
    return errors


def _check_duplicate_titles(pages: list[Page]) -> list[ContentError]:
    titles: dict[str, str] = {}
    errors = []
    for page in pages:
        key = page.meta.title.strip().lower()
        if key in titles:
            message = f"duplicate title '{page.meta.title}' (also used by {titles[key]})"
            errors.append(ContentError(page.path, key_line(page.front_matter, "title"), message))
        else:
            titles[key] = page.path
    return errors


def lint_content(root: Path, *, codeowners: Path, today: dt.date) -> LintResult:
    """Lint every page under ``root``. Returns all problems found, sorted by file and line."""
    content = load_content(root, strict=True)
    errors = list(content.errors)
    pages = content.pages
    known = {page.path for page in pages} | {err.path for err in content.errors}
    # Pages that failed to parse still exist: links to them are not broken, their anchors unknown (None).
    anchors: dict[str, set[str] | None] = dict.fromkeys(known)
    anchors.update({page.path: {h.anchor for h in iter_headings(page.body)} for page in pages})
    restricted = {page.path for page in pages if page.meta.restricted}
    unsearchable = {page.path for page in pages if page.meta.search.exclude}
    owners = read_codeowners(codeowners)
    for page in pages:
        errors.extend(_check_sections(page))
        errors.extend(_check_review_and_owner(page, today=today, owners=owners, codeowners=codeowners))
        errors.extend(_check_page_references(page, known, unsearchable))
        errors.extend(_check_links(page, anchors, restricted))
    errors.extend(_check_duplicate_titles(pages))
    errors.sort(key=lambda e: (e.path, e.line, e.message))
    return LintResult(errors=errors, pages_checked=len(iter_markdown_files(root)))
