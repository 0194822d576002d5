"""The `events` resource: the event stream through the API's asynchronous segment export.

Per window `[start, end)`, in order, from the end of the last finished window up to now minus the
settle delay (at most `max_windows` per run):

    POST /segments/v1/exports            -> {"operationId"}
    GET  /operations/v1/{operationId}    -> PENDING ... COMPLETED {"results": {"searchExportId"}} | FAILED
    GET  /search/v1/exports/{id}/results -> {"location", "expires"}   (asked again when it expired)
    GET  <location>                      -> gzip NDJSON (or a JSON array), no Authorization header

Events have no unique key: every row carries its window (`_window_start`, `_window_end`) and the
table is merged with dlt's delete-insert strategy on `_window_start`, so exporting a window again
replaces it. The resource state (`next_start`) moves only at the end of a run's windows, once all
their rows were yielded; a run that fails or is stopped part-way leaves it where it was: what the
run extracted may be dropped (the loader drops a failed resource's files), and a window loaded
twice replaces itself, so redoing it is always safe. When the loader drops a resource's rows
after the extract (normalize or load failed), it puts the cursor back with `restore_cursors`.
"""

from __future__ import annotations

import codecs
import copy
import gzip
import io
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import dlt
import requests
import urllib3
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient
from requests.adapters import HTTPAdapter

from source.errors import TRANSIENT_ERRORS, ResourceError
from source.key_check import EXPORT_ADD_ON
from source.settings import EVENTS_DEFAULTS, EXTRA_PATHS, RETRY_STATUSES

log = logging.getLogger("analytics_loader.source")

EVENTS = "events"
EXPORT_PATH = EXTRA_PATHS[EVENTS]
OPERATION_PATH = "/operations/v1/{id}"
RESULTS_PATH = "/search/v1/exports/{id}/results"
WINDOW_START = "_window_start"
WINDOW_END = "_window_end"
STATE_KEY = "next_start"  # RFC 3339 end of the last finished window
GZIP_MAGIC = b"\x1f\x8b"
# Statuses of a signed storage URL that is no longer valid (GCS answers 400 ExpiredToken, others 403/410).
EXPIRED_STATUSES = (400, 401, 403, 410)
EVENT_FORMATS = ("FORMAT_NDJSON", "FORMAT_JSON")
MIN_WINDOW_HOURS, MAX_WINDOW_HOURS = 0.25, 24.0  # the range the vendor's own loader accepts
_READ_BYTES = 1 << 16
# The largest record read: a file without line breaks (or a broken array) must not be held whole.
MAX_RECORD_BYTES = 64 << 20

WRITE_DISPOSITION: Dict[str, str] = {"disposition": "merge", "strategy": "delete-insert"}
COLUMNS: Dict[str, Dict[str, Any]] = {
    WINDOW_START: {"data_type": "timestamp", "nullable": False},
    WINDOW_END: {"data_type": "timestamp", "nullable": False},
}


