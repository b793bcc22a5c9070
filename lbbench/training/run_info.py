"""Facts a result records besides the metrics: the environment, and the sharpness measurement."""

from __future__ import annotations

import os
import platform

import jax
import numpy as np

from lbbench.config import Config

SHARPNESS_SUBSET_SEED = 1703  # fixed: every run is measured on the same training examples


def environment() -> dict:
    import flax
    import optax

    devices = jax.devices()
    return {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "platform": devices[0].platform, "device_kind": devices[0].device_kind,
            "device_count": jax.device_count(), "process_count": jax.process_count(),
            "host_cpus": os.cpu_count(), "machine": platform.machine()}


def sharpness_subset(ds, n: int):
    """The fixed, seeded training subset sharpness is measured on (same for every run)."""
    idx = np.random.default_rng(SHARPNESS_SUBSET_SEED).permutation(ds.num_train)[: min(n, ds.num_train)]
    return ds.x_train[np.sort(idx)], ds.y_train[np.sort(idx)]


def measure_sharpness(cfg: Config, model, state, ds, key, report=None) -> dict:
    """λ_max, Hutchinson trace and Keskar ε-sharpness at `state`, BatchNorm in inference mode.

    A Ctrl-C/SIGTERM anywhere in here (imports and set-up included) is raised when the measurement
    ends, not inside XLA or scipy. `report(part, seconds)` is called as each part finishes.
    """
    from lbbench.runs import signals

    with signals.deferred():
        from lbbench.curvature.measure import SharpnessOptions, measure

        x, y = sharpness_subset(ds, cfg.sharpness_examples)
        batch_stats = state.batch_stats

        def logits_fn(params, xb):
            return model.apply({"params": params, "batch_stats": batch_stats}, xb, train=False)

        options = SharpnessOptions(
            lanczos_iters=cfg.lanczos_iters, top_k=cfg.top_k, hutchinson_probes=cfg.hutchinson_probes,
            density=cfg.spectral_density, epsilons=tuple(cfg.epsilons), subspace_dim=cfg.eps_subspace_dim,
            lbfgs_iters=cfg.lbfgs_iters, per_layer=cfg.sharpness_per_layer)
        return measure(logits_fn, state.params, x, y, options, key, report)
