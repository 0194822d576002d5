"""Changes to the loader, applied inside a benchmark run by monkeypatching (`--patch NAME`).

Each one models a proposed code change (docs/benchmarks.md, "Levers") so that its effect can be
measured on the unchanged tree; the project's files are not touched. They are applied in the
child process after the project's modules are imported and before the run starts.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from typing import Any, Iterator


def compiled_selectors() -> None:
    """Parse each JSONPath data selector once instead of on every page.

    dlt's `jsonpath.find_values(str, ...)` parses the path with a freshly built parser each time
    (~1 ms idle, 3-5 ms under load), twice a page here (dlt's data selector and the response check).
    Proposed change: pass `jsonpath.compile_path(selector)` in the REST API config and compile
    once in the response check."""
    import dlt.common.jsonpath as jp

    original = jp.compile_path
    cache: dict = {}

    def compile_path(s: Any) -> Any:
        if isinstance(s, str):
            if s not in cache:
                cache[s] = original(s)
            return cache[s]
        return original(s)

    jp.compile_path = compile_path


_DONE = object()


def prefetched(pages: Any, depth: int = 4) -> Iterator[Any]:
    """Yield the pages of `pages`, read by a thread of its own up to `depth` pages ahead."""
    ahead: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages() if callable(pages) else pages:
                while not stop.is_set():
                    try:
                        ahead.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_DONE)
        except BaseException as exc:  # noqa: B036 (raised in the consumer)
            ahead.put(exc)

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(produce,), name="prefetch", daemon=True).start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def prefetch() -> None:
    """Read every parallelized resource's pages ahead in a thread of its own (bounded queue).

    dlt sends a parallelized resource's next request only after its main thread has taken the
    previous page; with read-ahead the next request of a cursor chain goes out at once."""
    from dlt.extract.resource import DltResource

    original = DltResource.parallelize

    def parallelize(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._pipe.replace_gen(prefetched(self._pipe.gen))
        return original(self, *args, **kwargs)

    DltResource.parallelize = parallelize


def _duckdb_caps(**caps: Any) -> None:
    import loader.pipeline as lp

    original = lp.destination_for

    def destination_for(settings: Any) -> Any:
        dest = original(settings)
        if getattr(settings, "destination", None) == "duckdb":
            dest.caps_params.update(caps)
        return dest

    lp.destination_for = destination_for


def duckdb_parquet() -> None:
    """DuckDB loads parquet files (`COPY`-like scans) instead of `INSERT ... VALUES` statements.

    Proposed change: `dlt.destinations.duckdb(credentials=path, preferred_loader_file_format="parquet")`
    in `loader.pipeline.destination_for` (DuckDB only: BigQuery keeps jsonl)."""
    _duckdb_caps(preferred_loader_file_format="parquet")


def duckdb_jsonl() -> None:
    """DuckDB loads jsonl files (`read_json`) instead of `INSERT ... VALUES` statements."""
    _duckdb_caps(preferred_loader_file_format="jsonl")


def duckdb_memory_limit() -> None:
    """DuckDB's `memory_limit` (DESTINATION__DUCKDB__MEMORY_LIMIT, default 1GB) on every connection.

    Proposed change: `credentials=DuckDbCredentials(path, global_config={"memory_limit": ...})`
    in `loader.pipeline.destination_for`."""
    import os

    import loader.pipeline as lp

    original = lp.destination_for

    def destination_for(settings: Any) -> Any:
        dest = original(settings)
        if getattr(settings, "destination", None) == "duckdb":
            import dlt
            from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

            limit = os.environ.get("DESTINATION__DUCKDB__MEMORY_LIMIT") or "1GB"
            given = dest.config_params["credentials"]
            if isinstance(given, DuckDbCredentials):  # the loader sets its own already
                given.global_config = {**(given.global_config or {}), "memory_limit": limit}
                return dest
            credentials = DuckDbCredentials(str(given), global_config={"memory_limit": limit})
            fresh = dlt.destinations.duckdb(credentials=credentials)
            fresh.caps_params.update(dest.caps_params)
            return fresh
        return dest

    lp.destination_for = destination_for


def switch_interval() -> None:
    """`sys.setswitchinterval(0.001)`: a thread waiting for an HTTP answer gets the GIL back within
    1 ms instead of 5 ms while another thread runs Python code (normalize, dlt's extract loop)."""
    import sys

    sys.setswitchinterval(0.001)


PATCHES = {fn.__name__: fn for fn in (compiled_selectors, prefetch, duckdb_parquet, duckdb_jsonl, duckdb_memory_limit, switch_interval)}
