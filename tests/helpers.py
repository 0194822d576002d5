"""What the test modules share: the simulator's key and uid, a POST to the function in-process,
reads of the DuckDB warehouse and of the JSON log lines. Fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import duckdb

from simulator.local import free_port, table_counts

__all__ = ["API_KEY", "ROOT", "UID", "free_port", "log_lines", "post", "query", "table_counts"]

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-5f1c9e77"  # what the simulator accepts; tests assert it is never leaked
UID = "u1"


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
