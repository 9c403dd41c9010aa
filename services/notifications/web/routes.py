"""The coordinators' worklist page (server-rendered, plain HTML forms: no JavaScript needed or allowed).

Login pastes a token into a form; it is kept in an HttpOnly, SameSite=Strict cookie that shared.auth
reads as a fallback to the bearer header. Logout revokes the token (its jti), so a copy of it is dead too. Every POST checks a CSRF token (web/csrf.py) and answers with a
303 back to the worklist carrying a flash code (a fixed message, never reflected text).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import jwt
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.notifications import lifecycle
from services.notifications.web import csrf, worklist
from shared import abuse, audit
from shared.auth import SUBJECT_PATTERN, Principal, decode_token, principal_from_request, revoke_token_or_id
from shared.clock import isoformat, utcnow
from shared.db.uow import UnitOfWork
from shared.settings import get_settings
from shared.web import EARLIEST, LATEST, is_tls, no_nul_characters

router = APIRouter(tags=["worklist"], dependencies=[Depends(no_nul_characters)])
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
WORKLIST_ROLES = ("coordinator", "ops")
Action = Literal["acknowledge", "complete", "snooze", "dismiss"]

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
    try:
        return principal_from_request(request, None)
    except HTTPException:
        return None


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


@router.get("/login", response_class=HTMLResponse, responses=PAGE)
def login_page(request: Request, flash: Annotated[str | None, Query(max_length=40)] = None) -> HTMLResponse:
    return _render(request, "login.html", {"flash": _flash(flash)})


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


@router.post("/login", response_class=HTMLResponse, responses={**FORM_ERRORS, 401: {"description": "bad token"}})
def login(
    request: Request,
    token: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    trail = audit.Audit(request)
    if (refused := _check_csrf(request, csrf_token)) is not None:
        trail.read(None, SIGN_IN, outcome=audit.DENIED, status_code=403)
        return refused
    settings = get_settings()
    limited = abuse.check_login(settings, abuse.client_address(request), _claimed_subject(token.strip()))
    if limited is not None:
        trail.read(None, SIGN_IN, outcome=audit.DENIED, status_code=429)
        page = _render(
            request,
            "login.html",
            {"error": f"Too many sign-in attempts. Wait {limited.retry_after} seconds and try again."},
            status_code=429,
        )
        page.headers.update(abuse.retry_headers(limited))
        return page
    try:
        principal = decode_token(settings, token.strip())
    except jwt.PyJWTError:  # malformed, expired or forged: simply "not accepted"
        trail.read(None, SIGN_IN, outcome=audit.DENIED, status_code=401)
        return _render(request, "login.html", {"error": "That token was not accepted."}, status_code=401)
    if principal.role not in WORKLIST_ROLES:
        trail.read(principal, SIGN_IN, outcome=audit.DENIED, status_code=403)
        return _render(
            request, "login.html", {"error": "Only coordinator or ops tokens can use the worklist."}, status_code=403
        )
    trail.read(principal, SIGN_IN)
    response = _redirect("/worklist")
    response.set_cookie(
        csrf.TOKEN_COOKIE, token.strip(), httponly=True, samesite="strict", secure=_secure(request), path="/"
    )
    return response


@router.post("/logout", response_class=HTMLResponse, responses=FORM_ERRORS)
def logout(request: Request, csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    if (refused := _check_csrf(request, csrf_token)) is not None:
        return refused
    # Signing out ends the token itself, not only the cookie: it may have been copied (it is a bearer token).
    if session_token := request.cookies.get(csrf.TOKEN_COOKIE):
        signed_in = _signed_in(request)
        with contextlib.suppress(jwt.PyJWTError, ValueError):  # not a token of ours: nothing to revoke
            revoke_token_or_id(get_settings(), session_token, "logout", allow_bare_id=False)
        if signed_in is not None:
            audit.Audit(request).read(signed_in, "auth.signout")
    response = _redirect("/login?flash=logged_out")
    response.delete_cookie(csrf.TOKEN_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return response


@router.get("/worklist", response_class=HTMLResponse, responses={**PAGE, **FORM_ERRORS})
def worklist_page(
    request: Request,
    kind: Annotated[str | None, Query(max_length=60)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    flash: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    principal = _signed_in(request)
    if principal is None:
        return _redirect("/login")
    trail = audit.Audit(request)
    if principal.role not in WORKLIST_ROLES:
        trail.read(principal, "auth.refused", outcome=audit.DENIED, status_code=403)
        return _forbidden(request, "Only coordinators and ops can use the worklist.")
    if (limited := _over_rate(request, principal)) is not None:
        return limited
    status = status if status in worklist.WORKLIST_STATUSES else None
    now = utcnow()
    with UnitOfWork(read_only=True) as uow:
        rows = worklist.rows(
            uow, principal.org, now, kind=kind or None, statuses=(status,) if status else worklist.WORKLIST_STATUSES
        )
        kinds = sorted(set(worklist.kinds(uow, principal.org)) | ({kind} if kind else set()))
    # One row per patient the page shows (one without a patient for an empty worklist).
    trail.read(principal, "worklist.read", patient_ids=[row.patient_id for row in rows])
    context = {
        "principal": principal,
        "rows": rows,
        "kinds": kinds,
        "kind": kind or "",
        "status": status or "",
        "statuses": worklist.WORKLIST_STATUSES,
        "flash": _flash(flash),
        "kind_label": worklist.kind_label,
        "iso": isoformat,
        "dismiss_reasons": [(r.value, DISMISS_LABELS.get(r.value, r.value)) for r in lifecycle.DismissReason],
        "min_until": now.strftime("%Y-%m-%dT%H:%M"),
    }
    return _render(request, "worklist.html", context)


def _back(code: str, filter_kind: str, filter_status: str) -> RedirectResponse:
    query = {"flash": code}
    if filter_kind:
        query["kind"] = filter_kind[:60]
    if filter_status in worklist.WORKLIST_STATUSES:
        query["status"] = filter_status
    return _redirect(f"/worklist?{urlencode(query)}")


def parse_until(value: str) -> datetime | None:
    """The snooze form's datetime-local (no offset: the page says UTC) or an RFC 3339 instant."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        return parsed if EARLIEST <= parsed < LATEST else None
    except OverflowError:  # an offset beyond the calendar's ends
        return None


