"""Checks on every HTTP answer, before dlt reads it: clear errors instead of silent empty tables."""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional

from dlt.common import jsonpath
from requests import Response

from source.errors import MissingPrimaryKeyError, ResponseShapeError, UpstreamHTTPError
from source.settings import CURSOR_PAGINATOR, PATHS, RETRY_STATUSES, WHOLE_BODY
from source.stats import ResourceStats


def response_check(resource: Mapping[str, Any], stats: ResourceStats, profile: str) -> Callable[[Response], None]:
    """A response hook for one resource: counts pages and retries, raises clear errors.

    It runs on every HTTP answer (every attempt), before dlt reads the page, so a shape problem
    fails the resource instead of loading an empty table (dlt's default for a missing selector).
    """
    name = resource["name"]
    selector = resource["data_selector"]
    keys = [resource["primary_key"]] if isinstance(resource["primary_key"], str) else list(resource["primary_key"] or [])
    compiled = jsonpath.compile_path(selector)  # parsing a JSONPath costs ~1 ms: once, not per page
    other_profile = "documented" if profile == "seed" else "seed"
    switch = f"if the API answers in the {other_profile} shapes, set SOURCES__ANALYTICS__PROFILE={other_profile}"

    def check(response: Response, *args: Any, **kwargs: Any) -> None:
        page = stats.pages + 1
        if response.status_code >= 400:
            if response.status_code in RETRY_STATUSES:
                stats.retries += 1
            raise UpstreamHTTPError(name, response, page)
        path = PATHS[name]
        try:
            body = response.json()
        except ValueError:
            raise ResponseShapeError(
                name, f"the answer from GET {path} (page {page}) is not JSON (content-type {response.headers.get('content-type')!r}); "
                f"expected a JSON object with '{selector}' (the data selector)",
                status=response.status_code, path=path, page=page,
            ) from None
        # dlt reads the page with response.json() next: hand it this parse instead of a second one
        response.json = lambda **_: body  # type: ignore[method-assign]
        records = _select(body, selector, compiled)
        if records is None:
            present = ", ".join(sorted(body)) if isinstance(body, dict) else type(body).__name__
            raise ResponseShapeError(
                name, f"the answer from GET {path} (page {page}) has no '{selector}' (the data selector; found: {present}); {switch}",
                status=response.status_code, path=path, page=page,
            )
        if selector == WHOLE_BODY and isinstance(body, dict) and isinstance(body.get(name), list):
            raise ResponseShapeError(
                name, f"the answer from GET {path} is a list under '{name}', not one settings object; {switch}",
                status=response.status_code, path=path, page=page,
            )
        cursor = CURSOR_PAGINATOR["cursor_path"]
        if not resource.get("paginate", True) and isinstance(body, dict) and body.get(cursor):
            raise ResponseShapeError(
                name, f"the answer from GET {path} has a '{cursor}' (more pages follow) but the {profile} profile reads "
                f"one page only: part of the data would load; {switch}, or set [sources.analytics.resources.{name}] paginate = true",
                status=response.status_code, path=path, page=page,
            )
        for key in keys:
            missing = sum(1 for r in records if not isinstance(r, dict) or r.get(key) is None)
            if missing:
                raise MissingPrimaryKeyError(
                    name,
                    f"{missing} of {len(records)} records on page {page} of GET {path} have no primary key '{key}'; "
                    f"set the key with [sources.analytics.resources.{name}] primary_key = \"<field>\" in .dlt/config.toml; {switch}",
                    status=response.status_code, path=path, page=page,
                )
        stats.pages += 1

    return check


def _select(body: Any, selector: str, compiled: Any) -> Optional[List[Any]]:
    if selector == WHOLE_BODY:
        return [body] if isinstance(body, dict) else None
    if not isinstance(body, dict):
        return None
    found = jsonpath.find_values(compiled, body)
    if not found:
        return None
    value = found[0] if len(found) == 1 else found
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else None
