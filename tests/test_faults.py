"""Fault tolerance: a failing resource leaves the others loaded, the next run heals, transient faults
are retried, reruns leave identical tables and the key is written nowhere. Driven the way the
function is (`service.handle("POST", body)`).

Every test runs the loader against the simulator on loopback and asserts on real outcomes: the
HTTP status and JSON answer, rows in the DuckDB file, the requests the simulator saw, the waits the
retry policy asked for (`sleeps`), and the JSON log lines on stdout.

"Identical tables" (idempotency) means: the same tables with the same columns, and per table the
same multiset of rows when dlt's per-load bookkeeping is left out (`_dlt_load_id`, `_dlt_id`, and
the `_dlt_parent_id`/`_dlt_root_id` links, which are replaced by the parent row's own content so
that a child row still has to hang under the same parent at the same list position).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

import duckdb
import pytest

from simulator import Fault
from tests.helpers import API_KEY, log_lines, post, query, table_counts
from tests.warehouses import DESTINATIONS, open_warehouse

DATASET = "analytics"
MAX_ATTEMPTS = 4  # the seed: 3 retries after the first attempt
BACKOFF = [2.0, 4.0, 8.0]  # request_backoff_factor 2: 2 * 2**(attempt-1)
DLT_BOOKKEEPING = ("_dlt_load_id", "_dlt_id", "_dlt_parent_id", "_dlt_root_id")
TABLES_OF = {  # root table and its nested tables, for the seed shapes
    "sessions": ("sessions", "sessions__pages"),
    "segments": ("segments",),
    "operations": ("operations",),
    "blockrules": ("blockrules", "blockrules__blocked_ips"),
    "webhooks": ("webhooks", "webhooks__event_types"),
    "eventDefs": ("event_defs",),
}


# -- helpers ----------------------------------------------------------------------------------
def _tables(con: Any, dataset: str = DATASET) -> List[str]:
    return [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [dataset]
        ).fetchall()
    ]


def _columns(con: Any, table: str, dataset: str = DATASET) -> Dict[str, str]:
    return {
        r[0]: r[1]
        for r in con.execute(
            "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
            [dataset, table],
        ).fetchall()
    }


def _rows(con: Any, table: str, dataset: str = DATASET) -> List[Dict[str, Any]]:
    cur = con.execute(f'select * from "{dataset}"."{table}"')
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def columns(path: str, table: str) -> Dict[str, str]:
    with duckdb.connect(path, read_only=True) as con:
        return _columns(con, table)


def snapshot(path: str) -> Dict[str, Any]:
    """The warehouse's content without dlt's per-load bookkeeping (see the module docstring)."""
    identity: Dict[str, str] = {}
    content: Dict[str, Any] = {}
    with duckdb.connect(path, read_only=True) as con:
        for table in sorted(
            (t for t in _tables(con) if not t.startswith("_dlt") and t != "_loader_runs"), key=lambda t: t.count("__")
        ):
            canon = []
            for row in _rows(con, table):
                data = {k: v for k, v in row.items() if k not in DLT_BOOKKEEPING}
                parent = None
                if "_dlt_parent_id" in row:
                    parent = identity.get(row["_dlt_parent_id"])
                    assert parent is not None, f"{table}: a row whose parent is gone (orphan): {row}"
                ident = repr((parent, sorted(data.items())))
                identity[row["_dlt_id"]] = ident
                canon.append(ident)
            content[table] = {"columns": sorted(_columns(con, table)), "rows": sorted(canon)}
    return content


def load_ids_in(path: str, tables: Iterable[str]) -> set:
    """Load ids of the rows of root tables (nested tables carry no load id)."""
    found: set = set()
    with duckdb.connect(path, read_only=True) as con:
        present = set(_tables(con))
        for t in tables:
            if t in present and "_dlt_load_id" in _columns(con, t):
                found |= {r[0] for r in con.execute(f'select distinct _dlt_load_id from "{DATASET}"."{t}"').fetchall()}
    return found


def expected_for(expected: Dict[str, int], resources: Iterable[str]) -> Dict[str, int]:
    tables = {t for r in resources for t in TABLES_OF[r]}
    return {t: n for t, n in expected.items() if t in tables}


def pages_requested(sim: Any, resource: str) -> List[str]:
    """The cursor of every request the simulator received for `resource` ("" = first page),
    answered or not (a request the client gave up on is still hanging in the simulator)."""
    return [r["params"].get("pagination_token", "") for r in sim.sim.arrivals_for(resource)]


# -- isolation --------------------------------------------------------------------------------
def test_failure_on_a_first_run_leaves_its_tables_absent_and_loads_the_other_nine(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any, expected: Dict[str, int], capsys: Any
) -> None:
    sim.sim.configure(faults=[Fault(resource="sessions", status=500, page=2)])

    status, body = post(fresh_service)

    assert status == 502
    assert body["status"] == "error"
    assert body["error"].startswith("1 of 10 resource(s) failed") and "sessions: HTTP 500" in body["error"]
    failed = body["resources"]["sessions"]
    assert failed["status"] == "failed"
    assert (failed["status_code"], failed["path"], failed["page"]) == (500, "/sessions/v2", 2)
    assert (failed["rows"], failed["pages"], failed["retries"]) == (10, 1, MAX_ATTEMPTS - 1)
    assert "gave up after the retries" in failed["reason"]
    assert "HTTP 500" in failed["reason"] and "/sessions/v2" in failed["reason"] and "page 2" in failed["reason"]
    for name, figures in body["resources"].items():
        if name != "sessions":
            assert (figures["status"], figures["rows"], figures["pages"]) == ("loaded", 25, 3), name
    # the warehouse: nine resources exactly, nothing of sessions (not even its first page)
    others = {t: n for t, n in expected.items() if not t.startswith("sessions")}
    counts = table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])
    assert {t: n for t, n in counts.items() if n} == others
    assert body["row_counts"] == others
    # the simulator: page 2 tried MAX_ATTEMPTS times with the seed's backoff, page 3 never asked for
    assert pages_requested(sim, "sessions") == [""] + ["10"] * MAX_ATTEMPTS
    assert sleeps == BACKOFF
    # the logs say the same as the answer
    logs = log_lines(capsys.readouterr().out)
    errors = [line for line in logs if line.get("resource") == "sessions"]
    assert [(line["severity"], line["message"]) for line in errors] == [
        ("ERROR", f"resource sessions failed: {failed['reason']}")
    ]
    assert {k: errors[0][k] for k in ("rows", "pages", "retries")} == {
        k: failed[k] for k in ("rows", "pages", "retries")
    }
    loaded = {
        line["resource"]: line["rows"]
        for line in logs
        if line["message"].startswith("resource ") and line["message"].endswith(" loaded")
    }
    assert loaded == {n: 25 for n in body["resources"] if n != "sessions"}
    assert any(line["message"] == "run answered 502" and line["severity"] == "ERROR" for line in logs)


# resource -> (fault on its page 2, status_code reported, words in the reason)
PAGE_2_FAULTS = {
    "sessions": (Fault(resource="sessions", status=500, page=2), 500, "HTTP 500"),
    "segments": (Fault(resource="segments", kind="hang", seconds=1.0, page=2), None, "time"),
    "operations": (Fault(resource="operations", kind="not_json", page=2), 200, "not JSON"),
    "webhooks": (Fault(resource="webhooks", kind="drop_key", page=2), 200, "primary key 'id'"),
    "blockrules": (Fault(resource="blockrules", status=404, page=2), 404, "HTTP 404"),
}


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_failures_on_page_2_leave_earlier_rows_untouched_and_the_others_load(
    destination: str,
    request: pytest.FixtureRequest,
    sim: Any,
    loader_env: Dict[str, str],
    sleeps: List[float],
    fresh_service: Any,
    expected: Dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five resources fail on page 2 in five ways in one run; page 1 of each had been read, yet
    none of it reaches the warehouse, and the sixth resource loads."""
    warehouse = open_warehouse(destination, request)
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.5")
    subset = [*PAGE_2_FAULTS, "eventDefs"]
    failing_tables = [t for name in PAGE_2_FAULTS for t in TABLES_OF[name]]
    assert post(fresh_service, subset)[0] == 200
    before = warehouse.raw_rows(failing_tables)
    assert len(before["sessions"]) == 25 and before["sessions__pages"] and before["webhooks__event_types"]

    sim.sim.configure(faults=[fault for fault, _, _ in PAGE_2_FAULTS.values()])
    status, body = post(fresh_service, subset)

    assert status == 502
    assert body["error"].startswith("5 of 6 resource(s) failed") and "404" in body["error"]
    for name, (_, status_code, words) in PAGE_2_FAULTS.items():
        failed = body["resources"][name]
        assert (failed["status"], failed["page"], failed["status_code"]) == ("failed", 2, status_code), name
        assert words in failed["reason"], name
        assert (failed["rows"], failed["pages"]) == (10, 1), f"{name}: page 1 was read"
    assert {n for n, f in body["resources"].items() if f["status"] == "loaded"} == {"eventDefs"}
    # the failed resources' tables: exactly what the earlier run left (dlt ids and load ids too)
    assert warehouse.raw_rows(failing_tables) == before
    assert warehouse.load_ids(failing_tables) & set(body["load_ids"]) == set()
    assert warehouse.load_ids(["event_defs"]) == set(body["load_ids"])
    assert body["row_counts"] == {"event_defs": 25}
    assert warehouse.counts() == expected_for(expected, subset)


