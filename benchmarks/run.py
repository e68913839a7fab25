"""Benchmarks: how close the system runs to the model's own speed, as ratios measured in one run.

    python -m benchmarks.run [--quick] [--skip-load] [--only STAGE,...] [--report-only]

Writes benchmarks/results.json, docs/benchmarks.md and docs/img/bench-*.png. Stages:
indexing, http, mkdocs, scale, onnx, load (http, onnx and load use the index the indexing
stage builds, so asking for them runs it too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import figures, measure, report, subject
from benchmarks.plots import write_plots

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("indexing", "http", "mkdocs", "scale", "onnx", "load")
NEEDS_MODEL = {"indexing", "http", "onnx"}
NEEDS_INDEX = {"http", "onnx", "load"}  # they read the index the indexing stage builds

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")


@dataclass(frozen=True)
class Outputs:
    """Where a run writes its results, its report and its plots."""

    results: Path = ROOT / "benchmarks" / "results.json"
    report: Path = ROOT / "docs" / "benchmarks.md"
    images: Path = ROOT / "docs" / "img"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller samples (about 3 minutes)")
    parser.add_argument("--skip-load", action="store_true", help="skip the load test")
    parser.add_argument("--only", default=",".join(STAGES), help="comma-separated stages to run (default: all)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report and plots from results.json")
    parser.add_argument("--out", type=Path, help="write results.json, benchmarks.md and img/ into this folder instead")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(sorted(unknown))}; choose from {', '.join(STAGES)}")
    return args


def stages_to_run(only: str, skip_load: bool) -> list[str]:
    """The stages asked for, plus indexing when a later stage needs its index, in run order."""
    wanted = set(only.split(",")) - ({"load"} if skip_load else set())
    if wanted & NEEDS_INDEX:
        wanted.add("indexing")
    return [stage for stage in STAGES if stage in wanted]


def measure_run(stages: list[str], plan: measure.RunPlan) -> dict[str, Any]:
    """Run the stages and return their raw measurements, with the date and the machine."""
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "quick": plan.quick,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    embedder = subject.load_embedder() if NEEDS_MODEL & set(stages) else None
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        work = Path(tmp)
        index_dir = work / "index"
        for stage in stages:
            if stage == "indexing":
                results["indexing"] = measure.measure_indexing(embedder, work)
            elif stage == "http":
                results["http"] = measure.measure_http(embedder, index_dir, work, plan)
            elif stage == "mkdocs":
                results["mkdocs"] = measure.measure_mkdocs(work, plan)
            elif stage == "scale":
                results["scale"] = measure.measure_scale(work, plan)
            elif stage == "onnx":
                results["onnx"] = measure.measure_onnx(embedder, work, plan)
            elif stage == "load":
                results["load"] = measure.measure_load(index_dir, work, plan)
    return results


def write_outputs(results: dict[str, Any], outputs: Outputs) -> None:
    """Results with their derived figures, the report and the plots."""
    outputs.results.parent.mkdir(parents=True, exist_ok=True)
    outputs.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    outputs.report.parent.mkdir(parents=True, exist_ok=True)
    outputs.report.write_text(report.render(results), encoding="utf-8")
    try:
        write_plots(results, outputs.images)
    except ImportError:  # matplotlib comes with the bench extras (scripts/setup bench)
        measure.say(f"wrote {outputs.results} and {outputs.report}; no plots: matplotlib is not installed")
        return
    measure.say(f"wrote {outputs.results}, {outputs.report} and plots in {outputs.images}")


def main(argv: list[str] | None = None) -> None:
    """Measure (or reload) the results, derive the figures, write results, report and plots."""
    args = parse_args(argv)
    outputs = Outputs()
    if args.out is not None:
        outputs = Outputs(args.out / "results.json", args.out / "benchmarks.md", args.out / "img")
    if args.report_only:
        raw = json.loads(outputs.results.read_text(encoding="utf-8"))
    else:
        raw = measure_run(stages_to_run(args.only, args.skip_load), measure.RunPlan.for_run(args.quick))
    write_outputs(figures.derive(raw), outputs)


if __name__ == "__main__":
    main()
