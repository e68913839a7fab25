"""Content model: one front-matter schema for the linter, the portal plugin and the indexer.

Pages are Markdown files with an optional YAML front matter block. Foreign Markdown without
front matter still loads: its title comes from the first heading (or the file name) and the
other fields take their defaults.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml
from markdown.extensions.toc import slugify
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from search_service.content.markdown import parse_markdown

logger = logging.getLogger(__name__)


class PageType(StrEnum):
    playbook = "playbook"
    template = "template"
    lesson = "lesson"
    faq = "faq"
    guide = "guide"


class Status(StrEnum):
    draft = "draft"
    published = "published"
    deprecated = "deprecated"


class Audience(StrEnum):
    executives = "executives"
    managers = "managers"
    practitioners = "practitioners"


# Level-2 sections every page of a type must have, in this order (case-insensitive).
REQUIRED_SECTIONS: dict[PageType, tuple[str, ...]] = {
    PageType.playbook: ("Purpose", "When to use", "Roles", "Steps", "Checklist", "Related templates"),
    PageType.template: ("Purpose", "How to use", "Template"),
    PageType.lesson: ("What happened", "Why it happened", "What to do differently"),
    PageType.faq: (),
    PageType.guide: (),
}

_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class SearchOptions(BaseModel):
    """The ``search`` front-matter key, as Material for MkDocs defines it: ``exclude: true`` keeps a
    page out of search (and out of answers), ``boost: 2`` ranks it higher (below 1: lower)."""

    model_config = ConfigDict(extra="forbid")

    exclude: bool = False
    boost: float = Field(1.0, gt=0, le=10, description="Multiplies the page's search score.")


class PageMeta(BaseModel):
    """Front matter of a page. Unknown keys are errors so that typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    title: str = Field(min_length=1, max_length=200)
    summary: str = ""
    type: PageType = PageType.guide
    owner: str = ""
    status: Status = Status.published
    last_reviewed: dt.date | None = None
    review_every: int = Field(180, ge=1, le=3650, description="Days between reviews.")
    tags: list[str] = Field(default_factory=list)
    audience: list[Audience] = Field(default_factory=list)
    access: list[str] | None = Field(None, description="Groups allowed to see the page; absent means everyone.")
    superseded_by: str | None = None
    related: list[str] = Field(default_factory=list)
    search: SearchOptions = Field(default_factory=SearchOptions)

    @field_validator("tags")
    @classmethod
    def _tags_are_slugs(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not _TAG_RE.match(tag):
                raise ValueError(f"tag {tag!r} must be lowercase letters, digits and hyphens")
        return tags

    @field_validator("access")
    @classmethod
    def _access_not_empty(cls, groups: list[str] | None) -> list[str] | None:
        if groups is not None and not groups:
            raise ValueError("access must list at least one group (omit it to make the page public)")
        return groups

    def review_due(self) -> dt.date | None:
        """Date the page is due for review, or None when it was never reviewed."""
        if self.last_reviewed is None:
            return None
        return self.last_reviewed + dt.timedelta(days=self.review_every)

    def is_stale(self, today: dt.date) -> bool:
        """True when ``last_reviewed + review_every`` has passed."""
        due = self.review_due()
        return due is not None and due < today

    @property
    def restricted(self) -> bool:
        return self.access is not None


class AuthoredPageMeta(PageMeta):
    """The stricter schema for pages written for this portal: these fields must be present."""

    summary: str = Field(min_length=1)
    type: PageType
    owner: str = Field(min_length=1)
    last_reviewed: dt.date
    audience: list[Audience] = Field(min_length=1)


@dataclass
class Page:
    """One Markdown page, parsed."""

    path: str  # POSIX path relative to the content folder, e.g. "delivery/pilot-to-production.md"
    meta: PageMeta
    body: str
    body_start_line: int = 1  # 1-based line number of the body's first line in the file
    has_front_matter: bool = False
    front_matter: str = ""  # the YAML block's text, for line numbers in lint messages

    @property
    def url(self) -> str:
        """Site-relative URL MkDocs gives this page (directory URLs)."""
        return page_url(self.path)


@dataclass(frozen=True)
class ContentError(Exception):
    """A problem in a content file, reported as ``path:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


if TYPE_CHECKING:
    _FastSafeLoader = yaml.SafeLoader
else:  # libyaml's parser when available
    _FastSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _NoDatesLoader(_FastSafeLoader):
    """Safe loader that leaves dates as strings, so pydantic reports bad dates precisely."""


_NoDatesLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}

_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def page_url(path: str) -> str:
    """The URL MkDocs (``use_directory_urls: true``) gives a source path."""
    p = PurePosixPath(path)
    stem = p.stem
    if stem.lower() in ("index", "readme"):
        parent = str(p.parent)
        return "" if parent == "." else parent + "/"
    parent = "" if str(p.parent) == "." else str(p.parent) + "/"
    return f"{parent}{stem}/"


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """Split ``text`` into (front matter or None, body, body's 1-based start line)."""
    match = _FRONT_MATTER_RE.match(text)
    if not match:
        return None, text, 1
    header = match.group(1) or ""
    start_line = text[: match.end()].count("\n") + 1
    return header, text[match.end():], start_line


def key_line(header: str, key: str) -> int:
    """1-based file line of ``key:`` in a front matter block (the ``---`` is line 1)."""
    for number, line in enumerate(header.splitlines(), start=2):
        if re.match(rf"^{re.escape(key)}\s*:", line):
            return number
    return 1


def _lenient_meta(raw: dict[Any, Any], body: str, path: str) -> PageMeta:
    """The schema's fields that are usable, defaults for the rest: keys of other tools (``hide``,
    ``icon``...) are ignored, free-form tags are slugified, invalid values dropped."""
    values = {key: value for key, value in raw.items() if key in PageMeta.model_fields}
    if isinstance(values.get("search"), dict):  # keep the valid search options we know, drop the rest
        values["search"] = {k: v for k, v in values["search"].items()
                            if k in SearchOptions.model_fields and _valid_search_option(k, v)}
    if isinstance(values.get("tags"), list):
        values["tags"] = list(dict.fromkeys(t for t in (slugify(str(tag), "-") for tag in values["tags"]) if t))
    if not isinstance(values.get("title"), str) or not values.get("title", "").strip():
        values["title"] = _title_from_body(body, path)
    for _ in range(len(values) + 1):
        try:
            return PageMeta.model_validate(values)
        except ValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]} - {"title"}
            if not bad:
                break
            for key in bad:
                values.pop(key, None)
    return PageMeta(title=_title_from_body(body, path))