# -- self-healing -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "folder", [pytest.param("same", id="warm-same-working-folder"), pytest.param("new", id="cold-new-working-folder")]
)
def test_next_run_after_a_failed_one_loads_everything(
    folder: str,
    sim: Any,
    loader_env: Dict[str, str],
    sleeps: List[float],
    fresh_service: Any,
    expected: Dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    subset = ["sessions", "webhooks", "eventDefs"]
    sim.sim.configure(
        faults=[Fault(resource="sessions", status=503, page=2), Fault(resource="webhooks", kind="drop_key")]
    )
    status, body = post(fresh_service, subset)
    assert status == 502 and body["resources"]["eventDefs"]["status"] == "loaded"

    sim.sim.configure(faults=[])
    if folder == "new":  # a cold start: an empty working folder, the same warehouse
        monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "cold"))
    status, body = post(fresh_service, subset)

    assert status == 200, body
    assert {f["status"] for f in body["resources"].values()} == {"loaded"}
    assert table_counts(db) == expected_for(expected, subset)
    assert snapshot(db)["sessions__pages"]["rows"], "children hang under their parents"
    if folder == "new":
        # state and schema were restored from the warehouse, not started afresh: the new folder's
        # schema and state continue the versions stored there (one history, no second version 1)
        pipeline_dir = tmp_path / "cold" / "pipelines" / "analytics"
        schema = json.loads((pipeline_dir / "schemas" / "analytics.schema.json").read_text())
        stored = query(
            db,
            f'select version, version_hash from "{DATASET}"._dlt_version where schema_name = ? order by version',
            ["analytics"],
        )
        assert (schema["version"], schema["version_hash"]) == stored[-1]
        assert len({v for v, _ in stored}) == len(stored), f"one schema history: {stored}"
        state = json.loads((pipeline_dir / "state.json").read_text())
        versions = [r[0] for r in query(db, f'select version from "{DATASET}"._dlt_pipeline_state')]
        assert state["_state_version"] == max(versions) and len(versions) == len(set(versions))


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(("extract",), id="killed-after-extract"),
        pytest.param(("extract", "normalize"), id="killed-after-normalize"),
    ],
)
def test_run_after_an_interrupted_one_drops_its_stale_package(
    steps: Tuple[str, ...],
    sim: Any,
    loader_env: Dict[str, str],
    sleeps: List[float],
    fresh_service: Any,
    expected: Dict[str, int],
    capsys: Any,
) -> None:
    """An instance killed mid-run leaves a package in the working folder: the next run must not
    replay it (dlt's default) nor be blocked by it, and must load the API's current data."""
    from loader.environment import load_settings
    from loader.pipeline import new_pipeline
    from source import analytics_source

    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    sim.sim.configure(rows={"segments": 5})
    pipeline = new_pipeline(load_settings())
    for step in steps:
        pipeline.extract(analytics_source().with_resources("segments")) if step == "extract" else pipeline.normalize()
    assert pipeline.has_pending_data
    stale = pipeline.list_extracted_load_packages() + pipeline.list_normalized_load_packages()
    sim.sim.configure(rows={"segments": 25})
    capsys.readouterr()

    status, body = post(fresh_service, ["segments"])

    assert status == 200, body
    assert table_counts(db) == {"segments": 25}
    loads = {r[0] for r in query(db, f"select load_id from \"{DATASET}\"._dlt_loads where schema_name = 'analytics'")}
    assert loads == set(body["load_ids"]) and not loads & set(stale)
    warned = [
        line
        for line in log_lines(capsys.readouterr().out)
        if line["message"].startswith("dropping pending load packages")
    ]
    assert warned and warned[0]["load_ids"] == stale


