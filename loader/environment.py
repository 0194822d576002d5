"""The function's settings: every environment variable the loader reads, defined once.

Code (`loader.environment.load_settings`), tests, the README settings table and the Terraform
checks all read this table. Names follow dlt's conventions wherever dlt has one
(`SOURCES__ANALYTICS__...`, `DESTINATION__...`, `RUNTIME__...`, `DLT_DATA_DIR`); the few that
are the function's own are plain upper-case names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from source.settings import DEFAULT_MAX_PAGES, EVENTS_DEFAULTS, REQUEST_DEFAULTS

PROJECT_DIR = Path(__file__).resolve().parent.parent

DESTINATIONS = ("duckdb", "bigquery", "filesystem")

SECRET_VERSION_PATTERN = re.compile(r"^projects/[^/]+/secrets/[^/]+/versions/[^/]+$")


def _request(key: str) -> str:
    return f"{REQUEST_DEFAULTS[key]:g}"


def _events(key: str) -> str:
    value = EVENTS_DEFAULTS[key]
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default and what it is for."""

    name: str
    default: Optional[str]
    description: str
    # set by the Terraform deployment (checked by tests/test_terraform.py)
    deployed: bool = False
    # secret: never logged, never echoed
    secret: bool = False


SETTINGS: Tuple[Setting, ...] = (
    Setting(
        "DESTINATION",
        "duckdb",
        "Warehouse: `duckdb` (embedded, local), `bigquery` (deployed) or `filesystem` (jsonl files; benchmarks).",
        deployed=True,
    ),
    Setting("DATASET_NAME", "analytics", "Dataset (schema) the tables are loaded into.", deployed=True),
    Setting("PIPELINE_NAME", "analytics", "dlt pipeline name (names the working folder and the state)."),
    Setting(
        "API_KEY_SECRET",
        None,
        "Secret Manager version `projects/<p>/secrets/<s>/versions/<v|latest>` holding the API key; read at run "
        "time. Unset: the key comes from `SOURCES__ANALYTICS__API_KEY` / `.dlt/secrets.toml`.",
        deployed=True,
    ),
    Setting(
        "API_KEY_CACHE_SECONDS",
        "300",
        "How long a warm instance reuses the key read from Secret Manager before reading it again (a rotated key "
        "takes effect within this time).",
    ),
    Setting(
        "DLT_DATA_DIR",
        "/tmp/analytics-loader",
        "dlt working folder (pipelines, load packages). Must be writable: under /tmp on Cloud Functions.",
        deployed=True,
    ),
    Setting(
        "DESTINATION__DUCKDB__CREDENTIALS",
        None,
        "DuckDB database file. Default: `warehouse.duckdb` in the project folder (its name must differ from "
        "`DATASET_NAME`). A run holds it open for writing while it runs, and only then.",
    ),
    Setting(
        "DESTINATION__DUCKDB__MEMORY_LIMIT",
        "1GB",
        "DuckDB `memory_limit` for local runs (bounds the memory of large merges).",
    ),
    Setting(
        "DATA_WRITER__DISABLE_COMPRESSION",
        None,
        "dlt's own setting: `true` writes the run's files without gzip. Unset: uncompressed for DuckDB, which "
        "keeps them on this machine's disk (gzip would only cost CPU; its load files are parquet, typed by dlt's "
        "schema), gzip into BigQuery and the filesystem, which upload them. A bare BigQuery emulator needs `true` "
        "(it does not read gzip: see the emulator section below).",
    ),
    Setting(
        "DESTINATION__BIGQUERY__LOCATION", "US", "BigQuery location of the dataset (dlt's own setting).", deployed=True
    ),
    Setting(
        "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID",
        None,
        "BigQuery project (dlt's own setting). Default: the project of Application Default Credentials.",
        deployed=True,
    ),
    Setting(
        "BIGQUERY_EMULATOR_HOST",
        None,
        "Local runs and tests only: a BigQuery emulator's address (`http://127.0.0.1:<port>`, the Google client's "
        "own variable). Set: `DESTINATION=bigquery` loads into the emulator with static token credentials, "
        "`DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID` is required and `DATA_WRITER__DISABLE_COMPRESSION=true` is "
        "needed (the emulator does not read gzip). Never set it on the deployed function.",
    ),
    Setting(
        "DESTINATION__FILESYSTEM__BUCKET_URL",
        None,
        "Folder or bucket for the `filesystem` destination. Default: `<DLT_DATA_DIR>/filesystem`.",
    ),
    Setting("SOURCES__ANALYTICS__BASE_URL", None, "Base URL of the analytics API (required).", deployed=True),
    Setting(
        "SOURCES__ANALYTICS__UID", None, "`uid` query parameter of the sessions endpoint (required).", deployed=True
    ),
    Setting(
        "SOURCES__ANALYTICS__API_KEY", None, "The API key, when `API_KEY_SECRET` is unset (local runs).", secret=True
    ),
    Setting(
        "SOURCES__ANALYTICS__PROFILE",
        "seed",
        "Response shapes: `seed` (the specification) or `documented` (the real API's documented shapes).",
        deployed=True,
    ),
    Setting(
        "SOURCES__ANALYTICS__AUTH_SCHEME",
        "bearer",
        "`bearer` (`Authorization: Bearer <key>`, the specification) or `basic` (`Authorization: Basic <key>`, the "
        "key as-is, as the real API documents).",
        deployed=True,
    ),
    Setting(
        "SOURCES__ANALYTICS__SESSIONS_LIMIT",
        "1000",
        "`limit` sent to the sessions endpoint with the `documented` profile (it answers one page of at most `limit` "
        "sessions).",
    ),
    Setting(
        "SOURCES__ANALYTICS__MAX_PAGES",
        str(DEFAULT_MAX_PAGES),
        "Most pages read from one resource in one run; a longer cursor chain fails that resource (an API that never "
        "ends its chain cannot hold a run).",
    ),
    Setting(
        "SOURCES__ANALYTICS__EXTRA_RESOURCES",
        None,
        "Resources beyond the seed added to the default run, comma-separated: `events`, `users`, "
        "`<settings>_history` (see Beyond the seed). A POST body may name them too.",
    ),
    Setting(
        "SOURCES__ANALYTICS__EVENTS_START",
        None,
        "RFC 3339 start of the first events window (e.g. `2026-01-01T00:00:00Z`); `events` is off until it is set.",
    ),
    Setting(
        "SOURCES__ANALYTICS__EVENTS_WINDOW_HOURS",
        _events("events_window_hours"),
        "Length of one events export window, 0.25 to 24 hours.",
    ),
    Setting(
        "SOURCES__ANALYTICS__EVENTS_DELAY_HOURS",
        _events("events_delay_hours"),
        "A window is exported once its end is this many hours past (event data settles for up to 24 h).",
    ),
    Setting(
        "SOURCES__ANALYTICS__EVENTS_SEGMENT",
        _events("events_segment"),
        "Segment whose events are exported (`segmentId`).",
    ),
    Setting(
        "SOURCES__ANALYTICS__EVENTS_MAX_WINDOWS",
        _events("events_max_windows"),
        "Most windows exported per run; a backfill continues on the next runs.",
    ),
    Setting(
        "SOURCES__ANALYTICS__EVENTS_POLL_SECONDS",
        _events("events_poll_seconds"),
        "Wait between two polls of an export operation.",
    ),
    Setting(
        "SOURCES__ANALYTICS__EVENTS_POLL_TIMEOUT_SECONDS",
        _events("events_poll_timeout_seconds"),
        "Longest wait for one export to complete before the resource fails.",
    ),
    Setting(
        "RUN_DEADLINE_SECONDS",
        "1500",
        "Wall-clock budget of one run: at the deadline, resources still reading stop and are reported failed "
        "(`deadline`), and what completed is loaded. Terraform sets it below the function's timeout.",
        deployed=True,
    ),
    Setting(
        "RUN_LOCK_BUCKET",
        None,
        "Cloud Storage bucket holding the cross-instance run lock (an object created only if absent). Unset: only "
        "the local working-folder lock (local runs).",
        deployed=True,
    ),
    Setting(
        "RUN_LOCK_TTL_SECONDS",
        "1860",
        "Age after which a run lock left by a crashed run is taken over; longer than the function's timeout.",
        deployed=True,
    ),
    Setting(
        "RUNTIME__REQUEST_MAX_ATTEMPTS",
        _request("request_max_attempts"),
        "dlt: attempts per request, first try included (the seed's 3 retries).",
    ),
    Setting(
        "RUNTIME__REQUEST_BACKOFF_FACTOR",
        _request("request_backoff_factor"),
        "dlt: exponential backoff factor in seconds (waits 2, 4, 8 s; `Retry-After` is honoured).",
    ),
    Setting(
        "RUNTIME__REQUEST_TIMEOUT",
        _request("request_timeout"),
        "Seconds an attempt may take for its whole answer (not each read) before it counts as failed.",
    ),
    Setting(
        "RUNTIME__REQUEST_MAX_RETRY_DELAY",
        _request("request_max_retry_delay"),
        "dlt: longest wait between attempts, in seconds (also caps `Retry-After`).",
    ),
    Setting(
        "RUNTIME__LOG_LEVEL",
        "WARNING",
        "dlt: log level of dlt's own lines (`.dlt/config.toml`); the loader logs its figures at INFO.",
    ),
)

