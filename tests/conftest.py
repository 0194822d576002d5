"""Shared fixtures: the API simulator on a loopback port, the loader's environment, no sleeping."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ["DLT_PROJECT_DIR"] = str(ROOT)
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

from simulator import SimConfig, Simulator, SimulatorServer  # noqa: E402
from simulator.expected import expected_counts  # noqa: E402

# the BigQuery emulator fixtures (tests/bigquery_emulator.py)
pytest_plugins = ["bigquery_emulator"]

API_KEY = "test-key-5f1c9e77"  # what the simulator accepts; tests assert it is never leaked
UID = "u1"


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """The simulator, 25 rows of every resource in pages of 10, accepting `API_KEY`."""
    server = SimulatorServer(Simulator(SimConfig(api_key=API_KEY))).start()
    yield server
    server.stop()


@pytest.fixture
def loader_env(sim: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dict[str, str]:
    """Environment of a local run against the simulator, DuckDB in `tmp_path`."""
    env = {
        "SOURCES__ANALYTICS__BASE_URL": sim.url,
        "SOURCES__ANALYTICS__UID": UID,
        "SOURCES__ANALYTICS__API_KEY": API_KEY,
        "DESTINATION": "duckdb",
        "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "warehouse.duckdb"),
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
    }
    for name in ("API_KEY_SECRET", "DATASET_NAME", "PIPELINE_NAME", "SOURCES__ANALYTICS__PROFILE", "SOURCES__ANALYTICS__AUTH_SCHEME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Record the waits dlt's retry policy asks for instead of sleeping them."""
    from dlt.sources.helpers.requests import retry

    waited: List[float] = []
    monkeypatch.setattr(retry, "Retrying", functools.partial(retry.Retrying, sleep=waited.append))
    return waited


@pytest.fixture
def fresh_service(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The function's service module with no cached key from an earlier test."""
    from loader import secrets, service

    secrets.forget_cached_keys()
    yield service
    secrets.forget_cached_keys()


def table_counts(duckdb_path: str, dataset: str = "analytics") -> Dict[str, int]:
    """Rows per table (dlt's own tables and the run history `_loader_runs` left out) in a DuckDB file."""
    import duckdb

    with duckdb.connect(duckdb_path, read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? and table_name not like '_dlt%' "
            "and table_name <> '_loader_runs'", [dataset]
        ).fetchall()]
        return {t: con.execute(f'select count(*) from "{dataset}"."{t}"').fetchone()[0] for t in sorted(tables)}


@pytest.fixture
def expected(sim: SimulatorServer) -> Dict[str, int]:
    return expected_counts(sim.sim.config)