# -- faults to survive ------------------------------------------------------------------------
def test_storm_of_transient_errors_completes_with_exact_counts(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any, expected: Dict[str, int]
) -> None:
    sim.sim.configure(storm_rate=0.25)

    status, body = post(fresh_service)

    assert status == 200, body.get("error")
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == expected
    errors = [r for r in sim.sim.requests if r["status"] != 200]
    assert len(errors) >= 0.15 * len(sim.sim.requests), "the storm did blow"
    assert {r["status"] for r in errors} <= {429, 500, 502, 503, 504}
    for name, figures in body["resources"].items():
        assert figures["retries"] == sum(1 for r in errors if r["resource"] == name), name
    assert len(sleeps) == len(errors)


def test_each_of_the_seeds_retried_statuses_is_retried_once_then_loads(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any
) -> None:
    """The seed's list, 429, 500, 502, 503 and 504, each answered once on page 2 of its own
    resource: every one is retried after the first backoff wait and its resource loads whole."""
    cases = {"segments": 429, "operations": 500, "webhooks": 502, "eventDefs": 503, "sessionTargetingRules": 504}
    sim.sim.configure(faults=[Fault(resource=n, status=s, page=2, times=1) for n, s in cases.items()])

    status, body = post(fresh_service, list(cases))

    assert status == 200, body.get("error")
    for name, code in cases.items():
        figures = body["resources"][name]
        assert (figures["status"], figures["retries"]) == ("loaded", 1), f"{name}: HTTP {code}"
        assert pages_requested(sim, name) == ["", "10", "10", "20"], f"{name}: HTTP {code}"
    assert sorted(r["status"] for r in sim.sim.requests if r["status"] != 200) == [429, 500, 502, 503, 504]
    assert sleeps == [2.0] * 5
    counts = table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])
    assert {t: counts[t] for t in ("segments", "operations", "event_defs", "session_targeting_rules")} == {
        "segments": 25,
        "operations": 25,
        "event_defs": 25,
        "session_targeting_rules": 25,
    }


