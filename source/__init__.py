"""The analytics API as a dlt source, built on dlt's REST API source.

Settings resolve through dlt's config providers under `sources.analytics`:
`SOURCES__ANALYTICS__BASE_URL`, `SOURCES__ANALYTICS__UID`, `SOURCES__ANALYTICS__API_KEY` (secret),
or `.dlt/config.toml` / `.dlt/secrets.toml`. Retries follow the seed (429/500/502/503/504, 4
attempts, backoff 2) via dlt's `[runtime]` settings.

Example:
    >>> pipeline = dlt.pipeline("analytics", destination="duckdb")
    >>> pipeline.run(analytics_source())
"""

from typing import Any

from source.settings import RESOURCE_NAMES

__all__ = ["analytics_source", "RESOURCE_NAMES", "RunStats"]


def __getattr__(name: str) -> Any:
    # dlt and its REST API source are imported on first use, by the first request: `import main`
    # (which reads source.settings) stays cheap on a cold start
    if name in ("analytics_source", "RunStats"):
        from source import analytics

        return getattr(analytics, name)
    raise AttributeError(f"module 'source' has no attribute {name!r}")
