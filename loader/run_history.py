"""Run history in the warehouse: one row per resource per run in `_loader_runs`, in the run's dataset.

Every run appends its rows at its end, failed resources and failed runs included, so that "when did
each resource last load" is one SQL query (README). The rows never hold a secret: errors are
redacted (loader.logs.redact) and cut short.

The rows are loaded by a second dlt pipeline (`<pipeline>_runs`, same destination and dataset, its
own working folder), so the history never mixes with the data's load packages. When the warehouse
itself failed (a step of the run raised), writing now would fail as well, and an unreachable
BigQuery is retried by Google's client for up to 10 minutes per call: the rows are then only
extracted and normalized into that pipeline's folder, and the next run's write loads them first.
A cold start loses such pending rows (the folder is gone).
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from loader.logs import redact

log = logging.getLogger("analytics_loader")

TABLE = "_loader_runs"
LOADED, FAILED = "loaded", "failed"
ERROR_CHARS = 1000
# explicit types: dlt would otherwise leave out a column that is null in every row so far (`error`)
COLUMNS: Dict[str, Dict[str, Any]] = {
    "run_id": {"data_type": "text", "nullable": False},
    "started_at": {"data_type": "timestamp", "nullable": False},
    "finished_at": {"data_type": "timestamp", "nullable": False},
    "resource": {"data_type": "text", "nullable": False},
    "status": {"data_type": "text", "nullable": False},
    "rows": {"data_type": "bigint", "nullable": False},
    "pages": {"data_type": "bigint", "nullable": False},
    "retries": {"data_type": "bigint", "nullable": False},
    "seconds": {"data_type": "double", "nullable": False},
    "error": {"data_type": "text", "nullable": True},
}


def record_run(pipeline: Any, run_id: str, started: float, resources: Sequence[str], result: Any, figures: Any) -> None:
    """Append this run's rows to `_loader_runs`. Never raises: the run's own outcome stands.

    Args:
        pipeline: the run's dlt pipeline (None when the run stopped before it existed: nothing to write to).
        started: `time.monotonic()` at the start of the run.
        resources: the resources the run was asked for, one row each.
        result: the run's `RunResult` (resources that failed on their own, with the reason).
        figures: the run's per-resource figures (`.of(name)` -> rows, pages, retries, seconds).
    """
    if pipeline is None:
        return
    try:
        finished_at = datetime.now(UTC)
        started_at = finished_at - timedelta(seconds=time.monotonic() - started)
        rows, stopped = history_rows(pipeline, run_id, started_at, finished_at, resources, result, figures)
        written = write_rows(pipeline, rows, load_now=not stopped)
        outcome = "written" if written else "kept on this instance until the next run (the run stopped at a step)"
        log.info(f"run history {outcome}", extra={"run_id": run_id, "table": TABLE, "rows": len(rows)})
    except Exception as exc:  # the history must never turn a run's answer into another one
        cause = redact(str(exc)).splitlines()[0] if str(exc) else ""
        log.error(
            f"run history not written to {TABLE}: {type(exc).__name__}: {cause}",
            extra={"run_id": run_id, "table": TABLE},
        )


def history_rows(
    pipeline: Any,
    run_id: str,
    started_at: datetime,
    finished_at: datetime,
    resources: Sequence[str],
    result: Any,
    figures: Any,
) -> Tuple[List[Dict[str, Any]], bool]:
    """The run's rows, and whether the run stopped at a step (some resource neither loaded nor failed on its own)."""
    loaded, stop_reason = _loaded_by_steps(pipeline, started_at)
    stop_reason = stop_reason or _in_flight_failure()
    stopped = False
    rows = []
    for name in resources:
        own = (getattr(result, "resources", None) or {}).get(name) or {}
        f = figures.of(name)
        if own.get("status") == FAILED:
            status, error = FAILED, f"{own.get('step') or 'extract'}: {own.get('reason')}"
        elif name in loaded:
            status, error = LOADED, None
        else:
            stopped = True
            status, error = FAILED, stop_reason or "the run stopped before this resource was loaded"
        rows.append(
            {
                "run_id": run_id,
                "started_at": started_at,
                "finished_at": finished_at,
                "resource": name,
                "status": status,
                "rows": int(f.rows),
                "pages": int(f.pages),
                "retries": int(f.retries),
                "seconds": float(f.seconds),
                "error": redact(error)[:ERROR_CHARS] if error else None,
            }
        )
    return rows, stopped


