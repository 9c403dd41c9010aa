"""The unit of work: the only place that commits. State and its outbox rows share one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from sqlalchemy import insert
from sqlmodel import Session

from shared.clock import utcnow
from shared.db.engine import READ_ONLY_OPTION, get_engine
from shared.db.tables import OutboxMessage, table_of
from shared.events import Event, to_envelope
from shared.messaging.routing import consumers_for
from shared.settings import Settings, get_settings


class UnitOfWork:
    def __init__(self, settings: Settings | None = None, *, read_only: bool = False) -> None:
        self.settings = settings or get_settings()
        self.read_only = read_only
        self.session: Session

    def __enter__(self) -> Self:
        engine = get_engine(self.settings.effective_database_url)
        if self.read_only:
            engine = engine.execution_options(**{READ_ONLY_OPTION: True})
        self.session = Session(bind=engine, expire_on_commit=False)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.session.rollback()
        self.session.close()

    @property
    def is_sqlite(self) -> bool:
        return self.session.get_bind().dialect.name == "sqlite"

    def publish(self, event: Event) -> None:
        """Queue an event for every consumer of its type, in this transaction (the outbox)."""
        self.publish_many([event])

    def publish_many(self, events: Iterable[Event]) -> None:
        """Queue many events with one INSERT (a scheduler pass or a re-evaluation batch writes hundreds)."""
        self.publish_enveloped((event, to_envelope(event)) for event in events)

    def publish_enveloped(self, enveloped: Iterable[tuple[Event, dict[str, Any]]]) -> None:
        """`publish_many` of events whose envelopes were made already: made in the request's own context,
        they carry its request id and trace (the group-commit writer thread has neither)."""
        now = utcnow()
        rows = [
            {
                "event_id": event.id,
                "event_type": event.type,
                "consumer": consumer,
                "subject": event.subject[:64] or None,
                "envelope": envelope,
                "created_at": now,
                "available_at": now,
                "attempts": 0,
            }
            for event, envelope in enveloped
            for consumer in consumers_for(event.type)
        ]
        if rows:
            self.session.execute(insert(table_of(OutboxMessage)), rows)

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
