"""Building blocks of the analytics source: the REST API config, the HTTP client with the seed's
retry policy, the response checks, and per-resource figures."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from dlt.common import jsonpath
from requests import Response

from source.errors import MissingPrimaryKeyError, ResourceError, ResponseShapeError, UpstreamHTTPError
from source.settings import (
    AUTH_SCHEMES,
    CURSOR_PAGINATOR,
    OVERRIDE_KEYS,
    PATHS,
    PROFILES,
    RESOURCE_DEFAULTS,
    RESOURCE_NAMES,
    RESOURCES,
    RETRY_STATUSES,
    WHOLE_BODY,
)


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

    def of(self, name: str) -> ResourceStats:
        with self._lock:
            return self.resources.setdefault(name, ResourceStats(name))

    @property
    def failed(self) -> Dict[str, ResourceStats]:
        return {n: s for n, s in self.resources.items() if s.failed}


def effective_resources(profile: str, overrides: Optional[Mapping[str, Mapping[str, Any]]]) -> List[Dict[str, Any]]:
    """The resource table with the profile's and then the user's overrides applied.

    Returns one flat dict per resource: name, path, data_selector, params, primary_key,
    write_disposition, paginate.
    """
    if profile not in PROFILES:
        raise ValueError(f"SOURCES__ANALYTICS__PROFILE={profile!r} is not a profile: set it to one of {', '.join(PROFILES)}")
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(RESOURCE_NAMES))
    if unknown:
        raise ValueError(
            f"[sources.analytics.resources] names unknown resources {unknown}: valid names are {', '.join(RESOURCE_NAMES)}"
        )
    table = []
    for entry in RESOURCES:
        name = entry["name"]
        flat: Dict[str, Any] = {
            "name": name,
            "path": entry["endpoint"]["path"],
            "data_selector": entry["endpoint"]["data_selector"],
            "params": dict(entry["endpoint"].get("params", {})),
            "primary_key": RESOURCE_DEFAULTS["primary_key"],
            "write_disposition": RESOURCE_DEFAULTS["write_disposition"],
            "paginate": True,
        }
        for layer, where in ((PROFILES[profile].get(name, {}), f"profile {profile}"), (overrides.get(name, {}), f"[sources.analytics.resources.{name}]")):
            bad = sorted(set(layer) - set(OVERRIDE_KEYS))
            if bad:
                raise ValueError(f"{where}: unknown keys {bad}; allowed: {', '.join(OVERRIDE_KEYS)}")
            for key, value in layer.items():
                if key == "params":
                    flat["params"].update(value)
                else:
                    flat[key] = value
        table.append(flat)
    return table


def rest_api_config(
    base_url: str,
    auth: Dict[str, Any],
    resources: Sequence[Mapping[str, Any]],
    hooks: Mapping[str, Callable[[Response], None]],
    session: Any,
    values: Mapping[str, Any],
) -> Dict[str, Any]:
    """A `RESTAPIConfig` for dlt's REST API source, in the seed's form."""
    return {
        "client": {"base_url": base_url, "auth": auth, "session": session, "paginator": CURSOR_PAGINATOR},
        "resource_defaults": dict(RESOURCE_DEFAULTS),
        "resources": [
            {
                "name": r["name"],
                "primary_key": r["primary_key"],
                "write_disposition": r["write_disposition"],
                "endpoint": {
                    "path": r["path"],
                    "params": {k: _fill(v, values) for k, v in r["params"].items()},
                    "data_selector": r["data_selector"],
                    "paginator": CURSOR_PAGINATOR if r["paginate"] else {"type": "single_page"},
                    "response_actions": [hooks[r["name"]]],
                },
            }
            for r in resources
        ],
    }


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    return value.format(**values) if isinstance(value, str) else value


def auth_config(scheme: str, api_key: str) -> Dict[str, Any]:
    """dlt auth config for the chosen scheme; `basic` sends the key as-is, as the real API documents."""
    if scheme == "bearer":
        return {"type": "bearer", "token": api_key}
    if scheme == "basic":
        return {"type": "api_key", "name": "Authorization", "api_key": f"Basic {api_key}", "location": "header"}
    raise ValueError(f"SOURCES__ANALYTICS__AUTH_SCHEME={scheme!r} is not supported: set it to one of {', '.join(AUTH_SCHEMES)}")


def retrying_session() -> Any:
    """A requests session with the seed's retry policy.

    dlt's default client retries every 5xx; the seed retries exactly `RETRY_STATUSES`, so 501
    fails at once. Attempts, backoff and timeout still come from dlt's `[runtime]` config.
    `raise_for_status=False`: our response hook raises, with the resource's name in the error.
    """
    from dlt.sources.helpers.requests import Client

    return Client(raise_for_status=False, status_codes=RETRY_STATUSES).session


def response_check(resource: Mapping[str, Any], stats: ResourceStats, profile: str) -> Callable[[Response], None]:
    """A response hook for one resource: counts pages and retries, raises clear errors.

    It runs on every HTTP answer (every attempt), before dlt reads the page, so a shape problem
    fails the resource instead of loading an empty table (dlt's default for a missing selector).
    """
    name = resource["name"]
    selector = resource["data_selector"]
    keys = [resource["primary_key"]] if isinstance(resource["primary_key"], str) else list(resource["primary_key"] or [])
    other_profile = "documented" if profile == "seed" else "seed"
    switch = f"if the API answers in the {other_profile} shapes, set SOURCES__ANALYTICS__PROFILE={other_profile}"

    def check(response: Response, *args: Any, **kwargs: Any) -> None:
        page = stats.pages + 1
        if response.status_code >= 400:
            if response.status_code in RETRY_STATUSES:
                stats.retries += 1
            raise UpstreamHTTPError(name, response, page)
        path = PATHS[name]
        try:
            body = response.json()
        except ValueError:
            raise ResponseShapeError(
                name, f"the answer from GET {path} (page {page}) is not JSON (content-type {response.headers.get('content-type')!r})",
                status=response.status_code, path=path, page=page,
            ) from None
        records = _select(body, selector)
        if records is None:
            present = ", ".join(sorted(body)) if isinstance(body, dict) else type(body).__name__
            raise ResponseShapeError(
                name, f"the answer from GET {path} (page {page}) has no '{selector}' (the data selector; found: {present}); {switch}",
                status=response.status_code, path=path, page=page,
            )
        if selector == WHOLE_BODY and isinstance(body, dict) and isinstance(body.get(name), list):
            raise ResponseShapeError(
                name, f"the answer from GET {path} is a list under '{name}', not one settings object; {switch}",
                status=response.status_code, path=path, page=page,
            )
        for key in keys:
            missing = sum(1 for r in records if not isinstance(r, dict) or r.get(key) is None)
            if missing:
                raise MissingPrimaryKeyError(
                    name,
                    f"{missing} of {len(records)} records on page {page} of GET {path} have no primary key '{key}'; "
                    f"set the key with [sources.analytics.resources.{name}] primary_key = \"<field>\" in .dlt/config.toml; {switch}",
                    status=response.status_code, path=path, page=page,
                )
        stats.pages += 1

    return check


def _select(body: Any, selector: str) -> Optional[List[Any]]:
    if selector == WHOLE_BODY:
        return [body] if isinstance(body, dict) else None
    if not isinstance(body, dict):
        return None
    found = jsonpath.find_values(selector, body)
    if not found:
        return None
    value = found[0] if len(found) == 1 else found
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else None


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
        if isinstance(error, UpstreamHTTPError) and error.status in RETRY_STATUSES:
            stats.retries -= 1  # the last answer was given up on, not retried
        if not isolate:
            if error is exc:
                raise
            raise error from exc
    finally:
        stats.seconds = round(time.monotonic() - started, 3)


def _as_resource_error(exc: Exception, stats: ResourceStats) -> Exception:
    """Name the resource, path and page in errors that requests raises without them."""
    from requests import ConnectionError as RequestsConnectionError, Timeout

    if isinstance(exc, (ResourceError, UpstreamHTTPError)):
        return exc
    path = PATHS.get(stats.name)
    page = stats.pages + 1
    if isinstance(exc, Timeout):
        reason = (f"no answer from GET {path} (page {page}) within the request timeout, on every attempt "
                  f"(RUNTIME__REQUEST_TIMEOUT, RUNTIME__REQUEST_MAX_ATTEMPTS)")
    elif isinstance(exc, RequestsConnectionError):
        reason = f"could not connect for GET {path} (page {page}), on every attempt: check SOURCES__ANALYTICS__BASE_URL"
    else:
        return exc
    return ResourceError(stats.name, reason, path=path, page=page)


def error_of(exc: BaseException) -> Optional[BaseException]:
    """The first ResourceError / UpstreamHTTPError in an exception's chain (dlt wraps them twice)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ResourceError, UpstreamHTTPError)):
            return exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None
