"""The `documented` profile (the real API's documented shapes) next to the default `seed`.

Driven the way the function is (`service.handle("POST", body)`) against the simulator answering in
the matching shapes (`SimConfig(profile=...)`, or per resource with `resource_profiles`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import duckdb
import pytest

from simulator import Fault
from simulator.data import SINGLETONS
from simulator.expected import expected_counts
from tests.helpers import API_KEY, ROOT, SEED_RESOURCES, post, query, table_counts

DATASET = "analytics"
LIST_LIMITED = ("segments", "operations", "webhooks")  # documented: `limit` up to 100


def columns(path: str, table: str) -> Dict[str, Tuple[str, str]]:
    """column -> (data type, nullable)"""
    return {
        r[0]: (r[1], r[2])
        for r in query(
            path,
            "select column_name, data_type, is_nullable from information_schema.columns where table_schema = ? and "
            "table_name = ?",
            [DATASET, table],
        )
    }


def raw_rows(path: str, table: str) -> List[str]:
    with duckdb.connect(path, read_only=True) as con:
        cur = con.execute(f'select * from "{DATASET}"."{table}"')
        names = [d[0] for d in cur.description]
        return sorted(repr(sorted(zip(names, r, strict=True))) for r in cur.fetchall())


@pytest.fixture
def documented(sim: Any, loader_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Loader and simulator both on the documented profile."""
    monkeypatch.setenv("SOURCES__ANALYTICS__PROFILE", "documented")
    sim.sim.configure(profile="documented")
    return sim


def test_documented_profile_loads_all_ten_with_basic_auth_and_reruns_without_duplicates(
    documented: Any,
    loader_env: Dict[str, str],
    sleeps: List[float],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = documented
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    monkeypatch.setenv("SOURCES__ANALYTICS__AUTH_SCHEME", "basic")
    sim.sim.configure(auth_scheme="basic", rows={**sim.sim.config.rows, "segments": 250})
    expected = expected_counts(sim.sim.config)

    status, body = post(fresh_service)

    assert status == 200, body.get("error")
    assert table_counts(db) == expected
    assert {n: f["status"] for n, f in body["resources"].items()} == {n: "loaded" for n in SEED_RESOURCES}
    assert all(body["resources"][n]["rows"] > 0 for n in SEED_RESOURCES), "all ten non-empty"
    # basic auth: the key as-is, not base64
    assert {r["authorization"] for r in sim.sim.requests} == {f"Basic {API_KEY}"}
    # `limit=100` on the list endpoints that document it: 250 segments in 3 pages, not 25 of 10
    for name in LIST_LIMITED:
        assert {r["params"].get("limit") for r in sim.sim.requests_for(name)} == {"100"}, name
    assert [r["params"].get("pagination_token") for r in sim.sim.requests_for("segments")] == [None, "100", "200"]
    assert body["resources"]["segments"]["pages"] == 3
    # sessions: one request, the default limit, the uid; no limit where none is documented
    assert [r["params"] for r in sim.sim.requests_for("sessions")] == [{"uid": "u1", "limit": "1000"}]
    for name in (*SINGLETONS, "sessionTargetingRules", "eventDefs"):
        assert [r["params"] for r in sim.sim.requests_for(name)] == [{}], name
    # settings objects: one row each, metadata kept as columns
    for name in SINGLETONS:
        cols = columns(db, name)
        assert {"metadata__last_updated", "metadata__last_updated_by", "_dlt_valid_from", "_dlt_valid_to"} <= set(
            cols
        ), name
        assert query(db, f'select metadata__last_updated_by from "{DATASET}"."{name}"') == [("admin@example.com",)]
    before = {name: raw_rows(db, name) for name in SINGLETONS}

    # a rerun in which one settings object changed (geosettings gains a field)
    sim.sim.configure(faults=[Fault(resource="geosettings", kind="new_field")])
    status, body = post(fresh_service)

    assert status == 200, body.get("error")
    counts = table_counts(db)
    # merge tables: no duplicates; the changed singleton: one new version, with its own nested rows
    assert counts == {
        **expected,
        "geosettings": 2,
        "geosettings__record_geo_zones": 2 * expected["geosettings__record_geo_zones"],
    }
    for name in SINGLETONS:
        current = query(db, f'select count(*) from "{DATASET}"."{name}" where _dlt_valid_to is null')
        assert current == [(1,)], f"{name}: one current row"
    for name in ("blockrules", "domainsettings", "recordingfeatures"):
        assert raw_rows(db, name) == before[name], f"{name} unchanged: the rerun added nothing"
    assert query(db, f'select loyalty_tier from "{DATASET}".geosettings where _dlt_valid_to is null') == [("gold",)]


def test_failed_singleton_keeps_its_current_version_even_on_a_cold_start(
    documented: Any,
    loader_env: Dict[str, str],
    sleeps: List[float],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """scd2 retires rows missing from a load: a settings object that failed must not be retired."""
    sim = documented
    db = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    subset = ["blockrules", "domainsettings", "segments"]
    assert post(fresh_service, subset)[0] == 200
    before = {name: raw_rows(db, name) for name in ("blockrules", "domainsettings")}

    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "cold"))
    sim.sim.configure(
        faults=[Fault(resource="blockrules", status=500), Fault(resource="domainsettings", kind="not_json")]
    )
    status, body = post(fresh_service, subset)

    assert status == 502
    assert {n for n, f in body["resources"].items() if f["status"] == "failed"} == {"blockrules", "domainsettings"}
    for name, rows in before.items():
        assert raw_rows(db, name) == rows, f"{name}: untouched, its current version still current"
    assert table_counts(db) == {
        t: n
        for t, n in expected_counts(sim.sim.config).items()
        if t.split("__")[0] in ("blockrules", "domainsettings", "segments")
    }


