"""`kb lint`: passes on the repository, fails precisely on each kind of authoring mistake."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from search_service.cli import main
from search_service.content.lint import lint_content
from tests.conftest import PLAYBOOKS, ROOT, page_text, write_page

TODAY = dt.date(2026, 11, 22)
CODEOWNERS = ROOT / "CODEOWNERS"
PLAYBOOK_BODY = "\n".join(
    f"## {name}\n\nText.\n" for name in ("Purpose", "When to use", "Roles", "Steps", "Checklist", "Related templates")
)


def lint(root):
    return lint_content(root, codeowners=CODEOWNERS, today=TODAY).errors


def test_repository_passes():
    assert [str(e) for e in lint(PLAYBOOKS)] == []


def test_cli_passes_on_repository():
    result = CliRunner().invoke(main, ["lint", "--content", str(PLAYBOOKS), "--codeowners", str(CODEOWNERS)])
    assert result.exit_code == 0, result.output


def test_valid_page_passes(content_dir):
    write_page(content_dir, "a/ok.md", page_text("Ok", type_="playbook", body=PLAYBOOK_BODY))
    assert lint(content_dir) == []


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        # missing required field (owner removed)
        ("---\ntitle: T\nsummary: S\ntype: guide\nlast_reviewed: 2026-10-01\naudience: [managers]\n---\nx\n", 1,
         "missing required field 'owner'"),
        # bad date
        (page_text("T", last_reviewed="2026-02-30"), 6, "last_reviewed: invalid date '2026-02-30'"),
        # date in the future
        (page_text("T", last_reviewed="2027-01-01"), 6, "last_reviewed 2027-01-01 is in the future"),
        # unknown type
        (page_text("T", type_="howto"), 4, "type: invalid value 'howto'"),
        # malformed YAML
        ("---\ntitle: T\ntags: [a, b\nowner: x\n---\nbody\n", 4, "malformed YAML front matter"),
        # unknown field (a typo)
        (page_text("T", extra="ownr: x\n"), 8, "unknown field 'ownr'"),
        # owner not in CODEOWNERS
        (page_text("T", owner="@someone/else"), 5, "owner '@someone/else' is not listed in CODEOWNERS"),
        # missing required section
        (page_text("T", type_="lesson", body="## What happened\n\nx\n\n## Why it happened\n\ny\n"), 9,
         "missing required section '## What to do differently' for a lesson"),
        # no front matter at all
        ("# Just a heading\n", 1, "missing YAML front matter"),
    ],
    ids=["missing-field", "bad-date", "future-date", "unknown-type", "malformed-yaml", "unknown-field",
         "unknown-owner", "missing-section", "no-front-matter"],
)
def test_each_mistake_is_reported_with_path_and_line(content_dir, text, line, fragment):
    write_page(content_dir, "area/page.md", text)
    errors = lint(content_dir)
    assert errors, "expected a lint error"
    matching = [e for e in errors if fragment in e.message]
    assert matching, [str(e) for e in errors]
    assert matching[0].path == "area/page.md"
    assert matching[0].line == line


def test_broken_link_and_anchor(content_dir):
    write_page(content_dir, "a/target.md", page_text("Target", body="## Real section\n\ntext\n"))
    body = (
        "Intro.\n\n## Links\n\n"
        "See [ok](target.md) and [ok anchor](target.md#real-section).\n"
        "See [missing](missing.md).\n"
        "See [bad anchor](target.md#no-such-section).\n"
        "```\n[in code](ignored.md)\n```\n"
        "External [site](https://example.com/x.md) is not checked.\n"
    )
    write_page(content_dir, "a/source.md", page_text("Source", body=body))
    errors = [str(e) for e in lint(content_dir)]
    assert errors == [
        "a/source.md:15: broken link: 'missing.md' (no page at a/missing.md)",
        "a/source.md:16: broken anchor: 'target.md#no-such-section' (no heading with id 'no-such-section' in a/target.md)",
    ]


def test_duplicate_titles_and_missing_related(content_dir):
    write_page(content_dir, "a.md", page_text("Same"))
    write_page(content_dir, "b.md", page_text("Same", extra="related: [nowhere.md]\n"))
    errors = [str(e) for e in lint(content_dir)]
    assert "b.md:2: duplicate title 'Same' (also used by a.md)" in errors
    assert any(e.startswith("b.md:8: related: no page at 'nowhere.md'") for e in errors)


def test_successor_of_a_deprecated_page_must_be_searchable(content_dir):
    write_page(content_dir, "new.md", page_text("New", extra="search:\n  exclude: true\n"))
    write_page(content_dir, "old.md", page_text("Old", extra="status: deprecated\nsuperseded_by: new.md\n"))
    errors = [str(e) for e in lint(content_dir)]
    assert any(e.startswith("old.md:9: superseded_by: 'new.md' is excluded from search") for e in errors), errors


def test_public_page_may_not_link_to_restricted_page(content_dir):
    write_page(content_dir, "secret.md", page_text("Secret", extra="access: [leads]\n"))
    write_page(content_dir, "public.md", page_text("Public", body="See [it](secret.md).\n"))
    errors = [str(e) for e in lint(content_dir)]
    assert any("public page links to restricted page secret.md" in e for e in errors)


def test_cli_prints_path_line_message_and_fails(content_dir):
    write_page(content_dir, "x/bad.md", "---\ntitle: [broken\n---\n")
    result = CliRunner().invoke(main, ["lint", "--content", str(content_dir), "--codeowners", str(CODEOWNERS)])
    assert result.exit_code == 1
    assert f"{content_dir.as_posix()}/x/bad.md:3: malformed YAML front matter" in result.output
    assert "Traceback" not in result.output


def test_reference_links_and_wrapped_link_text_are_checked_at_their_first_line(content_dir):
    body = "Intro.\n\nSee [the\nmissing page](gone.md) and [a ref][r].\n\n[r]: also-gone.md\n"
    write_page(content_dir, "a/source.md", page_text("Source", body=body))
    errors = [str(e) for e in lint(content_dir)]
    assert errors == [
        "a/source.md:12: broken link: 'gone.md' (no page at a/gone.md)",
        "a/source.md:13: broken link: 'also-gone.md' (no page at a/also-gone.md)",
    ]
