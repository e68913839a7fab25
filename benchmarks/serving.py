"""A live ``kb serve`` in a subprocess, and timed requests against it over loopback HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx
import numpy as np

# Loading the model and the index takes 20-60 s here; five minutes means the service is broken.
STARTUP_TIMEOUT_S = 300
# Requests to a busy 2-core service can queue for seconds; two minutes means something hangs.
REQUEST_TIMEOUT_S = 120
TOP_K = 10  # hits per search, the portal's default


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile_ms(seconds: list[float], q: float) -> float:
    """The ``q``-th percentile of durations in seconds, in milliseconds, rounded to 0.01 ms."""
    return round(float(np.percentile(np.array(seconds) * 1000, q)), 2)


class Service:
    """`kb serve --no-build` in a subprocess, for measurements over real HTTP."""

    def __init__(self, index_dir: Path, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "KB_INDEX_DIR": str(index_dir), "KB_SITE_DIR": str(work / "no-site"),
                    "KB_DATABASE_URL": f"sqlite:///{work}/bench-{self.port}.sqlite3", "KB_USER_HASH_SECRET": "bench",
                    "KB_RATE_LIMIT_PER_MINUTE": "100000000"}
        self.log_path = work / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Service:
        with open(self.log_path, "w") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen([sys.executable, "-m", "search_service.cli", "serve", "--no-build",
                                          "--port", str(self.port)], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        self._stop()
        raise RuntimeError(f"service did not start, see {self.log_path}")

    def rss_mb(self) -> float:
        """Resident memory of the service process, in MiB."""
        import psutil

        assert self.proc is not None, "the service is not running"
        return float(psutil.Process(self.proc.pid).memory_info().rss / 2**20)

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._stop()


def timed_requests(url: str, questions: list[str], n: int, *, ask: bool = False) -> list[float]:
    """Seconds for each of ``n`` sequential searches (or asks), cycling through ``questions``."""
    out = []
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        for i in range(n):
            question = questions[i % len(questions)]
            started = time.perf_counter()
            if ask:
                response = client.post("/v1/ask", json={"question": question})
            else:
                response = client.get("/v1/search", params={"q": question, "k": TOP_K})
            out.append(time.perf_counter() - started)
            response.raise_for_status()
    return out


def concurrent_requests(url: str, questions: list[str], clients: int, per_client: int) -> list[float]:
    """Seconds for each search of ``clients`` concurrent clients sending ``per_client`` searches each."""
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
            for j in range(per_client):
                question = questions[(i * per_client + j) % len(questions)]
                started = time.perf_counter()
                response = await client.get("/v1/search", params={"q": question, "k": TOP_K})
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(clients)))

    asyncio.run(main())
    return latencies
