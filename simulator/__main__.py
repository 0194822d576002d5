"""Run the simulator on a loopback port: `python -m simulator --port 8765 --api-key KEY`."""

import argparse
import json
import signal
import sys
import threading
from typing import List, Optional

from simulator.server import SimConfig, Simulator, SimulatorServer
from source.settings import RESOURCE_NAMES


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    p.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    p.add_argument("--api-key", default="sim-key", help="the key clients must send")
    p.add_argument("--auth-scheme", choices=("bearer", "basic"), default="bearer")
    p.add_argument("--profile", choices=("seed", "documented"), default="seed", help="response shapes")
    p.add_argument("--rows", type=int, default=25, help="rows of every resource")
    p.add_argument(
        "--resource-rows", action="append", default=[], metavar="NAME=N", help="rows of one resource (repeatable)"
    )
    p.add_argument("--page-size", type=int, default=10, help="rows per page when no `limit` is sent")
    p.add_argument("--max-page-size", type=int, default=100, help="largest `limit` honoured")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    p.add_argument("--storm-rate", type=float, default=0.0, help="share of requests answered with a transient 429/5xx")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='e.g. \'{"resource":"segments","status":500}\' (repeatable)',
    )
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    rows = {name: args.rows for name in RESOURCE_NAMES}
    for item in args.resource_rows:
        name, _, count = item.partition("=")
        if name not in rows:
            raise SystemExit(f"--resource-rows: unknown resource {name!r}; valid: {', '.join(RESOURCE_NAMES)}")
        rows[name] = int(count)
    return SimConfig.from_dict(
        {
            "api_key": args.api_key,
            "auth_scheme": args.auth_scheme,
            "profile": args.profile,
            "rows": rows,
            "page_size": args.page_size,
            "max_page_size": args.max_page_size,
            "latency_ms": args.latency_ms,
            "storm_rate": args.storm_rate,
            "faults": [json.loads(f) for f in args.fault],
        }
    )


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    server = SimulatorServer(Simulator(config_from_args(args)), host=args.host, port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"simulator listening on {server.url}", flush=True)
    stop.wait()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
