"""The deployed path: the function loading into BigQuery, here a BigQuery emulator on loopback.

dlt's real BigQuery destination runs against `bqemulator` (tests/bigquery_emulator.py; one per
session, a dataset per test), driven the way the function is (`service.handle("POST", body)`, and
once through a real `functions-framework` process). Rows are read back through Google's BigQuery
client. The emulator is DuckDB underneath: it shows that dlt's API calls and SQL run end to end,
not BigQuery's exact semantics, costs or quotas.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest
import requests
from bigquery_emulator import BigQueryEmulator

from simulator import Fault, SimConfig, Simulator, SimulatorServer
from simulator.expected import expected_counts
from source.settings import RESOURCE_NAMES
from tests.helpers import API_KEY, INHERITED_SETTINGS, ROOT, UID, post, served_function
from tests.warehouses import DESTINATIONS, HISTORY, BigQueryReader, Warehouse, open_warehouse

pytestmark = pytest.mark.filterwarnings("ignore:Cannot create BigQuery Storage client")


# -- reading the warehouse back (tests/warehouses.py reads the rows) ------------------------------
def calls_per_run(calls: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    """The API calls of a run by kind, from the emulator's log: jobs are queries and load jobs."""
    kinds: Counter = Counter()
    for call in calls:
        path, method = call["path"] or "", call["method"]
        if method == "POST" and path.endswith("/queries"):
            kinds["query jobs"] += 1
        elif method == "POST" and path.endswith("/jobs"):
            kinds["load jobs" if path.startswith("/upload/") else "other jobs"] += 1
        else:
            kinds["other calls"] += 1
    kinds["jobs"] = kinds["query jobs"] + kinds["load jobs"] + kinds["other jobs"]
    return dict(kinds)


def expected_for(expected: Dict[str, int], resources: Sequence[str]) -> Dict[str, int]:
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    roots = {NamingConvention().normalize_table_identifier(r) for r in resources}
    return {t: n for t, n in expected.items() if t.split("__")[0] in roots}


@pytest.fixture
def bq(bigquery_env: Dict[str, str], bigquery_emulator: BigQueryEmulator) -> BigQueryReader:
    return BigQueryReader(bigquery_emulator, bigquery_env["DATASET_NAME"])


# -- the seed profile, loaded twice: shared by the tests below -----------------------------------
@dataclass
class TwoRuns:
    reader: Warehouse
    expected: Dict[str, int]
    answers: List[Tuple[int, Dict[str, Any]]] = field(default_factory=list)
    counts: List[Dict[str, int]] = field(default_factory=list)
    contents: List[Dict[str, List[str]]] = field(default_factory=list)
    calls: List[Dict[str, int]] = field(default_factory=list)
    jobs: List[List[Any]] = field(default_factory=list)


def _env_for(sim: SimulatorServer, folder: Path) -> Dict[str, str]:
    return {
        "SOURCES__ANALYTICS__BASE_URL": sim.url,
        "SOURCES__ANALYTICS__UID": UID,
        "SOURCES__ANALYTICS__API_KEY": API_KEY,
        "DLT_DATA_DIR": str(folder / "dlt"),
        "DESTINATION__DUCKDB__CREDENTIALS": str(folder / "unused.duckdb"),
    }


@pytest.fixture(scope="module")
def seed_twice(bigquery_emulator: BigQueryEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRuns]:
    """Two full runs of the seed profile into one dataset, with what each run did to the warehouse."""
    from loader import secrets, service

    sim = SimulatorServer(Simulator(SimConfig(api_key=API_KEY))).start()
    env = {**_env_for(sim, tmp_path_factory.mktemp("seed")), **bigquery_emulator.loader_env("seed_twice")}
    runs = TwoRuns(BigQueryReader(bigquery_emulator, "seed_twice"), expected_counts(sim.sim.config))
    with pytest.MonkeyPatch.context() as mp:
        for name in INHERITED_SETTINGS:  # DATASET_NAME among them: `env` sets it again
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        secrets.forget_cached_keys()
        for _ in range(2):
            seen, offset = runs.reader.job_ids(), bigquery_emulator.log_offset()
            runs.answers.append(post(service))
            runs.calls.append(calls_per_run(bigquery_emulator.api_calls(offset)))
            runs.jobs.append(runs.reader.jobs_since(seen))
            runs.counts.append(runs.reader.counts())
            runs.contents.append(runs.reader.content())
    sim.stop()
    yield runs


