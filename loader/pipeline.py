"""One run of the loader: extract the chosen resources concurrently, keep what loaded, drop what
failed, normalize and load into the warehouse.

dlt fails a whole extraction (and a whole normalize or load step) when one resource fails; a
scheduled loader should still load the other nine. The seam is here: the source runs with
`RunOptions(isolate=True)` (a failing resource stops and is recorded); what a failed resource
extracted is removed from the package before normalize; a normalize failure removes the resource
whose file failed and normalizes again; the load step records failed jobs instead of raising, so
the failing resource's tables stay untouched and the others merge.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from loader.clustering import cluster_merge_tables
from loader.destinations import destination_for, load_file_defaults, open_destination, write_through
from loader.environment import FunctionSettings
from loader.logs import redact
from loader.run_history import record_run

log = logging.getLogger("analytics_loader")


@dataclass
class RunResult:
    pipeline: str
    destination: str
    dataset: str
    key_check: Dict[str, Any] = field(default_factory=dict)
    load_ids: List[str] = field(default_factory=list)
    row_counts: Dict[str, int] = field(default_factory=dict)
    resources: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    failed: Dict[str, str] = field(default_factory=dict)


def new_pipeline(settings: FunctionSettings, destination: Any = None) -> Any:
    """The run's dlt pipeline, into `destination` (a run's `open_destination`; default: `destination_for`)."""
    import dlt
    from dlt.common.runtime.collector import LogCollector

    return dlt.pipeline(
        pipeline_name=settings.pipeline_name,
        destination=destination if destination is not None else destination_for(settings),
        dataset_name=settings.dataset_name,
        pipelines_dir=str(Path(settings.data_dir) / "pipelines"),
        progress=LogCollector(log_period=10, logger=log, log_level=logging.INFO, dump_system_stats=False),
    )


def drop_extracted_tables(pipeline: Any, load_ids: Sequence[str], tables: Sequence[str]) -> int:
    """Delete the extracted files of `tables` (and their child tables) from the packages, before normalize.

    Returns the number of files removed.
    """
    removed = 0
    for load_id in load_ids:
        for job in pipeline.get_load_package_info(load_id).jobs.get("new_jobs", []):
            if root_table(job.job_file_info.table_name) in tables:
                os.remove(job.file_path)
                removed += 1
    return removed


def key_check(config: Any, deadline: float, run_id: str) -> Dict[str, Any]:
    """One `GET /me`, logged with the role the key reports; never fatal (one attempt, 10 s at most)."""
    from dataclasses import replace

    from source.build import api_client
    from source.figures import ResourceFigures
    from source.key_check import check_key

    runtime = replace(config.runtime, request_max_attempts=1, request_timeout=min(10.0, config.runtime.request_timeout))
    check = check_key(api_client(replace(config, runtime=runtime), ResourceFigures("key_check"), deadline))
    found = {"role": check.role, "status": check.status, "reason": check.reason}
    log.info(f"key check: role {check.role or 'unknown'}", extra={"run_id": run_id, **found})
    return found


def root_table(table: str) -> str:
    """`sessions__pages` -> `sessions`: dlt names a nested table after its parent, joined by `__`."""
    return table.split("__", 1)[0]


def run_load(
    settings: FunctionSettings, requested: Optional[Sequence[str]], api_key: Optional[str], run_id: str
) -> RunResult:
    """Load `resources` into the warehouse. Failures are isolated per resource.

    Two phases, one load package each: the short resources are extracted, normalized and loaded
    while the long chains' pages are read ahead (bounded); then the long chains. The floor of a
    run is the longest chain, and what the others cost hides behind it. At the run's deadline
    (RUN_DEADLINE_SECONDS) resources still reading fail with "deadline"; what completed loads.
    """
    with load_file_defaults(settings.destination), short_gil_slices(), objects_before_the_run_frozen():
        return _run_load(settings, requested, api_key, run_id)


# While the long chains are read ahead, the main thread extracts, normalizes and loads the short
# resources: a reading thread whose answer is in waits for the GIL up to the interpreter's switch
# interval (5 ms by default) before it can send the next request. 1 ms: ~0.1 s less over a chain of
# 100 requests at 30 ms (docs/benchmarks.md, "What bounds each target").
GIL_SWITCH_INTERVAL_S = 0.001


@contextmanager
def short_gil_slices() -> Iterator[None]:
    """The interpreter's switch interval at `GIL_SWITCH_INTERVAL_S` for one run, then as it was."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@contextmanager
