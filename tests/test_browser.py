"""End-to-end: the portal in headless Chromium against a live `kb serve` on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PLAYBOOKS, ROOT, free_port, write_page

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
XSS_PAGE = """---
title: "Scanned forms with <img src=x onerror=window.__kbxss=1> markup"
summary: "Probe: <script>window.__kbxss=2</script>"
type: guide
owner: "@ai-coe/delivery"
last_reviewed: 2026-10-01
audience: [practitioners]
---

## Script tags hidden in scanned forms

Scanned supplier forms sometimes carry markup such as `<script>window.__kbxss=3</script>` in free-text fields; the
extraction pipeline must treat it as plain data.

```html
<script>window.__kbxss=4</script><img src=x onerror="window.__kbxss=5">
```
"""


def _start(cmd, env, url, log):
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start: {cmd}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def portal(tmp_path_factory, embedder):
    """A copy of the portal with one hostile page, built, indexed and served by `kb serve`."""
    from search_service.indexing.build import build_index

    project = tmp_path_factory.mktemp("portal")
    for name in ("docs", "overrides"):
        shutil.copytree(ROOT / name, project / name)
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(PLAYBOOKS, project / "playbooks")
    write_page(project / "playbooks", "delivery/scanned-forms-probe.md", XSS_PAGE)
    build_index(project / "playbooks", project / "index", embedder)
    port = free_port()
    env = {**os.environ, "KB_CONTENT_DIR": str(project / "playbooks"), "KB_INDEX_DIR": str(project / "index"),
           "KB_SITE_DIR": str(project / "site"), "HF_HUB_OFFLINE": "1", "NO_MKDOCS_2_WARNING": "1",
           "KB_DATABASE_URL": f"sqlite:///{project}/kb.sqlite3", "KB_USER_HASH_SECRET": "e2e"}
    log = open(project / "serve.log", "w")  # noqa: SIM115
    # `kb serve` builds the site (strict) from the copied project, then serves site + API.
    proc = subprocess.Popen(
        [sys.executable, "-m", "search_service.cli", "serve", "--port", str(port),
         "--config-file", str(project / "mkdocs.yml")],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(project))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("kb serve did not start:\n" + (project / "serve.log").read_text()[-3000:])
        time.sleep(0.5)
    yield {"url": url, "site": project / "site"}
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (scripts/test installs it: apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=False)
    context.close()
    assert errors == [], errors


def ask(page, question: str):
    box = page.locator(".kb-ask").first
    box.locator("input").fill(question)
    box.locator("input").press("Enter")
    page.wait_for_selector(".kb-ask .kb-answer:not(.kb-loading) .kb-answer-text, .kb-ask .kb-not-covered", timeout=60_000)
    return box


def test_ask_shows_answer_with_citation_that_lands_on_the_section(portal, page):
    page.goto(portal["url"] + "/")
    box = ask(page, "what are the steps to roll out a document processing solution?")
    assert box.locator(".kb-answer-text p").count() >= 3
    ARTIFACTS.mkdir(exist_ok=True)
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "home-answer.png"))
    citation = box.locator("a.kb-cite").first
    href = citation.get_attribute("href")
    assert "/delivery/document-processing-deployment/#steps" in href
    citation.click()
    page.wait_for_url("**/delivery/document-processing-deployment/#steps")
    heading = page.locator("h2#steps")
    assert heading.count() == 1 and heading.is_visible()
    assert page.locator(".kb-page-header").count() == 1


def test_thumbs_send_feedback(portal, page):
    page.goto(portal["url"] + "/ask/")
    box = ask(page, "who pays for the shared AI platform?")
    page.wait_for_selector(".kb-ask .kb-thumb", timeout=30_000)
    with page.expect_response(lambda r: r.url.endswith("/v1/feedback")) as response:
        box.locator('.kb-thumb[data-rating="up"]').click()
    assert response.value.status == 201
    assert "Thanks for the feedback." in box.locator(".kb-feedback").inner_text()


def test_search_as_you_type_shows_sections_with_highlighted_terms(portal, page):
    page.goto(portal["url"] + "/ask/")
    page.locator(".kb-ask input").type("who pays for the shared platform", delay=20)
    page.wait_for_selector(".kb-ask .kb-result", timeout=30_000)
    results = page.locator(".kb-ask .kb-result")
    assert results.count() >= 3
    assert results.first.locator("mark").count() >= 1
    assert "#" in results.first.locator("a.kb-result-title").get_attribute("href")


def test_not_covered_state_offers_nearest_pages(portal, page):
    page.goto(portal["url"] + "/ask/")
    box = ask(page, "how do I reset my VPN password?")
    assert box.locator(".kb-not-covered").is_visible()
    assert "Not covered" in box.locator(".kb-answer-title").inner_text()
    assert box.locator(".kb-suggestions a").count() >= 1


def test_content_and_answers_are_never_injected_as_html(portal, page):
    page.goto(portal["url"] + "/ask/")
    page.locator(".kb-ask input").type("script tags hidden in scanned supplier forms", delay=10)
    page.wait_for_selector(".kb-ask .kb-result", timeout=30_000)
    titles = page.locator(".kb-ask .kb-result-title").all_inner_texts()
    assert any("<img src=x onerror=window.__kbxss=1>" in t for t in titles), titles
    box = ask(page, "how should we treat script tags hidden in scanned supplier forms?")
    assert box.locator(".kb-answer img, .kb-answer script, .kb-results img, .kb-results script").count() == 0
    assert page.evaluate("typeof window.__kbxss") == "undefined"


def test_ask_about_this_page_is_scoped_to_the_page(portal, page):
    page.goto(portal["url"] + "/templates/evaluation-metrics/")
    section = page.locator(".kb-page-ask")
    section.locator("input").fill("what should we measure?")
    section.locator("input").press("Enter")
    page.wait_for_selector(".kb-page-ask .kb-answer-text, .kb-page-ask .kb-not-covered", timeout=60_000)
    assert "/templates/evaluation-metrics/" in section.locator("a.kb-cite").first.get_attribute("href")


def test_page_header_and_stale_banner_render(portal, page):
    page.goto(portal["url"] + "/strategy/build-buy-partner/")
    assert page.locator(".kb-page-header").is_visible()
    assert page.locator(".kb-stale").is_visible()


def test_search_falls_back_to_built_in_search_when_api_is_down(portal, page, tmp_path):
    # The same static site, served without the API.
    port = free_port()
    with open(tmp_path / "static.log", "w") as log:
        proc = _start([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                       "--directory", str(portal["site"])], dict(os.environ), f"http://127.0.0.1:{port}/", log)
    try:
        page.goto(f"http://127.0.0.1:{port}/ask/")
        page.locator(".kb-ask input").type("pilot funding", delay=10)
        page.wait_for_selector(".kb-fallback", timeout=30_000)
        page.locator(".kb-fallback-button").click()
        assert page.locator(".md-search__input").input_value() == "pilot funding"
        page.wait_for_function(
            "() => /\\d+ matching/.test(document.querySelector('.md-search-result__meta')?.textContent || '')",
            timeout=30_000)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
