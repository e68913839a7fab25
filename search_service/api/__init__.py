"""FastAPI service: the search API and the built site on one port."""

from search_service.api.app import create_app

__all__ = ["create_app"]
