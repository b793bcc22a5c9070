"""Config's fields grouped for `--help`, and which of them are bookkeeping (how a run was measured,
written or launched, not what was trained): reports never compare or group runs by those."""

from __future__ import annotations

import dataclasses

from lbbench.config import Config

# Sections of `--help`, in order. Every Config field is in exactly one (tests/test_config.py checks).
SECTIONS = {
    "data": (
        "dataset",
        "data_dir",
        "download",
        "augment",
        "train_eval_examples",
        "validation_examples",
        "train_subset",
    ),
    "model": ("model", "ghost_batch_size", "init_from"),
    "optimisation": (
        "optimizer",
        "learning_rate",
        "lr_scaling",
        "base_batch_size",
        "batch_size",
        "epochs",
        "batch_schedule",
        "schedule",
        "warmup_epochs",
        "warmup_steps",
        "decay_epochs",
        "decay_factor",
        "momentum",
        "beta2",
        "beta2_scaling",
        "weight_decay",
        "trust_coefficient",
        "sam_rho",
        "grad_clip",
        "loss",
        "seed",
    ),
    "measurement": (
        "sharpness",
        "sharpness_every",
        "sharpness_examples",
        "lanczos_iters",
        "top_k",
        "hutchinson_probes",
        "spectral_density",
        "sharpness_per_layer",
        "epsilons",
        "eps_subspace_dim",
        "lbfgs_iters",
        "noise_scale_groups",
        "noise_scale_ema",
        "noise_scale_every",
        "track_curvature_every",
        "track_curvature_iters",
        "gradient_tests_every",
        "adaptive_sharpness_rho",
        "adaptive_sharpness_steps",
        "eval_every_steps",
        "eval_test_every_steps",
    ),
    "output": (
        "workdir",
        "run_name",
        "overwrite",
        "save_params",
        "checkpoint_every_steps",
        "keep_checkpoints",
        "resume",
        "pause_at_epoch",
        "wandb_project",
    ),
    "distribution": ("coordinator_address", "num_processes", "process_id", "coordinator_timeout_s"),
}


# Keys that say how a run was measured, written or launched, not what was trained: reports never
# compare or group runs by them, and results.load puts them last (train_eval_examples only sizes the
# train-accuracy subset; data_dir and download only say where the data comes from).
BOOKKEEPING = frozenset(
    (*SECTIONS["measurement"], *SECTIONS["output"], *SECTIONS["distribution"])
    + ("seed", "data_dir", "download", "train_eval_examples")
)


def help_texts() -> dict[str, str]:
    """{field name: help text} of every Config field."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(Config)}
