"""Backlog gauges read from the database at scrape time: what an operator alerts on (the outbox not
draining, reminders overdue). Labels are consumers and statuses only — no organisation, id or PHI."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlmodel import col

from shared.clock import utcnow
from shared.db.tables import DeadLetter, OutboxMessage, Reminder
from shared.db.tables.reminders import STATUSES
from shared.db.uow import UnitOfWork
from shared.messaging.routing import CONSUMERS

log = logging.getLogger("carepath.metrics")


class BacklogCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        outbox = GaugeMetricFamily(
            "carepath_outbox_unfinished", "outbox rows not yet recorded by their consumer", labels=["consumer"]
        )
        oldest = GaugeMetricFamily(
            "carepath_outbox_oldest_unfinished_seconds", "age of the oldest unfinished outbox row", labels=["consumer"]
        )
        reminders = GaugeMetricFamily("carepath_reminders", "reminders by status", labels=["status"])
        overdue = GaugeMetricFamily(
            "carepath_reminders_scheduled_past_due", "scheduled reminders whose due time has passed (not yet delivered)"
        )
        parked = GaugeMetricFamily(
            "carepath_parked_events", "events parked in the dead-letter table (not yet retried)", labels=["consumer"]
        )
        try:
            self._fill(outbox, oldest, reminders, overdue)
            self._fill_parked(parked)
        except Exception:  # a scrape must not fail because the database is down: /readyz says so
            log.warning("backlog metrics unavailable", exc_info=True)
            return
        yield from (outbox, oldest, reminders, overdue, parked)

    @staticmethod
    def _fill(
        outbox: GaugeMetricFamily, oldest: GaugeMetricFamily, reminders: GaugeMetricFamily, overdue: GaugeMetricFamily
    ) -> None:
        now = utcnow()
        with UnitOfWork(read_only=True) as uow:
            unfinished = uow.session.execute(
                select(col(OutboxMessage.consumer), func.count(), func.min(col(OutboxMessage.created_at)))
                .where(col(OutboxMessage.done_at).is_(None))
                .group_by(col(OutboxMessage.consumer))
            ).all()
            by_status = uow.session.execute(
                select(col(Reminder.status), func.count()).group_by(col(Reminder.status))
            ).all()
            late = uow.session.execute(
                select(func.count()).where(col(Reminder.status) == "scheduled", col(Reminder.due_at) < now)
            ).scalar_one()
        # Every consumer and status has its series, at 0 when there is nothing to count: an alert on
        # "oldest unfinished > 5 min" must see 0, not an absent series, when the outbox is empty.
        counts = dict.fromkeys(CONSUMERS, (0, 0.0))
        for consumer, count, first in unfinished:
            counts[consumer] = (count, (now - first).total_seconds())
        for consumer, (count, age) in sorted(counts.items()):
            outbox.add_metric([consumer], count)
            oldest.add_metric([consumer], age)
        statuses = dict.fromkeys(STATUSES, 0) | dict(by_status)
        for status, count in statuses.items():
            reminders.add_metric([status], count)
        overdue.add_metric([], late)

    @staticmethod
    def _fill_parked(parked: GaugeMetricFamily) -> None:
        with UnitOfWork(read_only=True) as uow:
            rows = uow.session.execute(
                select(col(DeadLetter.consumer), func.count())
                .where(col(DeadLetter.parked_at).is_not(None), col(DeadLetter.retried_at).is_(None))
                .group_by(col(DeadLetter.consumer))
            ).all()
        counts = dict.fromkeys(CONSUMERS, 0) | dict(rows)
        for consumer, count in sorted(counts.items()):
            parked.add_metric([consumer], count)
