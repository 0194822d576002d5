"""The analytics API as a dlt source (imported lazily by `source`).

Settings resolve through dlt's config providers under `sources.analytics`:
`SOURCES__ANALYTICS__BASE_URL`, `SOURCES__ANALYTICS__UID`, `SOURCES__ANALYTICS__API_KEY` (secret),
or `.dlt/config.toml` / `.dlt/secrets.toml`. Retries follow the seed (429/500/502/503/504, 4
attempts, backoff 2) via dlt's `[runtime]` settings.

Example:
    >>> pipeline = dlt.pipeline("analytics", destination="duckdb")
    >>> pipeline.run(analytics_source())
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import dlt
from dlt.common.configuration import with_config
from dlt.common.typing import TSecretStrValue

from source.build import build_source
from source.configuration import SourceConfig, check_source_config
from source.settings import DEFAULT_AUTH_SCHEME, DEFAULT_MAX_PAGES, DEFAULT_PROFILE, DEFAULT_SESSIONS_LIMIT, SOURCE_NAME

RUNTIME_KEYS = ("request_max_attempts", "request_backoff_factor", "request_timeout", "request_max_retry_delay")


@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME)
def analytics_source(
    base_url: str = dlt.config.value,
    uid: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    profile: str = DEFAULT_PROFILE,
    auth_scheme: str = DEFAULT_AUTH_SCHEME,
    sessions_limit: int = DEFAULT_SESSIONS_LIMIT,
    max_pages: int = DEFAULT_MAX_PAGES,
    resources: Optional[Dict[str, Any]] = None,
    extra_resources: Optional[str] = None,
    events_start: Optional[str] = None,
    events_window_hours: Optional[float] = None,
    events_delay_hours: Optional[float] = None,
    events_segment: Optional[str] = None,
    events_max_windows: Optional[int] = None,
    events_poll_seconds: Optional[float] = None,
    events_poll_timeout_seconds: Optional[float] = None,
) -> Any:
    """The resources of the analytics API, extracted concurrently: the seed's ten, selected by default,
    and those beyond the seed (events, users, settings history), selected by `extra_resources`.

    Args:
        base_url: API root, e.g. `https://api.example.com` (http only on loopback).
        uid: value of the `uid` parameter of `/sessions/v2`.
        api_key: the API key (a secret: never logged).
        profile: `seed` (the specification's shapes) or `documented` (the real API's docs).
        auth_scheme: `bearer` or `basic` (`Authorization: Basic <key>`, key as-is).
        sessions_limit: `limit` of the sessions request under the `documented` profile.
        max_pages: most pages read from one resource in one run.
        resources: per-resource overrides, e.g. `{"eventDefs": {"primary_key": "eventName"}}`
            (`[sources.analytics.resources.eventDefs]` in `.dlt/config.toml`).
        extra_resources: comma-separated resources beyond the seed to select by default.
        events_start: RFC 3339 start of the first events window (events are off until set);
            `events_*`: window length, settle delay, segment, windows per run, polling.

    Returns:
        The resources (select others with `.with_resources(...)`).

    Raises:
        source.errors.ConfigError: a setting is wrong; the message names it and what it accepts.
    """
    config = _checked(locals())
    return list(build_source(config).resources.values())


def runtime_values() -> Dict[str, Any]:
    """dlt's `[runtime]` request settings as configured (env `RUNTIME__...` or `.dlt/config.toml`)."""
    values: Dict[str, Any] = {}
    for key in RUNTIME_KEYS:
        value: Any = dlt.config.get(f"runtime.{key}")
        if value is not None:
            values[key] = value
    return values


@with_config(sections=("sources", SOURCE_NAME))
def resolve_source_config(
    base_url: Optional[str] = None,  # None, not required: check_source_config names what is missing
    uid: Optional[str] = None,
    api_key: Optional[TSecretStrValue] = None,
    profile: str = DEFAULT_PROFILE,
    auth_scheme: str = DEFAULT_AUTH_SCHEME,
    sessions_limit: Any = None,  # Any: dlt would coerce to the default's type, naming no setting
    max_pages: Any = None,
    resources: Any = None,
    extra_resources: Any = None,
    events_start: Any = None,
    events_window_hours: Any = None,
    events_delay_hours: Any = None,
    events_segment: Any = None,
    events_max_windows: Any = None,
    events_poll_seconds: Any = None,
    events_poll_timeout_seconds: Any = None,
) -> SourceConfig:
    """The checked configuration from dlt's providers, for callers that build the source themselves
    (the loader: `source.build.build_source(resolve_source_config(), RunOptions(...))`)."""
    return _checked(locals())


def _checked(values: Dict[str, Any]) -> SourceConfig:
    return check_source_config(
        values["base_url"],
        values["uid"],
        values["api_key"],
        values["profile"],
        values["auth_scheme"],
        DEFAULT_SESSIONS_LIMIT if values["sessions_limit"] is None else values["sessions_limit"],
        DEFAULT_MAX_PAGES if values["max_pages"] is None else values["max_pages"],
        values["resources"],
        runtime_values(),
        values["extra_resources"],
        {k: v for k, v in values.items() if k.startswith("events_")},
    )


__all__ = ["analytics_source", "resolve_source_config"]
