"""Content gaps: group unanswered and down-rated questions by meaning and route them to owners."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from search_service.content import Page, due_for_review
from search_service.ranking.retriever import ANONYMOUS, HybridRetriever, chunk_url
from search_service.store import Store

# Questions whose embeddings are closer than this (cosine similarity) end up in one group.
SIMILARITY = 0.4
# Characters with a meaning in Markdown (emphasis, links, images, code, headings, lists, tables, escapes)
# that both CommonMark and Python-Markdown (what MkDocs renders with) let a backslash escape.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>])")


@dataclass
class NearestPage:
    path: str
    title: str
    owner: str
    url: str


@dataclass
class GapCluster:
    """One group of questions the playbooks failed, with where to route it."""

    label: str  # the most central question
    count: int
    unanswered: int
    rated_down: int
    examples: list[str]
    nearest_pages: list[NearestPage]
    owners: list[str]
    trend: dict[str, int]  # ISO week -> questions
    first_seen: str
    last_seen: str
    questions: list[str] = field(default_factory=list)


def cluster_vectors(vectors: np.ndarray, similarity: float = SIMILARITY) -> list[list[int]]:
    """Average-linkage agglomerative clusters (cosine); biggest first."""
    n = len(vectors)
    if n == 0:
        return []
    if n == 1:
        return [[0]]
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(vectors, method="average", metric="cosine")
    labels = fcluster(tree, t=1.0 - similarity, criterion="distance")
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def find_gaps(store: Store, retriever: HybridRetriever, *, days: int | None = None,
              similarity: float = SIMILARITY) -> list[GapCluster]:
    """Clusters of failed questions in the last ``days`` (all time when None), biggest first."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days) if days else None
    rows = store.gap_questions(since)
    if not rows:
        return []
    questions = [log.question for log, _ in rows]
    vectors = retriever.embedder.embed_documents(questions)
    clusters = []
    for members in cluster_vectors(vectors, similarity):
        centroid = vectors[members].mean(axis=0)
        order = sorted(members, key=lambda i: -float(vectors[i] @ centroid))
        label = questions[order[0]]
        # Analytics sees only public pages: a restricted page never shows up in a report.
        result = retriever.search(label, k=3, viewer=ANONYMOUS)
        nearest = [NearestPage(h.page_path, h.meta.title, h.meta.owner, chunk_url(h.best)) for h in result.hits]
        owners = list(dict.fromkeys(p.owner for p in nearest if p.owner))
        weeks: Counter[str] = Counter()
        for i in members:
            created = rows[i][0].created_at
            year, week, _ = created.isocalendar()
            weeks[f"{year}-W{week:02d}"] += 1
        times = sorted(rows[i][0].created_at for i in members)
        clusters.append(GapCluster(
            label=label, count=len(members),
            unanswered=sum(rows[i][1] == "unanswered" for i in members),
            rated_down=sum(rows[i][1] == "rated down" for i in members),
            examples=list(dict.fromkeys(questions[i] for i in order))[:3],
            nearest_pages=nearest, owners=owners, trend=dict(sorted(weeks.items())),
            first_seen=times[0].isoformat(timespec="seconds"), last_seen=times[-1].isoformat(timespec="seconds"),
            questions=[questions[i] for i in order],
        ))
    return clusters


@dataclass
class StalePage:
    """A public page past its review date."""

    path: str
    title: str
    owner: str
    due: str
    days_overdue: int


@dataclass
class GapsReport:
    """What the playbooks fail to answer, and which public pages are due for review."""

    generated: str
    clusters: list[GapCluster]
    stale_pages: list[StalePage]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the shape `kb gaps --format json` and the API return)."""
        return asdict(self)


def gaps_report(clusters: list[GapCluster], retriever: HybridRetriever, today: dt.date) -> GapsReport:
    """The report: gap clusters plus public pages due for review."""
    pages = [Page(path=path, meta=meta, body="") for path, meta in retriever.index.pages.items() if meta.access is None]
    stale = [StalePage(d.page.path, d.page.meta.title, d.page.meta.owner, str(d.due), d.days_overdue)
             for d in due_for_review(pages, today)]
    return GapsReport(generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), clusters=clusters,
                      stale_pages=stale)


def markdown_text(text: str) -> str:
    """Untrusted text (a user's question) as literal Markdown: one line, HTML tags as entities, Markdown
    syntax backslash-escaped, so a rendered report shows ``<script>`` or ``[x](javascript:...)`` as typed."""
    one_line = " ".join(text.split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def _cluster_markdown(n: int, c: GapCluster) -> list[str]:
    owners = ", ".join(c.owners) or "no owner found"
    lines = [f"## {n}. {markdown_text(c.label)}", "",
             f"**{c.count} question(s)**: {c.unanswered} unanswered, {c.rated_down} rated down; "
             f"first {c.first_seen[:10]}, last {c.last_seen[:10]}. Route to: **{owners}**.", "",
             "Examples:", ""]
    lines += [f"- {markdown_text(q)}" for q in c.examples]
    lines += ["", "Nearest pages:", ""]
    lines += [f"- [{p.title}]({p.url}) ({p.owner or 'no owner'})" for p in c.nearest_pages]
    lines += ["", "Trend: " + ", ".join(f"{week}: {count}" for week, count in c.trend.items()), ""]
    return lines


def report_markdown(report: GapsReport) -> str:
    """The report as Markdown an author can act on."""
    lines = ["# Content gaps", "", f"Generated {report.generated}.", ""]
    if not report.clusters:
        lines += ["No unanswered or down-rated questions in this period.", ""]
    for n, cluster in enumerate(report.clusters, start=1):
        lines += _cluster_markdown(n, cluster)
    lines += ["## Pages due for review", ""]
    if report.stale_pages:
        lines += ["| Page | Owner | Due | Days overdue |", "| --- | --- | --- | --- |"]
        lines += [f"| {p.title} (`{p.path}`) | {p.owner} | {p.due} | {p.days_overdue} |" for p in report.stale_pages]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def report_html(report: GapsReport) -> str:
    """The report as a standalone HTML page (every string escaped)."""
    e = html.escape
    parts = ["<!doctype html><meta charset=utf-8><title>Content gaps</title><h1>Content gaps</h1>",
             f"<p>Generated {e(report.generated)}.</p>"]
    for c in report.clusters:
        parts.append(f"<h2>{e(c.label)}</h2><p>{c.count} question(s), {c.unanswered} unanswered, "
                     f"{c.rated_down} rated down. Route to: <strong>{e(', '.join(c.owners) or 'no owner found')}</strong></p>")
        parts.append("<ul>" + "".join(f"<li>{e(q)}</li>" for q in c.examples) + "</ul>")
        parts.append("<p>Nearest pages:</p><ul>" + "".join(
            f'<li><a href="{e(p.url)}">{e(p.title)}</a> ({e(p.owner)})</li>' for p in c.nearest_pages) + "</ul>")
    parts.append("<h2>Pages due for review</h2><ul>" + "".join(
        f"<li>{e(p.title)} — {e(p.owner)}, due {e(p.due)}</li>" for p in report.stale_pages) + "</ul>")
    return "\n".join(parts)
