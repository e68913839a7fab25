"""Shared dependencies of the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from search_service.api.metrics import Metrics
from search_service.ranking.retriever import HybridRetriever, Viewer
from search_service.settings import Settings
from search_service.store import Store


@dataclass(frozen=True)
class Identity:
    """Who is calling: a user id (hashed before storage), their groups, and whether they administer."""

    user_id: str
    groups: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False

    @property
    def viewer(self) -> Viewer:
        return Viewer(groups=self.groups)

    def require_admin(self) -> None:
        if not self.admin:
            raise HTTPException(status_code=403, detail="this needs an administrator (a member of the admin group)")


def get_retriever(request: Request) -> HybridRetriever:
    value: HybridRetriever = request.app.state.retriever
    return value


def get_app_settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def get_store(request: Request) -> Store:
    value: Store = request.app.state.store
    return value


def get_metrics(request: Request) -> Metrics:
    value: Metrics = request.app.state.metrics
    return value


def get_identity(request: Request) -> Identity:
    """Set by the guard middleware (``api/security.py``) for every /v1 request."""
    identity: Identity | None = getattr(request.state, "identity", None)
    if identity is None:  # only reachable if a /v1 route were mounted outside the guard
        raise HTTPException(status_code=401, detail="not authenticated")
    return identity


RetrieverDep = Annotated[HybridRetriever, Depends(get_retriever)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
IdentityDep = Annotated[Identity, Depends(get_identity)]
