"""Checks on every HTTP answer, before dlt reads it: clear errors instead of silent empty tables,
and a cursor chain that cannot run for ever."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set

from dlt.common import jsonpath
from requests import Response

from source.errors import CursorChainError, MissingPrimaryKeyError, ResponseShapeError, UpstreamHTTPError
from source.figures import ResourceFigures
from source.settings import CURSOR_PAGINATOR, RETRY_STATUSES, SOURCE_NAME, WHOLE_BODY

CURSOR = CURSOR_PAGINATOR["cursor_path"]


def response_check(
    resource: Mapping[str, Any], figures: ResourceFigures, profile: str, max_pages: int
) -> Callable[..., None]:
    """A response hook for one resource's chain in one run: counts pages and retries, raises clear errors.

    It runs on every HTTP answer (every attempt), before dlt reads the page, so a shape problem
    fails the resource instead of loading an empty table (dlt's default for a missing selector).
    A cursor seen before in the chain, or a chain longer than `max_pages`, fails the resource.
    """
    name = resource["name"]
    path = resource["path"]
    selector = resource["data_selector"]
    keys = list(resource["primary_key"])
    compiled = jsonpath.compile_path(selector)  # parsing a JSONPath costs ~1 ms: once, not per page
    other = "documented" if profile == "seed" else "seed"
    switch = f"if the API answers in the {other} shapes, set SOURCES__ANALYTICS__PROFILE={other}"
    section = f"[sources.{SOURCE_NAME}.resources.{name}]"
    seen: Dict[str, int] = {}  # cursor -> the page whose answer carried it
    figures.path = path

    def shape_error(response: Response, page: int, what: str) -> ResponseShapeError:
        return ResponseShapeError(
            name, f"the answer from GET {path} (page {page}) {what}", status=response.status_code, path=path, page=page
        )

    def key_error(response: Response, page: int, how_many: str, what: str) -> MissingPrimaryKeyError:
        return MissingPrimaryKeyError(
            name,
            f"{how_many} records on page {page} of GET {path} {what}; "
            f'set the key with {section} primary_key = "<field>" in .dlt/config.toml; {switch}',
            status=response.status_code,
            path=path,
            page=page,
        )

    def check(response: Response, *args: Any, **kwargs: Any) -> None:
        page = figures.pages + 1
        if response.status_code >= 300:
            if response.status_code in RETRY_STATUSES:
                figures.retries += 1
            raise UpstreamHTTPError(name, response, page)
        try:
            body = response.json()
        except RecursionError:
            raise shape_error(
                response, page, "is JSON nested too deep to read; nothing of this resource is loaded this run"
            ) from None
        except ValueError:
            kind = response.headers.get("content-type")
            raise shape_error(
                response,
                page,
                f"is not JSON (content-type {kind!r}, {len(response.content)} bytes); "
                f"expected a JSON object with '{selector}' (the data selector); {switch}",
            ) from None
        keep_parsed(response, body)
        records = _select(body, selector, compiled)
        if records is None:
            if isinstance(body, dict) and selector in body:
                found = f"has '{selector}' (the data selector) set to {_kind(body[selector])}, not a list of records"
            else:
                present = ", ".join(sorted(body)) if isinstance(body, dict) else f"a JSON {_kind(body)}"
                found = f"has no '{selector}' (the data selector; found: {present or 'an empty object'})"
            raise shape_error(response, page, f"{found}; {switch}")
        if selector == WHOLE_BODY and isinstance(body, dict) and isinstance(body.get(name), list):
            raise shape_error(response, page, f"is a list under '{name}', not one settings object; {switch}")
        not_objects = [r for r in records if not isinstance(r, dict)]
        if not_objects:
            raise shape_error(
                response,
                page,
                f"has {len(not_objects)} of {len(records)} records that are not JSON objects "
                f"(e.g. a {_kind(not_objects[0])}) under '{selector}'; {switch}",
            )
        token = body.get(CURSOR) if isinstance(body, dict) else None
        if not resource["paginate"] and token:
            raise shape_error(
                response,
                page,
                f"has a '{CURSOR}' (more pages follow) but the {profile} profile reads "
                f"one page only: part of the data would load; {switch}, or set {section} paginate = true",
            )
        for key in keys:
            missing = sum(1 for r in records if r.get(key) is None)
            if missing:
                raise key_error(response, page, f"{missing} of {len(records)}", f"have no primary key '{key}'")
            # dlt would flatten it into other columns (`id__value`, a child table) and leave the key empty
            shaped = [r[key] for r in records if isinstance(r[key], (dict, list))]
            if shaped:
                kind = "an object" if isinstance(shaped[0], dict) else "a list"
                what = f"have a primary key '{key}' that is {kind}, not a value"
                raise key_error(response, page, f"{len(shaped)} of {len(records)}", what)
        if resource["paginate"] and token:
            _check_cursor(name, path, page, str(token), seen, max_pages)
        figures.pages += 1

    return check


def list_page_check(
    name: str, path: str, selector: str, next_keys: Sequence[str], page: Callable[[], int]
) -> Callable[..., None]:
    """A response hook for a paginated list beyond the seed (users, settings history): an error status
    raises with the response (dlt still retries 429/5xx), a page without the list or a next-page token
    seen before fails the resource. `page()` is the number of the page being read."""
    seen: Set[Any] = set()  # next-page tokens as the API sent them

    def check(response: Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code >= 400:
            raise UpstreamHTTPError(name, response, page())
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get(selector), list):
            found = ", ".join(sorted(body)) if isinstance(body, dict) else type(body).__name__
            raise ResponseShapeError(
                name,
                f"the answer from GET {path} (page {page()}) has no list '{selector}' (found: {found})",
                status=response.status_code,
                path=path,
                page=page(),
            )
        token = next((body[k] for k in next_keys if body.get(k)), None)
        if token and token in seen:
            raise CursorChainError(
                name,
                f"GET {path} answered the next-page token {token!r} a second time: the pages would loop",
                path=path,
                page=page(),
            )
        seen.add(token)
        keep_parsed(response, body)

    return check


def keep_parsed(response: Response, body: Any) -> None:
    """dlt reads the page with response.json() next: hand it this parse instead of a second one."""
    response.json = lambda **_: body  # type: ignore[method-assign]  # an instance attribute shadows the method


def _check_cursor(name: str, path: str, page: int, token: str, seen: Dict[str, int], max_pages: int) -> None:
    shown = token if len(token) <= 40 else f"{token[:37]}..."
    if token in seen:
        raise CursorChainError(
            name,
            f"the cursor '{shown}' on page {page} of GET {path} was already returned on page {seen[token]}: "
            f"the API's cursor chain loops; nothing of this resource is loaded this run",
            path=path,
            page=page,
        )
    if page >= max_pages:
        raise CursorChainError(
            name,
            f"GET {path} still has a next page after {page} pages (the cap, "
            f"SOURCES__ANALYTICS__MAX_PAGES={max_pages}); "
            f"nothing of this resource is loaded this run: raise the cap if the API really holds this much",
            path=path,
            page=page,
        )
    seen[token] = page


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


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
