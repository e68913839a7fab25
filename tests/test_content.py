"""The content model: one schema, foreign Markdown, URLs and review dates."""

from __future__ import annotations

import datetime as dt

import pytest

from search_service.content import (
    REQUIRED_SECTIONS,
    ContentError,
    PageType,
    due_for_review,
    excluded_from_search,
    load_content,
    page_url,
    parse_page,
)
from tests.conftest import PLAYBOOKS, page_text, write_page


def test_front_matter_parses_into_schema():
    page = parse_page(page_text("Alpha", type_="playbook", extra="tags: [intake]\nreview_every: 30\n"), "a/alpha.md")
    assert page.meta.title == "Alpha"
    assert page.meta.type is PageType.playbook
    assert page.meta.last_reviewed == dt.date(2026, 10, 1)
    assert page.meta.review_due() == dt.date(2026, 10, 31)
    assert page.meta.access is None and not page.meta.restricted
    assert page.body.startswith("\nIntro.")


def test_foreign_markdown_without_front_matter_loads_with_defaults():
    page = parse_page("# Release *process*\n\nSome text.\n", "ops/release.md")
    assert page.meta.title == "Release process"
    assert page.meta.type is PageType.guide
    assert page.meta.review_every == 180
    assert not page.has_front_matter


def test_foreign_markdown_without_heading_uses_file_name():
    assert parse_page("just text\n", "how-we-work.md").meta.title == "How we work"


def test_front_matter_without_title_takes_first_heading():
    page = parse_page("---\ntags: [a]\n---\n# From heading\n", "x.md")
    assert page.meta.title == "From heading"


@pytest.mark.parametrize(
    ("path", "url"),
    [("a/b.md", "a/b/"), ("index.md", ""), ("a/index.md", "a/"), ("a/README.md", "a/"), ("top.md", "top/")],
)
def test_page_url_matches_mkdocs_directory_urls(path, url):
    assert page_url(path) == url


def test_bad_page_raises_content_error_with_line():
    with pytest.raises(ContentError) as info:
        parse_page(page_text("x", extra="status: shiny\n"), "x.md", strict=True)
    assert info.value.line == 8
    assert "status" in info.value.message


def test_load_content_skips_bad_pages_and_keeps_good_ones(content_dir):
    write_page(content_dir, "good.md", page_text("Good"))
    write_page(content_dir, "bad.md", "---\ntitle: [oops\n---\n")
    content = load_content(content_dir)
    assert [p.path for p in content.pages] == ["good.md"]
    assert [e.path for e in content.errors] == ["bad.md"]


def test_due_for_review_orders_most_overdue_first(content_dir):
    write_page(content_dir, "old.md", page_text("Old", last_reviewed="2025-01-01"))
    write_page(content_dir, "older.md", page_text("Older", last_reviewed="2024-01-01"))
    write_page(content_dir, "fresh.md", page_text("Fresh", last_reviewed="2026-11-01"))
    pages = load_content(content_dir).pages
    due = due_for_review(pages, dt.date(2026, 11, 22))
    assert [d.page.path for d in due] == ["older.md", "old.md"]
    soon = due_for_review(pages, dt.date(2026, 11, 22), within_days=200)
    assert "fresh.md" in [d.page.path for d in soon]


def test_repository_content_counts_hold():
    content = load_content(PLAYBOOKS, strict=True)
    assert not content.errors
    by_type = {t: [p for p in content.pages if p.meta.type is t] for t in PageType}
    assert len(content.pages) >= 40
    assert len(by_type[PageType.playbook]) >= 12
    assert len(by_type[PageType.template]) >= 10
    assert len(by_type[PageType.lesson]) >= 10
    assert by_type[PageType.faq]
    assert any(p.meta.restricted for p in content.pages)
    assert any(p.meta.status.value == "deprecated" and p.meta.superseded_by for p in content.pages)
    for page in by_type[PageType.playbook]:
        assert set(REQUIRED_SECTIONS[PageType.playbook]) <= {
            line[3:].strip() for line in page.body.splitlines() if line.startswith("## ")
        }, page.path


def test_foreign_mkdocs_front_matter_loads_leniently(content_dir):
    """Pages of another MkDocs site carry keys of their own tools and free-form values."""
    write_page(content_dir, "guide/setup.md", "---\nhide:\n  - navigation\nicon: material/rocket\n"
               "tags: [Getting Started, API v2]\nstatus: new\nsearch:\n  boost: 2\n  pipeline: [trimmer]\n"
               "last_reviewed: someday\n---\n"
               "# Setting up\n\nText.\n")
    write_page(content_dir, "guide/plain.md", "---\ndescription: Only a description\n---\nNo heading here.\n")
    content = load_content(content_dir)
    assert content.errors == []
    pages = content.by_path()
    setup = pages["guide/setup.md"].meta
    assert setup.title == "Setting up" and setup.tags == ["getting-started", "api-v2"]
    assert setup.status.value == "published" and setup.last_reviewed is None
    assert pages["guide/plain.md"].meta.title == "Plain"
    assert setup.search.boost == 2 and not setup.search.exclude  # Material's search keys are kept
    # One invalid option (Material sets no limit on boost) does not cost the page its exclusion.
    write_page(content_dir, "about/changelog.md", "---\nsearch:\n  exclude: true\n  boost: 20\n---\n# Changelog\n")
    changelog = load_content(content_dir).by_path()["about/changelog.md"].meta.search
    assert changelog.exclude and changelog.boost == 1.0


def test_search_front_matter_is_validated_for_authored_pages():
    page = parse_page(page_text("Changelog", extra="search:\n  exclude: true\n"), "about/changelog.md", strict=True)
    assert page.meta.search.exclude and page.meta.search.boost == 1.0
    assert excluded_from_search(page)
    plain = parse_page(page_text("Guide"), "about/releases/9.0.md")
    assert not excluded_from_search(plain)
    assert excluded_from_search(plain, ["about/releases/*"]) and excluded_from_search(plain, [" /about/*"])
    assert not excluded_from_search(plain, ["releases/*", ""])
    for bad in ("search:\n  boost: 0\n", "search:\n  exlude: true\n"):
        with pytest.raises(ContentError, match="search"):
            parse_page(page_text("Typo", extra=bad), "x.md", strict=True)
