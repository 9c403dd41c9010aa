"""One log format for carepath, uvicorn and Celery: stdlib logging rendered by structlog's
ProcessorFormatter. JSON lines in production (CAREPATH_ENV=production or CAREPATH_LOG_FORMAT=json), readable
text in development. Each line carries the process's part and, while a request or an event is handled, its
request id. Log ids, counts, types and route templates, never submitted values (they can be PHI)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

from shared.settings import get_settings

_part = "carepath"
EXTRA_FIELDS = ("exc_type", "route", "frames")


def _add_part(_: Any, __: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("part", _part)
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return event_dict


def configure_logging(part: str = "carepath") -> None:
    global _part
    _part = part
    settings = get_settings()
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # Only our own extra fields: Celery passes its task arguments (whole envelopes) as `data`.
        structlog.stdlib.ExtraAdder(allow=EXTRA_FIELDS),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_part,
    ]
    if settings.json_logs:
        final: list[Processor] = [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        final = [structlog.dev.ConsoleRenderer(colors=False)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level.upper())
    logging.captureWarnings(True)  # warnings (Celery's, a library's) in the same format
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "alembic"):
        logging.getLogger(name).handlers = []  # propagate to the root handler: one format
        logging.getLogger(name).propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
