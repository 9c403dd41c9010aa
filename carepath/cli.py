"""The `carepath` command: run the stack or any one part of it, migrate, issue tokens, re-evaluate."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta

from shared.settings import Settings, get_settings

log = logging.getLogger("carepath.cli")


def _configure_logging(command: str = "carepath") -> None:
    from shared.observability.setup import setup_process  # logs, metrics, heartbeats, tracing

    setup_process(command)


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _run_loops(loops: Sequence[tuple[str, Callable[[threading.Event], None]]]) -> int:
    """Run loops in threads until SIGINT/SIGTERM; a loop that dies stops the process (non-zero)."""
    stop = _stop_event()
    threads = [threading.Thread(target=loop, args=(stop,), name=name, daemon=True) for name, loop in loops]
    for thread in threads:
        thread.start()
    while not stop.is_set():
        stop.wait(1.0)
        if any(not thread.is_alive() for thread in threads):
            log.error("a loop ended unexpectedly; stopping")
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            return 1
    for thread in threads:
        thread.join(timeout=10)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError

    from shared.db.schema import current_revision, head_revision, pending_revisions, upgrade

    settings = get_settings()
    url = settings.effective_database_url
    try:
        before = current_revision(url)
        if args.show:
            pending = pending_revisions(url)
            print(f"database revision: {before or 'none (empty database)'}; code expects: {head_revision()}")
            print("pending: " + ("; ".join(pending) if pending else "none"))
            return 0
        upgrade(url)
        after = current_revision(url)
    except OperationalError as exc:
        return _database_unreachable(exc)
    if before == after:
        print(f"database is at the current schema (revision {after})", file=sys.stderr)
    else:
        print(f"database migrated from {before or 'an empty database'} to revision {after} (head)", file=sys.stderr)
    return 0


def _lifetime(hours: float | None) -> timedelta | None:
    return timedelta(hours=hours) if hours is not None else None


def _database_unreachable(exc: Exception) -> int:
    """One clear line instead of a traceback; the driver's message names no bound values."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    hint = ""
    if "does not exist" in reason:
        hint = " (create it first, e.g. `createdb -h 127.0.0.1 -U postgres carepath`)"
    print(f"carepath migrate: cannot open the database: {reason}{hint}", file=sys.stderr)
    return 1


