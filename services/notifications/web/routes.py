"""The coordinators' worklist page (server-rendered, plain HTML forms: no JavaScript needed or allowed).

Sign-in goes through the organisation's OpenID Connect provider (web/oidc.py): `/login?org=` →
`/login/start` → the provider → `/login/callback`, which opens a server-side session (shared/sessions.py)
held in an HttpOnly cookie. Every /worklist page goes through one dependency (`worklist_session`, on the
router) that checks that session in the database; a missing, unknown, ended or revoked one is a redirect to
the login page (audited when a cookie was offered). The paste-a-token form exists only in development and
opens the same kind of session. Logout deletes the session. Every POST checks a CSRF token (web/csrf.py)
and answers with a 303 back to the worklist carrying a flash code (a fixed message, never reflected text).
"""

from __future__ import annotations

import logging
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
from services.notifications.web import csrf, oidc, worklist
from shared import abuse, audit, sessions
from shared.auth import ORG_PATTERN, SUBJECT_PATTERN, Principal, decode_token
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


@router.get("/login", response_class=HTMLResponse, responses=PAGE)
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
    responses={**PAGE, 303: {"description": "to the provider"}, 404: {"description": "no provider"}, 502: {}},
)
def login_start(request: Request, org: Annotated[str, Query(max_length=100)] = "") -> Response:
    """Begin the organisation's OpenID Connect sign-in: the pre-login cookie, then the provider."""
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
