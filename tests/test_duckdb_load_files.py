"""DuckDB loads every value as dlt typed it: its load files carry their types (parquet), so nothing
depends on what DuckDB would guess from a file's first rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List

import dlt
import pytest

from loader.destinations import open_destination
from loader.environment import load_settings
from tests.helpers import query


def load(rows: List[Dict[str, Any]], tmp_path: Path) -> None:
    """`rows` merged into `things` through the run's DuckDB destination."""
    settings = load_settings()
    with open_destination(settings) as destination:
        pipeline = dlt.pipeline(
            pipeline_name="types_test",
            destination=destination,
            dataset_name="types_test",
            pipelines_dir=str(tmp_path / "pipelines"),
        )
        pipeline.run(rows, table_name="things", primary_key="id", write_disposition="merge")


@pytest.fixture
def warehouse(loader_env: Dict[str, str]) -> Iterator[str]:
    yield loader_env["DESTINATION__DUCKDB__CREDENTIALS"]


def test_a_text_column_keeps_text_that_looks_like_a_timestamp(warehouse: str, tmp_path: Path) -> None:
    load([{"id": 1, "due": "soon"}], tmp_path)  # dlt types `due` as text from its first value
    load([{"id": n, "due": "2026-01-01T00:00:00Z"} for n in range(2, 102)], tmp_path)

    assert query(
        warehouse,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'types_test' AND column_name = 'due'",
    ) == [("VARCHAR",)]
    assert query(warehouse, "SELECT DISTINCT due FROM types_test.things WHERE id > 1") == [("2026-01-01T00:00:00Z",)]


def test_a_column_first_seen_late_in_a_big_load_is_loaded(warehouse: str, tmp_path: Path) -> None:
    rows: List[Dict[str, Any]] = [{"id": n, "name": f"n{n}"} for n in range(25_000)]
    rows[-1]["late"] = "here"  # after the 20,480 rows a JSON reader would guess the columns from

    load(rows, tmp_path)

    assert query(warehouse, "SELECT count(*), count(late), max(late) FROM types_test.things") == [(25_000, 1, "here")]
