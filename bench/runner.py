"""Start one measured run in a fresh subprocess and collect its figures.

Every run gets a fresh working folder (DuckDB file, DLT_DATA_DIR, pipelines) that is removed
afterwards, and a clean environment: no inherited dlt/loader settings, telemetry off.
"""

from __future__ import annotations

import contextlib
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
_STRIP_PREFIXES: tuple[str, ...] = ("DLT_", "SOURCES__", "DESTINATION", "RUNTIME__", "EXTRACT__", "NORMALIZE__")
_STRIP_PREFIXES += ("LOAD__", "DATA_WRITER__", "SCHEMA__", "PIPELINES__")
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
    in that folder. Returns the child's result plus its wall time, CPU seconds, peak RSS and the peak
    size of its dlt working folder (DLT_DATA_DIR: what the function keeps in its in-memory /tmp)."""
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
        return _run_child(spec, {**inherited, **settings}, root, log_dir, timeout_s, Path(settings["DLT_DATA_DIR"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_child(
    spec: dict[str, Any], env: dict[str, str], cwd: Path, log_dir: Path, timeout_s: float, workdir: Path
) -> dict[str, Any]:
    spec_path, result_path, log_path = cwd / "spec.json", cwd / "result.json", cwd / "child.log"
    spec_path.write_text(json.dumps(spec))
    loadavg = os.getloadavg()[0]  # the machine is shared: what else ran, next to each figure
    busy, mine, helpers, kernel = _busy_cpu_s(), os.times(), _helpers_cpu_s(), _kernel_threads_cpu_s()
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        command = [sys.executable, "-m", "bench.child", str(spec_path), str(result_path)]
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        peaks = {"tree_rss": 0, "workdir": 0}
        done = threading.Event()
        sampler = threading.Thread(target=_sample, args=(proc.pid, workdir, done, peaks), daemon=True)
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
    result["loadavg"] = loadavg
    # CPU the rest of the machine used meanwhile, in cores: all busy CPU time less the bench's process
    # (the simulator's threads), its helpers (the BigQuery emulator), the run's, and the kernel's own
    # threads (writeback, reclaim: mostly on the bench's behalf); the load average counts the bench too
    now, helpers_now, kernel_now = os.times(), _helpers_cpu_s(), _kernel_threads_cpu_s()
    helpers_cpu = sum(cpu - helpers[pid] for pid, cpu in helpers_now.items() if pid in helpers)
    kernel_cpu = sum(cpu - kernel[pid] for pid, cpu in kernel_now.items() if pid in kernel)
    bench_cpu = (now.user - mine.user) + (now.system - mine.system) + helpers_cpu + usage.ru_utime + usage.ru_stime
    result["others_cores"] = max(0.0, _busy_cpu_s() - busy - bench_cpu - kernel_cpu) / process_wall
    # the run's own peak (VmHWM): ru_maxrss includes the bench's own peak, which Linux carries into a child at exec
    result["ru_maxrss_mib"] = usage.ru_maxrss / 1024
    result["peak_rss_mib"] = result.get("high_water_mib") or result["ru_maxrss_mib"]
    result["tree_peak_rss_mib"] = peaks["tree_rss"] / 2**20  # sampled sum over the process and its children
    # user + system CPU of the process and the children it waited for (a normalize pool), imports included
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    # sampled during the run, and once at its end (dlt keeps loaded packages in the folder)
    result["workdir_end_mib"] = _folder_bytes(workdir) / 2**20  # what a warm instance keeps until its next run
    result["workdir_peak_mib"] = max(peaks["workdir"] / 2**20, result["workdir_end_mib"])
    if not result.get("ok"):
        log_dir.mkdir(parents=True, exist_ok=True)
        kept = log_dir / f"{spec['mode']}-{int(time.time() * 1000)}.log"
        shutil.copy(log_path, kept)
        result["log"] = str(kept)
    return result


def _sample(pid: int, workdir: Path, done: threading.Event, peaks: dict[str, int], every_s: float = 0.05) -> None:
    """Peaks of the RSS summed over the process and its children (dlt's normalize may run a process
    pool), every `every_s`, and of the working folder's size, every 10th time (a walk of the folder)."""
    import psutil

    tick = 0
    try:
        proc = psutil.Process(pid)
        while not done.is_set():
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # a pool worker that just exited
                    total += child.memory_info().rss
            peaks["tree_rss"] = max(peaks["tree_rss"], total)
            if tick % 10 == 0:
                peaks["workdir"] = max(peaks["workdir"], _folder_bytes(workdir))
            tick += 1
            done.wait(every_s)
    except psutil.Error:
        return  # the run's process has exited


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle and iowait;
    steal counts, a neighbour VM took it)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _helpers_cpu_s() -> dict[int, float]:
    """CPU seconds of each process the bench started that is still running (e.g. the BigQuery emulator)."""
    import psutil

    cpu = {}
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # exited meanwhile
            times = proc.cpu_times()
            cpu[proc.pid] = times.user + times.system
    return cpu


def _kernel_threads_cpu_s() -> dict[int, float]:
    """CPU seconds of each kernel thread (kthreadd, pid 2, and its children)."""
    import psutil

    cpu = {}
    for proc in psutil.process_iter(["pid", "ppid", "cpu_times"]):
        info = proc.info
        if (info["pid"] == 2 or info["ppid"] == 2) and info["cpu_times"] is not None:
            cpu[info["pid"]] = info["cpu_times"].user + info["cpu_times"].system
    return cpu


def _folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (files that vanish while it is walked are skipped)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # moved or deleted by dlt meanwhile
                total += os.lstat(os.path.join(parent, name)).st_size
    return total
