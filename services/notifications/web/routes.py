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
from shared.auth import Principal, decode_token, principal_from_request, revoke_token_or_id
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


@router.post("/login", response_class=HTMLResponse, responses={**FORM_ERRORS, 401: {"description": "bad token"}})
def login(
    request: Request,
    token: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if (refused := _check_csrf(request, csrf_token)) is not None:
        return refused
    try:
        principal = decode_token(get_settings(), token.strip())
    except jwt.PyJWTError:  # malformed, expired or forged: simply "not accepted"
        return _render(request, "login.html", {"error": "That token was not accepted."}, status_code=401)
    if principal.role not in WORKLIST_ROLES:
        return _render(
            request, "login.html", {"error": "Only coordinator or ops tokens can use the worklist."}, status_code=403
        )
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
        with contextlib.suppress(jwt.PyJWTError, ValueError):  # not a token of ours: nothing to revoke
            revoke_token_or_id(get_settings(), session_token, "logout", allow_bare_id=False)
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
    if principal.role not in WORKLIST_ROLES:
        return _forbidden(request, "Only coordinators and ops can use the worklist.")
    status = status if status in worklist.WORKLIST_STATUSES else None
    now = utcnow()
    with UnitOfWork(read_only=True) as uow:
        rows = worklist.rows(
            uow, principal.org, now, kind=kind or None, statuses=(status,) if status else worklist.WORKLIST_STATUSES
        )
        kinds = sorted(set(worklist.kinds(uow, principal.org)) | ({kind} if kind else set()))
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
    if (refused := _check_csrf(request, csrf_token)) is not None:
        return refused
    if principal.role not in WORKLIST_ROLES:
        return _forbidden(request, "Only coordinators and ops can act on reminders.")
    code = _apply(principal, reminder_id, action, until=until, reason=reason, comment=comment)
    return _back(code, filter_kind, filter_status)


def _apply(principal: Principal, reminder_id: str, action: str, *, until: str, reason: str, comment: str) -> str:
    """Run one lifecycle action in its own unit of work; returns the flash code."""
    with UnitOfWork() as uow:
        try:
            if action == "acknowledge":
                lifecycle.acknowledge(uow, principal, reminder_id)
            elif action == "complete":
                lifecycle.complete(uow, principal, reminder_id)
            elif action == "snooze":
                when = parse_until(until)
                if when is None:
                    return "invalid"
                lifecycle.snooze(uow, principal, reminder_id, when, reason.strip() or None)
            else:
                lifecycle.dismiss(uow, principal, reminder_id, reason, comment.strip() or None)
        except lifecycle.ReminderNotFound:
            return "not_found"
        except lifecycle.InvalidTransition:
            return "conflict"
        except lifecycle.InvalidRequest:
            return "invalid"
        uow.commit()
    return _DONE[action]
