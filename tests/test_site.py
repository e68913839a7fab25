"""The portal: `mkdocs build --strict` with our plugin, checked in the generated HTML."""

from __future__ import annotations

import os

import pytest
from bs4 import BeautifulSoup

from search_service.content import load_content
from search_service.indexing.chunking import iter_headings
from tests.conftest import PLAYBOOKS, ROOT, TODAY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the real portal strictly into a temporary folder."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    from search_service.settings import get_settings

    os.environ["KB_TODAY"] = TODAY
    get_settings.cache_clear()
    out = tmp_path_factory.mktemp("site")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        build(load_config(str(ROOT / "mkdocs.yml"), site_dir=str(out), strict=True))
    finally:
        os.chdir(cwd)
        get_settings.cache_clear()
    return out


def soup(site, url_path: str) -> BeautifulSoup:
    return BeautifulSoup((site / url_path / "index.html").read_text(encoding="utf-8"), "html.parser")


def test_page_header_shows_type_owner_status_and_review_date(site):
    page = soup(site, "delivery/pilot-to-production")
    header = page.select_one(".kb-page-header")
    assert header is not None
    text = header.get_text(" ", strip=True)
    assert "playbook" in text and "@ai-coe/delivery" in text and "published" in text
    assert header.select_one("time")["datetime"].startswith("2026-")
    assert page.select_one(".kb-stale") is None


def test_stale_page_shows_banner(site):
    page = soup(site, "strategy/build-buy-partner")  # reviewed 2026-01-12, every 180 days
    banner = page.select_one(".kb-stale")
    assert banner is not None
    assert "2026-07-11" in banner.get_text()


def test_deprecated_page_points_to_its_successor(site):
    page = soup(site, "delivery/pilot-checklist-2024")
    banner = page.select_one(".kb-deprecated")
    assert banner is not None
    assert banner.select_one("a")["href"].rstrip("/").endswith("designing-a-pilot-for-scale")


def test_catalog_pages_list_every_public_page(site):
    content = load_content(PLAYBOOKS)
    public = [p for p in content.pages if not p.meta.restricted]
    by_type = soup(site, "catalog/by-type")
    links = {a["href"] for a in by_type.select("article table a")}
    assert len(links) == len(public)
    assert by_type.find(id="playbooks") is not None and by_type.find(id="templates") is not None
    by_tag = soup(site, "catalog/by-tag")
    some_tag = public[0].meta.tags[0]
    assert by_tag.find(id=some_tag) is not None
    assert soup(site, "catalog/by-audience").find(id="executives") is not None


def test_restricted_pages_are_left_out_of_the_static_site(site):
    restricted = [p for p in load_content(PLAYBOOKS).pages if p.meta.restricted]
    assert restricted
    for page in restricted:
        assert not (site / page.url / "index.html").exists()
        assert page.meta.title not in (site / "search" / "search_index.json").read_text(encoding="utf-8")


def test_chunk_anchors_equal_heading_ids_in_built_site(site):
    """Every anchor the indexer computes exists as an id on the built page, and vice versa."""
    for page in load_content(PLAYBOOKS).pages:
        if page.meta.restricted:
            continue
        html = soup(site, page.url.rstrip("/"))
        article = html.select_one("article")
        built = [h["id"] for h in article.find_all(["h2", "h3", "h4", "h5", "h6"]) if h.has_attr("id")]
        ours = [h.anchor for h in iter_headings(page.body) if h.level > 1]
        assert ours == built, page.path


def test_navigation_starts_with_getting_started(site):
    home = BeautifulSoup((site / "index.html").read_text(encoding="utf-8"), "html.parser")
    items = home.select("nav.md-nav--primary > ul > li")
    pages = [li.get_text(" ", strip=True) for li in items if "md-nav__item--section" not in li.get("class", [])]
    sections = [
        li.select_one("label").get_text(" ", strip=True) or li.select_one("a").get_text(" ", strip=True)
        for li in items if "md-nav__item--section" in li.get("class", [])
    ]
    assert pages[0].startswith("Home")
    assert sections[:3] == ["Getting started", "Strategy", "Delivery"]
    assert "MLOps" in sections and "FAQ" in sections and sections[-1] == "Catalog"
