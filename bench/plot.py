"""docs/bench-scale.png: the scale curve drawn by matplotlib (Agg backend: no display needed).

matplotlib is the bench's own requirement (requirements-bench.txt, installed by `make bench`), not the
function's; without it the picture is skipped and the tables are still written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import scale

TARGET_RSS_MIB = 512
CURVES = (("scale-", "filesystem"), ("scale-bq-", "BigQuery emulator"))  # result key prefix, label


def draw(doc: dict[str, Any], path: Path) -> str | None:
    """Draw the curve of `doc` into `path`. Returns why it was not drawn, or None."""
    curves = [(label, scale.points(doc["results"], prefix)) for prefix, label in CURVES]
    curves = [(label, pts) for label, pts in curves if pts]
    if not curves:
        return "no scale curve in this run"
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (`make bench` installs requirements-bench.txt)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (time_ax, mem_ax) = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    styles = {"filesystem": "-", "BigQuery emulator": "--"}
    notes = {"filesystem": "filesystem", "BigQuery emulator": "BigQuery emulator*"}
    for label, pts in curves:
        x = [p.sessions for p in pts]
        style, name = styles.get(label, ":"), notes.get(label, label)
        time_ax.plot(x, [p.wall_s for p in pts], "o" + style, color="tab:blue", label=f"wall, {name}")
        time_ax.plot(x, [p.cpu_s for p in pts], "s" + style, color="tab:orange", label=f"CPU, {name}")
        mem_ax.plot(x, [p.rss_mib for p in pts], "o" + style, color="tab:purple", label=f"peak RSS, {name}")
        mem_ax.plot(x, [p.workdir_mib for p in pts], "s" + style, color="tab:green", label=f"/tmp folder, {name}")
    base = curves[0][1]
    top = base[-1]
    proportional = [p.sessions * top.cpu_s / top.sessions for p in base]
    time_ax.plot([p.sessions for p in base], proportional, ":", color="grey", label="proportional to sessions")
    timeout, deadline = scale.deadlines()
    time_ax.axhline(deadline, color="tab:red", lw=1, label=f"run deadline {deadline:.0f} s")
    time_ax.axhline(timeout, color="tab:red", lw=1, ls="--", label=f"timeout {timeout:.0f} s")
    time_ax.set(xscale="log", yscale="log", xlabel="sessions a run", ylabel="seconds", title="Time (latency 0)")
    mem_ax.axhline(TARGET_RSS_MIB, color="tab:red", lw=1, label=f"target {TARGET_RSS_MIB} MiB")
    mem_ax.set(xscale="log", xlabel="sessions a run", ylabel="MiB", title="Memory")
    mem_ax.set_ylim(bottom=0)
    for ax, where in ((time_ax, "center left"), (mem_ax, "upper left")):
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc=where, handlelength=3)
    if any(label == "BigQuery emulator" for label, _ in curves):
        fig.supxlabel(
            "* dashed: into the BigQuery emulator, gzip load files as the deployed function uploads them "
            "(a proxy in front of the emulator inflates them)",
            fontsize=7,
        )
    m = doc["machine"]
    fig.suptitle(
        f"analytics-loader scale curve, production path (jsonl), {m['date']}, commit {m['commit'] or '?'}, "
        f"{m['nproc']} CPUs, load average {m['loadavg_start']:.1f}-{m['loadavg_end']:.1f}",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
