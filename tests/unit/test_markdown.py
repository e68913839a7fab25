"""The one Markdown parse: headings and anchors, blocks and their plain text, links, titles. No model."""

from __future__ import annotations

import markdown
import pytest

from search_service.content import parse_page
from search_service.content.markdown import BlockKind, iter_headings, iter_links, parse_markdown


def _blocks(body: str) -> list[tuple[str, int, int, str]]:
    return [(str(b.kind), b.start, b.end, b.text) for b in parse_markdown(body).blocks]


def _python_markdown_anchors(body: str) -> list[tuple[int, str]]:
    """Anchors as MkDocs makes them: Python-Markdown's toc, an independent reference."""
    renderer = markdown.Markdown(extensions=["toc", "attr_list", "admonition", "tables", "pymdownx.superfences"])
    renderer.convert(body)

    def flatten(tokens: list[dict]) -> list[tuple[int, str]]:
        return [pair for t in tokens for pair in [(t["level"], t["id"]), *flatten(t["children"])]]

    return flatten(renderer.toc_tokens)


# ---- headings and anchors


HEADINGS_BODY = """# Page title

Intro.

## Steps

## Steps

### Step 1: Score *value* & [risk](x.md)

## Déjà vu — it's `code`

## Custom {#my-id}

## Release 6.0 {: #\\6.0 }

```
## not a heading: inside a fence
```

~~~~
```
# still inside the longer tilde fence
```
~~~~

    # indented code, not a heading

Setext two
----------

Setext one
==========

## Closing hashes ##
"""


def test_headings_levels_lines_and_text():
    headings = list(iter_headings(HEADINGS_BODY))
    assert [(h.line, h.level, h.text) for h in headings] == [
        (0, 1, "Page title"),
        (4, 2, "Steps"),
        (6, 2, "Steps"),
        (8, 3, "Step 1: Score value & risk"),
        (10, 2, "Déjà vu — it's code"),
        (12, 2, "Custom"),
        (14, 2, "Release 6.0"),
        (28, 2, "Setext two"),
        (31, 1, "Setext one"),
        (34, 2, "Closing hashes"),
    ]


def test_anchors_are_the_ones_mkdocs_generates():
    ours = [(h.level, h.anchor) for h in iter_headings(HEADINGS_BODY)]
    assert ours == [
        (1, "page-title"), (2, "steps"), (2, "steps_1"), (3, "step-1-score-value-risk"),
        (2, "deja-vu-its-code"), (2, "my-id"), (2, "\\6.0"), (2, "setext-two"), (1, "setext-one"),
        (2, "closing-hashes"),
    ]
    assert ours == _python_markdown_anchors(HEADINGS_BODY)


def test_an_explicit_id_counts_when_later_headings_are_made_unique():
    body = "## Intro {#steps}\n\n## Steps\n\n## Steps\n"
    assert [h.anchor for h in iter_headings(body)] == ["steps", "steps_1", "steps_2"]
    assert [a for _, a in _python_markdown_anchors(body)] == ["steps", "steps_1", "steps_2"]


def test_a_setext_underline_under_several_lines_is_not_a_heading():
    # Python-Markdown (what MkDocs renders) reads only a one-line setext heading.
    body = "first line\nsecond line\n---\n\nreal\n----\n"
    assert [h.text for h in iter_headings(body)] == ["real"]


# ---- blocks and their plain text


def test_list_keeps_continuations_blank_lines_and_nested_items_in_one_block():
    body = (
        "Intro line.\n\n"
        "1. **First** step\n   continues here\n\n"
        "2. Second step\n   - nested [item](a.md)\n   - [ ] open task\n"
        "lazy continuation\n\n"
        "After the list.\n"
    )
    assert _blocks(body) == [
        ("text", 0, 1, "Intro line."),
        ("list", 2, 9, "1. First step\ncontinues here\n2. Second step\n- nested item\n- open task\nlazy continuation"),
        ("text", 10, 11, "After the list."),
    ]


def test_lists_with_only_blank_lines_between_are_one_list():
    body = "- a\n- b\n\n* c\n\n1. d\n\nText.\n\n- e\n"
    assert _blocks(body) == [
        ("list", 0, 6, "- a\n- b\n* c\n1. d"),
        ("text", 7, 8, "Text."),
        ("list", 9, 10, "- e"),
    ]


