"""`python -m lbbench.report.halving_vs_full HALVED FULL --out DIR`: did successive halving pick the
winner full-budget search picks, and at what fraction of its cost? (experiments/halving_check.py)

Per batch size and selection rule: both winners, where the halving winner ranks in the full search,
each winner's seed re-runs (mean validation accuracy, 95 % t-interval) and the difference of the two
means with its Welch 95 % interval — "within the seed noise" when that interval holds 0 — and each
sweep's tuning cost: the seconds charged to its tuning trials (study/accounting.py; re-runs apart).
Writes halving_vs_full.md and .json.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from scipy import stats

from lbbench.report.numfmt import mean_interval, num
from lbbench.runs import atomic
from lbbench.runs.reader import read_json, read_result
from lbbench.study import accounting, bootstrap, protocol, targets


def tuning_results(sweep_dir: str) -> dict:
    """{run name: result} of the sweep's tuning trials (not the seed re-runs), any status."""
    out = {}
    for name in sorted(os.listdir(sweep_dir)):
        if name.startswith(".") or protocol.SEP + "s" in name:
            continue
        r = read_result(os.path.join(sweep_dir, name))
        if r and "config" in r:
            out[name] = r
    return out


def tuning_seconds(results: dict) -> dict:
    """{part: seconds} charged to the tuning trials (study/accounting.py), and "all"."""
    shares = [accounting.point_share(r) for r in results.values()]
    out = {p: sum(s[p] for s in shares) for p in accounting.PARTS}
    out["all"] = sum(out.values())
    return out


def full_ranking(results: dict, batch_size: int) -> list[str]:
    """Full-budget trials at `batch_size`, best validation accuracy at the end of the budget first."""
    scored = []
    for name, r in results.items():
        if r["config"]["batch_size"] == batch_size and r.get("status") == "completed":
            v = targets.at_budget(r, epochs=r["config"]["epochs"])
            if v is not None:
                scored.append((-v, name))
    return [name for _, name in sorted(scored)]


def difference(a: list[float], b: list[float]) -> dict:
    """mean(a) − mean(b) with Welch's 95 % interval (None where either side has < 2 values)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = {"difference": float(a.mean() - b.mean()) if len(a) and len(b) else None, "low": None, "high": None}
    if len(a) >= 2 and len(b) >= 2 and (a.std() > 0 or b.std() > 0):
        ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        out["low"], out["high"] = float(ci.low), float(ci.high)
    return out


def compare(halved: str, full: str) -> dict:
    ah, af = (read_json(os.path.join(d, "analysis.json"))[0] or {} for d in (halved, full))
    rh, rf = tuning_results(halved), tuning_results(full)
    rows = []
    for b, picks in sorted((ah.get("winners") or {}).items(), key=lambda kv: int(kv[0])):
        ranking = full_ranking(rf, int(b))
        for kind, name in picks.items():
            other = ((af.get("winners") or {}).get(b) or {}).get(kind)
            sh = (ah.get("seeds") or {}).get(name, {}).get("val_accuracy", [])
            fs = (af.get("seeds") or {}).get(other, {}).get("val_accuracy", [])
            rows.append(
                {
                    "batch_size": int(b),
                    "rule": kind,
                    "halving_winner": name,
                    "full_winner": other,
                    "same": name == other,
                    "rank_in_full": ranking.index(name) + 1 if name in ranking else None,
                    "trials": len(ranking),
                    "halving_seeds": bootstrap.mean_ci(sh, bounds=(0.0, 1.0)),
                    "full_seeds": bootstrap.mean_ci(fs, bounds=(0.0, 1.0)),
                    "difference": difference(sh, fs),
                }
            )
    cost = {"halved": tuning_seconds(rh), "full": tuning_seconds(rf)}
    cost["fraction"] = cost["halved"]["all"] / cost["full"]["all"] if cost["full"]["all"] else None
    steps = [cost[k]["training steps"] + cost[k]["evaluation"] for k in ("halved", "full")]
    cost["fraction_steps_and_eval"] = steps[0] / steps[1] if steps[1] else None
    return {"rows": rows, "cost": cost, "target": ah.get("target")}


def verdict(row: dict) -> str:
    if row["same"]:
        return "same winner"
    d = row["difference"]
    if d["low"] is None:
        return "different winner (too few seeds to judge)"
    if d["low"] <= 0 <= d["high"]:
        return "different winner, within the seed noise"
    return "different winner, " + ("better" if d["low"] > 0 else "worse") + " beyond the seed noise"


def _pct(x) -> str:
    return "—" if x is None else f"{num(100 * x, 2)} %"


RULES = {"at_budget": "best val. accuracy at the end", "to_target": "fewest steps to the val. target"}


def markdown(c: dict) -> str:
    cost = c["cost"]
    lines = [
        "# Successive halving against full-budget search",
        "",
        "Tuning cost, the seconds charged to the tuning trials (re-runs apart; study/accounting.py): "
        f"halving {cost['halved']['all']:.0f} s (compile {cost['halved']['compile']:.0f} s), full search "
        f"{cost['full']['all']:.0f} s (compile {cost['full']['compile']:.0f} s): "
        f"{_pct(cost['fraction'])} of it; training steps and evaluation alone: "
        f"{_pct(cost['fraction_steps_and_eval'])}.",
        f"Validation target for the steps rule: {c['target']}.",
        "",
        "| B | rule | halving's winner | full search's winner | its rank in the full search | "
        "halving winner, seeds: val. acc. | full winner, seeds | difference [95 % Welch] | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in c["rows"]:
        h, f, d = r["halving_seeds"], r["full_seeds"], r["difference"]
        diff = "—" if d["difference"] is None else mean_interval(d["difference"], d["low"], d["high"])
        lines.append(
            f"| {r['batch_size']} | {RULES.get(r['rule'], r['rule'])} | {r['halving_winner']} | {r['full_winner']} | "
            f"{r['rank_in_full'] or '—'} of {r['trials']} | {mean_interval(h['mean'], h['low'], h['high'])} "
            f"(n={h['n']}) | {mean_interval(f['mean'], f['low'], f['high'])} (n={f['n']}) | {diff} | {verdict(r)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lbbench.report.halving_vs_full", description=__doc__)
    parser.add_argument("halved", help="the halving_check sweep folder")
    parser.add_argument("full", help="the same experiment's sweep folder run with --full_search")
    parser.add_argument("--out", required=True, help="folder for halving_vs_full.md/.json")
    args = parser.parse_args(argv[1:])
    for d in (args.halved, args.full):
        if not os.path.isfile(os.path.join(d, "analysis.json")):
            print(f"halving_vs_full: error: {d} holds no finished sweep (no analysis.json)", file=sys.stderr)
            return 2
    c = compare(args.halved, args.full)
    os.makedirs(args.out, exist_ok=True)
    atomic.write_json(os.path.join(args.out, "halving_vs_full.json"), c)
    atomic.write_text(os.path.join(args.out, "halving_vs_full.md"), markdown(c))
    print(markdown(c))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
