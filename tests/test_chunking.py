"""Heading-aware chunking: anchors, heading paths, blocks never cut."""

from __future__ import annotations

from search_service.content import parse_page
from search_service.content.markdown import inline_to_text, iter_headings
from search_service.indexing.chunking import chunk_page


def test_anchors_follow_mkdocs_slug_rules_including_duplicates():
    body = (
        "# Title\n\n## Steps\n\n## Steps\n\n### Step 1: Score *value* & [risk](x.md)\n\n"
        "## Déjà vu — it's `code`\n\n## Custom {#my-id}\n\n```\n## not a heading\n```\n\nSetext\n------\n"
    )
    anchors = [(h.level, h.anchor) for h in iter_headings(body)]
    assert anchors == [
        (1, "title"), (2, "steps"), (2, "steps_1"), (3, "step-1-score-value-risk"),
        (2, "deja-vu-its-code"), (2, "my-id"), (2, "setext"),
    ]


def test_inline_markup_is_removed_from_heading_text():
    assert inline_to_text("**Bold** and _it_ with [link](a.md) `x`") == "Bold and it with link x"


def _page(body: str):
    return parse_page("---\ntitle: Page\n---\n" + body, "area/page.md")


def test_chunks_carry_page_heading_path_and_anchor():
    chunks = chunk_page(_page("Intro text.\n\n## Steps\n\n### First\n\nDo it.\n\n## Checklist\n\n- [ ] a\n- [x] b\n"))
    assert [(c.heading_path, c.anchor) for c in chunks] == [
        ([], ""), (["Steps", "First"], "first"), (["Checklist"], "checklist"),
    ]
    assert chunks[2].text == "- a\n- b"
    assert chunks[1].embed_text().startswith("Page: Steps > First\n")


def test_long_section_splits_on_paragraphs_and_keeps_lists_and_tables_whole():
    paragraphs = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(4))
    numbered = "\n".join(f"{i}. Step {i} " + "detail " * 8 for i in range(1, 8))
    table = "| a | b |\n| --- | --- |\n" + "\n".join(f"| row {i} | value {i} |" for i in range(10))
    chunks = chunk_page(_page(f"## Long\n\n{paragraphs}\n\n{numbered}\n\n{table}\n"), max_words=120)
    assert len(chunks) > 2
    assert all(c.heading_path == ["Long"] and c.anchor == "long" for c in chunks)
    joined = [c.text for c in chunks]
    # the numbered list (70 words) and the table sit whole inside one chunk each
    assert sum("1. Step 1" in t and "7. Step 7" in t for t in joined) == 1
    assert sum("row 0" in t and "row 9" in t for t in joined) == 1
    # no paragraph is cut in the middle
    for i in range(4):
        assert sum(f"Paragraph {i} " in t for t in joined) == 1


def test_overlong_list_splits_between_items_only():
    items = "\n".join(f"- item {i} " + "x " * 30 for i in range(10))
    chunks = chunk_page(_page(f"## List\n\n{items}\n"), max_words=100)
    assert len(chunks) >= 3
    for chunk in chunks:
        for line in chunk.text.splitlines():
            assert line.startswith("- item ")


def test_code_blocks_are_kept_whole():
    code = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(5)) + "\n```"
    chunks = chunk_page(_page(f"## Code\n\n{code}\n"))
    assert chunks[0].text == "\n".join(f"x{i} = {i}" for i in range(5))


def test_setext_underline_is_part_of_the_heading_not_of_the_text():
    chunks = chunk_page(_page("Setext\n------\ntext here\n"))
    assert [(c.heading_path, c.anchor, c.text) for c in chunks] == [(["Setext"], "setext", "text here")]


def test_heading_after_a_fence_inside_a_list_item_still_starts_a_section():
    body = "## One\n\n- item\n- ```\n  code\n  ```\n\n## Two\n\nText.\n"
    chunks = chunk_page(_page(body))
    assert [(c.heading_path, c.kind, c.text) for c in chunks] == [
        (["One"], "list", "- item\ncode"),
        (["Two"], "text", "Text."),
    ]
