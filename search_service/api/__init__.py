"""FastAPI service: the search API and the built site on one port."""

from .app import create_app

__all__ = ["create_app"]
