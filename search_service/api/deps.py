"""Shared dependencies of the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..retrieval import HybridRetriever
from ..settings import Settings


def get_retriever(request: Request) -> HybridRetriever:
    return request.app.state.retriever


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


RetrieverDep = Annotated[HybridRetriever, Depends(get_retriever)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
