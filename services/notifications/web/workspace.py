"""The coordinators' workspace pages beside the worklist: the patient page (reached from every reminder) and
the population overview. Server-rendered, no JavaScript; the same server-side session (routes.worklist_session), roles, rate limits, CSRF and
security headers as the worklist (web/routes.py). A patient of another organisation is a 404 page; every page
view leaves an audit read row (one per patient shown).
"""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response

from services.notifications import lifecycle
from services.notifications.web import charts, overview, patient, routes
from shared import audit, orgtime
from shared.auth import Principal
from shared.clock import isoformat, utcnow
from shared.db.uow import UnitOfWork
from shared.patients import PatientNotFound, find_patient
from shared.settings import get_settings
from shared.web import no_nul_characters

router = APIRouter(tags=["worklist"], dependencies=[Depends(no_nul_characters), Depends(routes.worklist_session)])
PATIENT_READ = "worklist.patient.read"
OVERVIEW_READ = "worklist.overview.read"
PAGE_ERRORS = {**routes.PAGE, **routes.FORM_ERRORS, 404: {"description": "no such patient in your organisation"}}


def _zone_helpers(zone_name: str) -> dict[str, object]:
    """Times on these pages are shown in the organisation's zone, like the worklist's (shared/orgtime.py)."""
    zone = orgtime.zone(zone_name)
    return {"local_time": lambda value: orgtime.shown(value, zone), "zone_name": zone_name}


def _gate(request: Request) -> tuple[Response | None, Principal | None]:
    """The worklist's gate (signed in, role, rate), answer first."""
    principal, refused = routes._gate(request, "Only coordinators and ops can use the worklist.")
    return refused, principal


def _not_found(request: Request) -> HTMLResponse:
    return routes._render(
        request,
        "error.html",
        {"heading": "Patient not found", "message": "There is no such patient in your organisation."},
        status_code=404,
    )


@router.get("/worklist/patients/{patient_id}", response_class=HTMLResponse, responses=PAGE_ERRORS)
def patient_page(
    request: Request,
    patient_id: Annotated[str, PathParam(min_length=1, max_length=36)],
    flash: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    refused, principal = _gate(request)
    if refused is not None or principal is None:
        return refused or routes._redirect("/login")
    trail = audit.Audit(request)
    now = utcnow()
    with UnitOfWork(read_only=True) as uow:
        try:
            found = find_patient(uow, principal.org, patient_id)
        except PatientNotFound:
            found = None
        page = patient.load(uow, found, now) if found is not None else None
        members = lifecycle.members(uow, principal.org) if page is not None else []
        zone_name = orgtime.timezone_name(uow, principal.org)
    if page is None:
        trail.read(principal, PATIENT_READ, outcome=audit.NOT_FOUND, status_code=404, resource=("patient", patient_id))
        return _not_found(request)
    trail.read(principal, PATIENT_READ, patient_id=page.patient.id)
    context = {
        "principal": principal,
        "page": page,
        "flash": routes._flash(flash),
        "iso": isoformat,
        "dismiss_reasons": [(r.value, routes.DISMISS_LABELS.get(r.value, r.value)) for r in lifecycle.DismissReason],
        "min_until": orgtime.local(now, orgtime.zone(zone_name)).strftime("%Y-%m-%dT%H:%M"),
        "members": members,
        "me": principal.subject,
        "snooze_periods": routes.SNOOZE_LABELS,
        "improvement_percent": charts.IMPROVEMENT_PERCENT,
        **_zone_helpers(zone_name),
    }
    return routes._render(request, "patient.html", context)


@router.post(
    "/worklist/patients/{patient_id}/reminders/{reminder_id}/{action}",
    response_class=HTMLResponse,
    responses=routes.FORM_ERRORS,
)
def act_from_patient(
    request: Request,
    patient_id: Annotated[str, PathParam(min_length=1, max_length=36)],
    reminder_id: Annotated[str, PathParam(min_length=1, max_length=36)],
    action: routes.Action,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=60)] = "",
    comment: Annotated[str, Form(max_length=1000)] = "",
    snooze_for: Annotated[str, Form(max_length=20)] = "",
    assignee: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The worklist's actions from the patient page (same lifecycle, same audit), back to the page."""
    principal, refused = routes._form_gate(request, csrf_token, "Only coordinators and ops can use the worklist.")
    if principal is None:
        return refused or routes._redirect("/login")
    trail = audit.Audit(request)
    with UnitOfWork(read_only=True) as uow:
        try:
            find_patient(uow, principal.org, patient_id)
        except PatientNotFound:
            return routes._redirect("/worklist?flash=not_found")
    code = routes._apply(
        trail,
        principal,
        reminder_id,
        action,
        until=until,
        reason=reason,
        comment=comment,
        snooze_for=snooze_for,
        assignee=assignee,
    )
    return routes._redirect(f"/worklist/patients/{patient_id}?flash={code}#reminder-{reminder_id}")


@functools.lru_cache(maxsize=256)
def _stage_chart(rows: tuple[tuple[str, int], ...]) -> charts.Chart:
    return charts.bars(
        "stages", "Patients per stage", [label for label, _ in rows], [("Patients", [n for _, n in rows])]
    )


@functools.lru_cache(maxsize=256)
def _kind_chart(rows: tuple[tuple[str, int, int], ...]) -> charts.Chart:
    return charts.bars(
        "kinds",
        "Reminders on the worklist and overdue, per kind",
        [label for label, _, _ in rows],
        [("On the worklist", [n for _, n, _ in rows]), ("Overdue", [late for _, _, late in rows])],
    )


@router.get("/worklist/overview", response_class=HTMLResponse, responses={**routes.PAGE, **routes.FORM_ERRORS})
def overview_page(request: Request) -> Response:
    refused, principal = _gate(request)
    if refused is not None or principal is None:
        return refused or routes._redirect("/login")
    now = utcnow()
    settings = get_settings()
    with UnitOfWork(read_only=True) as uow:
        found = overview.cached(
            uow, settings.effective_database_url, principal.org, now, settings.overview_cache_seconds
        )
        zone_name = orgtime.timezone_name(uow, principal.org)
    shown = [p.patient_id for gap in found.gaps for p in gap.patients]
    audit.Audit(request).read(principal, OVERVIEW_READ, patient_ids=shown)
    context = {
        "principal": principal,
        "overview": found,
        "stage_chart": _stage_chart(tuple((label, n) for _, label, n in found.per_stage)),
        "kind_chart": _kind_chart(tuple((k.label, k.on_worklist, k.overdue) for k in found.per_kind)),
        "now": found.computed_at,
        "iso": isoformat,
        **_zone_helpers(zone_name),
    }
    return routes._render(request, "overview.html", context)
