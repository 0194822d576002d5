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
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import dlt
from dlt.common import jsonpath
from dlt.common.schema import Schema
from dlt.extract import DltResource, DltSource
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator, SinglePagePaginator

from source.checks import response_check
from source.client import auth_headers, retrying_session
from source.configuration import SourceConfig
from source.errors import ResourceError
from source.figures import ResourceFigures, RunFigures
from source.isolation import guarded
from source.prefetch import ReadAhead
from source.records import RecordCleaner
from source.settings import CURSOR_PAGINATOR, EXTRA_PATHS, EXTRA_RESOURCE_NAMES, KEY_DATA_TYPE, SOURCE_NAME

READ_AHEAD_PAGES = 4  # pages each resource reads ahead of dlt (a thread per resource)
EARLY_READ_AHEAD_PAGES = 256  # for resources started before dlt asks (bounded: memory stays flat)


@dataclass
class RunOptions:
    """How one run drives the source.

    figures: collects per-resource rows/pages/retries/seconds and failures.
    isolate: a failing resource is recorded in `figures` and stops, instead of failing the extraction.
    deadline: a `time.monotonic()` value; past it no request starts and resources still reading fail.
    start_now: resources whose requests start when the source is built, not when dlt first asks.
    cancel: set it to stop every resource's reading thread (the run ended or failed); `end()` sets it.
    """

    figures: RunFigures = field(default_factory=RunFigures)
    isolate: bool = False
    deadline: Optional[float] = None
    start_now: Sequence[str] = ()
    cancel: threading.Event = field(default_factory=threading.Event)
    readers: List[ReadAhead] = field(default_factory=list)

    def end(self) -> None:
        """Stop every resource's reading; a reading process has ended when this returns."""
        self.cancel.set()
        for reader in self.readers:
            reader.join()


def build_source(config: SourceConfig, options: Optional[RunOptions] = None) -> DltSource:
    """The analytics source, its resources extracted concurrently: the seed's ten (selected) and
    those beyond the seed (selected when named in `config.extra_resources`)."""
    options = options or RunOptions()
    resources = [_resource(entry, config, options) for entry in config.resources]
    for name in EXTRA_RESOURCE_NAMES:
        extra = _extra(name, config, options)
        extra.selected = name in config.extra_resources
        resources.append(extra)
    return DltSource(Schema(SOURCE_NAME), SOURCE_NAME, resources)


def api_client(
    config: SourceConfig,
    figures: ResourceFigures,
    deadline: Optional[float],
    ended: Optional[threading.Event] = None,
) -> RESTClient:
    """dlt's REST client for one resource: the key in the Authorization header, the seed's retries;
    no request after `deadline` or once `ended` is set."""

    def count_transient() -> None:
        figures.retries += 1

    return RESTClient(
        base_url=config.base_url,
        headers=auth_headers(config.auth_scheme, config.api_key),
        session=retrying_session(config.runtime, config.base_url, count_transient, deadline, ended),
    )


def _extra(name: str, config: SourceConfig, options: RunOptions) -> DltResource:
    """A resource beyond the seed (source/events.py, users.py, history.py) under the same guard and checks."""
    from source.events import download_session, event_batches, events_hints
    from source.history import history_hints, history_versions
    from source.users import user_pages, users_hints

    figures = options.figures.of(name)
    figures.path = EXTRA_PATHS[name]
    cleaner = RecordCleaner(name, ())

    def read() -> Iterator[Any]:
        client = api_client(config, figures, options.deadline, options.cancel)
        if name == "events":
            pages = event_batches(client, download_session(), config.events, options.deadline)
        elif name == "users":
            pages = user_pages(client)
        else:
            pages = history_versions(client, name)
        yield from guarded(_cleaned(pages, cleaner, figures, count_pages=True), figures, options.isolate)

    hints = events_hints() if name == "events" else users_hints() if name == "users" else history_hints(name)
    return dlt.resource(read, parallelized=True, **hints)


def _cleaned(
    pages: Iterator[Any], cleaner: RecordCleaner, figures: ResourceFigures, count_pages: bool
) -> Iterator[Any]:
    """Pages with credential fields dropped; a record dlt cannot write fails the resource (source/records.py).

    Done as the pages are handed to dlt, not in the reading thread: the next request goes out first.
    """
    for number, page in enumerate(pages, start=1):
        records = page if isinstance(page, list) else [page]
        unloadable = cleaner.clean(records)
        if unloadable:
            raise ResourceError(
                figures.name,
                f"the answer from GET {figures.path} (page {number}) has {unloadable}: dlt cannot load it; "
                "nothing of this resource is loaded this run",
                path=figures.path,
                page=number,
            )
        if count_pages:
            figures.pages += 1
        yield page


def _resource(entry: Mapping[str, Any], config: SourceConfig, options: RunOptions) -> DltResource:
    name = entry["name"]
    figures = options.figures.of(name)
    pages = _pages(entry, config, figures, options)
    early = name in options.start_now
    reader = ReadAhead(
        pages,
        depth=EARLY_READ_AHEAD_PAGES if early else READ_AHEAD_PAGES,
        deadline=options.deadline,
        cancel=options.cancel,
        # a chain read beside the run's other work reads faster in a process of its own
        process=figures if early else None,
    )
    options.readers.append(reader)
    if early:
        reader.start()

    cleaner = RecordCleaner(name, entry["keep_fields"])

    def read() -> Iterator[Any]:
        # the next request goes out as soon as an answer is in, not when dlt asks for the page
        started = reader.started_at if reader.started_at is not None else time.monotonic()
        pages = _cleaned(reader.pages(), cleaner, figures, count_pages=False)
        yield from guarded(pages, figures, options.isolate, started=started)

    resource = dlt.resource(
        read,
        name=name,
        primary_key=entry["primary_key"] or (),
        write_disposition=entry["write_disposition"],
        columns={key: {"data_type": KEY_DATA_TYPE, "nullable": False} for key in entry["primary_key"]},
        # each cursor chain is sequential, the resources are independent: dlt extracts them in
        # worker threads. A chain read ahead from the start is extracted in a phase of its own
        # (loader/pipeline.py): alone there, its reader already reads beside dlt, and dlt's worker
        # pool would only add a thread hand-over per page and, when the chain ends, two of its
        # 10 ms polling sleeps before the phase can go on
        parallelized=list(options.start_now) != [name],
    )
    return resource


def _pages(
    entry: Mapping[str, Any], config: SourceConfig, figures: ResourceFigures, options: RunOptions
) -> Iterator[Any]:
    """The pages of one resource's cursor chain (a generator: nothing is sent until the first page is asked for)."""
    client = api_client(config, figures, options.deadline, options.cancel)
    paginator = (
        JSONResponseCursorPaginator(
            cursor_path=CURSOR_PAGINATOR["cursor_path"], cursor_param=CURSOR_PAGINATOR["cursor_param"]
        )
        if entry["paginate"]
        else SinglePagePaginator()
    )
    hooks: Dict[str, Any] = {"response": [response_check(entry, figures, config.profile, config.max_pages)]}
    # compiled once: dlt would parse the JSONPath again on every page
    selector = jsonpath.compile_path(entry["data_selector"])
    for page in client.paginate(
        entry["path"], params=dict(entry["params"]), paginator=paginator, data_selector=selector, hooks=hooks
    ):
        yield list(page)
