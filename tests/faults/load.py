"""Bounded load for fault scenarios: patients with opioid histories (reminders already due) and a steady
stream of pain assessments, every response recorded. Loopback only, bounded in count and time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx


def _at(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).replace(microsecond=0).isoformat()


def history(days: float = 40) -> list[dict[str, object]]:
    """A patient in first line on opioids for 5 weeks: the 4-week review and the monitoring reminders are due."""
    return [
        {"type": "surgery", "occurred_at": _at(days + 60), "data": {"procedure": "laminectomy"}},
        {"type": "pain_assessment", "occurred_at": _at(days + 20), "data": {"pain_nrs": 7, "distribution": "axial"}},
        {
            "type": "imaging",
            "occurred_at": _at(days + 19),
            "data": {"modality": "mri", "findings": ["no_surgical_target"]},
        },
        {"type": "neuro_exam", "occurred_at": _at(days + 19), "data": {"progressive_deficit": False}},
        {"type": "medication", "occurred_at": _at(days + 18), "data": {"drug_class": "nsaid", "action": "started"}},
        {
            "type": "medication",
            "occurred_at": _at(days),
            "data": {"drug_class": "opioid_ir", "action": "started", "mme_per_day": 30},
        },
    ]


@dataclass
class Load:
    intake_url: str
    headers: dict[str, str]
    patients: int = 20
    rate: float = 20.0  # posts per second, all patients together
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)
    missing_retry_after: int = 0
    transport_errors: int = 0
    refused: int = 0  # of transport_errors: connection refused (the intake not listening, e.g. restarting)
    patient_ids: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def seed(self) -> None:
        with httpx.Client(base_url=self.intake_url, headers=self.headers, timeout=30) as client:
            for index in range(self.patients):
                response = client.post("/v1/patients", json={"external_id": f"FAULT-{index}"})
                assert response.status_code == 201, response.text
                patient_id = response.json()["id"]
                batch = client.post(f"/v1/patients/{patient_id}/updates:batch", json={"updates": history()})
                assert batch.status_code == 202, batch.text
                self.accepted += [item["update_id"] for item in batch.json()["updates"]]
                self.patient_ids.append(patient_id)

    def _post(self, client: httpx.Client, sequence: int) -> None:
        patient_id = self.patient_ids[sequence % len(self.patient_ids)]
        update = {
            "type": "pain_assessment",
            "occurred_at": _at(1 + (sequence % 100) / 1000),
            "data": {"pain_nrs": sequence % 11, "distribution": "axial"},
        }
        try:
            response = client.post(f"/v1/patients/{patient_id}/updates", json=update)
        except httpx.HTTPError as exc:
            self.transport_errors += 1
            self.refused += isinstance(exc, httpx.ConnectError)
            return
        self.statuses[response.status_code] += 1
        if response.status_code == 202:
            self.accepted.append(response.json()["update_id"])
        elif response.status_code == 503 and "retry-after" not in response.headers:
            self.missing_retry_after += 1

    def _run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        sequence = 0
        with httpx.Client(base_url=self.intake_url, headers=self.headers, timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                started = time.monotonic()
                self._post(client, sequence)
                sequence += 1
                self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def start(self, seconds: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(seconds,), daemon=True)
        self._thread.start()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join()

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.transport_errors


@dataclass
class Coordinator:
    """A coordinator working the worklist through the notifications API: acknowledges or snoozes (for a few
    seconds, so the reminder falls due again) what is due. Bounded in time; every response recorded."""

    notifications_url: str
    headers: dict[str, str]
    interval: float = 1.0
    snooze_seconds: float = 3.0
    statuses: Counter[int] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _act(self, client: httpx.Client, turn: int) -> None:
        try:
            page = client.get("/v1/reminders", params={"status": "due", "limit": 5})
            self.statuses[page.status_code] += 1
            if page.status_code != 200:
                return
            for index, item in enumerate(page.json()["items"]):
                if (turn + index) % 2:
                    until = (datetime.now(UTC) + timedelta(seconds=self.snooze_seconds)).isoformat()
                    action = client.post(f"/v1/reminders/{item['id']}/snooze", json={"until": until})
                    name = "snooze"
                else:
                    action = client.post(f"/v1/reminders/{item['id']}/acknowledge")
                    name = "acknowledge"
                self.statuses[action.status_code] += 1
                if action.status_code == 200:
                    self.actions[name] += 1
        except httpx.HTTPError:
            self.transport_errors += 1

    def _run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        turn = 0
        with httpx.Client(base_url=self.notifications_url, headers=self.headers, timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._act(client, turn)
                turn += 1
                self._stop.wait(self.interval)

    def start(self, seconds: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(seconds,), daemon=True)
        self._thread.start()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join()