def cmd_token(args: argparse.Namespace) -> int:
    from shared.auth import create_token

    try:
        print(create_token(get_settings(), args.org, args.role, args.subject, lifetime=_lifetime(args.hours)))
    except ValueError as error:
        print(f"carepath token create: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_token_feed(args: argparse.Namespace) -> int:
    from shared.auth import FEED, create_token

    try:
        token = create_token(
            get_settings(),
            args.org,
            "coordinator",
            args.subject,
            typ=FEED,
            lifetime=timedelta(days=args.days) if args.days is not None else None,
        )
    except ValueError as error:
        print(f"carepath token feed: {error}", file=sys.stderr)
        return 2
    print(token)
    print("subscribe to: <notifications URL>/v1/reminders.ics?token=<the token above>", file=sys.stderr)
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    import jwt

    from shared.auth import revoke_token_or_id

    try:
        token_id = revoke_token_or_id(get_settings(), args.token, "cli")
    except (jwt.PyJWTError, ValueError):
        print("carepath token revoke: not a carepath token or token id", file=sys.stderr)
        return 2
    print(f"revoked {token_id}", file=sys.stderr)
    return 0


def cmd_token_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from shared.token_keys import generate_key_file, key_id, public_pem

    try:
        public = generate_key_file(Path(args.out))
    except FileExistsError:
        print(f"carepath token keygen: {args.out} exists; not overwritten", file=sys.stderr)
        return 2
    print(f"signing key {key_id(public)} written to {args.out} (mode 0600); its public key:", file=sys.stderr)
    print(public_pem(public), end="")
    return 0


EXIT_MISCONFIGURED = 78  # EX_CONFIG (sysexits.h): an orchestrator should not restart it in a loop


# uvicorn's drain bound on SIGTERM: requests still running after it are cancelled. Below compose's default
# 10 s stop grace and carepath up's GRACE_SECONDS (20 s), so the orchestrator never has to SIGKILL a draining
# service (docs/reliability.md, "Graceful shutdown").
HTTP_DRAIN_SECONDS = 8


def _freeze_imports(app_path: str) -> None:
    """Import the app's modules, then move everything alive into the collector's permanent generation: the
    cyclic garbage collector's full passes then skip the hundreds of thousands of objects of the imported
    libraries (FastAPI, SQLAlchemy, matplotlib) instead of scanning them again and again. Measured on the
    patient page's chart: p95 CPU 89 → 65 ms, worst case 268 → 79 ms (docs/performance.md)."""
    import gc
    import importlib

    importlib.import_module(app_path.partition(":")[0])
    gc.collect()
    gc.freeze()


def _serve(app_path: str, port: int, host: str) -> int:
    import uvicorn

    from shared.observability.setup import configuration_problem

    problem = configuration_problem()
    if problem is not None:  # refuse to start rather than report ready and answer every request with a 500
        print(f"carepath: not starting: {problem}", file=sys.stderr)
        return EXIT_MISCONFIGURED
    _freeze_imports(app_path)
    uvicorn.run(
        app_path,
        factory=True,
        host=host,
        port=port,
        log_level=get_settings().log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=HTTP_DRAIN_SECONDS,
        log_config=None,  # uvicorn logs through the root handler: one format (shared/observability/logs.py)
    )
    return 0


def cmd_intake(_: argparse.Namespace) -> int:
    settings = get_settings()
    return _serve("carepath.apps:create_intake_app", settings.intake_port, settings.intake_host)


def cmd_notifications(_: argparse.Namespace) -> int:
    settings = get_settings()
    return _serve("carepath.apps:create_notifications_app", settings.notifications_port, settings.notifications_host)


def worker_argv(args: argparse.Namespace, settings: Settings) -> list[str]:
    """The Celery worker's command line for these arguments and settings."""
    from shared.messaging.routing import QUEUES

    argv = [
        "worker",
        "--queues",
        args.queues or ",".join(QUEUES),
        "--concurrency",
        str(args.concurrency or settings.worker_concurrency),
        "--loglevel",
        settings.log_level,
        "--without-gossip",
        "--without-mingle",
    ]
    # Task events and worker heartbeats are what Flower and `celery events` show (docs/operations.md).
    argv += ["--task-events"] if settings.task_events else ["--without-heartbeat"]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    if settings.json_logs:
        argv.insert(0, "--quiet")  # no banner: every line on stderr is a JSON log line
    return argv


def cmd_worker(args: argparse.Namespace) -> int:
    from carepath.apps import TASK_MODULES
    from shared.messaging.celery_app import get_celery

    settings = get_settings()
    celery = get_celery()
    celery.conf.include = list(TASK_MODULES)
    from shared.observability.worker import instrument

    instrument(celery)
    argv = worker_argv(args, settings)
    celery.worker_main(argv)
    return 0


def cmd_relay(_: argparse.Namespace) -> int:
    from shared.messaging.celery_app import get_celery
    from shared.messaging.publisher import CeleryPublisher
    from shared.messaging.relay import run_relay

    publisher = CeleryPublisher(get_celery())
    return _run_loops([("relay", lambda stop: run_relay(publisher, stop))])


def cmd_scheduler(_: argparse.Namespace) -> int:
    from services.notifications.channels.dispatcher import run_dispatcher
    from services.notifications.scheduler import run_scheduler
    from services.pathway.reevaluation import run_reevaluations
    from services.pathway.scheduling import run_reevaluation_scheduler

    return _run_loops(
        [
            ("reminders", run_scheduler),
            ("channels", run_dispatcher),
            ("timed-reevaluation", run_reevaluation_scheduler),
            ("rule-change-reevaluation", run_reevaluations),
        ]
    )


def cmd_events_list(_: argparse.Namespace) -> int:
    from shared.messaging.deadletter import parked

    rows = parked()
    for row in rows:  # ids, types and the error's class only: the message may quote a value
        error_type = row.error.split(":", 1)[0]
        print(
            f"{row.id}\t{row.consumer}\t{row.event_type or '-'}\t{row.event_key}\t{row.reason}\t{error_type}"
            f"\tattempts={row.attempts}\tparked_at={row.parked_at:%Y-%m-%dT%H:%M:%SZ}"
        )
    print(f"{len(rows)} parked event(s)", file=sys.stderr)
    return 0


def cmd_events_retry(args: argparse.Namespace) -> int:
    from shared.messaging.deadletter import NotRetryable, retry

    try:
        row = retry(args.id)
    except LookupError as exc:
        print(f"carepath events retry: {exc}", file=sys.stderr)
        return 1
    except NotRetryable as exc:
        print(f"carepath events retry: {exc}", file=sys.stderr)
        return 2
    print(f"event {row.event_key} back on the outbox for {row.consumer}", file=sys.stderr)
    return 0


def cmd_up(_: argparse.Namespace) -> int:
    from carepath.supervisor import run_stack

    return run_stack()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carepath", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole stack in the foreground (Ctrl-C stops it)").set_defaults(func=cmd_up)
    migrate = sub.add_parser("migrate", help="bring the database to the current schema (names the revision)")
    migrate.add_argument("--show", action="store_true", help="print the current and pending revisions; change nothing")
    migrate.set_defaults(func=cmd_migrate)
    sub.add_parser("intake", help="run the intake HTTP service").set_defaults(func=cmd_intake)
    sub.add_parser("notifications", help="run the notifications HTTP service").set_defaults(func=cmd_notifications)
    worker = sub.add_parser("worker", help="run a Celery worker (pathway, notifications, channels queues)")
    worker.add_argument("--queues", help="comma-separated queues (default: all)")
    worker.add_argument("--concurrency", type=int, help="worker processes (default: CAREPATH_WORKER_CONCURRENCY)")
    worker.add_argument("--hostname", help="Celery node name")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("relay", help="publish the outbox to the broker").set_defaults(func=cmd_relay)
    sub.add_parser("scheduler", help="deliver due reminders, channel deliveries and timed re-evaluations").set_defaults(
        func=cmd_scheduler
    )
    events = sub.add_parser("events", help="parked (dead-letter) events").add_subparsers(
        dest="events_command", required=True
    )
    events.add_parser("list", help="list parked events").set_defaults(func=cmd_events_list)
    retry = events.add_parser("retry", help="put a parked event back on the outbox")
    retry.add_argument("id", type=int, help="the dead-letter id (from `carepath events list`)")
    retry.set_defaults(func=cmd_events_retry)
    token = sub.add_parser("token", help="bearer tokens").add_subparsers(dest="token_command", required=True)
    create = token.add_parser("create", help="print a bearer token")
    create.add_argument("--org", required=True)
    create.add_argument("--role", required=True, choices=["client", "coordinator", "ops"])
    create.add_argument("--subject", help="who the token is for (default: generated)")
    create.add_argument(
        "--hours", type=float, help="lifetime (default and maximum: CAREPATH_TOKEN_MAX_HOURS, or the client one)"
    )
    create.set_defaults(func=cmd_token)
    feed = token.add_parser("feed", help="print a read-only calendar feed token (reminders.ics?token=) only")
    feed.add_argument("--org", required=True)
    feed.add_argument("--subject", help="the coordinator it is for (default: generated)")
    feed.add_argument("--days", type=float, help="lifetime (default and maximum: CAREPATH_FEED_TOKEN_MAX_DAYS)")
    feed.set_defaults(func=cmd_token_feed)
    revoke = token.add_parser("revoke", help="make a token unusable at once, on every process")
    revoke.add_argument("token", help="the token itself, or its id (jti)")
    revoke.set_defaults(func=cmd_token_revoke)
    keygen = token.add_parser("keygen", help="write a new Ed25519 signing key; prints its public key (PEM)")
    keygen.add_argument("--out", required=True, help="file for the private key (created 0600)")
    keygen.set_defaults(func=cmd_token_keygen)
    from services.pathway.commands import add_commands as add_pathway_commands  # config, reevaluate

    add_pathway_commands(sub)
    from shared.audit import add_commands as add_audit_commands  # audit export

    add_audit_commands(sub)
    from services.notifications.web.oidc import add_commands as add_oidc_commands  # oidc set / show
    from shared.sessions import add_commands as add_session_commands  # session list / revoke

    add_oidc_commands(sub)
    add_session_commands(sub)
    from carepath.health import add_commands as add_health_commands  # carepath health <part>

    add_health_commands(sub)
    from bench.harness import add_command as add_bench_command  # carepath bench (bench/harness)

    add_bench_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.command)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
