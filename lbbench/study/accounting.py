"""Where a sweep's wall time went, per batch size and in total, from its points' result.json timing.

A program of T packed trials compiles, trains and evaluates once for all of them, so each trial is
charged 1/T of those and of the program's wall time; its instruments are charged as measured for
it; "other" is the rest of its share (data loading, initialisation, saving parameters, writing).
The sweep's own wall time minus every point's share is "idle": waiting for points another worker
holds, and the sweep's own bookkeeping. Each instrument's measured seconds per run are kept beside
its stated cost in train steps, so a claimed cost can be checked against a measured one.
"""

from __future__ import annotations

from collections import defaultdict

PARTS = ("compile", "training steps", "evaluation", "instruments", "other")


def _attempt_share(t: dict) -> dict:
    """{part: seconds} of one attempt's program charged to one of its T trials (instruments apart)."""
    n = max(int(t.get("trials_in_program") or 1), 1)
    return {
        "compile": float(t.get("compile_s") or 0.0) / n,
        "training steps": float(t.get("steps_s") or 0.0) / n,
        "evaluation": float(t.get("eval_s") or 0.0) / n,
        "total": float(t.get("total_s") or 0.0) / n,
    }


def point_share(result: dict) -> dict:
    """{part: seconds} charged to one point (see the module docstring), over all its attempts: a
    point paused at successive-halving rungs, or preempted, ran as several programs."""
    t = result.get("timing") or {}
    attempts = [_attempt_share(a) for a in (t.get("earlier_attempts") or [])] + [_attempt_share(t)]
    instruments = {k: float(v.get("seconds") or 0.0) for k, v in (t.get("instruments") or {}).items()}
    share = {part: sum(a[part] for a in attempts) for part in ("compile", "training steps", "evaluation")}
    share["instruments"] = sum(instruments.values())
    share["other"] = max(sum(a["total"] for a in attempts) - sum(share.values()), 0.0)
    share["by_instrument"] = instruments
    return share


def _add(into: dict, share: dict) -> None:
    for part in PARTS:
        into[part] = into.get(part, 0.0) + share[part]
    for name, secs in share["by_instrument"].items():
        into.setdefault("by_instrument", {})[name] = into.get("by_instrument", {}).get(name, 0.0) + secs
    into["points"] = into.get("points", 0) + 1


def account(results: dict, wall_s: float | None) -> dict:
    """{"by_batch_size": {B: parts}, "total": parts, "wall_s", "idle_s", "instrument_costs"} of a sweep."""
    by_batch: dict = defaultdict(dict)
    total: dict = {}
    costs: dict = defaultdict(list)
    for result in results.values():
        if not isinstance(result, dict) or not result.get("timing"):
            continue
        share = point_share(result)
        _add(by_batch[int((result.get("config") or {}).get("batch_size", 0))], share)
        _add(total, share)
        for name, inst in (result["timing"].get("instruments") or {}).items():
            if inst.get("runs"):
                costs[name].append((inst.get("declared_cost_steps"), inst.get("measured_cost_steps")))
    out = {"by_batch_size": {str(b): by_batch[b] for b in sorted(by_batch)}, "total": total, "wall_s": wall_s}
    out["idle_s"] = max(wall_s - sum(total.get(p, 0.0) for p in PARTS), 0.0) if wall_s is not None else None
    out["instrument_costs"] = {name: _cost_summary(pairs) for name, pairs in costs.items()}
    return out


def _cost_summary(pairs: list) -> dict:
    """The stated cost (train steps) of an instrument beside the median measured one."""
    measured = sorted(m for _, m in pairs if m is not None)
    declared = [d for d, _ in pairs if d is not None]
    return {
        "declared_cost_steps": declared[0] if declared else None,
        "measured_cost_steps_median": measured[len(measured) // 2] if measured else None,
        "runs": len(pairs),
    }


def lines(acc: dict) -> list[str]:
    """The breakdown a sweep prints at its end: one line per batch size, one for the total."""
    head = f"{'batch':>7}  " + "  ".join(f"{p:>14}" for p in PARTS)
    out = ["where the time went (seconds; packed programs charged 1/T per trial):", head]
    for b, parts in acc["by_batch_size"].items():
        out.append(f"{b:>7}  " + "  ".join(f"{parts.get(p, 0.0):>14.1f}" for p in PARTS))
    out.append(f"{'total':>7}  " + "  ".join(f"{acc['total'].get(p, 0.0):>14.1f}" for p in PARTS))
    if acc.get("wall_s") is not None:
        out.append(
            f"this process's wall time {acc['wall_s']:.1f} s, of which idle or bookkeeping {acc['idle_s']:.1f} s"
        )
    for name, c in acc["instrument_costs"].items():
        if c["declared_cost_steps"] is not None and c["measured_cost_steps_median"] is not None:
            out.append(
                f"{name}: stated {c['declared_cost_steps']:.3g} train steps a run, measured "
                f"{c['measured_cost_steps_median']:.3g} (median of {c['runs']})"
            )
    return out
