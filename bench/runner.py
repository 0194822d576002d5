"""Start one measured run in a fresh subprocess and collect its figures.

Every run gets a fresh working folder (DuckDB file, DLT_DATA_DIR, pipelines) that is removed
afterwards, and a clean environment: no inherited dlt/loader settings, telemetry off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH_ROOT = Path(__file__).resolve().parent.parent  # the repo this bench lives in
API_KEY = "bench-key-7c1d"
UID = "bench-uid"

# settings the runs must not inherit from the caller's shell
_STRIP_PREFIXES = tuple(
    "DLT_ SOURCES__ DESTINATION RUNTIME__ EXTRACT__ NORMALIZE__ LOAD__ DATA_WRITER__ SCHEMA__ PIPELINES__".split()
)
_STRIP_NAMES = ("API_KEY", "UID", "API_KEY_SECRET", "DATASET_NAME", "PIPELINE_NAME", "API_KEY_CACHE_SECONDS")


def run(
    spec: dict[str, Any],
    log_dir: Path,
    timeout_s: float,
    tree: Path = BENCH_ROOT,
    env: dict[str, str] | None = None,
    destination: str | None = None,
) -> dict[str, Any]:
    """`spec` run by `python -m bench.child` in a new folder, with `tree` first on the path; with a
    `destination`, the loader's settings point at the simulator (`spec["base_url"]`) and a warehouse
    in that folder. Returns the child's result plus its wall time and peak RSS."""
    root = Path(tempfile.mkdtemp(prefix="analytics-bench-"))
    settings = {"DLT_DATA_DIR": str(root / "dlt"), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    if destination:
        settings["DESTINATION"] = destination
        settings["SOURCES__ANALYTICS__BASE_URL"] = spec["base_url"]
        settings["SOURCES__ANALYTICS__UID"], settings["SOURCES__ANALYTICS__API_KEY"] = UID, API_KEY
        if destination == "duckdb":
            settings["DESTINATION__DUCKDB__CREDENTIALS"] = str(root / "warehouse.duckdb")
        if destination == "filesystem":
            settings["DESTINATION__FILESYSTEM__BUCKET_URL"] = str(root / "bucket")
    settings.update(env or {})
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP_PREFIXES) and k not in _STRIP_NAMES}
    inherited["PYTHONPATH"] = os.pathsep.join([str(tree)] + ([str(BENCH_ROOT)] if tree != BENCH_ROOT else []))
    try:
        return _run_child(spec, {**inherited, **settings}, root, log_dir, timeout_s)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_child(spec: dict[str, Any], env: dict[str, str], cwd: Path, log_dir: Path, timeout_s: float) -> dict[str, Any]:
    spec_path, result_path, log_path = cwd / "spec.json", cwd / "result.json", cwd / "child.log"
    spec_path.write_text(json.dumps(spec))
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        command = [sys.executable, "-m", "bench.child", str(spec_path), str(result_path)]
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        tree_peak = [0]
        done = threading.Event()
        sampler = threading.Thread(target=_sample_tree_rss, args=(proc.pid, done, tree_peak), daemon=True)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            done.set()
            sampler.join()
        process_wall = time.perf_counter() - started
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        exit_code = os.waitstatus_to_exitcode(status)
        result = {"ok": False, "error": f"no result (exit code {exit_code}; killed after {timeout_s:.0f} s?)"}
    result["process_wall_s"] = process_wall
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux; the largest of the process and its children
    result["tree_peak_rss_mib"] = tree_peak[0] / 2**20  # sampled sum over the process and its children
    if not result.get("ok"):
        log_dir.mkdir(parents=True, exist_ok=True)
        kept = log_dir / f"{spec['mode']}-{int(time.time() * 1000)}.log"
        shutil.copy(log_path, kept)
        result["log"] = str(kept)
    return result


def _sample_tree_rss(pid: int, done: threading.Event, peak: list[int], every_s: float = 0.05) -> None:
    """Sum of RSS over the process and its children (dlt's normalize may run a process pool)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        while not done.is_set():
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass  # a pool worker that just exited
            peak[0] = max(peak[0], total)
            done.wait(every_s)
    except psutil.Error:
        return  # the run's process has exited
