"""Tables of a benchmark run, docs/benchmarks.md and the README's bench section."""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path
from typing import Any

from bench.runner import BENCH_ROOT

DOC = BENCH_ROOT / "docs" / "benchmarks.md"
README = BENCH_ROOT / "README.md"
README_MARKS = ("<!-- bench:start -->", "<!-- bench:end -->")
RESULTS_MARKS = ("<!-- bench:results:start -->", "<!-- bench:results:end -->")
LEVERS_MARKS = ("<!-- bench:levers:start -->", "<!-- bench:levers:end -->")

TARGET_RATIO = 0.5
TARGET_EXTRACT_OVER_FLOOR = 1.25
TARGET_RSS_MIB = 512
TARGET_IMPORT_S = 1.3
Summary = dict[str, Any] | None


# -- figures of one run -------------------------------------------------------------------------
def steps(r: dict[str, Any]) -> dict[str, float]:
    """extract: from the first extract call's start (or the first request, if earlier) to the last
    extract call's end; normalize, load: summed over calls; other: wall time covered by none of
    the calls (pipeline setup, state sync, the loader's own work)."""
    calls = r.get("steps") or []
    ext = [c for c in calls if c[0] == "extract"]
    out = {
        "extract": r.get("extract_span_s") or ((max(c[2] for c in ext) - min(c[1] for c in ext)) if ext else 0.0),
        "normalize": sum(c[2] - c[1] for c in calls if c[0] == "normalize"),
        "load": sum(c[2] - c[1] for c in calls if c[0] == "load"),
    }
    covered, end = 0.0, 0.0
    for s, e in sorted((c[1], c[2]) for c in calls):
        if e > end:
            covered += e - max(s, end)
            end = e
    out["other"] = max(0.0, r.get("wall_s", 0.0) - covered)
    return out


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(runs: list[dict[str, Any]]) -> Summary:
    ok = [r for r in runs if r.get("ok")]
    if not ok:
        return None
    st = [steps(r) for r in ok]
    wall = med([r["wall_s"] for r in ok])
    # rows loaded into the root tables (child tables and dlt's own left out)
    rows = med([sum(n for t, n in r["row_counts"].items() if "__" not in t and not t.startswith("_dlt")) for r in ok])
    return {
        "n": len(ok),
        "failed": len(runs) - len(ok),
        "wall": wall,
        "walls": [r["wall_s"] for r in ok],
        **{step: med([s[step] for s in st]) for step in ("extract", "normalize", "load", "other")},
        "requests": med([r.get("requests", 0) for r in ok]),
        "chain": med([r.get("longest_chain", 0) for r in ok]),
        "rows": rows,
        "rows_per_s": rows / wall if wall else float("nan"),
        "rss": max(r["peak_rss_mib"] for r in ok),
        "tree_rss": max(r.get("tree_peak_rss_mib") or 0 for r in ok),
    }


def _rss(s: dict[str, Any]) -> str:
    """Peak RSS of the process; with child processes (a normalize pool), also their sampled sum."""
    if s.get("tree_rss", 0) > 1.15 * s["rss"]:
        return f"{s['rss']:,.0f} (with children {s['tree_rss']:,.0f})"
    return f"{s['rss']:,.0f}"


