"""The analytics API as a dlt source (imported lazily by `source`), built on dlt's REST API source.

Settings resolve through dlt's config providers under `sources.analytics`:
`SOURCES__ANALYTICS__BASE_URL`, `SOURCES__ANALYTICS__UID`, `SOURCES__ANALYTICS__API_KEY` (secret),
or `.dlt/config.toml` / `.dlt/secrets.toml`. Retries follow the seed (429/500/502/503/504, 4
attempts, backoff 2) via dlt's `[runtime]` settings.

Example:
    >>> pipeline = dlt.pipeline("analytics", destination="duckdb")
    >>> pipeline.run(analytics_source())
"""

from typing import Any, Dict, List, Optional

import dlt
from dlt.extract.resource import DltResource
from dlt.sources.rest_api import rest_api_resources

from source.checks import response_check
from source.prefetch import ReadAhead
from source.helpers import auth_config, effective_resources, rest_api_config, retrying_session
from source.stats import RunStats, guarded
from source.settings import PATHS, DEFAULT_AUTH_SCHEME, DEFAULT_PROFILE, DEFAULT_SESSIONS_LIMIT, RESOURCE_NAMES, SOURCE_NAME

__all__ = ["analytics_source", "RESOURCE_NAMES", "RunStats"]


@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME)
def analytics_source(
    base_url: str = dlt.config.value,
    uid: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    profile: str = DEFAULT_PROFILE,
    auth_scheme: str = DEFAULT_AUTH_SCHEME,
    sessions_limit: int = DEFAULT_SESSIONS_LIMIT,
    resources: Optional[Dict[str, Any]] = None,
    run_stats: Any = None,
    read_ahead: int = 4,
    start_now: Optional[List[str]] = None,
) -> List[DltResource]:
    """The ten resources of the analytics API, extracted concurrently.

    Args:
        base_url: API root, e.g. `https://api.example.com`.
        uid: value of the `uid` parameter of `/sessions/v2`.
        api_key: the API key (a secret: never logged).
        profile: `seed` (the specification's shapes) or `documented` (the real API's docs).
        auth_scheme: `bearer` or `basic` (`Authorization: Basic <key>`, key as-is).
        sessions_limit: `limit` of the sessions request under the `documented` profile.
        resources: per-resource overrides, e.g. `{"eventDefs": {"primary_key": "eventName"}}`
            (`[sources.analytics.resources.eventDefs]` in `.dlt/config.toml`).
        run_stats: a `RunStats` to collect per-resource figures; with `RunStats(isolate=True)`
            a failing resource is recorded there instead of failing the extraction.
        read_ahead: pages each resource reads ahead of dlt (a thread per resource).
        start_now: resources whose requests start now, not when dlt first asks; they read up
            to 64 x `read_ahead` pages ahead meanwhile (see loader.pipeline: extracted last).

    Returns:
        The ten resources (select some with `.with_resources(...)`).
    """
    stats = run_stats if run_stats is not None else RunStats()
    table = effective_resources(profile, resources)
    config = rest_api_config(
        base_url=base_url.rstrip("/"),
        auth=auth_config(auth_scheme, api_key),
        resources=table,
        hooks={r["name"]: response_check(r, stats.of(r["name"]), profile) for r in table},
        session=retrying_session(on_transient_error=lambda path: _count_transient(stats, path)),
        values={"uid": uid, "sessions_limit": sessions_limit},
    )
    built = rest_api_resources(config)
    for resource in built:
        # Guard before parallelizing: parallelize() turns the generator into deferred calls.
        pages = guarded(resource._pipe.gen, stats.of(resource.name), stats.isolate)
        early = resource.name in (start_now or ())
        reader = ReadAhead(pages, depth=read_ahead * (64 if early else 1))
        stats.readers.append(reader)
        if early:
            reader.start()
        # the next request goes out as soon as an answer is in, not when dlt asks for the page
        resource._pipe.replace_gen(reader.pages())
        # Each cursor chain is sequential, the ten are independent: extract them concurrently.
        resource.parallelize()
    return built


def _count_transient(stats: RunStats, path: str) -> None:
    for name, resource_path in PATHS.items():
        if path.endswith(resource_path):
            stats.of(name).retries += 1
            return