def _valid_search_option(key: str, value: object) -> bool:
    try:
        SearchOptions.model_validate({key: value})
    except ValidationError:
        return False
    return True


def _title_from_body(body: str, path: str) -> str:
    """The first heading's text (any level, outside code), else the file name made readable."""
    title = parse_markdown(body).title
    if title:
        return title
    return PurePosixPath(path).stem.replace("-", " ").replace("_", " ").strip().capitalize() or path


def format_validation_error(exc: ValidationError, header: str) -> list[tuple[int, str]]:
    """Turn pydantic errors into (line, message) pairs pointing at the offending key."""
    out = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        key = loc[0] if loc else ""
        where = ".".join(loc) if loc else "front matter"
        kind = err["type"]
        if kind == "missing":
            message = f"missing required field '{key}'"
        elif kind == "extra_forbidden":
            message = f"unknown field '{key}' (allowed: {', '.join(PageMeta.model_fields)})"
        elif kind == "enum":
            allowed = err.get("ctx", {}).get("expected", "")
            message = f"{where}: invalid value {err.get('input')!r}; expected {allowed}"
        elif kind.startswith("date"):
            message = f"{where}: invalid date {err.get('input')!r}; use YYYY-MM-DD"
        else:
            message = f"{where}: {err['msg']}"
        out.append((key_line(header, key) if key else 1, message))
    return out


