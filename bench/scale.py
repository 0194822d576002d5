"""The scale curve: figures of each point, how cost grows, whether a run fits the function's deadline
on one vCPU, and the function's memory sized from the measured peak.

A point is one run of B on the production path at latency 0 (`bench.cli.run_scale`), so its CPU
seconds are the loader's own: the simulator runs in the bench's process, not in the run's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from bench.runner import BENCH_ROOT
from bench.steps import data_calls, root_rows

VARIABLES_TF = BENCH_ROOT / "terraform" / "variables.tf"
SUPPORTED_SESSIONS = 1_000_000  # the volume the README's bench section names as supported
MEMORY_MARGIN = 0.5  # on top of the measured need: other data shapes, dlt/library upgrades, a warm instance's leftovers
MEMORY_SIZES_MIB = (512, 1024, 2048, 4096, 8192, 16384, 32768)  # function_memory's allowed values
# vCPU that Cloud Run functions (2nd gen) gives each memory size unless `available_cpu` is set
DEFAULT_VCPU = {512: 0.333, 1024: 0.583, 2048: 1.0, 4096: 2.0, 8192: 2.0, 16384: 4.0, 32768: 8.0}
PAGE_SIZE = 100  # sessions a request (the API's maximum page): the chain is sessions / 100 requests
LINEAR_TOLERANCE = 1.25  # marginal cost of the last segment within 1/1.25..1.25 of the first: linear
FLAT_TOLERANCE = 1.25  # peak RSS at the largest point within 1.25x of the smallest: flat


@dataclass(frozen=True)
class Point:
    sessions: int
    rows: int  # rows of the root tables
    wall_s: float  # the request, import excluded
    cpu_s: float  # user + system of the run's process, imports included
    read_cpu_s: float  # CPU until the sessions chain is read (imports, setup, extract calls)
    rss_mib: float  # peak RSS
    workdir_mib: float  # peak size of DLT_DATA_DIR
    workdir_end_mib: float  # left in it after the run (dlt keeps loaded packages): a warm instance keeps it

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else float("nan")

    @property
    def after_read_cpu_s(self) -> float:
        return self.cpu_s - self.read_cpu_s


def point(sessions: int, r: dict[str, Any]) -> Point:
    calls = r.get("steps") or []
    last_extract = max((c[2] for c in data_calls(calls) if c[0] == "extract"), default=0.0)
    # CPU of the steps after the data's last extract: normalize and load of its package, the run history
    after = sum(c[3] for c in calls if len(c) > 3 and c[1] >= last_extract)
    cpu = r.get("cpu_s") or 0.0
    return Point(
        sessions=sessions,
        rows=root_rows(r.get("row_counts") or {}),
        wall_s=r["wall_s"],
        cpu_s=cpu,
        read_cpu_s=cpu - after,
        rss_mib=max(r.get("peak_rss_mib") or 0.0, r.get("tree_peak_rss_mib") or 0.0),
        workdir_mib=r.get("workdir_peak_mib") or 0.0,
        workdir_end_mib=r.get("workdir_end_mib") or 0.0,
    )


def points(results: dict[str, list[dict[str, Any]]], prefix: str = "scale-") -> list[Point]:
    """The curve's points (`<prefix><sessions>/B`, successful runs), by volume."""
    found = []
    for key, runs in results.items():
        m = re.fullmatch(re.escape(prefix) + r"(\d+)/B", key)
        ok = [r for r in runs if r.get("ok")]
        if m and ok:
            found.append(point(int(m.group(1)), ok[0]))
    return sorted(found, key=lambda p: p.sessions)


# -- how cost grows ---------------------------------------------------------------------------------
def marginal(pts: list[Point], attr: str) -> list[float]:
    """`attr` per 1,000 sessions, segment by segment (what each added session costs; fixed costs cancel)."""
    return [
        1000 * (getattr(b, attr) - getattr(a, attr)) / (b.sessions - a.sessions)
        for a, b in zip(pts, pts[1:], strict=False)
    ]


def linear(pts: list[Point], attr: str = "cpu_s") -> bool | None:
    m = marginal(pts, attr)
    if len(m) < 2 or m[0] <= 0:
        return None
    return 1 / LINEAR_TOLERANCE <= m[-1] / m[0] <= LINEAR_TOLERANCE


def flat(pts: list[Point]) -> bool | None:
    if len(pts) < 2:
        return None
    return pts[-1].rss_mib <= FLAT_TOLERANCE * pts[0].rss_mib


