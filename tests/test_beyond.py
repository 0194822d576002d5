"""Beyond the seed: events through the segment export, users, settings history, the key check.

End to end against the simulator on loopback, loading into DuckDB with plain dlt pipelines built
from the resource factories (the loader's wiring is tested with the function).
"""

from __future__ import annotations

import gzip
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List

import dlt
import pytest
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

from simulator import SimulatorServer, beyond
from source.errors import ResourceError, error_of
from source.events import (
    STATE_KEY,
    EventsSettings,
    ExportFileError,
    download_session,
    event_batches,
    events_hints,
    events_resource,
    read_records,
    restore_cursors,
    snapshot_cursors,
    window_bounds,
)
from source.history import history_hints, history_resources, history_versions
from source.key_check import check_key, forbidden_message, key_role
from source.settings import EXTRA_RESOURCE_NAMES, HISTORY_PATHS
from source.users import users_resource
from tests.helpers import API_KEY, query

DATASET = "beyond"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)  # the tests' clock
START = NOW - timedelta(hours=24 + 3)  # with the 24 h settle delay: three 1 h windows are due at NOW
HISTORY_TABLES = {name: NamingConvention().normalize_table_identifier(name) for name in HISTORY_PATHS}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def client(sim: SimulatorServer) -> RESTClient:
    session = Client(raise_for_status=False, status_codes=(429, 500, 502, 503, 504)).session
    return RESTClient(base_url=sim.url, auth=BearerTokenAuth(API_KEY), session=session)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "warehouse.duckdb")


def pipeline(db: str, folder: Path, name: str = "beyond") -> Any:
    return dlt.pipeline(
        pipeline_name=name, destination=dlt.destinations.duckdb(db), dataset_name=DATASET, pipelines_dir=str(folder)
    )


def events_settings(clock: datetime = NOW, **changes: Any) -> EventsSettings:
    return EventsSettings(**{"start": START.isoformat(), "poll_seconds": 0, "clock": lambda: clock, **changes})


def expected_windows(sim: SimulatorServer, count: int) -> Dict[datetime, int]:
    config = beyond.config_of(sim.sim)
    return {s: beyond.expected_events(config, s, e) for s, e in window_bounds(START.isoformat(), 1, count)}


def window_counts(db: str) -> Dict[datetime, int]:
    rows = query(db, f"select _window_start, count(*) from {DATASET}.events group by 1")
    return {start.astimezone(UTC): n for start, n in rows}


def has_table(db: str, table: str) -> bool:
    if not Path(db).exists():
        return False
    sql = f"select 1 from information_schema.tables where table_schema = '{DATASET}' and table_name = '{table}'"
    return bool(query(db, sql))


def events_state(p: Any) -> Dict[str, Any]:
    return p.state.get("sources", {}).get(p.default_schema_name, {}).get("resources", {}).get("events", {})


def failure(exc: BaseException) -> str:
    found = error_of(exc)
    return str(found if found is not None else exc)


# -- events ------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["ndjson", "json"])
def test_events_load_exact_counts_per_window(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path, file_format: str
) -> None:
    """Each finished window is exported once and loaded with exactly its events, from NDJSON or a
    JSON array; dotted custom-variable names load as columns."""
    beyond.configure(sim.sim, events_file_format=file_format, pending_polls=2)
    pipeline(db, tmp_path).run(events_resource(client, download_session(), events_settings(batch_rows=7)))

    expected = expected_windows(sim, 3)
    assert window_counts(db) == expected and all(expected.values())
    exports = beyond.exports_of(sim.sim)
    assert [(e["start"], e["end"]) for e in exports] == window_bounds(START.isoformat(), 1, 3)
    assert [e["polls"] for e in exports] == [3, 3, 3]  # two PENDING answers, then COMPLETED
    # `evt_order.items_real` is on every third event of an hour (simulator.beyond.event)
    with_items = sum(1 for s in expected for i in range(expected[s]) if i % 3 == 0)
    assert query(db, f"select count(evt_order_items_real) from {DATASET}.events") == [(with_items,)]
    assert query(db, f"select count(*) from {DATASET}.events where event_start is null") == [(0,)]


