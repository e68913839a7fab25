"""AI CoE knowledge base: content model, portal plugin, indexer and search service."""

from __future__ import annotations

__version__ = "0.1.0"
