"""Read a resource's pages ahead of dlt, in a thread (or a process) of its own, a bounded number of pages ahead."""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from typing import Any, Iterator, Optional

from source import reader_process
from source.errors import DeadlineExceededError, RunEndedError
from source.figures import ResourceFigures

log = logging.getLogger("analytics_loader")

_DONE = object()
_POLL = 0.5  # seconds: how often a waiting consumer checks the deadline and the reading thread


class ReadAhead:
    """The pages of `pages`, read by a thread of its own up to `depth` pages ahead of the consumer.

    A cursor chain is sequential: the next request can only go out once the previous answer is
    in. dlt asks a parallelized resource for its next page only after its main thread has taken
    the previous one; reading ahead sends the next request at once. The bounded queue keeps
    memory flat whatever the number of pages. An exception of `pages` is raised to the consumer,
    in order. The thread starts on the first page asked for, or earlier with `start()`.

    With a `deadline` (a `time.monotonic()` value) the consumer waits for a page no longer than
    that: whatever the reading thread is stuck in (a hung answer, a retry's back-off), the run
    goes on at the deadline with `DeadlineExceededError`; pages already read are still handed over.

    With `process` (the resource's figures), `pages` is iterated by a forked process and the thread
    only relays its pages (source/reader_process.py): for a long chain read beside the run's work.
    """

    def __init__(
        self,
        pages: Iterator[Any],
        depth: int,
        deadline: Optional[float] = None,
        cancel: Optional[threading.Event] = None,
        process: Optional[ResourceFigures] = None,
    ) -> None:
        self._pages = pages
        self._process_figures = process if reader_process.AVAILABLE else None
        self._process: Optional[reader_process.ReaderProcess] = None
        self._ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._cancel = cancel or threading.Event()  # set by the run: every reader stops
        self._thread: Any = None
        self._deadline = deadline
        self.started_at: Optional[float] = None

    def start(self) -> ReadAhead:
        if self._thread is None:
            self.started_at = time.monotonic()
            context = contextvars.copy_context()
            if self._process_figures is not None:
                # forked here, by the caller's thread; the reading thread then only relays its pages
                try:
                    self._process = reader_process.ReaderProcess(self._pages, self._process_figures)
                    self._pages = self._process.pages(self._stopped)
                except OSError as exc:
                    log.warning(
                        f"could not start a process to read {self._process_figures.name} "
                        f"({type(exc).__name__}: {exc}): a thread reads it"
                    )
                    self._process_figures = None
            self._thread = threading.Thread(target=context.run, args=(self._produce,), name="read-ahead", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 5.0) -> None:
        """Once stopped (or cancelled): wait until a relaying thread has ended its reading process.

        A reading thread is not waited for: it may be inside a request (up to the request timeout)
        and sends nothing more once cancelled."""
        if self._process_figures is not None and self._thread is not None:
            self._thread.join(timeout)

    def _produce(self) -> None:
        try:
            for page in self._pages:
                if not self._put(page):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: B036 (raised in the consumer)
            self._put(exc)
        finally:
            # a consumer that stopped early ends the pages' source too (a reading process is reaped);
            # a reading process that sent its end is reaped here, once the end is handed over
            close = getattr(self._pages, "close", None)
            if close is not None:
                close()
            if self._process is not None:
                self._process.close()

    def _stopped(self) -> bool:
        return self._stop.is_set() or self._cancel.is_set()

    def _put(self, item: Any) -> bool:
        """Queue `item` unless the consumer has stopped; False when it has."""
        while not self._stopped():
            try:
                self._ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pages(self) -> Iterator[Any]:
        """A generator (what dlt's `parallelize()` takes) over the pages read ahead."""
        self.start()
        try:
            while True:
                item = self._next()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()

    def _next(self) -> Any:
        while True:
            wait = _POLL if self._deadline is None else min(_POLL, max(0.0, self._deadline - time.monotonic()))
            try:
                return self._ahead.get(timeout=wait)
            except queue.Empty:
                pass
            if self._deadline is not None and time.monotonic() >= self._deadline:
                raise DeadlineExceededError("the run deadline passed while the resource was still reading")
            # a reading thread cancelled by the run ends without a last item: do not wait for one
            if not self._thread.is_alive() and self._ahead.empty():
                raise RunEndedError("the run ended while the resource was still reading")
