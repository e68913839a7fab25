"""Serving with several worker processes, where ``kill -HUP <supervisor>`` reloads the index in each.

uvicorn's own supervisor answers SIGHUP by replacing every worker, one at a time, and aborts the
whole restart when a replacement is not ready in time (loading the model and index under load
easily takes that long), leaving the old index in service. Here the supervisor forwards SIGHUP to
its workers instead: each loads the current build in a background thread and swaps it in
(``api/app.py``), without a restart; workers also follow the build by themselves
(:mod:`search_service.api.live_index`).
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

logger = logging.getLogger("uvicorn.error")  # the supervisor's own messages go to uvicorn's log

APP_FACTORY = "search_service.api.app:create_app"


class ReloadingSupervisor(Multiprocess):
    """uvicorn's multi-process supervisor, with SIGHUP forwarded to the workers instead of restarting them."""

    def handle_hup(self) -> None:
        """Ask every live worker to reload the current build."""
        pids = [process.pid for process in self.processes if process.pid is not None and process.exitcode is None]
        logger.info("Received SIGHUP, asking workers %s to reload the index.", pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:  # it died meanwhile; keep_subprocess_alive replaces it
                continue


def serve_workers(workers: int, **options: Any) -> None:
    """Serve the app (built in each worker by :func:`~search_service.api.app.create_app`) with ``workers``
    processes; ``options`` are uvicorn's (:func:`~search_service.api.server.uvicorn_options`)."""
    config = uvicorn.Config(APP_FACTORY, factory=True, workers=workers, **options)
    socket = config.bind_socket()
    ReloadingSupervisor(config, sockets=[socket]).run()
