"""Confidence intervals over seeds and over trials.

**Means over seeds** (`mean_ci`): the default is the Student-t interval, mean ± t_{n−1} s/√n.
Studies here have 3–5 seeds; a bootstrap of 3 values has only 10 distinct resamples and its
percentile interval of the mean covers well under 95 % (the resampled variance is biased by
(n−1)/n and the t quantile's heavy tail is missing), so for a mean over few seeds the t interval is
the honest one (BUILD_NOTES has the measured coverages). `method="bca"` / `"percentile"` call
scipy.stats.bootstrap for larger samples or for skewed statistics.

**Critical batch size** (`fit_ci`): a stratified bootstrap (Efron & Tibshirani 1993, §8): within
each batch size, resample that batch size's values (seeds of its best trial, or its K tuning trials)
with replacement, reduce them to one steps-to-target per B (geometric mean over seeds, or the
minimum over trials = "best trial", as in Shallue et al. 2019), refit S(B) = S_min(1 + B_crit/B)
(critical_batch.fit_many, vectorised over resamples) and report percentile intervals of B_crit,
S_min and the 20 %-overhead critical batch (order statistics of the resamples, not interpolated, so
a bound that falls among "never crossed" resamples reads as unbounded). With few values per batch
size the plain bootstrap underestimates the spread by √((n−1)/n); for the geometric-mean reduction
we resample deviations from each group's log-mean inflated by √(n/(n−1)) (the variance-corrected
bootstrap of Efron & Tibshirani §9 / Davison & Hinkley 1997 Eq. 6.9, so the resampled group mean has
the unbiased variance s²/n; its coverage on synthetic studies is in BUILD_NOTES). Batch sizes where
a resample never reached the target drop out of that refit; resamples whose fit hits the searched
range's edge (B_crit unidentified) are counted and kept at the edge, so an unbounded interval shows
as such instead of being hidden.

The seed bootstrap sees only seed noise. The headline interval is the **residual bootstrap**
(`residual_fit_ci`), which resamples the scatter of the points around the fit (tuning granularity
included), beside the bootstrap over tuning trials (`fit_ci(..., reduce="min")`)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from lbbench.study import critical_batch as cb


def mean_ci(
    values,
    confidence: float = 0.95,
    method: str = "t",
    n_resamples: int = 9999,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
) -> dict:
    """{"mean", "low", "high", "n", "method"} of the finite values; low/high None when n < 2.

    `bounds`: the range the quantity lives in (accuracy: (0, 1)); the interval is clipped to it.
    """
    out = _mean_ci(values, confidence, method, n_resamples, seed)
    if bounds is not None and out["low"] is not None:
        out.update(low=min(max(out["low"], bounds[0]), bounds[1]), high=min(max(out["high"], bounds[0]), bounds[1]))
    return out


def _mean_ci(values, confidence, method, n_resamples, seed) -> dict:
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    out = {"mean": float(x.mean()) if n else None, "low": None, "high": None, "n": n, "method": method}
    if n < 2:
        return out
    if np.all(x == x[0]):
        out.update(low=float(x[0]), high=float(x[0]))
        return out
    if method == "t":
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
        out.update(low=float(x.mean() - half), high=float(x.mean() + half))
    elif method in ("bca", "percentile", "basic"):
        res = stats.bootstrap(
            (x,),
            np.mean,
            confidence_level=confidence,
            method=method,
            n_resamples=n_resamples,
            random_state=np.random.default_rng(seed),
        )
        out.update(low=float(res.confidence_interval.low), high=float(res.confidence_interval.high))
    else:
        raise ValueError(f"unknown method {method!r}; choose t, bca, percentile or basic")
    return out


def difference_ci(a, b, confidence: float = 0.95, bounds: tuple[float, float] | None = None) -> dict:
    """mean(a) − mean(b) with Welch's t interval (unequal variances, Welch–Satterthwaite df); also its
    standard error `se` and `df`, which the verdict rule's one-sided tests use (study.verdicts), and the
    sample sizes. `bounds`: the range the difference lives in (of two accuracies: (−1, 1)); the interval
    is clipped to it."""
    a = np.asarray([v for v in a if v is not None and math.isfinite(v)], dtype=float)
    b = np.asarray([v for v in b if v is not None and math.isfinite(v)], dtype=float)
    out = {"diff": float(a.mean() - b.mean()) if len(a) and len(b) else None, "low": None, "high": None}
    out.update(se=None, df=None, n_a=len(a), n_b=len(b))
    if len(a) < 2 or len(b) < 2:
        return out
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        out.update(low=out["diff"], high=out["diff"], se=0.0)
        return out
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(va + vb)
    low, high = out["diff"] - half, out["diff"] + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    out.update(low=low, high=high, se=math.sqrt(va + vb), df=float(df))
    return out


def _draw(groups: list[np.ndarray], reduce: str, n_resamples: int, rng, inflate: bool) -> np.ndarray:
    """(n_resamples, n_batches) reduced steps per B (inf where a resample never reached the target)."""
    out = np.empty((n_resamples, len(groups)))
    for j, g in enumerate(groups):
        idx = rng.integers(0, len(g), size=(n_resamples, len(g)))
        if reduce == "min":
            out[:, j] = g[idx].min(1)
            continue
        logs = np.log(g)  # inf stays inf: a never-reached seed makes the mean inf
        finite = np.isfinite(logs)
        if inflate and len(g) > 1 and finite.all():
            mu = logs.mean()
            logs = mu + (logs - mu) * math.sqrt(len(g) / (len(g) - 1))
        out[:, j] = np.exp(logs[idx].mean(1))
    return out


def fit_ci(
    groups: dict,
    reduce: str = "geomean",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    inflate: bool = True,
    overhead: float = cb.OVERHEAD,
) -> dict:
    """Stratified bootstrap of the S(B) fit. `groups`: {batch size: steps-to-target values}, where a
    value of None/inf means "never reached". Returns point estimates (fit of the reduced data) and
    percentile intervals: {"b_crit": {...}, "s_min": {...}, "b_overhead_fit": {...},
    "b_overhead_measured": {...}, "unidentified_fraction", "n_resamples", "reduce"}.
    """
    if reduce not in ("geomean", "min"):
        raise ValueError("reduce must be geomean (seeds) or min (best of trials)")
    bs = sorted(groups)
    vals = [np.array([math.inf if v is None else float(v) for v in groups[b]], dtype=float) for b in bs]
    keep = [j for j, v in enumerate(vals) if len(v)]
    bs, vals = [bs[j] for j in keep], [vals[j] for j in keep]
    b = np.asarray(bs, dtype=float)
    point_steps = _draw(vals, reduce, 1, _Identity(), False)[0]
    point = cb.fit(b, point_steps)
    rng = np.random.default_rng(seed)
    draws = _draw(vals, reduce, n_resamples, rng, inflate)
    w = np.isfinite(draws).astype(float)
    ok = w.sum(1) >= 2
    log_s = np.where(w > 0, np.log(np.where(w > 0, draws, 1.0)), 0.0)
    log_bc, log_smin = cb.fit_many(b, log_s[ok], w[ok])
    g = cb._grid(b)
    unidentified = float(np.mean((log_bc <= g[0]) | (log_bc >= g[-1]))) if ok.any() else 1.0
    measured = _overhead_many(b, draws[ok], w[ok], overhead)
    b_ref = b[(w[ok] > 0).argmax(1)]  # each resample's smallest batch that reached the target
    b_fit_overhead = b_ref + overhead * (b_ref + np.exp(log_bc))
    b0 = float(b[np.isfinite(point_steps)].min())
    lo, hi = 50 * (1 - confidence), 50 * (1 + confidence)

    def interval(est, samples):
        """Percentile interval; inf samples (never crossed) are ordered last, and a bound that falls
        on them is reported as None with "unbounded": True (JSON has no inf)."""
        s = np.sort(np.asarray(samples, dtype=float))
        est = est if est is not None and math.isfinite(est) else None
        if not len(s):
            return {"estimate": est, "low": None, "high": None, "unbounded": False}
        i_lo = int(math.floor(lo / 100 * (len(s) - 1)))
        i_hi = int(math.ceil(hi / 100 * (len(s) - 1)))
        q = [float(s[i_lo]), float(s[i_hi])]
        return {
            "estimate": est,
            "low": q[0] if math.isfinite(q[0]) else None,
            "high": q[1] if math.isfinite(q[1]) else None,
            "unbounded": not math.isfinite(q[1]),
        }

    return {
        "b_crit": interval(point.b_crit, np.exp(log_bc)),
        "s_min": interval(point.s_min, np.exp(log_smin)),
        "b_overhead_fit": interval(cb.overhead_critical_batch_from_fit(point, b0, overhead), b_fit_overhead),
        "b_overhead_measured": interval(cb.overhead_critical_batch(b, point_steps, overhead), measured),
        "fit": point.to_dict(),
        "point_steps": dict(zip([int(x) for x in b], map(float, point_steps))),
        "unidentified_fraction": unidentified,
        "n_resamples": int(ok.sum()),
        "reduce": reduce,
        "confidence": confidence,
    }


def residual_fit_ci(
    points: dict, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0, overhead: float = cb.OVERHEAD
) -> dict | None:
    """Residual bootstrap of the S(B) fit (Davison & Hinkley 1997 §6.2.3): one steps-to-target per
    batch size, `points` {B: steps}; refit to fitted + resampled log residuals.

    The points scatter around the fit by more than seed noise (tuning granularity: the best of K
    trials lands on a coarse grid of settings), and the stratified bootstrap over seeds sees only the
    seed part; the residuals see all of it. Residuals are inflated by √(n/(n−2)) (two fitted
    parameters; Davison & Hinkley Eq. 6.9's leverage-free form), which restores the variance a
    least-squares fit removes. Returns {"b_crit", "s_min", "b_overhead_fit" (0.2·B_crit, the
    asymptote rule), "fit", "unidentified_fraction", ...} or None with fewer than three points.
    """
    bs = sorted(b for b, v in points.items() if v is not None and math.isfinite(v) and v > 0)
    if len(bs) < 3:
        return None
    b = np.asarray(bs, dtype=float)
    y = np.log([points[k] for k in bs])
    point = cb.fit(b, np.exp(y))
    fitted = np.log(point.steps(b))
    resid = (y - fitted) * math.sqrt(len(b) / (len(b) - 2))
    rng = np.random.default_rng(seed)
    log_s = fitted[None, :] + resid[rng.integers(0, len(b), size=(n_resamples, len(b)))]
    log_bc, log_smin = cb.fit_many(b, log_s)
    g = cb._grid(b)
    lo, hi = 50 * (1 - confidence), 50 * (1 + confidence)

    # small-sample widening: the percentile interval of a fit to n points uses normal quantiles where
    # a t with n − 2 degrees of freedom belongs (coverage on synthetic studies: BUILD_NOTES, tested)
    widen = stats.t.ppf(0.5 + confidence / 2, len(b) - 2) / stats.norm.ppf(0.5 + confidence / 2)

    def interval(est, samples):
        q = np.log(np.percentile(samples, [lo, hi]))
        c = math.log(est)
        return {
            "estimate": est,
            "low": float(math.exp(c - (c - q[0]) * widen)),
            "high": float(math.exp(c + (q[1] - c) * widen)),
            "unbounded": False,
        }

    bc = np.exp(log_bc)
    return {
        "b_crit": interval(point.b_crit, bc),
        "s_min": interval(point.s_min, np.exp(log_smin)),
        "b_overhead_fit": interval(cb.overhead_batch_asymptote(point, overhead), overhead * bc),
        "fit": point.to_dict(),
        "point_steps": {int(k): float(points[k]) for k in bs},
        "unidentified_fraction": float(np.mean((log_bc <= g[0]) | (log_bc >= g[-1]))),
        "n_resamples": n_resamples,
        "method": "residual",
        "confidence": confidence,
    }


def _overhead_many(b, draws, w, overhead) -> np.ndarray:
    """critical_batch.overhead_critical_batch for each resample row (inf where never crossed)."""
    out = np.full(len(draws), math.inf)
    full = w.all(1)
    if full.any():  # vectorised for the usual case: every batch size reached the target
        d = draws[full]
        lr = np.log(d * b / (d[:, :1] * b[0]))
        hit = lr >= math.log1p(overhead) - 1e-12
        hit[:, 0] = False
        i = np.where(hit.any(1), hit.argmax(1), 0)
        rows = np.arange(len(d))
        x0, x1 = np.log(b[np.maximum(i - 1, 0)]), np.log(b[i])
        y0, y1 = lr[rows, np.maximum(i - 1, 0)], lr[rows, i]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(y1 > y0, x0 + (math.log1p(overhead) - y0) * (x1 - x0) / (y1 - y0), x1)
        out[full] = np.where(hit.any(1), np.exp(x), math.inf)
    for k in np.flatnonzero(~full):
        m = w[k] > 0
        out[k] = cb.overhead_critical_batch(b[m], draws[k][m], overhead) or math.inf
    return out


class _Identity:
    """An 'rng' whose resample is the sample itself: the point estimate goes through the same reduce."""

    def integers(self, low, high, size):
        return np.arange(high)[None, :].repeat(size[0], 0)
