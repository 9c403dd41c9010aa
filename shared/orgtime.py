"""The organisation's time zone: where its coordinators read times and count business days.

Stored as an IANA name on `org_config.timezone` (`carepath config set --org ORG --timezone Europe/Berlin`);
no configuration means UTC. Instants stay UTC everywhere (database, API, events): the zone only decides how
a time is shown (`shown`: "2027-03-29 10:00 CEST") and where a local day begins (escalation business days).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import select
from sqlmodel import col

from shared.clock import as_utc, utcnow
from shared.db.tables import OrgConfig
from shared.db.uow import UnitOfWork

DEFAULT_TIMEZONE = "UTC"
MAX_NAME = 64


class InvalidTimezone(ValueError):
    """Not an IANA time zone name that this machine's zone database knows."""


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(available_timezones()) | {DEFAULT_TIMEZONE}


def validated(name: str) -> str:
    """The name, if it is an IANA zone ("Europe/Berlin", "America/New_York", "UTC"); else InvalidTimezone."""
    candidate = name.strip()
    if not candidate or len(candidate) > MAX_NAME or candidate not in _known():
        raise InvalidTimezone(
            f"unknown time zone {name[:MAX_NAME]!r}: give an IANA name such as Europe/Berlin or America/New_York"
        )
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimezone(f"unknown time zone {candidate!r}") from None
    return candidate


@lru_cache(maxsize=256)
def zone(name: str | None) -> tzinfo:
    """The zone of a stored name; UTC for none (or a name this machine no longer knows)."""
    if not name or name == DEFAULT_TIMEZONE:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def timezone_name(uow: UnitOfWork, org: str) -> str:
    stored = uow.session.execute(select(col(OrgConfig.timezone)).where(col(OrgConfig.org) == org)).scalar()
    return stored or DEFAULT_TIMEZONE


def zone_of(uow: UnitOfWork, org: str) -> tzinfo:
    return zone(timezone_name(uow, org))


def zones_of(uow: UnitOfWork, orgs: Iterable[str]) -> dict[str, tzinfo]:
    """Each organisation's zone (UTC for those without one), in one query."""
    wanted = sorted(set(orgs))
    found: dict[str, tzinfo] = dict.fromkeys(wanted, UTC)
    if wanted:
        statement = select(col(OrgConfig.org), col(OrgConfig.timezone)).where(col(OrgConfig.org).in_(wanted))
        for org, name in uow.session.execute(statement).all():
            found[org] = zone(name)
    return found


def set_timezone(uow: UnitOfWork, org: str, name: str) -> bool:
    """Store the organisation's zone (validated first: nothing is stored for a bad name); True if it changed.
    No commit."""
    chosen = validated(name)
    config = uow.session.get(OrgConfig, org)
    if config is not None and (config.timezone or DEFAULT_TIMEZONE) == chosen:
        return False
    config = config or OrgConfig(org=org, overrides={}, updated_at=utcnow())
    config.timezone = None if chosen == DEFAULT_TIMEZONE else chosen
    config.updated_at = utcnow()
    uow.session.add(config)
    uow.session.flush()
    return True


def local(value: datetime, where: tzinfo) -> datetime:
    return as_utc(value).astimezone(where)


def abbreviation(value: datetime, where: tzinfo) -> str:
    """The zone's abbreviation at that instant ("CET", "CEST", "EDT"); the zone offset where it has none."""
    moment = local(value, where)
    name = moment.tzname() or "UTC"
    if name[:1] in "+-":  # zones without an abbreviation (e.g. Asia/Dubai: "+04")
        return f"UTC{name}"
    return name


def shown(value: datetime | None, where: tzinfo, *, with_zone: bool = True) -> str:
    """How people read an instant in that zone: "2027-03-29 10:00 CEST"."""
    if value is None:
        return ""
    text = local(value, where).strftime("%Y-%m-%d %H:%M")
    return f"{text} {abbreviation(value, where)}" if with_zone else text


def local_date(value: datetime, where: tzinfo) -> str:
    return local(value, where).strftime("%Y-%m-%d")
