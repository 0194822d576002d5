"""The simulator's endpoints beyond the seed: the events export flow, users, settings history, `/me`.

    POST /segments/v1/exports                      -> {"operationId"}
    GET  /operations/v1/{id}                       -> PENDING (`pending_polls` times), then COMPLETED | FAILED
    GET  /search/v1/exports/{id}/results           -> {"location", "expires"}
    GET  /storage/exports/{id}.gz?expires=&signature=   the file: no key, refuses an Authorization header
    GET  /v2/users                                 -> 10 per page, `page_token` / `next_page_token`
    GET  /settings/recording/v1/{object}/history   -> `versions` newest first, either next-page spelling
    GET  /me                                       -> {"email", "orgId", "role"}

Settings live in `SimConfig.beyond` (a dict of `BeyondConfig` fields; `configure()` checks them).
Events are a pure function of time and config: `expected_events(config, start, end)` is the exact
count of an export of `[start, end)`. The API endpoints check the key like `Simulator.answer`; every
request goes into the simulator's request log (`resource` is the resource name; downloads are
`events_download`, with the `authorization` header they carried, if any).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import threading
import time
import weakref
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from source.settings import EXTRA_PATHS, HISTORY_PATHS, ME_PATH

HOUR_MS = 3_600_000
EXPORTS_PATH = EXTRA_PATHS["events"]
OPERATION_PREFIX = "/operations/v1/"
RESULTS_PREFIX = "/search/v1/exports/"
DOWNLOAD_PREFIX = "/storage/exports/"
USERS_PATH = EXTRA_PATHS["users"]
USERS_PAGE = 10  # a support answer: 10 users per page, no page size parameter
HISTORY_BY_PATH = {path: name for name, path in HISTORY_PATHS.items()}
HISTORY_T0 = datetime(2024, 1, 1, tzinfo=UTC)  # the oldest version of every settings object
EVENT_TYPES = ("click", "pageview", "navigate", "custom", "input")
NEXT_PAGE_SPELLINGS = ("nextPaginationToken", "next_pagination_token")


@dataclass
class BeyondConfig:
    """What the endpoints beyond the seed serve (all deterministic).

    Events: hour `h` (hours since the epoch) holds `events_per_hour + (7 h + events_seed) % events_spread`
    events, evenly spaced; an export of `[start, end)` holds those whose EventStart is in it.
    """

    events_per_hour: int = 12
    events_spread: int = 5
    events_seed: int = 0
    events_file_format: str = ""  # "" as asked by the export; "ndjson" | "json" (an array) whatever was asked
    events_plain_file: bool = False  # serve the file without gzip (a broken storage)
    events_gzip_level: int = 1  # 0: stored, not compressed (a file larger than the reader's buffer)
    pending_polls: int = 2  # PENDING answers of each operation before it ends
    failed_windows: List[str] = field(default_factory=list)  # exports starting at these times end FAILED
    failed_details: str = "export failed: internal error while building the file"
    expired_locations: int = 0  # the first N results answers of each export carry an `expires` in the past
    expired_downloads: int = 0  # the first N downloads of each export answer `expired_status`
    expired_status: int = 410
    broken_windows: List[str] = field(default_factory=list)  # the downloads of these windows break off mid-file
    auth_refusal_status: int = 400  # the download URL's answer to a request carrying Authorization
    export_status: int = 0  # non-zero: POST /segments/v1/exports answers it (e.g. 403: no export add-on)
    segments: List[str] = field(default_factory=lambda: ["everyone"])
    users: int = 25
    history: Dict[str, int] = field(default_factory=lambda: {name: 25 for name in HISTORY_PATHS})
    history_next_key: str = "nextPaginationToken"  # or "next_pagination_token" (the docs' examples)
    history_broken_page: int = 0  # 1-based: this page of every history answers 400 (0: none)
    forbidden: List[str] = field(default_factory=list)  # resources answering 403 (the key's level is too low)
    me_role: str = "ARCHITECT"
    me_status: int = 200

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> BeyondConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown simulator beyond settings {sorted(unknown)}; known: {sorted(known)}")
        config = cls(**data)
        if config.history_next_key not in NEXT_PAGE_SPELLINGS:
            raise ValueError(f"history_next_key must be one of {NEXT_PAGE_SPELLINGS}")
        if config.events_file_format not in ("", "ndjson", "json"):
            raise ValueError("events_file_format must be '', 'ndjson' or 'json'")
        return config


def configure(sim: Any, **changes: Any) -> BeyondConfig:
    """Change some `BeyondConfig` fields of a running `Simulator` (checked first)."""
    merged = BeyondConfig.from_dict({**sim.config.beyond, **changes})
    sim.configure(beyond=asdict(merged))
    return merged


def config_of(sim: Any) -> BeyondConfig:
    return BeyondConfig.from_dict(sim.config.beyond)


# -- events ------------------------------------------------------------------------------------


def _hour_count(config: BeyondConfig, hour: int) -> int:
    spread = (7 * hour + config.events_seed) % config.events_spread if config.events_spread > 0 else 0
    return max(0, config.events_per_hour + spread)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _event_times(config: BeyondConfig, start_ms: int, end_ms: int) -> Iterator[Tuple[int, int, int]]:
    """(hour, index in hour, EventStart ms) of every event in `[start_ms, end_ms)`."""
    for hour in range(start_ms // HOUR_MS, -(-end_ms // HOUR_MS)):
        n = _hour_count(config, hour)
        for i in range(n):
            at = hour * HOUR_MS + i * HOUR_MS // n
            if start_ms <= at < end_ms:
                yield hour, i, at


def expected_events(config: BeyondConfig, start: datetime, end: datetime) -> int:
    """Exactly how many events an export of `[start, end)` holds."""
    return sum(1 for _ in _event_times(config, _ms(start), _ms(end)))


def event(hour: int, i: int, at_ms: int) -> Dict[str, Any]:
    """One event, sparse: optional fields and custom variables (dotted names too) only on some."""
    user = (hour * 31 + i) % 97
    record: Dict[str, Any] = {
        "IndvId": 5_000_000 + user,
        "UserId": 7_000_000 + user,
        "SessionId": 9_000_000 + (hour * 13 + i // 4) % 1000,
        "PageId": 11_000_000 + (hour * 17 + i // 2) % 1000,
        "EventStart": datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z",
        "EventType": EVENT_TYPES[i % len(EVENT_TYPES)],
        "PageUrl": f"https://shop.example.com/p/{i % 11}",
        "PageBrowser": "Chrome" if i % 2 else "Firefox",
    }
    if i % 2 == 0:
        record["EventTargetText"] = f"Button {i % 5}"
        record["EventSessionOffset"] = i * 1000
    if i % 3 == 0:
        record["evt_order.items_real"] = round(i * 1.5, 2)
    if i % 4 == 3:
        record["EventCustomName"] = "checkout"
        record["evt_order.total_real"] = 10.0 + i
    if i % 5 == 0:
        record["user_plan_str"] = "pro" if i % 10 else "free"
    if i % 7 == 0:
        record["page_foobar_str"] = f"bar{i % 3}"
    return record


def events_file(config: BeyondConfig, start_ms: int, end_ms: int, file_format: str) -> bytes:
    """The export file: gzip of NDJSON lines or of one JSON array (built as a stream)."""
    out = io.BytesIO()
    sink: Any = out
    if not config.events_plain_file:
        sink = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=config.events_gzip_level)
    array = file_format == "json"
    if array:
        sink.write(b"[")
    for n, (hour, i, at) in enumerate(_event_times(config, start_ms, end_ms)):
        line = json.dumps(event(hour, i, at)).encode()
        if array:
            sink.write((b",\n" if n else b"\n") + line)
        else:
            sink.write(line + b"\n")
    if array:
        sink.write(b"\n]\n")
    if sink is not out:
        sink.close()
    return out.getvalue()


@dataclass
class _Export:
    operation_id: str
    export_id: str
    start: datetime
    end: datetime
    file_format: str
    polls: int = 0
    results_asked: int = 0
    downloads: int = 0


class _State:
    """Exports made so far (per simulator instance)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exports: Dict[str, _Export] = {}  # by operation id
        self.by_export_id: Dict[str, _Export] = {}
        self.counter = 0


