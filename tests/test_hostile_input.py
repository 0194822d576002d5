"""Nothing the API sends stops the loader or leaks the key.

Each test drives the function's service (`service.handle("POST", body)`) against the simulator
with a hostile answer (simulator/hostile.py) and asserts the HTTP status, the resource named as
failed and why, the rows of every table in DuckDB, and that the key is absent from the answer,
the logs and every file of the working folder. Request bodies: tests/test_hostile_request.py;
the cross-instance lock: tests/test_run_lock.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import duckdb
import pytest

from simulator import Fault
from simulator.hostile import SECRET_VALUE
from tests.helpers import API_KEY, SEED_RESOURCES, post, table_counts

SEED_PAGE_SIZE = 10  # the simulator's default page size: 25 rows are pages of 10, 10, 5
TABLES_OF = {
    "sessions": ("sessions", "sessions__pages"),
    "webhooks": ("webhooks", "webhooks__event_types"),
    "eventDefs": ("event_defs",),
    "sessionTargetingRules": ("session_targeting_rules", "session_targeting_rules__conditions"),
}


def others_loaded(counts: Dict[str, int], expected: Dict[str, int], failed: str) -> None:
    """Every table but the failed resource's holds exactly the expected rows."""
    tables = TABLES_OF.get(failed, (failed.lower(),))
    assert {t: n for t, n in counts.items() if t not in tables} == {
        t: n for t, n in expected.items() if t not in tables
    }
    assert all(counts.get(t, 0) == 0 for t in tables), f"{failed}'s tables must get nothing: {counts}"


def reload_dlt_providers() -> None:
    """dlt reads .dlt/*.toml once per process: read them again from DLT_PROJECT_DIR (test set-up only)."""
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    Container()[PluggableRunContext].reload_providers()


def key_nowhere(answer: Dict[str, Any], out: str, data_dir: Path) -> None:
    assert API_KEY not in json.dumps(answer)
    assert API_KEY not in out
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), f"the key is in {path}"


# -- keys whose JSON type changes ---------------------------------------------------------------
def test_keys_that_are_numbers_then_strings_load_into_one_text_column(
    sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], fresh_service: Any
) -> None:
    sim.sim.configure(faults=[Fault(resource="segments", kind="key_types")])

    status, body = post(fresh_service)

    assert status == 200, body
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    assert table_counts(db) == expected
    with duckdb.connect(db, read_only=True) as con:
        kind = con.execute(
            "select data_type from information_schema.columns where table_name='segments' and column_name='id'"
        ).fetchone()
        ids = sorted(r[0] for r in con.execute("select id from analytics.segments").fetchall())
    assert kind == ("VARCHAR",)
    assert ids[:3] == ["0", "1", "10"] and "abc11" in ids and len(set(ids)) == 25


def test_a_warehouse_holding_numeric_keys_takes_string_keys(
    sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], fresh_service: Any
) -> None:
    """A table created with a bigint key (as by an earlier version, or any loader that inferred it) is migrated."""
    import dlt

    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    old = dlt.pipeline(
        "analytics",
        destination=dlt.destinations.duckdb(db),
        dataset_name="analytics",
        pipelines_dir=str(Path(loader_env["DLT_DATA_DIR"]) / "pipelines"),
    )
    old.run(
        [{"id": i, "name": f"segments {i}"} for i in range(25)],
        table_name="segments",
        primary_key="id",
        write_disposition="merge",
        schema=dlt.Schema("analytics"),
    )
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute(
            "select data_type from information_schema.columns where table_name='segments' and column_name='id'"
        ).fetchone() == ("BIGINT",)
    sim.sim.configure(faults=[Fault(resource="segments", kind="key_types", field="str")])

    status, body = post(fresh_service)

    assert status == 200, body
    assert table_counts(db) == {**expected, "segments": 37}  # 25 old numeric + 12 "abc.." new; the 13 even ids merged
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute(
            "select data_type from information_schema.columns where table_name='segments' and column_name='id'"
        ).fetchone() == ("VARCHAR",)
        assert con.execute("select count(*) from analytics.segments where id = '4'").fetchone() == (1,)

    status, body = post(fresh_service)  # and the run after that: nothing left to migrate

    assert status == 200 and table_counts(db) == {**expected, "segments": 37}


