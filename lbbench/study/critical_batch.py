"""Critical batch size from the best steps-to-target per batch size.

**The model** (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", Eq. 2.11):

    S(B) = S_min (1 + B_crit / B)          equivalently   E(B) = B·S(B) = E_min (1 + B / B_crit),

with E_min = S_min·B_crit. Far below B_crit steps halve when B doubles (perfect scaling); far
above, S → S_min (maximal data parallelism). Shallue et al. 2019 (Fig. 1) observed exactly these
three regimes once every batch size is tuned.

**Fit: least squares in log space.** We minimise Σ_i [log S_i − log S_min − log(1 + B_crit/B_i)]²
over (log S_min, log B_crit). Reasons: (1) steps-to-target span orders of magnitude across B
(10⁴ at B = 32, 10² at B = 8192); a linear-space fit would be decided by the smallest batches
alone. (2) Their scatter is multiplicative — seed-to-seed variation and the one-epoch resolution of
the crossing are both a roughly constant *fraction* of S — so log residuals are homoscedastic.
(3) For fixed B_crit the optimal log S_min is the mean residual (closed form), so the fit is a 1-D
profile over log B_crit: a dense grid (robust, no starting point) refined by bounded Brent
minimisation. The grid search is vectorised over replicates, which makes bootstrap refits cheap.
If the optimum sits at the edge of the searched range (the data show no bend), B_crit is not
identified and is reported as a bound, not a number.

**20 %-overhead critical batch** (Zhang et al. 2024, "How Does Critical Batch Size Scale in
Pre-training?", ICLR 2025, §2): the batch size at which the steps to target exceed the linear
(perfect) scaling prediction by 20 %. The perfect-scaling line is drawn from the smallest batch
B_0 measured, S_lin(B) = S(B_0)·B_0/B; B*_20% is where the overhead R(B) = S(B)/S_lin(B) = 1.2.
Measured directly (`overhead_critical_batch`): R is computed at each measured B and B* is the
first crossing of 1.2, interpolated linearly in (log B, log R) between the two measured batch
sizes that bracket it — i.e. on the piecewise-linear log-log curve of S(B). From the fitted model
(`overhead_critical_batch_from_fit`): R(B) = (B + B_crit)/(B_0 + B_crit), so
B*_20% = B_0 + 0.2 (B_0 + B_crit) = 1.2 B_0 + 0.2 B_crit. When B_0 ≪ B_crit this is B_crit/5:
the 20 % definition marks the *start* of the bend, McCandlish's B_crit its middle (S = 2 S_min).

Relative to the fitted perfect-scaling asymptote S_min·B_crit/B instead of the smallest measured
batch (`overhead_batch_asymptote`), R(B) = 1 + B/B_crit, so B*_20% = 0.2·B_crit: it does not depend
on which batch sizes happen to be measured, which is why studies report this one.

**Regimes** are labelled from the fitted curve (`fitted_regimes`): the model's local slope is
k(B) = B_crit/(B + B_crit), so perfect scaling (k ≥ 0.8) is B ≤ B_crit/4, maximal data parallelism
(k ≤ 0.2) is B ≥ 4·B_crit, and diminishing returns lie between. The measured local slopes between
consecutive batch sizes (`regimes`, k = −Δlog S / Δlog B) are kept as data beside them: one noisy
point can flip a label read off the slopes alone.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.optimize import minimize_scalar

PERFECT_SLOPE, MAXIMAL_SLOPE = 0.8, 0.2
OVERHEAD = 0.2
GRID_DECADES = 2.0  # B_crit searched in [B_min / 100, B_max · 100]
GRID_POINTS = 201


@dataclasses.dataclass(frozen=True)
class Fit:
    """S(B) = s_min (1 + b_crit / B); `identified` is False when b_crit hit the searched range's edge."""

    s_min: float
    b_crit: float
    rmse_log: float
    n: int
    identified: bool
    bound: str | None = None  # "below" (no perfect-scaling regime seen) or "above" (no bend seen)

    def steps(self, b):
        return self.s_min * (1 + self.b_crit / np.asarray(b, dtype=float))

    def examples(self, b):
        return np.asarray(b, dtype=float) * self.steps(b)

    @property
    def e_min(self) -> float:
        return self.s_min * self.b_crit

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


