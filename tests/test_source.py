"""The dlt source against the seed's contract: paths, selectors, keys, auth, pagination, retries,
settings; unit-level HTTP through `responses`."""

from __future__ import annotations

import functools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import dlt
import pytest
import responses
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.extract.exceptions import ResourceExtractionError

from source import RESOURCE_NAMES, analytics_source
from source.errors import UpstreamHTTPError, error_of
from source.settings import RESOURCES

BASE = "https://api.example.test"
KEY = "unit-key-3b9d"
SEED_TABLE = {  # the seed document's table, written out again on purpose: the contract
    "sessions": ("/sessions/v2", "sessions"),
    "segments": ("/segments/v1", "segments"),
    "operations": ("/operations/v1", "operations"),
    "blockrules": ("/settings/recording/v1/blocking", "blockrules"),
    "domainsettings": ("/settings/recording/v1/domain", "domainsettings"),
    "geosettings": ("/settings/recording/v1/geo", "geosettings"),
    "recordingfeatures": ("/settings/recording/v1/features", "recordingfeatures"),
    "sessionTargetingRules": ("/settings/recording/v1/targeting", "sessionTargetingRules"),
    "webhooks": ("/webhooks/v1/endpoints", "webhooks"),
    "eventDefs": ("/webhooks/v1/event-types", "eventDefs"),
}
SEED_RETRIED = (429, 500, 502, 503, 504)  # the seed's "Retry Logic" statuses, written out on purpose


def make_source(**kwargs: Any) -> Any:
    return analytics_source(base_url=BASE, uid="u1", api_key=KEY, **kwargs)


def api_calls() -> List[Any]:
    """The requests to this file's API. `responses` patches requests in every thread: a reading thread
    an earlier test left behind (on the simulator's loopback address) must not count here."""
    return [c for c in responses.calls if c.request.url.startswith(BASE)]


def page(selector: str, ids: List[int], token: str = None) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        selector: [{"id": f"r{i}", "name": f"n{i}", "createdTime": "2026-01-01T00:00:00Z"} for i in ids]
    }
    if token:
        body["nextPaginationToken"] = token
    return body


def test_resource_table_is_the_seeds() -> None:
    assert tuple(SEED_TABLE) == RESOURCE_NAMES
    assert {r["name"]: (r["endpoint"]["path"], r["endpoint"]["data_selector"]) for r in RESOURCES} == SEED_TABLE


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in SEED_TABLE])
@responses.activate
def test_each_resource_path_selector_key_and_auth(name: str) -> None:
    path, selector = SEED_TABLE[name]
    responses.get(
        f"{BASE}{path}",
        json=page(selector, [1, 2], token="t2"),
        match=[responses.matchers.query_param_matcher({"uid": "u1"} if name == "sessions" else {})],
    )
    responses.get(
        f"{BASE}{path}",
        json=page(selector, [3]),
        match=[
            responses.matchers.query_param_matcher(
                {**({"uid": "u1"} if name == "sessions" else {}), "pagination_token": "t2"}
            )
        ],
    )
    responses.get(re.compile(f"{BASE}/.*"), json={"unexpected": True}, status=418)  # anything else fails the test

    source = make_source().with_resources(name)
    rows = list(source)
    resource = source.resources[name]

    assert [r["id"] for r in rows] == ["r1", "r2", "r3"]
    assert resource.write_disposition == "merge"
    assert resource.compute_table_schema()["columns"]["id"]["primary_key"] is True
    assert [c.request.url for c in api_calls()] == [
        f"{BASE}{path}" + ("?uid=u1" if name == "sessions" else ""),
        f"{BASE}{path}?" + ("uid=u1&" if name == "sessions" else "") + "pagination_token=t2",
    ], "pagination followed to the end, then stopped"
    assert all(c.request.headers["Authorization"] == f"Bearer {KEY}" for c in api_calls())


