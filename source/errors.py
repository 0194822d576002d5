"""Errors the source raises: each names the resource and says what was wrong and what to set."""

from typing import Any, Dict, Optional

from requests import ConnectionError as RequestsConnectionError
from requests import HTTPError, Response, Timeout

from source.settings import RETRY_STATUSES

# Failures with no answer to check: dlt retries them, then the resource fails.
TRANSIENT_ERRORS = (Timeout, RequestsConnectionError)


class ConfigError(ValueError):
    """A setting of the source is missing or wrong. `setting` is its environment variable name."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(message)


class DeadlineExceededError(Exception):
    """The run's deadline (RUN_DEADLINE_SECONDS) passed before a resource finished reading."""


class RunEndedError(Exception):
    """A resource's reading thread asked for a request after its run had answered: none is sent."""


class ResourceError(Exception):
    """A resource could not be loaded. `reason` is the text without the resource's name."""

    def __init__(
        self,
        resource: str,
        reason: str,
        *,
        status: Optional[int] = None,
        path: Optional[str] = None,
        page: Optional[int] = None,
    ) -> None:
        self.resource = resource
        self.reason = reason
        self.status = status
        self.path = path
        self.page = page
        super().__init__(f"resource '{resource}': {reason}")

    def __reduce__(self) -> Any:
        # a long chain's errors cross from its reading process (source/reader_process.py)
        return _rebuilt, (type(self), self.args, self.__dict__)


class UpstreamHTTPError(HTTPError):
    """The API answered with an error status.

    A subclass of `requests.HTTPError` that keeps the response, so that dlt's retry policy
    (`retry_if_status`) still sees the status and retries the ones in `RETRY_STATUSES`.
    """

    def __init__(self, resource: str, response: Response, page: int) -> None:
        self.resource = resource
        self.status = response.status_code
        self.path = _path_of(response)
        self.page = page
        if 300 <= self.status < 400:
            where = response.headers.get("location")
            hint = f"a redirect{f' to {where}' if where else ''}, not followed: check SOURCES__ANALYTICS__BASE_URL"
        elif self.status in (401, 403):
            hint = (
                "the API key was rejected: check SOURCES__ANALYTICS__API_KEY / the API_KEY_SECRET version "
                "and SOURCES__ANALYTICS__AUTH_SCHEME"
            )
        elif self.status in RETRY_STATUSES:
            hint = "gave up after the retries (RUNTIME__REQUEST_MAX_ATTEMPTS)"
        else:
            hint = "not retried"
        self.reason = f"HTTP {self.status} {response.reason or ''} from GET {self.path} (page {page}): {hint}".replace(
            "  ", " "
        )
        super().__init__(f"resource '{resource}': {self.reason}", response=response)

    def __reduce__(self) -> Any:
        # the response (and its request, with our hooks) stays in the reading process: the
        # loader needs the status, path, page and reason
        state = {k: v for k, v in self.__dict__.items() if k not in ("response", "request")}
        return _rebuilt, (type(self), self.args, {**state, "response": None, "request": None})


class ResponseShapeError(ResourceError):
    """A 200 answer that is not what the configured profile expects (never loaded as empty)."""


class MissingPrimaryKeyError(ResourceError):
    """Records without the primary key: merging them would lose or duplicate rows."""


class CursorChainError(ResourceError):
    """A cursor chain that loops (a token seen before) or exceeds the page cap."""


def _rebuilt(cls: Any, args: Any, state: Dict[str, Any]) -> BaseException:
    """An error of `cls` with `args` and attributes `state`, not calling its __init__ (pickling)."""
    error: BaseException = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


def _path_of(response: Response) -> str:
    request = response.request
    url = request.path_url if request is not None else response.url
    return url.split("?", 1)[0]


def error_of(exc: BaseException) -> Optional[BaseException]:
    """The first ResourceError / UpstreamHTTPError in an exception's chain (dlt wraps them twice)."""
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ResourceError, UpstreamHTTPError)):
            return current
        current = current.__cause__ or current.__context__
    return None
