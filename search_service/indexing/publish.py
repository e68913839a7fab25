"""Publish stage of an index build: a written build folder becomes the live index, atomically.

A build is written into ``builds/.tmp-<id>``, renamed to ``builds/<id>`` and only then made
current by replacing the ``current`` symlink with ``rename(2)``, fsyncing each folder on the way,
so a build killed at any point leaves the previous index intact and loadable. Pruning keeps the
new build and the one it replaced (a service may still be reading it), chosen by name.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from search_service.indexing.artifact import BUILDS_DIR, CURRENT_LINK, LINK_PREFIX, UNFINISHED_PREFIX, fsync_dir

# Random hex digits after the timestamp, so two builds started in the same microsecond still differ.
BUILD_ID_SUFFIX_LENGTH = 6


@dataclass(frozen=True)
class StagedBuild:
    """A build folder being written, and where it goes when published."""

    index_dir: Path
    build_id: str

    @property
    def builds(self) -> Path:
        """The folder holding every build of the index."""
        return self.index_dir / BUILDS_DIR

    @property
    def folder(self) -> Path:
        """Where the build is written: a hidden name no loader or pruner takes for a finished build."""
        return self.builds / f"{UNFINISHED_PREFIX}{self.build_id}"

    @property
    def final(self) -> Path:
        """The build's folder once published."""
        return self.builds / self.build_id


def new_build_id() -> str:
    """A build name that sorts by time (UTC, to the microsecond) and is unique."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:BUILD_ID_SUFFIX_LENGTH]


def stage_build(index_dir: Path) -> StagedBuild:
    """Create an empty folder for a new build of ``index_dir``."""
    staged = StagedBuild(Path(index_dir), new_build_id())
    staged.folder.mkdir()
    return staged


def remove_unfinished_builds(index_dir: Path) -> None:
    """Delete the folders of builds whose writer was killed (call under the build lock)."""
    for leftover in (Path(index_dir) / BUILDS_DIR).glob(f"{UNFINISHED_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def prune_builds(builds: Path, keep: set[str]) -> None:
    """Delete every finished build but those named in ``keep`` (hidden, unfinished folders are left alone)."""
    for old in builds.iterdir():
        if not old.name.startswith(".") and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)


def publish_build(staged: StagedBuild, previous: Path | None) -> Path:
    """Make a fully written build the live one, then prune older builds.

    Args:
        staged: the build, every file written and fsynced, its folder too.
        previous: the build it replaces (kept, a service may still be reading it), if any.

    Returns:
        The published build folder.
    """
    os.rename(staged.folder, staged.final)
    fsync_dir(staged.builds)
    link_tmp = staged.index_dir / f"{LINK_PREFIX}{staged.build_id}"
    os.symlink(Path(BUILDS_DIR) / staged.build_id, link_tmp)
    os.replace(link_tmp, staged.index_dir / CURRENT_LINK)  # the atomic swap
    fsync_dir(staged.index_dir)
    # By name, not by sort order: builds finished within the same second used to sort at random.
    prune_builds(staged.builds, {staged.final.name} | ({previous.name} if previous is not None else set()))
    return staged.final
