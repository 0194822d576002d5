"""The API simulator for the benchmark: loopback only, one instance per scenario.

`TCP_NODELAY` on the answering sockets: `http.server` writes the headers and the body of an
answer in two `send()` calls, so without it Nagle's algorithm holds the body until the client's
delayed ACK (40 ms on Linux) and every request costs `latency_ms` + ~40 ms. A real API does not
add that; with it set, one request costs `latency_ms` plus a few ms of simulator work.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List

from simulator import SimConfig, Simulator, SimulatorServer
from source.settings import RESOURCE_NAMES


@dataclass(frozen=True)
class Volume:
    latency_ms: float
    sessions: int
    others: int = 1000
    page_size: int = 100
    max_page_size: int = 100

    def rows(self) -> Dict[str, int]:
        return {name: (self.sessions if name == "sessions" else self.others) for name in RESOURCE_NAMES}

    @property
    def total_rows(self) -> int:
        return sum(self.rows().values())

    def chain(self, page_size: int) -> int:
        """Requests of the longest cursor chain with pages of `page_size` (an empty table: 1)."""
        return max(max(1, math.ceil(n / page_size)) for n in self.rows().values())

    @property
    def floor_s(self) -> float:
        """Longest cursor chain at the largest page the API accepts, times the latency."""
        return self.chain(max(self.page_size, self.max_page_size)) * self.latency_ms / 1000

    def label(self) -> str:
        return f"{self.latency_ms:g} ms, {self.sessions:,} sessions"


def start(volume: Volume, api_key: str, nagle: bool = False) -> SimulatorServer:
    config = SimConfig(api_key=api_key, rows=volume.rows(), page_size=volume.page_size,
                       max_page_size=volume.max_page_size, latency_ms=volume.latency_ms)
    server = SimulatorServer(Simulator(config), host="127.0.0.1", port=0)
    # the handler class is this server's own subclass: the setting stays with this instance
    server.httpd.RequestHandlerClass.disable_nagle_algorithm = not nagle
    return server.start()


def request_stats(log: List[Dict[str, Any]]) -> Dict[str, Any]:
    data = [r for r in log if r.get("resource")]
    per = Counter(r["resource"] for r in data)
    cycle_ms = span_s = None
    if per:
        longest = per.most_common(1)[0][0]
        at = sorted(r["at"] for r in data if r["resource"] == longest)
        gaps = sorted(b - a for a, b in zip(at, at[1:]))
        if gaps:
            cycle_ms = 1000 * gaps[len(gaps) // 2]  # one request of the chain, answer to answer (median)
            span_s = at[-1] - at[0]
    return {
        "chain_cycle_ms": cycle_ms,
        "chain_span_s": span_s,
        "requests": len(data),
        "errors": sum(1 for r in data if r["status"] >= 400),
        "per_resource": dict(per),
        "longest_chain": max(per.values()) if per else 0,
        "limits_sent": sorted({r["params"].get("limit") for r in data if r["params"].get("limit")}),
    }
