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
--levers: B with one setting or modelled code change at a time instead (bench/levers.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import levers, report, runner
from bench.sim import Volume, add_requests, start

SCENARIOS = ("s30", "s100", "big", "cold")
VOLUMES = {
    "s30": Volume(latency_ms=30, sessions=10_000),
    "s100": Volume(latency_ms=100, sessions=10_000),
    "big": Volume(latency_ms=0, sessions=100_000),
    "big10k": Volume(latency_ms=0, sessions=10_000),
}
OUT = runner.BENCH_ROOT / "bench" / "out"
LOGS = OUT / "logs"
Results = dict[str, list[dict[str, Any]]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these scenarios (repeatable)")
    p.add_argument("--quick", action="store_true", help="1 pair at 30 ms, no 100 ms run, no DuckDB at 100k (~1 min)")
    p.add_argument("--runs", type=int, help="A/B pairs of the s30 scenario (default 3, --quick 1); --levers: 2")
    p.add_argument("--tree", type=Path, default=runner.BENCH_ROOT, help="project tree to run as B (default: this repo)")
    p.add_argument("--no-write", action="store_true", help="print the tables, leave docs/benchmarks.md and README.md")
    p.add_argument("--timeout", type=float, default=600, help="seconds before a run is killed")
    p.add_argument("--levers", action="store_true", help="instead of A/B: the levers of bench/levers.py (~14 min)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment setting for B runs, e.g. EXTRACT__WORKERS=5 (repeatable)",
    )
    p.add_argument(
        "--code",
        action="append",
        default=[],
        choices=sorted(levers.CODE),
        help="a modelled code change from bench/levers.py for B runs (repeatable)",
    )
    args = p.parse_args(argv)
    if any("=" not in item for item in args.set):
        p.error("--set takes NAME=VALUE")
    return args


def machine() -> dict[str, Any]:
    import dlt
    import duckdb

    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    git = ["git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, cwd=runner.BENCH_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gib": round(next(int(ln.split()[1]) for ln in meminfo if ln.startswith("MemTotal:")) / 2**20, 1),
        "cpu": next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), ""),
        "python": platform.python_version(),
        "dlt": dlt.__version__,
        "duckdb": duckdb.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "loadavg_start": os.getloadavg()[0],
    }


def say(msg: str) -> None:
    print(msg, flush=True)