def test_a_key_that_is_an_object_fails_that_resource_only(
    sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], fresh_service: Any
) -> None:
    """dlt would flatten an object into `id__value` and leave the key empty: the answer check refuses it."""
    sim.sim.configure(faults=[Fault(resource="operations", kind="key_object", page=2)])

    status, body = post(fresh_service)

    assert status == 502, body
    failed = body["resources"]["operations"]
    assert failed["status"] == "failed" and failed["step"] == "extract", failed
    assert failed["reason"].startswith(
        "1 of 10 records on page 2 of GET /operations/v1 have a primary key 'id' that is an object, not a value; "
        'set the key with [sources.analytics.resources.operations] primary_key = "<field>"'
    ), failed["reason"]
    others_loaded(table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]), expected, "operations")
    assert "operations" not in body["row_counts"]


def test_a_resource_dlt_cannot_normalize_fails_alone_and_the_others_load(
    sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer check refuses records without a key before dlt sees them; injected past it, a null key
    makes dlt's normalizer fail: that resource is reported failed at `normalize`, the others load."""
    import source.build as build

    real = build.response_check

    def check_then_null_a_key(resource: Any, figures: Any, profile: str, max_pages: int) -> Any:
        check = real(resource, figures, profile, max_pages)

        def hook(response: Any, *args: Any, **kwargs: Any) -> None:
            check(response, *args, **kwargs)
            if resource["name"] == "operations":
                response.json()["operations"][0]["id"] = None

        return hook

    monkeypatch.setattr(build, "response_check", check_then_null_a_key)

    status, body = post(fresh_service)

    assert status == 502, body
    failed = body["resources"]["operations"]
    assert failed["status"] == "failed" and failed["step"] == "normalize", failed
    assert "could not be normalized" in failed["reason"] and "Traceback" not in failed["reason"]
    others_loaded(table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]), expected, "operations")


def test_a_load_the_warehouse_refuses_fails_that_resource_only(
    sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], fresh_service: Any, capsys: Any
) -> None:
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    with duckdb.connect(db) as con:  # a table someone created with a rule the API's data breaks
        con.execute("create schema analytics")
        con.execute("create table analytics.operations (id varchar check (id <> 'operations-3'), name varchar)")

    status, body = post(fresh_service)

    assert status == 502, body
    failed = body["resources"]["operations"]
    assert failed["status"] == "failed" and failed["step"] == "load"
    assert "CHECK constraint" in failed["reason"] and "Traceback" not in failed["reason"]
    assert "operations" in body["error"]
    counts = table_counts(db)
    assert counts["operations"] == 0
    assert {t: n for t, n in counts.items() if t != "operations"} == {
        t: n for t, n in expected.items() if t != "operations"
    }
    assert "operations" not in body["row_counts"]
    assert "resource operations failed" in capsys.readouterr().out


# -- cursor chains that never end ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, page, first",
    [
        pytest.param("cursor_repeat", 2, 1, id="same-token-again"),
        pytest.param("cursor_cycle", 3, 1, id="cycle-A-B-A"),
    ],
)
def test_a_cursor_seen_before_fails_the_resource_at_once_naming_the_page(
    sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], fresh_service: Any, kind: str, page: int, first: int
) -> None:
    sim.sim.configure(faults=[Fault(resource="operations", kind=kind)])

    status, body = post(fresh_service)

    assert status == 502, body
    reason = body["resources"]["operations"]["reason"]
    assert f"on page {page} of GET /operations/v1 was already returned on page {first}" in reason
    assert len(sim.sim.requests_for("operations")) == page  # stopped at once: no request after the repeat
    others_loaded(table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]), expected, "operations")


def test_an_endless_chain_stops_at_the_page_cap(
    sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__MAX_PAGES", "30")
    sim.sim.configure(faults=[Fault(resource="sessions", kind="endless")])

    status, body = post(fresh_service)

    assert status == 502, body
    reason = body["resources"]["sessions"]["reason"]
    assert "still has a next page after 30 pages" in reason and "SOURCES__ANALYTICS__MAX_PAGES=30" in reason
    assert len(sim.sim.requests_for("sessions")) == 30
    others_loaded(table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]), expected, "sessions")


