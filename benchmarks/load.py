"""Bounded load test on loopback: N concurrent clients mixing /v1/search and /v1/ask for T seconds.

    python -m benchmarks.load --url http://127.0.0.1:8000 --clients 32 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

import httpx
import numpy as np

QUESTIONS = [
    "who pays for the shared AI platform?", "how do we decide whether a pilot can scale?",
    "what goes into a model documentation card?", "how often should models be re-reviewed?",
    "our pilot works but never reaches production", "what KPIs show we are scaling AI?",
    "how do I get help from the CoE?", "what are the steps to deploy document processing?",
    "how do I reset my VPN password?", "what training do managers get?",
]


async def _client(url: str, deadline: float, ask_share: float, results: dict[str, Any], seed: int,
                  headers: dict[str, str]) -> None:
    """One client: random questions, an ask with probability ``ask_share``, until the deadline."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        while time.monotonic() < deadline:
            question = rng.choice(QUESTIONS)
            endpoint = "ask" if rng.random() < ask_share else "search"
            started = time.perf_counter()
            try:
                if endpoint == "ask":
                    response = await client.post("/v1/ask", json={"question": question})
                else:
                    response = await client.get("/v1/search", params={"q": question, "k": 10})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            results[endpoint]["latency"].append(time.perf_counter() - started)
            if not ok:
                results[endpoint]["errors"] += 1


def run_load(url: str, *, clients: int = 32, duration: float = 60.0, ask_share: float = 0.3,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the load and return request counts, errors and p50/p99 latencies (ms) per endpoint."""
    results: dict[str, Any] = {name: {"latency": [], "errors": 0} for name in ("search", "ask")}
    deadline = time.monotonic() + duration

    async def main() -> None:
        await asyncio.gather(*(_client(url, deadline, ask_share, results, i, headers or {}) for i in range(clients)))

    asyncio.run(main())
    summary: dict[str, Any] = {"clients": clients, "duration_s": duration, "ask_share": ask_share}
    for name, data in results.items():
        latency = np.array(data["latency"]) * 1000
        summary[name] = {
            "requests": int(latency.size), "errors": data["errors"],
            "p50_ms": round(float(np.percentile(latency, 50)), 1) if latency.size else None,
            "p99_ms": round(float(np.percentile(latency, 99)), 1) if latency.size else None,
        }
    summary["errors"] = sum(results[n]["errors"] for n in results)
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--ask-share", type=float, default=0.3)
    args = parser.parse_args()
    if not args.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        parser.error("the load test only targets loopback addresses")
    print(json.dumps(run_load(args.url, clients=args.clients, duration=args.duration, ask_share=args.ask_share), indent=2))
