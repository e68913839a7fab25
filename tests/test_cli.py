"""The authoring commands: `kb new` and `kb stale`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from search_service.cli import main
from search_service.content import PageType
from tests.conftest import ROOT, page_text, write_page


def test_new_scaffolds_a_page_that_lints_clean_for_every_type(content_dir):
    runner = CliRunner()
    for page_type in PageType:
        result = runner.invoke(main, ["new", page_type.value, f"A {page_type.value} about reuse", "--content", str(content_dir)])
        assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(content_dir).as_posix() for p in content_dir.rglob("*.md"))
    assert files == [
        "delivery/a-playbook-about-reuse.md",
        "faq/a-faq-about-reuse.md",
        "getting-started/a-guide-about-reuse.md",
        "lessons/a-lesson-about-reuse.md",
        "templates/a-template-about-reuse.md",
    ]
    result = runner.invoke(main, ["lint", "--content", str(content_dir), "--codeowners", str(ROOT / "CODEOWNERS")])
    assert result.exit_code == 0, result.output


def test_new_refuses_to_overwrite_and_bad_area(content_dir):
    runner = CliRunner()
    assert runner.invoke(main, ["new", "guide", "Once", "--content", str(content_dir)]).exit_code == 0
    again = runner.invoke(main, ["new", "guide", "Once", "--content", str(content_dir)])
    assert again.exit_code == 1 and "already exists" in again.output
    escape = runner.invoke(main, ["new", "guide", "X", "--area", "../outside", "--content", str(content_dir)])
    assert escape.exit_code == 1 and "must be a folder name" in escape.output


def test_stale_lists_overdue_pages_with_owners(content_dir):
    write_page(content_dir, "old.md", page_text("Old", owner="@ai-coe/strategy", last_reviewed="2025-01-01"))
    write_page(content_dir, "new.md", page_text("New", last_reviewed="2026-11-01"))
    result = CliRunner().invoke(main, ["stale", "--content", str(content_dir), "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [(r["path"], r["owner"], r["due"]) for r in rows] == [("old.md", "@ai-coe/strategy", "2025-06-30")]
    text = CliRunner().invoke(main, ["stale", "--content", str(content_dir)]).output
    assert "old.md" in text and "@ai-coe/strategy" in text and "days overdue" in text


@pytest.mark.slow
def test_index_summary_counts_pages_kept_out_of_search(content_dir, tmp_path, monkeypatch):
    from search_service.settings import get_settings

    write_page(content_dir, "guide.md", page_text("Guide"))
    write_page(content_dir, "drafts/idea.md", page_text("Idea"))
    monkeypatch.setenv("KB_SEARCH_EXCLUDE", "drafts/*, notes/*")
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["index", "--quiet", "--content", str(content_dir), "--index-dir", str(tmp_path / "ix")])
    assert result.exit_code == 0, result.output
    assert "indexed 1 pages, 1 excluded from search" in result.output
