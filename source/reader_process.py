"""A cursor chain read by a process of its own (a fork of this one), its pages handed over through a pipe.

Why a process: a reading thread shares the interpreter's lock with the run's main thread. While the
sessions chain is read, the main thread extracts, normalizes and loads the other resources and then
extracts the chain's pages: each answer then waits for the lock before the next request can go
out, ~1-4 ms a request, ~0.1-0.2 s over a 100-request chain (docs/benchmarks.md). A forked process
has its own lock: it sends the next request as soon as an answer is in, with the same dlt client,
checks and retries as the thread would use. Only the finished pages cross the pipe.

In the reading process, a thread of its own pickles the pages and writes them into the pipe: the
next request goes out while the page before it crosses (~0.5 ms a page, ~50 ms over a
100-request chain, docs/benchmarks.md). A bounded queue between them keeps the pages read ahead
bounded, as the pipe alone did.

The process is forked before the run opens the warehouse and starts any other reading thread, it
never writes to this process's files (its log records come back through the pipe and are handled
here) and it leaves with `os._exit`, so nothing of this process is flushed or finalized twice.
Where `fork` is not available (not Linux), the chain is read by a thread as before.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterator, Optional, Tuple

from source import client
from source.figures import ResourceFigures

# fork is the only start method that can hand a generator over; macOS's system libraries are not fork-safe
AVAILABLE = hasattr(os, "fork") and sys.platform.startswith("linux")

PAGE, DONE, ERROR, LOG = "page", "done", "error", "log"
_POLL = 0.1  # seconds: how often `pages()` checks whether its consumer stopped
_OUTBOX_PAGES = 8  # pages read but not yet sent, in the reading process
_SWITCH_INTERVAL_S = 0.05
_HOLD_S = 0.05  # the longest a page waits for the next request to go out (a retry's back-off, say)

Message = Tuple[str, Any, Tuple[str, int, int]]  # (kind, page / error / log record, (path, pages, retries))
Outbox = queue.Queue[Message]


class ReaderProcessError(RuntimeError):
    """The reading process ended without handing over its last page, its end or its error."""


class ReaderProcess:
    """`pages` iterated by a forked process; `pages()` hands over what it sent, in order.

    The resource's figures the reading side counts (its path, pages read, retries) are copied back
    into `figures` with every message, before the message is returned.
    """

    def __init__(self, pages: Iterator[Any], figures: ResourceFigures) -> None:
        self._figures = figures
        receiving, sending = multiprocessing.Pipe(duplex=False)
        try:
            pid = os.fork()
        except OSError:  # no process to be had (a limit of the instance): the caller reads with a thread
            receiving.close()
            sending.close()
            raise
        if pid == 0:  # the reading process: never returns
            receiving.close()
            _read(pages, figures, sending)
        sending.close()
        self._pid: Optional[int] = pid
        self._pipe = receiving
        self.exit_status: Optional[int] = None

    @property
    def pid(self) -> Optional[int]:
        """The reading process's id while it has not been reaped."""
        return self._pid

    def pages(self, stopped: Callable[[], bool]) -> Iterator[Any]:
        """The pages the process sends, in order, then its error raised here; ends early once
        `stopped()`. The process is ended and reaped when this generator raises, stops early or is
        closed. After the process's own end, the caller reaps it with `close()`, once it has handed
        the end over: the kernel takes ~8 ms to free a forked copy of a loaded instance.

        Raises:
            ReaderProcessError: the process ended (crashed, was killed) without its end or its error.
        """
        ended = False
        try:
            while not stopped():
                if not self._pipe.poll(_POLL):
                    continue
                kind, item = self._receive()
                if kind == PAGE:
                    yield item
                elif kind == DONE:
                    ended = True
                    return
                else:
                    raise item
        finally:
            if not ended:
                self.close()

    def _receive(self) -> Tuple[str, Any]:
        """The next message that is not a log record (those are handled here): (kind, page or error)."""
        while True:
            try:
                kind, item, state = self._pipe.recv()
            except (EOFError, OSError):
                status = self.close()
                raise ReaderProcessError(
                    f"the process reading GET {self._figures.path or self._figures.name} ended without an answer "
                    f"(exit status {status}) after {self._figures.pages} page(s)"
                ) from None
            self._figures.path, self._figures.pages, self._figures.retries = state
            if kind != LOG:
                return kind, item
            logging.getLogger(item.name).handle(item)

    def close(self) -> Optional[int]:
        """Stop the process (if it still runs) and reap it; its exit status (negative: the signal that ended it)."""
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):  # ended already, not reaped yet
                os.kill(self._pid, signal.SIGKILL)
            try:
                _, status = os.waitpid(self._pid, 0)
                self.exit_status = os.waitstatus_to_exitcode(status)
            except ChildProcessError:  # reaped already (SIGCHLD ignored by the host): no status to give
                pass
            self._pid = None
            self._pipe.close()
        return self.exit_status


