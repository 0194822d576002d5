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
from typing import Any, Dict, List, Optional

BENCH_ROOT = Path(__file__).resolve().parent.parent  # the repo this bench lives in
API_KEY = "bench-key-7c1d"
UID = "bench-uid"

# settings the runs must not inherit from the caller's shell
_STRIP_PREFIXES = ("DLT_", "SOURCES__", "DESTINATION", "RUNTIME__", "EXTRACT__", "NORMALIZE__", "LOAD__",
                   "DATA_WRITER__", "SCHEMA__", "PIPELINES__", "PYTHONPATH")
_STRIP_NAMES = ("API_KEY", "UID", "API_KEY_SECRET", "DATASET_NAME", "PIPELINE_NAME", "API_KEY_CACHE_SECONDS")


def clean_env(tree: Path, extra: Dict[str, str]) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_STRIP_PREFIXES) and k not in _STRIP_NAMES}
    paths = [str(tree)] + ([str(BENCH_ROOT)] if tree != BENCH_ROOT else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    env.update(extra)
    return env


def run_child(spec: Dict[str, Any], env: Dict[str, str], cwd: Path, log_dir: Path, timeout_s: float,
              python: str = sys.executable, extra_args: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run `python -m bench.child` with `spec`; return its result plus wall time and peak RSS."""
    spec_path = cwd / "spec.json"
    result_path = cwd / "result.json"
    spec_path.write_text(json.dumps(spec))
    log_path = cwd / "child.log"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen([python, *(extra_args or []), "-m", "bench.child", str(spec_path), str(result_path)],
                                cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
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
        proc.returncode = os.waitstatus_to_exitcode(status)
        process_wall = time.perf_counter() - started
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        result = {"ok": False, "error": f"no result (exit code {proc.returncode}; killed after {timeout_s:.0f} s?)"}
    result["process_wall_s"] = process_wall
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux; the largest of the process and its children
    result["tree_peak_rss_mib"] = tree_peak[0] / 2**20  # sampled sum over the process and its children (0: no psutil)
    if not result.get("ok"):
        log_dir.mkdir(parents=True, exist_ok=True)
        kept = log_dir / f"{spec['mode']}-{int(time.time() * 1000)}.log"
        shutil.copy(log_path, kept)
        result["log"] = str(kept)
    return result


def _sample_tree_rss(pid: int, done: threading.Event, peak: List[int], every_s: float = 0.05) -> None:
    """Sum of RSS over the process and its children (dlt's normalize may run a process pool)."""
    try:
        import psutil
    except ImportError:
        return
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return
    while not done.is_set():
        try:
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            return
        peak[0] = max(peak[0], total)
        done.wait(every_s)


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="analytics-bench-"))


def seed_run(base_url: str, log_dir: Path, timeout_s: float, tree: Path = BENCH_ROOT) -> Dict[str, Any]:
    """(a) The seed's configuration as-is: cwd in an empty folder, no DLT_PROJECT_DIR, no project config."""
    root = workdir()
    try:
        env = clean_env(tree, {"API_KEY": API_KEY, "UID": UID, "DLT_DATA_DIR": str(root / "dlt")})
        return run_child({"mode": "seed", "base_url": base_url}, env, root, log_dir, timeout_s)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def project_env(root: Path, base_url: str, destination: str, overrides: Dict[str, str]) -> Dict[str, str]:
    env = {
        "DESTINATION": destination,
        "DLT_DATA_DIR": str(root / "dlt"),
        "SOURCES__ANALYTICS__BASE_URL": base_url,
        "SOURCES__ANALYTICS__UID": UID,
        "SOURCES__ANALYTICS__API_KEY": API_KEY,
    }
    if destination == "duckdb":
        env["DESTINATION__DUCKDB__CREDENTIALS"] = str(root / "warehouse.duckdb")
    if destination == "filesystem":
        env["DESTINATION__FILESYSTEM__BUCKET_URL"] = str(root / "bucket")
    env.update(overrides)
    return env


def project_run(base_url: str, destination: str, log_dir: Path, timeout_s: float, tree: Path = BENCH_ROOT,
                overrides: Optional[Dict[str, str]] = None, patches: Optional[List[str]] = None) -> Dict[str, Any]:
    """(b) This project through the function's code path: `import main`, `handle("POST", b"{}")`."""
    root = workdir()
    try:
        env = clean_env(tree, project_env(root, base_url, destination, overrides or {}))
        spec = {"mode": "project", "patches": patches or []}
        return run_child(spec, env, root, log_dir, timeout_s)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def import_run(log_dir: Path, tree: Path = BENCH_ROOT) -> Dict[str, Any]:
    root = workdir()
    try:
        return run_child({"mode": "import"}, clean_env(tree, {"DLT_DATA_DIR": str(root / "dlt")}), root, log_dir, 120)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def first_request_run(base_url: str, log_dir: Path, timeout_s: float, tree: Path = BENCH_ROOT) -> Dict[str, Any]:
    root = workdir()
    try:
        env = clean_env(tree, project_env(root, base_url, "duckdb", {}))
        return run_child({"mode": "firstreq", "main_py": str(tree / "main.py")}, env, root, log_dir, timeout_s)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def import_breakdown_run(log_dir: Path, tree: Path = BENCH_ROOT) -> Dict[str, Any]:
    """What `import main` pays for, module by module, in a fresh interpreter (see bench.child)."""
    root = workdir()
    try:
        return run_child({"mode": "import_breakdown"}, clean_env(tree, {"DLT_DATA_DIR": str(root / "dlt")}), root, log_dir, 120)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def probe_run(base_url: str, log_dir: Path, timeout_s: float) -> Dict[str, Any]:
    """The sessions chain fetched by a bare requests loop: the practical floor of the extract step."""
    root = workdir()
    try:
        spec = {"mode": "probe", "base_url": base_url, "api_key": API_KEY, "path": "/sessions/v2", "params": {"uid": UID}}
        return run_child(spec, clean_env(BENCH_ROOT, {}), root, log_dir, timeout_s)
    finally:
        shutil.rmtree(root, ignore_errors=True)
