"""The feedback and analytics store: SQLAlchemy 2, migrated with Alembic.

A SQLite file is the embedded default; point ``KB_DATABASE_URL`` at PostgreSQL when several
service replicas share one store. User ids are never stored: only an HMAC of them with a
secret (``KB_USER_HASH_SECRET``).

The store fails loudly: a database that cannot take a write (stopped, read-only, its SQLite file
deleted or replaced by something that is not a database) raises :class:`StoreUnavailable`, which the
API turns into a 503, and :meth:`Store.check_writable` tells readiness so. Nothing is acknowledged
that did not reach the database: each SQLite connection opens the file at its path, which must exist
(``mode=rw``), so a deleted file is never written to through a connection opened before it went.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    column,
    create_engine,
    delete,
    event,
    func,
    select,
    table,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from search_service.settings import Settings

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
# Answer ids whose ask log failed, remembered per process so feedback on them can say why it cannot be
# stored (instead of a bare "no answer with id"); old ones are forgotten past this many.
UNLOGGED_ANSWERS_KEPT = 10_000
# Alembic's own table (one row), written to as a no-op to test that the database takes writes.
_ALEMBIC_VERSION = table("alembic_version", column("version_num"))


class Base(DeclarativeBase):
    """The declarative base of every table; its metadata is what Alembic migrates."""


class GapReason(StrEnum):
    """Why a logged question counts as a content gap (a StrEnum: it equals its string value)."""

    unanswered = "unanswered"
    rated_down = "rated down"


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC (the default of every timestamp column)."""
    return dt.datetime.now(dt.UTC)


class AskLog(Base):
    """One /v1/ask request (the answer id is the primary key)."""

    __tablename__ = "ask_log"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    question: Mapped[str] = mapped_column(Text)
    answered: Mapped[bool] = mapped_column(Boolean, index=True)
    confidence: Mapped[float] = mapped_column(Float)
    cited_pages: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of page paths
    latency_ms: Mapped[float] = mapped_column(Float)
    mode: Mapped[str] = mapped_column(String(16))
    fallback: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_hash: Mapped[str] = mapped_column(String(64), index=True)