def test_retry_after_is_honoured(sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any) -> None:
    """One transient answer with `Retry-After` per resource, all in one run: each wait is the
    header's (capped by request_max_retry_delay = 60), `0` falls back to the backoff (2 s)."""
    cases = {  # resource -> (status, Retry-After, wait expected)
        "segments": (429, "7", 7.0),
        "operations": (503, "3", 3.0),
        "webhooks": (429, "120", 60.0),
        "eventDefs": (429, "0", 2.0),
        "sessionTargetingRules": (429, formatdate(time.time() + 30, usegmt=True), "about 30"),
    }
    sim.sim.configure(
        faults=[Fault(resource=n, status=st, retry_after=h, page=2, times=1) for n, (st, h, _) in cases.items()]
    )

    answer, body = post(fresh_service, list(cases))

    assert answer == 200, body
    fixed = sorted(w for _, _, w in cases.values() if isinstance(w, float))
    dated = [w for w in sleeps if w not in fixed]
    assert sorted(w for w in sleeps if w in fixed) == fixed
    assert len(dated) == 1 and 25 <= dated[0] <= 31, sleeps
    for name in cases:
        assert body["resources"][name]["retries"] == 1, name
        assert pages_requested(sim, name) == ["", "10", "10", "20"], name
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])["segments"] == 25


