"""Per-resource figures of a run (rows, pages, retries, seconds) and the failure guard."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from requests import Timeout

from source.errors import TRANSIENT_ERRORS, ResourceError, UpstreamHTTPError
from source.settings import PATHS, RETRY_STATUSES


@dataclass
class ResourceStats:
    """Figures of one resource in one run, filled from the HTTP hooks and the generator guard."""

    name: str
    rows: int = 0
    pages: int = 0
    retries: int = 0
    seconds: float = 0.0
    error: Optional[BaseException] = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class RunStats:
    """Figures of all resources of one source instance.

    With `isolate=True` a resource that fails is recorded here and stops, instead of failing the
    whole extraction; the caller then drops what that resource extracted (see loader.pipeline).
    """

    isolate: bool = False
    resources: Dict[str, ResourceStats] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    readers: List[Any] = field(default_factory=list, repr=False)  # source.prefetch.ReadAhead, one per resource

    def of(self, name: str) -> ResourceStats:
        with self._lock:
            return self.resources.setdefault(name, ResourceStats(name))

    def stop_reading(self) -> None:
        """Stop the read-ahead threads of resources that were not (fully) extracted."""
        for reader in self.readers:
            reader.stop()

    @property
    def failed(self) -> Dict[str, ResourceStats]:
        return {n: s for n, s in self.resources.items() if s.failed}


def guarded(pages: Union[Iterator[Any], Callable[[], Iterator[Any]]], stats: ResourceStats, isolate: bool) -> Iterator[Any]:
    """Yield a resource's pages, counting rows and time; with `isolate`, record a failure instead of raising."""
    started = time.monotonic()
    try:
        for page in pages() if callable(pages) else pages:
            stats.rows += len(page) if isinstance(page, list) else 1
            yield page
    except Exception as exc:
        error = _as_resource_error(exc, stats)
        stats.error = error
        if isinstance(exc, TRANSIENT_ERRORS) or (isinstance(error, UpstreamHTTPError) and error.status in RETRY_STATUSES):
            stats.retries -= 1  # the last attempt was given up on, not retried
        if not isolate:
            if error is exc:
                raise
            raise error from exc
    finally:
        stats.seconds = round(time.monotonic() - started, 3)


def _as_resource_error(exc: Exception, stats: ResourceStats) -> Exception:
    """Name the resource, path and page in errors that requests raises without them."""
    if not isinstance(exc, TRANSIENT_ERRORS):
        return exc
    path = PATHS.get(stats.name)
    page = stats.pages + 1
    if isinstance(exc, Timeout):
        reason = (f"no answer from GET {path} (page {page}) within the request timeout, on every attempt "
                  f"(RUNTIME__REQUEST_TIMEOUT, RUNTIME__REQUEST_MAX_ATTEMPTS)")
    else:
        reason = f"could not connect for GET {path} (page {page}), on every attempt: check SOURCES__ANALYTICS__BASE_URL"
    return ResourceError(stats.name, reason, path=path, page=page)

