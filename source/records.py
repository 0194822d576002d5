"""Credentials never reach the warehouse: fields whose names say secret/token/password/api key are dropped.

A loaded secret outlives every rotation of it and is readable by everyone with access to the
dataset. The check is on field names at any depth, in any case; a resource's `keep_fields`
override loads named fields anyway. The log names the dropped fields, never their values.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Iterable, List, Set

from source.settings import SECRET_FIELD_PATTERN, SOURCE_NAME

log = logging.getLogger("analytics_loader.source")
_SECRET = re.compile(SECRET_FIELD_PATTERN)


def secret_field_dropper(resource: str, keep: Iterable[str]) -> Callable[[Any], Any]:
    """A function for `DltResource.add_map`: drops secret-named fields of a record in place and returns it."""
    kept = set(keep)
    reported: Set[str] = set()

    def drop(record: Any) -> Any:
        dropped: List[str] = []
        _drop(record, "", kept, dropped)
        new = [f for f in dropped if f not in reported]
        if new:
            reported.update(new)
            log.warning(
                f"resource {resource}: dropped field(s) {', '.join(sorted(new))} (the names say secret/token/password/api key); "
                f"to load them set [sources.{SOURCE_NAME}.resources.{resource}] keep_fields = [...]",
                extra={"resource": resource, "dropped_fields": sorted(new)},
            )
        return record

    return drop


def _drop(value: Any, prefix: str, kept: Set[str], dropped: List[str]) -> None:
    if isinstance(value, dict):
        for key in [k for k in value if isinstance(k, str) and _SECRET.search(k)]:
            path = f"{prefix}{key}"
            if key not in kept and path not in kept:
                del value[key]
                dropped.append(path)
        for key, child in value.items():
            if isinstance(child, (dict, list)):
                _drop(child, f"{prefix}{key}.", kept, dropped)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                _drop(item, prefix, kept, dropped)
