"""The request id of what this process is handling now (an HTTP request, or the event it caused), kept
in a context variable that structlog adds to every log line and events.to_envelope copies into the
CloudEvents it creates (extension attribute `carepathrequestid`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

REQUEST_ID_ATTRIBUTE = "carepathrequestid"
REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy sends (nginx's 32 hex digits, a UUID): hex digits and dashes only, so that a client cannot
# put an MRN or a name into every log line through the header.
_VALID = re.compile(r"^[0-9a-fA-F-]{16,64}$")
_request_id: ContextVar[str | None] = ContextVar("carepath_request_id", default=None)


def valid_request_id(value: str | None) -> str | None:
    return value if value is not None and _VALID.fullmatch(value) else None


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def request_id_bound(value: str | None) -> Iterator[None]:
    """While the block runs, `value` is the current request id (logs, new events); None binds nothing."""
    value = valid_request_id(value)
    if value is None:
        yield
        return
    token = _request_id.set(value)
    with structlog.contextvars.bound_contextvars(request_id=value):
        try:
            yield
        finally:
            _request_id.reset(token)