def brief(label: str, r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return f"  {label}: FAILED {r.get('error')} (log: {r.get('log')})"
    s = report.steps(r)
    return (
        f"  {label}: {r['wall_s']:.2f} s (extract {s['extract']:.2f}, normalize {s['normalize']:.2f}, "
        f"load {s['load']:.2f}), {r.get('requests', '-')} requests ({r.get('chain_cycle_ms') or 0:.1f} ms a "
        f"request of the longest chain), peak RSS {r['peak_rss_mib']:.0f} MiB"
    )


def project_run(
    server: Any,
    args: argparse.Namespace,
    destination: str = "duckdb",
    env: dict[str, str] | None = None,
    code: list[str] | None = None,
) -> dict[str, Any]:
    """(B) This loader through the function's code path, with --set/--code and the lever's own."""
    spec = {"mode": "project", "base_url": server.url, "code": args.code + (code or [])}
    env = {**dict(item.split("=", 1) for item in args.set), **(env or {})}
    result = runner.run(spec, LOGS, args.timeout, tree=args.tree, env=env, destination=destination)
    return add_requests(result, server)


def seed_run(server: Any, args: argparse.Namespace) -> dict[str, Any]:
    """(A) The seed's configuration as-is; `dlt.secrets["api_key"]`, `dlt.config["uid"]` from the environment."""
    env = {"API_KEY": runner.API_KEY, "UID": runner.UID}
    return add_requests(runner.run({"mode": "seed", "base_url": server.url}, LOGS, args.timeout, env=env), server)


def run_pairs(
    volume: Volume,
    pairs: int,
    args: argparse.Namespace,
    results: Results,
    key: str,
    with_seed: bool = True,
    destination: str = "duckdb",
    probe: bool = False,
) -> None:
    server = start(volume, runner.API_KEY)
    try:
        say(f"{key}: {volume.label()}, simulator at {server.url}, floor {volume.floor_s:.2f} s")
        for i in range(pairs):
            for which in ("A", "B") if i % 2 == 0 else ("B", "A"):
                if which == "A" and not with_seed:
                    continue
                r = seed_run(server, args) if which == "A" else project_run(server, args, destination)
                results.setdefault(f"{key}/{which}", []).append(r)
                say(brief(f"{which} #{i + 1}", r))
            if probe:
                spec = {
                    "mode": "probe",
                    "base_url": server.url,
                    "api_key": runner.API_KEY,
                    "path": "/sessions/v2",
                    "params": {"uid": runner.UID},
                }
                r = runner.run(spec, LOGS, args.timeout)
                server.sim.reset()
                results.setdefault(f"{key}/probe", []).append(r)
                wall, cycle = r.get("wall_s", float("nan")), r.get("cycle_ms", float("nan"))
                say(f"  probe #{i + 1}: the sessions chain, bare requests loop: {wall:.2f} s, {cycle:.1f} ms a request")
    finally:
        server.stop()


def run_cold(args: argparse.Namespace, results: Results) -> None:
    n = 3 if args.quick else 5
    say(f"cold: `import main` x{n}, first POST x1")
    results["cold/import"] = []
    for _ in range(n):
        results["cold/import"].append(runner.run({"mode": "import"}, LOGS, 120, tree=args.tree))
        say(f"  import main {results['cold/import'][-1].get('import_main_s', float('nan')):.3f} s")
    results["cold/breakdown"] = [runner.run({"mode": "import_breakdown"}, LOGS, 120, tree=args.tree)]
    server = start(VOLUMES["s30"], runner.API_KEY)
    try:
        spec = {"mode": "firstreq", "base_url": server.url, "main_py": str(args.tree / "main.py")}
        r = add_requests(runner.run(spec, LOGS, args.timeout, tree=args.tree, destination="duckdb"), server)
    finally:
        server.stop()
    results["cold/firstreq"] = [r]
    say(
        f"  first POST: app ready {r.get('app_ready_s', float('nan')):.2f} s, "
        f"answer {r.get('first_post_s', float('nan')):.2f} s, status {r.get('status')}"
    )


def run_scenarios(args: argparse.Namespace) -> Results:
    scenarios = args.scenario or (["s30", "big", "cold"] if args.quick else list(SCENARIOS))
    results: Results = {}
    if "s30" in scenarios:
        run_pairs(VOLUMES["s30"], args.runs or (1 if args.quick else 3), args, results, "s30", probe=True)
    if "s100" in scenarios:
        run_pairs(VOLUMES["s100"], 1, args, results, "s100")
    if "big" in scenarios:
        run_pairs(VOLUMES["big10k"], 1, args, results, "big10k-fs", with_seed=False, destination="filesystem")
        run_pairs(VOLUMES["big"], 1, args, results, "big-fs", with_seed=False, destination="filesystem")
        if not args.quick:
            run_pairs(VOLUMES["big"], 1, args, results, "big-duckdb")
    if "cold" in scenarios:
        run_cold(args, results)
    return results


def run_levers(args: argparse.Namespace) -> Results:
    """Every set of bench.levers.SETS (--quick: the first only), each on a simulator of its own."""
    results: Results = {}
    for key, title, volume, lever_set in levers.SETS[:1] if args.quick else levers.SETS:
        server = start(volume, runner.API_KEY)
        try:
            say(f"{key}: {title}; {volume.label()}, pages of {volume.page_size}")
            for lever in lever_set:
                plan = [lever]
                if key == levers.ALTERNATED:  # B, lever, lever, B, ...
                    order = [(levers.BASELINE, lever), (lever, levers.BASELINE)]
                    plan = [one for i in range(args.runs or 2) for one in order[i % 2]]
                for label, env, code in plan:
                    r = project_run(server, args, env=env, code=code)
                    r["pair_of"] = lever[0]
                    results.setdefault(f"{key}/{label}", []).append(r)
                    say(brief(label, r))
        finally:
            server.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    info = machine()
    say(
        f"machine: {info['nproc']} CPUs, {info['memory_gib']} GiB, Python {info['python']}, dlt {info['dlt']}; "
        f"load average {info['loadavg_start']:.2f}; B = {args.tree}"
    )
    note = None if args.levers else report.seed_copy_check()
    if note:
        say(note)
    results = run_levers(args) if args.levers else run_scenarios(args)
    info["loadavg_end"] = os.getloadavg()[0]
    info["duration_s"] = time.perf_counter() - started
    given = sys.argv[1:] if argv is None else argv
    command = "python -m bench " + " ".join(given) if given else "make bench"
    doc = {
        "machine": info,
        "command": command,
        "volumes": {k: v.__dict__ for k, v in VOLUMES.items()},
        "tree": str(args.tree),
        "results": results,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    raw = OUT / f"{'levers' if args.levers else 'results'}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    raw.write_text(json.dumps(doc, indent=1))
    tables = report.render_levers(doc, levers.SETS) if args.levers else report.render(doc, VOLUMES)
    say("\n" + tables)
    if not args.no_write:
        report.write(doc, tables, VOLUMES, levers=args.levers)
        say(f"wrote docs/benchmarks.md{'' if args.levers else ' and the README bench section'}; raw figures: {raw}")
    say(f"bench took {info['duration_s']:.0f} s")
    return 1 if any(not r.get("ok") for runs in results.values() for r in runs) else 0
