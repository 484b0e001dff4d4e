"""Typed settings of the serving process, read from `TRIAGE_*` environment variables.

Nothing is read at import: `get_settings()` builds the object on first call and caches it, and tests
pass their own `Settings(...)` to `serving.app.create_app`.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from serving.deadline import DB_CALL_THREADS
from store.engine import default_database_url

#: Hard ceilings the request schemas enforce; the settings below may only lower them.
MAX_TEXT_CHARS = 20_000
MAX_BATCH = 1_000
#: Worst case bytes one character takes in a JSON body (a `\uXXXX` escape, as `json.dumps` writes
#: Chinese by default); used to derive the request-size limit from the text and batch limits.
JSON_BYTES_PER_CHAR = 6
#: Room for ids, field names, dates and punctuation around one case's text.
CASE_OVERHEAD_BYTES = 2_048

DEFAULT_MODEL_URI = "models:/grievance-triage@champion"
#: One browser origin, as browsers send it in `Origin`.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")


def default_spool_dir() -> Path:
    """`var/spool` under the working directory, beside the default database."""
    return Path.cwd() / "var" / "spool"


class Settings(BaseSettings):
    """Serving configuration; every field can be set as `TRIAGE_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    model_uri: str = Field(
        DEFAULT_MODEL_URI,
        description="Registry URI (models:/name@alias, models:/name/version), runs:/ URI or local path.",
    )
    reload_model_dir: Path | None = Field(
        None,
        description="A directory whose model folders POST /v1/admin/reload may load by path. Without it the "
        "reload route takes registry URIs (models:/…) only: a local model is unpickled, which runs code.",
    )
    max_text_chars: int = Field(MAX_TEXT_CHARS, ge=1, le=MAX_TEXT_CHARS)
    max_batch: int = Field(MAX_BATCH, ge=1, le=MAX_BATCH)
    max_body_bytes: int | None = Field(
        None, ge=1, description="Reject larger request bodies with 413; default derived from the limits."
    )
    database_url: str = Field(
        default_factory=default_database_url,
        description="Audit store: sqlite:///PATH (default var/triage.db under the working directory) or "
        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE.",
    )
    spool_dir: Path = Field(
        default_factory=default_spool_dir,
        description="Where predictions are spooled while the database is unreachable (default var/spool under "
        "the working directory). The files hold case text: protect them like the database.",
    )
    db_connect_timeout: float = Field(
        3.0, gt=0, description="Seconds a request waits for a new database connection before spooling its write."
    )
    db_call_timeout: float = Field(
        3.0, gt=0, le=60,
        description="Seconds a database call on the request path may take (and, on PostgreSQL, a lock wait) before "
        "the database counts as down: the write is spooled and /readyz says degraded.",
    )
    db_pool_size: int = Field(
        DB_CALL_THREADS, ge=1, le=200,
        description="PostgreSQL connections each worker keeps open for the request path (plus up to half as many "
        "more at a peak). Below the request path's concurrency, every call past the pool opened and closed a "
        "connection of its own (a server process each time).",
    )
    spool_retry_initial_seconds: float = Field(0.5, gt=0, description="First wait before probing the database again.")
    spool_retry_max_seconds: float = Field(30.0, gt=0, description="Longest wait between probes (doubling backoff).")
    hotspot_config: str | None = Field(
        None, description="Hot-issue detector settings (YAML); default models/defaults/hotspots.yaml."
    )
    hotspot_sharing: Literal["auto", "feed", "local"] = Field(
        "auto",
        description="Hot-issue state across processes: 'feed' (replicas share it through the database; needed "
        "with several processes), 'local' (one process owns it; cheaper per case), 'auto' (feed on "
        "PostgreSQL, local on SQLite).",
    )
    hotspot_follow_seconds: float = Field(
        0.5, gt=0, le=60,
        description="How often a replica replays the hot-issue feed other replicas appended to, in the background.",
    )
    hotspot_snapshot_seconds: float = Field(
        60.0, ge=0, le=86400,
        description="Least time between two snapshots of the hot-issue state a replica saves (one is due every "
        "1,000 of its cases; each renders the whole state). A restart replays the feed after the latest one.",
    )
    log_level: str = "INFO"
    metrics_enabled: bool = Field(
        True, description="Count requests, cases and alerts for GET /metrics (Prometheus); false turns it all off."
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535,
        description="Also serve /metrics without a key on this port (bind it to a private interface with "
        "TRIAGE_METRICS_HOST). Without it, GET /metrics on the API port needs an admin key.",
    )
    metrics_host: str = Field("127.0.0.1", description="Interface of the open metrics port.")
    metrics_refresh_seconds: float = Field(
        5.0, gt=0, le=300, description="How often each worker refreshes its spool, database and model gauges."
    )
    api_keys: SecretStr | None = Field(
        None,
        description="Comma-separated name:role:key entries (roles intake, reviewer, admin); the key may be "
        "given as sha256:<hex digest>. Without any, every route but health, readiness and docs answers 401.",
    )
    session_secret: SecretStr | None = Field(
        None,
        description="Signs the reviewer page's session cookie. Default: derived from the configured keys, so "
        "workers agree and changing the keys ends every session. Set it when keys are given as sha256 digests "
        "(a digest alone is not secret).",
    )

    warning_policy: str | None = Field(
        None, description="Warning policy (YAML: deadlines, whether yellow issues); default "
        "models/defaults/warnings.yaml.",
    )
    district_gazetteer: str | None = Field(
        None, description="District gazetteer (YAML) for warnings' 属地; default the policy's, else the shipped one.",
    )
    warning_issue_seconds: float = Field(
        0.5, gt=0, le=60, description="How often the service issues warnings for newly stored red/yellow cases "
        "and hot-issue alerts.",
    )
    warning_sweep_seconds: float = Field(
        60.0, gt=0, le=3600, description="How often the service raises supervision notices for overdue warnings.",
    )
    webhooks: SecretStr | None = Field(
        None, description="Webhook subscribers, comma-separated name=url pairs (http or https). URLs may hold "
        "tokens: kept secret, logged by name only.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Signs every webhook body (X-Triage-Signature: sha256=HMAC); required with webhooks.",
    )
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60, description="Per delivery attempt.")
    webhook_max_attempts: int = Field(8, ge=1, le=100, description="Attempts before an event is marked dead.")
    webhook_backoff_seconds: float = Field(5.0, gt=0, description="First wait after a failure; doubles each time.")
    webhook_backoff_max_seconds: float = Field(3600.0, gt=0, description="Longest wait between attempts.")
    webhook_poll_seconds: float = Field(
        0.5, gt=0, le=60, description="How often the service's delivery worker looks for due events.",
    )

    chromium: str = Field(
        "/usr/bin/chromium", min_length=1, max_length=4096,
        description="The Chromium that prints situation reports as PDF (`triage report`, /reports).",
    )

    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins (scheme://host[:port]) allowed to call the API cross-origin, comma-separated. "
        "Default none: CORS is off and browsers keep other sites' pages from reading any answer.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: object) -> object:
        """Comma-separated in the environment; each an exact origin, since a wildcard would let any page read cases."""
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, list):
            return items
        origins = [str(v).strip().rstrip("/") for v in items if str(v).strip()]
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"CORS origin {origin!r} is not scheme://host[:port] (no wildcard, no path)")
        return origins

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ValueError(f"unknown log level {value!r}: use DEBUG, INFO, WARNING or ERROR")
        return level

    @property
    def body_limit_bytes(self) -> int:
        """The largest request body accepted: a full batch of maximal cases, escaped JSON."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        per_case = 2 * self.max_text_chars * JSON_BYTES_PER_CHAR + CASE_OVERHEAD_BYTES
        return self.max_batch * per_case + CASE_OVERHEAD_BYTES


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
