"""What the test modules share: the simulator's key and uid, a POST to the function in-process,
reads of the DuckDB warehouse and of the JSON log lines. Fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import duckdb
import requests

from simulator.local import free_port, table_counts

__all__ = [
    "API_KEY",
    "INHERITED_SETTINGS",
    "ListAcrossProcesses",
    "ROOT",
    "SEED_RESOURCES",
    "UID",
    "free_port",
    "log_lines",
    "post",
    "query",
    "served_function",
    "table_counts",
]

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-5f1c9e77"  # what the simulator accepts; tests assert it is never leaked
UID = "u1"
# settings a test's environment must not inherit from the shell that runs pytest
INHERITED_SETTINGS = (
    "API_KEY_SECRET",
    "DATASET_NAME",
    "PIPELINE_NAME",
    "SOURCES__ANALYTICS__PROFILE",
    "SOURCES__ANALYTICS__AUTH_SCHEME",
    "DATA_WRITER__DISABLE_COMPRESSION",
)
# the seed's ten resources, written out from the seed document: an expectation computed from the
# loader's own table would shrink with it
SEED_RESOURCES = (
    "sessions",
    "segments",
    "operations",
    "blockrules",
    "domainsettings",
    "geosettings",
    "recordingfeatures",
    "sessionTargetingRules",
    "webhooks",
    "eventDefs",
)


class ListAcrossProcesses:
    """A list that the process reading a long chain (source/reader_process.py, a fork) appends to as
    well as this one: each value is a JSON line in a file, read back whenever the list is looked at."""

    def __init__(self, path: Path) -> None:
        self._path = path
        path.write_text("")

    def append(self, value: Any) -> None:
        with open(self._path, "a") as f:  # one short write: lines of two processes never interleave
            f.write(json.dumps(value) + "\n")

    def values(self) -> List[Any]:
        return [json.loads(line) for line in self._path.read_text().splitlines()]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (list, ListAcrossProcesses)) and self.values() == list(other)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def __len__(self) -> int:
        return len(self.values())

    def __getitem__(self, index: int) -> Any:
        return self.values()[index]

    def __repr__(self) -> str:
        return repr(self.values())


def post(service: Any, resources: Optional[Sequence[str]] = None) -> Tuple[int, Dict[str, Any]]:
    """The function's answer to a POST of `{}` or `{"resources": [...]}`, called in-process."""
    raw = b"{}" if resources is None else json.dumps({"resources": list(resources)}).encode()
    return service.handle("POST", raw)


def query(path: str, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
    """The rows of one SQL query against a DuckDB file, opened read-only."""
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def log_lines(text: str) -> List[Dict[str, Any]]:
    """The JSON log lines in captured output; other lines (dlt's, pytest's) are skipped."""
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
    return lines


@contextlib.contextmanager
def served_function(env: Mapping[str, str], log: Path) -> Iterator[str]:
    """`functions-framework --target run_pipeline --source main.py` as a real process (gunicorn, as Cloud
    Run serves the function) with `env` on top of this one; its output goes to `log`. Yields its URL."""
    port = free_port()
    command = ["functions-framework", "--target", "run_pipeline", "--source", "main.py"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / command[0]), *command[1:], "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    requests.get(url, timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(15)
