"""Hostile answers of the API stand-in: cursor chains that never end, a body that drips, odd shapes,
keys that change type, credentials in records. Each is a `Fault` kind (see simulator.server.Fault).

kinds:
  cursor_repeat   every page carries the same next-page token
  cursor_cycle    tokens go A -> B -> A -> ...
  endless         a new token and new records on every page, for ever
  drip            the normal page, sent one byte every `seconds`
  string_records  the records are strings, not objects
  null_selector   the data key is present and null
  redirect        302 with an empty body (Location: /moved)
  key_types       `id` as numbers on page 1 and strings (some not numeric) after; `field` "int"/"str": all pages
  secret_fields   records carry credential-named fields (also nested)
  deep_record     one record nested 150 levels deep
  big_int         one record with an integer beyond 64 bits
  key_object      one record whose `id` is an object (dlt cannot normalize it into the key column)
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

from simulator.data import seed_record

KINDS = (
    "cursor_repeat",
    "cursor_cycle",
    "endless",
    "drip",
    "string_records",
    "null_selector",
    "redirect",
    "key_types",
    "secret_fields",
    "deep_record",
    "big_int",
    "key_object",
)
CYCLE = {"": "A", "A": "B", "B": "A"}
CYCLE_OFFSET = {"": 0, "A": 1, "B": 2}
SECRET_VALUE = "whsec-planted-9f3a"  # tests assert it never reaches the warehouse


def answer(
    fault: Any, resource: str, offset_token: str, page_size: int, total: int, normal: Dict[str, Any]
) -> Tuple[int, Dict[str, str], bytes]:
    """The answer for one request under a hostile `fault` (`normal`: the page the API would send)."""
    kind = fault.kind
    if kind == "cursor_repeat":
        return _ok({resource: _records(resource, 0, page_size), "nextPaginationToken": "A"})
    if kind == "cursor_cycle":
        start = CYCLE_OFFSET.get(offset_token, 0) * page_size
        return _ok(
            {resource: _records(resource, start, page_size), "nextPaginationToken": CYCLE.get(offset_token, "A")}
        )
    if kind == "endless":
        start = int(offset_token or 0)
        return _ok({resource: _records(resource, start, page_size), "nextPaginationToken": str(start + page_size)})
    if kind == "drip":
        return 200, {"_drip": str(fault.seconds)}, json.dumps(normal).encode()
    if kind == "string_records":
        return _ok({resource: ["a", "b"]})
    if kind == "null_selector":
        return _ok({resource: None})
    if kind == "redirect":
        return 302, {"Location": "/moved", "Content-Type": "text/plain"}, b""
    if kind == "key_types":
        page = int(offset_token or 0) // max(page_size, 1) + 1
        for record in normal.get(resource, []):
            i = int(str(record["id"]).rsplit("-", 1)[-1])
            as_int = fault.field == "int" or (fault.field is None and page == 1)
            record["id"] = i if as_int else (str(i) if i % 2 == 0 else f"abc{i}")
        return _ok(normal)
    if kind == "secret_fields":
        for record in normal.get(resource, []):
            record["signingSecret"] = SECRET_VALUE
            record["auth"] = {"apiKey": SECRET_VALUE, "user": "hooks"}
            record["Password"] = SECRET_VALUE
        return _ok(normal)
    if kind in ("deep_record", "big_int"):
        records = normal.get(resource, [])
        if records:
            nested: Any = 1
            for _ in range(150):
                nested = {"a": nested}
            records[0]["detail"] = nested if kind == "deep_record" else {"count": 2**70}
        return _ok(normal)
    if kind == "key_object":
        records = normal.get(resource, [])
        if records:
            records[0]["id"] = {"value": records[0]["id"]}
        return _ok(normal)
    raise ValueError(f"unknown hostile kind {kind!r}")


def _records(resource: str, start: int, count: int) -> List[Dict[str, Any]]:
    return [seed_record(resource, i) for i in range(start, start + count)]


def _ok(body: Any) -> Tuple[int, Dict[str, str], bytes]:
    return 200, {}, json.dumps(body).encode()
