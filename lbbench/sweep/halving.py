"""Run a grid by successive halving (lbbench/study/halving.py): rung by rung, each rung's points packed
into programs as any sweep's are, each promoted point resumed from its own checkpoint.

A rung is the grid point with `pause_at_epoch` set: the run stops there with result.json status
`paused` and its checkpoint kept; the next rung is the same point with a later pause (or none, the
full budget) and `--resume`. Which points reach which rung follows from the results alone, so a
rerun of the sweep (or a second worker on the same folder) replays the same ladder and trains only
what is missing. The ladder is written to halving.json and halving.md in the sweep folder.
"""

from __future__ import annotations

import os

from lbbench.config import Config
from lbbench.runs import atomic
from lbbench.runs.reader import read_json, read_result
from lbbench.study import halving


def split(configs: list[Config], spec: halving.Halving) -> tuple[dict, list[Config]]:
    """({bracket key: [Config]}, [Config] trained at full budget without halving)."""
    brackets: dict = {}
    plain = []
    for cfg in configs:
        key = spec.bracket(cfg)
        (plain if key is None else brackets.setdefault(key, [])).append(cfg)
    return brackets, plain


def at_rung(cfg: Config, spec: halving.Halving, rung: int) -> Config:
    """The point trained to rung `rung` (its last rung: the full budget)."""
    epochs = spec.rung_epochs(cfg.epochs)
    e = epochs[min(rung, len(epochs) - 1)]
    return cfg.replace(pause_at_epoch=0 if e >= cfg.epochs else e)


def _result(cfg: Config) -> dict | None:
    return read_result(os.path.join(cfg.workdir, cfg.run_name))


def run(configs: list[Config], spec: halving.Halving, sweep_dir: str, run_sweep, counter) -> dict:
    """Train the grid's `configs` by the ladder; {run_name: status} of the last attempt of each.
    `run_sweep(configs)` trains a list of points (sweep/runner.py)."""
    brackets, plain = split(configs, spec)
    statuses = run_sweep(plain) if plain else {}
    alive = {key: list(cfgs) for key, cfgs in brackets.items()}
    ladder = {str(key): _bracket_entry(key, cfgs, spec) for key, cfgs in brackets.items()}
    rungs = max((len(spec.rung_epochs(c.epochs)) for c in configs), default=0)
    for rung in range(rungs):
        todo = [at_rung(c, spec, rung) for cfgs in alive.values() for c in cfgs]
        if rung:
            counter.added(len(todo))
        statuses.update(run_sweep(todo))
        for key, cfgs in alive.items():
            alive[key] = _promote(cfgs, spec, rung, ladder[str(key)], last=rung == rungs - 1)
    write(sweep_dir, ladder, spec)
    return statuses


def _bracket_entry(key, cfgs: list[Config], spec: halving.Halving) -> dict:
    return {
        "label": f"bracket {key}",
        "rung_epochs": spec.rung_epochs(cfgs[0].epochs),
        "trials": {c.run_name: {"values": {}, "outcome": "not run"} for c in cfgs},
    }


def _promote(cfgs: list[Config], spec: halving.Halving, rung: int, entry: dict, last: bool) -> list[Config]:
    """Record each trial's metric at this rung in the ladder; return the trials promoted past it."""
    values = {}
    for c in cfgs:
        epochs = spec.rung_epochs(c.epochs)
        e = epochs[min(rung, len(epochs) - 1)]
        values[c.run_name] = halving.metric_at(_result(c), e, spec.metric)
        entry["trials"][c.run_name]["values"][str(e)] = values[c.run_name]
    if last:
        for name, v in values.items():
            entry["trials"][name]["outcome"] = "full budget" if v is not None else "no value at the end (diverged)"
        return []
    kept = set(halving.promote(values, spec.keep, halving.METRICS[spec.metric]))
    order = halving.rank(values, halving.METRICS[spec.metric])
    for place, name in enumerate(order, 1):
        if name not in kept:
            why = f"rank {place} of {len(order)}" if values[name] is not None else "diverged or failed"
            entry["trials"][name]["outcome"] = f"stopped after rung {rung + 1} ({why})"
    return [c for c in cfgs if c.run_name in kept]


def write(sweep_dir: str, ladder: dict, spec: halving.Halving) -> None:
    atomic.write_json(os.path.join(sweep_dir, "halving.json"), {"spec": spec.to_dict(), "brackets": ladder})
    atomic.write_text(os.path.join(sweep_dir, "halving.md"), halving.ladder_markdown(ladder, spec))


def stopped_by_bracket(sweep_dir: str, counted=()) -> dict:
    """{bracket key as written: number of trials the ladder stopped early} from halving.json ({} if none),
    leaving out the run names in `counted` (a trial that diverged at a rung is stopped there and also has
    a finished result: the analysis counts it once, from its result)."""
    data, _ = read_json(os.path.join(sweep_dir, "halving.json"))
    brackets = (data or {}).get("brackets") or {}
    counted = set(counted)
    return {
        key: sum(t["outcome"].startswith("stopped") and name not in counted for name, t in b["trials"].items())
        for key, b in brackets.items()
    }


def spec_of(module, quick: bool) -> halving.Halving | None:
    """The experiment file's declared successive halving (`halving(quick)`), or None."""
    fn = getattr(module, "halving", None)
    return fn(quick) if fn else None