@pytest.mark.parametrize(
    "env, words",
    [
        pytest.param(
            {"SOURCES__ANALYTICS__PROFILE": "documnted"},
            ["SOURCES__ANALYTICS__PROFILE", "seed, documented"],
            id="unknown-profile",
        ),
        pytest.param(
            {"SOURCES__ANALYTICS__AUTH_SCHEME": "digest"},
            ["SOURCES__ANALYTICS__AUTH_SCHEME", "bearer, basic"],
            id="unknown-auth-scheme",
        ),
        pytest.param(
            {"SOURCES__ANALYTICS__RESOURCES": '{"eventDef": {"primary_key": "eventName"}}'},
            ["[sources.analytics.resources]", "'eventDef'", "eventDefs"],
            id="override-of-unknown-resource",
        ),
        pytest.param(
            {"SOURCES__ANALYTICS__RESOURCES": '{"eventDefs": {"primary": "eventName"}}'},
            ["[sources.analytics.resources.eventDefs]", "'primary'", "primary_key"],
            id="override-with-unknown-key",
        ),
        pytest.param(
            {"SOURCES__ANALYTICS__RESOURCES": "eventDefs.primary_key=eventName"},
            ["SOURCES__ANALYTICS__RESOURCES"],
            id="override-not-json",
        ),
        pytest.param(
            {"SOURCES__ANALYTICS__SESSIONS_LIMIT": "all"},
            ["SOURCES__ANALYTICS__SESSIONS_LIMIT"],
            id="sessions-limit-not-a-number",
        ),
    ],
)
def test_wrong_profile_setting_is_a_500_naming_it(
    env: Dict[str, str],
    words: List[str],
    sim: Any,
    loader_env: Dict[str, str],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    status, body = post(fresh_service, ["eventDefs"])

    assert status == 500
    for word in words:
        assert word in body["error"], body["error"]
    assert sim.sim.arrivals == [], "nothing was requested with a wrong setting"


def test_sessions_limit_comes_from_the_setting(
    documented: Any,
    loader_env: Dict[str, str],
    sleeps: List[float],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = documented
    monkeypatch.setenv("SOURCES__ANALYTICS__SESSIONS_LIMIT", "7")

    status, body = post(fresh_service, ["sessions"])

    assert status == 200, body.get("error")
    assert [r["params"] for r in sim.sim.requests_for("sessions")] == [{"uid": "u1", "limit": "7"}]
    assert (body["resources"]["sessions"]["rows"], body["resources"]["sessions"]["pages"]) == (7, 1)
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == {
        "sessions": expected_counts(sim.sim.config, sessions_limit=7)["sessions"]
    }
    assert columns(loader_env["DESTINATION__DUCKDB__CREDENTIALS"], "sessions")["session_id"] == ("VARCHAR", "NO")


def _assert_event_defs_keyed_by_event_name(db: str, body: Dict[str, Any]) -> None:
    assert body["resources"]["eventDefs"]["status"] == "loaded", body
    assert table_counts(db)["event_defs"] == 25
    cols = columns(db, "event_defs")
    assert "id" not in cols and cols["event_name"] == ("VARCHAR", "NO")
    assert query(db, f'select count(distinct event_name) from "{DATASET}".event_defs') == [(25,)]


def test_override_from_env_sets_the_primary_key(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed profile, but the API answers eventDefs in the documented shape (no `id`)."""
    sim.sim.configure(resource_profiles={"eventDefs": "documented"})
    monkeypatch.setenv("SOURCES__ANALYTICS__RESOURCES", json.dumps({"eventDefs": {"primary_key": "eventName"}}))

    status, body = post(fresh_service, ["eventDefs", "segments"])

    assert status == 200, body.get("error")
    _assert_event_defs_keyed_by_event_name(loader_env["DESTINATION__DUCKDB__CREDENTIALS"], body)
    assert body["resources"]["segments"]["status"] == "loaded", "the other resources keep the seed's settings"
    assert "id" in columns(loader_env["DESTINATION__DUCKDB__CREDENTIALS"], "segments")


def test_override_from_config_toml_in_the_project_folder(sim: Any, loader_env: Dict[str, str], tmp_path: Path) -> None:
    """`[sources.analytics.resources.eventDefs]` in `.dlt/config.toml` of the function's folder.

    dlt reads the toml files once per process (its config providers are cached), the way the
    deployed function starts: so this runs the function in a fresh process with DLT_PROJECT_DIR
    pointing at a project folder whose config.toml is the repository's plus the override.
    """
    sim.sim.configure(resource_profiles={"eventDefs": "documented"})
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "config.toml").write_text(
        (ROOT / ".dlt" / "config.toml").read_text()
        + '\n[sources.analytics.resources.eventDefs]\nprimary_key = "eventName"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION", "DLT_", "RUNTIME__"))}
    env.update(loader_env, DLT_PROJECT_DIR=str(project), RUNTIME__DLTHUB_TELEMETRY="false", PYTHONPATH=str(ROOT))
    script = (
        "import json, main\n"
        "status, body = main.handle('POST', b'{\"resources\": [\"eventDefs\"]}')\n"
        "print('ANSWER ' + json.dumps([status, body]))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], cwd=str(project), env=env, capture_output=True, text=True, timeout=120
    )

    answers = [line for line in done.stdout.splitlines() if line.startswith("ANSWER ")]
    assert answers, done.stdout[-2000:] + done.stderr[-2000:]
    status, body = json.loads(answers[-1][len("ANSWER ") :])
    assert status == 200, body.get("error")
    _assert_event_defs_keyed_by_event_name(loader_env["DESTINATION__DUCKDB__CREDENTIALS"], body)


# the resources that cannot load under the other profile: each must fail and name the right profile
# (sessionTargetingRules: one page in the documented API, loaded whole under the seed profile; paged
# by the seed API, refused under the documented profile, see the truncation test below)
SEED_PROFILE_ON_DOCUMENTED_API = (
    "sessions",
    "blockrules",
    "domainsettings",
    "geosettings",
    "recordingfeatures",
    "webhooks",
    "eventDefs",
)
DOCUMENTED_PROFILE_ON_SEED_API = (
    "sessions",
    "blockrules",
    "domainsettings",
    "geosettings",
    "recordingfeatures",
    "sessionTargetingRules",
    "webhooks",
)
SETTINGS_OBJECTS = ("blockrules", "domainsettings", "geosettings", "recordingfeatures")  # one object each, documented


@pytest.mark.parametrize(
    "loader_profile, api_profile, failing",
    [
        pytest.param("seed", "documented", SEED_PROFILE_ON_DOCUMENTED_API, id="seed-profile-on-documented-api"),
        pytest.param("documented", "seed", DOCUMENTED_PROFILE_ON_SEED_API, id="documented-profile-on-seed-api"),
    ],
)
def test_wrong_profile_fails_naming_resource_and_the_other_profile(
    loader_profile: str,
    api_profile: str,
    failing: Sequence[str],
    sim: Any,
    loader_env: Dict[str, str],
    sleeps: List[float],
    fresh_service: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__PROFILE", loader_profile)
    sim.sim.configure(profile=api_profile)

    status, body = post(fresh_service)

    assert status == 502
    hint = f"SOURCES__ANALYTICS__PROFILE={api_profile}"
    failed = {n for n, f in body["resources"].items() if f["status"] == "failed"}
    assert failed == set(failing)
    if loader_profile == "documented":  # a settings object read from a list: named as such
        for name in SETTINGS_OBJECTS:
            assert f"is a list under '{name}', not one settings object" in body["resources"][name]["reason"], name
    counts = table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])
    for name in failed:
        reason = body["resources"][name]["reason"]
        assert hint in reason, f"{name}: {reason}"
        assert f"{name}: " in body["error"]
        assert not any(t == name.lower() or t.startswith(f"{name.lower()}__") for t in counts), (
            f"{name}: nothing loaded"
        )
    for name, figures in body["resources"].items():
        if figures["status"] == "loaded":
            assert figures["rows"] > 0, f"{name}: never an empty table reported as success"


def test_documented_profile_on_paginating_api_does_not_load_a_truncated_table(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sessionTargetingRules is one page in the documented API; the seed API pages it (10 a page)."""
    monkeypatch.setenv("SOURCES__ANALYTICS__PROFILE", "documented")

    status, body = post(fresh_service, ["sessionTargetingRules"])

    rules = body["resources"]["sessionTargetingRules"]
    assert status == 502
    assert (rules["status"], rules["status_code"], rules["page"]) == ("failed", 200, 1), rules
    assert "'nextPaginationToken'" in rules["reason"] and "SOURCES__ANALYTICS__PROFILE=seed" in rules["reason"]
    assert "[sources.analytics.resources.sessionTargetingRules] paginate = true" in rules["reason"]
    assert [r["params"].get("pagination_token") for r in sim.sim.requests_for("sessionTargetingRules")] == [None]
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == {}, "not the first 10 of 25 rows"


def test_documented_profile_refuses_a_one_page_list_where_one_settings_object_was_expected(
    documented: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any
) -> None:
    """blockrules answered as the seed's list, all on one page (no cursor to give it away): the
    documented profile must not load the list's wrapper as the settings object."""
    sim = documented
    sim.sim.configure(resource_profiles={"blockrules": "seed"}, rows={**sim.sim.config.rows, "blockrules": 5})

    status, body = post(fresh_service, ["blockrules", "geosettings"])

    assert status == 502
    failed = body["resources"]["blockrules"]
    assert (failed["status"], failed["status_code"], failed["path"], failed["page"]) == (
        "failed",
        200,
        "/settings/recording/v1/blocking",
        1,
    )
    assert "is a list under 'blockrules', not one settings object" in failed["reason"]
    assert "SOURCES__ANALYTICS__PROFILE=seed" in failed["reason"]
    assert body["resources"]["geosettings"]["status"] == "loaded"
    counts = table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])
    assert not [t for t in counts if t.startswith("blockrules")], counts
    assert counts["geosettings"] == 1


def test_default_profile_loads_the_seed_shapes_exactly(
    sim: Any, loader_env: Dict[str, str], sleeps: List[float], fresh_service: Any, expected: Dict[str, int]
) -> None:
    assert "SOURCES__ANALYTICS__PROFILE" not in os.environ

    status, body = post(fresh_service)

    assert status == 200, body.get("error")
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == expected
    assert body["row_counts"] == dict(sorted(expected.items()))
    assert {r["authorization"] for r in sim.sim.requests} == {f"Bearer {API_KEY}"}
    assert all("limit" not in r["params"] for r in sim.sim.requests)
    for name in SEED_RESOURCES:
        tokens = [r["params"].get("pagination_token") for r in sim.sim.requests_for(name)]
        assert tokens == [None, "10", "20"], name
    assert {r["params"]["uid"] for r in sim.sim.requests_for("sessions")} == {"u1"}
    assert "id" in columns(loader_env["DESTINATION__DUCKDB__CREDENTIALS"], "blockrules"), "a list of rules keyed by id"
