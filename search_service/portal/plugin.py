"""The ``kb-portal`` MkDocs plugin: mounts the playbooks, adds page headers and catalog pages.

Content is read through :mod:`search_service.content`, the same schema the linter and the
indexer use, so the portal does not depend on MkDocs-specific front matter handling.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import posixpath
from collections import defaultdict
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import BasePlugin
from mkdocs.structure import StructureItem
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.nav import Navigation, Section
from mkdocs.structure.pages import Page as SitePage
from mkdocs.utils import get_relative_url

from search_service.content import Audience, Page, PageType, Status, load_content
from search_service.portal.config import PortalConfig
from search_service.settings import get_settings

log = logging.getLogger("mkdocs.plugins.kb-portal")

ASSETS = Path(__file__).parent / "assets"
CSS_URI = "assets/kb-portal.css"
JS_URI = "assets/kb-ask.js"  # loaded by overrides/main.html
TYPE_TITLES = {
    PageType.playbook: "Playbooks",
    PageType.template: "Templates",
    PageType.lesson: "Lessons learned",
    PageType.faq: "FAQs",
    PageType.guide: "Guides",
}


def _esc(value: object) -> str:
    """HTML-escape a value, quotes included (it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def _link(from_uri: str, to_uri: str) -> str:
    """Relative Markdown link target from one source file to another."""
    return posixpath.relpath(to_uri, posixpath.dirname(from_uri) or ".")


def _page_table(pages: list[Page], from_uri: str, today: dt.date) -> str:
    """A Markdown table of pages (title link, summary, owner, last reviewed), by title."""
    rows = ["| Page | Summary | Owner | Last reviewed |", "| --- | --- | --- | --- |"]
    for page in sorted(pages, key=lambda p: p.meta.title.lower()):
        meta = page.meta
        title = _esc(meta.title).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")
        summary = _esc(meta.summary).replace("|", "\\|")
        reviewed = str(meta.last_reviewed or "—")
        if meta.is_stale(today):
            reviewed += ' <span class="kb-stale-flag">review overdue</span>'
        rows.append(f"| [{title}]({_link(from_uri, page.path)}) | {summary} | {_esc(meta.owner)} | {reviewed} |")
    return "\n".join(rows)


def _top_folder(item: StructureItem) -> str | None:
    """The top-level content folder a navigation item comes from (the first page's, for a section)."""
    if isinstance(item, Section):
        for child in item.children:
            name = _top_folder(child)
            if name:
                return name
        return None
    if isinstance(item, SitePage) and "/" in item.file.src_uri:
        return item.file.src_uri.split("/", 1)[0]
    return None


def _included_file(path: str, root: Path, config: MkDocsConfig) -> File:
    """A source file from outside docs_dir, built like one of the docs."""
    return File(path, str(root), config.site_dir, config.use_directory_urls, inclusion=InclusionLevel.INCLUDED)


# mkdocs' BasePlugin.__init_subclass__ (which checks the config class) has no annotations.
class PortalPlugin(BasePlugin[PortalConfig]):  # type: ignore[no-untyped-call]
    """Mount ``playbooks/`` into the site with headers, stale banners and catalog pages."""

    content_root: Path  # set in on_config, from the mkdocs.yml folder and the content_dir option

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.today = dt.date.today()

    # Resolve the content folder and "today"; add the header stylesheet.
    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        if not self.config.enabled:
            return config
        base = Path(config.config_file_path or ".").resolve().parent
        self.content_root = (base / self.config.content_dir).resolve()
        if self.config.today:
            self.today = dt.date.fromisoformat(self.config.today)
        else:
            self.today = get_settings().current_date()
        if CSS_URI not in config.extra_css:
            config.extra_css.append(CSS_URI)
        return config

    # Add every playbook page (and asset) plus the generated catalog pages to the site.
    def on_files(self, files: Files, config: MkDocsConfig) -> Files:
        if not self.config.enabled:
            return files
        content = load_content(self.content_root)
        for error in content.errors:
            log.warning("skipping %s (run `kb lint` for details)", error)
        self.pages = {}
        for page in content.pages:
            if page.meta.restricted and not self.config.include_restricted:
                log.info("leaving restricted page %s out of the site", page.path)
                continue
            if files.get_file_from_path(page.path) is not None:
                log.warning("%s exists in both docs and %s; the docs copy wins", page.path, self.content_root)
                continue
            self.pages[page.path] = page
            files.append(_included_file(page.path, self.content_root, config))
        for asset in sorted(self.content_root.rglob("*")):
            rel = asset.relative_to(self.content_root).as_posix()
            if asset.is_file() and asset.suffix != ".md" and not rel.startswith(".") and files.get_file_from_path(rel) is None:
                files.append(_included_file(rel, self.content_root, config))
        files.append(File.generated(config, CSS_URI, abs_src_path=str(ASSETS / "kb-portal.css")))
        files.append(File.generated(config, JS_URI, abs_src_path=str(ASSETS / "kb-ask.js")))
        if self.config.catalog:
            for uri, text in self.catalog_pages().items():
                files.append(File.generated(config, uri, content=text))
        return files

    def catalog_pages(self) -> dict[str, str]:
        """Markdown of the catalog pages, keyed by their site path."""
        pages = list(self.pages.values())
        by_type: dict[PageType, list[Page]] = defaultdict(list)
        by_audience: dict[Audience, list[Page]] = defaultdict(list)
        by_tag: dict[str, list[Page]] = defaultdict(list)
        for page in pages:
            by_type[page.meta.type].append(page)
            for audience in page.meta.audience:
                by_audience[audience].append(page)
            for tag in page.meta.tags:
                by_tag[tag].append(page)
        out: dict[str, str] = {}
        stale = sum(page.meta.is_stale(self.today) for page in pages)
        out["catalog/index.md"] = "\n".join(
            [
                "---\ntitle: Catalog\n---\n",
                f"Every page of the portal, {len(pages)} in all, listed three ways. "
                f"{stale} page(s) are overdue for review.\n",
                "- [By type](by-type.md): playbooks, templates, lessons learned, FAQs and guides",
                "- [By audience](by-audience.md): what executives, managers and practitioners should read",
                "- [By tag](by-tag.md): every topic tag and its pages",
            ]
        )
        for uri, title, groups in (
            ("catalog/by-type.md", "Catalog by type", [(TYPE_TITLES[t], by_type[t]) for t in PageType if by_type[t]]),
            ("catalog/by-audience.md", "Catalog by audience",
             [(a.value.capitalize(), by_audience[a]) for a in Audience if by_audience[a]]),
        ):
            parts = [f"---\ntitle: {title}\n---\n"]
            for heading, group in groups:
                parts.append(f"## {heading}\n\n{_page_table(group, uri, self.today)}\n")
            out[uri] = "\n".join(parts)
        # Tags list many pages many times: links only, the tables above carry the details.
        parts = ["---\ntitle: Catalog by tag\n---\n"]
        for tag in sorted(by_tag):
            links = ", ".join(f"[{_esc(p.meta.title)}]({_link('catalog/by-tag.md', p.path)})"
                              for p in sorted(by_tag[tag], key=lambda p: p.meta.title.lower()))
            parts.append(f"## {tag}\n\n{links}\n")
        out["catalog/by-tag.md"] = "\n".join(parts)
        return out

    # Prepend the header (type, owner, status, last reviewed) and the stale/deprecated banners.
    def on_page_markdown(self, markdown: str, page: SitePage, config: MkDocsConfig, files: Files) -> str:
        source = self.pages.get(page.file.src_uri)
        if source is None or page.file.generated_by:
            return markdown
        # Front-matter titles are data: themes print page titles unescaped in the navigation.
        page.meta["title"] = html.escape(source.meta.title, quote=False)
        # Material reads `status` as a navigation badge; only "deprecated" means the same thing there.
        if source.meta.status is Status.deprecated:
            page.meta["status"] = "deprecated"
        else:
            page.meta.pop("status", None)
        return self.page_header(source, page.file.src_uri, files) + markdown

    def page_header(self, source: Page, src_uri: str, files: Files) -> str:
        """HTML put above a page's Markdown: badges, summary, and the stale and deprecated banners."""
        meta = source.meta
        parts = [
            f'<span class="kb-badge kb-type-{_esc(meta.type.value)}">{_esc(meta.type.value)}</span>',
            f'<span class="kb-owner">Owner: <strong>{_esc(meta.owner or "unassigned")}</strong></span>',
            f'<span class="kb-status kb-status-{_esc(meta.status.value)}">Status: {_esc(meta.status.value)}</span>',
            '<span class="kb-reviewed">Last reviewed: '
            + (f'<time datetime="{meta.last_reviewed}">{meta.last_reviewed}</time>' if meta.last_reviewed else "never")
            + "</span>",
        ]
        if meta.audience:
            parts.append(f'<span class="kb-audience">For: {_esc(", ".join(a.value for a in meta.audience))}</span>')
        if meta.restricted:
            parts.append(f'<span class="kb-restricted">Restricted: {_esc(", ".join(meta.access or []))}</span>')
        out = [f'<div class="kb-page-header" data-kb-type="{_esc(meta.type.value)}" data-kb-path="{_esc(src_uri)}">\n'
               + "\n".join(parts) + "\n</div>\n"]
        if meta.summary:
            out.append(f'<p class="kb-summary">{_esc(meta.summary)}</p>\n')
        if meta.is_stale(self.today):
            out.append(
                '<div class="admonition warning kb-stale" role="note">\n'
                '<p class="admonition-title">Review overdue</p>\n'
                f"<p>This page was due for review on {meta.review_due()} and may be out of date. "
                f"Check with its owner, {_esc(meta.owner or 'the CoE')}, before relying on it.</p>\n</div>\n"
            )
        if meta.status is Status.deprecated:
            target = files.get_file_from_path(meta.superseded_by) if meta.superseded_by else None
            own = files.get_file_from_path(src_uri)
            replacement = ""
            if target is not None and own is not None:
                title = self.pages[target.src_uri].meta.title if target.src_uri in self.pages else target.src_uri
                href = get_relative_url(target.url, own.url)
                replacement = f' Use <a href="{_esc(href)}">{_esc(title)}</a> instead.'
            out.append(
                '<div class="admonition danger kb-deprecated" role="note">\n<p class="admonition-title">Deprecated</p>\n'
                f"<p>This page is no longer maintained.{replacement}</p>\n</div>\n"
            )
        return "\n".join(out) + "\n"

    # Order and title the top-level sections so a new employee finds their way.
    def on_nav(self, nav: Navigation, config: MkDocsConfig, files: Files) -> Navigation:
        if not self.config.enabled:
            return nav
        order: dict[str | None, int] = {name: i for i, name in enumerate(self.config.section_order)}
        for item in nav.items:
            name = _top_folder(item)
            if isinstance(item, Section) and name in self.config.section_titles:
                item.title = self.config.section_titles[name]

        def key(indexed: tuple[int, StructureItem]) -> tuple[int, int]:
            index, item = indexed
            if not isinstance(item, Section):
                return (-1, index)  # top-level pages (home, ask, contributing) first
            return (order.get(_top_folder(item), len(order)), index)

        nav.items[:] = [item for _, item in sorted(enumerate(nav.items), key=key)]
        return nav
