"""Per-organisation pathway configuration: the policy profile and parameter overrides (pathway-spec §5).

Every value is validated through the engine's own `params_for`, stored in canonical form (fractions as
"n/d"), and a change that alters the parameters' digest starts a re-evaluation run of the organisation in
the same transaction: the configuration and the promise to apply it commit together. These functions
never commit; the caller's unit of work does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.pathway.reevaluation import DEFAULT_RATE, latest_run, serialise_run_changes, start_run
from services.pathway.rules import PROFILES, RULE_SET_VERSION, Params, params_for
from shared import orgtime
from shared.clock import isoformat, utcnow
from shared.db.tables import OrgConfig, ReevaluationRun
from shared.db.uow import UnitOfWork

DEFAULT_PROFILE = "asra-2020"


class ConfigError(ValueError):
    """The requested configuration is invalid (unknown profile or parameter, bad value)."""


@dataclass(frozen=True)
class ConfigChange:
    changed: bool
    run_id: str | None  # the re-evaluation run the change started (None if the parameters are the same)


def _validated(profile: str, overrides: Mapping[str, Any]) -> tuple[Params, dict[str, Any]]:
    try:
        params = params_for(profile, overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    canonical = params.as_json_dict()
    return params, {name: canonical[name] for name in sorted(overrides)}


def _stored(uow: UnitOfWork, org: str) -> tuple[str, dict[str, Any]]:
    config = uow.session.get(OrgConfig, org)
    if config is None:
        return DEFAULT_PROFILE, {}
    return config.profile, dict(config.overrides)


def _run_summary(run: ReevaluationRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "status": run.status,
        "reason": run.reason,
        "enqueued": run.enqueued,
        "total": run.total,
        "rule_set_version": run.rule_set_version,
        "params_digest": run.params_digest,
        "created_at": isoformat(run.created_at),
        "finished_at": isoformat(run.finished_at),
    }


def _stored_params(profile: str, overrides: Mapping[str, Any]) -> Params | None:
    """The stored configuration's parameters; None if it no longer validates (a rule set dropped a name)."""
    try:
        return params_for(profile, overrides)
    except ValueError:
        return None


def describe_config(uow: UnitOfWork, org: str) -> dict[str, Any]:
    """The organisation's profile, its overrides, every effective parameter, and the latest run."""
    profile, overrides = _stored(uow, org)
    params = _stored_params(profile, overrides)
    config = uow.session.get(OrgConfig, org)
    return {
        "org": org,
        "rule_set_version": RULE_SET_VERSION,
        "profile": profile,
        "profiles": sorted(PROFILES),
        "overrides": overrides,
        "params": params.as_json_dict() if params else None,
        "params_digest": params.digest() if params else None,
        "valid": params is not None,
        "updated_at": isoformat(config.updated_at) if config else None,
        "timezone": orgtime.timezone_name(uow, org),
        "reevaluation": _run_summary(latest_run(uow, org)),
    }


def replace_config(
    uow: UnitOfWork,
    org: str,
    profile: str,
    overrides: Mapping[str, Any],
    *,
    requested_by: str,
    rate: float = DEFAULT_RATE,
) -> ConfigChange:
    """Set the profile and the complete set of overrides; re-evaluate the organisation if that changes
    any parameter."""
    params, canonical = _validated(profile, overrides)
    serialise_run_changes(uow)
    old_profile, old_overrides = _stored(uow, org)
    if (old_profile, old_overrides) == (profile, canonical):
        return ConfigChange(changed=False, run_id=None)
    old_params = _stored_params(old_profile, old_overrides)
    old_digest = old_params.digest() if old_params else ""
    config = uow.session.get(OrgConfig, org) or OrgConfig(org=org, updated_at=utcnow())
    config.profile, config.overrides, config.updated_at = profile, canonical, utcnow()
    uow.session.add(config)
    uow.session.flush()
    if params.digest() == old_digest:
        return ConfigChange(changed=True, run_id=None)
    run = start_run(uow, org, "params_changed", rate=rate, requested_by=requested_by)
    return ConfigChange(changed=True, run_id=run.id)


def edit_config(
    uow: UnitOfWork,
    org: str,
    *,
    profile: str | None = None,
    set_params: Mapping[str, Any] | None = None,
    clear: Iterable[str] = (),
    requested_by: str,
    rate: float = DEFAULT_RATE,
) -> ConfigChange:
    """Change some of the configuration (the CLI): a new profile, overrides to set, overrides to clear."""
    old_profile, overrides = _stored(uow, org)
    known = set(Params.__dataclass_fields__) - {"profile"}
    for name in clear:
        if name not in known and name not in overrides:  # a stale name may always be cleared
            raise ConfigError(f"unknown pathway parameter {name!r}")
        overrides.pop(name, None)
    overrides.update(set_params or {})
    return replace_config(uow, org, profile or old_profile, overrides, requested_by=requested_by, rate=rate)


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """`name=value` pairs from the command line; values are JSON numbers where they parse ("28", "0.3"),
    else kept as text (a fraction such as "1/4"); `params_for` then validates them."""
    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip() or not raw.strip():
            raise ConfigError(f"expected name=value, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw.strip()
        values[name.strip()] = value
    return values
