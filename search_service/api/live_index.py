"""The index each worker serves, kept on the build the index folder's ``current`` link names.

Every worker process (and every replica sharing the index folder) runs a :class:`LiveIndex`: a
background thread that checks, once a :data:`FOLLOW_INTERVAL_SECONDS`, whether ``current`` now
points to another build than the one served, and if so loads it, checks it (manifest, checksums,
consistency) and swaps it in; a build it refuses is logged once and the old one keeps serving. So a
reload reaches every worker whichever one received ``POST /v1/admin/reload`` or ``SIGHUP``: those
only load the current build at once in the receiving worker, and say so.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from search_service import service
from search_service.indexing.artifact import current_build
from search_service.indexing.errors import IndexLoadError
from search_service.ranking.retriever import HybridRetriever
from search_service.settings import Settings

logger = logging.getLogger(__name__)

# How often each worker compares the current build with the one it serves: a readlink a second is
# free, and a second is well below the time a rebuild takes, so no one notices the lag.
FOLLOW_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class ReloadReport:
    """What one worker can truthfully say after loading the current build."""

    build: str
    pages: object
    chunks: object
    built_at: object
    content_hash: object
    worker: int

    def as_dict(self) -> dict[str, object]:
        """The JSON body of ``POST /v1/admin/reload``."""
        return {
            "status": "reloaded",
            "scope": "this worker",
            "build": self.build, "pages": self.pages, "chunks": self.chunks, "built_at": self.built_at,
            "content_hash": self.content_hash, "worker": self.worker,
            "other_workers": (f"every other worker and replica reading this index folder checks its current build "
                              f"every {FOLLOW_INTERVAL_SECONDS:g} s and switches to it once loaded (a few seconds); "
                              f"GET /readyz on each shows the build it serves"),
        }


class LiveIndex:
    """Holds ``app.state.retriever`` on the current build: on request, and by following ``current``."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._load_lock = threading.Lock()  # one load at a time: two would hold three indexes in memory
        self._refused: Path | None = None  # the last build following refused, not retried until current moves
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def retriever(self) -> HybridRetriever:
        """The retriever requests are answered from now."""
        retriever: HybridRetriever = self.app.state.retriever
        return retriever

    @property
    def index_dir(self) -> Path:
        """The index folder the served build came from (the configured one if it is not known)."""
        return self.retriever.index.index_dir or self.settings.index_dir

    def reload(self, *, only_if_new: bool = False) -> ReloadReport:
        """Load the build that is current on disk now, check it and swap it in for this worker
        (with ``only_if_new``, not when it is already the one served).

        Requests already running finish on the retriever they started with.

        Raises:
            IndexLoadError: the build is missing, broken or changed since it was written; the old one keeps serving.
        """
        with self._load_lock:
            current = current_build(self.index_dir)
            if only_if_new and (current is None or current == self.retriever.index.path):
                fresh = self.retriever  # another trigger loaded this build while we waited for the lock
            else:
                fresh = service.reload_retriever(self.settings, self.retriever)
            self.app.state.retriever = fresh
            self._refused = None
        manifest = fresh.index.manifest
        return ReloadReport(build=fresh.index.path.name, pages=manifest.get("pages"), chunks=manifest.get("chunks"),
                            built_at=manifest.get("built_at"), content_hash=manifest.get("content_hash"),
                            worker=os.getpid())

    def follow_once(self) -> bool:
        """Switch to the current build if it is not the one served; True when a new build was swapped in."""
        current = current_build(self.index_dir)
        if current is None or current in (self.retriever.index.path, self._refused):
            return False
        try:
            report = self.reload(only_if_new=True)
        except IndexLoadError as exc:
            self._refused = current
            logger.error("build %s refused, still serving %s: %s", current.name, self.retriever.index.path.name, exc)
            return False
        logger.warning("now serving build %s (%s pages, %s chunks)", report.build, report.pages, report.chunks)
        return True

    def _follow(self) -> None:
        while not self._stop.wait(FOLLOW_INTERVAL_SECONDS):
            try:
                self.follow_once()
            except Exception:  # the follower must outlive any surprise; the old index keeps serving
                logger.exception("checking for a new build of %s failed", self.index_dir)

    def start(self) -> None:
        """Follow the current build in a background thread, off the event loop."""
        self._thread = threading.Thread(target=self._follow, name="kb-follow-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following (at shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=FOLLOW_INTERVAL_SECONDS * 5)
