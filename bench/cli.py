"""`python -m bench`: the seed's configuration as-is (A) against this loader (B), on the simulator.

Scenarios (select with --scenario, repeatable; default: all):
  s30   30 ms latency, 10,000 sessions (pages of 100), 1,000 rows of every other resource;
        A and B alternated (A B, B A, A B, ...), 3 pairs (--quick: 1); after each pair, the
        sessions chain fetched by a bare requests loop on the same simulator (the practical floor)
  s100  the same volume at 100 ms latency, 1 pair (--quick: skipped)
  scale the scale curve: B on the production path (DESTINATION=filesystem, jsonl) at 10,000,
        100,000 and 1,000,000 sessions (up to --scale-max), latency 0 so that it measures the
        loader's CPU, not the network; one run each; then the same points into the BigQuery
        emulator of tests/bigquery_emulator.py (.venv-bqemu, `make bqemu`; --quick or
        --no-bigquery: skipped), for the memory of the deployed path (~5 min in all)
  big   latency 0, 100,000 sessions into DuckDB, A and B (--quick: skipped)
  events the `events` resource alone (`{"resources": ["events"]}`, the segment export) on the production
        path, latency 0: one 1 h window of 20,000 and one of 200,000 events (--quick: 100,000), one run each
        (bench/events.py)
  cold  `import main` in a fresh interpreter (5 runs, --quick 3) and the first POST of a fresh
        functions-framework app (1 run)
Writes docs/benchmarks.md, docs/bench-scale.png and the README's bench section unless --no-write.
--levers: B with one setting or modelled code change at a time instead (bench/levers.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import events, levers, publish, report, runner
from bench.seed import seed_copy_check
from bench.sim import Volume, add_requests, client_figures, start
from bench.steps import steps

SCENARIOS = ("s30", "s100", "scale", "big", "events", "cold")
VOLUMES = {
    "s30": Volume(latency_ms=30, sessions=10_000),
    "s100": Volume(latency_ms=100, sessions=10_000),
    "big": Volume(latency_ms=0, sessions=100_000),
}
SCALE_POINTS = (10_000, 100_000, 1_000_000)  # sessions; the curve stops at --scale-max
SCALE_S_PER_SESSION = 0.001  # a scale run's timeout: at least this per session (1M: 1,000 s)
OUT = runner.BENCH_ROOT / "bench" / "out"
LOGS = OUT / "logs"
Results = dict[str, list[dict[str, Any]]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these scenarios (repeatable)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 pair at 30 ms, no 100 ms run, scale curve and events to 100k, no DuckDB (~1.5 min)",
    )
    p.add_argument(
        "--scale-max",
        type=int,
        help="largest point of the scale curve, in sessions (default 1,000,000; --quick 100,000); "
        "a value not in 10k/100k/1M is added as a point of its own",
    )
    p.add_argument("--no-bigquery", action="store_true", help="scale curve without the BigQuery emulator's points")
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
    s = steps(r)
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
    timeout: float | None = None,
    body: str = "{}",
) -> dict[str, Any]:
    """(B) This loader through the function's code path, with --set/--code and the lever's own."""
    spec = {"mode": "project", "base_url": server.url, "code": args.code + (code or []), "body": body}
    env = {**dict(item.split("=", 1) for item in args.set), **(env or {})}
    result = runner.run(spec, LOGS, timeout or args.timeout, tree=args.tree, env=env, destination=destination)
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
                r.update(client_figures(list(server.sim.requests), "sessions"))
                server.sim.reset()
                results.setdefault(f"{key}/probe", []).append(r)
                wall, cycle = r.get("wall_s", float("nan")), r.get("cycle_ms", float("nan"))
                say(f"  probe #{i + 1}: the sessions chain, bare requests loop: {wall:.2f} s, {cycle:.1f} ms a request")
    finally:
        server.stop()


def scale_points(args: argparse.Namespace) -> list[int]:
    top = args.scale_max or (100_000 if args.quick else SCALE_POINTS[-1])
    return sorted({n for n in SCALE_POINTS if n <= top} | {top})


def run_scale(args: argparse.Namespace, results: Results) -> None:
    """B on the production path at each point of the curve, each on a simulator of its own (latency 0);
    then into the BigQuery emulator, when it is installed."""
    for sessions in scale_points(args):
        run_scale_point(args, results, sessions, "filesystem")
    if args.quick or args.no_bigquery:
        return
    from tests.bigquery_emulator import VENV, BigQueryEmulator  # the tests' emulator, in .venv-bqemu

    if not (VENV / "bin" / "bqemulator").exists():
        say(f"scale, BigQuery emulator: skipped, {VENV} is not installed (`make bqemu`)")
        return
    with tempfile.TemporaryDirectory(prefix="analytics-bench-bqemu-") as work:
        emulator = BigQueryEmulator(Path(work)).start()
        try:
            for sessions in scale_points(args):
                env = emulator.loader_env(f"bench_scale_{sessions}")
                run_scale_point(args, results, sessions, "bigquery", env)
        finally:
            emulator.stop()


def run_scale_point(
    args: argparse.Namespace, results: Results, sessions: int, destination: str, env: dict[str, str] | None = None
) -> None:
    key = f"scale-{sessions}" if destination == "filesystem" else f"scale-bq-{sessions}"
    volume = VOLUMES[key] = Volume(latency_ms=0, sessions=sessions)
    server = start(volume, runner.API_KEY)
    try:
        say(f"{key}: {volume.label()}, {destination}")
        timeout = max(args.timeout, SCALE_S_PER_SESSION * sessions)
        r = project_run(server, args, destination, env=env, timeout=timeout)
        results[f"{key}/B"] = [r]
        cpu, folder = r.get("cpu_s", float("nan")), r.get("workdir_peak_mib", float("nan"))
        say(f"{brief('B', r)}, CPU {cpu:.1f} s, working folder {folder:.0f} MiB")
    finally:
        server.stop()


def run_events(args: argparse.Namespace, results: Results) -> None:
    """B loading `events` alone at each volume of bench.events.POINTS, each on a simulator of its own."""
    for n in events.QUICK_POINTS if args.quick else events.POINTS:
        server = events.start(n, runner.API_KEY)
        try:
            say(f"events-{n}: one 1 h window of {n:,} events, 0 ms, filesystem")
            r = project_run(server, args, "filesystem", env=events.settings(), body=events.BODY)
            results[f"{events.PREFIX}{n}/B"] = [r]
            if not r.get("ok"):
                say(brief("B", r))
                continue
            p = events.points({f"{events.PREFIX}{n}/B": [r]})[0]
            say(
                f"  B: {p.wall_s:.2f} s (the simulator {p.server_s:.2f}), {p.rows:,} rows ({p.rows_per_s:,.0f} "
                f"rows/s), CPU {p.cpu_s:.1f} s, peak RSS {p.rss_mib:.0f} MiB (set in {p.peak_step or '?'}), "
                f"{r.get('requests', '-')} requests"
            )
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
    scenarios = args.scenario or (["s30", "scale", "events", "cold"] if args.quick else list(SCENARIOS))
    results: Results = {}
    if "s30" in scenarios:
        run_pairs(VOLUMES["s30"], args.runs or (1 if args.quick else 3), args, results, "s30", probe=True)
    if "s100" in scenarios:
        run_pairs(VOLUMES["s100"], 1, args, results, "s100")
    if "scale" in scenarios:
        run_scale(args, results)
    if "big" in scenarios:
        run_pairs(VOLUMES["big"], 1, args, results, "big-duckdb")
    if "events" in scenarios:
        run_events(args, results)
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
    note = None if args.levers else seed_copy_check()
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
        skipped = publish.write(doc, tables, VOLUMES, levers=args.levers)
        wrote = "" if args.levers else ", the README bench section" + ("" if skipped else " and docs/bench-scale.png")
        say(f"wrote docs/benchmarks.md{wrote}; raw figures: {raw}" + (f" (no picture: {skipped})" if skipped else ""))
    say(f"bench took {info['duration_s']:.0f} s")
    return 1 if any(not r.get("ok") for runs in results.values() for r in runs) else 0
