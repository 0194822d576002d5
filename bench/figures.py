"""Figures of a scenario's runs: medians, B against the practical floor, where B's time goes."""

from __future__ import annotations

import statistics
from typing import Any

from bench.steps import is_history, root_rows, steps

Summary = dict[str, Any] | None
Results = dict[str, list[dict[str, Any]]]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(runs: list[dict[str, Any]]) -> Summary:
    ok = [r for r in runs if r.get("ok")]
    if not ok:
        return None
    st = [steps(r) for r in ok]
    wall = med([r["wall_s"] for r in ok])
    rows = med([root_rows(r["row_counts"]) for r in ok])
    loads = [r["loadavg"] for r in ok if "loadavg" in r]
    others = [r["others_cores"] for r in ok if "others_cores" in r]
    return {
        "n": len(ok),
        "failed": len(runs) - len(ok),
        "wall": wall,
        "walls": [r["wall_s"] for r in ok],
        **{step: med([s[step] for s in st]) for step in ("extract", "normalize", "load", "history", "other")},
        "requests": med([r.get("requests", 0) for r in ok]),
        "chain": med([r.get("longest_chain", 0) for r in ok]),
        "rows": rows,
        "rows_per_s": rows / wall if wall else float("nan"),
        "rss": max(r["peak_rss_mib"] for r in ok),
        "tree_rss": max(r.get("tree_peak_rss_mib") or 0 for r in ok),
        "cpu": med([r["cpu_s"] for r in ok if "cpu_s" in r]),
        "loadavg": (min(loads), max(loads)) if loads else None,
        "others": max(others) if others else None,
    }


def floor_figures(res: dict[str, list[dict[str, Any]]], key: str = "s30") -> dict[str, Any] | None:
    """B against the bare requests loop of the same pairs: medians, the ratio, and the ratio pair by pair."""
    b = [r for r in res.get(f"{key}/B", []) if r.get("ok")]
    probes = [r for r in res.get(f"{key}/probe", []) if r.get("ok")]
    if not b or not probes:
        return None
    # one B run and one probe a pair, in order
    both = zip(res[f"{key}/B"], res[f"{key}/probe"], strict=False)
    pairs = [x["wall_s"] / p["wall_s"] for x, p in both if x.get("ok") and p.get("ok")]
    wall, floor = med([r["wall_s"] for r in b]), med([r["wall_s"] for r in probes])
    cycle = med([r["cycle_ms"] for r in probes])
    gaps = {
        "b": med([r["client_gap_ms"] for r in b if "client_gap_ms" in r]),
        "b_mean": med([r["client_gap_mean_ms"] for r in b if "client_gap_mean_ms" in r]),
        "floor": med([r["client_gap_ms"] for r in probes if "client_gap_ms" in r]),
        "server": med([r["server_ms"] for r in b + probes if "server_ms" in r]),
    }
    return {"b": wall, "floor": floor, "ratio": wall / floor, "pairs": pairs, "cycle": cycle, "gaps": gaps}


def where_time_goes(runs: list[dict[str, Any]]) -> str | None:
    """B's wall time cut at the sessions chain: before its first request, the chain, after its last answer
    (and what runs then: the data's normalize and load, the run history), medians over the runs."""
    parts = []
    for r in runs:
        span = r.get("chain_span")
        if not (r.get("ok") and span):
            continue
        end = span[1]

        calls = r.get("steps") or []

        def after(step: str | None, calls: list[Any] = calls, end: float = end) -> float:
            """Seconds of the data's `step` calls (None: the run history's calls) after the chain's end."""
            chosen = [c for c in calls if (is_history(c) if step is None else c[0] == step and not is_history(c))]
            return sum(max(0.0, c[2] - max(c[1], end)) for c in chosen)

        data = {step: after(step) for step in ("extract", "normalize", "load")}
        cut = {"before": span[0], "chain": end - span[0], "after": r["wall_s"] - end, "history": after(None)}
        parts.append({**cut, **data})
    if not parts:
        return None
    m = {k: med([p[k] for p in parts]) for k in parts[0]}
    return (
        f"B's wall time, cut at the sessions chain (medians): {m['before']:.2f} s before its first request, "
        f"{m['chain']:.2f} s for the chain, **{m['after']:.2f} s after its last answer**: extract "
        f"{m['extract']:.2f} s (dlt draining the read-ahead), normalize {m['normalize']:.2f} s and load "
        f"{m['load']:.2f} s of the data, the run history {m['history']:.2f} s, the rest is the loader's own work"
    )