def test_seed_profile_loads_every_table_with_exact_counts(seed_twice: TwoRuns) -> None:
    status, body = seed_twice.answers[0]

    assert status == 200, body.get("error")
    assert (body["destination"], body["dataset"]) == ("bigquery", "seed_twice")
    assert seed_twice.counts[0] == seed_twice.expected
    assert body["row_counts"] == seed_twice.expected
    assert {n: f["status"] for n, f in body["resources"].items()} == {n: "loaded" for n in RESOURCE_NAMES}


def _seed_twice_on(destination: str, request: pytest.FixtureRequest) -> TwoRuns:
    """`seed_twice` for BigQuery (shared by this module); for DuckDB, the same two runs in this test's file."""
    if destination == "bigquery":
        return request.getfixturevalue("seed_twice")
    reader = open_warehouse(destination, request)
    service = request.getfixturevalue("fresh_service")
    runs = TwoRuns(reader, request.getfixturevalue("expected"))
    for _ in range(2):
        runs.answers.append(post(service))
        runs.counts.append(reader.counts())
        runs.contents.append(reader.content())
    return runs


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_rerun_changes_nothing(destination: str, request: pytest.FixtureRequest) -> None:
    runs = _seed_twice_on(destination, request)
    status, body = runs.answers[1]

    assert status == 200, body.get("error")
    assert body["row_counts"] == runs.expected, "rows loaded by this run (merged, not added)"
    assert runs.counts[1] == runs.expected
    assert runs.contents[1] == runs.contents[0], "same rows, merged on the key, not added"
    # the rerun's rows replaced the first run's: only its load ids are left in the root tables
    assert runs.reader.load_ids(t for t in runs.expected if "__" not in t) == set(body["load_ids"])


def test_at_most_one_merge_per_table_per_run(seed_twice: TwoRuns) -> None:
    for run, jobs in enumerate(seed_twice.jobs):
        merges = seed_twice.reader.merges(jobs)
        assert set(merges) == set(seed_twice.expected), f"run {run + 1}: every table merged"
        assert max(merges.values()) == 1, f"run {run + 1}: {merges}"
        # and the log agrees with the job list: every job the run created is counted
        assert seed_twice.calls[run]["jobs"] == len(jobs), (seed_twice.calls[run], len(jobs))
        # one load job per table (into its staging table), one for the run history, and dlt's state when it changed
        loads = Counter(j.destination.table_id for j in jobs if j.job_type == "load")
        assert {t: loads[t] for t in seed_twice.expected} == {t: 1 for t in seed_twice.expected}
        assert loads[HISTORY] == 1 and set(loads) - set(seed_twice.expected) <= {HISTORY, "_dlt_pipeline_state"}


def test_merge_tables_are_clustered_on_their_keys(seed_twice: TwoRuns) -> None:
    """Read back two ways: the hints dlt stored with the schema, and its DDL (the emulator ignores CLUSTER BY)."""
    stored = seed_twice.reader.stored_schema()["tables"]
    ddl = seed_twice.reader.cluster_ddl(seed_twice.jobs[0])

    for table in seed_twice.expected:
        if "__" in table:
            assert ddl[table] == ["_dlt_root_id", "_dlt_id"], table
            assert stored[table]["columns"]["_dlt_root_id"].get("cluster") is True, table
        else:
            assert ddl[table] == ["id"], table
            assert stored[table]["x-bigquery-cluster-columns"] == ["id"], table
            assert stored[table]["columns"]["id"]["x-bigquery-cluster"] is True, table
    assert ddl[HISTORY] == [], "the append-only history is not merged: not clustered"
    assert set(seed_twice.reader.cluster_ddl(seed_twice.jobs[1])) == set(), "tables are created once"


def test_run_history_has_a_row_per_resource_per_run(seed_twice: TwoRuns) -> None:
    rows = seed_twice.reader.rows(HISTORY)

    run_ids = [body["run_id"] for _, body in seed_twice.answers]
    assert sorted((r["run_id"], r["resource"]) for r in rows) == sorted((i, n) for i in run_ids for n in RESOURCE_NAMES)
    assert {(r["status"], r["error"]) for r in rows} == {("loaded", None)}
    assert {(r["rows"], r["pages"], r["retries"]) for r in rows} == {(25, 3, 0)}
    assert all(r["started_at"] <= r["finished_at"] for r in rows)


