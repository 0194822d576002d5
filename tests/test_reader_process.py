"""A long chain read by a forked process (source/reader_process.py) behaves as one read by a thread:
the same pages in order, the same figures, the same errors and log lines, and no process left behind."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import threading
import time
from typing import Any, Dict, Iterator, List, Set

import pytest
import requests

from source import client, reader_process
from source.errors import ResponseShapeError, UpstreamHTTPError
from source.figures import ResourceFigures
from source.prefetch import ReadAhead
from tests.helpers import post, table_counts

pytestmark = pytest.mark.skipif(not reader_process.AVAILABLE, reason="fork: Linux only")


def read_ahead(pages: Iterator[Any], figures: ResourceFigures, **kwargs: Any) -> ReadAhead:
    return ReadAhead(pages, depth=4, process=figures, **kwargs).start()


def gone(pid: int, within: float = 5.0) -> bool:
    """Whether process `pid` no longer exists (ended and reaped) within `within` seconds."""
    until = time.monotonic() + within
    while time.monotonic() < until:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def http_error(status: int, path: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = "Forbidden"
    response.request = requests.Request("GET", f"http://127.0.0.1{path}?pagination_token=t").prepare()
    return response


def test_the_pages_are_read_by_another_process_and_arrive_in_order() -> None:
    figures = ResourceFigures("sessions")

    def pages() -> Iterator[Any]:
        figures.path = "/v1/sessions"
        for n in range(1, 31):
            figures.pages += 1
            if n % 10 == 0:
                figures.retries += 1
            yield [{"id": n, "pid": os.getpid()}]

    got = list(read_ahead(pages(), figures).pages())

    assert [p[0]["id"] for p in got] == list(range(1, 31))
    readers = {p[0]["pid"] for p in got}
    assert len(readers) == 1 and os.getpid() not in readers
    # what the reading side counted is copied back
    assert (figures.path, figures.pages, figures.retries) == ("/v1/sessions", 30, 3)
    assert gone(readers.pop())


def test_an_api_error_crosses_with_its_status_path_page_and_reason() -> None:
    figures = ResourceFigures("sessions")

    def pages() -> Iterator[Any]:
        yield [{"id": 1}]
        raise UpstreamHTTPError("sessions", http_error(403, "/v1/sessions"), page=2)

    reader = read_ahead(pages(), figures).pages()
    assert next(reader) == [{"id": 1}]
    with pytest.raises(UpstreamHTTPError) as raised:
        next(reader)

    error = raised.value
    assert (error.resource, error.status, error.path, error.page) == ("sessions", 403, "/v1/sessions", 2)
    assert error.reason.startswith("HTTP 403 Forbidden from GET /v1/sessions (page 2): the API key was rejected")
    assert str(error) == f"resource 'sessions': {error.reason}"
    assert error.response is None  # the response stays in the reading process


def test_a_check_failure_crosses_as_its_own_class() -> None:
    figures = ResourceFigures("sessions")

    def pages() -> Iterator[Any]:
        raise ResponseShapeError("sessions", "the answer has no 'data'", status=200, path="/v1/sessions", page=1)
        yield  # a generator

    with pytest.raises(ResponseShapeError) as raised:
        next(read_ahead(pages(), figures).pages())
    assert (raised.value.reason, raised.value.status, raised.value.page) == ("the answer has no 'data'", 200, 1)


class SocketHeldError(Exception):
    def __init__(self, message: str, sock: Any = None) -> None:
        super().__init__(message)
        self.sock = sock


class UnbuildableError(Exception):
    def __init__(self, message: str, lock: Any) -> None:
        super().__init__(message)
        self.lock = lock


def test_an_error_that_cannot_be_pickled_keeps_its_class_and_text_or_names_them() -> None:
    def failing(exc: BaseException) -> Iterator[Any]:
        raise exc
        yield

    with pytest.raises(SocketHeldError, match="^socket closed$"):
        next(read_ahead(failing(SocketHeldError("socket closed", threading.Lock())), ResourceFigures("s")).pages())
    with pytest.raises(RuntimeError, match="^UnbuildableError: half an answer$"):
        next(read_ahead(failing(UnbuildableError("half an answer", threading.Lock())), ResourceFigures("s")).pages())


def test_log_records_of_the_reading_process_reach_this_process_handlers() -> None:
    seen: List[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("analytics_loader.test_reader_process")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    try:

        def pages() -> Iterator[Any]:
            logger.warning("retrying GET %s", "/v1/sessions", extra={"run_id": "r1", "pid": os.getpid()})
            yield [{"id": 1}]

        assert list(read_ahead(pages(), ResourceFigures("sessions")).pages()) == [[{"id": 1}]]
    finally:
        logger.handlers.clear()

    assert [r.getMessage() for r in seen] == ["retrying GET /v1/sessions"]
    assert seen[0].run_id == "r1" and seen[0].pid != os.getpid()  # type: ignore[attr-defined]


class SlowToPickle:
    """Takes 0.3 s to pickle; unpickled, it is the time its pickling ended."""

    def __reduce__(self) -> Any:
        time.sleep(0.3)
        return (float, (time.monotonic(),))


def test_the_next_page_is_read_while_the_one_before_it_crosses_the_pipe() -> None:
    def pages() -> Iterator[Any]:
        for n in (1, 2):
            yield [{"id": n, "read_at": time.monotonic(), "crossed_at": SlowToPickle()}]

    first, second = list(read_ahead(pages(), ResourceFigures("sessions")).pages())
    # page 2 was read before page 1 had been pickled into the pipe, not after
    assert second[0]["read_at"] < first[0]["crossed_at"]


class PickledAt:
    """Unpickled, the time it was pickled (in the reading process)."""

    def __reduce__(self) -> Any:
        return (float, (time.monotonic(),))


def test_a_page_is_handed_over_once_the_next_request_is_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not while the next request is prepared: the pickling would delay it."""
    monkeypatch.setattr(reader_process, "_HOLD_S", 30.0)  # in the forked copy too: only the request releases it

    def pages() -> Iterator[Any]:
        yield [{"id": 1, "pickled_at": PickledAt()}]
        time.sleep(0.05)  # the next request prepared
        sent_at = time.monotonic()
        assert client.request_sent_hook is not None
        client.request_sent_hook()  # what the connection calls once the request is written
        time.sleep(0.05)  # its answer awaited
        yield [{"id": 2, "sent_at": sent_at}]

    first, second = list(read_ahead(pages(), ResourceFigures("sessions")).pages())

    assert first[0]["pickled_at"] >= second[0]["sent_at"]


