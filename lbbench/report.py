"""Sweep report: `python -m lbbench.report <sweep_dir>` writes report.md, runs.csv and PNG plots.

Runs are grouped by every config key that varies across the sweep except seed and run_name, and
each metric is summarised as mean ± sample std (ddof=1; 0 for a single seed) over the *completed*
runs of a group; diverged and failed runs are counted, never averaged in. The plots are the ones the
large-batch literature draws: accuracy and generalization gap vs batch size (Keskar et al. 2017,
Hoffer et al. 2017, Goyal et al. 2017), sharpness vs batch size, steps-to-target with the noise
scale (Shallue et al. 2019; McCandlish et al. 2018), the 1-D interpolation (Keskar Fig. 3) and the
Hessian spectral density. They also go to TensorBoard under <sweep_dir>/report_tb.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import sys

import numpy as np

from lbbench import report_plots as rp

IGNORED_KEYS = ("seed", "run_name", "workdir", "overwrite")
CONFIG_COLUMNS = ("dataset", "model", "optimizer", "batch_size", "learning_rate", "lr_scaling", "schedule",
                  "warmup_epochs", "epochs", "ghost_batch_size", "trust_coefficient", "seed")
FINAL_COLUMNS = ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "generalization_gap", "loss_gap")
METRICS = ("test_accuracy", "train_accuracy", "generalization_gap", "test_loss", "lambda_max",
           "hessian_trace", "b_simple", "total_s")


# ---------------------------------------------------------------------------- loading

def _warn(msg: str) -> None:
    print(f"lbbench.report: warning: {msg}", file=sys.stderr)


def check_result(result) -> str | None:
    """Why `result` (parsed result.json) cannot be reported, or None if it can."""
    if not isinstance(result, dict):
        return f"expected a JSON object, got {type(result).__name__}"
    if not isinstance(result.get("status"), str):
        return "no 'status'"
    cfg = result.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("run_name"), str):
        return "no 'config' with a run_name"
    for key in ("final", "timing", "sharpness", "noise_scale", "history"):
        if result.get(key) is not None and not isinstance(result[key], dict):
            return f"'{key}' is not an object"
    return None


def load_sweep(sweep_dir: str) -> tuple[dict, list[dict], list[str]]:
    """(sweep.json or {}, results of the runs that have a usable one, run names without one).

    A truncated or malformed sweep.json, and result.json files that cannot be parsed or lack
    what the report needs, are skipped with a warning naming the file; they never stop the report.
    """
    info = {}
    path = os.path.join(sweep_dir, "sweep.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                info = json.load(f)
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            _warn(f"ignoring {path}: {e}")
            info = {}
    try:
        points = list(info.get("grid") or []) + list(info.get("followup") or [])
        names = list(dict.fromkeys(str(p["run_name"]) for p in points))
    except (TypeError, KeyError, AttributeError):
        _warn(f"ignoring the grid in {path}: malformed")
        names = []
    if not names:
        names = sorted(os.path.basename(os.path.dirname(p)) for p in
                       glob.glob(os.path.join(sweep_dir, "*", "result.json")))
    results, missing = [], []
    for name in names:
        if os.path.basename(name) != name or name in (".", ".."):
            _warn(f"skipping run name {name!r} from {path}: not a folder name")
            continue
        rpath = os.path.join(sweep_dir, name, "result.json")
        if not os.path.exists(rpath):
            missing.append(name)
            continue
        try:
            with open(rpath) as f:
                result = json.load(f)
            problem = check_result(result)
        except (OSError, ValueError) as e:
            problem = str(e)
        if problem:
            _warn(f"skipping {rpath}: {problem}")
            missing.append(name)
        else:
            results.append(result)
    return info, results, missing


def flatten(result: dict) -> dict:
    """One CSV row: key config fields, status, final metrics, sharpness, noise scale, timing."""
    cfg, sharp = result["config"], result.get("sharpness") or {}
    row = {"run_name": cfg["run_name"], "status": result["status"]}
    row.update({k: cfg.get(k) for k in CONFIG_COLUMNS})
    row.update({k: (result.get("final") or {}).get(k) for k in FINAL_COLUMNS})
    row["lambda_max"] = sharp.get("lambda_max")
    row["hessian_trace"] = sharp.get("hessian_trace")
    for k, v in sorted((sharp.get("epsilon_sharpness") or {}).items()):
        row[f"eps_sharpness_{k}"] = v
    row["b_simple"] = (result.get("noise_scale") or {}).get("b_simple")
    timing = result.get("timing") or {}
    row.update({k: timing.get(k) for k in ("steps", "total_s", "compile_s", "train_s", "examples_per_s")})
    row["error"] = result.get("error")
    return row


# ---------------------------------------------------------------------------- aggregation

def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def varying_keys(results: list[dict]) -> list[str]:
    """Config keys taking more than one value across the runs (seed/run_name/workdir excluded)."""
    keys = sorted({k for r in results for k in r["config"]} - set(IGNORED_KEYS))
    return [k for k in keys if len({_hashable(r["config"].get(k)) for r in results}) > 1]


def mean_std(values) -> dict:
    """{"mean", "std" (ddof=1, 0 for one value), "n"} of the non-None values; mean None if none."""
    xs = np.asarray([v for v in values if v is not None], dtype=float)
    if xs.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(xs.mean()), "std": float(xs.std(ddof=1)) if xs.size > 1 else 0.0, "n": int(xs.size)}


def aggregate(results: list[dict], keys: list[str]) -> list[dict]:
    """One dict per distinct value of `keys`: those values, status counts, metric mean ± std."""
    groups: dict = {}
    for r in results:
        groups.setdefault(tuple(_hashable(r["config"].get(k)) for k in keys), []).append(r)
    out = []
    for values, members in groups.items():
        rows = [flatten(r) for r in members]
        done = [row for row in rows if row["status"] == "completed"]
        g = dict(zip(keys, values))
        g["batch_size"] = members[0]["config"].get("batch_size")
        g["runs"] = len(rows)
        g["statuses"] = {s: sum(row["status"] == s for row in rows) for s in sorted({row["status"] for row in rows})}
        g.update({m: mean_std([row[m] for row in done]) for m in METRICS})
        out.append(g)
    return sorted(out, key=lambda g: tuple(_sort_key(g[k]) for k in keys))


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def arm_label(group: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={group[k]}" for k in keys if k != "batch_size")


# ---------------------------------------------------------------------------- outputs

def write_csv(path: str, results: list[dict]) -> None:
    rows = [flatten(r) for r in results]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def _fmt(stat: dict, digits: int = 4) -> str:
    if not stat or stat["mean"] is None:
        return "—"
    return f"{stat['mean']:.{digits}g} ± {stat['std']:.2g}" if stat["n"] > 1 else f"{stat['mean']:.{digits}g}"


def markdown_table(groups: list[dict], keys: list[str]) -> list[str]:
    metrics = [m for m in METRICS if any(g[m]["n"] for g in groups)]
    head = list(keys) + ["runs", "status"] + metrics
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        status = ", ".join(f"{n} {s}" for s, n in g["statuses"].items())
        cells = [str(g[k]) for k in keys] + [str(g["runs"]), status] + [_fmt(g[m]) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def make_figures(results: list[dict], groups: list[dict], keys: list[str], analysis: dict | None) -> dict:
    """{name: Figure} for everything the sweep measured."""
    figs = {}
    done = [r for r in results if r["status"] == "completed"]
    arm_keys = [k for k in keys if k != "batch_size"]
    if "batch_size" in keys:
        arms: dict = {}
        for g in groups:
            arms.setdefault(arm_label(g, arm_keys), []).append(g)
        for m, label in (("test_accuracy", "test accuracy"), ("generalization_gap", "generalization gap"),
                         ("lambda_max", "sharpness λ_max")):
            if any(g[m]["n"] for g in groups):
                figs[m + "_vs_batch"] = rp.vs_batch_figure(arms, m, label)
    elif groups:
        for m, label in (("test_accuracy", "test accuracy"), ("generalization_gap", "generalization gap"),
                         ("lambda_max", "sharpness λ_max")):
            measured = [g for g in groups if g[m]["n"]]  # a group with only diverged runs has no value
            if measured:
                figs[m] = rp.bars_figure([arm_label(g, arm_keys) or "all" for g in measured], measured, m, label)
    if done:
        figs["test_accuracy_curves"] = rp.curves_figure(done, "test_accuracy", "test accuracy")
    densities = {r["config"]["run_name"]: r["sharpness"]["density"] for r in done
                 if (r.get("sharpness") or {}).get("density")}
    if densities:
        figs["hessian_density"] = rp.density_overlay_figure(densities)
    analysis = analysis or {}
    for curve in analysis.get("interpolation", []):
        figs[f"interpolation_{curve['model']}"] = rp.interpolation_figure(curve)
    if analysis.get("steps_to_target"):
        figs["steps_to_target"] = rp.steps_to_target_figure(analysis["steps_to_target"])
    return figs


def save_figures(sweep_dir: str, figs: dict) -> list[str]:
    """PNG files beside report.md, and the same figures in a fresh <sweep_dir>/report_tb."""
    from tensorboardX import SummaryWriter

    tb_dir = os.path.join(sweep_dir, "report_tb")
    shutil.rmtree(tb_dir, ignore_errors=True)  # one event file per report, not one per rerun
    tb = SummaryWriter(logdir=tb_dir)
    names = []
    for name, fig in figs.items():
        fig.savefig(os.path.join(sweep_dir, f"{name}.png"), dpi=110)
        tb.add_figure(f"report/{name}", fig, 0, close=False)
        names.append(f"{name}.png")
    tb.close()
    return names


def _analysis_lines(analysis: dict | None) -> list[str]:
    if not analysis:
        return []
    text = json.dumps(analysis.get("summary", analysis), indent=1, default=str)
    if len(text) > 6000:
        text = text[:6000] + "\n... (full analysis in analysis.json)"
    return ["", "## Analysis", "", "```json", text, "```"]


def write_report(sweep_dir: str, analysis: dict | None = None) -> str:
    """Write report.md, runs.csv, *.png and report_tb for `sweep_dir`; returns report.md's path."""
    info, results, missing = load_sweep(sweep_dir)
    if analysis is None and os.path.exists(os.path.join(sweep_dir, "analysis.json")):
        try:
            with open(os.path.join(sweep_dir, "analysis.json")) as f:
                analysis = json.load(f)
        except (OSError, ValueError) as e:
            _warn(f"ignoring {os.path.join(sweep_dir, 'analysis.json')}: {e}")
            analysis = None
    keys = varying_keys(results)
    groups = aggregate(results, keys)
    write_csv(os.path.join(sweep_dir, "runs.csv"), results)
    pngs = save_figures(sweep_dir, make_figures(results, groups, keys, analysis))
    title = info.get("experiment") or os.path.basename(os.path.normpath(sweep_dir))
    lines = [f"# Sweep report: {title}", "",
             f"- command: `{info.get('command', '?')}`", f"- git commit: {info.get('git_commit', '?')}",
             f"- runs with results: {len(results)}; missing (not run, interrupted or unreadable): {len(missing)}"
             + (f" ({', '.join(missing)})" if missing else ""),
             f"- grouped by: {', '.join(keys) or '(nothing varies)'}; mean ± sample std over seeds of "
             "completed runs", "", "## Results", ""]
    lines += markdown_table(groups, keys) if groups else ["(no results yet)"]
    errors = [(r["config"]["run_name"], r["status"], r.get("error")) for r in results if r["status"] != "completed"]
    if errors:
        lines += ["", "## Diverged / failed runs", ""] + [f"- {n}: {s}: {e}" for n, s, e in errors]
    lines += _analysis_lines(analysis)
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in pngs]
    lines += ["", f"TensorBoard: `tensorboard --logdir {os.path.join(sweep_dir, 'report_tb')}`", ""]
    path = os.path.join(sweep_dir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1].startswith("-"):
        print("usage: python -m lbbench.report <sweep_dir>", file=sys.stderr)
        return 2
    if not os.path.isdir(argv[1]):
        print(f"lbbench.report: error: {argv[1]!r} is not a directory", file=sys.stderr)
        return 2
    print(f"lbbench.report: wrote {write_report(argv[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