def _loaded_by_steps(pipeline: Any, started_at: datetime) -> Tuple[Set[str], Optional[str]]:
    """Resources whose load package this run loaded, from the pipeline's trace; and the first failed step.

    dlt keeps the trace of consecutive extract/normalize/load calls on one pipeline object; steps
    from before this run (a trace read back from the working folder) are left out by their start.
    """
    trace = pipeline.last_trace
    steps = [s for s in (trace.steps if trace else []) if s.started_at is not None and s.started_at >= started_at]
    extracted: Dict[str, Set[str]] = {}
    loaded_ids: Set[str] = set()
    failure: Optional[str] = None
    for step in steps:
        if step.step_exception is not None:
            failure = failure or _step_failure(step)
            continue
        info = step.step_info
        if step.step == "extract" and info is not None:
            for load_id, metrics in info.metrics.items():
                for m in metrics:
                    extracted.setdefault(load_id, set()).update(m.get("hints", {}), (e[0] for e in m.get("dag", [])))
        elif step.step == "load" and info is not None:
            loaded_ids.update(info.loads_ids)
    loaded = set().union(*(names for load_id, names in extracted.items() if load_id in loaded_ids))
    return loaded, failure


def _step_failure(step: Any) -> str:
    """`the load step failed: Forbidden: 403 ...`: the step and its cause, as the run's 500 answer names them."""
    # dlt lists the exception chain outermost first; the outermost is its own PipelineStepFailed wrapper
    chain = step.exception_traces or []
    cause = chain[1] if len(chain) > 1 else (chain[0] if chain else {})
    kind = str(cause.get("exception_type") or "").rsplit(".", 1)[-1]
    message = (str(cause.get("message") or step.step_exception or "").strip().splitlines() or [""])[0]
    return f"the {step.step} step failed: {kind + ': ' if kind else ''}{message}"


def _in_flight_failure() -> Optional[str]:
    """The exception the run stops with, when called from its `finally` (a failure outside dlt's traced steps)."""
    exc = sys.exc_info()[1]
    if exc is None:
        return None
    step = getattr(exc, "step", None)
    cause = exc.__cause__ or exc
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{f'the {step} step failed' if step else 'the run failed'}: {type(cause).__name__}: {first}"


def runs_pipeline(pipeline: Any) -> Any:
    """The history's own pipeline: same destination and dataset as the run's, its own working folder."""
    import dlt

    history = dlt.pipeline(
        pipeline_name=f"{pipeline.pipeline_name}_runs",
        destination=pipeline.destination,
        dataset_name=pipeline.dataset_name,
        pipelines_dir=pipeline.pipelines_dir,
    )
    # it has no state worth keeping: no `_dlt_pipeline_state` rows, no state queries on a cold start
    history.config.restore_from_destination = False
    return history


def write_rows(pipeline: Any, rows: Iterable[Dict[str, Any]], load_now: bool = True) -> bool:
    """Extract and normalize `rows` into the history pipeline; load (with any rows kept earlier) when `load_now`.

    Returns whether the rows were loaded.
    """
    import dlt

    history = runs_pipeline(pipeline)
    history.extract(dlt.resource(list(rows), name=TABLE, write_disposition="append", columns=COLUMNS))
    history.normalize()
    if not load_now:
        return False
    history.load()
    return True
