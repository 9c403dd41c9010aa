"""Settings from environment variables (prefix CAREPATH_). Cached, no I/O at import."""

from __future__ import annotations

import contextlib
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.files import private_dir, write_private_file

EMBEDDED_BROKER = "filesystem://"
# The CDC opioid guideline's RxNorm value sets and MME factors (shared/data/opioid-cds beside the checkout).
DEFAULT_OPIOID_CDS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "opioid-cds"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREPATH_", extra="ignore")

    env: str = Field("development", description="development | production")
    var_dir: Path = Field(Path("var"), description="where the embedded default keeps its files")
    database_url: str = Field("", description="sqlite:///… or postgresql+psycopg://…; default ./var/carepath.db")
    broker_url: str = Field(EMBEDDED_BROKER, description="redis://…, amqp://… or filesystem:// (embedded)")
    intake_host: str = "127.0.0.1"
    intake_port: int = 8000
    notifications_host: str = "127.0.0.1"
    notifications_port: int = 8001
    secret_key: str = Field("", description="service secret (CSRF keys); default: a key file under var_dir")
    token_signing_key: str = Field(
        "", description="Ed25519 private key (PEM text or file) that mints tokens; only `carepath token` needs it"
    )
    token_verify_keys: str = Field(
        "", description="Ed25519 public keys (PEM text or file) accepted besides the signing key's: rollover"
    )
    token_max_hours: float = Field(8, gt=0, le=24 * 31, description="longest lifetime of coordinator/ops tokens")
    client_token_max_hours: float = Field(
        720, gt=0, le=24 * 366, description="longest lifetime of client (integration) tokens"
    )
    feed_token_max_days: float = Field(90, gt=0, le=366, description="longest lifetime of calendar feed tokens")
    open_docs_and_metrics: bool | None = Field(
        None, description="/docs, /openapi.json and /metrics without a token; default: only in development"
    )
    trust_forwarded_proto: bool = Field(
        False, description="a proxy's X-Forwarded-Proto: https counts as TLS (HSTS, Secure cookies)"
    )
    session_idle_minutes: float = Field(
        30, gt=0, le=24 * 60, description="a worklist session unused this long ends (sign in again)"
    )
    session_absolute_hours: float = Field(
        8, gt=0, le=24 * 7, description="a worklist session ends this long after sign-in, however active"
    )
    encryption_keys: str = Field(
        "",
        description="Fernet keys (comma-separated, newest first) encrypting secrets at rest (OIDC client secrets);"
        " default: derived from the service secret",
    )
    public_base_url: str = Field(
        "", description="the notifications service's external URL (OIDC redirect URI); default: from the request"
    )
    relay_interval: float = Field(0.2, gt=0, description="seconds between outbox polls")
    relay_lease_seconds: float = Field(30.0, gt=0, description="republish an unconfirmed outbox row after this")
    relay_batch: int = Field(200, gt=0)
    outbox_retention_days: float = Field(7, gt=0, description="finished outbox rows are deleted after this")
    dedupe_retention_days: float = Field(
        30, gt=0, description="consumer de-duplication records are kept this long (far beyond any redelivery)"
    )
    scheduler_max_sleep: float = Field(0.5, gt=0, description="longest scheduler sleep between due checks")
    scheduler_batch: int = Field(500, gt=0)
    scheduler_lease_seconds: float = Field(15.0, gt=0, description="a killed scheduler's claims are retaken after this")
    worker_concurrency: int = Field(2, gt=0)
    worker_task_events: bool | None = Field(
        None,
        description="worker sends Celery task and heartbeat events (Flower, `celery events`); default: on with a "
        "network broker (Redis, AMQP), off with the embedded one",
    )
    log_level: str = "INFO"
    allow_private_webhooks: bool = Field(False, description="permit loopback/private webhook URLs (tests, dev)")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "carepath@localhost"
    opioid_cds_dir: Path = Field(
        DEFAULT_OPIOID_CDS_DIR,
        description="folder with valuesets/*.json and mme_conversion_factors.csv (FHIR medication mapping)",
    )
    log_format: str = Field(
        "", description="text | json; default: json when CAREPATH_ENV=production, readable text otherwise"
    )
    metrics_port: int | None = Field(
        None, description="worker, relay, scheduler: serve /metrics on this port (HTTP services use /metrics)"
    )
    heartbeat_dir: Path | None = Field(
        None, description="where worker, relay and scheduler loops write heartbeats; default var_dir/heartbeats"
    )
    heartbeat_max_age: float = Field(
        30.0, gt=0, description="`carepath health` fails when a loop has not beaten for this many seconds"
    )
    otlp_endpoint: str = Field(
        "", description="OTLP/HTTP traces endpoint (http://collector:4318/v1/traces); empty: tracing off"
    )
    dead_letter_after: int = Field(
        5, gt=0, description="failed deliveries of one event to one consumer before it is parked (dead letter)"
    )
    rate_limits_enabled: bool = Field(True, description="enforce the request, sign-in and notification limits")
    rate_limit_per_token: str = Field(
        "600/minute", description="requests one token may make (moving window, `limits` notation); then 429"
    )
    rate_limit_per_org: str = Field("6000/minute", description="requests all tokens of one organisation may make")
    rate_limit_storage: str = Field(
        "", description="counter storage (redis://…, memory://); default: the Redis broker, else process memory"
    )
    rate_limit_prefix: str = Field("carepath-limits", max_length=100, description="key prefix of the counters")
    login_limit_per_client: str = Field("20/minute", description="worklist sign-in attempts per client address")
    login_limit_per_subject: str = Field("10/minute", description="worklist sign-in attempts naming one subject")
    what_if_concurrency: int = Field(4, gt=0, description="what-if evaluations running at once in one process")
    what_if_queue_seconds: float = Field(2.0, ge=0, description="how long a what-if waits for a slot before 429")
    what_if_max_body_bytes: int = Field(1024 * 1024, gt=0, description="largest what-if body; larger is 413")
    overview_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="how long a process reuses an organisation's population overview (the page says as of when); "
        "0 computes it on every view",
    )
    notifications_per_patient_per_day: int = Field(
        20, gt=0, description="webhook/email notifications per patient per UTC day; beyond, deliveries are held"
    )
    idempotency_retention_days: float = Field(
        7, gt=0, description="Idempotency-Key records are deleted after this (a retry after that is new work)"
    )
    delivery_retention_days: float = Field(
        90, gt=0, description="finished (delivered, failed, cancelled, held) channel deliveries are deleted after this"
    )

    clock_offset_seconds: float = Field(
        0.0,
        description=(
            "tests only: this process's clock runs this many seconds ahead (negative: behind) of the wall clock;"
            " refused (the process does not start) unless CAREPATH_ENV is development"
        ),
    )

    @model_validator(mode="after")
    def _clock_offset_only_in_development(self) -> Settings:
        if self.clock_offset_seconds and self.env != "development":
            raise ValueError("CAREPATH_CLOCK_OFFSET_SECONDS is for tests: refused outside CAREPATH_ENV=development")
        return self

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("CAREPATH_DATABASE_URL must be sqlite:///… or postgresql+psycopg://…")
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'carepath.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem")

    @property
    def task_events(self) -> bool:
        return not self.is_embedded_broker if self.worker_task_events is None else self.worker_task_events

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" if self.log_format else self.env == "production"

    @property
    def docs_and_metrics_open(self) -> bool:
        if self.open_docs_and_metrics is not None:
            return self.open_docs_and_metrics
        return self.env == "development"

    def signing_key(self) -> str:
        """The service secret (CSRF keys, derived token keys outside development): the configured one, or
        (development) a key file created once under var_dir. API tokens are Ed25519 (shared/token_keys.py)."""
        if self.secret_key:
            if self.env != "development" and len(self.secret_key) < 32:
                raise RuntimeError("CAREPATH_SECRET_KEY must be at least 32 characters outside development")
            return self.secret_key
        if self.env != "development":
            raise RuntimeError("CAREPATH_SECRET_KEY is required outside development")
        path = self.var_dir / "secret.key"
        if not path.exists():
            private_dir(path.parent)
            with contextlib.suppress(FileExistsError):  # another process created it first
                write_private_file(path, secrets.token_urlsafe(48).encode())
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
