"""The targets of a benchmark run: each with its measured figure and whether it is met."""

from __future__ import annotations

from typing import Any

from bench import events, plot, scale
from bench.figures import floor_figures, med, summary

TARGET_RATIO = 0.4  # B/A at 30 ms
TARGET_OVER_FLOOR = 1.5  # B's wall time over the bare requests loop's, at 30 ms
TARGET_RSS_MIB = plot.TARGET_RSS_MIB  # at the supported volume
TARGET_IMPORT_S = 0.3
BUSY_CORES = 0.25  # other processes' CPU during a run, in cores, above which the machine counts as busy
Target = tuple[str, str, bool | None]  # (target, measured, met; None: not measurable from this run)


def master_mib(res: dict[str, list[dict[str, Any]]]) -> float | None:
    """Peak RSS of a process that only imported main: functions-framework's gunicorn master holds that
    much beside the worker that runs the request."""
    imports = [r["peak_rss_mib"] for r in res.get("cold/import", []) if r.get("ok")]
    return max(imports) if imports else None


def memory_need(res: dict[str, list[dict[str, Any]]]) -> scale.MemoryNeed | None:
    master = master_mib(res)
    return scale.memory_need(res, master) if master is not None else None


def targets(doc: dict[str, Any]) -> list[Target]:
    """Every target this run can measure: (target, measured, met)."""
    res = doc["results"]
    out: list[Target] = []
    fl = floor_figures(res)
    if fl:
        out.append(
            (
                f"function path within {TARGET_OVER_FLOOR}x of the practical floor (30 ms, 10k sessions)",
                f"{fl['ratio']:.3f} ({fl['b']:.2f} s / {fl['floor']:.2f} s)",
                fl["ratio"] <= TARGET_OVER_FLOOR,
            )
        )
    a, b = summary(res.get("s30/A", [])), summary(res.get("s30/B", []))
    if a and b:
        ratio = b["wall"] / a["wall"]
        out.append(
            (
                f"B/A <= {TARGET_RATIO} (30 ms, 10k sessions)",
                f"{ratio:.3f} ({b['wall']:.2f} s / {a['wall']:.2f} s)",
                ratio <= TARGET_RATIO,
            )
        )
    pts = scale.points(res)
    if len(pts) >= 3:
        m = scale.marginal(pts, "cpu_s")
        out.append(
            (
                "cost grows linearly (CPU s per 1,000 sessions, first and last segment of the curve within "
                f"{scale.LINEAR_TOLERANCE}x)",
                ", ".join(f"{x:.3f}" for x in m) + f" s ({_segments(pts)})",
                scale.linear(pts),
            )
        )
    if len(pts) >= 2:
        out.append(
            (
                f"memory flat (peak RSS at {pts[-1].sessions:,} within {scale.FLAT_TOLERANCE}x of {pts[0].sessions:,})",
                " -> ".join(f"{p.rss_mib:.0f}" for p in pts) + " MiB",
                scale.flat(pts),
            )
        )
    for prefix, label in plot.CURVES:
        at = [p for p in scale.points(res, prefix) if p.sessions == scale.SUPPORTED_SESSIONS]
        if at:
            out.append(
                (
                    f"peak RSS <= {TARGET_RSS_MIB} MiB at {scale.SUPPORTED_SESSIONS:,} sessions, {label}",
                    f"{at[0].rss_mib:.0f} MiB",
                    at[0].rss_mib <= TARGET_RSS_MIB,
                )
            )
    flat_events = events.target(res)
    if flat_events:
        out.append(flat_events)
    fit = deadline_fit(res)
    if fit:
        out.append(fit)
    need = memory_need(res)
    default = scale.terraform_default("function_memory")
    if need and default:
        out.append(
            (
                f"Terraform's function_memory default = measured need at {need.sessions:,} sessions "
                f"+ {scale.MEMORY_MARGIN:.0%}",
                f"need {need.need_mib:.0f} MiB, +{scale.MEMORY_MARGIN:.0%} = {need.with_margin_mib:.0f} MiB -> "
                f"`{need.size}`; default `{default}`",
                need.size == default,
            )
        )
    imports = [r["import_main_s"] for r in res.get("cold/import", []) if r.get("ok")]
    if imports:
        out.append(
            (
                f"cold `import main` <= {TARGET_IMPORT_S} s",
                f"{med(imports):.3f} s (median of {len(imports)})",
                med(imports) <= TARGET_IMPORT_S,
            )
        )
    return out


def _segments(pts: list[scale.Point]) -> str:
    return ", ".join(f"{a.sessions // 1000:,}k-{b.sessions // 1000:,}k" for a, b in zip(pts, pts[1:], strict=False))


def deadline_curve(res: dict[str, list[dict[str, Any]]]) -> tuple[str, list[scale.Point]] | None:
    """The curve the deadline is judged on: of those measured, the one whose largest point cost more CPU."""
    curves = [(label, scale.points(res, prefix)) for prefix, label in plot.CURVES]
    curves = [(label, pts) for label, pts in curves if len(pts) >= 2]
    return max(curves, key=lambda c: c[1][-1].cpu_s / c[1][-1].sessions) if curves else None


def deadline_fit(res: dict[str, list[dict[str, Any]]]) -> Target | None:
    curve = deadline_curve(res)
    if not curve:
        return None
    label, pts = curve
    n = scale.SUPPORTED_SESSIONS
    timeout, deadline = scale.deadlines()
    read, end = scale.run_seconds(pts, n, 0.030)
    largest = scale.largest_volume(pts, 0.030)
    return (
        f"{n:,} sessions within the deadline on one vCPU (reading by {deadline:.0f} s, done by {timeout:.0f} s; "
        "30 ms a request)",
        f"modelled from the {label} curve's CPU: reading done at {read:.0f} s, run at {end:.0f} s; "
        f"largest volume that fits: {largest:,} sessions",
        read <= deadline and end <= timeout,
    )


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def targets_table(doc: dict[str, Any], volumes: dict[str, Any] | None = None) -> str:
    rows = ["| target | measured | met |", "|---|---|---|"]
    rows += [f"| {t} | {m} | {_mark(ok)} |" for t, m, ok in targets(doc)]
    return "\n".join(rows)


def busy_note(doc: dict[str, Any]) -> str:
    """Which figures ran on a busy machine: other processes used more than BUSY_CORES during a run
    (all busy CPU time from /proc/stat, less the bench's and the run's own)."""
    res = doc["results"]
    busy = sorted({k.split("/")[0] for k, runs in res.items() for r in runs if r.get("others_cores", 0) > BUSY_CORES})
    most = max((r.get("others_cores", 0) for runs in res.values() for r in runs), default=0.0)
    if not busy:
        return f"Quiet machine: no run saw other processes use more than {BUSY_CORES} of a core (the most: {most:.2f})."
    return (
        f"Busy machine for: {', '.join(busy)} (other processes used more than {BUSY_CORES} of a core during "
        f"some of their runs, up to {most:.2f} cores of {doc['machine']['nproc']}); each table gives the load "
        "average at a run's start and the cores others used during it."
    )