# -- tables ---------------------------------------------------------------------------------------
HEADER = (
    "| run | runs | wall s (median) | extract s | normalize s | load s | other s | requests | rows | rows/s "
    "| peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _row(label: str, s: Summary, expected_rows: int) -> str:
    if s is None:
        return f"| {label} | 0 | failed | | | | | | | | |"
    rows = f"{s['rows']:,.0f}" + ("" if s["rows"] == expected_rows else f" (expected {expected_rows:,})")
    spread = f" ({min(s['walls']):.2f}-{max(s['walls']):.2f})" if s["n"] > 1 else ""
    failed = f" (+{s['failed']} failed)" if s["failed"] else ""
    return (
        f"| {label} | {s['n']}{failed} | {s['wall']:.2f}{spread} | {s['extract']:.2f} | {s['normalize']:.2f} | "
        f"{s['load']:.2f} | {s['other']:.2f} | {s['requests']:.0f} | {rows} | {s['rows_per_s']:,.0f} | {_rss(s)} |"
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
        dest = "filesystem, jsonl" if key.endswith("-fs") else "DuckDB"
        lines.append(_row(f"B: this loader ({dest})", b, volume.total_rows))
    notes = []
    if a and b:
        notes.append(f"B/A wall time: **{b['wall'] / a['wall']:.2f}**")
    if b and volume.floor_s:
        notes.append(f"B extract / floor: **{b['extract'] / volume.floor_s:.2f}**")
    if a and volume.floor_s:
        notes.append(f"A extract / floor: {a['extract'] / volume.floor_s:.2f}")
    probes = [r for r in res.get(f"{key}/probe", []) if r.get("ok")]
    if probes:
        wall = med([r["wall_s"] for r in probes])
        notes.append(
            f"practical floor (the sessions chain fetched by a bare `requests` loop, nothing else running, "
            f"{len(probes)} runs): {wall:.2f} s = {med([r['cycle_ms'] for r in probes]):.1f} ms a request"
            + (f", B extract / practical floor: {b['extract'] / wall:.2f}" if b else "")
        )
    if notes:
        lines += ["", "; ".join(notes) + "."]
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


def targets_table(doc: dict[str, Any], volumes: dict[str, Any]) -> str:
    res = doc["results"]
    rows = ["| target | measured | met |", "|---|---|---|"]

    def mark(ok: bool) -> str:
        return "yes" if ok else "**no**"

    a, b = summary(res.get("s30/A", [])), summary(res.get("s30/B", []))
    if a and b:
        ratio = b["wall"] / a["wall"]
        rows.append(
            f"| end-to-end B/A <= {TARGET_RATIO} (30 ms, 10k sessions) | {ratio:.2f} ({b['wall']:.2f} s / "
            f"{a['wall']:.2f} s) | {mark(ratio <= TARGET_RATIO)} |"
        )
    if b:
        floor = volumes["s30"].floor_s
        probes = [r["wall_s"] for r in res.get("s30/probe", []) if r.get("ok")]
        practical = f"; a bare requests loop over the chain: {med(probes):.2f} s" if probes else ""
        rows.append(
            f"| extract <= {TARGET_EXTRACT_OVER_FLOOR} x floor ({floor:.2f} s), 30 ms | {b['extract']:.2f} s = "
            f"{b['extract'] / floor:.2f} x floor{practical} | "
            f"{mark(b['extract'] <= TARGET_EXTRACT_OVER_FLOOR * floor)} |"
        )
    big, small = summary(res.get("big-fs/B", [])), summary(res.get("big10k-fs/B", []))
    if big:
        peak = max(big["rss"], big.get("tree_rss", 0))
        growth = f"; 10k sessions: {max(small['rss'], small.get('tree_rss', 0)):.0f} MiB" if small else ""
        rows.append(
            f"| peak RSS <= {TARGET_RSS_MIB} MiB, 100k sessions, filesystem destination | {peak:.0f} MiB"
            f"{growth} | {mark(peak <= TARGET_RSS_MIB)} |"
        )
    imports = [r["import_main_s"] for r in res.get("cold/import", []) if r.get("ok")]
    if imports:
        rows.append(
            f"| cold `import main` <= {TARGET_IMPORT_S} s | {med(imports):.3f} s | "
            f"{mark(med(imports) <= TARGET_IMPORT_S)} |"
        )
    return "\n".join(rows)


SCENARIO_TABLES = (
    ("s30", "s30", "30 ms latency"),
    ("s100", "s100", "100 ms latency"),
    ("big10k-fs", "big10k", "Production path, 10k sessions, latency 0"),
    ("big-fs", "big", "Production path, 100k sessions, latency 0"),
    ("big-duckdb", "big", "DuckDB, 100k sessions, latency 0"),
)


def render(doc: dict[str, Any], volumes: dict[str, Any]) -> str:
    res = doc["results"]
    parts = ["### Targets", "", targets_table(doc, volumes)] if res else []
    for key, vol, title in SCENARIO_TABLES:
        if f"{key}/A" in res or f"{key}/B" in res:
            parts += ["", f"### {title}", "", scenario_table(doc, key, volumes[vol], title)]
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


# -- files ----------------------------------------------------------------------------------------
def write(doc: dict[str, Any], tables: str, volumes: dict[str, Any], levers: bool = False) -> None:
    """The tables, with the command and the machine, between the Results (or Levers) marks of
    docs/benchmarks.md; for a scenario run, the README's bench section too."""
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
    if not levers and README.exists():
        text = README.read_text()
        if all(mark in text for mark in README_MARKS):  # the section is added once, by hand; the rest is never touched
            README.write_text(_replace_between(text, *README_MARKS, readme_section(doc, volumes)))


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
        "`make bench` runs the seed's configuration as-is (A) and this loader (B) against the local API simulator, "
        "alternating A and B in fresh processes, and writes [docs/benchmarks.md](docs/benchmarks.md) "
        "(figures, machine, method, and what was tried). `python -m bench --quick` takes about a minute.",
        "",
    ]
    a, b = summary(res.get("s30/A", [])), summary(res.get("s30/B", []))
    if a and b:
        lines.append(
            f"- 30 ms latency, 10,000 sessions, DuckDB: A {a['wall']:.1f} s, B {b['wall']:.1f} s, "
            f"B/A **{b['wall'] / a['wall']:.2f}**; B's extract {b['extract']:.2f} s against a floor of "
            f"{volumes['s30'].floor_s:.1f} s ({b['requests']:.0f} requests)."
        )
    a100, b100 = summary(res.get("s100/A", [])), summary(res.get("s100/B", []))
    if a100 and b100:
        lines.append(
            f"- 100 ms latency: A {a100['wall']:.1f} s, B {b100['wall']:.1f} s, "
            f"B/A **{b100['wall'] / a100['wall']:.2f}**."
        )
    big = summary(res.get("big-fs/B", []))
    if big:
        lines.append(
            f"- 100,000 sessions, latency 0, production path (filesystem, jsonl): {big['wall']:.1f} s, "
            f"{big['rows_per_s']:,.0f} rows/s, peak RSS **{big['rss']:.0f} MiB**."
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
    met = targets_table(doc, volumes).splitlines()[2:]
    if met:
        missed = [ln.split(" | ")[0].lstrip("| ") for ln in met if ln.rstrip(" |").endswith("**no**")]
        bounds = (
            " (what bounds them: [docs/benchmarks.md](docs/benchmarks.md#what-bounds-each-target-and-what-is-proposed))"
        )
        lines.append(
            f"- Targets met: {len(met) - len(missed)} of {len(met)}"
            + (f"; not met: {'; '.join(missed)}{bounds}" if missed else "")
            + "."
        )
    m = doc["machine"]
    lines += [
        "",
        f"Measured {m['date']} on {m['nproc']} CPUs / {m['memory_gib']} GiB, Python {m['python']}, "
        f"dlt {m['dlt']} (`{doc['command']}`).",
    ]
    return "\n".join(lines)


def seed_copy_check() -> str | None:
    """Compare bench/seed.py with the seed's document, when it is present next to the repo."""
    candidates = [os.environ.get("BENCH_SEED_DOC", ""), str(BENCH_ROOT.parent / "shared/seed/analytics-api-source.md")]
    path = next((Path(p) for p in candidates if p and Path(p).is_file()), None)
    if path is None:
        return None
    block = re.search(r"```python\n(.*?)```", path.read_text(), re.S)
    if not block:
        return f"note: no python block in {path}"
    code = block.group(1)
    seed = code[code.index("rest_api_source(") + len("rest_api_source(") : code.rindex(")")]
    mine_src = (BENCH_ROOT / "bench" / "seed.py").read_text()
    mine = mine_src[mine_src.index("rest_api_source(") + len("rest_api_source(") : mine_src.index("\n    })\n") + 6]

    def norm(s: str) -> str:
        return re.sub(r"\s+", "", s).replace('"https://api.example.com"', "base_url")

    if norm(seed) != norm(mine):
        return f"WARNING: bench/seed.py differs from the seed's configuration in {path}"
    return None