@responses.activate
def test_pagination_follows_the_cursor_to_the_end() -> None:
    pages = 7
    for n in range(pages):
        params = {"uid": "u1", **({"pagination_token": f"p{n}"} if n else {})}
        token = f"p{n + 1}" if n < pages - 1 else None
        responses.get(
            f"{BASE}/sessions/v2",
            json=page("sessions", [n * 2, n * 2 + 1], token),
            match=[responses.matchers.query_param_matcher(params)],
        )

    rows = list(make_source().with_resources("sessions"))

    assert len(rows) == pages * 2
    assert [c.request.params.get("pagination_token") for c in api_calls()] == [None] + [
        f"p{n}" for n in range(1, pages)
    ]


@pytest.mark.parametrize("status", [pytest.param(s, id=str(s)) for s in SEED_RETRIED])
@responses.activate
def test_retried_statuses_recover_within_three_retries(status: int, sleeps: List[float]) -> None:
    for _ in range(3):
        responses.get(f"{BASE}/segments/v1", status=status, json={"error": "x"})
    responses.get(f"{BASE}/segments/v1", json=page("segments", [1]))

    rows = list(make_source().with_resources("segments"))

    assert [r["id"] for r in rows] == ["r1"]
    assert len(api_calls()) == 4
    assert sleeps == [2, 4, 8], "backoff factor 2: 2 s, 4 s, 8 s"


@pytest.mark.parametrize("status", [pytest.param(s, id=str(s)) for s in SEED_RETRIED])
@responses.activate
def test_retried_statuses_give_up_after_four_attempts(status: int, sleeps: List[float]) -> None:
    responses.get(f"{BASE}/operations/v1", status=status, json={"error": "x"})

    with pytest.raises(ResourceExtractionError) as failure:
        list(make_source().with_resources("operations"))

    err = error_of(failure.value)
    assert isinstance(err, UpstreamHTTPError)
    assert (err.resource, err.status, err.path) == ("operations", status, "/operations/v1")
    assert f"HTTP {status}" in str(err) and "/operations/v1" in str(err)
    assert len(api_calls()) == 4, "3 retries = 4 attempts"
    assert len(sleeps) == 3


@pytest.mark.parametrize("status", [pytest.param(s, id=str(s)) for s in (400, 401, 403, 404, 501)])
@responses.activate
def test_other_statuses_fail_at_once(status: int, sleeps: List[float]) -> None:
    responses.get(f"{BASE}/webhooks/v1/endpoints", status=status, json={"error": "x"})

    with pytest.raises(ResourceExtractionError) as failure:
        list(make_source().with_resources("webhooks"))

    err = error_of(failure.value)
    assert (err.resource, err.status, err.path) == ("webhooks", status, "/webhooks/v1/endpoints")
    assert "resource 'webhooks'" in str(err)
    assert len(api_calls()) == 1 and sleeps == []
    if status in (401, 403):
        assert "API key was rejected" in str(err)
    assert KEY not in str(failure.value)


