"""Changes to the loader, applied inside a benchmark run by monkeypatching (`--patch NAME`).

Each one models a proposed code change (docs/benchmarks.md, "Levers") so that its effect can be
measured on the unchanged tree; the project's files are not touched. Once a change is adopted by
the product (compiled selectors, read-ahead, jsonl loads and memory_limit for DuckDB), its model
is removed: applied on top of the real thing it would measure nothing. They are applied in the
child process after the project's modules are imported and before the run starts.
"""

from __future__ import annotations

from typing import Any


def _duckdb_caps(**caps: Any) -> None:
    import loader.pipeline as lp

    original = lp.destination_for

    def destination_for(settings: Any) -> Any:
        dest = original(settings)
        if getattr(settings, "destination", None) == "duckdb":
            dest.caps_params.update(caps)
        return dest

    lp.destination_for = destination_for


def duckdb_parquet() -> None:
    """DuckDB loads parquet files instead of the jsonl files the loader uses (as BigQuery does).

    The change it models: `preferred_loader_file_format="parquet"` in
    `loader.pipeline.destination_for` (DuckDB only: BigQuery keeps jsonl)."""
    _duckdb_caps(preferred_loader_file_format="parquet")


def switch_interval() -> None:
    """`sys.setswitchinterval(0.001)`: a thread waiting for an HTTP answer gets the GIL back within
    1 ms instead of 5 ms while another thread runs Python code (normalize, dlt's extract loop)."""
    import sys

    sys.setswitchinterval(0.001)


PATCHES = {fn.__name__: fn for fn in (duckdb_parquet, switch_interval)}