EQUILIBRATED_STEPS = 300  # B_simple is read only this far in: 3 windows of its per-step EMA (1 / (1 − 0.99) steps)


def _clean(batch_sizes, steps):
    b = np.asarray(batch_sizes, dtype=float)
    s = np.asarray(steps, dtype=float)
    keep = np.isfinite(s) & (s > 0) & np.isfinite(b) & (b > 0)
    order = np.argsort(b[keep])
    return b[keep][order], s[keep][order]


def _grid(b: np.ndarray) -> np.ndarray:
    return np.linspace(
        math.log(b.min()) - GRID_DECADES * math.log(10), math.log(b.max()) + GRID_DECADES * math.log(10), GRID_POINTS
    )


def profile_sse(log_bc: np.ndarray, b: np.ndarray, log_s: np.ndarray, w: np.ndarray | None = None):
    """For each candidate log B_crit (G,) and each replicate row of log S (R, n) with weights w (R, n):
    the residual sum of squares at the optimal log S_min, and that log S_min. Shapes (R, G)."""
    log_s = np.atleast_2d(log_s)
    w = np.ones_like(log_s) if w is None else np.atleast_2d(w).astype(float)
    y = np.where(w > 0, log_s, 0.0)
    a = np.log1p(np.exp(log_bc)[:, None] / b[None, :])  # (G, n)
    sw = w.sum(1, keepdims=True)
    swy, swy2 = (w * y).sum(1, keepdims=True), (w * y * y).sum(1, keepdims=True)
    swa, swa2, swya = w @ a.T, w @ (a * a).T, (w * y) @ a.T
    sse = swy2 - 2 * swya + swa2 - (swy - swa) ** 2 / sw
    return np.maximum(sse, 0.0), (swy - swa) / sw


