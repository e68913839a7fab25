"""The two ways the index can fail a caller: it cannot be loaded, or it cannot be built now."""

from __future__ import annotations


class IndexLoadError(RuntimeError):
    """The index is missing, corrupt or does not match the configured model."""


class IndexBuildError(RuntimeError):
    """The index cannot be built now (e.g. another build holds the lock)."""
