"""One measured run, in a fresh process: `python -m bench.child SPEC.json RESULT.json`.

Modes:
  seed     the seed's configuration as-is: `rest_api_source(<seed dict>)`, `dlt.pipeline(...,
           destination="duckdb").run(source)`, cwd in an empty folder, no project config.
  project  the function's code path: `import main`, then `loader.service.handle("POST", b"{}")` (or the
           spec's `body`, e.g. `{"resources": ["events"]}`).
  import   `import main` in a fresh interpreter (cold start).
  import_breakdown  what `import main` and the first request import, module by module.
  firstreq a fresh functions-framework app (`create_app(target="run_pipeline")`) and its first POST.
  probe    the sessions chain fetched by a bare `requests` loop.

Timing of dlt's steps: `Pipeline.extract/normalize/load` are wrapped (measurement only, the calls
are unchanged); every call is recorded as (step, start, end, CPU seconds, pipeline name, peak RSS
MiB so far), times from the start of the run, CPU as `time.process_time()` over the call (every
thread of the process: read-ahead threads still reading count where they run). The child reports
its peak RSS (VmHWM, see `high_water_mib`); the parent measures its CPU seconds (`os.wait4`).
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import resource
import sys
import time
from collections.abc import Callable
from typing import Any


def high_water_mib() -> float:
    """Peak RSS of this process's own memory since exec (VmHWM). `ru_maxrss` is no good for that: Linux
    carries the parent's peak into it at exec, so a child of the bench never shows less than the bench."""
    with open("/proc/self/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: the best there is


def _timed(run: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """`run()` with dlt's steps wrapped: its answer, and its wall time, steps and row counts."""
    from dlt.pipeline.pipeline import Pipeline

    calls: list[list[Any]] = []
    counts: dict[str, int] = {}

    def wrap(step: str) -> None:
        original = getattr(Pipeline, step)

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                info = original(self, *args, **kwargs)
            finally:
                end, cpu = time.perf_counter(), time.process_time() - cpu
                peak = high_water_mib()  # so far: which step set the peak
                at = [round(started - origin, 4), round(end - origin, 4)]
                calls.append([step, *at, round(cpu, 4), self.pipeline_name, round(peak, 1)])
            if step == "normalize" and info is not None:
                for table, n in (getattr(info, "row_counts", None) or {}).items():
                    counts[table] = counts.get(table, 0) + n
            return info

        setattr(Pipeline, step, timed)

    for step in ("extract", "normalize", "load"):
        wrap(step)
    epoch, origin, cpu = time.time(), time.perf_counter(), time.process_time()
    answer = run()
    figures = {"wall_s": time.perf_counter() - origin, "run_cpu_s": time.process_time() - cpu}
    return answer, {**figures, "steps": calls, "row_counts": counts, "origin_epoch": epoch}


def run_seed(spec: dict[str, Any]) -> dict[str, Any]:
    import dlt
    import dlt.sources.rest_api  # imported before the clock starts, as for the project

    from bench.seed import seed_source

    def seed_run() -> Any:
        pipeline = dlt.pipeline(pipeline_name="analytics_seed", destination="duckdb", dataset_name="analytics")
        return pipeline.run(seed_source(spec["base_url"]))

    _, figures = _timed(seed_run)
    return {"ok": True, **figures}


def run_project(spec: dict[str, Any]) -> dict[str, Any]:
    import main  # noqa: F401  (module init as on a cold instance; it sets DLT_PROJECT_DIR before dlt reads it)

    # what the first request imports (dlt's REST API source, the source, the loader), imported
    # before the clock starts: cold start is measured on its own
    importlib.import_module("dlt.sources.rest_api")
    for package in ("source", "loader"):
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            importlib.import_module(module.name)
    from bench.levers import CODE
    from loader.service import handle

    for name in spec.get("code", []):
        CODE[name]()
    request = spec.get("body", "{}").encode()  # the POST body: `{}` is the default run
    (status, body), figures = _timed(lambda: handle("POST", request))
    return {"ok": status == 200, "status": status, "error": body.get("error"), **figures}


def run_import(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    import main  # noqa: F401

    return {"ok": True, "import_main_s": time.perf_counter() - started}


def run_import_breakdown(spec: dict[str, Any]) -> dict[str, Any]:
    """Imports one after the other in one interpreter: what `import main` pays for (flask,
    functions_framework, the loader) and what the first request adds (dlt and its REST API source)."""
    steps = {}
    for name in ("flask", "functions_framework", "dlt", "dlt.sources.rest_api", "loader.service", "main"):
        started = time.perf_counter()
        importlib.import_module(name)
        steps[name] = time.perf_counter() - started
    return {"ok": True, "steps": steps}


def run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """The longest cursor chain fetched by a bare `requests` loop (no dlt, nothing else running):
    what one request of the chain costs on this machine against this simulator."""
    import requests

    session = requests.Session()
    headers = {"Authorization": f"Bearer {spec['api_key']}"}
    params = dict(spec["params"])
    pages = 0
    started = time.perf_counter()
    while True:
        answer = session.get(spec["base_url"] + spec["path"], params=params, headers=headers, timeout=60)
        answer.raise_for_status()
        pages += 1
        token = answer.json().get("nextPaginationToken")
        if not token:
            break
        params["pagination_token"] = token
    wall = time.perf_counter() - started
    return {"ok": True, "wall_s": wall, "pages": pages, "cycle_ms": 1000 * wall / pages}


def run_firstreq(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    import functions_framework

    app = functions_framework.create_app(target="run_pipeline", source=spec["main_py"])
    ready = time.perf_counter() - started
    t = time.perf_counter()
    response = app.test_client().post("/", data="{}", content_type="application/json")
    first = time.perf_counter() - t
    return {
        "ok": response.status_code == 200,
        "status": response.status_code,
        "app_ready_s": ready,
        "first_post_s": first,
        "to_first_answer_s": time.perf_counter() - started,
    }


MODES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "seed": run_seed,
    "project": run_project,
    "import": run_import,
    "import_breakdown": run_import_breakdown,
    "firstreq": run_firstreq,
    "probe": run_probe,
}


def main() -> None:
    spec_path, result_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    try:
        result = MODES[spec["mode"]](spec)
    except Exception as exc:  # reported, the parent marks the run failed
        import traceback

        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    result["self_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["high_water_mib"] = high_water_mib()
    with open(result_path, "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown in the figures: the parent has what it needs


if __name__ == "__main__":
    main()
