"""Terraform version constraints (`>= 7.33, < 8.0`) and the ends of a pinned range."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import hcl2

Version = Tuple[int, int, int]
CONSTRAINT = re.compile(r"^\s*(>=|<=|!=|~>|>|<|=)?\s*v?(\d+(?:\.\d+){0,2})\s*$")


def parse_version(text: str) -> Version:
    """`7.33` -> (7, 33, 0); `7.46.1` -> (7, 46, 1). Pre-release suffixes are not supported."""
    parts = [int(p) for p in text.split(".")]
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"not a version: {text!r}")
    major, minor, patch = parts + [0] * (3 - len(parts))
    return major, minor, patch


def parse_constraint(constraint: str) -> List[Tuple[str, Version, int]]:
    """(operator, version, number of parts written) for each comma-separated part."""
    out = []
    for part in constraint.split(","):
        match = CONSTRAINT.match(part)
        if not match:
            raise ValueError(f"unsupported version constraint {part.strip()!r} in {constraint!r}")
        out.append((match.group(1) or "=", parse_version(match.group(2)), match.group(2).count(".") + 1))
    return out


def satisfies(version: Version, constraint: str) -> bool:
    for op, bound, parts in parse_constraint(constraint):
        if op == "~>":  # ~> 2.4 allows >= 2.4, < 3.0; ~> 2.4.1 allows >= 2.4.1, < 2.5.0
            keep = max(parts - 1, 1)
            ceiling = bound[: keep - 1] + (bound[keep - 1] + 1,) + (0,) * (3 - keep)
            ok = bound <= version < ceiling
        else:
            ok = {
                ">=": version >= bound,
                ">": version > bound,
                "<=": version <= bound,
                "<": version < bound,
                "=": version == bound,
                "!=": version != bound,
            }[op]
        if not ok:
            return False
    return True


def lower_bound(constraint: str) -> Optional[Version]:
    found = [bound for op, bound, _ in parse_constraint(constraint) if op in (">=", "~>", "=")]
    return max(found) if found else None


def ends(constraint: str, available: Iterable[Version]) -> Tuple[Version, Version]:
    """The lowest and highest of `available` inside the range."""
    inside = sorted(v for v in available if satisfies(v, constraint))
    if not inside:
        raise LookupError(f"no cached provider schema satisfies {constraint!r}")
    return inside[0], inside[-1]


def show(version: Version) -> str:
    return ".".join(map(str, version))


def required_providers(folder: Path) -> Dict[str, Dict[str, str]]:
    """{local name: {"source": ..., "version": ...}} from the `terraform { required_providers }` blocks."""
    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    found: Dict[str, Dict[str, str]] = {}
    for path in sorted(folder.glob("*.tf")):
        with path.open() as f:
            for terraform in hcl2.load(f, serialization_options=options).get("terraform", []):
                for block in terraform.get("required_providers", []):
                    found.update(block)
    return found


def range_ends(folder: Path, available: Mapping[str, Iterable[Version]]) -> Dict[str, Dict[str, Version]]:
    """{"lower": {provider: version}, "upper": {...}}: for each required provider, the lowest and the
    highest of its `available` versions inside its pinned range."""
    out: Dict[str, Dict[str, Version]] = {"lower": {}, "upper": {}}
    for name, requirement in required_providers(folder).items():
        if name not in available:
            raise LookupError(f"no cached schema for provider `{name}`: add its CDK wheel to tools/tfschema/wheels.txt")
        try:
            out["lower"][name], out["upper"][name] = ends(requirement["version"], available[name])
        except LookupError as error:
            raise LookupError(f"provider `{name}`: {error}") from None
    return out