class _PipeQueue:
    """What `logging.handlers.QueueHandler` puts records into: the outbox, beside the pages, so
    that they cross in the order they happened."""

    def __init__(self, outbox: Outbox, figures: ResourceFigures) -> None:
        self._outbox, self._figures = outbox, figures

    def put_nowait(self, record: logging.LogRecord) -> None:
        self._outbox.put((LOG, record, _state(self._figures)))


def _read(pages: Iterator[Any], figures: ResourceFigures, pipe: Connection) -> None:
    """The reading process: queue each page, then the end or the error, for the sending thread;
    leave without cleaning up its copy of the parent once all of it is sent."""
    # The sending thread pickles a page once the next request is written to its socket
    # (`client.request_sent_hook`): woken earlier, it would take the interpreter's lock at the first
    # system call of the request's preparation (urllib3 polls the kept-alive socket) and delay the
    # request by the pickling, ~0.2 ms. The long switch interval keeps the lock with the reading
    # thread until the request waits for its answer.
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    sent = threading.Event()
    client.request_sent_hook = sent.set
    outbox: Outbox = queue.Queue(maxsize=_OUTBOX_PAGES)
    sender = threading.Thread(target=_send, args=(outbox, pipe, sent), name="reader-send", daemon=True)
    sender.start()
    try:
        _log_through(outbox, figures)
        for page in pages:
            sent.clear()
            outbox.put((PAGE, page, _state(figures)))
        sent.set()  # no request follows the last page
        outbox.put((DONE, None, _state(figures)))
    except BaseException as exc:  # noqa: B036 (handed over to the consumer, which raises it)
        sent.set()
        outbox.put((ERROR, _portable(exc), _state(figures)))
    finally:
        sender.join()
        os._exit(0)


def _send(outbox: Outbox, pipe: Connection, sent: threading.Event) -> None:
    """Write the outbox into the pipe until the end or the error is sent; the latest page once the
    next request is out (`sent`), or after `_HOLD_S`. The process ends (status 1) when the pipe is
    closed (its consumer stopped: nothing more is wanted) or this thread cannot go on: the reading
    thread would otherwise wait for it for ever."""
    try:
        while True:
            kind, item, state = outbox.get()
            if kind == PAGE and outbox.empty():  # behind, with pages queued: no need to wait
                sent.wait(_HOLD_S)
            try:
                data = pickle.dumps((kind, item, state), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                if kind == LOG:  # dropped, as logging drops a record its handler cannot emit
                    continue
                kind, data = ERROR, pickle.dumps((ERROR, _portable(exc), state))
            pipe.send_bytes(data)  # what `recv()` on the other end unpickles
            if kind in (DONE, ERROR):
                return
    except BaseException:  # noqa: B036 (the process ends; its consumer reports how)
        os._exit(1)


def _log_through(outbox: Outbox, figures: ResourceFigures) -> None:
    """Every record that would reach a handler here is sent to the parent once, which handles it as its own."""
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.handlers, logger.propagate = [], True
    root = logging.getLogger()
    root.handlers = [logging.handlers.QueueHandler(_PipeQueue(outbox, figures))]  # type: ignore[arg-type]


def _state(figures: ResourceFigures) -> Tuple[str, int, int]:
    return figures.path, figures.pages, figures.retries


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling; else one of its class with its text; else a RuntimeError naming it."""
    candidates = [exc]
    with contextlib.suppress(Exception):  # a class that takes other arguments: no second candidate
        candidates.append(type(exc)(str(exc)))
    for candidate in candidates:
        try:
            pickle.loads(pickle.dumps(candidate))
            return candidate
        except Exception:  # noqa: S112 (not picklable: the next candidate)
            continue
    return RuntimeError(f"{type(exc).__name__}: {exc}")
