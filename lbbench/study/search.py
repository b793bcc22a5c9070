"""A declared hyperparameter search space and quasi-random trials drawn from it.

Shallue et al. 2019 (§3.5, App. D) tune every batch size with the same number of trials drawn by
quasi-random search over a fixed space: a low-discrepancy sequence covers the space more evenly
than i.i.d. draws at the same budget, and unlike a grid every trial has a distinct value in every
dimension. We use scipy.stats.qmc (scrambled Sobol by default, or Halton), seeded, so a study is
reproducible from (space, n, seed).

Each dimension maps the unit interval u ∈ [0, 1) onto a value:

    log        value = exp(log lo + u (log hi − log lo))            learning rate, weight decay
    log1m      1 − value is log-uniform in [1 − hi, 1 − lo]         momentum, β2 (Shallue: log(1 − m))
    linear     value = lo + u (hi − lo)                             warmup (steps or epochs)
    log_or_zero  u < zero_fraction → 0, else log-uniform on the rest (weight decay "off or log")
    log2_int   log-uniform, rounded to a power of two                ghost batch size

`trials()` returns Config override dicts (fields learning_rate, momentum, beta2, weight_decay,
warmup_steps or warmup_epochs, and sam_rho for SAM, of lbbench.config.Config). Warmup is an absolute length, never a
fraction of the run (STUDY_PROTOCOL.md §4): in steps by default, the same at every batch size and
run length, so a trial's warmup does not change with the budget rule; studies whose arms all train
the same number of epochs may search it in epochs (= examples) instead. warmup_steps values are
rounded to whole steps.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from scipy.stats import qmc

SCALES = ("log", "log1m", "linear", "log_or_zero", "log2_int")


@dataclasses.dataclass(frozen=True)
class Dim:
    """One search dimension: the Config field it sets, its range and how u ∈ [0,1) maps onto it."""

    field: str
    low: float
    high: float
    scale: str = "log"
    zero_fraction: float = 0.0  # log_or_zero only: share of the unit interval that means 0

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"{self.field}: unknown scale {self.scale!r}; choose one of {SCALES}")
        if not self.low < self.high:
            raise ValueError(f"{self.field}: need low < high, got [{self.low}, {self.high}]")
        if self.scale in ("log", "log_or_zero", "log2_int") and self.low <= 0:
            raise ValueError(f"{self.field}: a log dimension needs low > 0")
        if self.scale == "log1m" and not 0 <= self.low < self.high < 1:
            raise ValueError(f"{self.field}: a log(1 - x) dimension needs 0 <= low < high < 1")
        if not 0 <= self.zero_fraction < 1:
            raise ValueError(f"{self.field}: zero_fraction must be in [0, 1)")

    def unit(self, value: float) -> float | None:
        """Where `value` sits in the unit interval (the inverse of `value`); None for log_or_zero's zero."""
        if self.scale == "linear":
            return (value - self.low) / (self.high - self.low)
        if self.scale in ("log", "log2_int"):
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        if self.scale == "log1m":
            a, b = math.log(1 - self.low), math.log(1 - self.high)
            return (math.log(1 - value) - a) / (b - a)
        if value == 0:
            return None
        v = (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return self.zero_fraction + v * (1 - self.zero_fraction)

    def value(self, u: float) -> float:
        u = float(np.clip(u, 0.0, 1.0))
        if self.scale == "linear":
            return self.low + u * (self.high - self.low)
        if self.scale in ("log", "log2_int"):
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
            return value if self.scale == "log" else float(2 ** round(math.log2(value)))
        if self.scale == "log1m":  # u = 0 -> 1 - low is largest -> value = low
            a, b = math.log(1 - self.low), math.log(1 - self.high)
            return 1 - math.exp(a + u * (b - a))
        if u < self.zero_fraction:
            return 0.0
        v = (u - self.zero_fraction) / (1 - self.zero_fraction)
        return math.exp(math.log(self.low) + v * (math.log(self.high) - math.log(self.low)))


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """An ordered set of dimensions."""

    dims: tuple[Dim, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(d.field for d in self.dims)

    def unit_points(self, n: int, seed: int, method: str = "sobol") -> np.ndarray:
        """n × d low-discrepancy points in [0, 1)^d (scrambled, seeded)."""
        if n < 1:
            raise ValueError("need at least one trial")
        d = len(self.dims)
        if method == "sobol":
            sampler = qmc.Sobol(d, scramble=True, seed=seed)
            with warnings.catch_warnings():  # Sobol's balance is exact for n = 2^m; other n are still fine
                warnings.simplefilter("ignore", UserWarning)
                return sampler.random(n)
        if method == "halton":
            return qmc.Halton(d, scramble=True, seed=seed).random(n)
        raise ValueError(f"unknown method {method!r}; choose sobol or halton")

    def trials(self, n: int, seed: int = 0, method: str = "sobol") -> list[dict]:
        """n Config override dicts, one per quasi-random point."""
        out = []
        for row in self.unit_points(n, seed, method):
            point = {d.field: d.value(u) for d, u in zip(self.dims, row)}
            for field in ("warmup_steps", "ghost_batch_size"):  # integer Config fields
                if field in point:
                    point[field] = int(round(point[field]))
            out.append(point)
        return out


WARMUP_STEPS = Dim("warmup_steps", 0.0, 500.0, "linear")
# SAM's neighbourhood radius: Foret et al. 2021 (App. C) pick rho from {0.01, 0.02, 0.05, 0.1, 0.2, 0.5}
SAM_RHO = Dim("sam_rho", 0.01, 0.5, "log")


def ghost_batch_dim(low: int, high: int) -> Dim:
    """Ghost batch sizes, powers of two in [low, high], log-uniform (Hoffer et al. 2017 use 128)."""
    return Dim("ghost_batch_size", float(low), float(high), "log2_int")


def equal_epochs_space(optimizer: str, epochs: float) -> SearchSpace:
    """default_space with warmup searched over 0–20 % of `epochs`, in epochs: for a study whose arms all
    train `epochs` epochs, an absolute length in examples, the same for every arm (STUDY_PROTOCOL.md §4)."""
    return default_space(optimizer, warmup=Dim("warmup_epochs", 0.0, 0.2 * epochs, "linear"))


EDGE = 0.1  # a winner in the outer 10 % of a searched range may want a wider range (STUDY_PROTOCOL.md §3)


def edge_dims(space: SearchSpace, config: dict) -> list[str]:
    """The dimensions where a configuration sits in the outer EDGE of its searched range, e.g.
    ["learning_rate (high)"]: its optimum may lie outside the range, so the arm may be under-tuned."""
    return [f"{field} ({side})" for field, sides in edge_sides(space, config).items() for side in sorted(sides)]


def edge_sides(space: SearchSpace, config: dict) -> dict[str, set[str]]:
    """{field: {"low"/"high"}} of the dimensions where `config` sits in the outer EDGE of its range."""
    out: dict[str, set[str]] = {}
    for d in space.dims:
        v = config.get(d.field)
        u = None if v is None else d.unit(float(v))
        if u is not None and (u < EDGE or u > 1 - EDGE):
            out.setdefault(d.field, set()).add("low" if u < EDGE else "high")
    return out


WIDEN = 0.5  # a widened side extends the range by half its width, in the dimension's own scale


def widened(space: SearchSpace, sides: dict[str, set[str]]) -> SearchSpace | None:
    """`space` with each named side pushed out by WIDEN of the range's width (in unit space: the new range
    is [−WIDEN, 1] or [0, 1 + WIDEN] of the old one), so an edge winner's optimum can lie inside it.
    Sides that are natural bounds stay: a linear range starting at 0 (warmup), log(1 − x) at 0 or 1, and
    powers of two (ghost batch sizes must divide the batch). None if nothing could be widened."""
    dims, changed = [], False
    for d in space.dims:
        lo, hi = d.low, d.high
        for side in sorted(sides.get(d.field, ())):
            new = _push(d, side)
            if new is not None:
                lo, hi = (new, hi) if side == "low" else (lo, new)
                changed = True
        dims.append(dataclasses.replace(d, low=lo, high=hi))
    return SearchSpace(tuple(dims)) if changed else None


def _push(d: Dim, side: str) -> float | None:
    """The new bound of one side of `d` pushed out by WIDEN (None where it is a natural bound)."""
    sign = -1.0 if side == "low" else 1.0
    if d.scale in ("log", "log_or_zero"):
        a, b = math.log(d.low), math.log(d.high)
        return math.exp((a if side == "low" else b) + sign * WIDEN * (b - a))
    if d.scale == "linear":
        if side == "low" and d.low <= 0:
            return None
        new = (d.low if side == "low" else d.high) + sign * WIDEN * (d.high - d.low)
        return max(new, 0.0) if d.low >= 0 else new
    if d.scale == "log1m":
        a, b = math.log(1 - d.low), math.log(1 - d.high)
        new = 1 - math.exp((a if side == "low" else b) + sign * WIDEN * (b - a))
        if side == "low":
            return None if d.low <= 0 else max(new, 0.0)
        return new
    return None


def default_space(optimizer: str, beta2: bool | None = None, warmup: Dim = WARMUP_STEPS) -> SearchSpace:
    """The space lbbench tunes each optimizer over (ranges follow Shallue et al. App. D / Nado et al.).

    Learning rate is the *base* rate at Config.base_batch_size; experiments that search it per batch
    size combine it with lr_scaling="sqrt", which centres the space at every B (the optimum moves
    with B; Shallue Fig. 8). momentum is β1 for adam/lamb. β2 is searched for adam-family optimizers
    (log(1 − β2) ∈ [1e-3, 1e-1]) unless beta2=False. SAM also tunes its radius ρ (SAM_RHO: Foret et
    al. tune it per task; a fixed ρ would make SAM's arm the only one with an untuned hyperparameter).
    Warmup: 0–500 steps unless `warmup` says otherwise (e.g. Dim("warmup_epochs", 0, 2) for a study
    whose arms all train the same epochs).
    """
    adaptive = optimizer in ("adam", "adamw", "lamb")
    lr = {"adam": (1e-4, 3e-2), "adamw": (1e-4, 3e-2), "lamb": (1e-3, 1e-1), "lars": (0.1, 10.0)}.get(
        optimizer, (1e-2, 1.0)
    )
    dims = [
        Dim("learning_rate", *lr, "log"),
        Dim("momentum", 0.5, 0.99, "log1m"),
        warmup,
        Dim("weight_decay", 1e-6, 1e-3, "log_or_zero", zero_fraction=0.25),
    ]
    if beta2 if beta2 is not None else adaptive:
        dims.append(Dim("beta2", 0.9, 0.999, "log1m"))
    if optimizer == "sam":
        dims.append(SAM_RHO)
    return SearchSpace(tuple(dims))
