"""Settings history: one resource per `/settings/recording/v1/{object}/history` endpoint.

Each version is a snapshot of the settings object with `metadata.lastUpdated`. The API lists
versions newest first and has no "changed since" filter, so the resources are incremental on
`metadata.lastUpdated` themselves: paging stops at the first page that reaches the newest version
already loaded (the stored cursor). The cursor is the resource state (`last_updated`), written only
after the last page was read. Not dlt's incremental: it moves the cursor with every page, so a run
failing on page 2, whose page 1 the loader then drops, would skip page 1's versions for good.
The next-page key is `nextPaginationToken` in the API's schema but `next_pagination_token` in its
examples: either is followed.

Key: `metadata.lastUpdated` (column `metadata__last_updated`). A version is the object as it was
at that time: the time identifies it, and a version never changes afterwards. The cursor is
inclusive: the version at it is read again each run and the merge keeps it once. Content hashes
were the other candidate; they would turn one version into two whenever the API adds a field to
old snapshots. The limit: two versions saved with the same `lastUpdated` load as one row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Iterator, List, Optional

import dlt
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from source.checks import list_page_check
from source.errors import ResourceError
from source.events import parse_time, rfc3339
from source.settings import HISTORY_LIMIT, HISTORY_PATHS

SELECTOR = "versions"
CURSOR = "metadata.lastUpdated"
STATE_KEY = "last_updated"  # RFC 3339 time of the newest version loaded (the resource state)
KEY_COLUMN = "metadata__last_updated"  # CURSOR as dlt names the column
PAGE_PARAM = "paginationToken"
NEXT_PAGE_KEYS = ("nextPaginationToken", "next_pagination_token")  # the schema's and the examples' spelling


def history_resources(client: RESTClient, limit: int = HISTORY_LIMIT) -> List[DltResource]:
    """The six history resources (`<seed resource>_history`), incremental on `metadata.lastUpdated`.

    Args:
        client: the API client (base URL, auth, the retrying session).
        limit: versions per page (`limit`, at most 100).
    """
    return [history_resource(client, name, limit) for name in HISTORY_PATHS]


def history_resource(client: RESTClient, name: str, limit: int = HISTORY_LIMIT) -> DltResource:
    """One history resource by name (a key of `source.settings.HISTORY_PATHS`)."""
    if name not in HISTORY_PATHS:
        raise ValueError(f"no history resource {name!r}: valid names are {', '.join(HISTORY_PATHS)}")
    return dlt.resource(history_versions(client, name, int(limit)), **history_hints(name))


def history_hints(name: str) -> Dict[str, Any]:
    """The dlt hints of a history table (a fresh copy): merged on the version's time."""
    return {
        "name": name,
        "write_disposition": "merge",
        "primary_key": KEY_COLUMN,
        "columns": {KEY_COLUMN: {"data_type": "timestamp", "nullable": False}},
    }


def history_versions(client: RESTClient, name: str, limit: int = HISTORY_LIMIT) -> Iterator[List[Dict[str, Any]]]:
    """The versions at or after the stored cursor, page by page, newest first; what `history_resource` wraps.

    To run it under a failure guard: `dlt.resource(guard(history_versions(...)), **history_hints(name))`.
    Reads and writes the resource state of `name`, so it must run inside that resource.
    """
    path = HISTORY_PATHS[name]
    state = dlt.current.resource_state(name)
    stored = state.get(STATE_KEY)
    cursor: Optional[datetime] = parse_time(stored, f"the {name} resource state '{STATE_KEY}'") if stored else None
    newest = cursor
    pages = 0
    check = list_page_check(name, path, SELECTOR, NEXT_PAGE_KEYS, lambda: pages + 1)

    paginator = JSONResponseCursorPaginator(cursor_path="|".join(NEXT_PAGE_KEYS), cursor_param=PAGE_PARAM)
    for page in client.paginate(
        path, params={"limit": limit}, paginator=paginator, data_selector=SELECTOR, hooks={"response": [check]}
    ):
        pages += 1
        rows = [_with_time(name, path, version) for version in page]
        times = [row["metadata"]["lastUpdated"] for row in rows]
        # inclusive at the cursor: the version loaded last time comes again, and the merge keeps it once
        fresh = [row for row, at in zip(rows, times, strict=True) if cursor is None or at >= cursor]
        if fresh:
            yield fresh
        if times:
            newest = max(times) if newest is None else max(newest, *times)
        # newest first: once a page reaches the stored cursor, older pages hold nothing new
        if cursor is not None and any(at <= cursor for at in times):
            break
    if newest is not None:
        # written only once every page was read: a run that fails part-way reads them all again next time
        state[STATE_KEY] = rfc3339(newest)


def _with_time(name: str, path: str, version: Any) -> Dict[str, Any]:
    """The version with `metadata.lastUpdated` as a datetime (compared as time, not as text)."""
    metadata = version.get("metadata") if isinstance(version, dict) else None
    value = metadata.get("lastUpdated") if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict) or value in (None, ""):
        raise ResourceError(
            name,
            f"a version from GET {path} has no metadata.lastUpdated: the history cannot be "
            "loaded incrementally without it",
            path=path,
        )
    try:
        metadata["lastUpdated"] = value if isinstance(value, datetime) else parse_time(value, "metadata.lastUpdated")
    except ValueError:
        raise ResourceError(
            name, f"a version from GET {path} has metadata.lastUpdated={value!r}, not an RFC 3339 time", path=path
        ) from None
    return version