SETTINGS_BY_NAME: Dict[str, Setting] = {s.name: s for s in SETTINGS}
# What the deployed function cannot run without (Terraform must set each of these).
REQUIRED_DEPLOYED = (
    "DESTINATION",
    "DATASET_NAME",
    "API_KEY_SECRET",
    "SOURCES__ANALYTICS__BASE_URL",
    "SOURCES__ANALYTICS__UID",
    "DLT_DATA_DIR",
)


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names it and what to set."""


@dataclass(frozen=True)
class FunctionSettings:
    destination: str
    dataset_name: str
    pipeline_name: str
    api_key_secret: Optional[str]
    api_key_cache_seconds: float
    data_dir: Path
    run_deadline_seconds: float = 1500.0
    run_lock_bucket: Optional[str] = None
    run_lock_ttl_seconds: float = 1860.0


def _get(env: Mapping[str, str], name: str) -> Optional[str]:
    value = env.get(name)
    if value is None or value.strip() == "":
        return SETTINGS_BY_NAME[name].default
    return value.strip()


def _get_defaulted(env: Mapping[str, str], name: str) -> str:
    """A setting the table gives a default: never unset."""
    value = _get(env, name)
    if value is None:
        raise TypeError(f"{name} has no default in SETTINGS: read it with _get")
    return value


def load_settings(env: Optional[Mapping[str, str]] = None) -> FunctionSettings:
    """Read and check the function's own settings from the environment.

    Raises:
        SettingsError: naming the setting that is wrong and what it accepts.
    """
    env = os.environ if env is None else env
    destination = (_get(env, "DESTINATION") or "").lower()
    if destination not in DESTINATIONS:
        raise SettingsError(
            f"DESTINATION={destination!r} is not supported: set DESTINATION to one of {', '.join(DESTINATIONS)}"
        )
    secret = _get(env, "API_KEY_SECRET")
    if secret is not None and not SECRET_VERSION_PATTERN.match(secret):
        raise SettingsError(
            "API_KEY_SECRET must be a Secret Manager version name "
            "'projects/<project>/secrets/<secret>/versions/<version|latest>'"
        )
    cache_seconds = _seconds(env, "API_KEY_CACHE_SECONDS", minimum=0)
    deadline = _seconds(env, "RUN_DEADLINE_SECONDS", minimum=1)
    lock_ttl = _seconds(env, "RUN_LOCK_TTL_SECONDS", minimum=1)
    bucket = _get(env, "RUN_LOCK_BUCKET")
    if bucket is not None and not re.match(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", bucket):
        raise SettingsError(f"RUN_LOCK_BUCKET must be a Cloud Storage bucket name (no gs:// prefix), got {bucket!r}")
    for name in ("DATASET_NAME", "PIPELINE_NAME"):
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", _get(env, name) or ""):
            raise SettingsError(f"{name} must be letters, digits and underscores, got {_get(env, name)!r}")
    return FunctionSettings(
        destination=destination,
        dataset_name=_get_defaulted(env, "DATASET_NAME"),
        pipeline_name=_get_defaulted(env, "PIPELINE_NAME"),
        api_key_secret=secret,
        api_key_cache_seconds=cache_seconds,
        data_dir=Path(_get_defaulted(env, "DLT_DATA_DIR")),
        run_deadline_seconds=deadline,
        run_lock_bucket=bucket,
        run_lock_ttl_seconds=lock_ttl,
    )


def _seconds(env: Mapping[str, str], name: str, minimum: float) -> float:
    raw = _get_defaulted(env, name)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        raise SettingsError(f"{name} must be a number of seconds >= {minimum:g}, got {raw!r}")
    return value


def markdown_table() -> str:
    """The README's settings table (`python -m loader.environment`); a test keeps the two equal."""
    rows = ["| Setting | Default | Deployed by Terraform | What it is |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default is not None else "—"
        rows.append(f"| `{s.name}` | {default} | {'yes' if s.deployed else ''} | {s.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
