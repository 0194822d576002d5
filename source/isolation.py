"""The failure guard: a resource that fails is recorded and stops, instead of failing the whole extraction.

dlt fails a whole extraction when one resource raises; a scheduled loader should still load the
others. With `isolate`, the guard records the error in the resource's figures and ends its pages;
the loader then drops what that resource extracted (loader.pipeline).
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Optional

from requests import Timeout

from source.errors import TRANSIENT_ERRORS, DeadlineExceededError, ResourceError, UpstreamHTTPError
from source.figures import ResourceFigures
from source.settings import RETRY_STATUSES


def guarded(
    pages: Iterator[Any], figures: ResourceFigures, isolate: bool, started: Optional[float] = None
) -> Iterator[Any]:
    """Yield a resource's pages, counting rows and time; with `isolate`, record a failure instead of raising."""
    started = started if started is not None else time.monotonic()
    try:
        for page in pages:
            figures.rows += len(page) if isinstance(page, list) else 1
            yield page
    except Exception as exc:
        error = as_resource_error(exc, figures)
        figures.error = error
        if isinstance(exc, TRANSIENT_ERRORS) or (
            isinstance(error, UpstreamHTTPError) and error.status in RETRY_STATUSES
        ):
            figures.retries = max(0, figures.retries - 1)  # the last attempt was given up on, not retried
        if not isolate:
            if error is exc:
                raise
            raise error from exc
    finally:
        figures.seconds = round(time.monotonic() - started, 3)


def as_resource_error(exc: BaseException, figures: ResourceFigures) -> BaseException:
    """Name the resource, path and page in errors that requests (or the deadline) raise without them."""
    path = figures.path
    page = figures.pages + 1
    if isinstance(exc, DeadlineExceededError):
        reason = (
            f"deadline: the run deadline (RUN_DEADLINE_SECONDS) passed while reading GET {path} (page {page}); "
            f"{figures.pages} page(s) read, none loaded; the next run reads it again"
        )
        return ResourceError(figures.name, reason, path=path, page=page)
    if not isinstance(exc, TRANSIENT_ERRORS):
        return exc
    if isinstance(exc, Timeout):
        reason = (
            f"no complete answer from GET {path} (page {page}) within the request timeout, on every attempt "
            f"(RUNTIME__REQUEST_TIMEOUT, RUNTIME__REQUEST_MAX_ATTEMPTS)"
        )
    else:
        reason = f"could not connect for GET {path} (page {page}), on every attempt: check SOURCES__ANALYTICS__BASE_URL"
    return ResourceError(figures.name, reason, path=path, page=page)
