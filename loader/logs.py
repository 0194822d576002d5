"""Structured logs for Cloud Logging: one JSON object per line on stdout, secrets redacted.

Cloud Logging reads `severity` and `message` from each line; the other fields (run id,
per-resource figures) become `jsonPayload` fields to filter on.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any, Set

LOGGER_NAME = "analytics_loader"
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer|basic)?\s*[^'\"\s,}]+")


class Redactor:
    """Replaces every registered secret value (and any Authorization header value) in a text."""

    def __init__(self) -> None:
        self._secrets: Set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if secret:
            with self._lock:
                self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return _AUTH_HEADER.sub(lambda m: f"{m.group(1)}***", text)


redact = Redactor()


class JsonLineHandler(logging.StreamHandler):
    """Writes records as JSON lines. Ignores formatters set by others: dlt re-initialises its
    logger on every pipeline and would otherwise put its own text format on this handler."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout  # whatever stdout is now (the test runner swaps it)
        super().emit(record)

    def setFormatter(self, fmt: Any) -> None:  # noqa: N802 (logging's name)
        pass

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        if record.exc_info:
            entry["exception"] = logging.Formatter().formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        return redact(json.dumps(entry, default=str))


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    """Route our logger and dlt's through one JSON handler on stdout. Idempotent."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, JsonLineHandler) for h in logger.handlers):
        handler = JsonLineHandler()
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
        dlt_logger = logging.getLogger("dlt")
        for old in list(dlt_logger.handlers):
            dlt_logger.removeHandler(old)
        # dlt reuses the first handler it finds on its logger
        dlt_logger.addHandler(handler)
        dlt_logger.propagate = False
    return logger