# -- profiles, changes, drift -----------------------------------------------------------------
def test_documented_profile_exact_counts_with_scd2_history(
    sim: Any,
    bigquery_env: Dict[str, str],
    bq: BigQueryReader,
    sleeps: List[float],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__PROFILE", "documented")
    sim.sim.configure(profile="documented")
    expected = expected_counts(sim.sim.config)

    status, body = post(fresh_service)

    assert status == 200, body.get("error")
    assert bq.counts() == expected
    stored = bq.stored_schema()["tables"]
    assert stored["sessions"]["x-bigquery-cluster-columns"] == ["session_id"]
    assert stored["event_defs"]["x-bigquery-cluster-columns"] == ["event_name"]
    assert stored["geosettings"]["x-bigquery-cluster-columns"] == ["_dlt_id"], "scd2: the row hash"

    # one settings object changed: its scd2 table keeps the old version and adds the new one
    sim.sim.configure(faults=[Fault(resource="geosettings", kind="new_field")])
    status, body = post(fresh_service)

    assert status == 200, body.get("error")
    zones = expected["geosettings__record_geo_zones"]
    assert bq.counts() == {**expected, "geosettings": 2, "geosettings__record_geo_zones": 2 * zones}
    sql = f"select loyalty_tier, _dlt_valid_to is null as current from {bq.table('geosettings')} order by 2"
    versions = bq.query(sql)
    assert versions == [{"loyalty_tier": None, "current": False}, {"loyalty_tier": "gold", "current": True}]
    for name in ("blockrules", "domainsettings", "recordingfeatures"):
        assert bq.query(f"select count(*) as n from {bq.table(name)} where _dlt_valid_to is null") == [{"n": 1}], name


def test_changed_and_new_records_merge_and_a_new_field_is_a_new_column(
    sim: Any, bigquery_env: Dict[str, str], bq: BigQueryReader, fresh_service: Any
) -> None:
    subset = ["segments", "webhooks"]
    assert post(fresh_service, subset)[0] == 200
    assert "loyalty_tier" not in bq.native_columns("segments")

    # five new records, and every record changed (a new field)
    sim.sim.configure(rows={"segments": 30, "webhooks": 30}, faults=[Fault(resource="segments", kind="new_field")])
    status, body = post(fresh_service, subset)

    assert status == 200, body.get("error")
    assert bq.counts() == expected_for(expected_counts(sim.sim.config), subset)
    assert bq.native_columns("segments")["loyalty_tier"] == "STRING"
    sql = f"select count(distinct id) as ids, countif(loyalty_tier = 'gold') as changed from {bq.table('segments')}"
    assert bq.query(sql) == [{"ids": 30, "changed": 30}]
    assert {r["_dlt_load_id"] for r in bq.rows("segments")} == set(body["load_ids"]), "every row is this run's version"


def test_type_change_adds_a_variant_column(
    sim: Any, bigquery_env: Dict[str, str], bq: BigQueryReader, expected: Dict[str, int], fresh_service: Any
) -> None:
    # one schema change per table and dataset: the emulator's INFORMATION_SCHEMA does not show
    # columns added by ALTER TABLE, so a second change would make dlt add them again (README)
    assert post(fresh_service, ["sessions"])[0] == 200
    assert bq.native_columns("sessions")["duration_ms"] == "INTEGER"

    sim.sim.configure(faults=[Fault(resource="sessions", kind="type_change")])
    status, body = post(fresh_service, ["sessions"])

    assert status == 200, body.get("error")
    assert bq.counts() == expected_for(expected, ["sessions"])
    # an int field now a string: dlt's variant column next to the typed one
    cols = bq.native_columns("sessions")
    assert (cols["duration_ms"], cols["duration_ms__v_text"]) == ("INTEGER", "STRING")
    values = bq.query(f"select duration_ms, duration_ms__v_text from {bq.table('sessions')}")
    assert len(values) == 25
    assert all(v["duration_ms"] is None and v["duration_ms__v_text"].endswith(" ms") for v in values)


# -- state --------------------------------------------------------------------------------
def test_cold_start_restores_state_from_bigquery(
    sim: Any,
    bigquery_env: Dict[str, str],
    bq: BigQueryReader,
    expected: Dict[str, int],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import dlt

    subset = ["sessions", "segments"]
    assert post(fresh_service, subset)[0] == 200
    stored_hash = bq.stored_schema()["version_hash"]

    cold = tmp_path / "cold-instance"
    monkeypatch.setenv("DLT_DATA_DIR", str(cold))
    seen = bq.job_ids()
    status, body = post(fresh_service, subset)

    assert status == 200, body.get("error")
    assert bq.counts() == expected_for(expected, subset), "merged into the existing tables, nothing doubled"
    reads = [j.query for j in bq.jobs_since(seen) if getattr(j, "query", None)]
    assert any(f"`{bq.dataset}`.`_dlt_pipeline_state`" in q for q in reads), "the state was read from BigQuery"
    restored = dlt.attach("analytics", pipelines_dir=str(cold / "pipelines"))
    assert restored.default_schema.version_hash == stored_hash == bq.stored_schema()["version_hash"]


# -- run history on both destinations -------------------------------------------------------------
@pytest.mark.parametrize("destination", DESTINATIONS)
def test_run_history_records_failed_resources_without_secrets(
    destination: str, request: pytest.FixtureRequest, sim: Any, loader_env: Dict[str, str], fresh_service: Any
) -> None:
    warehouse = open_warehouse(destination, request)
    subset = ["segments", "operations"]
    first = post(fresh_service, subset)[1]
    # an API that echoes the credentials it rejects: the error is kept, the key is not
    sim.sim.configure(faults=[Fault(resource="operations", kind="echo_key", status=404)])
    second = post(fresh_service, subset)[1]

    rows = {(r["run_id"], r["resource"]): r for r in warehouse.rows(HISTORY)}
    assert set(rows) == {(b["run_id"], n) for b in (first, second) for n in subset}
    failed = rows[(second["run_id"], "operations")]
    assert failed["status"] == "failed"
    assert "404" in failed["error"] and "/operations/v1" in failed["error"], failed["error"]
    others = [(r["status"], r["error"]) for k, r in rows.items() if k != (second["run_id"], "operations")]
    assert others == [("loaded", None)] * 3
    assert (rows[(first["run_id"], "segments")]["rows"], rows[(first["run_id"], "segments")]["pages"]) == (25, 3)
    assert API_KEY not in repr(list(rows.values()))


def test_readme_query_hours_since_each_resource_last_loaded(
    sim: Any, bigquery_env: Dict[str, str], bq: BigQueryReader, fresh_service: Any
) -> None:
    """The README's SQL, run as printed (project and dataset filled in), on a history with a failure."""
    readme = (ROOT / "README.md").read_text()
    sql = readme.split("<!-- sql:hours-since-loaded -->\n```sql\n", 1)[1].split("```", 1)[0]
    assert post(fresh_service, ["segments", "operations"])[0] == 200
    sim.sim.configure(faults=[Fault(resource="operations", status=404)])
    assert post(fresh_service, ["segments", "operations"])[0] == 502

    answer = bq.query(sql.replace("my-project.analytics", f"{bq.project}.{bq.dataset}"))

    by_resource = {r["resource"]: r for r in answer}
    assert set(by_resource) == {"segments", "operations"}
    assert all(0 <= r["hours_since_loaded"] < 1 for r in answer)
    assert by_resource["operations"]["last_loaded_at"] < by_resource["segments"]["last_loaded_at"]
    assert by_resource["operations"]["last_status"] == "failed" and by_resource["segments"]["last_status"] == "loaded"


# -- the warehouse failing mid-run ----------------------------------------------------------------
class RefusingWarehouse(BaseHTTPRequestHandler):
    """Answers every BigQuery API call as a BigQuery that refuses work (403 quotaExceeded: not retried)."""

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "error": {
                    "code": 403,
                    "message": "Quota exceeded: the warehouse stopped taking work",
                    "errors": [{"reason": "quotaExceeded", "message": "Quota exceeded"}],
                }
            }
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815 (http.server's names)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def own_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """An emulator of these tests' own, its data on disk: it is stopped and restarted mid-run."""
    folder = tmp_path_factory.mktemp("own-emulator")
    emulator = BigQueryEmulator(folder, data_dir=folder / "data").start()
    yield emulator
    emulator.stop()


def _stop_when_extract_starts(sim: SimulatorServer, emulator: BigQueryEmulator, then: Any) -> threading.Thread:
    """Stop the emulator when the run's extract has started (after it read the state), then call `then`.

    The first page of segments hangs 2 s: nothing reaches the warehouse before the emulator is down.
    """
    sim.sim.configure(faults=[Fault(resource="segments", kind="hang", seconds=2, page=1, times=1)])
    sim.sim.reset()  # arrivals of earlier runs do not count

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not sim.sim.arrivals_for("segments") and time.monotonic() < deadline:
            time.sleep(0.02)
        emulator.stop()
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _load_into(emulator: BigQueryEmulator, dataset: str, monkeypatch: pytest.MonkeyPatch) -> BigQueryReader:
    """The loader's environment pointed at `dataset` of `emulator`; the reader of that dataset."""
    for name, value in emulator.loader_env(dataset).items():
        monkeypatch.setenv(name, value)
    return BigQueryReader(emulator, dataset)


def test_warehouse_refusing_mid_run_is_a_500_naming_the_step_and_the_next_run_completes(
    sim: Any,
    loader_env: Dict[str, str],
    own_emulator: BigQueryEmulator,
    fresh_service: Any,
    expected: Dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bq = _load_into(own_emulator, "refused", monkeypatch)
    subset = ["sessions", "segments"]
    status, first = post(fresh_service, subset)
    assert status == 200, first.get("error")
    stub: List[ThreadingHTTPServer] = []

    def refuse() -> None:
        stub.append(ThreadingHTTPServer(("127.0.0.1", own_emulator.port), RefusingWarehouse))
        threading.Thread(target=stub[0].serve_forever, daemon=True).start()

    watcher = _stop_when_extract_starts(sim, own_emulator, refuse)
    status, body = post(fresh_service, subset)
    watcher.join(30)
    stub[0].shutdown()
    stub[0].server_close()
    own_emulator.start()  # the warehouse is back, its data kept
    sim.sim.configure(faults=[])
    after = post(fresh_service, subset)

    assert status == 500
    assert body["error"].startswith("the load step failed: Forbidden: 403"), body["error"]
    assert after[0] == 200, after[1].get("error")
    assert bq.counts() == expected_for(expected, subset)
    # the failed run's history could not be written then: it was kept, and written by the next run
    history = bq.rows(HISTORY)
    assert Counter(r["run_id"] for r in history) == {first["run_id"]: 2, body["run_id"]: 2, after[1]["run_id"]: 2}
    failed = [r for r in history if r["run_id"] == body["run_id"]]
    assert {r["status"] for r in failed} == {"failed"}
    assert all(r["error"].startswith("the load step failed: Forbidden: 403") for r in failed), failed


def test_warehouse_stopped_briefly_mid_run_is_ridden_out(
    sim: Any,
    loader_env: Dict[str, str],
    own_emulator: BigQueryEmulator,
    fresh_service: Any,
    expected: Dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Google's client retries a refused connection (for up to 10 minutes): a short outage costs time, not the run."""
    bq = _load_into(own_emulator, "ridden_out", monkeypatch)
    subset = ["sessions", "segments"]

    watcher = _stop_when_extract_starts(sim, own_emulator, lambda: (time.sleep(2), own_emulator.start()))
    status, body = post(fresh_service, subset)
    watcher.join(60)

    assert status == 200, body.get("error")
    assert bq.counts() == expected_for(expected, subset)


# -- the switch --------------------------------------------------------------------------------
def test_emulator_without_project_is_a_500_naming_the_setting(
    bigquery_env: Dict[str, str], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID")

    status, body = post(fresh_service, ["segments"])

    assert status == 500
    assert "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID" in body["error"]
    assert "BIGQUERY_EMULATOR_HOST" in body["error"]


def test_emulator_switch_is_off_without_its_variable(capsys: pytest.CaptureFixture) -> None:
    from google.oauth2.credentials import Credentials

    from loader.destinations import bigquery_destination
    from loader.logs import setup_logging

    setup_logging()
    google = bigquery_destination(
        {"DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID": "p1", "BIGQUERY_EMULATOR_HOST": " "}
    )
    google_logs = capsys.readouterr().out
    emulated = bigquery_destination(
        {"BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9050", "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID": "p1"}
    )
    emulated_logs = capsys.readouterr().out

    assert "credentials" not in google.config_params, "Application Default Credentials, resolved by dlt"
    assert "emulator" not in google_logs
    assert isinstance(emulated.config_params["credentials"], Credentials)
    assert emulated.config_params["credentials"].quota_project_id == "p1"
    assert "BigQuery emulator in use at http://127.0.0.1:9050" in emulated_logs
    assert "set DATA_WRITER__DISABLE_COMPRESSION=true" in emulated_logs


# -- the function as a real process ----------------------------------------------------------------
def test_real_functions_framework_process_loads_into_bigquery(
    sim: Any, bigquery_env: Dict[str, str], bq: BigQueryReader, expected: Dict[str, int], tmp_path: Path
) -> None:
    log = tmp_path / "function.log"
    with served_function(bigquery_env, log) as url:
        answer = requests.post(url, json={}, timeout=300)
    out = log.read_text()

    assert answer.status_code == 200, answer.text
    assert answer.json()["destination"] == "bigquery"
    assert bq.counts() == expected
    assert len(bq.rows(HISTORY)) == len(RESOURCE_NAMES)
    logged = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    in_use = "BigQuery emulator in use at " + bigquery_env["BIGQUERY_EMULATOR_HOST"]
    assert any(line["message"].startswith(in_use) for line in logged)
