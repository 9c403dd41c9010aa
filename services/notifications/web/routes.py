"""The coordinators' worklist page (server-rendered, plain HTML forms: no JavaScript needed or allowed).

Sign-in goes through the organisation's OpenID Connect provider (web/oidc.py): `/login?org=` →
`/login/start` → the provider → `/login/callback`, which opens a server-side session (shared/sessions.py)
held in an HttpOnly cookie. Every /worklist page goes through one dependency (`worklist_session`, on the
router) that checks that session in the database; a missing, unknown, ended or revoked one is a redirect to
the login page (audited when a cookie was offered). The paste-a-token form exists only in development and
opens the same kind of session. Logout deletes the session. Every POST checks a CSRF token (web/csrf.py)
and answers with a 303 back to the worklist carrying a flash code (a fixed message, never reflected text) and the view
it came from (the filters, in the query string). Times are shown in the organisation's time zone (shared/orgtime.py).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode

import jwt
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.notifications import lifecycle
from services.notifications.web import csrf, oidc, wording, worklist
from shared import abuse, audit, orgtime, sessions
from shared.auth import (
    ORG_PATTERN,
    SUBJECT_PATTERN,
    Principal,
    decode_token,
)
from shared.clock import isoformat, utcnow
from shared.db.uow import UnitOfWork
from shared.settings import get_settings
from shared.web import EARLIEST, LATEST, is_tls, no_nul_characters

log = logging.getLogger(__name__)
WORKLIST_PREFIX = "/worklist"


def worklist_session(request: Request) -> None:
    """Router-wide dependency: every page under /worklist needs a live server-side session (checked in the
    database, so a revoked or logged-out one is refused at once by every process). Not signed in: 303 to
    /login; a cookie that names no live session is also audited (`auth.refused`, 401) and cleared."""
    template = getattr(request.scope.get("route"), "path", "")
    if not template.startswith(WORKLIST_PREFIX):
        return
    offered = request.cookies.get(sessions.COOKIE)
    principal = sessions.current(get_settings(), offered)
    if principal is None:
        headers = {"Location": "/login", **SECURITY_HEADERS}
        if offered is not None:
            audit.Audit(request).read(None, "auth.refused", outcome=audit.DENIED, status_code=401)
            headers["Set-Cookie"] = f'{sessions.COOKIE}=""; Max-Age=0; Path=/; HttpOnly; SameSite=lax'
        raise HTTPException(303, detail="sign in first", headers=headers)
    request.state.worklist_principal = principal


router = APIRouter(tags=["worklist"], dependencies=[Depends(no_nul_characters), Depends(worklist_session)])
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
WORKLIST_ROLES = ("coordinator", "ops")
Action = Literal["acknowledge", "complete", "snooze", "dismiss", "assign", "unassign"]

FLASHES: dict[str, tuple[str, str]] = {
    "acknowledged": ("ok", "Reminder acknowledged."),
    "completed": ("ok", "Reminder marked complete."),
    "snoozed": ("ok", "Reminder snoozed."),
    "dismissed": ("ok", "Reminder dismissed; the reason was recorded."),
    "not_found": ("error", "That reminder no longer exists in your organisation."),
    "conflict": (
        "error",
        "That change is not possible from the reminder's current status (someone may have acted on it).",
    ),
    "invalid": (
        "error",
        "That change was not accepted: check the snooze time is in the future and the reason is chosen.",
    ),
    "logged_out": ("ok", "You have signed out."),
    "assigned": ("ok", "Reminder assigned."),
    "unassigned": ("ok", "Reminder unassigned: nobody owns it now."),
    "no_patient": ("error", "No patient of your organisation has exactly that MRN."),
    "bulk_invalid": ("error", "Tick at least one reminder (and choose a coordinator to assign them to)."),
}
DISMISS_LABELS = {
    "not_applicable": "Not applicable to this patient",
    "duplicate": "Duplicate reminder",
    "already_done": "Already done",
    "patient_declined": "Patient declined",
    "other": "Other (explain in the comment)",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
PAGE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": {}}}}
FORM_ERRORS: dict[int | str, dict[str, Any]] = {
    303: {"description": "done (or not signed in): redirect with a flash message"},
    403: {"description": "missing or invalid CSRF token, or a role that may not use the worklist"},
    422: {"description": "malformed form"},
    429: {"description": "too many requests or sign-in attempts (Retry-After says when to retry)"},
}


def _secure(request: Request) -> bool:
    return is_tls(request)


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    nonce, new = csrf.nonce_of(request)
    token = csrf.form_token(request, get_settings().signing_key(), nonce)
    response = templates.TemplateResponse(
        request, name, {"csrf_token": token, "principal": None, **context}, status_code=status_code
    )
    if new:
        csrf.set_nonce_cookie(response, nonce, _secure(request))
    response.headers.update(SECURITY_HEADERS)
    return response


def _redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def _signed_in(request: Request) -> Principal | None:
    """The principal `worklist_session` found for this /worklist page (None elsewhere)."""
    principal = getattr(request.state, "worklist_principal", None)
    return principal if isinstance(principal, Principal) else None


def _forbidden(request: Request, message: str) -> HTMLResponse:
    return _render(request, "error.html", {"heading": "Not allowed", "message": message}, status_code=403)


def _check_csrf(request: Request, token: str | None) -> HTMLResponse | None:
    if csrf.is_valid(request, get_settings().signing_key(), token):
        return None
    return _forbidden(request, "The form expired or did not come from this site. Reload the page and try again.")


def _flash(code: str | None) -> dict[str, str] | None:
    if code not in FLASHES:
        return None
    level, text = FLASHES[code]
    return {"level": level, "text": text}


def _development() -> bool:
    return get_settings().env == "development"


def _login_page(
    request: Request,
    *,
    org: str = "",
    start_org: str = "",
    error: str | None = None,
    flash: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "org": org,
        "start_org": start_org,
        "error": error,
        "flash": _flash(flash),
        "paste_form": _development(),
    }
    return _render(request, "login.html", context, status_code=status_code)


@router.get(
    "/login",
    response_class=HTMLResponse,
    responses={**PAGE, 404: {"description": "no sign-in configured for that organisation"}},
)
def login_page(
    request: Request,
    flash: Annotated[str | None, Query(max_length=40)] = None,
    org: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    # The page links to /login/start (a link, not a form: the provider is another origin, and the page's
    # CSP form-action 'self' also binds where a form submission may be redirected).
    org = org.strip() if org and ORG_PATTERN.fullmatch(org.strip()) else ""
    if org and oidc.provider_for(get_settings(), org) is None:
        message = "That organisation has no sign-in configured. Check the name, or ask your administrator."
        return _login_page(request, error=message, flash=flash, status_code=404)
    return _login_page(request, org=org, start_org=org, flash=flash)


def _redirect_uri(request: Request) -> str:
    base = get_settings().public_base_url.rstrip("/") or str(request.base_url).rstrip("/")
    return f"{base}/login/callback"


def _cookie_options(request: Request) -> dict[str, Any]:
    return {"httponly": True, "samesite": "lax", "secure": _secure(request), "path": "/"}


@router.get(
    "/login/start",
    response_class=HTMLResponse,
    responses={
        **PAGE,
        303: {"description": "to the provider"},
        404: {"description": "no provider"},
        429: {"description": "too many sign-in attempts from this address"},
        502: {},
    },
)
def login_start(request: Request, org: Annotated[str, Query(max_length=100)] = "") -> Response:
    """Begin the organisation's OpenID Connect sign-in: the pre-login cookie, then the provider. Throttled like
    the callback (it makes the service fetch the provider's discovery document: no free outbound traffic)."""
    if (limited := _throttled(request, audit.Audit(request), None)) is not None:
        return limited
    settings = get_settings()
    org = org.strip()
    provider = oidc.provider_for(settings, org) if ORG_PATTERN.fullmatch(org) else None
    if provider is None:
        message = "That organisation has no sign-in configured. Check the name, or ask your administrator."
        return _login_page(request, org="", error=message, status_code=404)
    try:
        url, sealed = oidc.begin(settings, provider, _redirect_uri(request))
    except oidc.ProviderUnavailable as problem:
        log.warning("worklist sign-in: the identity provider is unavailable (%s)", problem)
        message = "Your organisation's sign-in service is not reachable. Try again in a moment."
        return _login_page(request, org=org, error=message, status_code=502)
    response = RedirectResponse(url, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    response.set_cookie(oidc.PRE_LOGIN_COOKIE, sealed, max_age=oidc.PRE_LOGIN_SECONDS, **_cookie_options(request))
    return response


_REFUSALS = {
    400: "The sign-in could not be completed (it expired or came from elsewhere). Start again.",
    401: "Your organisation's sign-in service did not confirm who you are. Start again.",
    403: "Your account has no worklist role in this organisation. Ask your administrator.",
}


def _signed_in_response(request: Request, started: sessions.Started) -> Response:
    with UnitOfWork() as uow:  # whom reminders can be assigned to: everyone who has signed in (either path)
        lifecycle.remember_member(uow, started.principal)
        uow.commit()
    response = _redirect("/worklist")
    response.set_cookie(sessions.COOKIE, started.secret, **_cookie_options(request))
    response.delete_cookie(oidc.PRE_LOGIN_COOKIE, **_cookie_options(request))
    return response


def _throttled(request: Request, trail: audit.Audit, subject: str | None) -> Response | None:
    limited = abuse.check_login(get_settings(), abuse.client_address(request), subject)
    if limited is None:
        return None
    trail.read(None, SIGN_IN, outcome=audit.DENIED, status_code=429)
    message = f"Too many sign-in attempts. Wait {limited.retry_after} seconds and try again."
    page = _login_page(request, error=message, status_code=429)
    page.headers.update(abuse.retry_headers(limited))
    return page


@router.get(
    "/login/callback",
    response_class=HTMLResponse,
    responses={**PAGE, **FORM_ERRORS, 400: {"description": "no sign-in in progress or state mismatch"}, 401: {}},
)
def login_callback(
    request: Request,
    code: Annotated[str, Query(max_length=2000)] = "",
    state: Annotated[str, Query(max_length=200)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The provider's redirect back: verify everything (web/oidc.py), then open a fresh session."""
    settings = get_settings()
    trail = audit.Audit(request)
    sealed = request.cookies.get(oidc.PRE_LOGIN_COOKIE)
    org = oidc.pending_org(settings, sealed)
    if (limited := _throttled(request, trail, None)) is not None:
        return limited
    provider = oidc.provider_for(settings, org) if org else None
    params = {"code": code, "state": state, **({"error": error} if error else {})}
    try:
        if provider is None:
            raise oidc.SignInRefused("no sign-in in progress", 400)
        identity = oidc.finish(settings, provider, sealed, params, _redirect_uri(request))
    except oidc.SignInRefused as refused:
        log.info("worklist sign-in refused (%s)", refused.reason)
        trail.read(audit.Actor("-", "anonymous", org), SIGN_IN, outcome=audit.DENIED, status_code=refused.status_code)
        page = _login_page(
            request, org=org or "", error=_REFUSALS[refused.status_code], status_code=refused.status_code
        )
        page.delete_cookie(oidc.PRE_LOGIN_COOKIE, **_cookie_options(request))
        return page
    except oidc.ProviderUnavailable as problem:
        log.warning("worklist sign-in: the identity provider is unavailable (%s)", problem)
        trail.read(audit.Actor("-", "anonymous", org), SIGN_IN, outcome=audit.ERROR, status_code=502)
        return _login_page(
            request, org=org or "", error="Your organisation's sign-in service is not reachable.", status_code=502
        )
    started = sessions.start(
        settings, identity.org, identity.role, identity.subject, "oidc", replaces=request.cookies.get(sessions.COOKIE)
    )
    trail.read(started.principal, SIGN_IN, resource=("session", started.session_id))
    return _signed_in_response(request, started)


def _claimed_subject(token: str) -> str | None:
    """The subject a pasted token names, before its signature is checked (only to throttle guessing at one
    person's sign-in); None when it names none in the subject charset."""
    try:
        subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        return None
    return subject if isinstance(subject, str) and SUBJECT_PATTERN.fullmatch(subject) else None


def _over_rate(request: Request, principal: Principal) -> Response | None:
    """The per-token and per-organisation request rates on the worklist pages too (429 page)."""
    try:
        abuse.check_principal(get_settings(), principal.org, principal.token_id or principal.subject)
    except HTTPException as refused:
        audit.Audit(request).read(principal, "auth.refused", outcome=audit.DENIED, status_code=refused.status_code)
        page = _render(
            request, "error.html", {"heading": "Too many requests", "message": "Wait a moment and try again."}, 429
        )
        page.headers.update(refused.headers or {})
        return page
    return None


@router.post(
    "/login",
    response_class=HTMLResponse,
    responses={**FORM_ERRORS, 401: {"description": "bad token"}, 404: {"description": "outside development"}},
)
def login(
    request: Request,
    token: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Development only: sign in by pasting a coordinator/ops token; opens a server-side session like the
    OpenID Connect sign-in does (the token itself is not kept in the browser)."""
    trail = audit.Audit(request)
    if not _development():
        trail.read(None, SIGN_IN, outcome=audit.NOT_FOUND, status_code=404)
        return _render(
            request, "error.html", {"heading": "Not found", "message": "Sign in with your organisation."}, 404
        )
    if (refused := _check_csrf(request, csrf_token)) is not None:
        trail.read(None, SIGN_IN, outcome=audit.DENIED, status_code=403)
        return refused
    if (limited := _throttled(request, trail, _claimed_subject(token.strip()))) is not None:
        return limited
    settings = get_settings()
    try:
        principal = decode_token(settings, token.strip())
    except jwt.PyJWTError:  # malformed, expired or forged: simply "not accepted"
        trail.read(None, SIGN_IN, outcome=audit.DENIED, status_code=401)
        return _login_page(request, error="That token was not accepted.", status_code=401)
    if principal.role not in WORKLIST_ROLES:
        trail.read(principal, SIGN_IN, outcome=audit.DENIED, status_code=403)
        return _login_page(request, error="Only coordinator or ops tokens can use the worklist.", status_code=403)
    started = sessions.start(
        settings,
        principal.org,
        principal.role,
        principal.subject,
        "token",
        replaces=request.cookies.get(sessions.COOKIE),
    )
    trail.read(started.principal, SIGN_IN, resource=("session", started.session_id))
    return _signed_in_response(request, started)


@router.post("/logout", response_class=HTMLResponse, responses=FORM_ERRORS)
def logout(request: Request, csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    if (refused := _check_csrf(request, csrf_token)) is not None:
        return refused
    if secret := request.cookies.get(sessions.COOKIE):
        settings = get_settings()
        signed_in = sessions.current(settings, secret)
        if sessions.end(settings, secret) and signed_in is not None:
            audit.Audit(request).read(signed_in, "auth.signout", resource=("session", signed_in.token_id))
    response = _redirect("/login?flash=logged_out")
    response.delete_cookie(sessions.COOKIE, **_cookie_options(request))
    return response


KIND_PATTERN = re.compile(r"[a-z0-9_]{1,60}")
PATIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,36}")
MAX_PAGE = 10_000
MAX_BULK = worklist.PAGE_SIZE


class BadFilter(ValueError):
    """A filter value the worklist does not know (a 422 page; nothing is read)."""


def parse_filters(values: Mapping[str, str | None]) -> worklist.Filters:
    """The view a query string (or a form's `view` field) names; BadFilter for an unknown value."""

    def text(name: str) -> str | None:
        value = (values.get(name) or "").strip()
        return value or None

    kind, status, stage, assignee, patient = (text(n) for n in ("kind", "status", "stage", "assignee", "patient"))
    if kind is not None and not KIND_PATTERN.fullmatch(kind):
        raise BadFilter("kind")
    if status is not None and status not in worklist.WORKLIST_STATUSES:
        raise BadFilter("status")
    if stage is not None and stage not in wording.STAGE_LABELS:
        raise BadFilter("stage")
    special = (worklist.ME, worklist.UNASSIGNED)
    if assignee is not None and assignee not in special and not SUBJECT_PATTERN.fullmatch(assignee):
        raise BadFilter("assignee")
    if patient is not None and not PATIENT_ID_PATTERN.fullmatch(patient):
        raise BadFilter("patient")
    overdue = text("overdue")
    if overdue not in (None, "1", "true", "on"):
        raise BadFilter("overdue")
    page_text = text("page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise BadFilter("page")
    return worklist.Filters(kind, status, stage, overdue is not None, assignee, patient, int(page_text))


def _view_of(raw: str) -> worklist.Filters:
    """The view a form came from (its `view` field: the page's query string); the plain list if malformed."""
    try:
        return parse_filters(dict(parse_qsl(raw[:2000])))
    except BadFilter:
        return worklist.Filters()


def _gate(request: Request, refusal: str) -> tuple[Principal | None, Response | None]:
    """The signed-in principal allowed on the worklist, or the response that refuses them."""
    principal = _signed_in(request)
    if principal is None:
        return None, _redirect("/login")
    if principal.role not in WORKLIST_ROLES:
        audit.Audit(request).read(principal, "auth.refused", outcome=audit.DENIED, status_code=403)
        return None, _forbidden(request, refusal)
    if (limited := _over_rate(request, principal)) is not None:
        return None, limited
    return principal, None


def _form_gate(request: Request, csrf_token: str, refusal: str) -> tuple[Principal | None, Response | None]:
    """For a worklist form POST: signed in, a valid CSRF token (a refusal is audited), then `_gate`."""
    principal = _signed_in(request)
    if principal is None:
        return None, _redirect("/login")
    if (refused := _check_csrf(request, csrf_token)) is not None:
        audit.Audit(request).read(principal, "auth.refused", outcome=audit.DENIED, status_code=403)
        return None, refused
    return _gate(request, refusal)


def _bad_filter(request: Request, principal: Principal, action: str, name: str) -> HTMLResponse:
    audit.Audit(request).read(principal, action, outcome=audit.INVALID, status_code=422)
    message = f"The {name} filter has a value the worklist does not know. Start again from the worklist."
    return _render(
        request, "error.html", {"heading": "Unknown filter", "message": message, "principal": principal}, 422
    )


def _time_helpers(zone: tzinfo) -> dict[str, Any]:
    return {
        "when": lambda value: orgtime.shown(value, zone),
        "iso": isoformat,
        "zone_abbreviation": lambda value: orgtime.abbreviation(value, zone),
    }


FILTER_QUERY = Annotated[str | None, Query(max_length=200)]


@router.get("/worklist", response_class=HTMLResponse, responses={**PAGE, **FORM_ERRORS})
def worklist_page(
    request: Request,
    kind: FILTER_QUERY = None,
    status: FILTER_QUERY = None,
    stage: FILTER_QUERY = None,
    overdue: FILTER_QUERY = None,
    assignee: FILTER_QUERY = None,
    patient: FILTER_QUERY = None,
    page: FILTER_QUERY = None,
    flash: Annotated[str | None, Query(max_length=40)] = None,
    done: Annotated[int | None, Query(ge=0, le=MAX_BULK)] = None,
    skipped: Annotated[int | None, Query(ge=0, le=MAX_BULK)] = None,
) -> Response:
    principal, refused = _gate(request, "Only coordinators and ops can use the worklist.")
    if principal is None:
        assert refused is not None
        return refused
    raw = {"kind": kind, "status": status, "stage": stage, "overdue": overdue, "assignee": assignee}
    try:
        filters = parse_filters({**raw, "patient": patient, "page": page})
    except BadFilter as bad:
        return _bad_filter(request, principal, "worklist.read", str(bad))
    now = utcnow()
    with UnitOfWork(read_only=True) as uow:
        total = worklist.count(uow, principal.org, now, filters, principal.subject)
        pages = max(1, -(-total // worklist.PAGE_SIZE))
        current = min(filters.page, pages)
        rows = worklist.rows(
            uow,
            principal.org,
            now,
            filters,
            subject=principal.subject,
            limit=worklist.PAGE_SIZE,
            offset=(current - 1) * worklist.PAGE_SIZE,
        )
        kinds = sorted(set(worklist.kinds(uow, principal.org)) | ({filters.kind} if filters.kind else set()))
        members = lifecycle.members(uow, principal.org)
        zone_name = orgtime.timezone_name(uow, principal.org)
        patient_mrn = worklist.mrn_of(uow, principal.org, filters.patient) if filters.patient else None
    zone = orgtime.zone(zone_name)
    # One row per patient the page shows (one without a patient for an empty worklist).
    audit.Audit(request).read(principal, "worklist.read", patient_ids=[row.patient_id for row in rows])
    view = urlencode(filters.query(page=current))
    context = {
        "principal": principal,
        "rows": rows,
        "kinds": kinds,
        "filters": filters,
        "kind": filters.kind or "",
        "status": filters.status or "",
        "statuses": worklist.WORKLIST_STATUSES,
        "stages": wording.STAGE_LABELS,
        "members": members,
        "me": principal.subject,
        "patient_mrn": patient_mrn,
        "flash": _bulk_flash(done, skipped) if flash == "bulk" else _flash(flash),
        "kind_label": worklist.kind_label,
        "stage_label": wording.stage_label,
        "dismiss_reasons": [(r.value, DISMISS_LABELS.get(r.value, r.value)) for r in lifecycle.DismissReason],
        "min_until": orgtime.local(now, zone).strftime("%Y-%m-%dT%H:%M"),
        "zone_name": zone_name,
        "snooze_periods": SNOOZE_LABELS,
        "now": now,
        "total": total,
        "page": current,
        "pages": pages,
        "first_index": (current - 1) * worklist.PAGE_SIZE + 1 if rows else 0,
        "view": view,
        "link": lambda **changes: "/worklist?" + urlencode(filters.query(**changes)),
        "export_link": "/worklist.csv?" + urlencode(filters.query(page=1)),
        "without_patient": "/worklist?" + urlencode(filters.query(patient=None, page=1)),
        **_time_helpers(zone),
    }
    return _render(request, "worklist.html", context)


def _bulk_flash(done: int | None, skipped: int | None) -> dict[str, str]:
    done, skipped = done or 0, skipped or 0
    text = f"{done} reminder{'' if done == 1 else 's'} changed."
    if skipped:
        text += f" {skipped} could not be changed (closed, already so, or no longer in your organisation)."
    return {"level": "ok" if done or not skipped else "error", "text": text}


def _back(code: str, view: worklist.Filters, **extra: int) -> RedirectResponse:
    query = {"flash": code, **{key: str(value) for key, value in extra.items()}, **view.query()}
    return _redirect(f"/worklist?{urlencode(query)}")


def parse_until(value: str, zone: tzinfo = UTC) -> datetime | None:
    """The snooze form's datetime-local (no offset: a wall time of the organisation's zone, as the page
    says) or an RFC 3339 instant."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    try:
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=zone).astimezone(UTC)
        return parsed if EARLIEST <= parsed < LATEST else None
    except (OverflowError, ValueError):  # an offset beyond the calendar's ends
        return None


SIGN_IN = "auth.signin"
# The snooze form's quick choices (a select: as easy from the keyboard as with a mouse); or a chosen time.
SNOOZE_PERIODS = {"1d": timedelta(days=1), "3d": timedelta(days=3), "7d": timedelta(days=7), "14d": timedelta(days=14)}
SNOOZE_LABELS = {"1d": "1 day", "3d": "3 days", "7d": "1 week", "14d": "2 weeks"}
_DONE = {
    "acknowledge": "acknowledged",
    "complete": "completed",
    "snooze": "snoozed",
    "dismiss": "dismissed",
    "assign": "assigned",
    "unassign": "unassigned",
}


@router.post("/worklist/reminders/{reminder_id}/{action}", response_class=HTMLResponse, responses=FORM_ERRORS)
def act(
    request: Request,
    reminder_id: Annotated[str, PathParam(min_length=1, max_length=36)],
    action: Action,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=60)] = "",
    comment: Annotated[str, Form(max_length=1000)] = "",
    assignee: Annotated[str, Form(max_length=200)] = "",
    snooze_for: Annotated[str, Form(max_length=10)] = "",
    view: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    principal, refused = _form_gate(request, csrf_token, "Only coordinators and ops can act on reminders.")
    if principal is None:
        assert refused is not None
        return refused
    trail = audit.Audit(request)
    fields = {"until": until, "reason": reason, "comment": comment, "assignee": assignee, "snooze_for": snooze_for}
    code = _apply(trail, principal, reminder_id, action, **fields)
    return _back(code, _view_of(view))


BULK_OPERATIONS = ("acknowledge", "assign_me", "assign", "unassign")


@router.post("/worklist/bulk", response_class=HTMLResponse, responses=FORM_ERRORS)
def bulk(
    request: Request,
    operation: Annotated[str, Form(max_length=20)] = "",
    reminder_ids: Annotated[list[str], Form(max_length=MAX_BULK)] = [],  # noqa: B006 (FastAPI reads, never mutates)
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    assignee: Annotated[str, Form(max_length=200)] = "",
    view: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """One form for the ticked rows: acknowledge them, or assign them (to oneself or a colleague) or unassign
    them. Each reminder is its own change (its history row and audit row); one that cannot change is skipped."""
    principal, refused = _form_gate(request, csrf_token, "Only coordinators and ops can act on reminders.")
    if principal is None:
        assert refused is not None
        return refused
    trail = audit.Audit(request)
    ids = [rid for rid in dict.fromkeys(reminder_ids) if PATIENT_ID_PATTERN.fullmatch(rid)]
    if operation not in BULK_OPERATIONS:
        return _back("bulk_invalid", _view_of(view))
    if not ids or len(reminder_ids) > MAX_BULK or (operation == "assign" and not assignee.strip()):
        return _back("bulk_invalid", _view_of(view))
    action = {"acknowledge": "acknowledge", "assign_me": "assign", "assign": "assign", "unassign": "unassign"}
    chosen = worklist.ME if operation == "assign_me" else assignee.strip()
    codes = [
        _apply(
            trail, principal, rid, action[operation], until="", reason="", comment="", assignee=chosen, snooze_for=""
        )
        for rid in ids
    ]
    done = sum(1 for code in codes if code in _DONE.values())
    return _back("bulk", _view_of(view), done=done, skipped=len(codes) - done)


@router.post("/worklist/search", response_class=HTMLResponse, responses=FORM_ERRORS)
def search(
    request: Request,
    mrn: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    view: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Find a patient by MRN (exact match within the organisation) and show the view for that patient. The
    form is a POST and the answer a redirect to `?patient=<id>`, so no MRN is ever in a URL (browser history,
    proxy logs) or in the audit trail, and the view is still a link."""
    principal, refused = _form_gate(request, csrf_token, "Only coordinators and ops can use the worklist.")
    if principal is None:
        assert refused is not None
        return refused
    trail = audit.Audit(request)
    back = _view_of(view)
    wanted = mrn.strip()
    if not wanted:
        return _redirect("/worklist?" + urlencode(back.query(patient=None, page=1)))
    with UnitOfWork(read_only=True) as uow:
        patient_id = worklist.find_by_mrn(uow, principal.org, wanted)
    if patient_id is None:
        trail.read(principal, "worklist.search", outcome=audit.NOT_FOUND, status_code=404)
        return _redirect("/worklist?" + urlencode({"flash": "no_patient", **back.query(patient=None, page=1)}))
    trail.read(principal, "worklist.search", patient_id=patient_id)
    return _redirect("/worklist?" + urlencode(back.query(patient=patient_id, page=1)))


CSV_COLUMNS = (
    "reminder_id",
    "patient_mrn",
    "kind",
    "kind_label",
    "status",
    "stage",
    "due_local",
    "due_utc",
    "overdue",
    "escalated",
    "assigned_to",
    "recommendation",
    "sources",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_rows(rows: list[worklist.Row], zone: tzinfo) -> Iterator[list[str]]:
    yield list(CSV_COLUMNS)
    for row in rows:
        due = row.shown_due_at or row.due_at
        yield [
            _cell(value)
            for value in (
                row.id,
                row.patient_label,
                row.kind,
                row.kind_label,
                row.status,
                row.stage or "",
                orgtime.shown(due, zone),
                isoformat(due),
                "yes" if row.overdue else "no",
                "yes" if row.escalated else "no",
                row.assigned_to or "",
                row.text,
                "; ".join(source.title for source in row.sources) or row.citation,
            )
        ]


@router.get(
    "/worklist.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "the filtered view, every page"}, **FORM_ERRORS},
)
def export_csv(
    request: Request,
    kind: FILTER_QUERY = None,
    status: FILTER_QUERY = None,
    stage: FILTER_QUERY = None,
    overdue: FILTER_QUERY = None,
    assignee: FILTER_QUERY = None,
    patient: FILTER_QUERY = None,
) -> Response:
    """The current view (the same filters, all its pages) as CSV, audited as an export: one `worklist.export`
    row per patient exported, holding ids only (never an MRN or a clinical value)."""
    principal, refused = _gate(request, "Only coordinators and ops can export the worklist.")
    if principal is None:
        assert refused is not None
        return refused
    raw = {"kind": kind, "status": status, "stage": stage, "overdue": overdue, "assignee": assignee}
    try:
        filters = parse_filters({**raw, "patient": patient})
    except BadFilter as bad:
        return _bad_filter(request, principal, "worklist.export", str(bad))
    now = utcnow()
    with UnitOfWork(read_only=True) as uow:
        rows = worklist.rows(
            uow, principal.org, now, filters, subject=principal.subject, limit=worklist.MAX_EXPORT_ROWS
        )
        zone = orgtime.zone_of(uow, principal.org)
    audit.Audit(request).read(
        principal, "worklist.export", patient_ids=[row.patient_id for row in rows], resource=("worklist", None)
    )
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv_rows(rows, zone))
    stamp = orgtime.local(now, zone).strftime("%Y%m%d-%H%M")
    response = Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Disposition"] = f'attachment; filename="worklist-{principal.org[:40]}-{stamp}.csv"'
    return response


_OUTCOMES = {"not_found": audit.NOT_FOUND, "conflict": audit.INVALID, "invalid": audit.INVALID}


def _apply(trail: audit.Audit, principal: Principal, reminder_id: str, action: str, **fields: str) -> str:
    """Run one lifecycle action in its own unit of work (its audit row in the same transaction); returns the
    flash code. A refused action is audited on its own."""
    name, resource = f"worklist.reminder.{action}", ("reminder", reminder_id)
    code = _run(trail, principal, reminder_id, action, name, **fields)
    if code in _OUTCOMES:
        trail.read(principal, name, outcome=_OUTCOMES[code], resource=resource)
    return code


def _change(uow: UnitOfWork, principal: Principal, reminder_id: str, action: str, fields: Mapping[str, str]) -> Any:
    if action == "acknowledge":
        return lifecycle.acknowledge(uow, principal, reminder_id)
    if action == "complete":
        return lifecycle.complete(uow, principal, reminder_id)
    if action == "snooze":
        period, until = SNOOZE_PERIODS.get(fields["snooze_for"]), fields["until"].strip()
        # A chosen time wins over a quick choice; neither is invalid.
        when = utcnow() + period if period and not until else parse_until(until, orgtime.zone_of(uow, principal.org))
        if when is None:
            raise lifecycle.InvalidRequest("until")
        return lifecycle.snooze(uow, principal, reminder_id, when, fields["reason"].strip() or None)
    if action == "assign":
        chosen = fields["assignee"].strip()
        if not chosen:
            raise lifecycle.InvalidRequest("assignee")
        return lifecycle.assign(uow, principal, reminder_id, principal.subject if chosen == worklist.ME else chosen)
    if action == "unassign":
        return lifecycle.assign(uow, principal, reminder_id, None)
    return lifecycle.dismiss(uow, principal, reminder_id, fields["reason"], fields["comment"].strip() or None)


def _run(trail: audit.Audit, principal: Principal, reminder_id: str, action: str, name: str, **fields: str) -> str:
    with UnitOfWork() as uow:
        try:
            reminder = _change(uow, principal, reminder_id, action, fields)
        except lifecycle.ReminderNotFound:
            return "not_found"
        except lifecycle.InvalidTransition:
            return "conflict"
        except lifecycle.InvalidRequest:
            return "invalid"
        trail.write(uow, principal, name, patient_id=reminder.patient_id, resource=("reminder", reminder.id))
        uow.commit()
    return _DONE[action]
