"""The API simulator for the benchmark (loopback only, one instance per scenario) and what its
request log says about a run."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.steps import data_calls
from simulator import SimConfig, Simulator, SimulatorServer

RESOURCE_NAMES = tuple(SimConfig().rows)  # the simulator serves every resource of the API by default


@dataclass(frozen=True)
class Volume:
    latency_ms: float
    sessions: int
    others: int = 1000
    page_size: int = 100
    max_page_size: int = 100

    def rows(self) -> dict[str, int]:
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


def start(volume: Volume, api_key: str) -> SimulatorServer:
    config = SimConfig(
        api_key=api_key,
        rows=volume.rows(),
        page_size=volume.page_size,
        max_page_size=volume.max_page_size,
        latency_ms=volume.latency_ms,
    )
    return SimulatorServer(Simulator(config), host="127.0.0.1", port=0).start()


def client_figures(log: list[dict[str, Any]], resource: str) -> dict[str, float]:
    """Where one request of a cursor chain goes, medians in ms: in the simulator (latency included,
    `server_ms`), and on the client, from an answer out to the next request in (`client_gap_ms`:
    reading the answer, the page's work before the next request, the GIL)."""
    chain = sorted((r for r in log if r["resource"] == resource), key=lambda r: r["at"])
    gaps = [(b["at"] - b["seconds"]) - a["at"] for a, b in zip(chain, chain[1:], strict=False)]
    if not gaps:
        return {}
    return {
        "server_ms": 1000 * statistics.median(r["seconds"] for r in chain),
        "client_gap_ms": 1000 * statistics.median(gaps),
        "client_gap_mean_ms": 1000 * statistics.fmean(gaps),
    }


def add_requests(result: dict[str, Any], server: SimulatorServer) -> dict[str, Any]:
    """Add the figures of the simulator's request log to a run's `result`, then clear the log."""
    log = [r for r in list(server.sim.requests) if r.get("resource")]
    server.sim.reset()
    per = Counter(r["resource"] for r in log)
    result.update(requests=len(log), errors=sum(1 for r in log if r["status"] >= 400), per_resource=dict(per))
    # seconds the simulator spent building its answers (latency included), e.g. an export file at its download
    result["server_s"] = sum(r.get("seconds") or 0.0 for r in log)
    result["longest_chain"] = max(per.values()) if per else 0
    if per:
        longest = per.most_common(1)[0][0]
        at = sorted(r["at"] for r in log if r["resource"] == longest)
        gaps = sorted(b - a for a, b in zip(at, at[1:], strict=False))
        # one request of the chain, answer to answer (median)
        result["chain_cycle_ms"] = 1000 * gaps[len(gaps) // 2] if gaps else None
        result.update(client_figures(log, longest))
        if result.get("origin_epoch"):
            # the chain from its first request out to its last answer in, from the start of the run
            first = min(r["at"] - r["seconds"] for r in log if r["resource"] == longest)
            result["chain_span"] = [first - result["origin_epoch"], at[-1] - result["origin_epoch"]]
    # the data's extract calls (the run history's pipeline extracts after them)
    extract = [c for c in data_calls(result.get("steps") or []) if c[0] == "extract"]
    if extract and log and result.get("origin_epoch"):
        # requests may go out before dlt's extract starts (read-ahead): the extract step is counted
        # from the earlier of the two
        first_request = min(r["at"] - r["seconds"] for r in log) - result["origin_epoch"]
        result["extract_span_s"] = max(c[2] for c in extract) - min(min(c[1] for c in extract), first_request)
    return result
