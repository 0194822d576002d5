"""Build the analytics source from a checked configuration: one `dlt.resource` per entry of the resource
table, each a generator over dlt's `RESTClient.paginate` with the seed's cursor paginator and retries.

`build_source` is a plain function: the run's plumbing (figures, isolation, read-ahead, deadline)
is passed here by the loader, so the `@dlt.source` signature (source.analytics) holds user
settings only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence

import dlt
from dlt.common import jsonpath
from dlt.common.schema import Schema
from dlt.extract import DltResource, DltSource
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator, SinglePagePaginator

from source.checks import response_check
from source.client import auth_headers, retrying_session
from source.configuration import SourceConfig
from source.figures import ResourceFigures, RunFigures
from source.isolation import guarded
from source.prefetch import ReadAhead
from source.settings import CURSOR_PAGINATOR, KEY_DATA_TYPE, SOURCE_NAME

READ_AHEAD_PAGES = 4  # pages each resource reads ahead of dlt (a thread per resource)
EARLY_READ_AHEAD_PAGES = 256  # for resources started before dlt asks (bounded: memory stays flat)


@dataclass
class RunOptions:
    """How one run drives the source.

    figures: collects per-resource rows/pages/retries/seconds and failures.
    isolate: a failing resource is recorded in `figures` and stops, instead of failing the extraction.
    deadline: a `time.monotonic()` value; past it no request starts and resources still reading fail.
    start_now: resources whose requests start when the source is built, not when dlt first asks.
    cancel: set it to stop every resource's reading thread (the run ended or failed).
    """

    figures: RunFigures = field(default_factory=RunFigures)
    isolate: bool = False
    deadline: Optional[float] = None
    start_now: Sequence[str] = ()
    cancel: threading.Event = field(default_factory=threading.Event)


def build_source(config: SourceConfig, options: Optional[RunOptions] = None) -> DltSource:
    """The analytics source: every resource of `config.resources`, extracted concurrently."""
    options = options or RunOptions()
    resources = [_resource(entry, config, options) for entry in config.resources]
    return DltSource(Schema(SOURCE_NAME), SOURCE_NAME, resources)


def _resource(entry: Mapping[str, Any], config: SourceConfig, options: RunOptions) -> DltResource:
    name = entry["name"]
    figures = options.figures.of(name)
    pages = _pages(entry, config, figures, options.deadline)
    early = name in options.start_now
    reader = ReadAhead(pages, depth=EARLY_READ_AHEAD_PAGES if early else READ_AHEAD_PAGES, deadline=options.deadline, cancel=options.cancel)
    if early:
        reader.start()

    def read() -> Iterator[Any]:
        # the next request goes out as soon as an answer is in, not when dlt asks for the page
        started = reader.started_at if reader.started_at is not None else time.monotonic()
        yield from guarded(reader.pages(), figures, options.isolate, started=started)

    resource = dlt.resource(
        read,
        name=name,
        primary_key=entry["primary_key"] or (),
        write_disposition=entry["write_disposition"],
        columns={key: {"data_type": KEY_DATA_TYPE, "nullable": False} for key in entry["primary_key"]},
        parallelized=True,  # each cursor chain is sequential, the resources are independent
    )
    return resource


def _pages(entry: Mapping[str, Any], config: SourceConfig, figures: ResourceFigures, deadline: Optional[float]) -> Iterator[Any]:
    """The pages of one resource's cursor chain (a generator: nothing is sent until the first page is asked for)."""

    def count_transient() -> None:
        figures.retries += 1

    client = RESTClient(
        base_url=config.base_url,
        headers=auth_headers(config.auth_scheme, config.api_key),
        session=retrying_session(config.runtime, count_transient, deadline),
    )
    paginator = (
        JSONResponseCursorPaginator(cursor_path=CURSOR_PAGINATOR["cursor_path"], cursor_param=CURSOR_PAGINATOR["cursor_param"])
        if entry["paginate"]
        else SinglePagePaginator()
    )
    hooks: Dict[str, Any] = {"response": [response_check(entry, figures, config.profile, config.max_pages)]}
    # compiled once: dlt would parse the JSONPath again on every page
    selector = jsonpath.compile_path(entry["data_selector"])
    for page in client.paginate(entry["path"], params=dict(entry["params"]), paginator=paginator,
                                data_selector=selector, hooks=hooks):
        yield list(page)