def test_table_rows_become_cells_with_or_without_outer_pipes():
    body = "| Role | Owns |\n| --- | :-: |\n| *PM* | `scope` |\n\nName | Value\n---- | -----\na | 1\n"
    assert _blocks(body) == [
        ("table", 0, 3, "Role | Owns\nPM | scope"),
        ("table", 4, 7, "Name | Value\na | 1"),
    ]


def test_fenced_code_is_kept_as_written_and_hides_heading_like_lines():
    body = "## Code\n\n```python\n# a comment, not a heading\nx = [1](2)\n\n    indented = True\n```\n\nAfter.\n"
    document = parse_markdown(body)
    assert [h.text for h in document.headings] == ["Code"]
    assert _blocks(body) == [
        ("code", 2, 8, "# a comment, not a heading\nx = [1](2)\n    indented = True"),
        ("text", 9, 10, "After."),
    ]
    assert iter_links(body) == []


def test_a_fence_inside_a_longer_fence_is_code_content():
    body = "````markdown\n```python\nimport this\n```\n````\n"
    assert _blocks(body) == [("code", 0, 5, "```python\nimport this\n```")]


def test_a_fence_inside_a_list_item_stays_in_the_list():
    body = "1. Run:\n\n   ```bash\n   pip install kb\n   ```\n\n2. Done.\n"
    assert _blocks(body) == [("list", 0, 7, "1. Run:\npip install kb\n2. Done.")]


def test_admonition_takes_its_indented_body_and_its_title():
    body = (
        '!!! note "Stopping is a result"\n'
        "    A pilot that hits its *stop criteria*\n"
        "    is a success.\n\n"
        "    - one\n    - two\n\n"
        "??? tip\n    Collapsed, untitled.\n\n"
        "Outside.\n"
    )
    assert _blocks(body) == [
        ("admonition", 0, 6, "Stopping is a result\nA pilot that hits its stop criteria\nis a success.\n- one\n- two"),
        ("admonition", 7, 9, "Collapsed, untitled."),
        ("text", 10, 11, "Outside."),
    ]


def test_reference_definitions_and_thematic_breaks_render_no_text_footnotes_stay():
    body = "See [the docs][docs].\n\n[docs]: https://example.com/docs\n\n---\n\n[^1]: A footnote.\n"
    document = parse_markdown(body)
    assert [(str(b.kind), b.text) for b in document.blocks] == [
        ("text", "See the docs."),
        ("rule", ""),
        ("text", "[^1]: A footnote."),
    ]
    assert document.blocks[1].kind is BlockKind.rule


def test_block_source_is_the_markdown_of_its_lines():
    body = "Para *one*\ncontinued.\n\n| a |\n| - |\n| 1 |\n"
    assert [b.source for b in parse_markdown(body).blocks] == ["Para *one*\ncontinued.", "| a |\n| - |\n| 1 |"]


# ---- links


def test_links_outside_code_with_their_lines():
    body = (
        "Intro [one](a.md) and `[in code](no.md)`.\n"  # 0
        "\n"
        "A [link whose text\nwraps](b.md#part) then [ref][r].\n"  # 2-3
        "\n"
        "```\n[fenced](no.md)\n```\n"  # 5-7
        "\n"
        "    [indented code](no.md)\n"  # 9
        "\n"
        "- item [c](<c d.md>)\n"  # 11
        "\n"
        "| cell [e](e.md) |\n| --- |\n| [f](f.md) |\n"  # 13-15
        "\n"
        "![image](img.png)\n"  # 17
        "\n"
        "[r]: r.md\n"
    )
    assert iter_links(body) == [
        (0, "a.md"), (2, "b.md#part"), (3, "r.md"), (11, "c d.md"), (13, "e.md"), (15, "f.md"),
    ]


# ---- title inference


@pytest.mark.parametrize(
    ("body", "title"),
    [
        ("# Release *process*\n\ntext\n", "Release process"),
        ("```\n# Not the title\n```\n\n## Second-level &amp; first\n", "Second-level & first"),
        ("Intro\n\nSetext title\n============\n", "Setext title"),
        ("# Notes {: #custom }\n", "Notes"),
        ("no heading at all\n", "How we work"),
    ],
)
def test_title_comes_from_the_first_heading_outside_code(body: str, title: str):
    assert parse_page(body, "area/how-we-work.md").meta.title == title