def events_hints() -> Dict[str, Any]:
    """The dlt hints of the events table (a fresh copy): a window replaces its earlier load (no event key exists)."""
    return {
        "name": EVENTS,
        "write_disposition": dict(WRITE_DISPOSITION),
        "merge_key": WINDOW_START,
        "columns": {name: dict(column) for name, column in COLUMNS.items()},
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EventsSettings:
    """The `events_*` settings (dlt names under `sources.analytics`, e.g. SOURCES__ANALYTICS__EVENTS_START).

    Attributes:
        start: RFC 3339 start of the first window. None: the resource is off.
        window_hours: length of a window (0.25 to 24).
        delay_hours: a window is exported once its end is this far in the past (values settle).
        segment: the segment exported (`segmentId`).
        max_windows: most windows exported by one run; a backfill continues on the next run.
        poll_seconds: wait between two polls of the export operation.
        poll_timeout_seconds: longest wait for one export to complete.
        format: the file format asked for; the reader takes NDJSON and a JSON array either way.
        location_attempts: times the results location is asked for when it expired.
        batch_rows: rows per item handed to dlt (memory stays flat whatever the file size).
        clock: the current UTC time (tests pass a fixed one).
    """

    start: Optional[str] = None
    window_hours: float = EVENTS_DEFAULTS["events_window_hours"]
    delay_hours: float = EVENTS_DEFAULTS["events_delay_hours"]
    segment: str = EVENTS_DEFAULTS["events_segment"]
    max_windows: int = EVENTS_DEFAULTS["events_max_windows"]
    poll_seconds: float = EVENTS_DEFAULTS["events_poll_seconds"]
    poll_timeout_seconds: float = EVENTS_DEFAULTS["events_poll_timeout_seconds"]
    format: str = "FORMAT_NDJSON"
    location_attempts: int = 3
    batch_rows: int = 1000
    clock: Callable[[], datetime] = field(default=_utcnow, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.start is not None:
            parse_time(self.start, "SOURCES__ANALYTICS__EVENTS_START")
        if not MIN_WINDOW_HOURS <= float(self.window_hours) <= MAX_WINDOW_HOURS:
            raise ValueError(
                f"SOURCES__ANALYTICS__EVENTS_WINDOW_HOURS={self.window_hours!r} is out of range: "
                f"set it between {MIN_WINDOW_HOURS} and {MAX_WINDOW_HOURS} hours"
            )
        if float(self.delay_hours) < 0:
            raise ValueError(
                f"SOURCES__ANALYTICS__EVENTS_DELAY_HOURS={self.delay_hours!r} is negative: set it to 0 or more hours"
            )
        if int(self.max_windows) < 1:
            raise ValueError(
                f"SOURCES__ANALYTICS__EVENTS_MAX_WINDOWS={self.max_windows!r}: set it to 1 or more windows per run"
            )
        if not self.segment:
            raise ValueError("SOURCES__ANALYTICS__EVENTS_SEGMENT is empty: set it to a segment id (default everyone)")
        if float(self.poll_seconds) < 0 or float(self.poll_timeout_seconds) <= 0:
            raise ValueError(
                "SOURCES__ANALYTICS__EVENTS_POLL_SECONDS must be >= 0 and "
                "SOURCES__ANALYTICS__EVENTS_POLL_TIMEOUT_SECONDS > 0"
            )
        if self.format not in EVENT_FORMATS:
            raise ValueError(f"events format {self.format!r}: use one of {', '.join(EVENT_FORMATS)}")
        if int(self.location_attempts) < 1 or int(self.batch_rows) < 1:
            raise ValueError("events location_attempts and batch_rows must be 1 or more")

    @property
    def enabled(self) -> bool:
        return self.start is not None

    @property
    def window(self) -> timedelta:
        return timedelta(hours=float(self.window_hours))


def parse_time(value: Any, setting: str) -> datetime:
    """An RFC 3339 time with its offset, as an aware UTC datetime; errors name `setting`."""
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{setting}={value!r} is not an RFC 3339 time: set it like 2024-05-01T00:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{setting}={value!r} has no UTC offset: set it like 2024-05-01T00:00:00Z")
    return parsed.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """`2024-05-01T00:00:00Z` (milliseconds only when there are some)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


class _NoAuthorizationAdapter(HTTPAdapter):
    """Refuses to send any request that carries an Authorization header (the download's guard).

    It sits where requests hands a request to the network: it sees the request after session
    headers, auth, `.netrc` and every redirect were applied.
    """

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if "Authorization" in request.headers:
            raise ResourceError(
                EVENTS,
                "refused to send an Authorization header to the export's download URL "
                "(the signed URL needs none; the API key must never leave for storage)",
            )
        return super().send(request, *args, **kwargs)


def download_session() -> requests.Session:
    """A plain session for the signed download URLs: dlt's retries, no auth, no `.netrc`, a guard
    that refuses any Authorization header. Never the API client's session."""
    from dlt.sources.helpers.requests import Client

    session = Client(raise_for_status=False, status_codes=RETRY_STATUSES, session_attrs={"trust_env": False}).session
    guard = _NoAuthorizationAdapter()
    session.mount("http://", guard)
    session.mount("https://", guard)
    return session


def events_resource(
    client: RESTClient,
    download: requests.Session,
    settings: EventsSettings,
    deadline: Optional[float] = None,
) -> DltResource:
    """The `events` resource: finished windows since the last run, through the segment export.

    Args:
        client: the API client (base URL, auth, the retrying session).
        download: a session without auth for the signed file URLs (`download_session()`).
        settings: the `events_*` settings; with `start` unset the resource fails, naming the setting.
        deadline: a `time.monotonic()` value: no window starts after it, and polling stops at it
            (the window is exported on the next run).

    Returns:
        A resource merging each window with delete-insert on `_window_start`.
    """
    if download.auth is not None or "Authorization" in download.headers:
        raise ValueError(
            "events: the download session carries auth; pass a plain one (source.events.download_session())"
        )
    return dlt.resource(event_batches(client, download, settings, deadline), **events_hints())


def event_batches(
    client: RESTClient, download: requests.Session, settings: EventsSettings, deadline: Optional[float] = None
) -> Iterator[List[Dict[str, Any]]]:
    """The rows of the finished windows, in batches; what `events_resource` wraps (`events_hints()`).

    To run it under a failure guard: `dlt.resource(guard(event_batches(...)), **events_hints())`.
    Reads and writes the `events` resource state, so it must run inside that resource.
    """
    if not settings.enabled:
        raise ResourceError(
            EVENTS,
            "events are off: set SOURCES__ANALYTICS__EVENTS_START (RFC 3339, e.g. "
            "2024-05-01T00:00:00Z) to the start of the first window to export",
        )
    state = dlt.current.resource_state(EVENTS)
    at_start = state.get(STATE_KEY)
    begin = parse_time(settings.start, "SOURCES__ANALYTICS__EVENTS_START")
    if at_start is not None:
        begin = max(begin, parse_time(at_start, f"the events resource state '{STATE_KEY}'"))
    settled = settings.clock() - timedelta(hours=float(settings.delay_hours))
    done = 0
    while done < int(settings.max_windows) and begin + settings.window <= settled:
        if deadline is not None and time.monotonic() >= deadline:
            log.warning(f"events: the run deadline came before window {rfc3339(begin)}; the next run exports it")
            break
        end = begin + settings.window
        rows = 0
        export = _export(client, download, settings, begin, end, deadline)
        if export is None:
            log.warning(
                f"events: the run deadline came while window {rfc3339(begin)} was exported; the next run redoes it"
            )
            break
        for batch in export:
            rows += len(batch)
            yield batch
        log.info(f"events: window [{rfc3339(begin)}, {rfc3339(end)}) exported, {rows} rows")
        begin = end
        done += 1
    if done:
        # Written only here, once every window of the run was yielded whole: a run that fails or
        # is stopped part-way leaves the cursor where it was (the loader may drop what it extracted).
        state[STATE_KEY] = rfc3339(begin)


def _export(
    client: RESTClient,
    download: requests.Session,
    settings: EventsSettings,
    begin: datetime,
    end: datetime,
    deadline: Optional[float],
) -> Optional[Iterator[List[Dict[str, Any]]]]:
    """Create the export of one window and wait for it; its rows in batches, or None at the deadline."""
    window = f"[{rfc3339(begin)}, {rfc3339(end)})"
    body = {
        "segmentId": settings.segment,
        "type": "TYPE_EVENT",
        "format": settings.format,
        "timeRange": {"start": rfc3339(begin), "end": rfc3339(end)},
        "segmentTimeRange": {"start": "", "end": ""},
    }
    created = _answer(_call(client.post, "POST", EXPORT_PATH, json=body), "POST", EXPORT_PATH, window)
    operation_id = created.get("operationId")
    if not operation_id:
        raise ResourceError(
            EVENTS,
            f"POST {EXPORT_PATH} for window {window} answered no operationId "
            f"(found: {', '.join(sorted(created)) or 'nothing'})",
            path=EXPORT_PATH,
        )
    export_id = _wait(client, str(operation_id), settings, window, deadline)
    if export_id is None:
        return None
    return _download_rows(client, download, settings, export_id, begin, end, window)


def _wait(
    client: RESTClient, operation_id: str, settings: EventsSettings, window: str, deadline: Optional[float]
) -> Optional[str]:
    """Poll the operation until COMPLETED (its searchExportId) or FAILED (raises); None at the deadline."""
    path = OPERATION_PATH.format(id=operation_id)
    give_up = time.monotonic() + float(settings.poll_timeout_seconds)
    polls = 0
    while True:
        # checked before each poll: a request past the deadline would fail the resource, not stop it
        if deadline is not None and time.monotonic() >= deadline:
            return None
        operation = _answer(_call(client.get, "GET", path), "GET", OPERATION_PATH, window)
        polls += 1
        status = operation.get("state")
        if status == "COMPLETED":
            export_id = (operation.get("results") or {}).get("searchExportId")
            if not export_id:
                raise ResourceError(
                    EVENTS,
                    f"the export operation of window {window} completed without results.searchExportId",
                    path=OPERATION_PATH,
                )
            return str(export_id)
        if status == "FAILED":
            details = operation.get("errorDetails") or "no errorDetails given"
            raise ResourceError(EVENTS, f"the export of window {window} FAILED: {details}", path=OPERATION_PATH)
        now = time.monotonic()
        if now >= give_up:
            raise ResourceError(
                EVENTS,
                f"the export of window {window} was still {status} after {polls} polls "
                f"in {settings.poll_timeout_seconds:g} s: raise "
                "SOURCES__ANALYTICS__EVENTS_POLL_TIMEOUT_SECONDS or shorten "
                "SOURCES__ANALYTICS__EVENTS_WINDOW_HOURS",
                path=OPERATION_PATH,
            )
        limit = min(give_up, deadline) if deadline is not None else give_up
        time.sleep(max(0.0, min(float(settings.poll_seconds), limit - now)))


def _download_rows(
    client: RESTClient,
    download: requests.Session,
    settings: EventsSettings,
    export_id: str,
    begin: datetime,
    end: datetime,
    window: str,
) -> Iterator[List[Dict[str, Any]]]:
    """Ask for the file's location right before downloading it, again while it has expired."""
    path = RESULTS_PATH.format(id=export_id)
    attempts = int(settings.location_attempts)
    last = "no attempt"
    for attempt in range(1, attempts + 1):
        results = _answer(_call(client.get, "GET", path), "GET", RESULTS_PATH, window)
        location = results.get("location")
        if not location:
            raise ResourceError(
                EVENTS, f"GET {RESULTS_PATH} for window {window} answered no location", path=RESULTS_PATH
            )
        expires = _expiry(results.get("expires"))
        # the last attempt downloads anyway: a skewed local clock must not stop the run
        if expires is not None and expires <= _utcnow() and attempt < attempts:
            last = f"the location had expired at {rfc3339(expires)}"
            log.info(f"events: the results location of window {window} had expired; asking again")
            continue
        response = _get_file(download, str(location))
        if response.status_code in EXPIRED_STATUSES:
            last = f"the download answered HTTP {response.status_code}"
            response.close()
            log.info(f"events: the download of window {window} answered HTTP {response.status_code}; asking again")
            continue
        if response.status_code != 200:
            response.close()
            raise ResourceError(
                EVENTS,
                f"the download of window {window} from {_safe(str(location))} answered HTTP {response.status_code}",
                status=response.status_code,
            )
        return _batches(response, settings.batch_rows, begin, end, window, str(location))
    raise ResourceError(
        EVENTS,
        f"the export file of window {window} could not be downloaded in {attempts} tries of "
        f"its location ({last}): a signed URL is valid for minutes; check the clock and the "
        "network to storage",
        path=RESULTS_PATH,
    )


def _get_file(download: requests.Session, location: str) -> requests.Response:
    prepared = download.prepare_request(requests.Request("GET", location, auth=_no_auth))
    if "Authorization" in prepared.headers:
        raise ResourceError(EVENTS, "refused to send an Authorization header to the export's download URL")
    try:
        return download.send(prepared, stream=True, allow_redirects=True)
    except TRANSIENT_ERRORS as exc:
        raise ResourceError(
            EVENTS,
            f"no answer from the download URL {_safe(location)} on every attempt "
            f"({type(exc).__name__}; RUNTIME__REQUEST_TIMEOUT)",
        ) from None


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An explicit "no auth": requests then looks up no `.netrc` credentials for the URL."""
    return request


def _batches(
    response: requests.Response, batch_rows: int, begin: datetime, end: datetime, window: str, location: str
) -> Iterator[List[Dict[str, Any]]]:
    """The file's records, `batch_rows` at a time, each with its window; the file is never held whole."""
    rows = 0
    batch: List[Dict[str, Any]] = []
    try:
        for record in read_records(response.raw):
            record[WINDOW_START] = begin
            record[WINDOW_END] = end
            batch.append(record)
            if len(batch) >= batch_rows:
                rows += len(batch)
                yield batch
                batch = []
        if batch:
            rows += len(batch)
            yield batch
    except (ExportFileError, gzip.BadGzipFile) as exc:
        raise ResourceError(EVENTS, f"the export file of window {window} ({_safe(location)}): {exc}") from None
    except (OSError, EOFError, requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        # a connection reset or a short body mid-file
        raise ResourceError(
            EVENTS,
            f"the download of window {window} broke off after {rows + len(batch)} rows "
            f"({type(exc).__name__}); the window is exported again next run",
        ) from None
    finally:
        response.close()


class ExportFileError(ValueError):
    """The downloaded file is not gzip, or not NDJSON / a JSON array of objects."""


class _Prefixed(io.RawIOBase):
    """`head` then the rest of `stream` (the magic bytes read to check the file go back in front)."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_records(stream: Any) -> Iterator[Dict[str, Any]]:
    """Objects of a gzip file, NDJSON or one JSON array, read as a stream (raises ExportFileError)."""
    magic = stream.read(2)
    if magic != GZIP_MAGIC:
        if not magic:
            raise ExportFileError("the file is empty (expected gzip)")
        raise ExportFileError(f"not gzip (starts with {magic!r}, expected 1f 8b)")
    inflated = io.BufferedReader(
        gzip.GzipFile(fileobj=io.BufferedReader(_Prefixed(magic, stream), _READ_BYTES)), _READ_BYTES
    )
    first = _first_char(inflated)
    if first is None:
        return
    if first == b"{":
        yield from _ndjson(inflated)
    elif first == b"[":
        yield from _json_array(inflated)
    else:
        raise ExportFileError(f"neither NDJSON nor a JSON array (first character {first!r})")


def _first_char(stream: io.BufferedReader[Any]) -> Optional[bytes]:
    while True:
        head = stream.peek(1)
        if not head:
            return None
        stripped = head.lstrip()
        if stripped:
            return stripped[:1]
        stream.read(len(head))


def _ndjson(stream: io.BufferedReader[Any]) -> Iterator[Dict[str, Any]]:
    number = 0
    while True:
        line = stream.readline(MAX_RECORD_BYTES)
        if not line:
            return
        number += 1
        if len(line) >= MAX_RECORD_BYTES and not line.endswith(b"\n"):
            raise ExportFileError(f"line {number} is longer than {MAX_RECORD_BYTES >> 20} MiB: not NDJSON")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExportFileError(f"line {number} is not JSON ({exc.msg})") from None
        except UnicodeDecodeError:
            raise ExportFileError(f"line {number} is not UTF-8") from None
        if not isinstance(record, dict):
            raise ExportFileError(f"line {number} is a {type(record).__name__}, not an object")
        yield record


def _json_array(stream: io.BufferedReader[Any]) -> Iterator[Dict[str, Any]]:
    """Items of `[{...}, {...}]`, decoded one at a time from a sliding text buffer."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    pos = 0
    eof = False
    opened = False
    expect_item = True

    def more() -> bool:
        nonlocal buffer, pos, eof
        chunk = stream.read(_READ_BYTES)
        eof = not chunk
        try:
            buffer = buffer[pos:] + text.decode(chunk, final=eof)
        except UnicodeDecodeError:
            raise ExportFileError("the JSON array is not UTF-8") from None
        pos = 0
        return not eof

    while True:
        while pos < len(buffer) and buffer[pos] in " \t\r\n":
            pos += 1
        if pos >= len(buffer):
            if not more():
                raise ExportFileError("the JSON array is not closed (the file ends inside it)")
            continue
        char = buffer[pos]
        if not opened:
            opened = True
            pos += 1
            continue
        if char == "]":
            return
        if char == "," and not expect_item:
            expect_item = True
            pos += 1
            continue
        if char != "{" or not expect_item:
            raise ExportFileError(f"the JSON array holds {char!r} where an object was expected")
        try:
            record, end = decoder.raw_decode(buffer, pos)
        except ValueError as exc:
            if eof:
                raise ExportFileError(f"an item of the JSON array is not JSON ({exc})") from None
            if len(buffer) - pos > MAX_RECORD_BYTES:
                raise ExportFileError(
                    f"an item of the JSON array is longer than {MAX_RECORD_BYTES >> 20} MiB or not JSON"
                ) from None
            more()
            continue
        pos = end
        expect_item = False
        yield record


# -- answers of the API ------------------------------------------------------------------------


def _call(method: Callable[..., requests.Response], verb: str, path: str, **kwargs: Any) -> requests.Response:
    try:
        return method(path, **kwargs)
    except TRANSIENT_ERRORS as exc:
        raise ResourceError(
            EVENTS,
            f"no answer from {verb} {path} on every attempt ({type(exc).__name__}): check "
            "SOURCES__ANALYTICS__BASE_URL, RUNTIME__REQUEST_TIMEOUT",
            path=path,
        ) from None


def _answer(response: requests.Response, verb: str, path: str, window: str) -> Dict[str, Any]:
    """The JSON object of a 2xx answer; otherwise a ResourceError that says what to change."""
    status = response.status_code
    if status >= 400:
        message = _error_message(response)
        if status == 403:
            reason = f"HTTP 403 from {verb} {path} (window {window}){message}: the segment export needs {EXPORT_ADD_ON}"
        elif status == 401:
            reason = (
                f"HTTP 401 from {verb} {path}{message}: the API key was rejected: check "
                "SOURCES__ANALYTICS__API_KEY / API_KEY_SECRET and SOURCES__ANALYTICS__AUTH_SCHEME"
            )
        elif status in RETRY_STATUSES:
            reason = (
                f"HTTP {status} from {verb} {path} (window {window}){message}: gave up after the retries "
                "(RUNTIME__REQUEST_MAX_ATTEMPTS)"
            )
        else:
            reason = f"HTTP {status} from {verb} {path} (window {window}){message}: not retried"
        raise ResourceError(EVENTS, reason, status=status, path=path)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ResourceError(
            EVENTS, f"the answer from {verb} {path} (window {window}) is not a JSON object", status=status, path=path
        )
    return body


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") or body.get("error") if isinstance(body, dict) else None
    return f" ({str(message)[:200]})" if message else ""


def _expiry(value: Any) -> Optional[datetime]:
    """`expires` as RFC 3339 or epoch seconds / milliseconds; None when absent or unreadable."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        seconds = float(value)
        return datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, UTC)
    try:
        return parse_time(value, "expires")
    except ValueError:
        return None


def _safe(location: str) -> str:
    """A download URL without its query: the signature stays out of logs and errors."""
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def window_bounds(start: str, window_hours: float, count: int) -> List[Tuple[datetime, datetime]]:
    """The first `count` windows from `start` (what a run exports, for tests and docs)."""
    begin = parse_time(start, "start")
    step = timedelta(hours=float(window_hours))
    return [(begin + i * step, begin + (i + 1) * step) for i in range(count)]


# -- cursors of the stateful resources (events, *_history) ---------------------------------------


def snapshot_cursors(pipeline: Any, source_name: str, resources: Sequence[str]) -> Dict[str, Any]:
    """The resource states of `resources` (None: no state yet), to put back with `restore_cursors`."""
    states = pipeline.state.get("sources", {}).get(source_name, {}).get("resources", {})
    return {name: copy.deepcopy(states.get(name)) for name in resources}


def restore_cursors(pipeline: Any, source_name: str, snapshot: Dict[str, Any]) -> None:
    """Put resource states back as they were before the run (the state goes into the pending load package).

    For a resource whose rows were extracted with the run's state but dropped before or during
    the load: without this its cursor would stay past rows the warehouse never received.
    Call it before the next `normalize()` / `load()` of the run.
    """
    with pipeline.managed_state(extract_state=True) as state:
        states = state.setdefault("sources", {}).setdefault(source_name, {}).setdefault("resources", {})
        for name, value in snapshot.items():
            if value is None:
                states.pop(name, None)
            else:
                states[name] = copy.deepcopy(value)