def test_at_the_run_deadline_resources_still_reading_fail_and_the_rest_loads(
    sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endless chain with no cap to speak of, and an answer that hangs: the deadline ends both."""
    deadline = 4.0
    monkeypatch.setenv("RUN_DEADLINE_SECONDS", str(deadline))
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "60")
    sim.sim.configure(
        latency_ms=5,
        faults=[
            Fault(resource="sessions", kind="endless"),
            Fault(resource="webhooks", kind="hang", seconds=30, page=2),
        ],
    )

    started = time.monotonic()
    status, body = post(fresh_service)
    elapsed = time.monotonic() - started

    assert status == 502, body
    assert set(body["resources"]) == set(SEED_RESOURCES)
    for name in ("sessions", "webhooks"):
        assert body["resources"][name]["status"] == "failed"
        assert body["resources"][name]["reason"].startswith("deadline:"), body["resources"][name]
    assert elapsed < deadline + 10, f"the run outlived its deadline by {elapsed - deadline:.1f} s"
    counts = table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])
    loaded = {t: n for t, n in expected.items() if not t.startswith(("sessions", "webhooks"))}
    assert {t: n for t, n in counts.items() if t in loaded} == loaded
    assert not {t for t in counts if t.startswith(("sessions", "webhooks"))}


# -- the key never leaks, whatever its origin -----------------------------------------------------
@pytest.mark.parametrize("origin", ["env", "secrets_toml"])
def test_a_key_echoed_by_the_api_is_redacted_from_answer_logs_and_files(
    sim: Any,
    loader_env: Dict[str, str],
    fresh_service: Any,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    origin: str,
) -> None:
    if origin == "secrets_toml":
        project = tmp_path / "project"
        (project / ".dlt").mkdir(parents=True)
        (project / ".dlt" / "secrets.toml").write_text(f'[sources.analytics]\napi_key = "{API_KEY}"\n')
        (project / ".dlt" / "config.toml").write_text(
            (Path(__file__).parent.parent / ".dlt" / "config.toml").read_text()
        )
        monkeypatch.delenv("SOURCES__ANALYTICS__API_KEY")
        monkeypatch.setenv("DLT_PROJECT_DIR", str(project))
        reload_dlt_providers()
    sim.sim.configure(faults=[Fault(resource="segments", kind="echo_key", status=400)])

    try:
        status, body = post(fresh_service)
    finally:
        monkeypatch.undo()
        reload_dlt_providers()

    assert status == 502, body
    assert "HTTP 400" in body["resources"]["segments"]["reason"]
    key_nowhere(body, capsys.readouterr().out, Path(loader_env["DLT_DATA_DIR"]))


@pytest.mark.parametrize(
    "url, named",
    [
        pytest.param("http://user:{key}@127.0.0.1:{port}", "must not carry credentials", id="userinfo"),
        pytest.param("http://api.example.com", "cleartext", id="cleartext-http"),
        pytest.param("ftp://127.0.0.1", "must be an https:// URL", id="not-http"),
    ],
)
def test_base_urls_that_would_expose_the_key_are_refused_before_any_request(
    sim: Any,
    loader_env: Dict[str, str],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    url: str,
    named: str,
) -> None:
    port = sim.url.rsplit(":", 1)[1]
    monkeypatch.setenv("SOURCES__ANALYTICS__BASE_URL", url.format(key=API_KEY, port=port))

    status, body = post(fresh_service)

    assert status == 500, body
    assert "SOURCES__ANALYTICS__BASE_URL" in body["error"] and named in body["error"]
    assert sim.sim.requests == []
    key_nowhere(body, capsys.readouterr().out, Path(loader_env["DLT_DATA_DIR"]))


@pytest.mark.parametrize("path", ["https://evil.example/x", "//evil.example/x", "http://127.0.0.1:1/x"])
def test_a_path_override_to_another_host_is_refused(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__RESOURCES", json.dumps({"segments": {"path": path}}))

    status, body = post(fresh_service)

    assert status == 500, body
    assert (
        "[sources.analytics.resources.segments] path" in body["error"] and "a path on the API's host" in body["error"]
    )
    assert sim.sim.requests == []


# -- a slow answer is bounded as a whole ------------------------------------------------------------
def test_an_answer_that_drips_is_bounded_by_the_request_timeout_as_a_whole(
    sim: Any,
    loader_env: Dict[str, str],
    expected: Dict[str, int],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: List[float],
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    sim.sim.configure(
        faults=[Fault(resource="eventDefs", kind="drip", seconds=0.05)]
    )  # each read is quick, the answer is not

    started = time.monotonic()
    status, body = post(fresh_service)
    elapsed = time.monotonic() - started

    assert status == 502, body
    failed = body["resources"]["eventDefs"]
    assert "within the request timeout" in failed["reason"] and "RUNTIME__REQUEST_TIMEOUT" in failed["reason"]
    assert failed["retries"] == 1
    assert len(sim.sim.arrivals_for("eventDefs")) == 2
    assert elapsed < 30
    others_loaded(table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]), expected, "eventDefs")


# -- settings errors name the setting and what it accepts ------------------------------------------
@pytest.mark.parametrize(
    "name, value, says",
    [
        pytest.param(
            "RUNTIME__REQUEST_MAX_ATTEMPTS",
            "abc",
            "RUNTIME__REQUEST_MAX_ATTEMPTS (request_max_attempts under [runtime]",
            id="attempts-abc",
        ),
        pytest.param(
            "RUNTIME__REQUEST_TIMEOUT",
            "0",
            "RUNTIME__REQUEST_TIMEOUT (request_timeout under [runtime] in .dlt/config.toml) must be a number > 0",
            id="timeout-0",
        ),
        pytest.param("RUNTIME__REQUEST_TIMEOUT", "-5", "must be a number > 0, got '-5'", id="timeout-negative"),
        pytest.param("RUNTIME__REQUEST_BACKOFF_FACTOR", "fast", "RUNTIME__REQUEST_BACKOFF_FACTOR", id="backoff-word"),
        pytest.param(
            "SOURCES__ANALYTICS__MAX_PAGES",
            "0",
            "SOURCES__ANALYTICS__MAX_PAGES must be a whole number >= 1",
            id="max-pages-0",
        ),
        pytest.param(
            "SOURCES__ANALYTICS__SESSIONS_LIMIT",
            "many",
            "SOURCES__ANALYTICS__SESSIONS_LIMIT must be a whole number",
            id="limit-word",
        ),
        pytest.param(
            "RUN_DEADLINE_SECONDS", "soon", "RUN_DEADLINE_SECONDS must be a number of seconds", id="deadline-word"
        ),
        pytest.param(
            "SOURCES__ANALYTICS__RESOURCES",
            '{"segments": {"primary_key": 5}}',
            "primary_key must be a field name or a list of field names, got 5",
            id="pk-number",
        ),
        pytest.param(
            "SOURCES__ANALYTICS__RESOURCES",
            '{"segments": {"params": "abc"}}',
            "params must be a table of query parameters",
            id="params-string",
        ),
        pytest.param(
            "SOURCES__ANALYTICS__RESOURCES",
            '{"segments": {"data_selector": 5}}',
            "data_selector must be a JSONPath string",
            id="selector-number",
        ),
        pytest.param(
            "SOURCES__ANALYTICS__RESOURCES",
            '{"segments": "abc"}',
            "[sources.analytics.resources.segments] must be a table of overrides",
            id="override-string",
        ),
        pytest.param(
            "SOURCES__ANALYTICS__RESOURCES",
            '{"segments": {"paginate": "no"}}',
            "paginate must be true or false, got 'no'",
            id="paginate-string",
        ),
        pytest.param(
            "SOURCES__ANALYTICS__RESOURCES",
            '{"sessions": {"params": {"uid": "{uid.__class__}"}}}',
            "has the placeholder {uid.__class__}: only {uid}, {sessions_limit} are filled",
            id="format-attack",
        ),
        pytest.param(
            "SOURCES__ANALYTICS__RESOURCES",
            "[1, 2]",
            "SOURCES__ANALYTICS__RESOURCES must be a JSON object",
            id="resources-list",
        ),
    ],
)
def test_a_wrong_setting_is_500_naming_it_before_any_request(
    sim: Any,
    loader_env: Dict[str, str],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(name, value)

    status, body = post(fresh_service)

    assert status == 500, body
    assert says in body["error"], body["error"]
    assert sim.sim.requests == []


# -- messages that say what happened ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, says",
    [
        pytest.param(
            "string_records",
            "has 2 of 2 records that are not JSON objects (e.g. a string) under 'eventDefs'",
            id="string-records",
        ),
        pytest.param(
            "null_selector",
            "has 'eventDefs' (the data selector) set to null, not a list of records",
            id="null-selector",
        ),
        pytest.param(
            "redirect",
            "HTTP 302 Found from GET /webhooks/v1/event-types (page 1): a redirect to /moved, not followed",
            id="redirect",
        ),
        pytest.param(
            "not_json",
            "if the API answers in the documented shapes, set SOURCES__ANALYTICS__PROFILE=documented",
            id="not-json-suggests-profile",
        ),
        pytest.param(
            "deep_record", "has a record nested more than 100 levels deep (at 'detail.a.a.a", id="deep-record"
        ),
        pytest.param("big_int", "has an integer beyond 64 bits in field 'detail.count'", id="integer-beyond-64-bits"),
    ],
)
def test_odd_answers_get_a_message_that_says_what_was_found(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, kind: str, says: str
) -> None:
    sim.sim.configure(faults=[Fault(resource="eventDefs", kind=kind)])

    status, body = post(fresh_service, ["eventDefs", "segments"])

    assert status == 502, body
    assert says in body["resources"]["eventDefs"]["reason"], body["resources"]["eventDefs"]["reason"]
    assert body["resources"]["segments"]["status"] == "loaded"


def test_errors_and_figures_carry_the_overridden_path(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, monkeypatch: pytest.MonkeyPatch, sleeps: List[float]
) -> None:
    override = {"segments": {"path": "/operations/v1", "data_selector": "operations"}}
    monkeypatch.setenv("SOURCES__ANALYTICS__RESOURCES", json.dumps(override))
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.5")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    sim.sim.configure(faults=[Fault(resource="operations", kind="hang", seconds=2)])

    status, body = post(fresh_service, ["segments"])

    assert status == 502, body
    failed = body["resources"]["segments"]
    assert failed["path"] == "/operations/v1" and "GET /operations/v1 (page 1)" in failed["reason"]
    assert failed["retries"] == 1  # the timeout under the overridden path is counted


# -- no credential lands in the warehouse -----------------------------------------------------------
def test_fields_named_like_credentials_are_dropped_and_named_in_the_log(
    sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], fresh_service: Any, capsys: Any
) -> None:
    sim.sim.configure(faults=[Fault(resource="webhooks", kind="secret_fields")])

    status, body = post(fresh_service)

    assert status == 200, body
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    assert table_counts(db) == expected
    with duckdb.connect(db, read_only=True) as con:
        columns = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns where table_name='webhooks'"
            ).fetchall()
        }
        dump = json.dumps(con.execute("select * from analytics.webhooks").fetchall(), default=str)
    assert {"signing_secret", "auth__api_key", "password"}.isdisjoint(columns) and "auth__user" in columns
    assert SECRET_VALUE not in dump
    out = capsys.readouterr().out
    warning = [json.loads(line) for line in out.splitlines() if "dropped field(s)" in line]
    assert warning and warning[0]["dropped_fields"] == ["Password", "auth.apiKey", "signingSecret"]
    assert SECRET_VALUE not in out


def test_keep_fields_loads_a_named_credential_field_on_purpose(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__RESOURCES", json.dumps({"webhooks": {"keep_fields": ["signingSecret"]}}))
    sim.sim.configure(faults=[Fault(resource="webhooks", kind="secret_fields")])

    status, body = post(fresh_service, ["webhooks"])

    assert status == 200, body
    with duckdb.connect(loader_env["DESTINATION__DUCKDB__CREDENTIALS"], read_only=True) as con:
        columns = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns where table_name='webhooks'"
            ).fetchall()
        }
    assert "signing_secret" in columns and "auth__api_key" not in columns
