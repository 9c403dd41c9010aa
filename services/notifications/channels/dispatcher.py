"""The delivery loop: claim due deliveries, send them outside any transaction, record each outcome.

`dispatch_due` is one pass (tests drive `now` forward through it); `run_dispatcher` repeats it until
`stop` is set (the `carepath scheduler` command runs it in a thread).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from opentelemetry.trace import SpanKind

from services.notifications.channels import config, policy, store
from services.notifications.channels.payloads import email_message, webhook_body
from services.notifications.channels.policy import Decision, Delivered, GiveUp, Outcome, RetryAt
from services.notifications.channels.senders import Senders, real_senders
from services.notifications.channels.signing import webhook_headers
from shared import audit, orgtime
from shared.clock import utcnow
from shared.db.tables import ChannelDelivery, EmailRecipient, WebhookEndpoint
from shared.db.uow import UnitOfWork
from shared.observability.metrics import DELIVERIES, beat
from shared.observability.tracing import continued, tracer
from shared.settings import Settings, get_settings

log = logging.getLogger("carepath.channels.dispatcher")

BATCH = 16
PARALLEL_SENDS = 8
IDLE_SLEEP_MAX = 1.0


@dataclass(frozen=True)
class Job:
    """Everything one send needs, read inside the claim's transaction (no ORM object leaves it)."""

    delivery_id: int
    channel: str
    target_id: str
    message_id: str
    body: str
    url: str = ""
    signing_secrets: tuple[str, ...] = ()
    recipient: str = ""
    timezone: str = orgtime.DEFAULT_TIMEZONE  # the organisation's, for the times an email shows
    traceparent: str | None = None  # of the consumer that recorded the delivery: the send is its child


_OUTCOMES = {Delivered: "delivered", RetryAt: "retry", GiveUp: "failed"}


def dispatch_due(settings: Settings | None = None, now: datetime | None = None, senders: Senders | None = None) -> int:
    """One pass: claim what is due at `now`, send it, record outcomes. Returns the number of attempts made."""
    settings = settings or get_settings()
    if senders is None:
        senders = real_senders(settings)
        try:
            return dispatch_due(settings, now, senders)
        finally:
            senders.close()
    now = now or utcnow()
    token = f"dispatcher-{uuid.uuid4().hex[:16]}"
    jobs = _claim(settings, now, token)
    if not jobs:
        return 0
    with ThreadPoolExecutor(max_workers=min(PARALLEL_SENDS, len(jobs))) as pool:
        outcomes = list(pool.map(lambda job: _send(job, senders, settings), jobs))
    for job, outcome in zip(jobs, outcomes, strict=True):
        _record(settings, job, outcome, now, token)
    return len(jobs)


def _claim(settings: Settings, now: datetime, token: str) -> list[Job]:
    with UnitOfWork(settings) as uow:
        ids = store.claim_due(uow, now, now + policy.CLAIM_LEASE, token, BATCH)
        jobs = [job for job in (_job(uow, delivery_id, now, token) for delivery_id in ids) if job is not None]
        uow.commit()
    return jobs


def _job(uow: UnitOfWork, delivery_id: int, now: datetime, token: str) -> Job | None:
    delivery = store.claimed(uow, delivery_id, token)
    if delivery is None or delivery.id is None:
        return None
    target = store.target_of(uow, delivery)
    if target is None or target.status != store.ACTIVE:
        reason = "target removed" if target is None or target.status == store.DELETED else "endpoint disabled"
        _finish(delivery, store.CANCELLED, now, reason)
        return None
    if isinstance(target, WebhookEndpoint):
        previous = config.plain_secret(target.previous_secret, uow.settings) if target.previous_secret else None
        secrets = policy.signing_secrets(
            config.plain_secret(target.secret, uow.settings), previous, target.previous_secret_expires_at, now
        )
        return Job(
            delivery.id,
            store.WEBHOOK,
            target.id,
            delivery.message_id,
            webhook_body(delivery.payload),
            url=target.url,
            signing_secrets=tuple(secrets),
            traceparent=delivery.traceparent,
        )
    assert isinstance(target, EmailRecipient)
    return Job(
        delivery.id,
        store.EMAIL,
        target.id,
        delivery.message_id,
        webhook_body(delivery.payload),
        recipient=target.address,
        timezone=orgtime.timezone_name(uow, delivery.org),
        traceparent=delivery.traceparent,
    )


def _send(job: Job, senders: Senders, settings: Settings) -> Outcome:
    context = continued(job.traceparent)
    with tracer().start_as_current_span(f"send {job.channel}", context=context, kind=SpanKind.CLIENT) as span:
        outcome = _send_now(job, senders, settings)
        span.set_attribute("carepath.delivered", outcome.ok)
        if outcome.status_code is not None:
            span.set_attribute("http.response.status_code", outcome.status_code)
        return outcome


