"""Beyond the seed through the function: which run loads events, users and settings history, the key
check before the run, and the 403 that names the key's role. (The resources themselves, window by
window: tests/test_beyond.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Dict

import pytest

from simulator import beyond
from source.events import window_bounds
from tests.helpers import SEED_RESOURCES, post, table_counts

BEYOND_NAMES = (
    "events",
    "users",
    "blockrules_history",
    "domainsettings_history",
    "geosettings_history",
    "privacy_history",
    "recordingfeatures_history",
    "sessionTargetingRules_history",
)


@pytest.fixture
def events_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """Events from 30 h ago, two 1 h windows per run, no waiting between polls."""
    start = (datetime.now(UTC) - timedelta(hours=30)).replace(minute=0, second=0, microsecond=0)
    monkeypatch.setenv("SOURCES__ANALYTICS__EVENTS_START", start.isoformat())
    monkeypatch.setenv("SOURCES__ANALYTICS__EVENTS_MAX_WINDOWS", "2")
    monkeypatch.setenv("SOURCES__ANALYTICS__EVENTS_POLL_SECONDS", "0")
    return start.isoformat()


def test_a_body_naming_resources_beyond_the_seed_loads_them(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, events_env: str
) -> None:
    status, body = post(fresh_service, ["events", "users", "blockrules_history", "sessionTargetingRules_history"])

    assert status == 200, body
    config = beyond.config_of(sim.sim)
    windows = list(window_bounds(events_env, 1, 2))
    counts = table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])
    assert counts["events"] == sum(beyond.expected_events(config, s, e) for s, e in windows)
    assert counts["users"] == 25
    assert counts["blockrules_history"] == 25 and counts["session_targeting_rules_history"] == 25
    assert not {t for t in counts if t.startswith(("sessions", "segments"))}
    assert set(body["resources"]) == {"events", "users", "blockrules_history", "sessionTargetingRules_history"}


def test_extra_resources_setting_adds_them_to_the_default_run(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, expected: Dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__EXTRA_RESOURCES", "users, geosettings_history")

    status, body = post(fresh_service)

    assert status == 200, body
    assert list(body["resources"]) == [*SEED_RESOURCES, "users", "geosettings_history"]
    counts = table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"])
    assert {t: n for t, n in counts.items() if t in expected} == expected
    assert counts["users"] == 25 and counts["geosettings_history"] == 25


def test_the_default_run_is_the_seeds_ten(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, expected: Dict[str, int]
) -> None:
    status, body = post(fresh_service)

    assert status == 200, body
    assert list(body["resources"]) == list(SEED_RESOURCES)
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == expected
    assert {r["path"] for r in sim.sim.requests} - {"/me"} == {
        "/sessions/v2",
        "/segments/v1",
        "/operations/v1",
        "/settings/recording/v1/blocking",
        "/settings/recording/v1/domain",
        "/settings/recording/v1/geo",
        "/settings/recording/v1/features",
        "/settings/recording/v1/targeting",
        "/webhooks/v1/endpoints",
        "/webhooks/v1/event-types",
    }


def test_an_unknown_name_gets_a_400_listing_every_valid_name(fresh_service: Any) -> None:
    status, body = post(fresh_service, ["user"])

    assert status == 400
    assert all(name in body["error"] for name in SEED_RESOURCES + BEYOND_NAMES)


def test_an_unknown_extra_resources_name_is_a_500_naming_the_setting(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__EXTRA_RESOURCES", "users,sessions")

    status, body = post(fresh_service)

    assert status == 500 and "SOURCES__ANALYTICS__EXTRA_RESOURCES" in body["error"] and "['sessions']" in body["error"]
    assert sim.sim.requests == []


def test_the_key_check_runs_once_and_a_403_names_the_role_and_the_level_needed(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, capsys: Any
) -> None:
    beyond.configure(sim.sim, me_role="VIEW_ONLY", forbidden=["users"])

    status, body = post(fresh_service, ["users", "segments"])

    assert status == 502, body
    assert body["key_check"] == {"role": "VIEW_ONLY", "status": 200, "reason": None}
    reason = body["resources"]["users"]["reason"]
    assert "HTTP 403" in reason and "VIEW_ONLY" in reason and "Architect" in reason
    assert body["resources"]["segments"]["status"] == "loaded"
    assert [r["path"] for r in sim.sim.requests].count("/me") == 1
    assert '"role": "VIEW_ONLY"' in capsys.readouterr().out


def test_a_key_check_that_fails_is_not_fatal(sim: Any, loader_env: Dict[str, str], fresh_service: Any) -> None:
    beyond.configure(sim.sim, me_status=500)

    status, body = post(fresh_service, ["segments"])

    assert status == 200, body
    assert body["key_check"]["role"] is None and body["key_check"]["status"] == 500
    assert [r["path"] for r in sim.sim.requests].count("/me") == 1  # one attempt, no retries


def test_events_asked_for_without_a_start_fail_naming_the_setting(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any
) -> None:
    status, body = post(fresh_service, ["events", "segments"])

    assert status == 502, body
    assert "SOURCES__ANALYTICS__EVENTS_START" in body["resources"]["events"]["reason"]
    assert body["resources"]["segments"]["status"] == "loaded"


def test_a_bad_events_setting_is_a_500_naming_it(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__ANALYTICS__EVENTS_START", "yesterday")

    status, body = post(fresh_service, ["events"])

    assert status == 500 and "SOURCES__ANALYTICS__EVENTS_START" in body["error"]


def test_beyond_the_seed_into_bigquery_with_a_second_run_continuing_the_backfill(
    sim: Any, bigquery_env: Dict[str, str], bigquery_emulator: Any, fresh_service: Any, events_env: str
) -> None:
    """The same resources through dlt's BigQuery destination (the emulator): exact counts, and the
    events cursor and the history cursors stored in the warehouse carry the next run on."""
    client, dataset = bigquery_emulator.client(), bigquery_env["DATASET_NAME"]

    def count(table: str) -> int:
        sql = f"select count(*) as n from `{bigquery_emulator.project}.{dataset}.{table}`"
        return int(next(iter(client.query(sql).result()))["n"])

    names = ["events", "users", "blockrules_history"]
    first = post(fresh_service, names)
    second = post(fresh_service, names)

    assert (first[0], second[0]) == (200, 200), (first[1].get("error"), second[1].get("error"))
    config = beyond.config_of(sim.sim)
    windows = list(window_bounds(events_env, 1, 4))  # two windows a run
    assert count("events") == sum(beyond.expected_events(config, s, e) for s, e in windows)
    assert (count("users"), count("blockrules_history")) == (25, 25)
    assert [w["start"] for w in beyond.exports_of(sim.sim)] == [s for s, _ in windows]
