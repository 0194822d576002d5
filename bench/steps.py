"""The recorded dlt step calls of a run (`bench.child`): [step, start s, end s, CPU s, pipeline name,
peak RSS MiB so far].

Runs recorded before CPU and pipeline names were added have the first three only.
"""

from __future__ import annotations

from typing import Any

Call = list[Any]


def is_history(call: Call) -> bool:
    """A call of the run history's own pipeline (`<pipeline>_runs`, `_loader_runs`), not of the data's."""
    return len(call) > 4 and str(call[4]).endswith("_runs")


def data_calls(calls: list[Call]) -> list[Call]:
    return [c for c in calls if not is_history(c)]


def root_rows(counts: dict[str, int]) -> int:
    """Rows of the root tables: child tables (`a__b`) and dlt's and the loader's own (`_...`) left out."""
    return sum(n for table, n in counts.items() if "__" not in table and not table.startswith("_"))


def steps(r: dict[str, Any]) -> dict[str, float]:
    """extract: from the first data extract call's start (or the first request, if earlier) to the
    last data extract call's end; normalize, load: summed over the data's calls; history: the run
    history's calls; other: wall time covered by none of the calls (pipeline setup, state sync, the
    loader's own work)."""
    calls = r.get("steps") or []
    data = data_calls(calls)
    ext = [c for c in data if c[0] == "extract"]
    out = {
        "extract": r.get("extract_span_s") or ((max(c[2] for c in ext) - min(c[1] for c in ext)) if ext else 0.0),
        "normalize": sum(c[2] - c[1] for c in data if c[0] == "normalize"),
        "load": sum(c[2] - c[1] for c in data if c[0] == "load"),
        "history": sum(c[2] - c[1] for c in calls if is_history(c)),
    }
    covered, end = 0.0, 0.0
    for s, e in sorted((c[1], c[2]) for c in calls):
        if e > end:
            covered += e - max(s, end)
            end = e
    out["other"] = max(0.0, r.get("wall_s", 0.0) - covered)
    return out


def peak_step(r: dict[str, Any]) -> str:
    """The step during which the run's peak RSS was reached (from the peaks recorded after each step)."""
    calls = [c for c in r.get("steps") or [] if len(c) > 5]
    if not calls:
        return ""
    top = max(c[5] for c in calls)
    first = next(c for c in calls if c[5] >= top - 0.5)
    return f"{first[0]}{' (history)' if is_history(first) else ''}"
