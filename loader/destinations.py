"""The dlt destination of a run: DuckDB (local), BigQuery (deployed, or a local BigQuery emulator)
or the filesystem (benchmarks).

BigQuery normally authenticates with Application Default Credentials. When `BIGQUERY_EMULATOR_HOST`
is set (the Google client's own variable: every BigQuery API call then goes to that address), the
destination uses static token credentials instead, which an emulator accepts and Google never
would: the switch can only ever talk to an emulator.
"""

from __future__ import annotations

import copy
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional

from loader.environment import PROJECT_DIR, SETTINGS_BY_NAME, FunctionSettings, SettingsError

log = logging.getLogger("analytics_loader")

EMULATOR_HOST = "BIGQUERY_EMULATOR_HOST"
PROJECT_ID = "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID"
# the emulator reads load files with DuckDB's JSON reader, which does not inflate gzip
UNCOMPRESSED = "DATA_WRITER__DISABLE_COMPRESSION"
# dlt's keys for it, in every section dlt reads it from: a value the user set in any of them wins
UNCOMPRESSED_KEYS = tuple(f"{section}data_writer.disable_compression" for section in ("", "extract.", "normalize."))
# A DuckDB run keeps its files on this machine's disk: gzip only costs CPU there (writing the
# extracted files, inflating them in normalize; its load files are parquet, compressed by their
# format; docs/benchmarks.md). BigQuery and the filesystem upload theirs: gzip stays.
UNCOMPRESSED_BY_DEFAULT = ("duckdb",)
# Any text: an emulator does not check tokens, and Google refuses this one.
EMULATOR_TOKEN = "bigquery-emulator-token"


def destination_for(settings: FunctionSettings) -> Any:
    """The dlt destination; unset options resolve through dlt's own config (env, toml, ADC).

    For a run, use `open_destination`: it also keeps DuckDB's connection open for the run.
    """
    return capabilities_resolved_once(_destination(settings))


@contextmanager
def open_destination(settings: FunctionSettings) -> Iterator[Any]:
    """The destination of one run. DuckDB: one connection, opened here and closed on leaving.

    dlt opens and closes the DuckDB file at each step that touches it (state sync, each phase's
    load, the run history's) when it owns the connection: ~15 ms to open and a checkpoint to close,
    each time. Given a connection of ours (dlt's documented `DuckDbCredentials(connection)`), it
    hands out cursors of it instead: ~0.25 s less after a 10k-session run's last page
    (docs/benchmarks.md). The connection is closed before the run answers, so the file is free for
    anyone who reads it then.

    Raises:
        SettingsError: the DuckDB file cannot be opened (e.g. another process holds it).
    """
    if settings.destination != "duckdb":
        yield destination_for(settings)
        return
    import duckdb

    path = duckdb_path(settings)
    try:
        connection = duckdb.connect(path)
    except duckdb.Error as exc:
        cause = (str(exc).splitlines() or [""])[0]
        raise SettingsError(
            f"cannot open the DuckDB warehouse {path} (DESTINATION__DUCKDB__CREDENTIALS): {type(exc).__name__}: "
            f"{cause}; if another process has it open, close it or point DESTINATION__DUCKDB__CREDENTIALS elsewhere"
        ) from None
    try:
        yield capabilities_resolved_once(_destination(settings, connection))
    finally:
        connection.close()


def write_through(pipeline: Any) -> None:
    """DuckDB: write what the run has loaded so far from the write-ahead log into the file (CHECKPOINT).

    With one connection for the run, DuckDB would write the whole run into the file when the
    connection closes, after the last phase: called after the first phase, while the long chains
    are still read, that part is done where it costs no time (~25 ms less after the last page)."""
    if pipeline.destination.destination_name == "duckdb":
        with pipeline.sql_client() as client:
            client.execute_sql("CHECKPOINT")


def duckdb_path(settings: FunctionSettings) -> str:
    """The DuckDB file of a run (dlt's `destination.duckdb.credentials`, default `warehouse.duckdb` in the project).

    Raises:
        SettingsError: the file is named like the dataset (DuckDB could not tell catalog from schema).
    """
    import dlt

    # dlt's own name, resolved by dlt's providers (env, .dlt/config.toml), with our default
    path = str(dlt.config.get("destination.duckdb.credentials") or PROJECT_DIR / "warehouse.duckdb")
    if Path(path).stem == settings.dataset_name:
        # DuckDB names the catalog after the file: `analytics.analytics` would be ambiguous
        raise SettingsError(
            f"DESTINATION__DUCKDB__CREDENTIALS file {Path(path).name!r} has the same name as DATASET_NAME "
            f"{settings.dataset_name!r}; DuckDB cannot tell them apart: rename the file (e.g. warehouse.duckdb)"
        )
    return path


def capabilities_resolved_once(destination: Any) -> Any:
    """`destination` whose `capabilities()` resolves its configuration once per naming convention.

    dlt asks the destination for its capabilities many times a step (a dozen times in a run's
    last phase and the run history), and each time resolves the destination's whole configuration
    again through every config provider: ~0.1-0.2 s of a 10k-session run after its last page
    (docs/benchmarks.md). Nothing it reads changes during a run, and a run makes its destination
    anew (`open_destination`), so the first answer stands for the run. The capabilities dlt derives
    from a configuration it passes in are left to dlt. Each caller gets its own copy: dlt may adjust
    the object it is given.
    """
    resolve = destination.capabilities
    resolved: Dict[Any, Any] = {}

    def capabilities(config: Any = None, naming: Any = None) -> Any:
        if config is not None:
            return resolve(config, naming)
        # a naming convention's behaviour is its class and the identifier length it was cut to
        key = None if naming is None else (type(naming), naming.max_length)
        if key not in resolved:
            resolved[key] = resolve(None, naming)
        return copy.copy(resolved[key])

    destination.capabilities = capabilities
    return destination


def _destination(settings: FunctionSettings, connection: Any = None) -> Any:
    """dlt's destination; for DuckDB on `connection` when given (its file already checked by
    `open_destination`), else on the file (dlt opens it at each step)."""
    import dlt

    if settings.destination == "duckdb":
        from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

        limit: str = (
            dlt.config.get("destination.duckdb.memory_limit")
            or SETTINGS_BY_NAME["DESTINATION__DUCKDB__MEMORY_LIMIT"].default
        )
        return dlt.destinations.duckdb(
            credentials=DuckDbCredentials(
                connection if connection is not None else duckdb_path(settings), global_config={"memory_limit": limit}
            ),
            # parquet: typed by dlt's schema, read by DuckDB several times faster than its default
            # INSERT ... VALUES statements. Not jsonl: DuckDB's `read_json` guesses the types from
            # the file's first 20,480 rows, so a text column that holds ISO dates comes back
            # reformatted, and a column first seen after them fails the load (docs/benchmarks.md)
            preferred_loader_file_format="parquet",
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
            f"{UNCOMPRESSED} is not true: a bare emulator cannot read dlt's gzip load files; set "
            f"{UNCOMPRESSED}=true, unless a proxy that inflates them is in front of it (tests/bigquery_gzip_proxy.py)"
        )
    # The google client sends every call to BIGQUERY_EMULATOR_HOST by itself; dlt needs credentials
    # it treats as valid (it refuses anonymous ones and expires env-only tokens): a static token.
    # dlt takes Google's native credentials too, though its signature names only its own specs
    credentials: Any = Credentials(token=EMULATOR_TOKEN, quota_project_id=project)
    return dlt.destinations.bigquery(credentials=credentials)