_STATES: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(sim: Any) -> _State:
    with _STATES_LOCK:
        state = _STATES.get(sim)
        if state is None:
            state = _STATES[sim] = _State()
        return state


def exports_of(sim: Any) -> List[Dict[str, Any]]:
    """The exports created so far: window, polls, results asked, downloads (for tests)."""
    state = _state(sim)
    with state.lock:
        return [
            {
                "start": e.start,
                "end": e.end,
                "polls": e.polls,
                "results_asked": e.results_asked,
                "downloads": e.downloads,
                "format": e.file_format,
            }
            for e in state.exports.values()
        ]


def _signature(export_id: str, expires: int) -> str:
    return hashlib.sha256(f"sim-signing-key:{export_id}:{expires}".encode()).hexdigest()[:32]


def _parse_time(value: Any) -> Optional[datetime]:
    try:
        parsed = datetime.fromisoformat(str(value).replace("z", "Z"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- dispatch ----------------------------------------------------------------------------------


def resource_of(path: str) -> Optional[str]:
    """The resource a path belongs to, for the request log; None: not served here."""
    if path == EXPORTS_PATH or path.startswith(OPERATION_PREFIX) or path.startswith(RESULTS_PREFIX):
        return "events"
    if path.startswith(DOWNLOAD_PREFIX):
        return "events_download"
    if path == USERS_PATH:
        return "users"
    if path in HISTORY_BY_PATH:
        return HISTORY_BY_PATH[path]
    if path == ME_PATH:
        return "me"
    return None


def serves(path: str) -> bool:
    """True for the paths this module answers (the server hands them over)."""
    return resource_of(path) is not None


def handle(handler: Any, method: str) -> None:
    """Answer one request of the server's handler (`simulator.server._Handler`) and log it."""
    sim = handler.sim
    url = urlsplit(handler.path)
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    headers = {k.lower(): v for k, v in handler.headers.items()}
    length = int(headers.get("content-length") or 0)
    body = handler.rfile.read(length) if length else b""
    resource = resource_of(url.path)
    entry = {
        "method": method,
        "path": url.path,
        "resource": resource,
        "params": query,
        "authorization": headers.get("authorization"),
        "at": time.time(),
    }
    sim.arrived(dict(entry))
    started = time.monotonic()
    status, extra, payload, cut = _answer(sim, method, url.path, query, headers, body)
    sim.log({**entry, "status": status, "at": time.time(), "seconds": round(time.monotonic() - started, 4)})
    if cut is None:
        return handler._send(status, extra, payload)
    # a download that breaks off: the full length announced, part of the body sent, the connection closed
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", extra.get("Content-Type", "application/octet-stream"))
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload[:cut])
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass
    handler.close_connection = True


def _answer(
    sim: Any, method: str, path: str, query: Dict[str, str], headers: Dict[str, str], body: bytes
) -> Tuple[int, Dict[str, str], bytes, Optional[int]]:
    cfg = sim.config
    beyond = BeyondConfig.from_dict(cfg.beyond)
    if path.startswith(DOWNLOAD_PREFIX):
        if method != "GET":
            return 405, {}, _json({"error": "method not allowed"}), None
        return _download(sim, beyond, path, query, headers)
    if cfg.latency_ms:
        time.sleep(cfg.latency_ms / 1000)
    expected = f"{'Bearer' if cfg.auth_scheme == 'bearer' else 'Basic'} {cfg.api_key}"
    if headers.get("authorization") != expected:
        return 401, {}, _json({"message": "unauthorized", "code": "unauthorized"}), None
    resource = resource_of(path) or ""
    if resource in beyond.forbidden:
        return 403, {}, _json({"message": f"the key may not read {resource}", "code": "forbidden"}), None
    wanted = "POST" if path == EXPORTS_PATH else "GET"
    if method != wanted:
        return 405, {}, _json({"message": "method not allowed", "code": "method_not_allowed"}), None
    if path == EXPORTS_PATH:
        return (*_create_export(sim, beyond, body), None)
    if path.startswith(OPERATION_PREFIX):
        return (*_operation(sim, beyond, path[len(OPERATION_PREFIX) :]), None)
    if path.startswith(RESULTS_PREFIX):
        return (*_results(sim, beyond, path, headers), None)
    if path == USERS_PATH:
        return (*_users(beyond, query), None)
    if path in HISTORY_BY_PATH:
        return (*_history(beyond, HISTORY_BY_PATH[path], query), None)
    if beyond.me_status != 200:
        return beyond.me_status, {}, _json({"message": "injected", "code": "internal"}), None
    return 200, {}, _json({"email": "owner@example.com", "orgId": "o-sim", "role": beyond.me_role}), None


def _create_export(sim: Any, beyond: BeyondConfig, body: bytes) -> Tuple[int, Dict[str, str], bytes]:
    if beyond.export_status:
        return (
            beyond.export_status,
            {},
            _json(
                {"message": "the segment export needs the data export add-on and an Architect key", "code": "forbidden"}
            ),
        )
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return 400, {}, _json({"message": "body is not JSON", "code": "invalid_argument"})
    time_range = request.get("timeRange") if isinstance(request, dict) else None
    start = _parse_time((time_range or {}).get("start"))
    end = _parse_time((time_range or {}).get("end"))
    problems = []
    if request.get("type") != "TYPE_EVENT":
        problems.append("type must be TYPE_EVENT")
    if request.get("format") not in ("FORMAT_NDJSON", "FORMAT_JSON"):
        problems.append("format must be FORMAT_NDJSON or FORMAT_JSON")
    if start is None or end is None or not start < end:
        problems.append("timeRange needs RFC 3339 start < end")
    if problems or start is None or end is None:
        return 400, {}, _json({"message": "; ".join(problems), "code": "invalid_argument"})
    if request.get("segmentId") not in beyond.segments:
        return 404, {}, _json({"message": f"no segment {request.get('segmentId')!r}", "code": "not_found"})
    file_format = beyond.events_file_format or ("json" if request["format"] == "FORMAT_JSON" else "ndjson")
    state = _state(sim)
    with state.lock:
        state.counter += 1
        export = _Export(f"op-{state.counter}", f"se-{state.counter}", start, end, file_format)
        state.exports[export.operation_id] = export
        state.by_export_id[export.export_id] = export
    return 200, {}, _json({"operationId": export.operation_id})


def _operation(sim: Any, beyond: BeyondConfig, operation_id: str) -> Tuple[int, Dict[str, str], bytes]:
    state = _state(sim)
    with state.lock:
        export = state.exports.get(operation_id)
        if export is None:
            return 404, {}, _json({"message": f"no operation {operation_id!r}", "code": "not_found"})
        export.polls += 1
        polls = export.polls
    answer: Dict[str, Any] = {
        "id": operation_id,
        "type": "SEARCH_EXPORT",
        "createdAt": _rfc3339(datetime.now(UTC)),
        "details": None,
    }
    if polls <= beyond.pending_polls:
        done = 100 * (polls - 1) // max(beyond.pending_polls, 1)
        return 200, {}, _json({**answer, "state": "PENDING", "estimatePctComplete": done})
    finished = _rfc3339(datetime.now(UTC))
    if _rfc3339(export.start) in beyond.failed_windows:
        return (
            200,
            {},
            _json(
                {
                    **answer,
                    "state": "FAILED",
                    "estimatePctComplete": 100,
                    "finishedAt": finished,
                    "errorDetails": beyond.failed_details,
                }
            ),
        )
    return (
        200,
        {},
        _json(
            {
                **answer,
                "state": "COMPLETED",
                "estimatePctComplete": 100,
                "finishedAt": finished,
                "results": {
                    "searchExportId": export.export_id,
                    "expires": _rfc3339(datetime.now(UTC) + timedelta(days=7)),
                },
            }
        ),
    )


def _results(sim: Any, beyond: BeyondConfig, path: str, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
    export_id = path[len(RESULTS_PREFIX) :].rsplit("/results", 1)[0] if path.endswith("/results") else ""
    state = _state(sim)
    with state.lock:
        export = state.by_export_id.get(export_id)
        if export is None:
            return 404, {}, _json({"message": f"no search export {export_id!r}", "code": "not_found"})
        export.results_asked += 1
        asked = export.results_asked
    now = datetime.now(UTC)
    expires = now - timedelta(minutes=1) if asked <= beyond.expired_locations else now + timedelta(minutes=5)
    stamp = int(expires.timestamp())
    host = headers.get("host", "127.0.0.1")
    location = f"http://{host}{DOWNLOAD_PREFIX}{export_id}.gz?expires={stamp}&signature={_signature(export_id, stamp)}"
    return 200, {}, _json({"location": location, "expires": _rfc3339(expires)})


def _download(
    sim: Any, beyond: BeyondConfig, path: str, query: Dict[str, str], headers: Dict[str, str]
) -> Tuple[int, Dict[str, str], bytes, Optional[int]]:
    if headers.get("authorization"):
        # signed storage URLs refuse a second credential (and the key must never reach storage)
        refusal = {"error": "an Authorization header is not allowed with a signed URL"}
        return beyond.auth_refusal_status, {}, _json(refusal), None
    export_id = path[len(DOWNLOAD_PREFIX) :].removesuffix(".gz")
    try:
        stamp = int(query.get("expires", ""))
    except ValueError:
        return 403, {}, _json({"error": "no signature"}), None
    if query.get("signature") != _signature(export_id, stamp):
        return 403, {}, _json({"error": "bad signature"}), None
    state = _state(sim)
    with state.lock:
        export = state.by_export_id.get(export_id)
        if export is None:
            return 404, {}, _json({"error": "no such object"}), None
        export.downloads += 1
        downloads = export.downloads
    if stamp <= time.time() or downloads <= beyond.expired_downloads:
        return beyond.expired_status, {}, _json({"error": "the signed URL has expired"}), None
    data = events_file(beyond, _ms(export.start), _ms(export.end), export.file_format)
    cut = len(data) // 2 if _rfc3339(export.start) in beyond.broken_windows else None
    return 200, {"Content-Type": "application/gzip"}, data, cut


# -- users, history ----------------------------------------------------------------------------


def user(i: int) -> Dict[str, Any]:
    """User `i`: `properties` with nested objects on most, a list on some, none on every fifth."""
    record: Dict[str, Any] = {
        "id": f"{880000 + i}",
        "uid": f"uid-{i}",
        "display_name": f"User {i}",
        "email": f"user{i}@example.com",
        "is_being_deleted": i % 13 == 12,
        "app_url": f"https://app.example.com/users/{i}",
    }
    if i % 5 != 4:
        record["properties"] = {
            "plan_str": "pro" if i % 2 else "free",
            "address": {"city_str": f"City {i % 4}", "geo": {"lat_real": i / 10}},
        }
        if i % 3 == 0:
            record["properties"]["tags_strs"] = [f"t{i}", "vip"]
    return record


def _users(beyond: BeyondConfig, query: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
    token = query.get("page_token") or ""
    offset = int(token[1:]) if token.startswith("p") and token[1:].isdigit() else 0
    if token and not offset:
        return 400, {}, _json({"message": f"bad page_token {token!r}", "code": "invalid_argument"})
    chunk = [user(i) for i in range(offset, min(offset + USERS_PAGE, beyond.users))]
    answer: Dict[str, Any] = {
        "results": chunk,
        "total_records": str(beyond.users),
        "app_url": "https://app.example.com/users",
    }
    if offset + USERS_PAGE < beyond.users:
        answer["next_page_token"] = f"p{offset + USERS_PAGE}"
    return 200, {}, _json(answer)


def history_version(resource: str, j: int) -> Dict[str, Any]:
    """Version `j` (0 = the oldest) of a settings object; version j+1 is one hour newer."""
    at = HISTORY_T0 + timedelta(hours=j)
    return {
        "metadata": {
            "lastUpdated": _rfc3339(at),
            "lastUpdatedBy": f"admin{j % 3}@example.com",
            "created": _rfc3339(HISTORY_T0),
            "createdBy": "owner@example.com",
        },
        "revision": j,
        "enabled": j % 2 == 0,
        "object": resource.removesuffix("_history"),
    }


def _history(beyond: BeyondConfig, resource: str, query: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
    total = beyond.history.get(resource, 0)
    try:
        offset = int(query.get("paginationToken") or 0)
        limit = min(int(query.get("limit") or 20), 100)
    except ValueError:
        return 400, {}, _json({"message": "bad paginationToken or limit", "code": "invalid_argument"})
    if beyond.history_broken_page and offset // max(limit, 1) + 1 == beyond.history_broken_page:
        return 400, {}, _json({"message": "injected: this page is broken", "code": "invalid_argument"})
    newest_first = range(total - 1 - offset, max(total - 1 - offset - limit, -1), -1)
    answer: Dict[str, Any] = {"versions": [history_version(resource, j) for j in newest_first]}
    if offset + limit < total:
        answer[beyond.history_next_key] = str(offset + limit)
    return 200, {}, _json(answer)


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()
