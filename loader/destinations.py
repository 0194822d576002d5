"""The dlt destination of a run: DuckDB (local), BigQuery (deployed, or a local BigQuery emulator)
or the filesystem (benchmarks).

BigQuery normally authenticates with Application Default Credentials. When `BIGQUERY_EMULATOR_HOST`
is set (the Google client's own variable: every BigQuery API call then goes to that address), the
destination uses static token credentials instead, which an emulator accepts and Google never
would: the switch can only ever talk to an emulator.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from loader.environment import PROJECT_DIR, SETTINGS_BY_NAME, FunctionSettings, SettingsError

log = logging.getLogger("analytics_loader")

EMULATOR_HOST = "BIGQUERY_EMULATOR_HOST"
PROJECT_ID = "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID"
# the emulator reads load files with DuckDB's JSON reader, which does not inflate gzip
UNCOMPRESSED = "DATA_WRITER__DISABLE_COMPRESSION"
# dlt's keys for it, in every section dlt reads it from: a value the user set in any of them wins
UNCOMPRESSED_KEYS = tuple(f"{section}data_writer.disable_compression" for section in ("", "extract.", "normalize."))
# DuckDB reads the load files from this machine's disk: gzip only costs CPU there (writing them in
# extract and normalize, inflating them in DuckDB's reader: ~0.2 s of a 10k-session run,
# docs/benchmarks.md). BigQuery and the filesystem upload them: gzip stays.
UNCOMPRESSED_BY_DEFAULT = ("duckdb",)
# Any text: an emulator does not check tokens, and Google refuses this one.
EMULATOR_TOKEN = "bigquery-emulator-token"


def destination_for(settings: FunctionSettings) -> Any:
    """The dlt destination; unset options resolve through dlt's own config (env, toml, ADC)."""
    import dlt

    if settings.destination == "duckdb":
        from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

        # dlt's own names, resolved by dlt's providers (env, .dlt/config.toml), with our defaults
        path = str(dlt.config.get("destination.duckdb.credentials") or PROJECT_DIR / "warehouse.duckdb")
        if Path(path).stem == settings.dataset_name:
            # DuckDB names the catalog after the file: `analytics.analytics` would be ambiguous
            raise SettingsError(
                f"DESTINATION__DUCKDB__CREDENTIALS file {Path(path).name!r} has the same name as DATASET_NAME "
                f"{settings.dataset_name!r}; DuckDB cannot tell them apart: rename the file (e.g. warehouse.duckdb)"
            )
        limit: str = (
            dlt.config.get("destination.duckdb.memory_limit")
            or SETTINGS_BY_NAME["DESTINATION__DUCKDB__MEMORY_LIMIT"].default
        )
        return dlt.destinations.duckdb(
            credentials=DuckDbCredentials(path, global_config={"memory_limit": limit}),
            # jsonl, as BigQuery loads: DuckDB reads it with read_json, several times faster than
            # its default INSERT ... VALUES statements (docs/benchmarks.md)
            preferred_loader_file_format="jsonl",
        )
    if settings.destination == "filesystem":
        bucket: str = dlt.config.get("destination.filesystem.bucket_url") or str(settings.data_dir / "filesystem")
        return dlt.destinations.filesystem(bucket_url=bucket)
    return bigquery_destination()


@contextmanager
def load_file_defaults(destination: str) -> Iterator[None]:
    """For one run: DuckDB's load files written without gzip unless the user set
    `DATA_WRITER__DISABLE_COMPRESSION` (env or .dlt/*.toml). dlt reads the setting from its config
    providers only, so the default is an environment variable of the run, removed after it (one
    process may load into several destinations one after the other; runs never overlap: service.py)."""
    import dlt

    if destination not in UNCOMPRESSED_BY_DEFAULT or any(dlt.config.get(k) is not None for k in UNCOMPRESSED_KEYS):
        yield
        return
    os.environ[UNCOMPRESSED] = "true"
    try:
        yield
    finally:
        os.environ.pop(UNCOMPRESSED, None)


def emulator_host(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The BigQuery emulator's address when `BIGQUERY_EMULATOR_HOST` is set, else None."""
    env = os.environ if env is None else env
    host = (env.get(EMULATOR_HOST) or "").strip()
    return host or None


def bigquery_destination(env: Optional[Mapping[str, str]] = None) -> Any:
    """dlt's BigQuery destination; pointed at an emulator when `BIGQUERY_EMULATOR_HOST` is set.

    Raises:
        SettingsError: an emulator is set but `DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID` is not
            (without Application Default Credentials nothing else names the project).
    """
    import dlt

    env = os.environ if env is None else env
    host = emulator_host(env)
    if host is None:
        return dlt.destinations.bigquery()
    project = (env.get(PROJECT_ID) or "").strip()
    if not project:
        raise SettingsError(
            f"{EMULATOR_HOST} is set ({host}), so {PROJECT_ID} must name the project to load into "
            f"(any id the emulator serves, e.g. the one it was started with): set {PROJECT_ID}, "
            f"or unset {EMULATOR_HOST} to load into Google BigQuery"
        )
    from google.oauth2.credentials import Credentials

    log.warning(
        f"BigQuery emulator in use at {host} (set by {EMULATOR_HOST}): nothing is loaded into Google BigQuery",
        extra={"bigquery_emulator_host": host, "project": project},
    )
    if (env.get(UNCOMPRESSED) or "").strip().lower() not in ("true", "1"):
        # not refused: dlt may read it from a toml file too
        log.warning(
            f"{UNCOMPRESSED} is not true: the emulator cannot read dlt's gzip load files; set {UNCOMPRESSED}=true"
        )
    # The google client sends every call to BIGQUERY_EMULATOR_HOST by itself; dlt needs credentials
    # it treats as valid (it refuses anonymous ones and expires env-only tokens): a static token.
    # dlt takes Google's native credentials too, though its signature names only its own specs
    credentials: Any = Credentials(token=EMULATOR_TOKEN, quota_project_id=project)
    return dlt.destinations.bigquery(credentials=credentials)
