"""ORM tables. Alembic migrations (alembic/versions) are the only way the schema changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from app.paseo.daemon_config import DEFAULT_DAEMON

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that always gives back an aware UTC datetime.

    SQLite keeps no offset and would hand back naive values (PostgreSQL gives aware ones), so
    values are stored as UTC and read back as UTC on both; a naive value is refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one (UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # none_as_null: Python None is SQL NULL, not the JSON literal `null` (the default).
    type_annotation_map = {
        dict[str, Any]: JSON(none_as_null=True),
        list[str]: JSON(none_as_null=True),
        datetime: UTCDateTime(),
    }


class SessionStatus(StrEnum):
    PENDING = "pending"  # created, its agent not yet (paseo run needs a first prompt)
    ACTIVE = "active"  # has a Paseo agent
    CLOSED = "closed"  # the gateway archived its agent
    AGENT_ARCHIVED = "agent_archived"  # its agent was archived outside the gateway
    AGENT_MISSING = "agent_missing"  # its agent was deleted outside the gateway


class TurnStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    WAITING_PERMISSION = "waiting_permission"
    INTERRUPTED = "interrupted"


# A turn in one of these states holds its session: at most one per session (a partial index).
# `waiting_permission`: the agent waits for a person's answer; the turn goes on after it.
ACTIVE_TURN_STATUSES = (TurnStatus.QUEUED, TurnStatus.RUNNING, TurnStatus.WAITING_PERMISSION)
_ACTIVE_TURN_PREDICATE = text("status IN ('queued', 'running', 'waiting_permission')")


class ApiKey(Base):
    """A client's API key. Only the sha256 of its secret is stored; `prefix` is shown in lists."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    # The hex sha256 of the whole secret: what a request's key is looked up by.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    # The key's budget (`app.services.budgets.LIMIT_NAMES` -> amount); None: no limits.
    limits: Mapped[dict[str, Any] | None] = mapped_column()


