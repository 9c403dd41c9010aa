"""Property test of reconciliation against the real database: random sequences of desired deadline sets,
stale (older) events and coordinator decisions; after every step the reminders must match the desired
state, and a coordinator's decision must never be changed by the pathway."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from reminder_testkit import T0, assessed_envelope, deadline, reminders_of

from services.notifications import lifecycle
from services.notifications.reconcile import handle_event
from shared.auth import Principal
from shared.db.tables.reminders import ACTIVE_STATUSES
from shared.db.uow import UnitOfWork
from shared.messaging.consumer import consume
from shared.messaging.routing import NOTIFICATIONS

pytestmark = pytest.mark.integration
KEYS = [("pt_follow_up", T0), ("pt_follow_up", T0 + timedelta(days=14)), ("pdmp_review", T0)]
COORDINATOR = Principal("org-a", "coordinator", "carol")

desired_sets = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(["pending", "satisfied", "cancelled"]))
coordinator_steps = st.tuples(st.sampled_from(["dismiss", "complete", "acknowledge"]), st.sampled_from(KEYS))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("assess"), desired_sets),
        st.tuples(st.just("stale"), desired_sets),
        st.tuples(st.just("coordinator"), coordinator_steps),
    ),
    min_size=1,
    max_size=10,
)


def _send(settings, patient, seq, desired):  # type: ignore[no-untyped-def]
    deadlines = [deadline(kind, due, status) for (kind, due), status in desired.items()]
    consume(NOTIFICATIONS, assessed_envelope(patient, seq, deadlines), None, handle_event, settings)


def _state(settings, patient):  # type: ignore[no-untyped-def]
    return {(r.kind, r.due_at): (r.id, r.status, r.closed_by) for r in reminders_of(settings, patient)}


def _coordinator(settings, state, action, key):  # type: ignore[no-untyped-def]
    if key not in state:
        return
    with UnitOfWork(settings) as uow:
        try:
            getattr(lifecycle, action)(uow, COORDINATOR, state[key][0], *(["other"] if action == "dismiss" else []))
        except lifecycle.InvalidTransition:
            return
        uow.commit()


def _check(state, desired, user_closed, ever_pending):  # type: ignore[no-untyped-def]
    assert set(state) <= ever_pending  # a reminder only ever comes from a pending deadline
    for key, (_id, status, _closed_by) in state.items():
        if key in user_closed:
            assert status == user_closed[key]  # never overridden
        elif desired.get(key) == "pending":
            assert status in ACTIVE_STATUSES
        else:
            assert status not in ACTIVE_STATUSES
    for key, wanted in desired.items():
        if wanted == "pending":
            assert key in state


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=steps)
@example(
    script=[
        ("assess", {KEYS[0]: "pending"}),
        ("coordinator", ("dismiss", KEYS[0])),
        ("assess", {KEYS[0]: "pending"}),
    ]
)
@example(
    script=[
        ("assess", {KEYS[0]: "pending"}),
        ("assess", {KEYS[0]: "satisfied"}),
        ("assess", {KEYS[0]: "pending"}),
    ]
)
@example(script=[("assess", {KEYS[0]: "pending"}), ("stale", {})])
def test_reminders_follow_the_latest_desired_state(settings, make_patient, script):  # type: ignore[no-untyped-def]
    patient = make_patient()
    seq, desired, user_closed, ever_pending = 10, {}, {}, set()
    for kind, arg in script:
        before = _state(settings, patient)
        if kind == "assess":
            seq += 1
            desired = arg
            ever_pending |= {key for key, status in arg.items() if status == "pending"}
            _send(settings, patient, seq, arg)
        elif kind == "stale":
            if seq == 10:
                continue  # nothing reconciled yet: no event can be stale
            _send(settings, patient, seq - 1, arg)
            assert _state(settings, patient) == before
        else:
            action, key = arg
            _coordinator(settings, before, action, key)
            after = _state(settings, patient).get(key)
            if after and after[1] in ("dismissed", "completed") and after != before.get(key):
                user_closed[key] = after[1]
        _check(_state(settings, patient), desired, user_closed, ever_pending)
