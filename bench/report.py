"""The Results tables of a benchmark run (docs/benchmarks.md) and of a `--levers` run."""

from __future__ import annotations

import re
from typing import Any

from bench import events, plot, scale
from bench.figures import Summary, floor_figures, med, summary, where_time_goes
from bench.steps import peak_step
from bench.targets import busy_note, deadline_curve, memory_need, targets_table


def _rss(s: dict[str, Any]) -> str:
    """Peak RSS of the process; with child processes (a normalize pool), also their sampled sum."""
    if s.get("tree_rss", 0) > 1.15 * s["rss"]:
        return f"{s['rss']:,.0f} (with children {s['tree_rss']:,.0f})"
    return f"{s['rss']:,.0f}"


def _pair(load: float | None) -> tuple[float, float] | None:
    return None if load is None else (load, load)


def _load(pair: tuple[float, float] | None, others: float | None) -> str:
    """`load average at the start (range) / other processes' CPU in cores (the most of any run)`."""
    if pair is None:
        return "-"
    low, high = pair
    load = f"{low:.1f}" if abs(high - low) < 0.05 else f"{low:.1f}-{high:.1f}"
    return load + (f" / {others:.2f}" if others is not None else "")


HEADER = (
    "| run | runs | wall s (median) | extract s | normalize s | load s | history s | other s | requests | rows "
    "| rows/s | peak RSS MiB | load avg / others' cores |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _row(label: str, s: Summary, expected_rows: int) -> str:
    if s is None:
        return f"| {label} | 0 | failed | | | | | | | | | | |"
    rows = f"{s['rows']:,.0f}" + ("" if s["rows"] == expected_rows else f" (expected {expected_rows:,})")
    spread = f" ({min(s['walls']):.2f}-{max(s['walls']):.2f})" if s["n"] > 1 else ""
    failed = f" (+{s['failed']} failed)" if s["failed"] else ""
    return (
        f"| {label} | {s['n']}{failed} | {s['wall']:.2f}{spread} | {s['extract']:.2f} | {s['normalize']:.2f} | "
        f"{s['load']:.2f} | {s['history']:.2f} | {s['other']:.2f} | {s['requests']:.0f} | {rows} | "
        f"{s['rows_per_s']:,.0f} | {_rss(s)} | {_load(s['loadavg'], s['others'])} |"
    )


def scenario_table(doc: dict[str, Any], key: str, volume: Any, title: str) -> str:
    res = doc["results"]
    a, b = summary(res.get(f"{key}/A", [])), summary(res.get(f"{key}/B", []))
    chain = volume.chain(max(volume.page_size, volume.max_page_size))
    lines = [
        f"**{title}** ({volume.label()}, pages of {volume.page_size}; floor = longest chain "
        f"{chain} requests x {volume.latency_ms:g} ms = {volume.floor_s:.2f} s)",
        "",
        HEADER,
    ]
    if f"{key}/A" in res:
        lines.append(_row("A: seed as-is (DuckDB)", a, volume.total_rows))
    if f"{key}/B" in res:
        lines.append(_row("B: this loader (DuckDB)", b, volume.total_rows))
    notes = []
    if a and b:
        notes.append(f"B/A wall time: **{b['wall'] / a['wall']:.2f}**")
    if b and volume.floor_s:
        notes.append(f"B extract / floor: {b['extract'] / volume.floor_s:.2f}")
    if a and volume.floor_s:
        notes.append(f"A extract / floor: {a['extract'] / volume.floor_s:.2f}")
    fl = floor_figures(res, key)
    if fl:
        pairs = ", ".join(f"{x:.2f}" for x in fl["pairs"])
        notes.append(
            f"practical floor (the sessions chain fetched by a bare `requests` loop on the same simulator after "
            f"each pair, {len(fl['pairs'])} runs): {fl['floor']:.2f} s = {fl['cycle']:.1f} ms a request; "
            f"B / practical floor: **{fl['ratio']:.3f}** (pair by pair: {pairs})"
        )
        g = fl["gaps"]
        if g["b"] == g["b"]:  # not NaN: the runs logged their requests
            notes.append(
                f"one request of the sessions chain: {g['server']:.1f} ms in the simulator (median), then from "
                f"its answer to the next request {g['b']:.1f} ms for B (mean {g['b_mean']:.1f}) and "
                f"{g['floor']:.1f} ms for the bare loop"
            )
    if notes:
        lines += ["", "; ".join(notes) + "."]
    tail = where_time_goes(res.get(f"{key}/B", []))
    if tail:
        lines += ["", tail + "."]
    return "\n".join(lines)


def cold_table(doc: dict[str, Any]) -> str:
    res = doc["results"]
    imports = [r for r in res.get("cold/import", []) if r.get("ok")]
    first = [r for r in res.get("cold/firstreq", []) if r.get("ok")]
    breakdown = [r for r in res.get("cold/breakdown", []) if r.get("ok")]
    lines = ["| measure | median s | runs |", "|---|---:|---:|"]
    if imports:
        s = [r["import_main_s"] for r in imports]
        lines += [
            f"| `import main` (fresh interpreter) | {med(s):.3f} ({min(s):.3f}-{max(s):.3f}) | {len(s)} |",
            f"| process start to `import main` done (interpreter start included) | "
            f"{med([r['process_wall_s'] for r in imports]):.3f} | {len(s)} |",
        ]
    if first:
        r = first[0]
        lines += [
            f"| fresh functions-framework app: `create_app` (imports included) | {r['app_ready_s']:.3f} | 1 |",
            f"| first POST `{{}}` (30 ms, 10k sessions, DuckDB), to its answer | {r['first_post_s']:.3f} | 1 |",
            f"| app creation to first answer | {r['to_first_answer_s']:.3f} | 1 |",
        ]
    if breakdown:
        parts = ", ".join(f"`{k}` {v:.3f}" for k, v in breakdown[0]["steps"].items())
        lines += ["", f"One interpreter, imported one after the other (s, each on top of the previous): {parts}."]
    return "\n".join(lines)


SCALE_HEADER = (
    "| destination | sessions | rows | wall s | rows/s | CPU s | of which after reading | CPU s per 1k sessions "
    "| peak RSS MiB (set in) | /tmp folder MiB: peak, left | load avg / others' cores |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def scale_section(doc: dict[str, Any]) -> str:
    res = doc["results"]
    lines = [SCALE_HEADER]
    for prefix, label in plot.CURVES:
        pts = scale.points(res, prefix)
        for p in pts:
            r = next(x for x in res[f"{prefix}{p.sessions}/B"] if x.get("ok"))
            lines.append(
                f"| {label} | {p.sessions:,} | {p.rows:,} | {p.wall_s:.1f} | {p.rows_per_s:,.0f} | {p.cpu_s:.1f} | "
                f"{p.after_read_cpu_s:.1f} | {1000 * p.cpu_s / p.sessions:.3f} | {p.rss_mib:.0f} ({peak_step(r)}) "
                f"| {p.workdir_mib:.0f}, {p.workdir_end_mib:.0f} "
                f"| {_load(_pair(r.get('loadavg')), r.get('others_cores'))} |"
            )
        failed = [k for k, runs in res.items() if k.startswith(prefix) and not any(r.get("ok") for r in runs)]
        for key in failed:
            if re.fullmatch(re.escape(prefix) + r"\d+/B", key):
                lines.append(
                    f"| {label} | {int(key[len(prefix) : -2]):,} | failed: {res[key][0].get('error')} |||||||||"
                )
    curve = deadline_curve(res)
    if curve:
        label, pts = curve
        lines += ["", _deadline_table(label, pts)]
    need = memory_need(res)
    if need:
        lines += [
            "",
            f"Memory at the supported volume ({need.sessions:,} sessions): the run's peak RSS {need.run_rss_mib:.0f} "
            f"MiB ({need.source} run) + dlt's working folder {need.workdir_mib:.0f} MiB (in the in-memory /tmp on "
            f"Cloud Run functions) + functions-framework's gunicorn master {need.master_mib:.0f} MiB (a process "
            f"that only ran `import main`) = **{need.need_mib:.0f} MiB**; with a {scale.MEMORY_MARGIN:.0%} margin "
            f'{need.with_margin_mib:.0f} MiB, hence `function_memory = "{need.size}"` (default vCPU of that size: '
            f"{scale.DEFAULT_VCPU[scale.size_mib(need.size)]}).",
        ]
    return "\n".join(lines)


def _deadline_table(label: str, pts: list[scale.Point]) -> str:
    """At each latency: when a run of the supported volume would read its last page and end on one vCPU,
    and the largest volume that fits, on one vCPU and on the vCPU of Terraform's default memory."""
    timeout, deadline = scale.deadlines()
    default = scale.terraform_default("function_memory") or "1Gi"
    vcpu = scale.DEFAULT_VCPU.get(scale.size_mib(default), 1.0)
    lines = [
        f"Deadline, modelled from the {label} curve (CPU seconds through its two largest points, run on the "
        f"given vCPU, plus every request of the sessions chain waited for in full): reading must end by the run "
        f"deadline ({deadline:.0f} s), the run by the timeout ({timeout:.0f} s).",
        "",
        f"| latency a request | {scale.SUPPORTED_SESSIONS:,} sessions on 1 vCPU: reading done / run done s "
        f"| largest volume, 1 vCPU | largest volume, {vcpu} vCPU (`{default}` without `available_cpu`) |",
        "|---|---:|---:|---:|",
    ]
    for latency in (0.0, 0.030, 0.100):
        read, end = scale.run_seconds(pts, scale.SUPPORTED_SESSIONS, latency)
        lines.append(
            f"| {latency * 1000:.0f} ms | {read:.0f} / {end:.0f} | {scale.largest_volume(pts, latency):,} | "
            f"{scale.largest_volume(pts, latency, vcpu):,} |"
        )
    return "\n".join(lines)


SCENARIO_TABLES = (
    ("s30", "s30", "30 ms latency"),
    ("s100", "s100", "100 ms latency"),
    ("big-duckdb", "big", "DuckDB, 100k sessions, latency 0"),
)


def render(doc: dict[str, Any], volumes: dict[str, Any]) -> str:
    res = doc["results"]
    parts = ["### Targets", "", targets_table(doc), "", busy_note(doc)] if res else []
    for key, vol, title in SCENARIO_TABLES[:2]:
        if f"{key}/A" in res or f"{key}/B" in res:
            parts += ["", f"### {title}", "", scenario_table(doc, key, volumes[vol], title)]
    if scale.points(res) or scale.points(res, "scale-bq-"):
        parts += [
            "",
            "### Scale curve (latency 0: the loader's CPU, not the network)",
            "",
            "![scale curve](bench-scale.png)",
            "",
            scale_section(doc),
        ]
    for key, vol, title in SCENARIO_TABLES[2:]:
        if f"{key}/A" in res or f"{key}/B" in res:
            parts += ["", f"### {title}", "", scenario_table(doc, key, volumes[vol], title)]
    if events.points(res) or any(k.startswith(events.PREFIX) for k in res):
        parts += ["", "### Events export (the segment export, latency 0)", "", events.section(doc)]
    if "cold/import" in res or "cold/firstreq" in res:
        parts += ["", "### Cold start", "", cold_table(doc)]
    return "\n".join(parts).strip() + "\n"


def render_levers(doc: dict[str, Any], lever_sets: list[Any]) -> str:
    """One table per set of levers (bench.levers.SETS); a lever alternated with the unchanged B is
    compared with the B runs of its own pairs."""
    res = doc["results"]
    parts = []
    for key, title, volume, _ in lever_sets:
        labels = [k.split("/", 1)[1] for k in res if k.startswith(key + "/")]
        if labels:
            parts += ["", f"**{title}** ({volume.label()}, pages of {volume.page_size})", "", HEADER]
        for label in labels:
            mine = summary(res[f"{key}/{label}"])
            base = summary([r for r in res.get(f"{key}/B as it is", []) if r.get("pair_of") == label])
            if mine and base and label != "B as it is":
                delta = mine["wall"] - base["wall"]
                label += f" (vs B: {delta:+.2f} s, {delta / base['wall']:+.0%})"
            parts.append(_row(label, mine, volume.total_rows))
    return "\n".join(parts).strip() + "\n"
