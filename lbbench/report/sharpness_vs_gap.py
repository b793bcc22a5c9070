"""`python -m lbbench.report.sharpness_vs_gap SWEEP_DIR|JSON [...] --out DIR`: does any sharpness measure
rank the generalization gap over the finished runs of these study folders (lbbench.study.correlation)?

Writes sharpness_vs_gap.md (one row per measure and target: n, Kendall's τ, its 95 % bootstrap
interval, Jiang's granulated Ψ, and the verdict the interval gives), sharpness_vs_gap.json (the
tables and every run's row, so that a later analysis can add studies without the sweep folders) and
sharpness_vs_gap.png (a scatter per measure against the gap). An input may be such a JSON file.
"""

from __future__ import annotations

import argparse
import os
import sys

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from lbbench.report.numfmt import num
from lbbench.runs import atomic
from lbbench.study import correlation


def markdown(rows: list[dict], by_workload: dict[str, dict]) -> str:
    names = ", ".join(sorted({r["run"].split("/")[0] for r in rows}))  # the studies, whether read from folders or JSON
    lines = [
        "# Does sharpness rank the generalization gap?",
        "",
        f"{len(rows)} completed runs with a sharpness measurement, from: {names}; read per workload (the model "
        "trained), never pooled across models. Kendall's τ-b over runs with a "
        "95 % percentile bootstrap interval (2,000 resamples of configurations: a configuration's seeds move "
        "together); Ψ is Jiang et al. 2020's granulated τ "
        "(mean over hyperparameters of the τ within groups that differ in that one only; — where no two runs "
        "differ in one hyperparameter only).",
    ]
    for w, part in by_workload.items():
        have = [r for r in rows if correlation.workload(r) == w]
        lines += [
            "",
            f"## Workload `{w}`: {part['runs']} runs",
            "",
            f"Varying hyperparameters: {', '.join(correlation.varying_axes(have)) or 'none'}.",
            "",
            "| measure | target | n | τ | 95 % interval | Ψ | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in part["table"]:
            interval = f"[{num(t['low'], 2)}, {num(t['high'], 2)}]" if t["low"] is not None else "—"
            lines.append(
                f"| {t['measure']} | {t['target']} | {t['n']} | {num(t['tau'], 2)} | {interval} | "
                f"{num(t['psi'], 2)} | {correlation.verdict(t)} |"
            )
    return "\n".join(lines) + "\n"


def scatter(rows: list[dict], path: str) -> None:
    """One panel per measure: the measure (log scale) against the gap, each study and workload its own colour
    (a workload its own marker)."""
    measures = sorted({k for r in rows for k in r if k not in ("run", "hparams", *correlation.TARGETS)})
    cols = min(3, len(measures))
    nrows = -(-len(measures) // cols)
    fig = Figure(figsize=(4.0 * cols, 3.2 * nrows + 0.6), layout="constrained")  # at most 1,200 px wide
    groups = sorted({(r["run"].split("/")[0], correlation.workload(r)) for r in rows})
    markers = {w: "os^Dv"[i % 5] for i, w in enumerate(sorted({w for _, w in groups}))}
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax in axes[len(measures) :]:
        ax.set_visible(False)
    for ax, m in zip(axes, measures):
        for s, w in groups:
            have = [
                r for r in rows if m in r and r["run"].startswith(s + "/") and correlation.workload(r) == w and r[m] > 0
            ]
            xy = ([r[m] for r in have], [r["generalization_gap"] for r in have])
            ax.scatter(*xy, s=12, marker=markers[w], label=f"{s} ({w})")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a narrow log range overprint each other
        ax.set(xlabel=m, ylabel="generalization gap (train − test acc)")
        ax.grid(alpha=0.3)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(len(groups), 4))
    fig.savefig(path, dpi=100)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lbbench.report.sharpness_vs_gap", description=__doc__)
    parser.add_argument(
        "folders", nargs="+", help="study sweep folders holding run folders, or sharpness_vs_gap.json files"
    )
    parser.add_argument("--out", required=True, help="folder for sharpness_vs_gap.md/.json/.png")
    args = parser.parse_args(argv[1:])
    saved = {f: correlation.saved_rows(f) for f in args.folders if not os.path.isdir(f)}
    missing = [f for f, rows in saved.items() if rows is None]
    if missing:
        print(
            f"sharpness_vs_gap: error: neither a folder nor a sharpness_vs_gap.json with runs: {', '.join(missing)}",
            file=sys.stderr,
        )
        return 2
    rows = correlation.rows_from([f for f in args.folders if f not in saved])
    rows += [r for f in args.folders if f in saved for r in saved[f]]
    if len(rows) < 3:
        print(f"sharpness_vs_gap: error: {len(rows)} runs with a sharpness measurement; need 3", file=sys.stderr)
        return 2
    by_workload = correlation.tables_by_workload(rows)
    os.makedirs(args.out, exist_ok=True)
    text = markdown(rows, by_workload)
    atomic.write_text(os.path.join(args.out, "sharpness_vs_gap.md"), text)
    atomic.write_json(
        os.path.join(args.out, "sharpness_vs_gap.json"), {"runs": len(rows), "workloads": by_workload, "rows": rows}
    )
    scatter(rows, os.path.join(args.out, "sharpness_vs_gap.png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