def objects_before_the_run_frozen() -> Iterator[None]:
    """`gc.freeze()` for one run, then `gc.unfreeze()`.

    The interpreter's full collections walk every object it tracks: on an instance that has
    imported dlt and its destinations, ~100,000 of them, ~70 ms a walk, twice in a 10k-session run,
    each time holding the GIL (a reading thread waits, or the run's last step does). Objects that
    existed before the run are modules, classes and caches that outlive it: frozen, the collector
    skips them. Unfrozen after the run, so any of them that became garbage is collected later as
    usual (no leak across runs). ~0.1 s less a run (docs/benchmarks.md). Each phase freezes again
    after its extract (`_extract_normalize_load`); this unfreezes those too.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run_load(
    settings: FunctionSettings, requested: Optional[Sequence[str]], api_key: Optional[str], run_id: str
) -> RunResult:
    from source import RunOptions, build_source, resolve_source_config
    from source.errors import ConfigError
    from source.settings import INCREMENTAL_RESOURCES, LONG_CHAINS, RESOURCE_NAMES

    started = time.monotonic()
    try:
        config = resolve_source_config(api_key=api_key) if api_key is not None else resolve_source_config()
    except ConfigError as exc:
        if exc.setting == "SOURCES__ANALYTICS__API_KEY":
            raise ConfigError(
                exc.setting, f"{exc}, or API_KEY_SECRET (a Secret Manager version holding the key)"
            ) from None
        raise
    redact.add(config.api_key)  # whatever its origin: env, secrets.toml or Secret Manager
    resources = list(requested) if requested is not None else [*RESOURCE_NAMES, *config.extra_resources]
    last = [n for n in resources if n in LONG_CHAINS] if len(resources) > 1 else []
    first = [n for n in resources if n not in last]
    # built first: the long chains' requests start now, beside the pipeline's setup
    options = RunOptions(isolate=True, deadline=started + settings.run_deadline_seconds, start_now=last)
    source = build_source(config, options)
    cluster_merge_tables(source, settings.destination)  # BigQuery only: merges prune on the key
    result = RunResult(pipeline=settings.pipeline_name, destination=settings.destination, dataset=settings.dataset_name)
    result.key_check = key_check(config, options.deadline, run_id)
    pipeline = None
    warehouse = ExitStack()  # closed after the run history is written
    try:
        pipeline = new_pipeline(settings, warehouse.enter_context(open_destination(settings)))
        if pipeline.has_pending_data:
            # Packages of an earlier run that failed on this warm instance. Every run re-reads the
            # whole API and merges on the key, so dropping them loses nothing and never blocks.
            pending = pipeline.list_extracted_load_packages() + pipeline.list_normalized_load_packages()
            log.warning(
                "dropping pending load packages of an earlier failed run", extra={"run_id": run_id, "load_ids": pending}
            )
            pipeline.drop_pending_packages()
        # On a cold start the local folder is empty: restore state and schema from the destination.
        pipeline.sync_destination()
        from loader.key_columns import migrate_key_columns

        migrate_key_columns(pipeline, config.resources, resources, run_id)
        from source.events import snapshot_cursors
        from source.settings import SOURCE_NAME

        # cursors of the incremental resources as the warehouse has them: put back for a resource
        # whose rows are dropped after the extract, so that no window or version is skipped
        cursors = snapshot_cursors(pipeline, SOURCE_NAME, [n for n in resources if n in INCREMENTAL_RESOURCES])
        for phase in (first, last):
            if not phase:
                continue
            _extract_normalize_load(
                pipeline, source.with_resources(*phase), phase, options.figures, result, run_id, cursors
            )
            if phase is first and last:
                write_through(pipeline)  # while the long chains are still read
    finally:
        options.end()  # nothing keeps reading after the run, whatever happened
        with warehouse:
            record_run(pipeline, run_id, started, resources, result, options.figures)  # _loader_runs, failed runs too
    result.resources = {n: result.resources[n] for n in resources if n in result.resources}
    result.row_counts = dict(sorted(result.row_counts.items()))
    for name, figures in result.resources.items():
        if figures["status"] == "loaded":
            extra = {k: figures[k] for k in ("rows", "pages", "retries", "seconds")}
            log.info(f"resource {name} loaded", extra={"run_id": run_id, "resource": name, **extra})
    return result


def _extract_normalize_load(
    pipeline: Any,
    source: Any,
    resources: Sequence[str],
    figures: Any,
    result: RunResult,
    run_id: str,
    cursors: Dict[str, Any],
) -> None:
    """One phase: extract `resources`, drop what failed, normalize, load; add to `result`."""
    started = time.monotonic()
    extract_info = pipeline.extract(source)
    # What the extract left (the modules it imported, such as pyarrow, dlt's schema and caches)
    # outlives the phase: frozen with the objects from before the run, the full collections of
    # normalize and load, which after the last page are the run's critical path, walk only what
    # those steps make. ~30 ms less after a 10k-session run's last page (docs/benchmarks.md).
    gc.freeze()
    log.info(
        "extracted",
        extra={"run_id": run_id, "resources": list(resources), "seconds": round(time.monotonic() - started, 3)},
    )
    naming = source.schema.naming
    tables = {naming.normalize_table_identifier(name): name for name in resources}

    failed: Dict[str, str] = {}
    for name in resources:
        f = figures.of(name)
        if f.failed:
            failed[name] = _fail(result, name, f, f.error, run_id)
        else:
            result.resources[name] = {"status": "loaded", **_figures(f)}
    if failed:
        _drop(pipeline, extract_info.loads_ids, [t for t, n in tables.items() if n in failed], run_id)

    counts = _normalize_isolated(pipeline, extract_info.loads_ids, tables, figures, result, run_id, cursors)
    load_info = pipeline.load(raise_on_failed_jobs=False)
    result.load_ids += list(load_info.loads_ids)
    refused_stateful = []
    for package in load_info.load_packages:
        for job in package.jobs.get("failed_jobs", []):
            refused = tables.get(root_table(job.job_file_info.table_name))
            if refused is not None and refused not in result.failed:
                cause = f"the warehouse refused its rows: {job_failure_cause(job.failed_message)}"
                _fail(result, refused, figures.of(refused), cause, run_id, step="load")
                if refused in cursors:
                    refused_stateful.append(refused)
    if refused_stateful:
        # the package's state moved their cursors past rows the warehouse refused: store them back
        _restore_cursors(pipeline, cursors, refused_stateful)
        pipeline.normalize()
        result.load_ids += list(pipeline.load(raise_on_failed_jobs=False).loads_ids)
    for table, n in counts.items():
        resource = tables.get(root_table(table))
        if not table.startswith("_dlt") and resource not in result.failed:
            result.row_counts[table] = result.row_counts.get(table, 0) + n


def _normalize_isolated(
    pipeline: Any,
    load_ids: Sequence[str],
    tables: Dict[str, str],
    figures: Any,
    result: RunResult,
    run_id: str,
    cursors: Dict[str, Any],
) -> Dict[str, int]:
    """Normalize; when a resource's file cannot be normalized, fail that resource, drop it and normalize again."""
    from dlt.pipeline.exceptions import PipelineStepFailed

    while True:
        try:
            pipeline.normalize()
            info = pipeline.last_trace.last_normalize_info
            return dict(info.row_counts) if info else {}
        except PipelineStepFailed as exc:
            job_id = getattr(exc.exception, "job_id", None)
            # a normalize job is named `<table>.<file id>.<format>`; dlt's table names hold no dots
            name = tables.get(root_table(str(job_id).split(".", 1)[0])) if job_id else None
            if name is None or name in result.failed:
                raise
            cause = job_failure_cause(getattr(exc.exception, "failed_message", None) or str(exc.exception))
            _fail(
                result,
                name,
                figures.of(name),
                f"its records could not be normalized: {cause}",
                run_id,
                step="normalize",
            )
            _drop(pipeline, load_ids, [t for t, n in tables.items() if n == name], run_id)
            if name in cursors:
                _restore_cursors(pipeline, cursors, [name])


