"""The `users` resource: `GET /v2/users`, every page, replacing the table each run.

Users have no created/updated time, and a user's `id` may change once the user is identified, so
there is nothing to load incrementally: each run reads all pages and replaces the table (a run
that fails part-way replaces nothing). `properties` (up to 500 keys, nested objects allowed) is
kept: nested objects become columns (`properties__plan__name`), nested lists child tables.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import dlt
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from source.checks import list_page_check
from source.settings import EXTRA_PATHS

USERS = "users"
USERS_PATH = EXTRA_PATHS[USERS]
SELECTOR = "results"
NEXT_PAGE_KEY = "next_page_token"
PAGE_PARAM = "page_token"


def users_resource(client: RESTClient) -> DltResource:
    """All users, page by page (`page_token` / `next_page_token`), as a full refresh (`replace`)."""
    return dlt.resource(user_pages(client), **users_hints())


def users_hints() -> Dict[str, Any]:
    """The dlt hints of the users table (a fresh copy)."""
    # ids load as text whatever JSON type they arrive in
    return {
        "name": USERS,
        "write_disposition": "replace",
        "primary_key": "id",
        "columns": {"id": {"data_type": "text", "nullable": False}},
    }


def user_pages(client: RESTClient) -> Iterator[List[Dict[str, Any]]]:
    """Every page of users; what `users_resource` wraps (`users_hints()`)."""
    pages = 0
    check = list_page_check(USERS, USERS_PATH, SELECTOR, (NEXT_PAGE_KEY,), lambda: pages + 1)

    paginator = JSONResponseCursorPaginator(cursor_path=NEXT_PAGE_KEY, cursor_param=PAGE_PARAM)
    for page in client.paginate(USERS_PATH, paginator=paginator, data_selector=SELECTOR, hooks={"response": [check]}):
        pages += 1
        if page:
            yield list(page)
