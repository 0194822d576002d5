"""Download the pinned CDK provider wheels and keep their compact schemas in a cache folder.

    <cache>/wheels/*.whl              as `pip download --no-deps` saved them (the package index only)
    <cache>/<provider>-<version>.json the compact schemas (a few MB each)
    <cache>/index.json                {"<provider>": {"<version>": "<file>.json"}}, rewritten by each build

Building reads one wheel's 100-130 MB assembly at a time (~0.8 GB, a few seconds) and drops it
before the next; checks then read only the compact files.
"""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from tools.tfschema.manifest import build_schema
from tools.tfschema.ranges import Version, parse_version

Json = Dict[str, object]
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)==([\w.]+)\s*(?:#.*)?$")
WHEELS_FILE = Path(__file__).with_name("wheels.txt")


def read_pins(wheels_file: Path) -> List[Tuple[str, str]]:
    """(name, version) of each `name==version` line; comments and blank lines skipped."""
    pins = []
    for number, line in enumerate(wheels_file.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line)
        if not match:
            raise ValueError(f"{wheels_file}:{number}: expected `package==version`, got {line.strip()!r}")
        pins.append((match.group(1), match.group(2)))
    return pins


def wheel_path(folder: Path, name: str, version: str) -> Path:
    """The downloaded wheel of a pin (wheel file names use `_` for `-` and `.`)."""
    stem = re.sub(r"[-_.]+", "_", name).lower()
    found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise FileNotFoundError(f"no wheel {stem}-{version}-*.whl in {folder}")
    return found[0]


def download(pins: List[Tuple[str, str]], folder: Path) -> None:
    """`pip download --no-deps` each pin not already in `folder` (one call each: pip refuses two
    versions of one package in a single resolution)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, version in pins:
        try:
            wheel_path(folder, name, version)
            continue
        except FileNotFoundError:
            pass
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            str(folder),
            f"{name}=={version}",
        ]
        subprocess.run(command, check=True)


def build(cache: Path, wheels_file: Path = WHEELS_FILE) -> Dict[str, Dict[str, str]]:
    """Download what is missing, rebuild every compact schema, rewrite the index; returns the index."""
    pins = read_pins(wheels_file)
    download(pins, cache / "wheels")
    index: Dict[str, Dict[str, str]] = {}
    for name, version in pins:
        schema = build_schema(wheel_path(cache / "wheels", name, version))
        target = f"{schema['provider']}-{schema['version']}.json"
        (cache / target).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
        index.setdefault(str(schema["provider"]), {})[str(schema["version"])] = target
        print(
            f"{name}=={version}: {schema['provider']} {schema['version']}, "
            f"{len(schema['resource'])} resources, {len(schema['data'])} data sources -> {cache / target}"
        )
        del schema
        gc.collect()  # the next assembly is as large: release this one first
    (cache / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True))
    return index


def cached_versions(cache: Path) -> Dict[str, Dict[Version, Path]]:
    """{provider: {version: schema file}} from the cache's index."""
    index_file = cache / "index.json"
    if not index_file.is_file():
        raise FileNotFoundError(
            f"no provider schemas in {cache} (index.json missing): run `make tfschema` "
            "(downloads the CDK provider wheels listed in tools/tfschema/wheels.txt from the package index)"
        )
    index = json.loads(index_file.read_text())
    return {p: {parse_version(v): cache / f for v, f in versions.items()} for p, versions in index.items()}


def load(path: Path) -> Json:
    return json.loads(path.read_text())