def fit_many(b, log_s, w=None) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised grid fit for R replicates sharing the batch sizes b: (log B_crit, log S_min), each (R,).

    Grid resolution is refined by a parabola through the best grid point and its neighbours."""
    b = np.asarray(b, dtype=float)
    g = _grid(b)
    sse, ls = profile_sse(g, b, log_s, w)
    j = np.clip(sse.argmin(1), 1, len(g) - 2)
    r = np.arange(sse.shape[0])
    y0, y1, y2 = sse[r, j - 1], sse[r, j], sse[r, j + 1]
    den = y0 - 2 * y1 + y2
    shift = np.where(den > 0, 0.5 * (y0 - y2) / np.where(den > 0, den, 1.0), 0.0)
    edge = (sse.argmin(1) == 0) | (sse.argmin(1) == len(g) - 1)
    log_bc = np.where(edge, g[sse.argmin(1)], g[j] + np.clip(shift, -1, 1) * (g[1] - g[0]))
    log_s = np.atleast_2d(log_s)
    w = np.ones_like(log_s) if w is None else np.atleast_2d(w).astype(float)
    a = np.log1p(np.exp(log_bc)[:, None] / b[None, :])  # (R, n): each replicate at its own B_crit
    log_smin = (w * (np.where(w > 0, log_s, 0.0) - a)).sum(1) / w.sum(1)
    return log_bc, log_smin


def fit(batch_sizes, steps) -> Fit:
    """Least-squares fit of S(B) = S_min(1 + B_crit/B) in log space (see the module docstring).

    Batch sizes whose steps are None/inf/NaN (target never reached) are left out; two points at
    least are needed.
    """
    b, s = _clean(batch_sizes, steps)
    if len(b) < 2 or len(np.unique(b)) < 2:
        raise ValueError("the fit needs steps at two or more distinct batch sizes")
    y = np.log(s)
    g = _grid(b)
    sse, _ = profile_sse(g, b, y[None, :])
    k = int(sse[0].argmin())
    if 0 < k < len(g) - 1:
        res = minimize_scalar(
            lambda t: profile_sse(np.array([t]), b, y[None, :])[0][0, 0],
            bounds=(g[k - 1], g[k + 1]),
            method="bounded",
            options={"xatol": 1e-10},
        )
        log_bc = float(res.x)
    else:
        log_bc = float(g[k])
    sse_best, ls = profile_sse(np.array([log_bc]), b, y[None, :])
    bound = None if 0 < k < len(g) - 1 else ("below" if k == 0 else "above")
    return Fit(
        s_min=float(math.exp(ls[0, 0])),
        b_crit=float(math.exp(log_bc)),
        rmse_log=float(math.sqrt(sse_best[0, 0] / len(b))),
        n=len(b),
        identified=bound is None,
        bound=bound,
    )


def overhead_ratio(batch_sizes, steps) -> tuple[np.ndarray, np.ndarray]:
    """R(B) = S(B) / (S(B_0)·B_0/B) at each measured B, B_0 the smallest: (B, R)."""
    b, s = _clean(batch_sizes, steps)
    return b, s * b / (s[0] * b[0])


def overhead_critical_batch(batch_sizes, steps, overhead: float = OVERHEAD) -> float | None:
    """Zhang et al.'s critical batch from the measured curve: first B with R(B) = 1 + overhead.

    Interpolated linearly in (log B, log R) between the bracketing measured batch sizes. None when
    R stays below 1 + overhead over the measured range (the critical batch is beyond the largest B);
    the smallest B itself if R already exceeds it there (impossible: R(B_0) = 1 by construction).
    """
    b, r = overhead_ratio(batch_sizes, steps)
    level = math.log1p(overhead)
    lr = np.log(r)
    for i in range(1, len(b)):
        if lr[i] >= level - 1e-12:  # tolerance: R computed as S·B/(S_0·B_0) in floating point
            x0, x1, y0, y1 = math.log(b[i - 1]), math.log(b[i]), lr[i - 1], lr[i]
            if y1 == y0:
                return float(b[i])
            # the first crossing: the previous point is below the level (else we would have stopped)
            return float(math.exp(x0 + (level - y0) * (x1 - x0) / (y1 - y0)))
    return None


def overhead_critical_batch_from_fit(f: Fit, b_ref: float, overhead: float = OVERHEAD) -> float:
    """B* with S_fit(B) = (1 + overhead)·S_fit(b_ref)·b_ref/B: b_ref + overhead·(b_ref + B_crit)."""
    return float(b_ref + overhead * (b_ref + f.b_crit))


def overhead_batch_asymptote(f: Fit, overhead: float = OVERHEAD) -> float:
    """B* where S_fit(B) exceeds the perfect-scaling asymptote S_min·B_crit/B by `overhead`: overhead·B_crit."""
    return float(overhead * f.b_crit)


def fitted_regimes(b_crit: float) -> dict:
    """The regimes' boundaries on the fitted curve: perfect scaling below, maximal data parallelism above."""
    slope_b = lambda k: b_crit * (1 - k) / k  # solves k = B_crit / (B + B_crit)
    return {"perfect_below": slope_b(PERFECT_SLOPE), "maximal_above": slope_b(MAXIMAL_SLOPE)}


def regime_of(batch_size: float, b_crit: float) -> str:
    """The fitted curve's regime at one batch size."""
    cuts = fitted_regimes(b_crit)
    if batch_size <= cuts["perfect_below"]:
        return "perfect scaling"
    return "maximal data parallelism" if batch_size >= cuts["maximal_above"] else "diminishing returns"


def regimes(batch_sizes, steps) -> list[dict]:
    """The measured local slope between consecutive batch sizes, each with the label its slope alone
    would give (data beside `fitted_regimes`, not the headline; module docstring for the cuts)."""
    b, s = _clean(batch_sizes, steps)
    out = []
    for i in range(1, len(b)):
        k = -(math.log(s[i]) - math.log(s[i - 1])) / (math.log(b[i]) - math.log(b[i - 1]))
        name = (
            "perfect scaling"
            if k >= PERFECT_SLOPE
            else "maximal data parallelism"
            if k <= MAXIMAL_SLOPE
            else "diminishing returns"
        )
        out.append(
            {
                "from": int(b[i - 1]),
                "to": int(b[i]),
                "slope": float(k),
                "speedup_per_doubling": float(2**k),
                "regime": name,
            }
        )
    return out


def geomean(vals):
    """The geometric mean of `vals`, or None when any is missing (a seed that never reached the target)."""
    v = [x for x in vals if x is not None]
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v and len(v) == len(vals) else None
