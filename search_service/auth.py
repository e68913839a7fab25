"""Who may see what: API tokens, SSO-proxy identities, and the loopback-only anonymous mode."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select

from search_service.store import ApiToken, Store, utcnow

TOKEN_PREFIX = "kb_"


class AuthError(Exception):
    """A request without valid credentials (HTTP 401) or from an untrusted proxy (HTTP 403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TokenInfo:
    """An API token as `kb token list` shows it (never the token itself)."""

    name: str
    groups: list[str]
    admin: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def _hash(token: str) -> str:
    """SHA-256 of a token: enough for random 32-byte tokens, which no dictionary attack can guess."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, name: str, groups: list[str], *, admin: bool = False) -> str:
    """Create a token and return it; it is shown once, only its hash is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.session.begin() as session:
        if session.get(ApiToken, name) is not None:
            raise ValueError(f"a token named {name!r} already exists; revoke it or choose another name")
        session.add(ApiToken(name=name, token_hash=_hash(token), groups=json.dumps(sorted(set(groups))), admin=admin))
    return token


def list_tokens(store: Store) -> list[TokenInfo]:
    """Every token, revoked ones included, ordered by name."""
    with store.session() as session:
        rows = session.scalars(select(ApiToken).order_by(ApiToken.name)).all()
    return [TokenInfo(r.name, json.loads(r.groups), r.admin, r.created_at, r.revoked_at) for r in rows]


def revoke_token(store: Store, name: str) -> None:
    """Mark a token revoked (revoking twice keeps the first time); raises KeyError for an unknown name."""
    with store.session.begin() as session:
        row = session.get(ApiToken, name)
        if row is None:
            raise KeyError(f"no token named {name!r}")
        row.revoked_at = row.revoked_at or utcnow()


def identity_from_token(store: Store, header: str | None) -> tuple[str, frozenset[str], bool]:
    """(user id, groups, admin) for an ``Authorization: Bearer`` header; raises AuthError."""
    if not header or not header.lower().startswith("bearer "):
        raise AuthError(401, "missing bearer token: send 'Authorization: Bearer <token>' (create one with `kb token create`)")
    token = header[7:].strip()
    digest = _hash(token)
    with store.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        raise AuthError(401, "invalid or revoked token")
    return f"token:{row.name}", frozenset(json.loads(row.groups)), row.admin


def _trusted(host: str, trusted: str) -> bool:
    """True when ``host`` is an IP inside one of the comma-separated networks in ``trusted``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in filter(None, (e.strip() for e in trusted.split(","))):
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def identity_from_proxy(headers: Mapping[str, str], client_host: str, trusted_proxies: str) -> tuple[str, frozenset[str]]:
    """(user id, groups) from oauth2-proxy style headers, only when the request comes from a trusted proxy."""
    if not _trusted(client_host, trusted_proxies):
        raise AuthError(403, "requests must come through the SSO proxy (this address is not in KB_TRUSTED_PROXIES)")
    user = headers.get("x-forwarded-user") or headers.get("x-forwarded-email") or headers.get("x-forwarded-preferred-username")
    if not user:
        raise AuthError(401, "the SSO proxy sent no X-Forwarded-User header")
    groups = frozenset(g.strip() for g in (headers.get("x-forwarded-groups") or "").split(",") if g.strip())
    return f"sso:{user}", groups


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
