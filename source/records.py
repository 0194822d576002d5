"""What is done to every record before dlt sees it: credentials dropped, unloadable values refused.

Credentials never reach the warehouse: a loaded secret outlives every rotation of it and is readable
by everyone with access to the dataset. Fields whose names say secret/token/password/api key are
dropped at any depth, in any case, unless the resource's `keep_fields` names them; the log names
the dropped fields, never their values.

Values that dlt cannot write (a record nested deeper than its JSON writer recurses, an integer
beyond 64 bits) would fail the whole extraction inside dlt, every resource with it: they fail
their own resource here instead, with the field named.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterable, List, Optional, Set

from source.settings import SECRET_FIELD_PATTERN, SOURCE_NAME

log = logging.getLogger("analytics_loader.source")
_SECRET = re.compile(SECRET_FIELD_PATTERN)
MAX_DEPTH = 100  # far deeper than any real record; dlt's JSON writer gives up a little past 250
_INT64 = (-(2**63), 2**63 - 1)


class RecordCleaner:
    """Cleans the records of one resource, page by page (see the module's docstring)."""

    def __init__(self, resource: str, keep: Iterable[str]) -> None:
        self.resource = resource
        self.kept = set(keep)
        self.reported: Set[str] = set()

    def clean(self, records: List[Any]) -> Optional[str]:
        """Drop secret-named fields in place; return what makes a record unloadable, or None."""
        dropped: List[str] = []
        for record in records:
            problem = self._walk(record, "", dropped, 0)
            if problem:
                return problem
        new = sorted(set(dropped) - self.reported)
        if new:
            self.reported.update(new)
            log.warning(
                f"resource {self.resource}: dropped field(s) {', '.join(new)} "
                "(the names say secret/token/password/api key); "
                f"to load them set [sources.{SOURCE_NAME}.resources.{self.resource}] keep_fields = [...]",
                extra={"resource": self.resource, "dropped_fields": new},
            )
        return None

    def _walk(self, value: Any, prefix: str, dropped: List[str], depth: int) -> Optional[str]:
        if depth > MAX_DEPTH:
            return f"a record nested more than {MAX_DEPTH} levels deep (at '{prefix.rstrip('.')[:200]}')"
        if isinstance(value, dict):
            for key in [k for k in value if isinstance(k, str) and _SECRET.search(k)]:
                path = f"{prefix}{key}"
                if key not in self.kept and path not in self.kept:
                    del value[key]
                    dropped.append(path)
            for key, child in value.items():
                if isinstance(child, (dict, list)):
                    problem = self._walk(child, f"{prefix}{key}.", dropped, depth + 1)
                    if problem:
                        return problem
                elif type(child) is int and not _INT64[0] <= child <= _INT64[1]:
                    return f"an integer beyond 64 bits in field '{prefix}{key}'"
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, (dict, list)):
                    problem = self._walk(item, prefix, dropped, depth + 1)
                    if problem:
                        return problem
                elif type(item) is int and not _INT64[0] <= item <= _INT64[1]:
                    return f"an integer beyond 64 bits in field '{prefix.rstrip('.')}'"
        return None
