"""`python -m bench`: the seed's configuration as-is (A) against this loader (B), on the simulator.

Scenarios (select with --scenario, repeatable; default: all):
  s30   30 ms latency, 10,000 sessions (pages of 100), 1,000 rows of every other resource;
        A and B alternated (A B, B A, A B, ...), 3 pairs (--quick: 1); after each pair, the
        sessions chain fetched by a bare requests loop (the practical floor on this machine)
  s100  the same volume at 100 ms latency, 1 pair (--quick: skipped)
  big   latency 0, 100,000 sessions: B on the production path (DESTINATION=filesystem, jsonl) at
        10,000 and 100,000 sessions (memory must not grow with pages), B and A on DuckDB
        (--quick: filesystem runs only)
  cold  `import main` in a fresh interpreter (5 runs, --quick 3) and the first POST of a fresh
        functions-framework app (1 run)
Writes docs/benchmarks.md and the README's bench section unless --no-write.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench import report, runner
from bench.sim import Volume, request_stats, start

SCENARIOS = ("s30", "s100", "big", "cold")
VOLUMES = {
    "s30": Volume(latency_ms=30, sessions=10_000),
    "s100": Volume(latency_ms=100, sessions=10_000),
    "big": Volume(latency_ms=0, sessions=100_000),
    "big10k": Volume(latency_ms=0, sessions=10_000),
}
OUT = runner.BENCH_ROOT / "bench" / "out"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these scenarios (repeatable)")
    p.add_argument("--quick", action="store_true", help="one pair at 30 ms, no 100 ms run, no DuckDB runs at 100k (about a minute)")
    p.add_argument("--runs", type=int, help="A/B pairs of the s30 scenario (default 3, --quick 1)")
    p.add_argument("--tree", type=Path, default=runner.BENCH_ROOT,
                   help="project tree to run as B (default: this repo); e.g. a copy with a proposed change")
    p.add_argument("--no-write", action="store_true", help="print the tables, do not touch docs/benchmarks.md or README.md")
    p.add_argument("--timeout", type=float, default=600, help="seconds before a run is killed")
    p.add_argument("--levers", action="store_true",
                   help="instead of A/B: B with one setting or modelled code change at a time (bench/levers.py; ~10 minutes)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="environment setting for B runs, e.g. EXTRACT__WORKERS=5 (repeatable)")
    p.add_argument("--patch", action="append", default=[], metavar="NAME",
                   help="apply a modelled code change from bench/patches.py to B runs (repeatable)")
    p.add_argument("--nagle", action="store_true",
                   help="leave Nagle's algorithm on in the simulator (every request then costs ~40 ms more; see bench/sim.py)")
    return p.parse_args(argv)


def machine() -> Dict[str, Any]:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), "")
    except OSError:
        pass
    import dlt
    import duckdb

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=runner.BENCH_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "dlt": dlt.__version__,
        "duckdb": duckdb.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "loadavg_start": os.getloadavg()[0],
    }


def _with_requests(result: Dict[str, Any], server: Any) -> Dict[str, Any]:
    log = list(server.sim.requests)
    result.update(request_stats(log))
    server.sim.reset()
    ext = [c for c in result.get("steps") or [] if c[0] == "extract"]
    if ext and log and result.get("origin_epoch"):
        # how long the extract step runs before its first request and after its last answer
        first_request = min(r["at"] - r["seconds"] for r in log)
        last_answer = max(r["at"] for r in log)
        result["extract_lead_s"] = first_request - (result["origin_epoch"] + min(c[1] for c in ext))
        result["extract_tail_s"] = result["origin_epoch"] + max(c[2] for c in ext) - last_answer
        # the extract step, counted from the first request when requests go out before dlt's extract starts
        result["extract_span_s"] = max(c[2] for c in ext) - min(min(c[1] for c in ext), first_request - result["origin_epoch"])
    return result


def say(msg: str) -> None:
    print(msg, flush=True)


def brief(label: str, r: Dict[str, Any]) -> str:
    if not r.get("ok"):
        return f"  {label}: FAILED {r.get('error')} (log: {r.get('log')})"
    s = report.steps(r)
    return (f"  {label}: {r['wall_s']:.2f} s (extract {s['extract']:.2f}, normalize {s['normalize']:.2f}, load {s['load']:.2f}), "
            f"{r.get('requests', '-')} requests (chain: {r.get('chain_cycle_ms') or 0:.1f} ms a request; "
            f"first request {r.get('extract_lead_s', 0):+.2f} s from the extract's start, its end {r.get('extract_tail_s', 0):.2f} s after the last answer), "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB")


def run_pairs(volume: Volume, pairs: int, args: argparse.Namespace, log_dir: Path, results: Dict[str, List[Dict[str, Any]]],
              key: str, with_seed: bool = True, destination: str = "duckdb", probe: bool = False) -> None:
    server = start(volume, runner.API_KEY, nagle=args.nagle)
    try:
        say(f"{key}: {volume.label()}, simulator at {server.url}, floor {volume.floor_s:.2f} s")
        for i in range(pairs):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")
            for which in order:
                if which == "A" and not with_seed:
                    continue
                server.sim.reset()
                if which == "A":
                    r = runner.seed_run(server.url, log_dir, args.timeout)
                else:
                    r = runner.project_run(server.url, destination, log_dir, args.timeout, tree=args.tree,
                                           overrides=overrides(args), patches=args.patch)
                _with_requests(r, server)
                results.setdefault(f"{key}/{which}", []).append(r)
                say(brief(f"{which} #{i + 1}", r))
            if probe:
                server.sim.reset()
                r = runner.probe_run(server.url, log_dir, args.timeout)
                server.sim.reset()
                results.setdefault(f"{key}/probe", []).append(r)
                say(f"  probe #{i + 1}: the sessions chain by a bare requests loop: {r.get('wall_s', float('nan')):.2f} s, "
                    f"{r.get('cycle_ms', float('nan')):.1f} ms a request")
    finally:
        server.stop()


def overrides(args: argparse.Namespace) -> Dict[str, str]:
    out = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def run_levers(args: argparse.Namespace, log_dir: Path) -> Dict[str, List[Dict[str, Any]]]:
    """Each lever alternated with the unchanged B (B, lever, lever, B, ...) at 30 ms / 10k sessions;
    the memory levers once each on DuckDB at 100k sessions."""
    from bench import levers

    results: Dict[str, List[Dict[str, Any]]] = {}
    runs = args.runs or 2
    server = start(VOLUMES["s30"], runner.API_KEY, nagle=args.nagle)
    try:
        say(f"levers at {VOLUMES['s30'].label()}, {runs} runs each, alternated with the unchanged B")
        for label, env, patches in levers.S30:
            for i in range(runs):
                order = ((levers.BASELINE[0], {}, []), (label, env, patches))
                for name, e, p in (order if i % 2 == 0 else order[::-1]):
                    r = _with_requests(runner.project_run(server.url, "duckdb", log_dir, args.timeout, tree=args.tree,
                                                          overrides={**overrides(args), **e}, patches=args.patch + p), server)
                    r["pair_of"] = label
                    results.setdefault(f"lever-s30/{name}", []).append(r)
                    say(brief(name, r))
    finally:
        server.stop()
    if args.quick:
        return results
    small_pages = Volume(latency_ms=30, sessions=10_000, page_size=20, max_page_size=100)
    server = start(small_pages, runner.API_KEY, nagle=args.nagle)
    try:
        say(f"page size levers at {small_pages.label()}, the API's default page 20 rows (maximum 100)")
        for label, env, patches in levers.PAGE_SIZE:
            r = _with_requests(runner.project_run(server.url, "duckdb", log_dir, args.timeout, tree=args.tree,
                                                  overrides={**overrides(args), **env}, patches=args.patch + patches), server)
            results.setdefault(f"lever-pages/{label}", []).append(r)
            say(brief(label, r))
    finally:
        server.stop()
    server = start(VOLUMES["big"], runner.API_KEY, nagle=args.nagle)
    try:
        say(f"memory levers at {VOLUMES['big'].label()}, DuckDB")
        for label, env, patches in levers.BIG_DUCKDB:
            r = _with_requests(runner.project_run(server.url, "duckdb", log_dir, args.timeout, tree=args.tree,
                                                  overrides={**overrides(args), **env}, patches=args.patch + patches), server)
            results.setdefault(f"lever-big/{label}", []).append(r)
            say(brief(label, r))
    finally:
        server.stop()
    return results


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.levers:
        return main_levers(args, argv)
    scenarios = args.scenario or list(SCENARIOS)
    if args.quick and not args.scenario:
        scenarios = ["s30", "big", "cold"]
    pairs = args.runs or (1 if args.quick else 3)
    started = time.perf_counter()
    log_dir = OUT / "logs"
    info = machine()
    say(f"machine: {info['nproc']} CPUs, {info['memory_gib']} GiB, Python {info['python']}, dlt {info['dlt']}; "
        f"load average {info['loadavg_start']:.2f}; B = {args.tree}")
    note = report.seed_copy_check()
    if note:
        say(note)
    results: Dict[str, List[Dict[str, Any]]] = {}
    if "s30" in scenarios:
        run_pairs(VOLUMES["s30"], pairs, args, log_dir, results, "s30", probe=True)
    if "s100" in scenarios:
        run_pairs(VOLUMES["s100"], 1, args, log_dir, results, "s100")
    if "big" in scenarios:
        run_pairs(VOLUMES["big10k"], 1, args, log_dir, results, "big10k-fs", with_seed=False, destination="filesystem")
        run_pairs(VOLUMES["big"], 1, args, log_dir, results, "big-fs", with_seed=False, destination="filesystem")
        if not args.quick:
            run_pairs(VOLUMES["big"], 1, args, log_dir, results, "big-duckdb")
    if "cold" in scenarios:
        n = 3 if args.quick else 5
        say(f"cold: `import main` x{n}, first POST x1")
        runs = []
        for _ in range(n):
            runs.append(runner.import_run(log_dir, tree=args.tree))
            say(f"  import main {runs[-1].get('import_main_s', float('nan')):.3f} s")
        results["cold/import"] = runs
        results["cold/breakdown"] = [runner.import_breakdown_run(log_dir, tree=args.tree)]
        server = start(VOLUMES["s30"], runner.API_KEY, nagle=args.nagle)
        try:
            r = _with_requests(runner.first_request_run(server.url, log_dir, args.timeout, tree=args.tree), server)
        finally:
            server.stop()
        results["cold/firstreq"] = [r]
        say(f"  first POST: app ready {r.get('app_ready_s', float('nan')):.2f} s, answer {r.get('first_post_s', float('nan')):.2f} s, status {r.get('status')}")
    info["loadavg_end"] = os.getloadavg()[0]
    info["duration_s"] = time.perf_counter() - started
    command = "make bench" if argv is None and sys.argv[1:] == [] else "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = {"machine": info, "command": command, "volumes": {k: v.__dict__ for k, v in VOLUMES.items()},
           "tree": str(args.tree), "nagle": args.nagle, "results": results}
    OUT.mkdir(parents=True, exist_ok=True)
    raw = OUT / f"results-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}.json"
    raw.write_text(json.dumps(doc, indent=1))
    tables = report.render(doc, VOLUMES)
    say("\n" + tables)
    if not args.no_write:
        report.write_docs(doc, tables, VOLUMES)
        say(f"wrote docs/benchmarks.md and the README's bench section; raw figures: {raw.relative_to(runner.BENCH_ROOT)}")
    say(f"bench took {info['duration_s']:.0f} s")
    failed = [k for k, runs in results.items() for r in runs if not r.get("ok")]
    return 1 if failed else 0


def main_levers(args: argparse.Namespace, argv: Optional[List[str]]) -> int:
    started = time.perf_counter()
    info = machine()
    say(f"machine: {info['nproc']} CPUs, {info['memory_gib']} GiB; load average {info['loadavg_start']:.2f}; B = {args.tree}")
    results = run_levers(args, OUT / "logs")
    info["loadavg_end"] = os.getloadavg()[0]
    info["duration_s"] = time.perf_counter() - started
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = {"machine": info, "command": command, "tree": str(args.tree), "nagle": args.nagle, "results": results}
    OUT.mkdir(parents=True, exist_ok=True)
    raw = OUT / f"levers-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}.json"
    raw.write_text(json.dumps(doc, indent=1))
    tables = report.render_levers(doc)
    say("\n" + tables)
    if not args.no_write:
        report.write_levers(doc, tables)
        say(f"wrote the levers section of docs/benchmarks.md; raw figures: {raw.relative_to(runner.BENCH_ROOT)}")
    say(f"levers took {info['duration_s']:.0f} s")
    return 0
