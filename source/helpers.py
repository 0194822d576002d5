"""Building blocks of the analytics source: the REST API config from the resource table, auth,
and the HTTP client with the seed's retry policy."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence
from urllib.parse import urlsplit

from dlt.common import jsonpath
from requests import Response
from requests.adapters import HTTPAdapter

from source.errors import TRANSIENT_ERRORS
from source.settings import AUTH_SCHEMES, CURSOR_PAGINATOR, OVERRIDE_KEYS, PROFILES, RESOURCE_DEFAULTS, RESOURCE_NAMES, RESOURCES, RETRY_STATUSES


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
                    # compiled once: dlt would parse the JSONPath again on every page
                    "data_selector": jsonpath.compile_path(r["data_selector"]),
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


class _CountingAdapter(HTTPAdapter):
    """Reports timeouts and connection errors: dlt retries them, and no response hook sees them."""

    def __init__(self, on_transient_error: Callable[[str], None]) -> None:
        super().__init__(pool_maxsize=50)  # as dlt's Client mounts
        self._on_transient_error = on_transient_error

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send(request, *args, **kwargs)
        except TRANSIENT_ERRORS:
            self._on_transient_error(urlsplit(request.url).path)
            raise


def retrying_session(on_transient_error: Optional[Callable[[str], None]] = None) -> Any:
    """A requests session with the seed's retry policy.

    dlt's default client retries every 5xx; the seed retries exactly `RETRY_STATUSES`, so 501
    fails at once. Attempts, backoff and timeout still come from dlt's `[runtime]` config.
    `raise_for_status=False`: our response hook raises, with the resource's name in the error.
    """
    from dlt.sources.helpers.requests import Client

    session = Client(raise_for_status=False, status_codes=RETRY_STATUSES).session
    if on_transient_error is not None:
        adapter = _CountingAdapter(on_transient_error)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session
