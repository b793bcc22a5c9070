"""One verdict rule for every comparison a study makes (STUDY_PROTOCOL.md §7).

A comparison is the difference arm − reference of test accuracy over re-run seeds, with Welch's t
(bootstrap.difference_ci). Symmetric non-inferiority with margin m (Wellek 2010, ch. 1; the
"equivalence margin" of Walker & Nowacki 2011), four outcomes:

    better        the interval lies above +m
    non-inferior  the interval lies above −m (any deficit is smaller than the margin)
    worse         the interval lies below −m
    inconclusive  the interval straddles −m: too wide to tell

A 95 % two-sided interval is the pair of one-sided tests at α = 0.025, so with one comparison the
rule above *is* the test. A study makes a family of comparisons; the family's one-sided p-values
(the direction the data point to: non-inferior or worse) are adjusted by Holm's step-down
(Holm 1979), and a verdict other than "inconclusive" needs its adjusted p below α.

Arms whose seeds split (some learn, some stay at or fall back to chance) are not a t-interval's
business: `split` reports the success rate k/n with a Wilson score interval (Wilson 1927) and the
accuracy of the successful seeds.
"""

from __future__ import annotations

import math

from scipy import stats

from lbbench.study.bootstrap import mean_ci

MARGIN = 0.01  # one point of accuracy: a smaller deficit counts as none
ALPHA = 0.025  # one-sided, = a two-sided 95 % interval
OUTCOMES = ("better", "non-inferior", "inconclusive", "worse")


def ci_verdict(low: float | None, high: float | None, margin: float = MARGIN) -> str | None:
    """The rule on one interval of (arm − reference); None without an interval."""
    if low is None or high is None:
        return None
    if low > margin:
        return "better"
    if low > -margin:
        return "non-inferior"
    if high < -margin:
        return "worse"
    return "inconclusive"


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (Holm 1979)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def one_sided(d: dict, margin: float = MARGIN) -> dict | None:
    """p-values of the three one-sided Welch tests of a difference: H0 diff ≤ −m (reject: non-inferior),
    H0 diff ≥ −m (reject: worse) and H0 diff ≤ +m (reject: better). None without a standard error, or
    when an arm's seeds split (`split`): no t-test for a bimodal arm."""
    if not d or d.get("se") is None or d.get("split"):
        return None
    diff, se = d["diff"], d["se"]
    if se == 0:  # identical seeds on both sides: the difference is known exactly
        return {
            "non-inferior": 0.0 if diff > -margin else 1.0,
            "worse": 0.0 if diff < -margin else 1.0,
            "better": 0.0 if diff > margin else 1.0,
        }
    t = stats.t(d["df"])
    return {
        "non-inferior": float(t.sf((diff + margin) / se)),
        "worse": float(t.cdf((diff + margin) / se)),
        "better": float(t.sf((diff - margin) / se)),
    }


def power(d: dict | None, margin: float = MARGIN, alpha: float = ALPHA, target: float = 0.8) -> dict | None:
    """What a comparison could have shown, at its observed spread (the standard error and Welch df of
    `d`, a difference_ci dict), for one test at level `alpha` (before Holm):

    - "if_equal": the chance the non-inferiority test says non-inferior when the arms are truly equal,
      1 − F_df(t_{1−α} − m/se) (the noncentral t approximated by a shifted central t);
    - "detectable_deficit": the true deficit the test declares "worse" with probability `target`,
      m + (t_{1−α} + t_{target})·se (Chow, Shao & Wang 2008, §3.2's non-inferiority sample-size formula
      solved for the difference).

    None without a standard error (fewer than 2 seeds a side, or identical seeds)."""
    if not d or not d.get("se") or not d.get("df"):
        return None
    t = stats.t(d["df"])
    crit, se = t.ppf(1 - alpha), d["se"]
    return {
        "if_equal": float(t.sf(crit - margin / se)),
        "detectable_deficit": float(margin + (crit + t.ppf(target)) * se),
    }


def family(diffs: dict, margin: float = MARGIN, alpha: float = ALPHA) -> dict:
    """{label: verdict dict} for a family of differences {label: difference_ci dict or None}.

    Each verdict dict: "verdict" (one of OUTCOMES, or None without an interval), "p" (the one-sided
    p-value of the direction the data point to), "p_holm" (Holm-adjusted within the family),
    "uncorrected" (the single-interval rule, for reference), "family_size".
    """
    tests = {k: one_sided(d, margin) for k, d in diffs.items()}
    tested = [k for k, p in tests.items() if p is not None]
    direction = {k: min(("non-inferior", "worse"), key=lambda o: tests[k][o]) for k in tested}
    p = {k: tests[k][direction[k]] for k in tested}
    adj = dict(zip(tested, holm([p[k] for k in tested])))
    out = {}
    for k, d in diffs.items():
        if k not in adj:
            out[k] = {"verdict": None, "p": None, "p_holm": None, "uncorrected": None, "family_size": len(tested)}
            continue
        v = direction[k] if adj[k] < alpha else "inconclusive"
        if v == "non-inferior" and min(1.0, tests[k]["better"] * len(tested)) < alpha:
            v = "better"  # Bonferroni on the stronger claim: conservative, never weaker than Holm's
        out[k] = {
            "verdict": v,
            "p": p[k],
            "p_holm": adj[k],
            "uncorrected": ci_verdict(d.get("low"), d.get("high"), margin),
            "family_size": len(tested),
        }
    return out


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | tuple[None, None]:
    """Wilson score interval of a success rate k/n (scipy's binomtest)."""
    if n == 0:
        return None, None
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def split(values: list, floor: float, confidence: float = 0.95) -> dict:
    """Success rate of an arm's seeds (accuracy above `floor` = chance + margin) with a Wilson interval,
    and the mean [t-CI, within [0, 1]] of the successful seeds' accuracy. `bimodal` when some seeds
    succeed and some do not: then this, not a mean over all seeds, is what the arm reports."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    ok = [v for v in finite if v > floor]
    n = len(values)  # a seed without a value (diverged) is a failure
    low, high = wilson(len(ok), n, confidence)
    return {
        "successes": len(ok),
        "n": n,
        "rate": len(ok) / n if n else None,
        "wilson": [low, high],
        "bimodal": 0 < len(ok) < n,
        "accuracy_of_successes": mean_ci(ok, confidence, bounds=(0.0, 1.0)),
    }
