"""The tuning protocol as sweep follow-ups: after the K trials per arm, re-run each arm's winners.

An experiment's `followup(results, quick)` returns grid points derived from finished results; the
sweep runner calls it until it returns nothing new. Winners are chosen on the tuning seed only
(answer.best_trial) and on the validation set only: per arm, the trial with the fewest steps to
the validation target (if a target is given), and the best validation accuracy at the end of the
epoch budget and of the step budget. Each winner is
re-run with fresh seeds (1 … S), with the same overrides as the winning run, so that the reported
mean and CI exclude the selection run (Shallue et al. 2019 §3.4: the best trial's
"performance on held-out seeds").
"""

from __future__ import annotations

from collections.abc import Callable

from lbbench.config import Config
from lbbench.runs.folder import NON_RESULT_FIELDS
from lbbench.study import answer, search, targets

SEP = "__"
WIDE = "w"  # widened trials are named '<arm prefix>__w<i>'


def overrides_of(result: dict, base: Config) -> dict:
    """The Config overrides that turn `base` into this result's config (how it was stored and started
    excluded: workdir, and e.g. --resume of a run continued from a successive-halving rung)."""
    want = Config.from_dict(result["config"]).to_dict()
    have = base.to_dict()
    skip = {"workdir", *NON_RESULT_FIELDS} - {"run_name"}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in want.items() if k not in skip and v != have.get(k)}


def winners(
    results: dict,
    arm: Callable[[dict], object],
    *,
    target: float | None = None,
    epoch_budget: float | None = None,
    step_budget: int | None = None,
    tuning_seed: int = 0,
) -> dict:
    """{arm: set of winning run names} by steps to the validation target and by the validation accuracy at
    the end of each budget."""
    out: dict = {}
    for a, trials in answer.group(results, arm).items():
        scores = []
        if target is not None:
            scores.append(targets.steps_score(target))
        if epoch_budget is not None:
            scores.append(lambda r: targets.at_budget(r, epochs=epoch_budget))
        if step_budget is not None:
            scores.append(lambda r: targets.at_budget(r, steps=step_budget))
        names = set()
        for score in scores:
            key = answer.best_trial(trials, score, tuning_seed)
            if key is not None:
                names.add(answer.tuning_run(trials[key], tuning_seed)[0])
        out[a] = names
    return out


def rerun_points(results: dict, names, base: Config, seeds, extra: dict | None = None) -> list[dict]:
    """Grid points re-running each named run with each seed: run_name '<name>__s<seed>'."""
    points = []
    for name in sorted(names):
        o = overrides_of(results[name], base)
        for s in seeds:
            points.append({**o, **(extra or {}), "seed": s, "run_name": f"{name}{SEP}s{s}"})
    return points


def widening(
    results: dict,
    names_by_arm: dict,
    space_of: Callable[[object], search.SearchSpace | None],
    base: Config,
    k: int,
    seed: int,
) -> tuple[list[dict], set]:
    """The range-edge rule (issue 22; STUDY_PROTOCOL.md §3): for each arm whose winners sit in the outer
    search.EDGE of a searched range, k more tuning trials drawn from the range widened on that side
    (search.widened), each a copy of the arm's first winner with the searched fields redrawn, named
    '<arm prefix>__w<i>', drawn with seed + the arm's place in sorted order. One round: an arm that
    already has widened trials is not widened again. Returns (points, arms whose widened trials have not
    all finished: their re-runs wait; a widened trial that failed holds them until it is rerun)."""
    points, pending = [], set()
    for j, a in enumerate(sorted(names_by_arm, key=str)):
        names = names_by_arm[a]
        space = space_of(a)
        if space is None or not names:
            continue
        first = sorted(names)[0]
        prefix = first.split(SEP)[0]
        wide_names = [f"{prefix}{SEP}{WIDE}{i}" for i in range(k)]
        if any(SEP + WIDE in n for n in names) or all(n in results for n in wide_names):
            continue  # a widened trial won, or the widening has run: nothing more to do
        sides: dict = {}
        for n in names:
            for field, ss in search.edge_sides(space, results[n]["config"]).items():
                sides.setdefault(field, set()).update(ss)
        wide = search.widened(space, sides)
        if wide is None:
            continue
        o = overrides_of(results[first], base)
        for name, t in zip(wide_names, wide.trials(k, seed=seed + j)):
            points.append({**o, **t, "seed": 0, "run_name": name})
        pending.add(a)
    return points, pending
