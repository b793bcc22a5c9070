"""The local critical batch size at one point of training, from branches (Merrill et al. 2025).

**The procedure** (Merrill, Arora, Groeneveld & Hajishirzi 2025, "Critical batch size revisited: a
simple empirical approach to large-batch language model training", §3.1): from a checkpoint of a
small-batch reference run, branch at batch sizes B = 2^k, train every branch for the same number of
examples E (their Δ), and call the local critical batch size the largest B whose branch still
recovers the loss of the smaller batches. Read through the abstract and a third-party summary of
§3.1 (the paper itself was not reachable from here): branches at k·B with the rate scaled by the
optimizer's rule (√k for Adam), Δ = 2B tokens, the training loss smoothed by an EMA (α = 0.5), and
B* = k*·B for the largest k* with L_k* ≤ L_k + ε for every k < k*, ε = 0.01 nats.

**What is computed here, and where it departs.**
- *Outcomes*: a branch's loss after E examples, the best over its small learning-rate grid
  (`best_over_grid`; lbbench selects on the validation loss). Every branch is tuned alike, the
  smallest batches included, so a branch cannot win merely by running at a lower rate than the
  reference (an annealing drop the reference could have had too).
- *The tolerance is in examples, not nats*: B recovers if its loss after E examples is at most the
  loss the best smaller batch reaches after E/2 (`FRACTION`). That is McCandlish et al.'s own
  definition of the critical batch (2018, Eq. 2.11: E(B) = E_min(1 + B/B_crit), so B_crit is where a
  batch needs twice the examples of the small-batch limit), applied to the window. A fixed ε means
  something else at a loss of 2.3 than at 0.2, and late in training it is below the run-to-run noise
  of a 5,000-example validation loss; a factor of two in examples is neither.
- *Discrete and interpolated*: `discrete` is Merrill's rule with this tolerance — the largest B that
  recovers, whether or not every smaller one did (`contiguous` says). `interpolated` is where the
  margin m(B) = log T(B) − log L_B(E) (T the target above; m ≥ 0 recovers) crosses 0, linearly in
  log2 B between `discrete` and the next batch size; it is the headline, because a ×2 grid leaves
  the discrete answer a factor 2 coarse. The smallest batch is compared with itself at E/2, so its
  margin is its own progress over the window's second half.
- *Censoring*: no batch above the smallest recovers → `censored = "below"`: the smallest batch
  passes by construction, so the value (between B_min and the next size) is an upper bound — a
  smaller reference batch would set stricter targets. Every batch recovers → `"above"`: at least
  B_max. More generally every estimate is relative to the smallest batch branched, which stands in
  for McCandlish's small-batch limit: a smallest batch near the answer biases it up. A smallest
  batch that made no progress in the window's second half gives no target: `defined = False`.
- `fixed_tolerance` is Merrill's literal rule (equal examples, ε in loss units), for comparison.
- `tracking` is the rule by which the gradient noise scale B_simple (McCandlish et al. 2018) is said
  to track the local critical batch: rank correlation and a bounded ratio. `merrill_shape` says
  whether the measured curve has Merrill's shape (near 0 at initialisation, rising, then a plateau).

A known answer (tests/study/test_local_critical_batch.py): on an isotropic noisy quadratic whose
gradient noise is proportional to the loss, B_noise = B_simple is the same at every point of
training, the tuned constant rate is the per-step optimum, one step multiplies the expected loss by
1/(1 + b) (b = B/B_noise), and lowering the log-loss by Λ takes S(B) = Λ/ln(1 + b) steps, i.e.
E(B) = E_min·b/ln(1 + b) examples: E = 2·E_min at b ≈ 2.51. The procedure returns that planted
2.51·B_noise from any checkpoint, for any window.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats

FRACTION = 0.5  # a branch must reach, with E examples, what the best smaller batch reaches with E/2
MERRILL_EPS = 0.01  # Merrill et al.'s fixed tolerance in loss units (nats), for fixed_tolerance
RHO_MIN = 0.8  # tracking: Spearman's ρ between B_simple and the local critical batch at least this
RATIO_SPAN = 4.0  # ... and max/min of (local critical batch / B_simple) at most this (×2 either way)
MIN_POINTS = 4  # fewer checkpoints than this say nothing about tracking
NEAR_ZERO = 4.0  # merrill_shape: "near 0 at initialisation" = at most this × the smallest batch branched
RISE = 4.0  # merrill_shape: the last value at least this many times the first ("rising")
PLATEAU = 2.0  # ... and the last two values within this factor of each other ("plateau")


def _loss(x) -> float:
    """A loss as a float; a missing, NaN or infinite one (a diverged branch) is +inf: it never recovers."""
    return float(x) if x is not None and math.isfinite(x) else math.inf


def best_over_grid(trials: list[dict]) -> tuple[dict, dict]:
    """(best, winner): per number of examples, the lowest loss over the learning-rate grid's trials
    ({examples: loss} each) and the index of the trial that had it."""
    best, winner = {}, {}
    for i, curve in enumerate(trials):
        for n, loss in curve.items():
            if _loss(loss) < best.get(n, math.inf) or n not in best:
                best[n], winner[n] = _loss(loss), i
    return best, winner


def _margin(target: float, loss: float) -> float:
    """log target − log loss: ≥ 0 when the loss is at or below the target (a diverged loss: −inf)."""
    if loss == math.inf:
        return -math.inf
    return math.log(target) - math.log(loss)


def local_critical_batch(curves: dict, window: int, fraction: float = FRACTION) -> dict:
    """The local critical batch size from branch outcomes at one checkpoint.

    curves: {B: {examples: loss}}, each the best over its learning-rate grid, with entries at
    `window` and at `window · fraction` (the latter only needed for batches that serve as targets).
    Returns the per-B losses, targets, margins and verdicts, `discrete`, `interpolated`,
    `censored`, `contiguous`, `reference_progress` and `defined` (see the module docstring).
    """
    half = int(round(window * fraction))
    sizes = sorted(curves)
    at_end = {b: _loss(curves[b].get(window)) for b in sizes}
    at_half = {b: _loss(curves[b].get(half)) for b in sizes}
    smallest = sizes[0]
    progress = _margin(at_half[smallest], at_end[smallest]) if at_half[smallest] < math.inf else None
    out = {"window": window, "half": half, "batch_sizes": sizes, "loss": at_end, "reference_progress": progress}
    targets = {smallest: at_half[smallest]}
    for i, b in enumerate(sizes[1:], start=1):
        targets[b] = min(at_half[s] for s in sizes[:i])
    margins = {b: _margin(targets[b], at_end[b]) for b in sizes}
    out.update(target=targets, margin=margins, recovers={b: margins[b] >= 0 for b in sizes})
    if progress is None or not progress > 0:
        return {**out, "defined": False, "reason": "the smallest batch made no progress over the window's second half"}
    passing = [b for b in sizes if margins[b] >= 0]
    discrete = max(passing)
    k = sizes.index(discrete)
    censored = "above" if k == len(sizes) - 1 else "below" if k == 0 else None
    return {
        **out,
        "defined": True,
        "discrete": discrete,
        "interpolated": discrete if censored == "above" else _crossing(sizes[k], sizes[k + 1], margins),
        "censored": censored,
        "contiguous": all(margins[b] >= 0 for b in sizes[: k + 1]),
    }


def _crossing(b_lo: int, b_hi: int, margins: dict) -> float:
    """Where the margin falls through 0 between two batch sizes, linear in log2 B."""
    m_lo, m_hi = margins[b_lo], margins[b_hi]
    t = 0.0 if m_hi == -math.inf else m_lo / (m_lo - m_hi)
    return float(2 ** (math.log2(b_lo) + t * (math.log2(b_hi) - math.log2(b_lo))))


def fixed_tolerance(curves: dict, window: int, eps: float = MERRILL_EPS) -> int | None:
    """Merrill et al.'s literal rule: the largest B whose loss after `window` examples is within `eps`
    (loss units) of every smaller batch's loss after the same examples."""
    sizes = sorted(curves)
    at_end = {b: _loss(curves[b].get(window)) for b in sizes}
    if at_end[sizes[0]] == math.inf:
        return None
    ok = [b for i, b in enumerate(sizes) if all(at_end[b] <= at_end[s] + eps for s in sizes[:i])]
    return max(ok)