def parse_page(text: str, path: str, *, strict: bool = False) -> Page:
    """Parse one page's text. Raises :class:`ContentError` (first problem) on bad input.

    Args:
        text: the file's content.
        path: its path relative to the content folder (used in messages and URLs).
        strict: validate against :class:`AuthoredPageMeta` (the portal's own pages).
    """
    page, errors = _parse(text, path, strict=strict)
    if page is None:
        raise errors[0]
    return page


def _parse(text: str, path: str, *, strict: bool) -> tuple[Page | None, list[ContentError]]:
    """Parse a page once: the page, or the problems that stop it from loading."""
    header, body, start = split_front_matter(text)
    if header is None:
        if strict:
            return None, [ContentError(path, 1, "missing YAML front matter (a '---' block with title, type, owner, ...)")]
        return Page(path=path, meta=PageMeta(title=_title_from_body(body, path)), body=body), []
    raw, problem = _load_front_matter(header, path)
    if problem is not None:
        return None, [problem]
    meta: PageMeta
    if not strict:
        # Foreign Markdown (another MkDocs site) loads whatever its front matter holds.
        meta = _lenient_meta(raw, body, path)
    else:
        try:
            meta = AuthoredPageMeta.model_validate(raw)
        except ValidationError as exc:
            return None, [ContentError(path, line, message) for line, message in format_validation_error(exc, header)]
    return Page(path=path, meta=meta, body=body, body_start_line=start, has_front_matter=True, front_matter=header), []


def _load_front_matter(header: str, path: str) -> tuple[dict[Any, Any], ContentError | None]:
    """The front matter's mapping, or the problem that makes it unreadable."""
    try:
        raw = yaml.load(header, Loader=_NoDatesLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return {}, ContentError(path, line, f"malformed YAML front matter: {problem}")
    if raw is None:
        return {}, None
    if not isinstance(raw, dict):
        return {}, ContentError(path, 2, "front matter must be a mapping of 'key: value' lines")
    return raw, None


def iter_markdown_files(root: Path) -> list[Path]:
    """Markdown files under ``root`` in a stable order, skipping hidden folders."""
    files = []
    for file in sorted(root.rglob("*.md")):
        rel = file.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        files.append(file)
    return files


@dataclass
class ContentSet:
    """Every page that loaded from a folder, and the errors of those that did not."""

    root: Path
    pages: list[Page]
    errors: list[ContentError]

    def by_path(self) -> dict[str, Page]:
        return {page.path: page for page in self.pages}


def load_content(root: Path, *, strict: bool = False) -> ContentSet:
    """Load every Markdown page under ``root``. A bad page is reported and skipped, never fatal."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"content folder {root} does not exist")
    pages: list[Page] = []
    errors: list[ContentError] = []
    for file in iter_markdown_files(root):
        rel = file.relative_to(root).as_posix()
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(ContentError(rel, 1, f"cannot read file: {exc}"))
            continue
        page, problems = _parse(text, rel, strict=strict)
        errors.extend(problems)
        if page is not None:
            pages.append(page)
    return ContentSet(root=root, pages=pages, errors=errors)


def excluded_from_search(page: Page, patterns: Sequence[str] = ()) -> bool:
    """True when a page stays out of search: its front matter says ``search: {exclude: true}``, or
    its path (relative to the content folder) matches a glob pattern such as ``about/changelog.md``
    or ``about/releases/*`` (``*`` also matches across folders)."""
    return page.meta.search.exclude or any(fnmatch.fnmatchcase(page.path, pattern.strip().lstrip("/"))
                                            for pattern in patterns if pattern.strip())


@dataclass(frozen=True)
class ReviewDue:
    """A page that is due (or overdue) for review."""

    page: Page
    due: dt.date
    days_overdue: int  # negative when due in the future


def due_for_review(pages: list[Page], today: dt.date, *, within_days: int = 0) -> list[ReviewDue]:
    """Pages whose review date has passed, or falls within ``within_days``; most overdue first."""
    out = []
    for page in pages:
        due = page.meta.review_due()
        if due is None:
            continue
        overdue = (today - due).days
        if overdue > 0 or -overdue <= within_days:
            out.append(ReviewDue(page=page, due=due, days_overdue=overdue))
    return sorted(out, key=lambda r: (-r.days_overdue, r.page.path))
