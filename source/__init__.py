"""The analytics API as a dlt source: `from source import analytics_source` (see `source.analytics`).

dlt is imported on first use of `analytics_source`, so reading `source.settings` stays cheap."""

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
