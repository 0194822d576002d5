"""`make demo`: the loader end to end on this machine, no cloud account needed.

Starts the API simulator and the function (`functions-framework --target run_pipeline`) on
loopback ports, triggers a run over HTTP the way Cloud Scheduler does (POST, JSON body, bearer
token header), prints the function's JSON answer and the rows per table read back from the
DuckDB file, then stops everything it started, also on Ctrl-C or error.

`--destination bigquery` (`make demo DESTINATION=bigquery`): the same run into a BigQuery
emulator (`.venv-bqemu`, started by tests/bigquery_emulator.py's `BigQueryEmulator`) through dlt's
BigQuery destination; the rows per table are read back through Google's BigQuery client.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
# `python scripts/demo.py` puts scripts/ on the path, not the project
sys.path.insert(0, str(ROOT))

from simulator.local import free_port, table_counts  # noqa: E402 (after the path is set)

WORK = ROOT / ".demo"
API_KEY = "demo-key"
SESSIONS, OTHERS = 500, 40


def wait_for_port(port: int, proc: subprocess.Popen, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see {WORK}/{what}.log")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {seconds:.0f} s")


def start_process(args: List[str], log: Path, **popen: Any) -> subprocess.Popen:
    """A process with its output in `log`; the child keeps its own handle, ours is closed at once."""
    with open(log, "w") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **popen)


def bigquery_table_counts(emulator: Any, dataset: str) -> Dict[str, int]:
    """Rows per table, dlt's own tables left out, read through google-cloud-bigquery."""
    client = emulator.client()
    tables = sorted(t.table_id for t in client.list_tables(dataset) if not t.table_id.startswith("_dlt"))
    sql = "select count(*) as n from `{}.{}.{}`"
    return {t: next(iter(client.query(sql.format(emulator.project, dataset, t)).result()))["n"] for t in tables}


def start_bigquery_emulator() -> Any:
    from tests.bigquery_emulator import BigQueryEmulator

    return BigQueryEmulator(WORK / "bigquery-emulator").start()


def main(destination: str = "duckdb") -> int:
    import requests

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    sim_port, fn_port = free_port(), free_port()
    db = WORK / "warehouse.duckdb"
    procs: List[subprocess.Popen] = []
    bin_dir = Path(sys.executable).parent
    emulator: Optional[Any] = None

    def stop_all(*_: object) -> None:
        if emulator is not None:
            emulator.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        if destination == "bigquery":
            print("0/4 starting the BigQuery emulator (.venv-bqemu) on a free loopback port")
            emulator = start_bigquery_emulator()
            print(f"    {emulator.url}, project {emulator.project!r} (log: .demo/bigquery-emulator/emulator.log)")
        print(
            f"1/4 starting the API simulator on 127.0.0.1:{sim_port} "
            f"({SESSIONS} sessions, {OTHERS} rows per other resource)"
        )
        procs.append(
            start_process(
                [
                    sys.executable,
                    "-m",
                    "simulator",
                    "--port",
                    str(sim_port),
                    "--api-key",
                    API_KEY,
                    "--rows",
                    str(OTHERS),
                    "--resource-rows",
                    f"sessions={SESSIONS}",
                    "--page-size",
                    "50",
                    "--latency-ms",
                    "20",
                ],
                WORK / "simulator.log",
                cwd=ROOT,
            )
        )
        wait_for_port(sim_port, procs[-1], "simulator")

        env = {
            **os.environ,
            "SOURCES__ANALYTICS__BASE_URL": f"http://127.0.0.1:{sim_port}",
            "SOURCES__ANALYTICS__UID": "demo-user",
            "SOURCES__ANALYTICS__API_KEY": API_KEY,
            "DESTINATION": "duckdb",
            "DESTINATION__DUCKDB__CREDENTIALS": str(db),
            "DLT_DATA_DIR": str(WORK / "dlt"),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("API_KEY_SECRET", None)
        if emulator is not None:
            env.update(emulator.loader_env("analytics"))
        print(
            f"2/4 serving main.run_pipeline with functions-framework on 127.0.0.1:{fn_port} (logs: .demo/function.log)"
        )
        procs.append(
            start_process(
                [
                    str(bin_dir / "functions-framework"),
                    "--target",
                    "run_pipeline",
                    "--source",
                    "main.py",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(fn_port),
                ],
                WORK / "function.log",
                cwd=ROOT,
                env=env,
            )
        )
        wait_for_port(fn_port, procs[-1], "function")

        print("3/4 triggering a run as Cloud Scheduler does: POST {} with a bearer token")
        started = time.monotonic()
        answer = requests.post(
            f"http://127.0.0.1:{fn_port}/",
            data=b"{}",
            timeout=300,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Google-Cloud-Scheduler",
                "Authorization": "Bearer demo-oidc-token",
            },
        )
        print(f"    HTTP {answer.status_code} in {time.monotonic() - started:.1f} s")
        print(json.dumps(answer.json(), indent=2))
        dataset = answer.json().get("dataset", "analytics")
        if emulator is not None:
            counts = bigquery_table_counts(emulator, dataset)
            where = f"dataset {dataset!r} on the BigQuery emulator (read back through google-cloud-bigquery)"
        stop_all()
        if emulator is None:
            counts = table_counts(db, dataset, run_history=True)
            where = f"{db.relative_to(ROOT)} (read back from DuckDB)"
        print(f"4/4 rows per table in {where}:")
        width = max((len(t) for t in counts), default=5)
        print(f"    {'table':<{width}}  rows")
        for table, rows in counts.items():
            print(f"    {table:<{width}}  {rows:>5}")
        print(f"    {'total':<{width}}  {sum(counts.values()):>5}")
        return 0 if answer.status_code == 200 and counts else 1
    except KeyboardInterrupt:
        print("interrupted: stopping the simulator and the function")
        return 130
    finally:
        stop_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--destination",
        choices=("duckdb", "bigquery"),
        default=os.environ.get("DESTINATION") or "duckdb",
        help="the warehouse: DuckDB (default) or the BigQuery emulator",
    )
    sys.exit(main(parser.parse_args().destination))
