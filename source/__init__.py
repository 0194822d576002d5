"""The analytics API as a dlt source: `from source import analytics_source` (see `source.analytics`).

dlt is imported on first use of a name below, so reading `source.settings` stays cheap."""

from typing import Any

from source.settings import RESOURCE_NAMES

__all__ = ["analytics_source", "resolve_source_config", "build_source", "RunOptions", "RESOURCE_NAMES"]

_LAZY = {
    "analytics_source": "source.analytics",
    "resolve_source_config": "source.analytics",
    "build_source": "source.build",
    "RunOptions": "source.build",
}


def __getattr__(name: str) -> Any:
    # dlt and its REST client are imported on first use, by the first request: `import main`
    # (which reads source.settings) stays cheap on a cold start
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'source' has no attribute {name!r}")