@responses.activate
def test_retry_after_is_honoured(sleeps: List[float]) -> None:
    responses.get(f"{BASE}/segments/v1", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/segments/v1", json=page("segments", [1]))

    assert len(list(make_source().with_resources("segments"))) == 1
    assert sleeps == [7]


@responses.activate
def test_no_request_starts_once_the_run_has_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reading thread in a retry's back-off when the run answers sends nothing after it wakes."""
    from dlt.sources.helpers.requests import retry

    from source.analytics import resolve_source_config
    from source.build import RunOptions, build_source

    options = RunOptions()
    # the run ends while the reading thread waits out its first back-off
    monkeypatch.setattr(retry, "Retrying", functools.partial(retry.Retrying, sleep=lambda _: options.cancel.set()))
    responses.get(f"{BASE}/segments/v1", status=503)
    responses.get(f"{BASE}/segments/v1", json=page("segments", [1]))
    config = resolve_source_config(base_url=BASE, uid="u1", api_key=KEY)

    with pytest.raises(ResourceExtractionError) as failure:
        list(build_source(config, options).with_resources("segments"))

    assert "the run ended while the resource was still reading" in str(failure.value)
    assert len(api_calls()) == 1, "the retry after the run ended must not be sent"


@pytest.mark.parametrize(
    "env, calls, waits",
    [
        pytest.param({"RUNTIME__REQUEST_MAX_ATTEMPTS": "2"}, 2, [2], id="max-attempts-2"),
        pytest.param({"RUNTIME__REQUEST_BACKOFF_FACTOR": "0.5"}, 4, [0.5, 1, 2], id="backoff-0.5"),
    ],
)
@responses.activate
def test_retry_policy_overridden_by_dlt_runtime_env(
    env: Dict[str, str], calls: int, waits: List[float], sleeps: List[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    responses.get(f"{BASE}/segments/v1", status=503)

    with pytest.raises(ResourceExtractionError):
        list(make_source().with_resources("segments"))

    assert len(api_calls()) == calls
    assert sleeps == waits


@pytest.mark.parametrize("missing", ["base_url", "uid", "api_key"])
def test_missing_setting_names_it_and_its_env_var(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    present = {"base_url": BASE, "uid": "u1", "api_key": KEY}
    for name in present:
        monkeypatch.delenv(f"SOURCES__ANALYTICS__{name.upper()}", raising=False)
    present.pop(missing)

    with pytest.raises(ConfigFieldMissingException) as failure:
        analytics_source(**present)

    assert missing in failure.value.fields
    assert f"SOURCES__ANALYTICS__{missing.upper()}" in str(failure.value)
    assert KEY not in str(failure.value)


def test_settings_resolve_from_dlt_env_vars(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import API_KEY

    monkeypatch.setenv("SOURCES__ANALYTICS__BASE_URL", sim.url)
    monkeypatch.setenv("SOURCES__ANALYTICS__UID", "env-uid")
    monkeypatch.setenv("SOURCES__ANALYTICS__API_KEY", API_KEY)

    rows = list(analytics_source().with_resources("sessions"))

    assert len(rows) == sim.sim.config.rows["sessions"]
    assert {r["params"]["uid"] for r in sim.sim.requests} == {"env-uid"}


def test_a_netrc_entry_for_the_api_host_does_not_replace_the_key(
    sim: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would send the `.netrc` login instead of the key's Authorization header."""
    from tests.helpers import API_KEY

    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-key\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))

    rows = list(analytics_source(base_url=sim.url, uid="u1", api_key=API_KEY).with_resources("segments"))

    assert len(rows) == sim.sim.config.rows["segments"]
    assert {r["authorization"] for r in sim.sim.requests} == {f"Bearer {API_KEY}"}


def test_each_request_sent_calls_the_hook_once_while_it_is_in_flight(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`client.request_sent_hook` (set by a reading process) is called once per request, inside it."""
    from source import client
    from source.configuration import Runtime
    from tests.helpers import API_KEY

    calls: List[Any] = []
    in_flight: List[Any] = [None]  # the request this test is inside of
    this_thread = threading.get_ident()  # a reading thread an earlier test left behind may send too

    def hook() -> None:
        if threading.get_ident() == this_thread:
            calls.append(in_flight[0])

    monkeypatch.setattr(client, "request_sent_hook", hook)
    session = client.retrying_session(Runtime(), sim.url, lambda: None, None)

    for n in range(2):
        in_flight[0] = n
        answer = session.get(f"{sim.url}/segments/v1", headers={"Authorization": f"Bearer {API_KEY}"})
        in_flight[0] = None
        assert answer.status_code == 200

    assert calls == [0, 1]


class _RecordingProxy(BaseHTTPRequestHandler):
    """An HTTP proxy that answers every request itself with one page of segments."""

    seen: List[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)  # a proxy is sent the absolute URL
        body = json.dumps(page("segments", [1])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    _RecordingProxy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_environment_s_proxy_carries_the_api_s_requests(proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy variables apply as requests applies them, though the session reads them only once."""
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    base = "http://127.0.0.1:9"  # nothing listens there (discard port): reached through the proxy only

    rows = list(analytics_source(base_url=base, uid="u1", api_key=KEY).with_resources("segments"))

    assert [r["id"] for r in rows] == ["r1"]
    assert _RecordingProxy.seen == [f"{base}/segments/v1"]


def test_no_proxy_sends_the_api_s_requests_direct(sim: Any, proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import API_KEY

    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    rows = list(analytics_source(base_url=sim.url, uid="u1", api_key=API_KEY).with_resources("segments"))

    assert len(rows) == sim.sim.config.rows["segments"]
    assert _RecordingProxy.seen == []


def test_full_load_into_duckdb_exact_counts_then_merge(
    loader_env: Dict[str, str], sim: Any, expected: Dict[str, int], tmp_path: Any
) -> None:
    from tests.helpers import API_KEY, table_counts

    db = str(tmp_path / "direct.duckdb")
    pipeline = dlt.pipeline(
        "direct", destination=dlt.destinations.duckdb(db), dataset_name="analytics", pipelines_dir=str(tmp_path / "p")
    )

    pipeline.run(analytics_source())
    first = table_counts(db)
    requests_first = len(sim.sim.requests)
    pipeline.run(analytics_source())

    assert first == expected
    assert table_counts(db) == expected, "second load merges on the key: no duplicates"
    assert requests_first == sum(-(-n // 10) for n in sim.sim.config.rows.values())  # pages of 10
    assert {r["authorization"] for r in sim.sim.requests} == {f"Bearer {API_KEY}"}
    assert {r["params"].get("uid") for r in sim.sim.requests_for("sessions")} == {"u1"}
    assert all("uid" not in r["params"] for r in sim.sim.requests if r["resource"] != "sessions")


def test_resources_are_extracted_concurrently(loader_env: Dict[str, str], sim: Any) -> None:
    sim.sim.configure(latency_ms=50, page_size=5)  # five pages of 50 ms per resource

    list(analytics_source())

    firsts = [min(r["at"] for r in sim.sim.requests_for(n)) for n in SEED_TABLE]
    lasts = [max(r["at"] for r in sim.sim.requests_for(n)) for n in SEED_TABLE]
    # every resource had started before any had finished its five pages
    assert max(firsts) < min(lasts)


def test_with_resources_selects_a_subset(loader_env: Dict[str, str], sim: Any) -> None:
    rows = list(analytics_source().with_resources("segments", "webhooks"))

    assert len(rows) == 50
    assert {r["resource"] for r in sim.sim.requests} == {"segments", "webhooks"}


@pytest.mark.parametrize(
    "key, shape", [pytest.param({"value": "r2"}, "an object", id="object"), pytest.param(["r2"], "a list", id="list")]
)
@responses.activate
def test_a_primary_key_that_is_not_a_value_fails_the_resource_naming_it(key: Any, shape: str) -> None:
    """dlt would flatten it into other columns and leave the key column empty."""
    body = page("segments", [1, 2, 3])
    body["segments"][1]["id"] = key
    responses.get(f"{BASE}/segments/v1", json=body)

    with pytest.raises(ResourceExtractionError) as failure:
        list(make_source().with_resources("segments"))

    err = error_of(failure.value)
    assert (err.resource, err.path, err.page) == ("segments", "/segments/v1", 1)
    assert err.reason.startswith(
        f"1 of 3 records on page 1 of GET /segments/v1 have a primary key 'id' that is {shape}, not a value; "
        """set the key with [sources.analytics.resources.segments] primary_key = "<field>" in .dlt/config.toml"""
    ), err.reason