def tracking(local: list, b_simple: list) -> dict:
    """Does B_simple track the local critical batch over the checkpoints? Spearman's ρ between the two
    and the range of their ratio, over the checkpoints where both are known.

    The rule: "tracks" when there are at least MIN_POINTS checkpoints, ρ ≥ RHO_MIN and max/min of
    local/B_simple ≤ RATIO_SPAN (proportional within a factor 2 either way); "ranks only" when ρ ≥
    RHO_MIN but the ratio drifts further; "does not track" otherwise.
    """
    pairs = [(a, b) for a, b in zip(local, b_simple) if a and b and math.isfinite(a) and math.isfinite(b)]
    out = {"n": len(pairs), "rho": None, "ratio_low": None, "ratio_high": None}
    if len(pairs) < MIN_POINTS:
        return {**out, "verdict": "too few points"}
    a, b = np.array(pairs, float).T
    ratio = a / b
    rho = None if np.ptp(a) == 0 or np.ptp(b) == 0 else float(scipy.stats.spearmanr(a, b).statistic)
    out.update(rho=rho, ratio_low=float(ratio.min()), ratio_high=float(ratio.max()))
    if rho is None or rho < RHO_MIN:
        return {**out, "verdict": "does not track"}
    return {**out, "verdict": "tracks" if ratio.max() / ratio.min() <= RATIO_SPAN else "ranks only"}


def merrill_shape(values: list, b_min: int) -> dict:
    """Merrill et al.'s shape on the local critical batch over checkpoints in training order (the first
    at initialisation): `near_zero_at_init` (the first is censored below or within NEAR_ZERO × the
    smallest batch branched, `b_min`: as small as the grid can tell), `rising` (the last ≥ RISE × the
    first), `plateau` (the last two within a factor PLATEAU), and `reproduced` (all three).

    values: [(estimate, censored)] per checkpoint, estimate None where undefined."""
    known = [(v, c) for v, c in values if v is not None]
    if len(known) < 3 or values[0][0] is None:
        return {"reproduced": None, "near_zero_at_init": None, "rising": None, "plateau": None}
    (first, first_c), (prev, _), (last, _) = known[0], known[-2], known[-1]
    shape = {
        "near_zero_at_init": first_c == "below" or first <= NEAR_ZERO * b_min,
        "rising": last >= RISE * first,
        "plateau": max(last, prev) / min(last, prev) <= PLATEAU,
    }
    return {**shape, "reproduced": all(shape.values())}
