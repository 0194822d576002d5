"""`python -m bench --levers`: B with one setting or one modelled code change at a time.

A lever is (label, environment overrides, code changes from `CODE`). Overrides are dlt's own
settings (`EXTRACT__WORKERS` is `[extract] workers` in .dlt/config.toml) or the source's
(`SOURCES__ANALYTICS__RESOURCES`). A code change models something the product does not do, inside
the measured process only, on dlt's public API; once the product adopts a change, its model goes.
"""

import json
from collections.abc import Callable
from typing import Any

from bench.sim import RESOURCE_NAMES, Volume

Lever = tuple[str, dict[str, str], list[str]]


def duckdb_jsonl() -> None:
    """DuckDB loads jsonl instead of the loader's parquet (the loader's choice until round two, dropped
    because DuckDB's `read_json` guesses the types from a file's first rows). The change it models:
    `preferred_loader_file_format="jsonl"` in the loader's DuckDB destination."""
    import dlt.destinations

    factory = dlt.destinations.duckdb

    def duckdb(*args: Any, **kwargs: Any) -> Any:
        return factory(*args, **{**kwargs, "preferred_loader_file_format": "jsonl"})

    dlt.destinations.duckdb = duckdb  # type: ignore[misc,assignment]  # the loader calls it on every run


CODE: dict[str, Callable[[], None]] = {fn.__name__: fn for fn in (duckdb_jsonl,)}

BASELINE: Lever = ("B as it is", {}, [])
S30: list[Lever] = [
    ("[extract] workers = 5 (dlt's default)", {"EXTRACT__WORKERS": "5"}, []),
    ("[extract] workers = 3", {"EXTRACT__WORKERS": "3"}, []),
    ("[data_writer] disable_compression = true", {"DATA_WRITER__DISABLE_COMPRESSION": "true"}, []),
    ("[data_writer] buffer_max_items = 20000", {"DATA_WRITER__BUFFER_MAX_ITEMS": "20000"}, []),
    ("[load] workers = 1", {"LOAD__WORKERS": "1"}, []),
    ("[load] workers = 4", {"LOAD__WORKERS": "4"}, []),
    (
        "[normalize] workers = 2, [data_writer] file_max_items = 5000",
        {"NORMALIZE__WORKERS": "2", "DATA_WRITER__FILE_MAX_ITEMS": "5000"},
        [],
    ),
    ("code: DuckDB loads jsonl", {}, ["duckdb_jsonl"]),
]


def _limit(n: int) -> dict[str, str]:
    """`limit=n` on every list request, through the source's per-resource overrides."""
    return {"SOURCES__ANALYTICS__RESOURCES": json.dumps({name: {"params": {"limit": n}} for name in RESOURCE_NAMES})}


PAGE_SIZE: list[Lever] = [
    BASELINE,
    ("limit=100 on every list request", _limit(100), []),
    ("limit=1000 on every list request (above the API's maximum)", _limit(1000), []),
]
MEMORY: list[Lever] = [BASELINE, ("code: DuckDB loads jsonl", {}, ["duckdb_jsonl"])]

ALTERNATED = "lever-s30"  # each lever of this set runs alternated with the unchanged B; the others once each
SETS: list[tuple[str, str, Volume, list[Lever]]] = [
    (ALTERNATED, "30 ms latency, DuckDB, each lever alternated with the unchanged B", Volume(30, 10_000), S30),
    ("lever-pages", "Page size: the API's default page of 20 rows", Volume(30, 10_000, page_size=20), PAGE_SIZE),
    ("lever-big", "Memory: latency 0, DuckDB", Volume(0, 100_000), MEMORY),
]