def test_a_page_whose_next_request_does_not_go_out_is_handed_over_after_the_hold() -> None:
    def pages() -> Iterator[Any]:
        yield [{"id": 1, "pickled_at": PickledAt()}]
        time.sleep(1.0)  # a retry's back-off, say: no request goes out
        yield [{"id": 2, "read_at": time.monotonic()}]

    first, second = list(read_ahead(pages(), ResourceFigures("sessions")).pages())

    assert first[0]["pickled_at"] < second[0]["read_at"] - 0.5


def test_pages_read_ahead_of_a_consumer_that_does_not_take_them_stay_bounded() -> None:
    read = multiprocessing.Value("i", 0)
    page = [{"id": n, "blob": f"{n:04}" * 250} for n in range(100)]  # ~100 kB: larger than the pipe's buffer

    def pages() -> Iterator[Any]:
        for _ in range(200):
            with read.get_lock():
                read.value += 1
            yield page

    consumer = read_ahead(pages(), ResourceFigures("sessions")).pages()
    next(consumer)
    time.sleep(0.5)  # the reading process runs ahead as far as it may
    ahead = read.value
    consumer.close()
    # the consumer's queue (4), the page in the pipe, the reading process's outbox (8): not the chain
    assert 10 <= ahead <= 20, ahead


def test_a_page_that_cannot_be_pickled_fails_the_resource_with_the_reason() -> None:
    def pages() -> Iterator[Any]:
        yield [{"id": 1}]
        yield [{"id": 2, "callback": lambda: None}]

    consumer = read_ahead(pages(), ResourceFigures("sessions")).pages()
    assert next(consumer) == [{"id": 1}]
    with pytest.raises(Exception, match="pickle") as raised:
        next(consumer)
    assert not isinstance(raised.value, reader_process.ReaderProcessError)


def test_a_log_record_that_cannot_be_pickled_is_dropped_and_the_pages_still_arrive() -> None:
    logger = logging.getLogger("analytics_loader.test_reader_process")

    def pages() -> Iterator[Any]:
        logger.warning("a record with a callback", extra={"callback": lambda: None})
        yield [{"id": 1}]
        yield [{"id": 2}]

    assert list(read_ahead(pages(), ResourceFigures("sessions")).pages()) == [[{"id": 1}], [{"id": 2}]]


