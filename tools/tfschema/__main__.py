"""`python -m tools.tfschema fetch|check`: see the package docstring."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

from tools.tfschema.cache import WHEELS_FILE, build, cached_versions, load
from tools.tfschema.check import Problem, check_module
from tools.tfschema.ranges import range_ends, show

DEFAULT_CACHE = Path(".cache/tfschema")


def check_at_ends(folder: Path, cache: Path) -> Dict[str, List[Problem]]:
    """Problems of `folder` against the schemas at each end ("lower", "upper") of its pinned ranges."""
    available = cached_versions(cache)
    results: Dict[str, List[Problem]] = {}
    for end, versions in range_ends(folder, available).items():
        schemas = {name: load(available[name][version]) for name, version in versions.items()}
        label = ", ".join(f"{name} {show(version)}" for name, version in sorted(versions.items()))
        results[f"{end} ({label})"] = check_module(folder, schemas)
    return results


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.tfschema", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="download the pinned CDK provider wheels and build their schemas")
    fetch.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    fetch.add_argument("--wheels", type=Path, default=WHEELS_FILE, help="pins, one `package==version` a line")
    check = commands.add_parser("check", help="check a Terraform folder at both ends of its provider ranges")
    check.add_argument("folder", type=Path, nargs="?", default=Path("terraform"))
    check.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)

    if args.command == "fetch":
        build(args.cache, args.wheels)
        return 0
    failed = False
    for end, problems in check_at_ends(args.folder, args.cache).items():
        print(f"{end}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