SIGN_IN = "auth.signin"
_DONE = {"acknowledge": "acknowledged", "complete": "completed", "snooze": "snoozed", "dismiss": "dismissed"}


@router.post("/worklist/reminders/{reminder_id}/{action}", response_class=HTMLResponse, responses=FORM_ERRORS)
def act(
    request: Request,
    reminder_id: Annotated[str, PathParam(min_length=1, max_length=36)],
    action: Action,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=60)] = "",
    comment: Annotated[str, Form(max_length=1000)] = "",
    filter_kind: Annotated[str, Form(max_length=60)] = "",
    filter_status: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    principal = _signed_in(request)
    if principal is None:
        return _redirect("/login")
    trail = audit.Audit(request)
    if (refused := _check_csrf(request, csrf_token)) is not None:
        trail.read(principal, "auth.refused", outcome=audit.DENIED, status_code=403)
        return refused
    if principal.role not in WORKLIST_ROLES:
        trail.read(principal, "auth.refused", outcome=audit.DENIED, status_code=403)
        return _forbidden(request, "Only coordinators and ops can act on reminders.")
    if (limited := _over_rate(request, principal)) is not None:
        return limited
    code = _apply(trail, principal, reminder_id, action, until=until, reason=reason, comment=comment)
    return _back(code, filter_kind, filter_status)


_OUTCOMES = {"not_found": audit.NOT_FOUND, "conflict": audit.INVALID, "invalid": audit.INVALID}


def _apply(
    trail: audit.Audit, principal: Principal, reminder_id: str, action: str, *, until: str, reason: str, comment: str
) -> str:
    """Run one lifecycle action in its own unit of work (its audit row in the same transaction); returns the
    flash code. A refused action is audited on its own."""
    name, resource = f"worklist.reminder.{action}", ("reminder", reminder_id)
    code = _run(trail, principal, reminder_id, action, name, until=until, reason=reason, comment=comment)
    if code in _OUTCOMES:
        trail.read(principal, name, outcome=_OUTCOMES[code], resource=resource)
    return code


def _run(
    trail: audit.Audit,
    principal: Principal,
    reminder_id: str,
    action: str,
    name: str,
    *,
    until: str,
    reason: str,
    comment: str,
) -> str:
    with UnitOfWork() as uow:
        try:
            if action == "acknowledge":
                reminder = lifecycle.acknowledge(uow, principal, reminder_id)
            elif action == "complete":
                reminder = lifecycle.complete(uow, principal, reminder_id)
            elif action == "snooze":
                when = parse_until(until)
                if when is None:
                    return "invalid"
                reminder = lifecycle.snooze(uow, principal, reminder_id, when, reason.strip() or None)
            else:
                reminder = lifecycle.dismiss(uow, principal, reminder_id, reason, comment.strip() or None)
        except lifecycle.ReminderNotFound:
            return "not_found"
        except lifecycle.InvalidTransition:
            return "conflict"
        except lifecycle.InvalidRequest:
            return "invalid"
        trail.write(uow, principal, name, patient_id=reminder.patient_id, resource=("reminder", reminder.id))
        uow.commit()
    return _DONE[action]