def test_a_sending_thread_that_fails_ends_the_process_and_fails_the_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a reading process that waits for ever on its full outbox: the resource fails at once."""
    read = reader_process._read

    class Unwritable:
        def __init__(self, pipe: Any) -> None:
            self._pipe = pipe  # held open: only the process's end closes it

        def send_bytes(self, data: bytes) -> None:
            raise RuntimeError("cannot write")

    monkeypatch.setattr(reader_process, "_read", lambda pages, figures, pipe: read(pages, figures, Unwritable(pipe)))

    def pages() -> Iterator[Any]:
        for n in range(100):
            yield [{"id": n}]

    reader = read_ahead(pages(), ResourceFigures("sessions"), deadline=time.monotonic() + 10)
    with pytest.raises(reader_process.ReaderProcessError, match=r"ended without an answer \(exit status 1\)"):
        next(reader.pages())


def test_the_end_of_the_pages_is_handed_over_before_the_process_is_reaped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reaping waits for the kernel to free the forked copy: the consumer must not wait for it."""
    handed_over = threading.Event()
    reaped_after: List[bool] = []
    close = reader_process.ReaderProcess.close

    def close_once_handed_over(self: reader_process.ReaderProcess) -> Any:
        reaped_after.append(handed_over.wait(5))
        return close(self)

    def two() -> Iterator[Any]:
        yield from ([{"id": n, "pid": os.getpid()}] for n in (1, 2))  # the reading process's id

    monkeypatch.setattr(reader_process.ReaderProcess, "close", close_once_handed_over)
    reader = read_ahead(two(), ResourceFigures("sessions"))

    got = list(reader.pages())
    handed_over.set()
    reader.join()

    assert [p[0]["id"] for p in got] == [1, 2]
    assert reaped_after == [True]
    assert gone(got[0][0]["pid"])


def test_a_consumer_that_stops_or_a_cancelled_run_ends_the_reading_process() -> None:
    def endless() -> Iterator[Any]:
        n = 0
        while True:
            n += 1
            yield [{"id": n, "pid": os.getpid()}]

    reader = read_ahead(endless(), ResourceFigures("sessions"))
    consumer = reader.pages()
    pid = next(consumer)[0]["pid"]
    consumer.close()  # dlt closes a resource's generator when it stops early
    assert gone(pid)

    cancel = threading.Event()
    consumer = read_ahead(endless(), ResourceFigures("sessions"), cancel=cancel).pages()
    pid = next(consumer)[0]["pid"]
    cancel.set()
    assert gone(pid)


def test_a_reading_process_that_dies_fails_the_resource_naming_it() -> None:
    figures = ResourceFigures("sessions")
    handed_over = multiprocessing.Event()

    def pages() -> Iterator[Any]:
        figures.path = "/v1/sessions"
        figures.pages = 1
        yield [{"id": 1}]
        handed_over.wait(5)  # the page has crossed: the process dies while reading the next one
        os._exit(3)

    consumer = read_ahead(pages(), figures).pages()
    assert next(consumer) == [{"id": 1}]
    handed_over.set()
    with pytest.raises(reader_process.ReaderProcessError) as raised:
        next(consumer)
    assert str(raised.value) == (
        "the process reading GET /v1/sessions ended without an answer (exit status 3) after 1 page(s)"
    )