def _restore_cursors(pipeline: Any, cursors: Dict[str, Any], names: Sequence[str]) -> None:
    from source.events import restore_cursors
    from source.settings import SOURCE_NAME

    restore_cursors(pipeline, SOURCE_NAME, {n: cursors[n] for n in names})


def job_failure_cause(message: Optional[str]) -> str:
    """The exception line of a dlt job's failure message (a traceback), without the traceback."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if (
            not line.startswith(("File ", "^", "~", "Traceback", "The above exception", "During handling"))
            and ":" in line
        ):
            return redact(line)[:500]
    return redact(lines[-1])[:500] if lines else "unknown cause"


def _figures(f: Any) -> Dict[str, Any]:
    return {"rows": f.rows, "pages": f.pages, "retries": f.retries, "seconds": f.seconds}


def _fail(result: RunResult, name: str, f: Any, error: Any, run_id: str, step: str = "extract") -> str:
    from source.errors import error_of

    if isinstance(error, str):
        reason, err = error, None
    else:
        err = error_of(error) or error
        reason = getattr(err, "reason", None) or f"{type(err).__name__}: {err}"
    result.failed[name] = reason
    result.resources[name] = {
        "status": "failed",
        "step": step,
        "reason": reason,
        "status_code": getattr(err, "status", None),
        "path": getattr(err, "path", None) or f.path or None,
        "page": getattr(err, "page", None),
        **_figures(f),
    }
    if result.resources[name]["status_code"] == 403:
        from source.key_check import forbidden_message

        reason = f"{reason}; {forbidden_message(name, result.key_check.get('role'))}"
        result.failed[name] = result.resources[name]["reason"] = reason
    log.error(
        f"resource {name} failed: {reason}", extra={"run_id": run_id, "resource": name, "step": step, **_figures(f)}
    )
    return reason


def _drop(pipeline: Any, load_ids: Sequence[str], tables: Sequence[str], run_id: str) -> None:
    removed = drop_extracted_tables(pipeline, load_ids, tables)
    log.warning(
        "dropped what the failed resources extracted",
        extra={"run_id": run_id, "tables": list(tables), "files": removed},
    )
