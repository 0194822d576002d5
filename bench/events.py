"""The events scenario: the `events` resource (the segment export of simulator/beyond.py) through the
function's code path, on the production path (DESTINATION=filesystem, jsonl), latency 0, one 1 h window
a run at each volume; whether memory stays flat as the window grows (the source reads the export
file as a stream and hands dlt batches, so the peak should not follow the file's size).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.steps import peak_step, root_rows
from simulator import SimConfig, Simulator, SimulatorServer

POINTS = (20_000, 200_000)  # events in the run's one window
QUICK_POINTS = (20_000, 100_000)
FLAT_TOLERANCE = 1.25  # peak RSS at the largest volume within 1.25x of the smallest: flat
PREFIX = "events-"  # result keys: events-<events>/B
BODY = '{"resources": ["events"]}'  # the POST body: the events resource only
SETTLE_HOURS = 24  # events_delay_hours' default: a window is exported once its end is this far back


def start(events: int, api_key: str) -> SimulatorServer:
    """A simulator whose every hour holds exactly `events` events (no spread), one PENDING poll an export."""
    beyond = {"events_per_hour": events, "events_spread": 0, "pending_polls": 1}
    config = SimConfig(api_key=api_key, latency_ms=0, beyond=beyond)
    return SimulatorServer(Simulator(config), host="127.0.0.1", port=0).start()


def settings(now: datetime | None = None) -> dict[str, str]:
    """The loader's settings for one run that exports exactly one 1 h window: the one starting on the
    hour SETTLE_HOURS + 1 hours ago (its end is settled), no wait between polls."""
    moment = (now or datetime.now(UTC)) - timedelta(hours=SETTLE_HOURS + 1)
    first = moment.replace(minute=0, second=0, microsecond=0)
    return {
        "SOURCES__ANALYTICS__EVENTS_START": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SOURCES__ANALYTICS__EVENTS_WINDOW_HOURS": "1",
        "SOURCES__ANALYTICS__EVENTS_DELAY_HOURS": str(SETTLE_HOURS),
        "SOURCES__ANALYTICS__EVENTS_MAX_WINDOWS": "1",
        "SOURCES__ANALYTICS__EVENTS_POLL_SECONDS": "0",
    }


@dataclass(frozen=True)
class Point:
    events: int  # in the simulator's window
    rows: int  # rows loaded into the events table
    wall_s: float  # the request, imports excluded
    server_s: float  # of which the simulator answering (building the export file at its download)
    cpu_s: float  # user + system of the run's process, imports included
    rss_mib: float  # peak RSS
    peak_step: str  # the dlt step during which the peak was reached
    workdir_mib: float  # peak size of DLT_DATA_DIR
    loadavg: float | None
    others_cores: float | None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else float("nan")


def points(results: dict[str, list[dict[str, Any]]]) -> list[Point]:
    """The scenario's points (`events-<events>/B`, successful runs), by volume."""
    found = []
    for key, runs in results.items():
        m = re.fullmatch(re.escape(PREFIX) + r"(\d+)/B", key)
        ok = [r for r in runs if r.get("ok")]
        if m and ok:
            r = ok[0]
            found.append(
                Point(
                    events=int(m.group(1)),
                    rows=root_rows(r.get("row_counts") or {}),
                    wall_s=r["wall_s"],
                    server_s=r.get("server_s") or 0.0,
                    cpu_s=r.get("cpu_s") or 0.0,
                    rss_mib=max(r.get("peak_rss_mib") or 0.0, r.get("tree_peak_rss_mib") or 0.0),
                    peak_step=peak_step(r),
                    workdir_mib=r.get("workdir_peak_mib") or 0.0,
                    loadavg=r.get("loadavg"),
                    others_cores=r.get("others_cores"),
                )
            )
    return sorted(found, key=lambda p: p.events)


def flat(pts: list[Point]) -> bool | None:
    if len(pts) < 2:
        return None
    return pts[-1].rss_mib <= FLAT_TOLERANCE * pts[0].rss_mib


def target(results: dict[str, list[dict[str, Any]]]) -> tuple[str, str, bool | None] | None:
    """(target, measured, met) of the events export's memory; None without two volumes."""
    pts = points(results)
    if len(pts) < 2:
        return None
    return (
        f"events export memory flat (peak RSS at {pts[-1].events:,} events within {FLAT_TOLERANCE}x of "
        f"{pts[0].events:,}; filesystem, one 1 h window)",
        " -> ".join(f"{p.rss_mib:.0f}" for p in pts) + f" MiB ({pts[-1].rss_mib / pts[0].rss_mib:.2f}x)",
        flat(pts),
    )


HEADER = (
    "| events in the window | rows loaded | wall s | of which the simulator s | rows/s | CPU s | peak RSS MiB "
    "(set in) | /tmp folder MiB | load avg / others' cores |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def section(doc: dict[str, Any]) -> str:
    """The scenario's table, with its failed runs, for docs/benchmarks.md."""
    res = doc["results"]
    lines = [
        '`POST {"resources": ["events"]}` through the function\'s code path, one 1 h window a run (create '
        "the export, poll it, ask for the location, download the gzip NDJSON file without the key, read it as a "
        "stream, load), DESTINATION=filesystem (jsonl), latency 0, one run each. The simulator runs in the bench's "
        "process: CPU seconds and peak RSS are the loader's own; wall time includes the simulator building the "
        "export file when it is downloaded (its column), as the real API's storage would take its own time to "
        "send it; rows/s is rows over the whole wall time. Set in: the dlt step during which the peak was reached.",
        "",
        HEADER,
    ]
    for p in points(res):
        rows = f"{p.rows:,}" + ("" if p.rows == p.events else f" (expected {p.events:,})")
        load = "-" if p.loadavg is None else f"{p.loadavg:.1f}"
        others = "" if p.others_cores is None else f" / {p.others_cores:.2f}"
        lines.append(
            f"| {p.events:,} | {rows} | {p.wall_s:.1f} | {p.server_s:.1f} | {p.rows_per_s:,.0f} | {p.cpu_s:.1f} | "
            f"{p.rss_mib:.0f} ({p.peak_step or '?'}) | {p.workdir_mib:.0f} | {load}{others} |"
        )
    for key, runs in res.items():
        m = re.fullmatch(re.escape(PREFIX) + r"(\d+)/B", key)
        if m and not any(r.get("ok") for r in runs):
            lines.append(f"| {int(m.group(1)):,} | failed: {runs[0].get('error')} |||||||")
    return "\n".join(lines)