def test_the_deadline_still_bounds_a_stuck_reading_process() -> None:
    from source.errors import DeadlineExceededError

    def stuck() -> Iterator[Any]:
        yield [{"id": os.getpid()}]
        time.sleep(60)
        yield [{"id": 2}]

    consumer = read_ahead(stuck(), ResourceFigures("sessions"), deadline=time.monotonic() + 1.0).pages()
    pid = next(consumer)[0]["id"]
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        next(consumer)
    assert time.monotonic() - started < 5
    assert gone(pid)  # the consumer stopped: the reading process is ended too


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """The ids of the reading processes the runs fork."""
    forked: List[int] = []
    original = reader_process.ReaderProcess.__init__

    def spy(self: reader_process.ReaderProcess, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        forked.append(self.pid)  # type: ignore[arg-type]

    monkeypatch.setattr(reader_process.ReaderProcess, "__init__", spy)
    return forked


def test_a_run_reads_sessions_in_a_process_and_has_ended_it_when_it_answers(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, expected: Dict[str, int], readers: List[int]
) -> None:
    status, body = post(fresh_service)

    assert status == 200, body
    assert body["row_counts"] == expected
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == expected
    assert len(readers) == 1  # sessions, the long chain; the nine others by threads
    with pytest.raises(ChildProcessError):
        os.waitpid(readers[0], os.WNOHANG)  # reaped already
    assert len([r for r in sim.sim.requests if r.get("resource") == "sessions"]) == 3  # 25 rows, pages of 10


def test_a_run_that_fails_while_sessions_is_read_ends_the_reading_process_before_it_answers(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, readers: List[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import loader.pipeline

    sim.sim.configure(latency_ms=200)  # the chain is still being read when the run fails

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the warehouse is gone")

    monkeypatch.setattr(loader.pipeline, "new_pipeline", broken)
    status, body = post(fresh_service)

    assert status == 500 and "the warehouse is gone" in body["error"], body
    assert len(readers) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(readers[0], os.WNOHANG)
    arrived = len(sim.sim.arrivals_for("sessions"))
    time.sleep(0.5)  # 2.5 requests' latency
    assert len(sim.sim.arrivals_for("sessions")) == arrived  # no request is sent after the answer


def test_when_no_process_can_be_forked_a_thread_reads_the_chain(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    figures = ResourceFigures("sessions")

    def pages() -> Iterator[Any]:
        figures.pages += 1
        yield [{"pid": os.getpid()}]

    with caplog.at_level(logging.WARNING, logger="analytics_loader"):
        got = list(read_ahead(pages(), figures).pages())

    assert got == [[{"pid": os.getpid()}]] and figures.pages == 1
    assert [r.getMessage() for r in caplog.records] == [
        "could not start a process to read sessions (BlockingIOError: [Errno 11] Resource temporarily unavailable): "
        "a thread reads it"
    ]


def test_a_reading_process_killed_mid_chain_fails_sessions_only_and_the_next_run_loads(
    sim: Any, loader_env: Dict[str, str], fresh_service: Any, expected: Dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    read = reader_process._read

    class KilledOnceAPageHasCrossed:
        """The reading process's end of the pipe: the process is killed (as the kernel's OOM killer
        would) right after its first page is written, while it reads the next one."""

        def __init__(self, pipe: Any) -> None:
            self._pipe = pipe

        def send_bytes(self, data: bytes) -> None:
            self._pipe.send_bytes(data)
            if pickle.loads(data)[0] == reader_process.PAGE:
                os.kill(os.getpid(), 9)

    def killed_after_one_page(pages: Iterator[Any], figures: ResourceFigures, pipe: Any) -> None:
        read(pages, figures, KilledOnceAPageHasCrossed(pipe))

    monkeypatch.setattr(reader_process, "_read", killed_after_one_page)
    status, body = post(fresh_service)

    assert status == 502, body
    failed = body["resources"]["sessions"]
    assert failed["status"] == "failed"
    assert failed["reason"] == (
        "ReaderProcessError: the process reading GET /sessions/v2 ended without an answer (exit status -9) "
        "after 1 page(s)"
    )
    others = {t: n for t, n in expected.items() if not t.startswith("sessions")}
    assert body["row_counts"] == others
    assert {t: n for t, n in table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]).items() if n} == others

    monkeypatch.setattr(reader_process, "_read", read)
    status, body = post(fresh_service)
    assert status == 200, body
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == expected


@pytest.mark.parametrize(
    "start_now, on_dlt_s_thread",
    [
        pytest.param(["sessions"], True, id="sessions-alone"),
        pytest.param(["sessions", "events"], False, id="sessions-beside-events"),
    ],
)
def test_a_chain_read_ahead_alone_in_its_phase_is_taken_by_dlt_s_own_thread(
    sim: Any, loader_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch, start_now: List[str], on_dlt_s_thread: bool
) -> None:
    """No worker thread of dlt between the chain's reader and dlt when nothing else is extracted with it."""
    import source.build as build
    from source import resolve_source_config

    takers: Dict[str, Set[bool]] = {}
    cleaned = build._cleaned

    def seen(pages: Iterator[Any], cleaner: Any, figures: ResourceFigures, count_pages: bool) -> Iterator[Any]:
        for page in cleaned(pages, cleaner, figures, count_pages):
            takers.setdefault(figures.name, set()).add(threading.current_thread() is threading.main_thread())
            yield page

    monkeypatch.setattr(build, "_cleaned", seen)
    options = build.RunOptions(start_now=start_now)
    try:
        rows = list(build.build_source(resolve_source_config(), options).with_resources("sessions", "segments"))
    finally:
        options.end()

    assert len(rows) == 25 + 25  # the simulator's rows of each
    assert takers == {"sessions": {on_dlt_s_thread}, "segments": {False}}
