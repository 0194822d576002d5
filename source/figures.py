"""Per-resource figures of one run: rows, pages, retries, seconds, the effective path, and the failure."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, Optional


@dataclass
class ResourceFigures:
    """Figures of one resource in one run, filled by the response check and the failure guard."""

    name: str
    path: str = ""
    rows: int = 0
    pages: int = 0
    retries: int = 0
    seconds: float = 0.0
    error: Optional[BaseException] = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class RunFigures:
    """Figures of every resource of one run (thread-safe: resources are read concurrently)."""

    resources: Dict[str, ResourceFigures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def of(self, name: str) -> ResourceFigures:
        with self._lock:
            return self.resources.setdefault(name, ResourceFigures(name))

    @property
    def failed(self) -> Dict[str, ResourceFigures]:
        return {n: s for n, s in self.resources.items() if s.failed}
