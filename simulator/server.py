"""A local stand-in for the analytics API: the ten endpoints, cursor pagination, a key check,
latency and injectable faults, and a log of every request it served.

Control endpoints (loopback only, no key): `GET /_sim/requests` (answered), `GET /_sim/arrivals`
(received, answered or not), `POST /_sim/reset`,
`POST /_sim/config` (a JSON object of `SimConfig` fields), `GET /_sim/expected`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from simulator import beyond, hostile
from simulator.data import SINGLETONS, documented_record, documented_singleton, seed_record
from source.settings import PATHS, RESOURCE_NAMES

RESOURCE_BY_PATH = {path: name for name, path in PATHS.items()}
# The seed's retried statuses, stated here rather than imported from the loader: a storm drawn
# from the loader's own list would shrink with it and never show a status the loader forgot.
STORM_STATUSES = (429, 500, 502, 503, 504)
DRIFT_KINDS = ("drop_key", "new_field", "type_change")


@dataclass
class Fault:
    """An injected fault. `page` is 1-based (None: every page); `times` None: for ever.

    kind: `status` (answer `status`, with `Retry-After` when `retry_after` is set), `hang` (sleep
    `seconds` before answering), `not_json`, `no_selector` (JSON without the data key),
    `echo_key` (answer `status` with the request's Authorization value in the status line and body),
    `drop_key` (records without `id`, or without `field` when set), `new_field` (records gain
    `loyaltyTier`), `type_change` (`durationMs`, or `field` when set, becomes a string).

    The drift kinds (`drop_key`, `new_field`, `type_change`) apply to every answer of the
    resource, or only to page `page` when it is set; `times` does not limit them.
    """

    resource: str
    kind: str = "status"
    status: int = 503
    page: Optional[int] = None
    times: Optional[int] = None
    retry_after: Optional[str] = None
    seconds: float = 0.0
    served: int = 0
    field: Optional[str] = None  # drift kinds: the field dropped / changed (default `id` / `durationMs`)


@dataclass
class SimConfig:
    api_key: str = "sim-key"
    auth_scheme: str = "bearer"  # bearer | basic (the key as-is after `Basic `)
    profile: str = "seed"  # seed | documented
    rows: Dict[str, int] = field(default_factory=lambda: {name: 25 for name in RESOURCE_NAMES})
    page_size: int = 10  # rows per page when the request has no `limit`
    max_page_size: int = 100  # `limit` is honoured up to this
    latency_ms: float = 0.0
    faults: List[Fault] = field(default_factory=list)
    storm_rate: float = 0.0  # share of data requests answered with a transient 429/5xx
    storm_max_in_row: int = 2  # never more than this many storm errors in a row for one page
    storm_seed: int = 7
    # per-resource shape overrides, e.g. {"eventDefs": "documented"} under profile "seed"
    resource_profiles: Dict[str, str] = field(default_factory=dict)
    # the endpoints beyond the seed (simulator/beyond.py): a dict of `BeyondConfig` fields
    beyond: Dict[str, Any] = field(default_factory=dict)

    def profile_of(self, resource: str) -> str:
        return self.resource_profiles.get(resource, self.profile)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> SimConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown simulator settings {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        if "faults" in data:
            data["faults"] = [f if isinstance(f, Fault) else Fault(**f) for f in data["faults"]]
        if "rows" in data:
            data["rows"] = {**{name: 0 for name in RESOURCE_NAMES}, **data["rows"]}
        return cls(**data)


class Simulator:
    """The API's state: configuration, faults and the request log. Thread-safe."""

    def __init__(self, config: Optional[SimConfig] = None) -> None:
        self.config = config or SimConfig()
        self.requests: List[Dict[str, Any]] = []  # every request answered, with its status
        # every request received, logged before it is answered: a request still hanging, or one
        # the client gave up on, is here at once (and in `requests` only once answered)
        self.arrivals: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._storm = random.Random(self.config.storm_seed)
        self._storm_in_row: Dict[Tuple[str, str], int] = {}

    def configure(self, **changes: Any) -> None:
        with self._lock:
            self.config = SimConfig.from_dict({**asdict(self.config), **changes})
            self._storm = random.Random(self.config.storm_seed)
            self._storm_in_row.clear()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.arrivals.clear()

    def requests_for(self, resource: str) -> List[Dict[str, Any]]:
        return [r for r in list(self.requests) if r["resource"] == resource]

    def arrivals_for(self, resource: str) -> List[Dict[str, Any]]:
        return [r for r in list(self.arrivals) if r["resource"] == resource]

    # -- answering -------------------------------------------------------------------------
    def answer(self, path: str, query: Dict[str, str], headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
        resource = RESOURCE_BY_PATH.get(path)
        cfg = self.config
        if cfg.latency_ms:
            time.sleep(cfg.latency_ms / 1000)
        expected = f"{'Bearer' if cfg.auth_scheme == 'bearer' else 'Basic'} {cfg.api_key}"
        if headers.get("authorization") != expected:
            return 401, {}, _json({"error": "unauthorized"})
        if resource is None:
            return 404, {}, _json({"error": f"no endpoint {path}"})
        token = query.get("pagination_token") or "0"
        offset = int(token) if token.isdigit() else 0  # hostile kinds use letters
        page_size = min(int(query["limit"]), cfg.max_page_size) if query.get("limit") else cfg.page_size
        page = offset // max(page_size, 1) + 1
        fault = self._take_fault(resource, page)
        if fault is not None and fault.kind == "hang":
            time.sleep(fault.seconds)
        elif fault is not None and fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return fault.status, extra, _json({"error": f"injected {fault.status}"})
        elif fault is not None and fault.kind == "not_json":
            return 200, {"Content-Type": "text/html"}, b"<html><body>maintenance</body></html>"
        elif fault is not None and fault.kind == "echo_key":
            echoed = headers.get("authorization") or ""
            return fault.status, {"_reason": f"Rejected {echoed}"}, _json({"error": f"credentials {echoed} rejected"})
        elif fault is not None and fault.kind in hostile.KINDS:
            token = query.get("pagination_token") or ""
            normal = self._page(resource, int(token) if token.isdigit() else 0, page_size, query)
            return hostile.answer(fault, resource, token, page_size, cfg.rows.get(resource, 0), normal)
        if self._storm_hit(resource, str(offset)):
            status = STORM_STATUSES[self._storm.randrange(len(STORM_STATUSES))]
            return status, {"Retry-After": "0"} if status == 429 else {}, _json({"error": "storm"})
        body = self._page(resource, offset, page_size, query)
        if fault is not None and fault.kind == "no_selector":
            body = {"items": body.get(resource, []) if isinstance(body, dict) else []}
        drift = [f for f in self._active(resource) if f.kind in DRIFT_KINDS and (f.page is None or f.page == page)]
        singleton = cfg.profile_of(resource) == "documented" and resource in SINGLETONS
        for record in [body] if singleton else _records_in(body):
            for f in drift:
                if f.kind == "drop_key":
                    record.pop(f.field or "id", None)
                elif f.kind == "new_field":
                    record["loyaltyTier"] = "gold"
                elif f.kind == "type_change" and (f.field or "durationMs") in record:
                    key = f.field or "durationMs"
                    record[key] = f"{record[key]} ms"
        return 200, {}, _json(body)

    def _page(self, resource: str, offset: int, page_size: int, query: Dict[str, str]) -> Any:
        cfg = self.config
        total = cfg.rows.get(resource, 0)
        if cfg.profile_of(resource) == "documented":
            if resource in SINGLETONS:
                return documented_singleton(resource)
            if resource == "sessions":  # one page, `limit` (default 20) decides how many
                limit = int(query.get("limit") or 20)
                return {"sessions": [documented_record(resource, i) for i in range(min(limit, total))]}
            if resource in ("sessionTargetingRules", "eventDefs"):
                body: Dict[str, Any] = {resource: [documented_record(resource, i) for i in range(total)]}
                if resource == "sessionTargetingRules":
                    body["metadata"] = documented_singleton("geosettings")["metadata"]
                return body
            key = "endpoints" if resource == "webhooks" else resource
            size = min(int(query.get("limit") or 20), cfg.max_page_size)
            chunk = [documented_record(resource, i) for i in range(offset, min(offset + size, total))]
            body = {key: chunk}
            if offset + size < total:
                body["nextPaginationToken"] = str(offset + size)
            return body
        chunk = [seed_record(resource, i) for i in range(offset, min(offset + page_size, total))]
        body = {resource: chunk}
        if offset + page_size < total:
            body["nextPaginationToken"] = str(offset + page_size)
        return body

    def _active(self, resource: str) -> List[Fault]:
        return [f for f in self.config.faults if f.resource == resource]

    def _take_fault(self, resource: str, page: int) -> Optional[Fault]:
        with self._lock:
            for fault in self.config.faults:
                if fault.resource != resource or fault.kind in DRIFT_KINDS:
                    continue
                if fault.page is not None and fault.page != page:
                    continue
                if fault.times is not None and fault.served >= fault.times:
                    continue
                fault.served += 1
                return fault
        return None

    def _storm_hit(self, resource: str, token: str) -> bool:
        if not self.config.storm_rate:
            return False
        with self._lock:
            key = (resource, token)
            if (
                self._storm_in_row.get(key, 0) < self.config.storm_max_in_row
                and self._storm.random() < self.config.storm_rate
            ):
                self._storm_in_row[key] = self._storm_in_row.get(key, 0) + 1
                return True
            self._storm_in_row[key] = 0
            return False

    def log(self, entry: Dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def arrived(self, entry: Dict[str, Any]) -> None:
        with self._lock:
            self.arrivals.append(entry)


def _records_in(body: Any) -> List[Dict[str, Any]]:
    if isinstance(body, dict):
        lists = [v for v in body.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        return lists[0] if lists else []
    return []


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without this, Nagle holds the body for the client's
    # delayed ACK (~40 ms a request), a latency no real API adds
    disable_nagle_algorithm = True
    sim: Simulator

    def log_message(self, *args: Any) -> None:  # the request log is the record; no stderr noise
        pass

    def _send(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        drip = float(headers.pop("_drip", 0) or 0)  # hostile `drip`: one byte every `drip` seconds
        try:
            self.send_response(status, headers.pop("_reason", None))  # `_reason`: a status line of the fault's
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if drip:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(drip)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # the client gave up (its timeout ran out while a `hang` fault slept): nothing to answer
            self.close_connection = True

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/_sim/"):
            return self._control("GET", url.path)
        if beyond.serves(url.path):  # events export, users, settings history, /me
            return beyond.handle(self, "GET")
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        started = time.monotonic()
        self.sim.arrived(
            {
                "method": "GET",
                "path": url.path,
                "resource": RESOURCE_BY_PATH.get(url.path),
                "params": query,
                "authorization": headers.get("authorization"),
                "at": time.time(),
            }
        )
        status, extra, body = self.sim.answer(url.path, query, headers)
        self.sim.log(
            {
                "method": "GET",
                "path": url.path,
                "resource": RESOURCE_BY_PATH.get(url.path),
                "params": query,
                "authorization": headers.get("authorization"),
                "status": status,
                "at": time.time(),
                "seconds": round(time.monotonic() - started, 4),
            }
        )
        self._send(status, extra, body)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/_sim/"):
            return self._control("POST", url.path)
        if beyond.serves(url.path):
            return beyond.handle(self, "POST")
        self._send(405, {}, _json({"error": "method not allowed"}))

    def _control(self, method: str, path: str) -> None:
        if method == "GET" and path == "/_sim/requests":
            return self._send(200, {}, _json(self.sim.requests))
        if method == "GET" and path == "/_sim/arrivals":
            return self._send(200, {}, _json(self.sim.arrivals))
        if method == "GET" and path == "/_sim/config":
            return self._send(200, {}, _json(asdict(self.sim.config)))
        if method == "GET" and path == "/_sim/expected":
            from simulator.expected import expected_counts  # here: expected imports this module

            return self._send(200, {}, _json(expected_counts(self.sim.config)))
        if method == "POST" and path == "/_sim/reset":
            self.sim.reset()
            return self._send(200, {}, _json({"ok": True}))
        if method == "POST" and path == "/_sim/config":
            length = int(self.headers.get("Content-Length") or 0)
            try:
                self.sim.configure(**json.loads(self.rfile.read(length) or b"{}"))
            except (ValueError, TypeError) as exc:
                return self._send(400, {}, _json({"error": str(exc)}))
            return self._send(200, {}, _json(asdict(self.sim.config)))
        self._send(404, {}, _json({"error": f"no control endpoint {method} {path}"}))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # the listen() backlog, fixed when the socket is bound: the default 5 drops the SYNs of a
    # burst of new connections (ten resources at once), which clients resend only after 1 s
    request_queue_size = 128


class SimulatorServer:
    """The simulator served over HTTP on a loopback port, in a background thread."""

    def __init__(self, sim: Optional[Simulator] = None, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the simulator only listens on loopback")
        self.sim = sim or Simulator()
        handler = type("Handler", (_Handler,), {"sim": self.sim})
        self.httpd = _Server((host, port), handler)
        # a short poll interval: `stop()` returns within 50 ms instead of serve_forever's 0.5 s
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="simulator", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SimulatorServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
