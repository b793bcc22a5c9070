"""1-D parametric interpolation between a small-batch and a large-batch solution (Keskar et al. 2017, Fig. 3).

θ(α) = α·θ_LB + (1 − α)·θ_SB for α ∈ [−1, 2]: α = 0 is the small-batch minimiser, α = 1 the
large-batch one. Keskar et al. read the sharpness of each minimum off the loss curve around it
(after Goodfellow et al. 2015).

BatchNorm choice: the running statistics are interpolated along the same line as the weights (they
are part of the inference-mode function θ defines), so both endpoints reproduce each run exactly.
Extrapolating (α < 0 or α > 1) can push a running *variance* below zero; it is clipped at 0, so
that layer then divides by sqrt(ε) — the extrapolated network is simply very bad there, as the
curve shows, instead of NaN.

Evaluation is one jitted `lax.map` over α of the chunked evaluator (`epoch.make_evaluate`) on a
fixed train subset (the same one train.py evaluates every epoch) and the full test set.

CLI: `lbbench-interpolate SB_RUN_DIR LB_RUN_DIR [--points 25] [--out interp.json]` (lbbench.cli.interpolate).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lbbench import data as data_lib
from lbbench.runs.reader import load_run
from lbbench.training.epoch import eval_sets, make_evaluate


def interpolate_variables(sb, lb, alpha):
    """α·LB + (1 − α)·SB leaf by leaf (params and batch_stats); BN variances clipped at 0."""

    def mix(path, a, b):
        out = alpha * b + (1.0 - alpha) * a
        is_var = any(getattr(k, "key", None) == "var" for k in path)
        return jnp.maximum(out, 0.0) if is_var else out

    return jax.tree_util.tree_map_with_path(mix, sb, lb)


def _eval_sets(cfg, train_examples: int):
    """The fixed train subset train.py uses for train metrics (of the run's own training set, its
    validation set held out), and the full test set, padded."""
    sets = eval_sets(data_lib.load_for(cfg, download=False), train_examples, jnp.asarray)
    return {name: sets[name] for name in ("train", "test")}


def _check_compatible(cfg_sb, cfg_lb) -> None:
    for key in ("dataset", "model", "loss"):
        if getattr(cfg_sb, key) != getattr(cfg_lb, key):
            raise ValueError(
                f"cannot interpolate runs with different {key}: {getattr(cfg_sb, key)!r} vs {getattr(cfg_lb, key)!r}"
            )


def interpolate(sb_dir: str, lb_dir: str, alphas=None, train_examples: int = 10000, trust: bool = False) -> dict:
    """Train/test loss and accuracy along θ(α) between two finished runs (JSON-ready dict).

    `trust`: load parameters whose result.json records no checksum (load_run refuses them otherwise)."""
    alphas = np.linspace(-1.0, 2.0, 25) if alphas is None else np.asarray(alphas, dtype=float)
    cfg_sb, model, var_sb = load_run(sb_dir, trust=trust)
    cfg_lb, _, var_lb = load_run(lb_dir, trust=trust)
    _check_compatible(cfg_sb, cfg_lb)
    var_sb, var_lb = ({"params": v["params"], "batch_stats": v.get("batch_stats") or {}} for v in (var_sb, var_lb))
    out = {
        "alphas": [float(a) for a in alphas],
        "model": cfg_sb.model,
        "dataset": cfg_sb.dataset,
        "sb_run": sb_dir,
        "lb_run": lb_dir,
        "sb_batch_size": cfg_sb.batch_size,
        "lb_batch_size": cfg_lb.batch_size,
        "loss": cfg_sb.loss,
        "bn_statistics": "interpolated (variances clipped at 0)",
        "train_examples": train_examples,
    }
    for name, (chunk, arrays) in _eval_sets(cfg_sb, train_examples).items():
        evaluate = make_evaluate(model, chunk, cfg_sb.loss)

        def at(alpha, arrays=arrays, evaluate=evaluate):
            v = interpolate_variables(var_sb, var_lb, alpha)
            return evaluate(v["params"], v["batch_stats"], *arrays)

        loss, acc = jax.jit(lambda a: jax.lax.map(at, a))(jnp.asarray(alphas, jnp.float32))
        out[f"{name}_loss"] = [float(x) for x in np.asarray(loss)]
        out[f"{name}_accuracy"] = [float(x) for x in np.asarray(acc)]
    return out
