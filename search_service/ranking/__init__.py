"""Ranking stage: hybrid retrieval (dense + keyword fusion, late-interaction re-ranking), filters and access."""
