"""Shared fixtures: the API simulator on a loopback port, the loader's environment, no sleeping."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from tests.helpers import API_KEY, INHERITED_SETTINGS, ROOT, UID, ListAcrossProcesses

# set before anything imports dlt (simulator.expected does), as main.py does for the function
os.environ["DLT_PROJECT_DIR"] = str(ROOT)
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

from simulator import SimConfig, Simulator, SimulatorServer
from simulator.expected import expected_counts

# the BigQuery emulator fixtures (tests/bigquery_emulator.py)
pytest_plugins = ["bigquery_emulator"]


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
    for name in INHERITED_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ListAcrossProcesses:
    """Record the waits dlt's retry policy asks for instead of sleeping them (the sessions chain's
    waits too, which its reading process asks for)."""
    from dlt.sources.helpers.requests import retry

    waited = ListAcrossProcesses(tmp_path / "sleeps.jsonl")
    monkeypatch.setattr(retry, "Retrying", functools.partial(retry.Retrying, sleep=waited.append))
    return waited


@pytest.fixture
def fresh_service(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The function's service module with no cached key from an earlier test."""
    from loader import secrets, service

    secrets.forget_cached_keys()
    yield service
    secrets.forget_cached_keys()


@pytest.fixture
def expected(sim: SimulatorServer) -> Dict[str, int]:
    """Rows per table that a full run against `sim` loads."""
    return expected_counts(sim.sim.config)