class Feedback(Base):
    """A rating of an answer; one per answer (a second submission updates it)."""

    __tablename__ = "feedback"

    answer_id: Mapped[str] = mapped_column(String(32), ForeignKey("ask_log.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    rating: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str] = mapped_column(Text, default="")
    user_hash: Mapped[str] = mapped_column(String(64))


class ApiToken(Base):
    """A bearer token for `KB_AUTH=token`; only its HMAC-SHA256 (keyed with the store's secret) is stored."""

    __tablename__ = "api_token"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    groups: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RateCounter(Base):
    """Requests one rate-limit bucket made in one fixed time window, shared by every worker and replica."""

    __tablename__ = "rate_counter"

    bucket: Mapped[str] = mapped_column(String(64), primary_key=True)  # HMAC of the identity or address
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)  # epoch seconds
    hits: Mapped[int] = mapped_column(Integer, default=0)


class UnknownAnswer(LookupError):
    """Feedback for an answer id that was never logged (or has been purged)."""


class UnloggedAnswer(LookupError):
    """Feedback for an answer this process gave while the database could not log it."""


class NotYourAnswer(Exception):
    """Feedback on an answer given to someone else: only the person who asked may rate it."""


class StoreUnavailable(RuntimeError):
    """The database cannot carry out a read or write now; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"feedback database unavailable: {reason}")


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL (None for PostgreSQL and in-memory SQLite)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") or path.startswith("file:") else Path(path)


def _open_existing_file_only(engine: Engine, path: Path) -> None:
    """Open ``path`` read-write through SQLite's URI form with ``mode=rw``: a missing file is an error, not
    a new empty database that would quietly take the writes meant for the lost one."""

    @event.listens_for(engine, "do_connect")
    def _connect_rw(_dialect: object, _record: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]) -> None:
        cargs[:] = [f"file:{quote(str(path.resolve()))}?mode=rw"]
        cparams["uri"] = True


# What a 503 from an unavailable database suggests as a wait: an outage is rarely shorter.
STORE_RETRY_AFTER_SECONDS = 30


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """``exc`` as a StoreUnavailable when it says the database cannot be used now (server down, read-only,
    not a database, file gone); None for anything else. Integrity errors are ours (bugs or races), not an
    unavailable database."""
    if isinstance(exc, StoreUnavailable):
        return exc
    if isinstance(exc, sa_exc.IntegrityError) or not isinstance(exc, (sa_exc.DBAPIError, sqlite3.Error)):
        return None
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return StoreUnavailable(lines[0] if lines else type(exc).__name__)


@contextmanager
def _available(store_url: str) -> Iterator[None]:
    """Raise the driver's "database unusable" errors as StoreUnavailable (logged once, here)."""
    try:
        yield
    except (sa_exc.DBAPIError, sqlite3.Error) as exc:
        error = unavailable(exc)
        if error is None:
            raise
        logger.error("database %s refused an operation: %s", _redacted(store_url), error)
        raise error from exc


def _redacted(url: str) -> str:
    """The URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _secret_from_file(path: Path) -> str:
    """A per-installation secret, created once with owner-only permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


class Store:
    """Ask logs and feedback in one database."""

    def __init__(self, url: str, *, user_hash_secret: str) -> None:
        if not user_hash_secret:
            raise ValueError("a secret for hashing user ids is required")
        self.url = url
        self.secret = user_hash_secret.encode()
        self._unlogged: OrderedDict[str, None] = OrderedDict()
        self._unlogged_lock = threading.Lock()
        self.sqlite_file = _sqlite_file(url)
        if self.sqlite_file is not None:
            self.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            if not self.sqlite_file.exists():  # created here, once: connections below never create it
                sqlite3.connect(self.sqlite_file).close()
            # A connection per session, each opening the file at its path: a pooled connection would keep
            # writing into a deleted file's inode and every write would be lost on restart.
            self.engine: Engine = create_engine(url, poolclass=NullPool, future=True)
            _open_existing_file_only(self.engine, self.sqlite_file)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, future=True)
        if self.engine.dialect.name == "sqlite":
            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:  # writers wait, not fail
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store at ``KB_DATABASE_URL``; refuses a per-replica secret when users are identified."""
        if not settings.user_hash_secret and settings.auth != "none":
            # Replicas must share one secret, or the same person gets a different id on each.
            raise ValueError("set KB_USER_HASH_SECRET (the same long random value on every replica) when KB_AUTH is "
                             f"{settings.auth!r}; e.g. python -c 'import secrets; print(secrets.token_hex(32))'")
        secret = settings.user_hash_secret or _secret_from_file(Path(settings.index_dir).parent / "user-hash-secret")
        return cls(settings.database_url, user_hash_secret=secret)

    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def hash_user(self, user_id: str) -> str:
        """Pseudonymous, stable id: HMAC-SHA256 of the raw id with the installation's secret."""
        return hmac.new(self.secret, user_id.encode(), hashlib.sha256).hexdigest()

    def log_ask(self, *, answer_id: str, question: str, answered: bool, confidence: float, cited_pages: list[str],
                latency_ms: float, mode: str, fallback: str | None, user_id: str) -> None:
        """Log one answered (or abstained) question under its answer id, with the user's hash only.

        Raises:
            StoreUnavailable: the log could not be written; the answer id is remembered so feedback on
                it says so (:class:`UnloggedAnswer`) rather than "no answer with id".
        """
        try:
            with _available(self.url), self.session.begin() as session:
                session.add(AskLog(id=answer_id, question=question, answered=answered, confidence=confidence,
                                   cited_pages=json.dumps(cited_pages), latency_ms=latency_ms, mode=mode,
                                   fallback=fallback, user_hash=self.hash_user(user_id)))
        except StoreUnavailable:
            with self._unlogged_lock:
                self._unlogged[answer_id] = None
                while len(self._unlogged) > UNLOGGED_ANSWERS_KEPT:
                    self._unlogged.popitem(last=False)
            raise

    def add_feedback(self, *, answer_id: str, rating: str, comment: str, user_id: str) -> Feedback:
        """Record a rating by the person who asked; rating the same answer again keeps one row, the latest.

        Raises:
            UnknownAnswer: no such answer was logged (or it was purged).
            UnloggedAnswer: this process gave the answer while the database could not log it.
            NotYourAnswer: the answer was given to someone else.
            StoreUnavailable: the database cannot take the write now.
        """
        user_hash = self.hash_user(user_id)
        with _available(self.url), self.session.begin() as session:
            log = session.get(AskLog, answer_id)
            if log is None:
                # A database that cannot take writes says so here (503), rather than "no answer with id"
                # for an answer it could not log; found answers need no probe: their write below fails.
                self._lock_for_write(session)
                with self._unlogged_lock:
                    unlogged = answer_id in self._unlogged
                raise UnloggedAnswer(answer_id) if unlogged else UnknownAnswer(answer_id)
            if not hmac.compare_digest(log.user_hash, user_hash):
                raise NotYourAnswer(answer_id)
            values = {"answer_id": answer_id, "rating": rating, "comment": comment,
                      "user_hash": user_hash, "created_at": utcnow()}
            insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
            statement = insert(Feedback).values(**values)
            statement = statement.on_conflict_do_update(
                index_elements=[Feedback.answer_id],
                set_={"rating": statement.excluded.rating, "comment": statement.excluded.comment,
                      "created_at": statement.excluded.created_at})
            session.execute(statement)
        with _available(self.url), self.session() as session:
            saved = session.get(Feedback, answer_id)
        if saved is None:  # the answer was purged between the write and this read
            raise UnknownAnswer(answer_id)
        return saved

    def _lock_for_write(self, session: Session) -> None:
        """A no-op write (undone when its transaction rolls back): fails when the database is read-only or gone."""
        session.execute(update(_ALEMBIC_VERSION).values(version_num=_ALEMBIC_VERSION.c.version_num))

    def check_writable(self) -> str | None:
        """None when the database takes writes now; otherwise why not (what readiness reports)."""
        try:
            with _available(self.url), self.session() as session:
                self._lock_for_write(session)
                session.rollback()
        except StoreUnavailable as exc:
            return str(exc)
        return None

    def count_hit(self, bucket: str, window_start: int) -> int:
        """Add one hit to a rate-limit bucket's window and return the window's total, atomically
        (one upsert, so concurrent workers and replicas never lose a hit)."""
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(RateCounter).values(bucket=bucket, window_start=window_start, hits=1)
        upsert = statement.on_conflict_do_update(
            index_elements=[RateCounter.bucket, RateCounter.window_start],
            set_={"hits": RateCounter.hits + 1}).returning(RateCounter.hits)
        with self.session.begin() as session:
            return int(session.execute(upsert).scalar_one())

    def hits(self, bucket: str, window_start: int) -> int:
        """The hits a rate-limit bucket has made in a window (0 when none)."""
        with self.session() as session:
            row = session.get(RateCounter, (bucket, window_start))
        return row.hits if row is not None else 0

    def prune_rate_counters(self, before: int) -> None:
        """Forget rate-limit windows that started before ``before`` (epoch seconds)."""
        with self.session.begin() as session:
            session.execute(delete(RateCounter).where(RateCounter.window_start < before))

    def purge(self, older_than_days: int) -> int:
        """Delete ask logs (and their feedback) older than the retention period; returns rows deleted."""
        cutoff = utcnow() - dt.timedelta(days=older_than_days)
        with _available(self.url), self.session.begin() as session:
            session.execute(delete(Feedback).where(Feedback.answer_id.in_(
                select(AskLog.id).where(AskLog.created_at < cutoff))))
            # A DELETE's result is a CursorResult (it has rowcount); Session.execute is typed as the general Result.
            result = cast(CursorResult[Any], session.execute(delete(AskLog).where(AskLog.created_at < cutoff)))
            return result.rowcount or 0

    def counts(self) -> dict[str, int]:
        """Totals of asks, unanswered asks, and answers rated up and down."""
        with _available(self.url), self.session() as session:
            asks = session.scalar(select(func.count()).select_from(AskLog)) or 0
            unanswered = session.scalar(select(func.count()).select_from(AskLog).where(AskLog.answered.is_(False))) or 0
            up = session.scalar(select(func.count()).select_from(Feedback).where(Feedback.rating == "up")) or 0
            down = session.scalar(select(func.count()).select_from(Feedback).where(Feedback.rating == "down")) or 0
        return {"asks": asks, "unanswered": unanswered, "feedback_up": up, "feedback_down": down}

    def gap_questions(self, since: dt.datetime | None = None) -> list[tuple[AskLog, GapReason]]:
        """Unanswered asks and down-rated answers, oldest first, with why each counts as a gap."""
        with _available(self.url), self.session() as session:
            query = select(AskLog, Feedback.rating).outerjoin(Feedback, Feedback.answer_id == AskLog.id)
            if since is not None:
                query = query.where(AskLog.created_at >= since)
            rows = session.execute(query.order_by(AskLog.created_at)).all()
        out: list[tuple[AskLog, GapReason]] = []
        for log, rating in rows:
            if not log.answered:
                out.append((log, GapReason.unanswered))
            elif rating == "down":
                out.append((log, GapReason.rated_down))
        return out

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()
