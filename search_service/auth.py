"""Who may see what: API tokens, SSO-proxy identities, and the loopback-only anonymous mode."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from search_service.store import ApiToken, Store, utcnow

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "kb_"
# Domain separation: the same secret also keys the pseudonymous user ids (Store.hash_user).
TOKEN_HASH_LABEL = b"kb-api-token\0"


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


def _hash(store: Store, token: str) -> str:
    """HMAC-SHA256 of a token keyed with the store's secret (KB_USER_HASH_SECRET): a copy of the
    token table alone lets no one check a guessed token offline."""
    return hmac.new(store.secret, TOKEN_HASH_LABEL + token.encode(), hashlib.sha256).hexdigest()


def _legacy_hash(token: str) -> str:
    """The unkeyed SHA-256 tokens were stored with before keyed hashes; upgraded on first use."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, name: str, groups: list[str], *, admin: bool = False) -> str:
    """Create a token and return it; it is shown once, only its hash is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.session.begin() as session:
        if session.get(ApiToken, name) is not None:
            raise ValueError(f"a token named {name!r} already exists; revoke it or choose another name")
        session.add(ApiToken(name=name, token_hash=_hash(store, token), groups=json.dumps(sorted(set(groups))), admin=admin))
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
    digest = _hash(store, token)
    with store.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None:
        row = _upgrade_legacy_token(store, token, digest)
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        raise AuthError(401, "invalid or revoked token")
    return f"token:{row.name}", frozenset(json.loads(row.groups)), row.admin


def _upgrade_legacy_token(store: Store, token: str, digest: str) -> ApiToken | None:
    """A token stored with the old unkeyed hash, re-stored under its keyed hash; None when there is none.

    Tokens keep working across the upgrade, and each unkeyed hash leaves the table on its first use
    (`kb token list` cannot tell them apart: re-issue tokens to be rid of unused ones at once).
    """
    with store.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _legacy_hash(token)))
    if row is None:
        return None
    try:
        with store.session.begin() as session:
            stored = session.get(ApiToken, row.name)
            if stored is not None:
                stored.token_hash = digest
    except SQLAlchemyError as exc:  # a read-only store still authenticates; the upgrade waits for the next use
        logger.warning("could not re-store token %r under its keyed hash: %s", row.name, exc)
    row.token_hash = digest
    return row


def _trusted(host: str, trusted: str) -> bool:
    """True when ``host`` is an IP inside one of the comma-separated networks in ``trusted``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    for entry in filter(None, (e.strip() for e in trusted.split(","))):
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _without_port(entry: str) -> str:
    """An X-Forwarded-For entry without a port (``203.0.113.5:51234``, ``[2001:db8::1]:443``)."""
    if entry.startswith("[") and "]" in entry:
        return entry[1:entry.index("]")]
    if entry.count(":") == 1:
        return entry.split(":", 1)[0]
    return entry


def client_address(peer: str, forwarded_for: str | None, trusted_proxies: str) -> str:
    """The address a request comes from: the socket peer, unless that peer is a trusted proxy.

    Behind a trusted proxy it is the right-most ``X-Forwarded-For`` entry the proxies did not add
    themselves (entries to its left are whatever the client chose to send). Never a header from an
    untrusted peer, so rotating ``X-Forwarded-For`` cannot change who a request counts as.
    """
    if not forwarded_for or not _trusted(peer, trusted_proxies):
        return peer
    address = peer
    for entry in reversed([_without_port(e.strip()) for e in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(entry)
        except ValueError:
            break  # junk in the chain: the last trusted hop is all that can be vouched for
        address = entry
        if not _trusted(entry, trusted_proxies):
            break
    return address


# The headers an SSO proxy vouches for; each must arrive exactly once.
IDENTITY_HEADERS = ("x-forwarded-user", "x-forwarded-email", "x-forwarded-preferred-username", "x-forwarded-groups")


def identity_from_proxy(headers: Mapping[str, str], client_host: str, trusted_proxies: str) -> tuple[str, frozenset[str]]:
    """(user id, groups) from oauth2-proxy style headers, only when the request comes from a trusted proxy.

    ``client_host`` must be the socket peer, never an address taken from a forwarding header.
    """
    if not _trusted(client_host, trusted_proxies):
        raise AuthError(403, "requests must come through the SSO proxy (this address is not in KB_TRUSTED_PROXIES)")
    getlist = getattr(headers, "getlist", None)
    if getlist is not None and any(len(getlist(name)) > 1 for name in IDENTITY_HEADERS):
        # A proxy that adds its header after the client's would otherwise let the client's copy win.
        raise AuthError(400, "the request carries an identity header more than once; the SSO proxy must replace them")
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
