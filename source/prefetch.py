"""Read a resource's pages ahead of dlt, in a thread of its own, a bounded number of pages ahead."""

from __future__ import annotations

import contextvars
import queue
import threading
from typing import Any, Iterator

_DONE = object()


class ReadAhead:
    """The pages of `pages`, read by a thread of its own up to `depth` pages ahead of the consumer.

    A cursor chain is sequential: the next request can only go out once the previous answer is
    in. dlt asks a parallelized resource for its next page only after its main thread has taken
    the previous one; reading ahead sends the next request at once. The bounded queue keeps
    memory flat whatever the number of pages. An exception of `pages` is raised to the consumer,
    in order. The thread starts on the first page asked for, or earlier with `start()`.
    """

    def __init__(self, pages: Iterator[Any], depth: int) -> None:
        self._pages = pages
        self._ahead: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread: Any = None

    def start(self) -> "ReadAhead":
        if self._thread is None:
            context = contextvars.copy_context()
            self._thread = threading.Thread(target=context.run, args=(self._produce,), name="read-ahead", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _produce(self) -> None:
        try:
            for page in self._pages:
                while not self._stop.is_set():
                    try:
                        self._ahead.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._ahead.put(_DONE)
        except BaseException as exc:  # noqa: B036 (raised in the consumer)
            self._ahead.put(exc)

    def pages(self) -> Iterator[Any]:
        """A generator (what dlt's `parallelize()` takes) over the pages read ahead."""
        self.start()
        try:
            while True:
                item = self._ahead.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
