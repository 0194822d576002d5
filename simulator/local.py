"""Helpers for local runs against the simulator (`make demo`, the tests): a free port, rows per table."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Dict, Union

# The loader's own run history (loader.run_history.TABLE): its rows are runs, not the API's data.
RUN_HISTORY_TABLE = "_loader_runs"


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def table_counts(
    duckdb_path: Union[str, Path], dataset: str = "analytics", *, run_history: bool = False
) -> Dict[str, int]:
    """Rows per table in a DuckDB file, by table name; dlt's own tables left out, and the run history
    (`_loader_runs`) too unless `run_history`."""
    import duckdb

    sql = "select table_name from information_schema.tables where table_schema = ? and table_name not like '_dlt%'"
    if not run_history:
        sql += f" and table_name <> '{RUN_HISTORY_TABLE}'"
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        tables = sorted(r[0] for r in con.execute(sql, [dataset]).fetchall())
        return {t: con.execute(f'select count(*) from "{dataset}"."{t}"').fetchall()[0][0] for t in tables}