def _send_now(job: Job, senders: Senders, settings: Settings) -> Outcome:
    if job.channel == store.WEBHOOK:
        # The signature timestamp is the real moment of sending: receivers reject one > 5 minutes off.
        headers = webhook_headers(job.message_id, utcnow(), job.body, list(job.signing_secrets))
        return senders.webhook(job.url, job.body, headers)
    message = email_message(
        json.loads(job.body),
        settings.smtp_from,
        job.recipient,
        job.message_id,
        orgtime.zone(job.timezone),
        settings.public_base_url,
    )
    return senders.email(message)


def _record(settings: Settings, job: Job, outcome: Outcome, now: datetime, token: str) -> None:
    with UnitOfWork(settings) as uow:
        # Lock order endpoint -> delivery everywhere (disable and delete take it too): no deadlock on PostgreSQL.
        endpoint = store.lock_endpoint(uow, job.target_id) if job.channel == store.WEBHOOK else None
        delivery = store.claimed(uow, job.delivery_id, token)
        if delivery is None:
            log.warning("delivery %s: claim lost before its outcome was recorded", job.delivery_id)
            return
        delivery.attempts += 1
        delivery.last_status_code = outcome.status_code
        decision = policy.decide(outcome, attempts=delivery.attempts, created_at=delivery.created_at, now=now)
        _apply(delivery, decision, outcome, now)
        if isinstance(decision, Delivered):  # a notification about a patient left carepath: audited
            audit.record(
                uow,
                audit.system_actor("dispatcher", delivery.org),
                f"notification.{job.channel}.sent",
                route="command dispatcher",
                patient_id=_patient_of(delivery),
                resource=("channel_delivery", str(delivery.id)),
            )
        if endpoint is not None:
            _update_endpoint_health(uow, endpoint, outcome, decision, now)
        uow.commit()
    DELIVERIES.labels(job.channel, _OUTCOMES[type(decision)]).inc()
    log.info("delivery %s (%s) attempt: %s", job.delivery_id, job.channel, type(decision).__name__)


def _patient_of(delivery: ChannelDelivery) -> str | None:
    data = delivery.payload.get("data") if isinstance(delivery.payload, dict) else None
    patient_id = data.get("patient_id") if isinstance(data, dict) else None
    return patient_id if isinstance(patient_id, str) else None


def _apply(delivery: ChannelDelivery, decision: Decision, outcome: Outcome, now: datetime) -> None:
    if isinstance(decision, Delivered):
        _finish(delivery, store.DELIVERED, now, None)
        delivery.delivered_at = decision.at
    elif isinstance(decision, RetryAt):
        delivery.claimed_by = None
        delivery.next_attempt_at = decision.at
        delivery.last_attempt_at = now
        delivery.last_error = outcome.error
    else:
        _finish(delivery, store.FAILED, now, decision.reason)


def _finish(delivery: ChannelDelivery, status: str, now: datetime, error: str | None) -> None:
    delivery.status = status
    delivery.claimed_by = None
    delivery.next_attempt_at = None
    delivery.last_attempt_at = now
    delivery.last_error = error[:300] if error else None


def _update_endpoint_health(
    uow: UnitOfWork, endpoint: WebhookEndpoint, outcome: Outcome, decision: Decision, now: datetime
) -> None:
    if outcome.ok:
        endpoint.failing_since = None
        return
    endpoint.failing_since = endpoint.failing_since or now
    asked_to_stop = isinstance(decision, GiveUp) and decision.disable_target
    if endpoint.status == store.ACTIVE and (asked_to_stop or policy.should_disable(endpoint.failing_since, now)):
        reason = (
            "receiver answered 410 Gone" if asked_to_stop else f"failing since {endpoint.failing_since.isoformat()}"
        )
        endpoint.status = store.DISABLED
        endpoint.disabled_at = now
        endpoint.disabled_reason = reason
        endpoint.updated_at = now
        uow.session.flush()
        store.close_pending_for(uow, endpoint.id, store.FAILED, f"endpoint disabled: {reason}", now)
        log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)


def run_dispatcher(stop: threading.Event, settings: Settings | None = None) -> None:
    """Dispatch until `stop` is set. A full batch loops at once; an idle or failing pass sleeps briefly."""
    settings = settings or get_settings()
    senders = real_senders(settings)
    idle_sleep = min(settings.scheduler_max_sleep, IDLE_SLEEP_MAX)
    log.info("channel dispatcher started")
    try:
        while not stop.is_set():
            try:
                attempted = dispatch_due(settings, utcnow(), senders)
            except Exception:  # a database blip must not end the thread; the rows are still there
                log.exception("dispatcher pass failed; retrying")
                stop.wait(max(idle_sleep, 1.0))
                continue
            beat("channels")
            if attempted < BATCH:
                stop.wait(idle_sleep)
    finally:
        senders.close()
