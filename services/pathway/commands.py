"""`carepath config` and `carepath reevaluate` (registered by carepath/cli.py). Thin: parse, call one use case,
print. Exit 2 on invalid input. Output carries ids and counts only, never patient details."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

EXIT_INVALID = 2


def add_commands(sub: Any) -> None:
    config = sub.add_parser("config", help="an organisation's pathway profile and parameters").add_subparsers(
        dest="config_command", required=True
    )
    show = config.add_parser("show", help="print the organisation's pathway configuration (JSON)")
    show.add_argument("--org", required=True)
    show.set_defaults(func=cmd_config_show)
    change = config.add_parser("set", help="change the profile or parameters; re-evaluates the organisation")
    change.add_argument("--org", required=True)
    change.add_argument("--profile", help="policy profile: asra-2020 | us-medicare-lcd")
    change.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    change.add_argument(
        "--clear-param",
        action="append",
        default=[],
        metavar="NAME",
        help="drop an override (back to the profile's default)",
    )
    change.add_argument(
        "--timezone",
        help="the organisation's IANA time zone (e.g. Europe/Berlin; default UTC): pages, emails, the calendar "
        "feed and escalation business days use it",
    )
    change.add_argument("--rate", type=_positive, help="re-evaluation pace, patients per second (default 50)")
    change.set_defaults(func=cmd_config_set)
    reevaluate = sub.add_parser(
        "reevaluate",
        help="re-evaluate patients through the worker in paced, resumable batches",
        description="Starts (or resumes) a run per organisation and drives it in the foreground; a killed "
        "run resumes where it stopped. Without --org/--all: drive the unfinished runs.",
    )
    scope = reevaluate.add_mutually_exclusive_group()
    scope.add_argument("--org", help="every patient of this organisation")
    scope.add_argument("--all", action="store_true", help="every patient of every organisation")
    reevaluate.add_argument("--rate", type=_positive, help="patients per second per run (default 50)")
    reevaluate.add_argument(
        "--max-backlog",
        type=int,
        default=None,
        help="wait while more pathway events than this are unprocessed (0: never wait)",
    )
    reevaluate.add_argument(
        "--dry-run",
        action="store_true",
        help="evaluate every patient in memory against its latest stored assessment and print what would "
        "change (stage, flags, reminders) per organisation; stores nothing (default scope: --all; "
        "read in batches of 100 at --rate patients/s, default 1000)",
    )
    reevaluate.add_argument("--json", action="store_true", help="with --dry-run: print JSON instead of a table")
    reevaluate.set_defaults(func=cmd_reevaluate)
    cds = sub.add_parser("cds-client", help="CDS Hooks clients (EHRs) whose JWTs are accepted").add_subparsers(
        dest="cds_command", required=True
    )
    register = cds.add_parser("register", help="register (or re-key) a CDS client of an organisation")
    register.add_argument("--org", required=True)
    register.add_argument("--issuer", required=True, help="the client's JWT iss")
    keys = register.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-url", help="the client's JWKS URL (fetched and cached)")
    keys.add_argument("--jwk-file", help="a file with the client's public JWK or JWKS (stored inline)")
    register.add_argument(
        "--fhir-server",
        action="append",
        metavar="URL",
        help="a FHIR server base URL its calls may name as fhirServer (repeatable; none: carepath never fetches)",
    )
    register.set_defaults(func=cmd_cds_client_register)


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def cmd_config_show(args: argparse.Namespace) -> int:
    from services.pathway.config import describe_config
    from shared.db.uow import UnitOfWork

    with UnitOfWork(read_only=True) as uow:
        print(json.dumps(describe_config(uow, args.org), indent=2, sort_keys=True))
    return 0


def cmd_config_set(args: argparse.Namespace) -> int:
    from services.pathway.config import (
        DEFAULT_RATE,
        ConfigError,
        describe_config,
        edit_config,
        parse_assignments,
    )
    from shared import orgtime
    from shared.db.uow import UnitOfWork

    try:
        with UnitOfWork() as uow:
            zone_changed = args.timezone is not None and orgtime.set_timezone(uow, args.org, args.timezone)
            change = edit_config(
                uow,
                args.org,
                profile=args.profile,
                set_params=parse_assignments(args.param),
                clear=args.clear_param,
                requested_by="cli",
                rate=args.rate or DEFAULT_RATE,
            )
            uow.commit()
            print(json.dumps(describe_config(uow, args.org), indent=2, sort_keys=True))
    except (ConfigError, orgtime.InvalidTimezone) as exc:
        print(f"carepath config set: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if zone_changed:
        print(f"time zone of {args.org} set to {orgtime.validated(args.timezone)}", file=sys.stderr)
    if change.run_id:
        print(
            f"re-evaluation run {change.run_id} started; the scheduler drives it (or run `carepath reevaluate`)",
            file=sys.stderr,
        )
    elif not change.changed and not zone_changed:
        print("no change", file=sys.stderr)
    return 0


def _start_runs(args: argparse.Namespace) -> list[str] | None:
    """Runs to drive: started/resumed for --org/--all, or None (every unfinished run)."""
    from services.pathway.reevaluation import DEFAULT_RATE, known_orgs, serialise_run_changes, start_run
    from shared.db.uow import UnitOfWork

    if not (args.org or args.all):
        return None
    with UnitOfWork() as uow:
        serialise_run_changes(uow)
        orgs = [args.org] if args.org else known_orgs(uow)
        rate = args.rate or DEFAULT_RATE
        runs = [start_run(uow, org, "manual", rate=rate, requested_by="cli") for org in orgs]
        for run in runs:
            run.rate = args.rate or run.rate  # a resumed run takes the pace asked for now
        uow.commit()
        for run in runs:
            print(f"run {run.id}: {run.enqueued}/{run.total} patients enqueued so far", file=sys.stderr)
        return [run.id for run in runs]


def cmd_dry_run(args: argparse.Namespace) -> int:
    from services.pathway.dryrun import DEFAULT_RATE as DRY_RUN_RATE
    from services.pathway.dryrun import forecast, render_table
    from services.pathway.reevaluation import known_orgs
    from shared.db.uow import UnitOfWork

    if args.org:
        orgs = [args.org]
    else:
        with UnitOfWork(read_only=True) as uow:
            orgs = known_orgs(uow)
    try:
        report = forecast(orgs, rate=args.rate or DRY_RUN_RATE)
    except ValueError as exc:  # an organisation's stored configuration no longer validates
        print(f"carepath reevaluate --dry-run: {exc}", file=sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n" if args.json else render_table(report))
    return 0


def cmd_reevaluate(args: argparse.Namespace) -> int:
    from services.pathway.reevaluation import DEFAULT_MAX_BACKLOG, drive_runs

    if args.dry_run:
        return cmd_dry_run(args)
    if args.json:
        print("carepath reevaluate: --json needs --dry-run", file=sys.stderr)
        return EXIT_INVALID

    try:
        run_ids = _start_runs(args)
    except ValueError as exc:  # an organisation's stored configuration no longer validates
        print(f"carepath reevaluate: {exc}", file=sys.stderr)
        return EXIT_INVALID
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    max_backlog = DEFAULT_MAX_BACKLOG if args.max_backlog is None else args.max_backlog
    enqueued = drive_runs(stop, run_ids, max_backlog=max_backlog)
    state = "interrupted; run `carepath reevaluate` again to resume" if stop.is_set() else "done"
    print(f"{enqueued} patients enqueued for re-evaluation; {state}", file=sys.stderr)
    return 0 if not stop.is_set() else 130


def cmd_cds_client_register(args: argparse.Namespace) -> int:
    from pathlib import Path

    from services.pathway.cds.clients import InvalidClient, read_jwks, register

    try:
        jwks = read_jwks(Path(args.jwk_file)) if args.jwk_file else None
        client = register(args.org, args.issuer, args.jwks_url, jwks, fhir_servers=args.fhir_server or [])
    except InvalidClient as problem:
        print(f"carepath cds-client register: {problem}", file=sys.stderr)
        return EXIT_INVALID
    shown = {"id": client.id, "org": client.org, "issuer": client.issuer, "fhir_servers": client.fhir_servers or []}
    print(json.dumps(shown))
    return 0
