"""Data parallelism: one mesh over every device with a 'data' axis, and multi-host start-up.

Batches are sharded along 'data' (NamedSharding(mesh, P('data'))); parameters and optimizer state
are replicated. We use jit with explicit shardings, not pmap (in maintenance mode since JAX 0.8).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lbbench.config import Config, ConfigError
from lbbench.training import coordinator

DATA_AXIS = "data"


def initialize_distributed(cfg: Config) -> None:
    """Start jax.distributed when multi-host flags are set (or a cluster environment asks for it).

    With explicit flags all three must be given (Config.validate enforces it); with none, JAX's own
    cluster detection (Slurm, TPU pods, ...) is used when LBBENCH_DISTRIBUTED=1 is set. Under
    `srun`, JAX reads the process id from SLURM_PROCID, the process count from SLURM_NTASKS and
    the coordinator (the first node of SLURM_STEP_NODELIST, a port derived from SLURM_JOB_ID) from
    the environment Slurm gives each task (scripts/slurm/distributed.sbatch; tested on a real
    cluster in tests/slurm).
    """
    if cfg.coordinator_address:
        coordinator.initialize(cfg.coordinator_address, cfg.num_processes, cfg.process_id, cfg.coordinator_timeout_s)
    elif os.environ.get("LBBENCH_DISTRIBUTED") == "1":
        coordinator.initialize(None, None, None, cfg.coordinator_timeout_s)


def process_index() -> int:
    """This process's index in a multi-process run (0 when alone): only process 0 writes and reports."""
    return jax.process_index()


def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def data_sharding(mesh: Mesh, trial_axis: bool = False) -> NamedSharding:
    """Batches split along 'data'; with `trial_axis` the batch is (trials, batch, ...) and the
    trials axis is replicated (every device holds every trial's parameters, see BUILD_NOTES)."""
    return NamedSharding(mesh, P(None, DATA_AXIS) if trial_axis else P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch(cfg: Config, num_train: int) -> None:
    """The global batch must fit the data and split evenly over devices, processes and groups."""
    n_dev, n_proc = jax.device_count(), jax.process_count()
    if cfg.batch_size > num_train:
        raise ConfigError("batch_size", f"{cfg.batch_size} exceeds the {num_train} training examples")
    if cfg.batch_size % n_dev:
        raise ConfigError("batch_size", f"{cfg.batch_size} is not divisible by the {n_dev} devices")
    if cfg.batch_size % n_proc:
        raise ConfigError("batch_size", f"{cfg.batch_size} is not divisible by the {n_proc} processes")
    per_device = cfg.batch_size // n_dev
    if cfg.ghost_batch_size and per_device % cfg.ghost_batch_size:
        raise ConfigError(
            "ghost_batch_size",
            f"{cfg.ghost_batch_size} does not divide the per-device "
            f"batch of {per_device} ({cfg.batch_size} over {n_dev} devices)",
        )


def put_replicated(x: np.ndarray, mesh: Mesh) -> jax.Array:
    """Place a host array, identical on every process, replicated on all devices (multi-host safe)."""
    return jax.make_array_from_callback(x.shape, replicated(mesh), lambda idx: x[idx])


def put_sharded(x: np.ndarray, mesh: Mesh) -> jax.Array:
    """Place a host array, identical on every process, sharded along its first axis."""
    return jax.make_array_from_callback(x.shape, data_sharding(mesh), lambda idx: x[idx])
