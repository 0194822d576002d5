"""Writing a benchmark run out: docs/benchmarks.md's Results (or Levers), docs/bench-scale.png and the
README's bench section; everything outside their marks is left as it is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench import events, plot, scale
from bench.figures import floor_figures, med, summary
from bench.runner import BENCH_ROOT
from bench.targets import busy_note, deadline_curve, memory_need, targets

DOC = BENCH_ROOT / "docs" / "benchmarks.md"
PICTURE = BENCH_ROOT / "docs" / "bench-scale.png"
README = BENCH_ROOT / "README.md"
README_MARKS = ("<!-- bench:start -->", "<!-- bench:end -->")
RESULTS_MARKS = ("<!-- bench:results:start -->", "<!-- bench:results:end -->")
LEVERS_MARKS = ("<!-- bench:levers:start -->", "<!-- bench:levers:end -->")


def write(doc: dict[str, Any], tables: str, volumes: dict[str, Any], levers: bool = False) -> str | None:
    """The tables, with the command and the machine, between the Results (or Levers) marks of
    docs/benchmarks.md; for a scenario run, the scale curve's picture and the README's bench section
    too. Returns why the picture was not drawn, or None."""
    m = doc["machine"]
    machine = (
        f"{m['date']}, commit `{m['commit'] or '?'}`: {m['nproc']} CPUs ({m['cpu'] or 'unknown CPU'}), "
        f"{m['memory_gib']} GiB, {m['os']}, Python {m['python']}, dlt {m['dlt']}, duckdb {m['duckdb']}; load "
        f"average {m['loadavg_start']:.2f} at the start, {m['loadavg_end']:.2f} at the end; the bench took "
        f"{m['duration_s']:.0f} s."
    )
    tree = f" (B = `{doc['tree']}`)" if Path(doc["tree"]) != BENCH_ROOT else ""
    body = "\n".join([f"Command: `{doc['command']}`{tree}", "", "Machine: " + machine, "", tables])
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    DOC.write_text(_replace_between(text, *(LEVERS_MARKS if levers else RESULTS_MARKS), body))
    if levers:
        return None
    skipped = plot.draw(doc, PICTURE)
    if README.exists():
        text = README.read_text()
        if all(mark in text for mark in README_MARKS):  # the section is added once, by hand; the rest is never touched
            README.write_text(_replace_between(text, *README_MARKS, readme_section(doc, volumes)))
    return skipped


def _replace_between(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    block = f"{start}\n{body.rstrip()}\n{end}"
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip() + "\n\n" + block + "\n"


def readme_section(doc: dict[str, Any], volumes: dict[str, Any]) -> str:
    res = doc["results"]
    lines = [
        "## Benchmark",
        "",
        "`make bench` runs the seed's configuration as-is (A) and this loader (B) against the local API simulator "
        "in fresh processes, next to the network's practical floor (a bare `requests` loop over the sessions "
        "chain), then a scale curve to 1,000,000 sessions, and writes [docs/benchmarks.md](docs/benchmarks.md) "
        "(figures, machine, method, what bounds each target) and [docs/bench-scale.png](docs/bench-scale.png). "
        f"It takes about 7 minutes ({doc['machine']['duration_s']:.0f} s for these figures); "
        "`python -m bench --quick` about 2 minutes.",
        "",
    ]
    a, b = summary(res.get("s30/A", [])), summary(res.get("s30/B", []))
    fl = floor_figures(res)
    if a and b:
        floor = ""
        if fl:
            floor = f"; the bare loop over the sessions chain: {fl['floor']:.1f} s, B **{fl['ratio']:.3f}x** that"
        lines.append(
            f"- 30 ms latency, 10,000 sessions, DuckDB: A {a['wall']:.1f} s, B {b['wall']:.1f} s, "
            f"B/A **{b['wall'] / a['wall']:.2f}**{floor}."
        )
    a100, b100 = summary(res.get("s100/A", [])), summary(res.get("s100/B", []))
    if a100 and b100:
        lines.append(
            f"- 100 ms latency: A {a100['wall']:.1f} s, B {b100['wall']:.1f} s, "
            f"B/A **{b100['wall'] / a100['wall']:.2f}**."
        )
    pts = scale.points(res)
    if pts:
        figures = "; ".join(
            f"{p.sessions:,}: {p.wall_s:.1f} s, {p.cpu_s:.1f} CPU s, {p.rss_mib:.0f} MiB peak" for p in pts
        )
        lines.append(f"- Scale, production path (filesystem, jsonl), latency 0: {figures}.")
    bq = [p for p in scale.points(res, "scale-bq-") if p.sessions == scale.SUPPORTED_SESSIONS]
    if bq:
        lines.append(
            f"- Into the BigQuery emulator, {bq[0].sessions:,} sessions: {bq[0].wall_s:.1f} s, peak RSS "
            f"**{bq[0].rss_mib:.0f} MiB** (Google's client and its upload buffers; gzip load files, as "
            "deployed)."
        )
    ev = events.points(res)
    if ev:
        figures = "; ".join(
            f"{p.events:,}: {p.wall_s:.1f} s, {p.rows_per_s:,.0f} rows/s, {p.cpu_s:.1f} CPU s, {p.rss_mib:.0f} MiB peak"
            for p in ev
        )
        lines.append(f"- Events export (`events` alone, one 1 h window, filesystem, latency 0): {figures}.")
    curve = deadline_curve(res)
    if curve:
        label, cpts = curve
        read, end = scale.run_seconds(cpts, scale.SUPPORTED_SESSIONS, 0.030)
        lines.append(
            f"- **Supported volume: {scale.SUPPORTED_SESSIONS:,} sessions a run** (the largest measured). On one "
            f"vCPU at 30 ms a request, modelled from the measured CPU: reading done at {read:.0f} s, the run at "
            f"{end:.0f} s, against a deadline of {scale.deadlines()[1]:.0f} s; the largest volume that fits: "
            f"about {scale.largest_volume(cpts, 0.030):,} sessions (latency 0: "
            f"{scale.largest_volume(cpts, 0.0):,})."
        )
    need = memory_need(res)
    if need:
        lines.append(
            f"- Memory at that volume: {need.need_mib:.0f} MiB measured (run, /tmp working folder, gunicorn "
            f"master), +{scale.MEMORY_MARGIN:.0%}: `function_memory` **`{need.size}`** (Terraform's default: "
            f"`{scale.terraform_default('function_memory')}`)."
        )
    bd_a, bd_b = summary(res.get("big-duckdb/A", [])), summary(res.get("big-duckdb/B", []))
    if bd_a and bd_b:
        lines.append(
            f"- 100,000 sessions into DuckDB: A {bd_a['wall']:.1f} s / {bd_a['rss']:,.0f} MiB peak, "
            f"B {bd_b['wall']:.1f} s / {bd_b['rss']:,.0f} MiB peak."
        )
    imports = [r["import_main_s"] for r in res.get("cold/import", []) if r.get("ok")]
    if imports:
        lines.append(f"- Cold `import main`: **{med(imports):.2f} s** (median of {len(imports)}).")
    met = targets(doc)
    if met:
        missed = [t for t, _, ok in met if ok is False]
        bounds = " (what bounds them: [docs/benchmarks.md](docs/benchmarks.md#what-bounds-each-target))"
        lines.append(
            f"- Targets met: {sum(1 for *_, ok in met if ok)} of {len(met)}"
            + (f"; not met: {'; '.join(missed)}{bounds}" if missed else "")
            + "."
        )
    m = doc["machine"]
    lines += [
        "",
        f"Measured {m['date']} on {m['nproc']} CPUs / {m['memory_gib']} GiB, Python {m['python']}, "
        f"dlt {m['dlt']} (`{doc['command']}`), load average {m['loadavg_start']:.1f} at the start and "
        f"{m['loadavg_end']:.1f} at the end. {busy_note(doc)}",
    ]
    return "\n".join(lines)