def test_hanging_api_is_retried_then_fails_naming_the_resource(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`operations` never answers within RUNTIME__REQUEST_TIMEOUT; `segments` hangs once."""
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.5")
    sim.sim.configure(
        faults=[
            Fault(resource="operations", kind="hang", seconds=1.0),
            Fault(resource="segments", kind="hang", seconds=1.0, times=1),
        ]
    )

    started = time.monotonic()
    status, body = post(fresh_service, ["operations", "segments"])

    assert status == 502
    assert time.monotonic() - started < 15, "the timeout bounds each attempt"
    failed = body["resources"]["operations"]
    assert failed["status"] == "failed" and failed["status_code"] is None
    assert "operations: " in body["error"] and "time" in failed["reason"].lower()
    assert pages_requested(sim, "operations") == [""] * MAX_ATTEMPTS, "retried"
    assert sorted(sleeps) == sorted(BACKOFF + BACKOFF[:1])
    assert body["resources"]["segments"]["status"] == "loaded"
    assert pages_requested(sim, "segments") == ["", "", "10", "20"]
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == {"segments": 25}


def test_hanging_api_failure_names_path_page_retries_and_the_timeout_setting(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.5")
    sim.sim.configure(faults=[Fault(resource="operations", kind="hang", seconds=1.0, page=2)])

    status, body = post(fresh_service, ["operations"])

    failed = body["resources"]["operations"]
    assert (status, failed["path"], failed["page"]) == (502, "/operations/v1", 2)
    assert "/operations/v1" in failed["reason"] and "RUNTIME__REQUEST_TIMEOUT" in failed["reason"]
    assert failed["retries"] == MAX_ATTEMPTS - 1


@pytest.mark.parametrize(
    "kind, words",
    [
        pytest.param("not_json", ["not JSON", "'text/html'", "'eventDefs'"], id="html-answer"),
        pytest.param(
            "no_selector", ["has no 'eventDefs'", "data selector", "found: items"], id="json-without-selector"
        ),
    ],
)
def test_200_answer_in_the_wrong_shape_fails_naming_resource_and_selector(
    kind: str, words: List[str], sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any
) -> None:
    sim.sim.configure(faults=[Fault(resource="eventDefs", kind=kind)])

    status, body = post(fresh_service, ["eventDefs", "segments"])

    assert status == 502
    failed = body["resources"]["eventDefs"]
    assert (failed["status"], failed["status_code"], failed["path"], failed["page"]) == (
        "failed",
        200,
        "/webhooks/v1/event-types",
        1,
    )
    assert "eventDefs: " in body["error"]
    for word in words:
        assert word in failed["reason"]
    counts = table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])
    assert "event_defs" not in counts, "never a silent empty table"
    assert counts == {"segments": 25}


def test_records_without_primary_key_fail_naming_key_and_override(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any
) -> None:
    sim.sim.configure(faults=[Fault(resource="segments", kind="drop_key")])

    status, body = post(fresh_service, ["segments", "webhooks"])

    assert status == 502
    reason = body["resources"]["segments"]["reason"]
    assert "primary key 'id'" in reason and "10 of 10 records on page 1" in reason
    assert '[sources.analytics.resources.segments] primary_key = "<field>"' in reason
    assert "segments: " in body["error"]
    counts = table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])
    assert counts == {"webhooks": 25, "webhooks__event_types": 37}
    assert len(sim.sim.arrivals_for("segments")) == 1, "not retried"


@pytest.mark.parametrize(
    "how, rejected",
    [
        pytest.param(
            {"faults": [Fault(resource="webhooks", status=401), Fault(resource="segments", status=403)]},
            {"webhooks": 401, "segments": 403},
            id="401-and-403",
        ),
        pytest.param(
            {"api_key": "another-key"}, {"webhooks": 401, "segments": 401, "eventDefs": 401}, id="key-not-the-apis"
        ),
    ],
)
def test_rejected_key_is_not_retried(
    how: Dict[str, Any],
    rejected: Dict[str, int],
    sim: Any,
    loader_env: Dict[str, str],
    sleeps: List[float],
    fresh_service: Any,
) -> None:
    sim.sim.configure(**how)

    status, body = post(fresh_service, ["webhooks", "segments", "eventDefs"])

    assert status == 502, "an API failure, even of every resource, is a 502"
    assert body["error"].startswith(f"{len(rejected)} of 3 resource(s) failed")
    for name, code in rejected.items():
        failed = body["resources"][name]
        assert (failed["status"], failed["status_code"], failed["retries"]) == ("failed", code, 0), name
        assert "the API key was rejected" in failed["reason"] and "SOURCES__ANALYTICS__API_KEY" in failed["reason"]
        assert len(sim.sim.arrivals_for(name)) == 1, f"{name}: no retries"
    assert sleeps == []
    loaded = {n for n, f in body["resources"].items() if f["status"] == "loaded"}
    assert loaded == {"webhooks", "segments", "eventDefs"} - set(rejected)
    assert set(table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])) == {
        t for n in loaded for t in TABLES_OF[n]
    }


def test_second_trigger_while_running_gets_409(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any, expected: Dict[str, int]
) -> None:
    sim.sim.configure(latency_ms=150)
    subset = ["segments", "webhooks"]
    first: Dict[str, Any] = {}
    runner = threading.Thread(target=lambda: first.update(answer=post(fresh_service, subset)))
    runner.start()
    deadline = time.monotonic() + 20
    while not sim.sim.arrivals and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.sim.arrivals, "the first run reached the API"

    status, body = post(fresh_service, subset)
    runner.join(timeout=60)

    assert status == 409
    assert "already in progress" in body["error"]
    assert first["answer"][0] == 200
    assert len([a for a in sim.sim.arrivals if a["path"] != "/me"]) == 6, (
        "only the first run called the API (3 pages x 2)"
    )
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    assert table_counts(db) == expected_for(expected, subset)
    sim.sim.configure(latency_ms=0)
    assert post(fresh_service, subset)[0] == 200, "the lock was released"
    assert table_counts(db) == expected_for(expected, subset)


def test_schema_drift_new_field_and_type_change_load_without_failure(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any
) -> None:
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    assert post(fresh_service, ["segments", "sessions"])[0] == 200
    assert "loyalty_tier" not in columns(db, "segments")
    assert columns(db, "sessions")["duration_ms"] == "BIGINT"

    sim.sim.configure(
        faults=[Fault(resource="segments", kind="new_field"), Fault(resource="sessions", kind="type_change")]
    )
    status, body = post(fresh_service, ["segments", "sessions"])

    assert status == 200, body
    assert {f["status"] for f in body["resources"].values()} == {"loaded"}
    # a new field: a new column, filled on every merged row
    assert columns(db, "segments")["loyalty_tier"] == "VARCHAR"
    assert query(db, f'select loyalty_tier, count(*) from "{DATASET}".segments group by 1') == [("gold", 25)]
    # an int field now a string: dlt's variant column next to the typed one
    cols = columns(db, "sessions")
    assert cols["duration_ms"] == "BIGINT" and cols["duration_ms__v_text"] == "VARCHAR"
    values = query(db, f'select duration_ms, duration_ms__v_text from "{DATASET}".sessions')
    assert len(values) == 25 and all(n is None and text.endswith(" ms") for n, text in values)


# -- idempotency ------------------------------------------------------------------------------
def test_three_runs_leave_identical_tables(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any, expected: Dict[str, int]
) -> None:
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    snapshots, load_ids = [], []
    for _ in range(3):
        status, body = post(fresh_service)
        assert status == 200, body
        assert table_counts(db) == expected
        snapshots.append(snapshot(db))
        load_ids.append(body["load_ids"])

    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert set(snapshots[0]) == set(expected)
    # merge replaced every row: only the last load's rows are left in the root tables
    assert load_ids_in(db, [t for t in expected if "__" not in t]) == set(load_ids[-1])
    assert query(
        db, f"select load_id, status from \"{DATASET}\"._dlt_loads where schema_name = 'analytics' order by load_id"
    ) == [(i, 0) for run in load_ids for i in run]


# -- secrets ----------------------------------------------------------------------------------
def _files_containing(root: Path, needle: bytes) -> List[str]:
    """Files under `root` whose bytes, or gunzipped bytes (dlt's load package files), hold `needle`."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        readable = [data]
        if data[:2] == b"\x1f\x8b":
            with contextlib.suppress(OSError):
                readable.append(gzip.decompress(data))
        if any(needle in blob for blob in readable):
            found.append(str(path))
    return found


def _warehouse_containing(db: str, needle: str) -> List[str]:
    """Tables (all schemas, dlt's own and staging included) with a value holding `needle`."""
    from dlt.common.versioned_state import decompress_state

    found = []
    with duckdb.connect(db, read_only=True) as con:
        tables = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        for schema, table in tables:
            for row in con.execute(f'select * from "{schema}"."{table}"').fetchall():
                if needle in repr(row):
                    found.append(f"{schema}.{table}")
                    break
        if ("analytics", "_dlt_pipeline_state") in tables:
            for (state,) in con.execute("select state from analytics._dlt_pipeline_state").fetchall():
                if needle in json.dumps(decompress_state(state)):
                    found.append("analytics._dlt_pipeline_state (decompressed)")
    return found


def test_api_key_never_in_logs_answers_files_or_warehouse(
    sim: Any,
    loader_env: Dict[str, str],
    sleeps: List[float],
    fresh_service: Any,
    capfd: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.5")
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")  # dlt's own request logging too
    answers: List[Tuple[int, Dict[str, Any]]] = []

    # every failure kind at once, one per resource, in a storm
    sim.sim.configure(
        storm_rate=0.25,
        faults=[
            Fault(resource="sessions", kind="type_change"),
            Fault(resource="segments", status=500, page=2),
            Fault(resource="operations", kind="hang", seconds=1.0, page=1),
            Fault(resource="blockrules", kind="not_json"),
            Fault(resource="domainsettings", kind="no_selector"),
            Fault(resource="geosettings", kind="drop_key"),
            Fault(resource="recordingfeatures", status=401),
            Fault(resource="sessionTargetingRules", status=403),
            Fault(resource="webhooks", status=429, retry_after="1", times=1),
            Fault(resource="eventDefs", kind="new_field"),
        ],
    )
    answers.append(post(fresh_service))
    # the key is not the API's, sent with the other auth scheme
    sim.sim.configure(storm_rate=0.0, faults=[], api_key="another-key")
    monkeypatch.setenv("SOURCES__ANALYTICS__AUTH_SCHEME", "basic")
    answers.append(post(fresh_service, ["segments", "webhooks"]))
    sim.sim.configure(api_key=API_KEY)
    monkeypatch.delenv("SOURCES__ANALYTICS__AUTH_SCHEME")
    # two triggers at once
    sim.sim.configure(latency_ms=100)
    seen = len(sim.sim.arrivals)
    runner = threading.Thread(target=lambda: answers.append(post(fresh_service, ["segments"])))
    runner.start()
    while len(sim.sim.arrivals) == seen and runner.is_alive():
        time.sleep(0.01)
    answers.append(post(fresh_service, ["segments"]))
    runner.join(timeout=60)
    sim.sim.configure(latency_ms=0)
    # an interrupted run's package, then a warehouse that cannot be written, then no API at all
    from loader.environment import load_settings
    from loader.pipeline import new_pipeline
    from source import analytics_source

    new_pipeline(load_settings()).extract(analytics_source().with_resources("webhooks"))
    answers.append(post(fresh_service, ["webhooks"]))
    (tmp_path / "not-a-file.duckdb").mkdir()
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "not-a-file.duckdb"))
    answers.append(post(fresh_service, ["segments"]))
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", db)
    monkeypatch.setenv("SOURCES__ANALYTICS__BASE_URL", "http://127.0.0.1:9")
    answers.append(post(fresh_service, ["segments"]))

    statuses = [a[0] for a in answers]
    assert sorted(statuses) == sorted([502, 502, 200, 409, 200, 500, 502]), statuses
    first = answers[0][1]["resources"]
    assert {n for n, f in first.items() if f["status"] == "loaded"} == {"sessions", "webhooks", "eventDefs"}, first
    assert "not-a-file.duckdb" in answers[-2][1]["error"], answers[-2]
    assert answers[-1][1]["resources"]["segments"]["status"] == "failed"
    captured = capfd.readouterr()
    assert log_lines(captured.out), "logs were captured"
    assert API_KEY not in captured.out and API_KEY not in captured.err
    assert all(API_KEY not in json.dumps(body) for _, body in answers)
    assert _files_containing(tmp_path, API_KEY.encode()) == []  # DLT_DATA_DIR, the DuckDB file and its WAL
    assert _warehouse_containing(db, API_KEY) == []
    # the checks are not vacuous: the key was sent, and the scans do see loaded values
    assert any(API_KEY in (r["authorization"] or "") for r in sim.sim.requests)
    # (loaded packages are deleted after the load: the working folder's schema files name the tables)
    assert _files_containing(Path(loader_env["DLT_DATA_DIR"]), b"event_defs")
    assert "analytics.webhooks" in _warehouse_containing(db, "hooks.example/")