class PromptAdmission(Base):
    """A prompt a key was let send: the per-key rate limit counts these in its window.

    Written in the same transaction that counts them, under the key row's lock, so two
    prompts at the same instant (in any process) cannot both take the last place.
    """

    __tablename__ = "prompt_admissions"
    __table_args__ = (Index("ix_prompt_admissions_key_id_admitted_at", "key_id", "admitted_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    admitted_at: Mapped[datetime] = mapped_column()


class GatewaySecret(Base):
    """A value the gateway makes once and every process shares (a signing key, say)."""

    __tablename__ = "gateway_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GatewaySession(Base):
    """One gateway session is one Paseo agent; the agent carries the session id as a label."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    agent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(128))
    mode: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(String(512))
    cwd: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(32), default=SessionStatus.PENDING, index=True)
    # The daemon the agent lives on, fixed at creation: every later call, recovery and
    # replica asks that one.
    daemon: Mapped[str] = mapped_column(
        String(32), default=DEFAULT_DAEMON, server_default=DEFAULT_DAEMON, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_active_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The API key that made the session; NULL for sessions made before keys, or whose key
    # was deleted (revoking a key keeps it).
    owner_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )


class Turn(Base):
    """One prompt and what the agent answered."""

    __tablename__ = "turns"
    __table_args__ = (
        Index(
            "uq_turns_one_active_per_session",
            "session_id",
            unique=True,
            sqlite_where=_ACTIVE_TURN_PREDICATE,
            postgresql_where=_ACTIVE_TURN_PREDICATE,
        ),
        Index("ix_turns_session_id_number", "session_id", "number", unique=True),
        # NULL keys never collide (NULLs are distinct in unique indexes on both backends).
        Index("uq_turns_session_id_idempotency_key", "session_id", "idempotency_key", unique=True),
        # The orphan scan: active turns whose runner stopped beating.
        Index("ix_turns_status_heartbeat_at", "status", "heartbeat_at"),
        # Usage and budgets: a key's turns in a window.
        Index("ix_turns_key_id_started_at", "key_id", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    # The API key that sent the prompt (what its usage and budget count); NULL with keys off.
    # No foreign key: keys are never deleted (a revoked one stays, with its usage).
    key_id: Mapped[uuid.UUID | None] = mapped_column()
    prompt: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), default=TurnStatus.QUEUED)
    final_text: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    usage: Mapped[dict[str, Any] | None] = mapped_column()
    cancel_requested_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    # The client's Idempotency-Key, and the sha256 (hex) of the request body it came with.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # Which gateway process runs the turn, and when it last said it still does.
    runner_id: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    # The highest `TurnEventRecord.seq` stored for this turn (0: none yet). Event numbers are
    # handed out by raising it, so every writer, in any process, gets numbers of its own.
    last_event_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Facts, recorded when they happen (recovery decides from them, never from guesses): the
    # prompt was handed to Paseo; Paseo recorded it; the turn this one replaced (interrupt);
    # when the stream said that a requested stop is not yet confirmed.
    prompt_sent_at: Mapped[datetime | None] = mapped_column()
    prompt_delivered_at: Mapped[datetime | None] = mapped_column()
    replaces_turn_id: Mapped[uuid.UUID | None] = mapped_column()
    cancelling_at: Mapped[datetime | None] = mapped_column()
    # Where the transport resumes the turn after its last stored event (its own opaque
    # cursor, stored in the same UPDATE as the events it follows); None: from the prompt.
    resume_cursor: Mapped[str | None] = mapped_column(String(200))


class TurnEventRecord(Base):
    """One event of a turn's stream, numbered 1, 2, ... so a reader can resume after any.

    Not `app.paseo.types.TurnEvent`, the parsed CLI event: this is its stored row.
    """

    __tablename__ = "turn_events"
    __table_args__ = (UniqueConstraint("turn_id", "seq", name="uq_turn_events_turn_id_seq"),)

    # SQLite autoincrements only an INTEGER PRIMARY KEY (its rowid), not a BIGINT one.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    turn_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PermissionAnswer(Base):
    """An answer a person (or the permission timeout) gave to one of a turn's requests.

    Recorded before it is sent to Paseo, so a second answer to the same request (from any
    replica) is refused, and the turn's `turn.permission_resolved` says who answered.
    """

    __tablename__ = "permission_answers"

    turn_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True
    )
    permission_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    behavior: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[str] = mapped_column(String(200))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEvent(StrEnum):
    """What a webhook can be told: the ends of a turn, the request a person must answer, and a
    session's start and close. A turn's are the names of its stored events."""

    TURN_COMPLETED = "turn.completed"
    TURN_FAILED = "turn.failed"
    TURN_CANCELLED = "turn.cancelled"
    TURN_TIMED_OUT = "turn.timed_out"
    TURN_INTERRUPTED = "turn.interrupted"
    TURN_PERMISSION_REQUESTED = "turn.permission_requested"
    SESSION_CREATED = "session.created"
    SESSION_CLOSED = "session.closed"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at `next_attempt_at`
    SENDING = "sending"  # claimed by a worker until `next_attempt_at` (its lease)
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # out of attempts, or the receiver answered 410


class Webhook(Base):
    """A URL told about events of the sessions its key may see (every session for an admin
    key's). Its secret signs each delivery, so it is stored as it was shown, once."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # NULL: made with authentication off. A revoked key's webhooks are told nothing more.
    owner_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    sees_all: Mapped[bool] = mapped_column(Boolean)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSubscription(Base):
    """One event a webhook wants: a row each, so the database matches events to webhooks."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (Index("ix_webhook_subscriptions_event", "event"),)

    webhook_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True
    )
    event: Mapped[str] = mapped_column(String(64), primary_key=True)


class WebhookDelivery(Base):
    """The outbox: one event for one webhook, written in the transaction that stored the
    event, and its attempts so far. Its id is the `webhook-id` of every attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    # What the event said, as it was then (the session and turn may change or go later).
    session_id: Mapped[uuid.UUID | None] = mapped_column()
    turn_id: Mapped[uuid.UUID | None] = mapped_column()
    data: Mapped[dict[str, Any]] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditRecord(Base):
    """One state-changing request: who asked for what, on which ids, and how it ended.

    Written in the transaction that made the change (a refused request in one of its own), so
    a change is never without its record nor a record without its change. It holds ids and
    names only, never prompt text or secrets. Keys are never deleted, but the record keeps
    the key's name as it was, and no foreign keys: it outlives what it names.
    """

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_at", "at"),
        Index("ix_audit_records_key_id_at", "key_id", "at"),
        Index("ix_audit_records_session_id_at", "session_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    key_id: Mapped[uuid.UUID | None] = mapped_column()
    key_name: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    # "ok", or the problem code the request was refused with.
    outcome: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[uuid.UUID | None] = mapped_column()
    turn_id: Mapped[uuid.UUID | None] = mapped_column()
    # Another id the action is about: a key, a webhook, a delivery, a permission request.
    target_id: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(100))
