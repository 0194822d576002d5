"""One measured run, in a fresh process: `python -m bench.child SPEC.json RESULT.json`.

Modes:
  seed     the seed's configuration as-is: `rest_api_source(<seed dict>)`, `dlt.pipeline(...,
           destination="duckdb").run(source)`, cwd in an empty folder, no project config.
  project  the function's code path: `import main`, then `loader.service.handle("POST", b"{}")`.
  import   `import main` in a fresh interpreter (cold start).
  firstreq a fresh functions-framework app (`create_app(target="run_pipeline")`) and its first POST.

Timing of dlt's steps: `Pipeline.extract/normalize/load` are wrapped (measurement only, the calls
are unchanged); every call is recorded as (step, start, end) from the start of the run. Peak RSS
is measured by the parent (`os.wait4`); the child reports its own `ru_maxrss` too.
"""

from __future__ import annotations

import json
import resource
import sys
import time

T0 = time.perf_counter()


def _wrap_steps(calls: list, counts: dict, origin: list) -> None:
    from dlt.pipeline.pipeline import Pipeline

    for step in ("extract", "normalize", "load"):
        original = getattr(Pipeline, step)

        def timed(self, *args, __original=original, __step=step, **kwargs):
            started = time.perf_counter()
            try:
                info = __original(self, *args, **kwargs)
            finally:
                calls.append([__step, round(started - origin[0], 4), round(time.perf_counter() - origin[0], 4)])
            if __step == "normalize" and info is not None:
                for table, n in (getattr(info, "row_counts", None) or {}).items():
                    counts[table] = counts.get(table, 0) + n
            return info

        timed.__wrapped__ = original
        setattr(Pipeline, step, timed)


def run_seed(spec: dict) -> dict:
    import dlt  # noqa: F401  (imported before the clock starts, as for the project)
    import dlt.sources.rest_api  # noqa: F401

    from bench.seed import seed_source

    calls: list = []
    counts: dict = {}
    origin = [0.0]
    _wrap_steps(calls, counts, origin)
    import dlt as _dlt

    origin[0] = started = time.perf_counter()
    epoch = time.time()
    pipeline = _dlt.pipeline(pipeline_name="analytics_seed", destination="duckdb", dataset_name="analytics")
    pipeline.run(seed_source(spec["base_url"]))
    wall = time.perf_counter() - started
    return {"ok": True, "wall_s": wall, "steps": calls, "row_counts": counts, "origin_epoch": epoch}


def run_project(spec: dict) -> dict:
    import threading

    import main  # noqa: F401  (module init as on a cold instance: DLT_PROJECT_DIR, warm imports)

    for thread in threading.enumerate():
        if thread.name == "warm-imports":
            thread.join()
    import dlt  # noqa: F401

    import dlt.sources.rest_api  # noqa: F401
    import importlib.util

    import loader.pipeline  # noqa: F401
    import source  # noqa: F401

    if importlib.util.find_spec("source.analytics"):  # a tree where `source` imports it lazily
        importlib.import_module("source.analytics")
    from loader.service import handle

    from bench.patches import PATCHES

    for name in spec.get("patches", []):
        PATCHES[name]()
    calls: list = []
    counts: dict = {}
    origin = [0.0]
    _wrap_steps(calls, counts, origin)
    origin[0] = started = time.perf_counter()
    epoch = time.time()
    status, body = handle("POST", spec.get("body", "{}").encode())
    wall = time.perf_counter() - started
    return {"ok": status == 200, "status": status, "wall_s": wall, "steps": calls, "row_counts": counts,
            "error": body.get("error"), "answer_row_counts": body.get("row_counts"), "origin_epoch": epoch}


def run_import(spec: dict) -> dict:
    import threading

    started = time.perf_counter()
    import main  # noqa: F401

    imported = time.perf_counter() - started
    # did the main thread import dlt itself? `source` (dlt + its REST API source) is not among
    # the background thread's imports
    pulled = sorted(m for m in ("dlt.sources.rest_api",) if m in sys.modules)
    warm = [t for t in threading.enumerate() if t.name == "warm-imports"]
    for t in warm:
        t.join()
    return {"ok": True, "import_main_s": imported, "warm_imports_done_s": time.perf_counter() - started,
            "since_interpreter_start_s": time.perf_counter() - T0, "main_thread_imported": pulled}


def run_import_breakdown(spec: dict) -> dict:
    """`import main` in steps, in one thread: which imports the main thread waits for.

    `-X importtime` cannot say it: `import main` starts dlt's import in a background thread and
    the two threads' import times interleave."""
    import importlib

    steps = {}
    for name in ("flask", "functions_framework", "dlt", "dlt.sources.rest_api", "source.settings", "loader.service", "main"):
        started = time.perf_counter()
        importlib.import_module(name)
        steps[name] = time.perf_counter() - started
    return {"ok": True, "steps": steps}


def run_probe(spec: dict) -> dict:
    """The longest cursor chain fetched by a bare `requests` loop (no dlt, nothing else running):
    what one request of the chain costs on this machine against this simulator."""
    import requests

    session = requests.Session()
    headers = {"Authorization": f"Bearer {spec['api_key']}"}
    params = dict(spec.get("params") or {})
    pages = 0
    started = time.perf_counter()
    while True:
        answer = session.get(spec["base_url"] + spec["path"], params=params, headers=headers, timeout=60)
        answer.raise_for_status()
        body = answer.json()
        pages += 1
        token = body.get("nextPaginationToken")
        if not token:
            break
        params["pagination_token"] = token
    wall = time.perf_counter() - started
    return {"ok": True, "wall_s": wall, "pages": pages, "cycle_ms": 1000 * wall / pages}


def run_firstreq(spec: dict) -> dict:
    started = time.perf_counter()
    import functions_framework

    app = functions_framework.create_app(target="run_pipeline", source=spec["main_py"])
    ready = time.perf_counter() - started
    client = app.test_client()
    t = time.perf_counter()
    response = client.post("/", data=spec.get("body", "{}"), content_type="application/json")
    first = time.perf_counter() - t
    return {"ok": response.status_code == 200, "status": response.status_code, "app_ready_s": ready,
            "first_post_s": first, "to_first_answer_s": time.perf_counter() - started}


def main() -> None:
    spec_path, result_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    runner = {"seed": run_seed, "project": run_project, "import": run_import, "firstreq": run_firstreq,
              "import_breakdown": run_import_breakdown,
              "probe": run_probe}[spec["mode"]]
    try:
        result = runner(spec)
    except Exception as exc:  # reported, the parent marks the run failed
        import traceback

        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    result["self_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(result_path, "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    # no interpreter teardown in the figures: the parent has what it needs
    import os

    os._exit(0)


if __name__ == "__main__":
    main()
