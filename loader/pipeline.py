"""One run of the loader: extract the chosen resources concurrently, keep what loaded, drop
what failed, normalize and load into the warehouse.

dlt fails a whole extraction when one resource fails; a scheduled loader should still load the
other nine. The seam is here: the source runs with `RunStats(isolate=True)` (a failing resource
stops and is recorded), and before normalize `drop_failed_resources` removes the failed
resources' files from the extracted package, so their tables receive nothing from the run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from loader.environment import PROJECT_DIR, SETTINGS_BY_NAME, FunctionSettings, SettingsError

log = logging.getLogger("analytics_loader")


@dataclass
class RunResult:
    pipeline: str
    destination: str
    dataset: str
    load_ids: List[str] = field(default_factory=list)
    row_counts: Dict[str, int] = field(default_factory=dict)
    resources: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    failed: Dict[str, str] = field(default_factory=dict)
    upstream_errors: bool = False


def destination_for(settings: FunctionSettings) -> Any:
    """The dlt destination; unset options resolve through dlt's own config (env, toml, ADC)."""
    import dlt

    if settings.destination == "duckdb":
        from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

        path = os.environ.get("DESTINATION__DUCKDB__CREDENTIALS") or str(PROJECT_DIR / "warehouse.duckdb")
        if Path(path).stem == settings.dataset_name:
            # DuckDB names the catalog after the file: `analytics.analytics` would be ambiguous
            raise SettingsError(
                f"DESTINATION__DUCKDB__CREDENTIALS file {Path(path).name!r} has the same name as DATASET_NAME "
                f"{settings.dataset_name!r}; DuckDB cannot tell them apart: rename the file (e.g. warehouse.duckdb)"
            )
        limit = os.environ.get("DESTINATION__DUCKDB__MEMORY_LIMIT") or SETTINGS_BY_NAME["DESTINATION__DUCKDB__MEMORY_LIMIT"].default
        return dlt.destinations.duckdb(
            credentials=DuckDbCredentials(path, global_config={"memory_limit": limit}),
            # jsonl, as BigQuery loads: DuckDB reads it with read_json, several times faster than
            # its default INSERT ... VALUES statements (docs/benchmarks.md)
            preferred_loader_file_format="jsonl",
        )
    if settings.destination == "filesystem":
        bucket = os.environ.get("DESTINATION__FILESYSTEM__BUCKET_URL") or str(settings.data_dir / "filesystem")
        return dlt.destinations.filesystem(bucket_url=bucket)
    return dlt.destinations.bigquery()


def new_pipeline(settings: FunctionSettings) -> Any:
    import dlt
    from dlt.common.runtime.collector import LogCollector

    return dlt.pipeline(
        pipeline_name=settings.pipeline_name,
        destination=destination_for(settings),
        dataset_name=settings.dataset_name,
        pipelines_dir=str(Path(settings.data_dir) / "pipelines"),
        progress=LogCollector(log_period=10, logger=log, log_level=logging.INFO, dump_system_stats=False),
    )


def drop_failed_resources(pipeline: Any, load_ids: Sequence[str], tables: Sequence[str]) -> int:
    """Delete the extracted files of `tables` from the packages, before normalize. Returns files removed."""
    from dlt.common.storages.load_package import ParsedLoadJobFileName

    storage = pipeline._get_normalize_storage().extracted_packages
    removed = 0
    for load_id in load_ids:
        for job in storage.list_new_jobs(load_id):
            if ParsedLoadJobFileName.parse(job).table_name in tables:
                os.remove(storage.storage.make_full_path(job))
                removed += 1
    return removed


# Resources whose cursor chain is long (their volume grows with traffic). In a run with others
# they are extracted, normalized and loaded last, their requests going out from the start.
LONG_CHAINS = ("sessions",)


