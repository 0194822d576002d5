"""The HTTP side of the source: auth, dlt's retrying session with the seed's retry policy, and an
adapter that bounds each answer and the run.

dlt's `Client` retries; requests' `timeout` bounds each socket read, not an answer: an API that sends
one byte a second holds a page for as long as it likes. `BoundedAdapter` reads the whole body itself
within the request timeout, and refuses to start a request past the run's deadline.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any, Callable, Dict, Optional

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ReadTimeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from source.configuration import Runtime
from source.errors import TRANSIENT_ERRORS, DeadlineExceededError, RunEndedError
from source.settings import RETRY_STATUSES

_CHUNK = 64 * 1024

# Called by the thread that sent a request, once the request is written to its socket and before
# its answer is read; None: nothing is called. The reading process sets it (its own copy, after the
# fork; source/reader_process.py) to hand a page over while the next request waits for its answer.
# Through a proxy, requests' proxy managers keep urllib3's own connections: no call, and the
# reading process hands each page over after its hold instead.
request_sent_hook: Optional[Callable[[], None]] = None


class _SentHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        if request_sent_hook is not None:
            request_sent_hook()


class _SentHTTPSConnection(_SentHTTPConnection, HTTPSConnection):
    """The same `request`, before HTTPSConnection's TLS (an HTTPSConnection is an HTTPConnection)."""


class _SentHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _SentHTTPConnection


class _SentHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _SentHTTPSConnection


def auth_headers(scheme: str, api_key: str) -> Dict[str, str]:
    """The Authorization header for the chosen scheme; `basic` sends the key as-is, as the real API documents."""
    return {"Authorization": f"{'Bearer' if scheme == 'bearer' else 'Basic'} {api_key}"}


class BoundedAdapter(HTTPAdapter):
    """Counts transient failures (no response hook sees them), bounds the whole answer by the request
    timeout, and starts no request after the run's deadline or once the run has ended (`ended` set:
    a reading thread in a retry's back-off must not call the API after the run has answered)."""

    def __init__(
        self,
        on_transient_error: Callable[[], None],
        deadline: Optional[float],
        ended: Optional[threading.Event] = None,
    ) -> None:
        super().__init__(pool_maxsize=4)  # one chain per resource: one connection, a few spare
        self._on_transient_error = on_transient_error
        self._deadline = deadline
        self._ended = ended

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """urllib3's pools, with connections that call `request_sent_hook` once a request is sent."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _SentHTTPConnectionPool, "https": _SentHTTPSConnectionPool}

    def send(  # type: ignore[override]  # requests passes verify/cert/proxies through **kwargs
        self, request: PreparedRequest, stream: bool = False, timeout: Any = None, **kwargs: Any
    ) -> Response:
        if self._ended is not None and self._ended.is_set():
            raise RunEndedError("the run had ended before the request was sent")
        budget = _read_timeout(timeout)
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceededError("the run deadline passed before the request was sent")
            budget = min(budget, left) if budget else left
            timeout = _capped(timeout, left)
        try:
            response = super().send(request, stream=True, timeout=timeout, **kwargs)
            if not stream:
                _read_within(response, budget)
            return response
        except TRANSIENT_ERRORS:
            self._on_transient_error()
            raise


def _read_timeout(timeout: Any) -> Optional[float]:
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    return float(timeout) if timeout is not None else None


def _capped(timeout: Any, left: float) -> Any:
    if isinstance(timeout, tuple):
        return tuple(min(t, left) if t is not None else left for t in timeout)
    return min(timeout, left) if timeout is not None else left


def _read_within(response: Response, budget: Optional[float]) -> None:
    """Read the body within `budget` seconds in all, then hand it to requests as an in-memory stream."""
    started = time.monotonic()
    chunks = []
    raw = response.raw
    while True:
        chunk = (
            raw.read1(_CHUNK, decode_content=True) if hasattr(raw, "read1") else raw.read(_CHUNK, decode_content=True)
        )
        if not chunk:
            break
        chunks.append(chunk)
        if budget is not None and time.monotonic() - started > budget:
            response.close()
            raise ReadTimeout(
                f"the answer took longer than {budget:g} s in all (RUNTIME__REQUEST_TIMEOUT)", request=response.request
            )
    # requests reads `raw` when `.content` is first asked for: the body is read once, here
    response.raw = io.BytesIO(b"".join(chunks))


def retrying_session(
    runtime: Runtime,
    base_url: str,
    on_transient_error: Callable[[], None],
    deadline: Optional[float],
    ended: Optional[threading.Event] = None,
) -> Any:
    """A requests session with the seed's retry policy, for one resource's requests to `base_url`.

    dlt's default client retries every 5xx; the seed retries exactly `RETRY_STATUSES`, so 501
    fails at once. `raise_for_status=False`: our response hook raises, with the resource's name.
    The environment's proxy variables and CA bundle apply as requests would apply them to
    `base_url`, read once (`environment_read_once`); `~/.netrc` does not apply.
    """
    from dlt.sources.helpers.requests import Client

    session = Client(
        request_timeout=runtime.request_timeout,
        raise_for_status=False,
        status_codes=RETRY_STATUSES,
        request_max_attempts=runtime.request_max_attempts,
        request_backoff_factor=runtime.request_backoff_factor,
        request_max_retry_delay=runtime.request_max_retry_delay,
    ).session
    adapter = BoundedAdapter(on_transient_error, deadline, ended)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return environment_read_once(session, base_url)


def environment_read_once(session: Any, base_url: str) -> Any:
    """`session` with the proxies and CA bundle the environment gives `base_url`, and `trust_env` off.

    requests reads the environment again for every request it sends: every variable, twice, for the
    proxies, then `~/.netrc`. That is ~0.5 ms between an answer and the next request, 0.05 s over a
    chain of 100 pages (docs/benchmarks.md). A session's requests all go to the API's host, so one
    read, made with requests' own `merge_environment_settings`, gives the same proxies and bundle.
    `~/.netrc` is left out on purpose: an entry for the API's host would replace the key's
    Authorization header with its own login (requests applies it over the header).
    """
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify, session.cert = found["verify"], found["cert"]
    session.trust_env = False
    return session
