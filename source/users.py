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
from requests import Response

from source.checks import keep_parsed
from source.errors import ResourceError, ResponseShapeError, UpstreamHTTPError
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
    seen = set()

    def check(response: Response, *args: Any, **kwargs: Any) -> None:
        # runs on every attempt: an HTTPError with the response keeps dlt's retries of 429/5xx
        if response.status_code >= 400:
            raise UpstreamHTTPError(USERS, response, pages + 1)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get(SELECTOR), list):
            found = ", ".join(sorted(body)) if isinstance(body, dict) else type(body).__name__
            raise ResponseShapeError(
                USERS,
                f"the answer from GET {USERS_PATH} (page {pages + 1}) has no list '{SELECTOR}' (found: {found})",
                status=response.status_code,
                path=USERS_PATH,
                page=pages + 1,
            )
        token = body.get(NEXT_PAGE_KEY)
        if token and token in seen:
            raise ResourceError(
                USERS,
                f"GET {USERS_PATH} answered the {NEXT_PAGE_KEY} {token!r} a second time: the pages would loop",
                path=USERS_PATH,
                page=pages + 1,
            )
        seen.add(token)
        keep_parsed(response, body)

    paginator = JSONResponseCursorPaginator(cursor_path=NEXT_PAGE_KEY, cursor_param=PAGE_PARAM)
    for page in client.paginate(USERS_PATH, paginator=paginator, data_selector=SELECTOR, hooks={"response": [check]}):
        pages += 1
        if page:
            yield list(page)