def run_load(settings: FunctionSettings, resources: Sequence[str], api_key: Optional[str], run_id: str) -> RunResult:
    """Load `resources` into the warehouse. Upstream failures are isolated per resource.

    Two phases, one load package each: the short resources are extracted, normalized and loaded
    while the long chains' pages are read ahead (bounded); then the long chains. The floor of a
    run is the longest chain, and what the others cost hides behind it.
    """
    from source import RunStats, analytics_source

    stats = RunStats(isolate=True)
    kwargs: Dict[str, Any] = {"api_key": api_key} if api_key is not None else {}
    last = [n for n in resources if n in LONG_CHAINS] if len(resources) > 1 else []
    first = [n for n in resources if n not in last]
    # built first: the long chains' requests start now, beside the pipeline's setup
    source = analytics_source(run_stats=stats, start_now=last, **kwargs)
    try:
        pipeline = new_pipeline(settings)
        result = RunResult(pipeline=settings.pipeline_name, destination=settings.destination, dataset=settings.dataset_name)
        if pipeline.has_pending_data:
            # Packages of an earlier run that failed on this warm instance. Every run re-reads the
            # whole API and merges on the key, so dropping them loses nothing and never blocks.
            log.warning("dropping pending load packages of an earlier failed run", extra={"run_id": run_id, "load_ids": pipeline.list_extracted_load_packages() + pipeline.list_normalized_load_packages()})
            pipeline.drop_pending_packages()
        # On a cold start the local folder is empty: restore state and schema from the destination.
        pipeline.sync_destination()
        for phase in (first, last):
            if phase:
                _extract_normalize_load(pipeline, source.with_resources(*phase), phase, stats, result, run_id)
    finally:
        stats.stop_reading()  # nothing keeps reading after a failure
    result.resources = {n: result.resources[n] for n in resources if n in result.resources}
    result.row_counts = dict(sorted(result.row_counts.items()))
    for name, figures in result.resources.items():
        if figures["status"] == "loaded":
            log.info(f"resource {name} loaded", extra={"run_id": run_id, "resource": name, **{k: figures[k] for k in ("rows", "pages", "retries", "seconds")}})
    return result


def _extract_normalize_load(pipeline: Any, source: Any, resources: Sequence[str], stats: Any, result: RunResult, run_id: str) -> None:
    """One phase: extract `resources`, drop what failed, normalize, load; add to `result`."""
    from source.errors import error_of

    started = time.monotonic()
    extract_info = pipeline.extract(source)
    log.info("extracted", extra={"run_id": run_id, "resources": list(resources), "seconds": round(time.monotonic() - started, 3)})

    failed_tables = []
    for name in resources:
        s = stats.of(name)
        figures = {"rows": s.rows, "pages": s.pages, "retries": s.retries, "seconds": s.seconds}
        if s.failed:
            err = error_of(s.error) or s.error
            reason = getattr(err, "reason", None) or f"{type(err).__name__}: {err}"
            result.failed[name] = reason
            result.resources[name] = {"status": "failed", "reason": reason, "status_code": getattr(err, "status", None),
                                      "path": getattr(err, "path", None), "page": getattr(err, "page", None), **figures}
            result.upstream_errors = True
            failed_tables.append(source.schema.naming.normalize_table_identifier(name))
            log.error(f"resource {name} failed: {reason}", extra={"run_id": run_id, "resource": name, **figures})
        else:
            result.resources[name] = {"status": "loaded", **figures}
    if failed_tables:
        removed = drop_failed_resources(pipeline, extract_info.loads_ids, failed_tables)
        log.warning("dropped what the failed resources extracted", extra={"run_id": run_id, "tables": failed_tables, "files": removed})

    pipeline.normalize()
    load_info = pipeline.load()
    result.load_ids += list(load_info.loads_ids)
    counts = pipeline.last_trace.last_normalize_info.row_counts if pipeline.last_trace.last_normalize_info else {}
    for table, n in counts.items():
        if not table.startswith("_dlt"):
            result.row_counts[table] = result.row_counts.get(table, 0) + n