def test_reexported_window_replaces_the_earlier_load(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """Exporting windows again (late events included) replaces them: no duplicate rows."""
    pipeline(db, tmp_path).run(events_resource(client, download_session(), events_settings()))
    first = expected_windows(sim, 3)
    assert window_counts(db) == first

    beyond.configure(sim.sim, events_per_hour=20)  # late events: every window grew
    # a pipeline of another name has no cursor: it exports the same three windows again
    pipeline(db, tmp_path, name="beyond_again").run(events_resource(client, download_session(), events_settings()))
    again = expected_windows(sim, 3)
    assert window_counts(db) == again
    assert all(again[s] > first[s] for s in again)


def test_run_dying_mid_window_is_redone_next_run(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """A download that breaks off in window 2 fails the run; the next run loads every window exactly once."""
    beyond.configure(
        sim.sim, events_per_hour=600, events_gzip_level=0, broken_windows=[stamp(START + timedelta(hours=1))]
    )
    p = pipeline(db, tmp_path)
    with pytest.raises(PipelineStepFailed) as failed:
        p.run(events_resource(client, download_session(), events_settings(batch_rows=50)))
    assert "broke off" in failure(failed.value)
    assert STATE_KEY not in events_state(p)

    beyond.configure(sim.sim, broken_windows=[])
    p.run(events_resource(client, download_session(), events_settings(batch_rows=50)))
    assert window_counts(db) == expected_windows(sim, 3)
    duplicates = f"select count(*) - count(distinct (_window_start, event_start, indv_id)) from {DATASET}.events"
    assert query(db, duplicates) == [(0,)]


def test_failed_resource_dropped_by_the_loader_leaves_no_gap(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """Under a failure guard (the run goes on and the loader drops what the failed resource extracted),
    a window failing part-way sends the cursor back: window 1, extracted and dropped, is exported again."""
    from loader.pipeline import drop_extracted_tables

    beyond.configure(
        sim.sim, events_per_hour=600, events_gzip_level=0, broken_windows=[stamp(START + timedelta(hours=1))]
    )
    errors: List[BaseException] = []
    passed: List[datetime] = []

    def guard(batches: Iterator[List[Dict[str, Any]]]) -> Iterator[List[Dict[str, Any]]]:
        try:
            for batch in batches:
                passed.extend(row["_window_start"] for row in batch)
                yield batch
        except ResourceError as exc:
            errors.append(exc)

    p = pipeline(db, tmp_path)
    batches = event_batches(client, download_session(), events_settings(batch_rows=50))
    info = p.extract(dlt.resource(guard(batches), **events_hints()))
    assert errors and "broke off" in str(errors[0])
    windows = window_bounds(START.isoformat(), 1, 3)
    assert set(passed) == {windows[0][0], windows[1][0]}  # window 2 failed part-way through its rows
    assert drop_extracted_tables(p, info.loads_ids, ["events"]) > 0
    p.normalize()
    p.load()
    assert not has_table(db, "events")
    assert STATE_KEY not in events_state(p)

    beyond.configure(sim.sim, broken_windows=[])
    p.run(events_resource(client, download_session(), events_settings(batch_rows=50)))
    assert window_counts(db) == expected_windows(sim, 3)


def test_rows_dropped_after_the_extract_get_their_cursor_back(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """When the loader drops a resource's rows after the extract (normalize or load failed),
    `restore_cursors` puts the state back, locally and in the warehouse: the windows are exported again."""
    from loader.pipeline import drop_extracted_tables

    p = pipeline(db, tmp_path / "first")
    source_name = p.pipeline_name  # a resource run on its own: its state is under the pipeline's name
    before = snapshot_cursors(p, source_name, ["events"])
    info = p.extract(events_resource(client, download_session(), events_settings()))
    assert events_state(p)[STATE_KEY] == stamp(START + timedelta(hours=3))
    drop_extracted_tables(p, info.loads_ids, ["events"])  # as if its file had failed to normalize
    restore_cursors(p, source_name, before)
    p.normalize()
    p.load()
    assert STATE_KEY not in events_state(p) and not has_table(db, "events")

    cold = pipeline(db, tmp_path / "cold")  # the cursor restored from the warehouse is the rewound one
    cold.run(events_resource(client, download_session(), events_settings()))
    assert len(beyond.exports_of(sim.sim)) == 6
    assert window_counts(db) == expected_windows(sim, 3)


def test_cursor_survives_a_cold_start(sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path) -> None:
    """A new working folder restores the cursor from the warehouse: only the windows due since are exported."""
    pipeline(db, tmp_path / "first").run(events_resource(client, download_session(), events_settings()))
    assert len(beyond.exports_of(sim.sim)) == 3

    later = NOW + timedelta(hours=2)
    pipeline(db, tmp_path / "cold").run(events_resource(client, download_session(), events_settings(clock=later)))
    exports = beyond.exports_of(sim.sim)
    assert [e["start"] for e in exports[3:]] == [START + timedelta(hours=3), START + timedelta(hours=4)]
    assert window_counts(db) == expected_windows(sim, 5)


def test_backfill_is_bounded_per_run_and_continues(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """With five windows due and at most two per run, runs export 2, 2, 1 and then none."""
    p = pipeline(db, tmp_path)
    later = NOW + timedelta(hours=2)
    per_run = []
    for _ in range(4):
        before = len(beyond.exports_of(sim.sim))
        p.run(events_resource(client, download_session(), events_settings(clock=later, max_windows=2)))
        per_run.append(len(beyond.exports_of(sim.sim)) - before)
    assert per_run == [2, 2, 1, 0]
    assert window_counts(db) == expected_windows(sim, 5)


def test_download_never_carries_the_key(sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path) -> None:
    """The signed file URL is fetched without an Authorization header; a session with auth is refused."""
    pipeline(db, tmp_path).run(events_resource(client, download_session(), events_settings()))
    downloads = sim.sim.requests_for("events_download")
    assert [(r["status"], r["authorization"]) for r in downloads] == [(200, None)] * 3
    assert all(r["authorization"] == f"Bearer {API_KEY}" for r in sim.sim.requests_for("events"))

    with_key = download_session()
    with_key.headers["Authorization"] = f"Bearer {API_KEY}"
    with pytest.raises(ValueError, match="download session carries auth"):
        events_resource(client, with_key, events_settings())
    location = f"{sim.url}/storage/exports/se-1.gz?expires=9999999999&signature=x"
    with pytest.raises(ResourceError, match="refused to send an Authorization header"):
        download_session().get(location, headers={"Authorization": f"Bearer {API_KEY}"})
    assert len(sim.sim.arrivals_for("events_download")) == 3  # the refused request never left


@pytest.mark.parametrize(
    "fault",
    [
        {"expired_downloads": 1, "expired_status": 410},
        {"expired_downloads": 1, "expired_status": 403},
        {"expired_locations": 1},
    ],
)
def test_expired_location_is_asked_for_again(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path, fault: Dict[str, Any]
) -> None:
    """An expired signed URL (a 410/403 from storage, or an `expires` already past) is asked for again."""
    beyond.configure(sim.sim, **fault)
    pipeline(db, tmp_path).run(events_resource(client, download_session(), events_settings()))
    assert window_counts(db) == expected_windows(sim, 3)
    exports = beyond.exports_of(sim.sim)
    assert [e["results_asked"] for e in exports] == [2, 2, 2]
    assert [e["downloads"] for e in exports] == ([2, 2, 2] if "expired_downloads" in fault else [1, 1, 1])


def test_expired_location_is_asked_for_a_bounded_number_of_times(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """A location that is always expired fails the resource after `location_attempts` tries, saying why."""
    beyond.configure(sim.sim, expired_downloads=100)
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline(db, tmp_path).run(events_resource(client, download_session(), events_settings(location_attempts=3)))
    assert "in 3 tries of its location (the download answered HTTP 410)" in failure(failed.value)
    assert beyond.exports_of(sim.sim)[0]["results_asked"] == 3


def test_failed_export_fails_the_resource_with_its_error_details(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """A FAILED operation fails `events` with the operation's errorDetails and the window."""
    beyond.configure(sim.sim, failed_windows=[stamp(START)], failed_details="quota exceeded")
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline(db, tmp_path).run(events_resource(client, download_session(), events_settings()))
    message = failure(failed.value)
    assert "FAILED: quota exceeded" in message and stamp(START) in message
    assert not sim.sim.requests_for("events_download")


def test_export_refused_names_the_add_on_and_the_key_level(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """A 403 on the export says it needs the data export add-on and an Architect key; the run's
    message adds the role the key reported."""
    beyond.configure(sim.sim, export_status=403, me_role="USER")
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline(db, tmp_path).run(events_resource(client, download_session(), events_settings()))
    error = error_of(failed.value)
    assert isinstance(error, ResourceError) and error.status == 403
    assert "data export add-on" in error.reason and "Architect" in error.reason
    message = forbidden_message("events", key_role(client))
    assert "role USER" in message and "an Architect key and the plan's data export add-on" in message
    assert API_KEY not in message + error.reason


def test_deadline_stops_polling_and_starting_windows(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """At the run deadline polling stops and no window starts: nothing loads, the cursor stays, no error."""
    beyond.configure(sim.sim, pending_polls=1_000_000)
    p = pipeline(db, tmp_path)
    settings = events_settings(poll_seconds=0.02)
    p.run(events_resource(client, download_session(), settings, deadline=time.monotonic() + 0.3))
    assert len(beyond.exports_of(sim.sim)) == 1 and not sim.sim.requests_for("events_download")
    assert not has_table(db, "events")
    assert STATE_KEY not in events_state(p)

    p.run(events_resource(client, download_session(), settings, deadline=time.monotonic() - 1))
    assert len(beyond.exports_of(sim.sim)) == 1  # past the deadline: no export created


def test_export_that_stays_pending_fails_after_the_poll_timeout(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """An export still PENDING after `poll_timeout_seconds` fails, naming the setting to raise."""
    beyond.configure(sim.sim, pending_polls=1_000_000)
    settings = events_settings(poll_seconds=0.02, poll_timeout_seconds=0.2)
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline(db, tmp_path).run(events_resource(client, download_session(), settings))
    assert "still PENDING" in failure(failed.value)
    assert "SOURCES__ANALYTICS__EVENTS_POLL_TIMEOUT_SECONDS" in failure(failed.value)


def test_events_settings_are_checked(sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path) -> None:
    """Without a start the resource fails naming SOURCES__ANALYTICS__EVENTS_START; bad values name their setting."""
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline(db, tmp_path).run(events_resource(client, download_session(), EventsSettings()))
    assert "SOURCES__ANALYTICS__EVENTS_START" in failure(failed.value)
    assert not beyond.exports_of(sim.sim)
    with pytest.raises(ValueError, match="SOURCES__ANALYTICS__EVENTS_START"):
        EventsSettings(start="2025-03-01 00:00")
    with pytest.raises(ValueError, match="SOURCES__ANALYTICS__EVENTS_WINDOW_HOURS"):
        EventsSettings(start="2025-03-01T00:00:00Z", window_hours=30)
    with pytest.raises(ValueError, match="SOURCES__ANALYTICS__EVENTS_MAX_WINDOWS"):
        EventsSettings(start="2025-03-01T00:00:00Z", max_windows=0)


def test_export_file_that_is_not_gzip_fails(sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path) -> None:
    """A file without the gzip magic fails the resource instead of loading garbage (no signature in the error)."""
    beyond.configure(sim.sim, events_plain_file=True)
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline(db, tmp_path).run(events_resource(client, download_session(), events_settings()))
    assert "not gzip" in failure(failed.value) and "signature" not in failure(failed.value)


def _gz(text: str) -> io.BytesIO:
    return io.BytesIO(gzip.compress(text.encode()))


def test_read_records_streams_ndjson_and_json_arrays() -> None:
    """NDJSON (blank lines allowed) and JSON arrays (any layout, items larger than one read) give the same records."""
    records = [{"a": i, "evt_x.y_str": "v" * (i * 40_000)} for i in range(4)]  # up to 120 kB: spans reads
    ndjson = "\n" + "\n\n".join(json.dumps(r) for r in records) + "\n"
    for text in (ndjson, json.dumps(records, indent=2), json.dumps(records, separators=(",", ":"))):
        assert list(read_records(_gz(text))) == records
    for text in (" [ ] ", "", "\n\n"):
        assert list(read_records(_gz(text))) == []
    for text, problem in (
        ("[1, 2]", "where an object was expected"),
        ('{"a": 1}\n[1]', "not an object"),
        ('[{"a": 1}', "not closed"),
        ("<html>", "neither NDJSON nor a JSON array"),
    ):
        with pytest.raises(ExportFileError, match=problem):
            list(read_records(_gz(text)))
    with pytest.raises(ExportFileError, match="not gzip"):
        list(read_records(io.BytesIO(b'{"a": 1}')))


# -- users, history, /me -----------------------------------------------------------------------


def test_users_full_refresh_with_properties(sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path) -> None:
    """Every page of users is read (10 a page, `page_token`), and each run replaces the table."""
    p = pipeline(db, tmp_path)
    p.run(users_resource(client))
    assert query(db, f"select count(*), count(distinct id) from {DATASET}.users") == [(25, 25)]
    assert [r["params"].get("page_token") for r in sim.sim.requests_for("users")] == [None, "p10", "p20"]
    with_geo = sum(1 for i in range(25) if "properties" in beyond.user(i))
    assert query(db, f"select count(properties__address__geo__lat_real) from {DATASET}.users") == [(with_geo,)]
    tags = sum(len(beyond.user(i).get("properties", {}).get("tags_strs", [])) for i in range(25))
    assert query(db, f"select count(*) from {DATASET}.users__properties__tags_strs") == [(tags,)]

    beyond.configure(sim.sim, users=12)
    p.run(users_resource(client))
    assert query(db, f"select count(*) from {DATASET}.users") == [(12,)]


@pytest.mark.parametrize(
    "next_key, names",
    [
        ("nextPaginationToken", list(HISTORY_PATHS)),  # the API's schema: all six histories
        ("next_pagination_token", ["blockrules_history", "privacy_history"]),  # the docs' examples
    ],
)
def test_history_is_incremental_and_stops_paging_at_the_cursor(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path, next_key: str, names: List[str]
) -> None:
    """The histories load every version once, with either next-page key; later runs read only up
    to the stored cursor."""
    beyond.configure(sim.sim, history_next_key=next_key)
    p = pipeline(db, tmp_path)
    chosen = [r for r in history_resources(client, limit=10) if r.name in names]
    assert [r.name for r in chosen] == names

    def run() -> Dict[str, int]:
        before = {name: len(sim.sim.requests_for(name)) for name in names}
        p.run([r for r in history_resources(client, limit=10) if r.name in names])
        return {name: len(sim.sim.requests_for(name)) - before[name] for name in names}

    def versions() -> Dict[str, int]:
        return {name: query(db, f"select count(*) from {DATASET}.{HISTORY_TABLES[name]}")[0][0] for name in names}

    assert run() == {name: 3 for name in names}  # 25 versions, 10 a page
    assert versions() == {name: 25 for name in names}
    assert run() == {name: 1 for name in names}  # the first page reaches the cursor
    assert versions() == {name: 25 for name in names}

    beyond.configure(sim.sim, history={name: 28 for name in HISTORY_PATHS})  # three new versions each
    assert run() == {name: 1 for name in names}
    assert versions() == {name: 28 for name in names}
    newest = query(
        db, f"select max(metadata__last_updated), count(distinct metadata__last_updated) from {DATASET}.privacy_history"
    )
    assert newest[0][0].astimezone(UTC) == beyond.HISTORY_T0 + timedelta(hours=27) and newest[0][1] == 28


def test_history_failing_part_way_under_a_guard_loses_no_version(
    sim: SimulatorServer, client: RESTClient, db: str, tmp_path: Path
) -> None:
    """A history read that fails on page 2, its page 1 dropped by the loader, keeps the old cursor:
    the next run reads every new version."""
    from loader.pipeline import drop_extracted_tables

    name, table = "geosettings_history", HISTORY_TABLES["geosettings_history"]
    p = pipeline(db, tmp_path)
    p.run(history_resources(client, limit=10)[2])
    assert query(db, f"select count(*) from {DATASET}.{table}") == [(25,)]

    beyond.configure(sim.sim, history={name: 50}, history_broken_page=2)  # 25 new versions, page 2 broken
    errors: List[BaseException] = []

    def guard(pages: Iterator[List[Dict[str, Any]]]) -> Iterator[List[Dict[str, Any]]]:
        try:
            yield from pages
        except Exception as exc:
            errors.append(exc)

    info = p.extract(dlt.resource(guard(history_versions(client, name, 10)), **history_hints(name)))
    assert errors and getattr(error_of(errors[0]), "status", None) == 400
    drop_extracted_tables(p, info.loads_ids, [table])
    p.normalize()
    p.load()
    assert query(db, f"select count(*) from {DATASET}.{table}") == [(25,)]

    beyond.configure(sim.sim, history_broken_page=0)
    p.run(history_resources(client, limit=10)[2])
    assert query(db, f"select count(*), count(distinct metadata__last_updated) from {DATASET}.{table}") == [(50, 50)]


def test_me_reports_the_role_and_never_raises(sim: SimulatorServer, client: RESTClient) -> None:
    """`GET /me` gives the key's role; a failing check gives None and a reason, never an exception."""
    assert key_role(client) == "ARCHITECT"
    beyond.configure(sim.sim, me_role="VIEW_ONLY")
    assert key_role(client) == "VIEW_ONLY"
    assert sim.sim.requests_for("me")[-1]["authorization"] == f"Bearer {API_KEY}"

    beyond.configure(sim.sim, me_status=500)
    no_retry = Client(raise_for_status=False, status_codes=()).session
    failed = check_key(RESTClient(base_url=sim.url, auth=BearerTokenAuth(API_KEY), session=no_retry))
    assert failed.role is None and failed.reason == "GET /me answered HTTP 500"
    wrong_key = RESTClient(base_url=sim.url, auth=BearerTokenAuth("not-the-key"), session=no_retry)
    assert check_key(wrong_key).status == 401
    nothing_listens = RESTClient(base_url="http://127.0.0.1:9", session=Client(request_max_attempts=1).session)
    assert key_role(nothing_listens) is None
    assert "the key's role is unknown" in forbidden_message("blockrules_history", None)
    assert "blockrules_history needs a Standard key" in forbidden_message("blockrules_history", None)
    assert "privacy_history needs an Architect key" in forbidden_message("privacy_history", "USER")


def test_extra_resource_names_match_the_factories(client: RESTClient) -> None:
    """The names in the settings table are the names the factories give their resources."""
    built = [
        events_resource(client, download_session(), events_settings()),
        users_resource(client),
        *history_resources(client),
    ]
    assert tuple(r.name for r in built) == EXTRA_RESOURCE_NAMES