# -- the deadline -------------------------------------------------------------------------------------
def terraform_default(name: str) -> str | None:
    """The default of a variable of terraform/variables.tf, as written there."""
    text = VARIABLES_TF.read_text() if VARIABLES_TF.exists() else ""
    block = re.search(r'variable\s+"' + re.escape(name) + r'"\s*\{(.*?)\n\}', text, re.S)
    value = re.search(r"^\s*default\s*=\s*\"?([^\"\n]+)\"?", block.group(1), re.M) if block else None
    return value.group(1).strip() if value else None


def deadlines() -> tuple[float, float]:
    """(function timeout, run deadline) in seconds: Terraform's defaults (main.tf derives the deadline)."""
    timeout = float(terraform_default("function_timeout_seconds") or 1800)
    return timeout, timeout - min(300, max(60, math.floor(timeout / 6)))


def line(pts: list[Point], attr: str) -> tuple[float, float]:
    """(fixed, per session) of `attr` through the two largest points: the marginal cost at scale."""
    if len(pts) == 1:
        return 0.0, getattr(pts[0], attr) / pts[0].sessions
    a, b = pts[-2], pts[-1]
    per = (getattr(b, attr) - getattr(a, attr)) / (b.sessions - a.sessions)
    return getattr(b, attr) - per * b.sessions, per


def run_seconds(pts: list[Point], sessions: float, latency_s: float, vcpu: float = 1.0) -> tuple[float, float]:
    """(end of reading, end of the run) in seconds on `vcpu` vCPUs at `latency_s` a request, modelled:
    CPU seconds / vCPU, plus every request of the sessions chain waited for in full (no overlap of
    waiting and work: an upper bound; the read-ahead overlaps part of it)."""
    waits = math.ceil(sessions / PAGE_SIZE) * latency_s
    read0, read1 = line(pts, "read_cpu_s")
    all0, all1 = line(pts, "cpu_s")
    return (read0 + read1 * sessions) / vcpu + waits, (all0 + all1 * sessions) / vcpu + waits


def largest_volume(pts: list[Point], latency_s: float, vcpu: float = 1.0) -> int:
    """The most sessions a run reads before the run deadline and finishes before the timeout (model above)."""
    timeout, deadline = deadlines()
    read0, read1 = line(pts, "read_cpu_s")
    all0, all1 = line(pts, "cpu_s")
    per_request = latency_s / PAGE_SIZE
    limits = [
        (deadline - read0 / vcpu) / (read1 / vcpu + per_request),
        (timeout - all0 / vcpu) / (all1 / vcpu + per_request),
    ]
    n = min(limits)
    return max(0, int(n // 10_000 * 10_000))  # whole ten-thousands: the model is no finer than that


# -- memory -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryNeed:
    sessions: int
    run_rss_mib: float  # the worker's peak during the run
    workdir_mib: float  # DLT_DATA_DIR, in the in-memory /tmp
    master_mib: float  # functions-framework's gunicorn master: `import main` in a process of its own
    source: str  # which run the peak is from

    @property
    def need_mib(self) -> float:
        return self.run_rss_mib + self.workdir_mib + self.master_mib

    @property
    def with_margin_mib(self) -> float:
        return self.need_mib * (1 + MEMORY_MARGIN)

    @property
    def size(self) -> str:
        mib = next((s for s in MEMORY_SIZES_MIB if s >= self.with_margin_mib), MEMORY_SIZES_MIB[-1])
        return f"{mib // 1024}Gi" if mib >= 1024 else f"{mib}Mi"


def size_mib(size: str) -> int:
    number = int(re.sub(r"\D", "", size))
    return number * 1024 if size.endswith("Gi") else number


def memory_need(results: dict[str, list[dict[str, Any]]], master_mib: float) -> MemoryNeed | None:
    """At the supported volume: the larger of the filesystem and BigQuery-emulator runs' peaks (the
    deployed path imports Google's BigQuery client and uploads through it)."""
    candidates = []
    for prefix, label in (("scale-", "filesystem"), ("scale-bq-", "BigQuery emulator")):
        at = [p for p in points(results, prefix) if p.sessions == SUPPORTED_SESSIONS]
        if at:
            candidates.append((at[0], label))
    if not candidates:
        return None
    rss, rss_from = max((p.rss_mib, label) for p, label in candidates)
    # both runs write gzip load files, as deployed (a proxy inflates them for the emulator): the larger folder
    workdir = max(p.workdir_mib for p, _ in candidates)
    return MemoryNeed(SUPPORTED_SESSIONS, rss, workdir, master_mib, rss_from)
