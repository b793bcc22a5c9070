"""The one frozen configuration of a run: defaults, help text and validation in one place.

Flags (main.py) and experiment files (experiments/*.py) both build a `Config`; nothing else
configures a run. Every field's help text lives in its metadata so the CLI is generated from it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from typing import Any

from lbbench.config.checks import ConfigError, check_batch_schedule, ghost_error, groups_error, parse_batch_schedule

DATASETS = ("mnist1d", "random", "mnist", "fashion_mnist", "cifar10", "cifar100")
MODELS = ("mlp", "bn_mlp", "f1", "c1", "c2", "resnet20", "tiny_mlp", "tiny_bn_mlp", "tiny_c1", "tiny_c2", "tiny_resnet")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "lars", "lamb", "sam")
SCHEDULES = ("constant", "warmup", "warmup_cosine", "warmup_step")
LR_SCALINGS = ("none", "linear", "sqrt")
BETA2_SCALINGS = ("none", "half_life")
LOSSES = ("cross_entropy", "mse")  # the names of lbbench.curvature.objectives (tests check they agree)
WANDB_INSTALL_HINT = "pip install wandb (or drop --wandb_project)"


# Fields whose values enter the compiled program as traced numbers (one program serves any values),
# and fields that only say where a run is written. Everything else decides the program's shape, so
# configs that agree on all other fields can train side by side as trials of one compiled program.
TRACED_FIELDS = (
    "learning_rate",
    "lr_scaling",
    "base_batch_size",
    "momentum",
    "beta2",
    "beta2_scaling",
    "weight_decay",
    "warmup_epochs",
    "warmup_steps",
    "sam_rho",
    "trust_coefficient",
    "seed",
)
OUTPUT_FIELDS = ("run_name", "workdir", "overwrite", "checkpoint_every_steps", "keep_checkpoints", "resume")
# The value a field had, in effect, before it existed: a result.json written then lacks the key and
# is read with this value, not today's default (its run held out no validation set).
LEGACY_VALUES = {"validation_examples": 0}


def _f(default: Any, help: str, **kw):
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def default_cache_dir() -> str:
    """Where generated/downloaded data lives: $LBBENCH_CACHE, else ~/.cache/lbbench."""
    return os.environ.get("LBBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lbbench")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines one training run. Validate with `validate()` before use."""

    # data
    dataset: str = _f("mnist1d", f"dataset: one of {', '.join(DATASETS)}")
    data_dir: str = _f("", "data/cache directory (default: $LBBENCH_CACHE or ~/.cache/lbbench)")
    download: bool = _f(True, "download missing real datasets (mnist, cifar...) from their canonical source")
    augment: bool = _f(True, "apply the dataset's standard augmentation (CIFAR crop+flip) on device")
    train_eval_examples: int = _f(10000, "fixed train subset used for train loss/accuracy each epoch")
    validation_examples: int = _f(
        5000,
        "held-out validation examples, what studies select and stop on: MNIST-1D and the random toy "
        "generate them apart (training set unchanged), real datasets carve them, seeded, from "
        "training (0 = no validation set)",
    )
    eval_every_steps: int = _f(
        0,
        "also evaluate validation and test loss/accuracy every N steps (0 = once an epoch); "
        "steps-to-target studies read these points (result.json `evals`)",
    )
    eval_test_every_steps: bool = _f(
        True,
        "evaluate the test set at the --eval_every_steps evaluations too (tuning trials select on "
        "validation alone and may skip it; the epoch-end evaluation always includes test)",
    )
    train_subset: int = _f(
        0,
        "train on a fixed, seeded subset of this many training examples (0 = all); "
        "with --batch_size equal to it, training is full-batch gradient descent",
    )
    # model
    model: str = _f("mlp", f"model: one of {', '.join(MODELS)}")
    ghost_batch_size: int = _f(0, "BatchNorm statistics over groups of this many examples (0 = whole batch)")
    init_from: str = _f(
        "",
        "start from another run's checkpoint: RUN or RUN:STEP (a run folder name under --workdir, or a path); "
        "params, BatchNorm statistics and optimizer state (this run's hyperparameters); a finished run "
        "without checkpoints gives its saved params. Recorded in result.json provenance",
    )
    # optimisation
    optimizer: str = _f("adam", f"optimizer: one of {', '.join(OPTIMIZERS)}")
    learning_rate: float = _f(1e-3, "base learning rate (at --base_batch_size, before scaling)")
    lr_scaling: str = _f("none", "scale the LR with batch size: none, linear (Goyal) or sqrt (Hoffer)")
    base_batch_size: int = _f(256, "batch size at which --learning_rate applies unscaled")
    batch_size: int = _f(256, "global batch size (split across all devices)")
    epochs: int = _f(20, "training epochs")
    batch_schedule: str = _f(
        "",
        "train at growing (or any) batch sizes, phase after phase: comma-separated BATCH:EPOCHS, e.g. "
        "256:2,1024:3,4096:5 (batch-size warmup, Merrill et al. 2025; B grows instead of the LR decaying, "
        "Smith et al. 2018); the last phase is --batch_size and the phases add up to --epochs (each taken "
        "from the schedule when not given; the last phase may omit its epochs: the rest of --epochs); the LR "
        "schedule runs on the global step and --lr_scaling applies at --batch_size in every phase "
        "(empty = one batch size)",
    )
    schedule: str = _f("constant", f"LR schedule: one of {', '.join(SCHEDULES)}")
    warmup_epochs: float = _f(5.0, "linear warmup length in epochs (warmup schedules)")
    warmup_steps: int = _f(
        -1,
        "linear warmup length in steps, the same for every batch size and run length "
        "(warmup schedules; -1 = use --warmup_epochs)",
    )
    decay_epochs: tuple[int, ...] = _f(
        (), "epochs at which warmup_step divides the LR by --decay_factor (default: 50%, 75%)"
    )
    decay_factor: float = _f(10.0, "what warmup_step divides the LR by at each --decay_epochs boundary")
    momentum: float = _f(0.9, "momentum (momentum, nesterov, lars, sam) / beta1 (adam, adamw, lamb)")
    beta2: float = _f(0.999, "second-moment decay beta2 of adam, adamw and lamb (at --base_batch_size)")
    beta2_scaling: str = _f(
        "none",
        "scale beta2 with batch size: none, or half_life (Marek et al. 2025: "
        "beta2' = beta2^(B/B_base), the second-moment half-life fixed in examples)",
    )
    weight_decay: float = _f(0.0, "weight decay; never applied to biases or normalisation parameters")
    trust_coefficient: float = _f(1e-3, "LARS trust coefficient eta (You et al. 2017)")
    sam_rho: float = _f(0.05, "SAM neighbourhood radius rho (Foret et al. 2021)")
    grad_clip: float = _f(0.0, "clip the global gradient norm to this value (0 = off)")
    loss: str = _f(
        "cross_entropy", "training loss: cross_entropy, or mse (squared error on one-hot targets, Cohen et al. 2021)"
    )
    # measurement
    seed: int = _f(0, "random seed for init, shuffling and measurement subsets")
    sharpness: bool = _f(True, "measure Hessian sharpness and eps-sharpness at the end of the run")
    sharpness_every: int = _f(0, "also measure sharpness every N epochs (0 = only at the end)")
    sharpness_examples: int = _f(2048, "fixed, seeded train subset the sharpness is measured on")
    lanczos_iters: int = _f(20, "Lanczos iterations for lambda_max")
    top_k: int = _f(1, "number of top Hessian eigenvalues to report")
    hutchinson_probes: int = _f(20, "Rademacher probes for the Hutchinson trace (0 = skip)")
    spectral_density: bool = _f(False, "estimate the Hessian spectral density (SLQ) at the end")
    sharpness_per_layer: bool = _f(False, "also lambda_max and trace of each layer's Hessian block")
    epsilons: tuple[float, ...] = _f((1e-3,), "box sizes for Keskar eps-sharpness (empty = skip)")
    eps_subspace_dim: int = _f(100, "random-subspace dimension p for eps-sharpness (0 = full space only)")
    lbfgs_iters: int = _f(10, "L-BFGS-B iterations maximising the loss in the eps-box")
    noise_scale_groups: int = _f(4, "sub-batches per step for the gradient noise scale (1 = off)")
    noise_scale_ema: float = _f(
        0.99,
        "EMA decay per step of the noise-scale estimates (window ~1/(1-ema) steps, "
        "whatever --noise_scale_every; McCandlish et al. 2018)",
    )
    noise_scale_every: int = _f(
        10, "measure the gradient noise scale every N steps (its cost is paid on those steps only)"
    )
    track_curvature_every: int = _f(
        0,
        "every N steps: lambda_max (warm-started Lanczos), its stability threshold, "
        "Adam's preconditioned sharpness and batch sharpness (0 = off)",
    )
    track_curvature_iters: int = _f(5, "warm-started Lanczos steps per tracked lambda_max measurement")
    gradient_tests_every: int = _f(
        0,
        "every N steps: Cockpit's gradient norm and inner-product tests, step-size "
        "quality alpha and gradient/top-eigenvector overlap (0 = off)",
    )
    adaptive_sharpness_rho: float = _f(
        0.0,
        "adaptive sharpness at the end of the run: the worst loss rise for perturbations with "
        "||delta / |w| || <= rho (Kwon et al. 2021; Andriushchenko et al. 2023); 0 = off",
    )
    adaptive_sharpness_steps: int = _f(10, "projected gradient-ascent steps of the adaptive-sharpness maximisation")
    # output
    workdir: str = _f("runs", "directory under which each run gets its own folder")
    run_name: str = _f("", "run folder name (default: derived from the config)")
    save_params: bool = _f(True, "save final parameters (flax msgpack) in the run folder")
    overwrite: bool = _f(
        False,
        "replace an existing run of the same name, once the new run completes "
        "(a failed new run leaves the old one in place)",
    )
    checkpoint_every_steps: int = _f(
        0,
        "save a checkpoint of every trial at the first segment end at least this many steps after the "
        "last one, in <workdir>/.<run_name>.ckpt/ (last 2 kept, removed when the run finishes); "
        "0 = every 10 minutes of training; -1 = only on SIGTERM",
    )
    keep_checkpoints: bool = _f(
        False,
        "keep every checkpoint after the run finishes, for branching studies (--init_from=RUN:STEP); "
        "without it only the last 2 are kept and the folder is removed once the run finishes",
    )
    resume: bool = _f(
        False,
        "continue this command's run from its last checkpoint (a killed or preempted run); "
        "with a default run name, the version that has the checkpoint is chosen",
    )
    pause_at_epoch: int = _f(
        0,
        "stop after this epoch with every trial's checkpoint kept and result.json status `paused` "
        "(a successive-halving rung); the same command with a later --pause_at_epoch (or 0) and "
        "--resume continues it exactly; 0 = train all --epochs",
    )
    wandb_project: str = _f("", "also log to this Weights & Biases project (needs `pip install wandb`)")
    # distribution
    coordinator_address: str = _f("", "multi-host: address:port of process 0 (jax.distributed)")
    num_processes: int = _f(0, "multi-host: total number of processes (0 = single host / auto)")
    process_id: int = _f(-1, "multi-host: this process's id (-1 = auto)")
    coordinator_timeout_s: int = _f(
        300,
        "multi-host: give up (exit 2) if all processes have not connected to the coordinator within this many seconds",
    )

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(unknown[0], "unknown configuration key")
        d = {**{k: v for k, v in LEGACY_VALUES.items() if k not in d}, **d}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @property
    def cache_dir(self) -> str:
        return self.data_dir or default_cache_dir()

    @property
    def scaled_learning_rate(self) -> float:
        """lr = base_lr × (B / B_base)^k, k = 1 (linear, Goyal et al. 2017) or ½ (sqrt, Hoffer et al. 2017)."""
        power = {"none": 0.0, "linear": 1.0, "sqrt": 0.5}[self.lr_scaling]
        return self.learning_rate * (self.batch_size / self.base_batch_size) ** power

    @property
    def scaled_beta2(self) -> float:
        """beta2' = beta2^(B / B_base) under half_life scaling (Marek et al. 2025), else beta2."""
        if self.beta2_scaling == "half_life":
            return self.beta2 ** (self.batch_size / self.base_batch_size)
        return self.beta2

    @property
    def batch_phases(self) -> tuple[tuple[int, int], ...]:
        """((batch size, epochs), ...) the run trains, in order: --batch_schedule's phases (the last one's
        omitted epochs filled in from --epochs), or the one phase (--batch_size, --epochs)."""
        if not self.batch_schedule:
            return ((self.batch_size, self.epochs),)
        phases = parse_batch_schedule(self.batch_schedule)
        rest = self.epochs - sum(e for _, e in phases[:-1])
        return tuple((b, rest if e is None else e) for b, e in phases)

    def group_key(self) -> tuple:
        """What must be equal for configs to share one compiled program (all but traced/output fields)."""
        skip = set(TRACED_FIELDS) | set(OUTPUT_FIELDS)
        return tuple(sorted((k, repr(v)) for k, v in self.to_dict().items() if k not in skip))

    def default_run_name(self) -> str:
        batches = "-".join(p.split(":")[0].strip() for p in self.batch_schedule.split(",")) or self.batch_size
        loss = "" if self.loss == "cross_entropy" else f"_{self.loss}"  # names of earlier runs unchanged
        return (
            f"{self.dataset}_{self.model}_{self.optimizer}_b{batches}_{self.schedule}"
            f"_lr{self.learning_rate:g}_{self.lr_scaling}{loss}_s{self.seed}"
        )

    def validate(self) -> Config:
        """Check every value that can be checked without data or devices; raise ConfigError."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            values = v if isinstance(v, tuple) else (v,)
            if any(isinstance(x, float) and not math.isfinite(x) for x in values):
                raise ConfigError(f.name, f"must be a finite number, got {v}")
        for flag, allowed in (
            ("dataset", DATASETS),
            ("model", MODELS),
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("lr_scaling", LR_SCALINGS),
            ("beta2_scaling", BETA2_SCALINGS),
            ("loss", LOSSES),
        ):
            value = getattr(self, flag)
            if value not in allowed:
                raise ConfigError(flag, f"unknown value {value!r}; choose one of {', '.join(allowed)}")
        for flag in (
            "batch_size",
            "base_batch_size",
            "epochs",
            "train_eval_examples",
            "noise_scale_groups",
            "noise_scale_every",
            "track_curvature_iters",
        ):
            if getattr(self, flag) <= 0:
                raise ConfigError(flag, f"must be positive, got {getattr(self, flag)}")
        for flag in (
            "learning_rate",
            "warmup_epochs",
            "weight_decay",
            "trust_coefficient",
            "sam_rho",
            "grad_clip",
            "sharpness_every",
            "lanczos_iters",
            "hutchinson_probes",
            "eps_subspace_dim",
            "lbfgs_iters",
            "ghost_batch_size",
            "sharpness_examples",
            "track_curvature_every",
            "gradient_tests_every",
            "train_subset",
            "eval_every_steps",
            "adaptive_sharpness_rho",
            "adaptive_sharpness_steps",
            "validation_examples",
        ):
            if getattr(self, flag) < 0:
                raise ConfigError(flag, f"must not be negative, got {getattr(self, flag)}")
        if self.learning_rate == 0:
            raise ConfigError("learning_rate", "must be positive, got 0")
        if self.warmup_steps < -1:
            raise ConfigError(
                "warmup_steps", f"must be a number of steps, or -1 to use --warmup_epochs; got {self.warmup_steps}"
            )
        if not 0 <= self.momentum < 1:
            raise ConfigError("momentum", f"must be in [0, 1), got {self.momentum}")
        if not 0 <= self.beta2 < 1:
            raise ConfigError("beta2", f"must be in [0, 1), got {self.beta2}")
        if not 0 <= self.noise_scale_ema < 1:
            raise ConfigError("noise_scale_ema", f"must be in [0, 1), got {self.noise_scale_ema}")
        if self.checkpoint_every_steps < -1:
            raise ConfigError(
                "checkpoint_every_steps", f"must be a number of steps, 0 or -1; got {self.checkpoint_every_steps}"
            )
        if not 0 <= self.pause_at_epoch < max(self.epochs, 1):
            raise ConfigError(
                "pause_at_epoch",
                f"must be 0 (off) or an epoch before the last ({self.epochs}); got {self.pause_at_epoch}",
            )
        if not self.eval_test_every_steps and self.eval_every_steps and not self.validation_examples:
            raise ConfigError(
                "eval_test_every_steps",
                "without a validation set (--validation_examples=0) the mid-epoch evaluations would be empty; "
                "keep the test set in them or hold out validation examples",
            )
        if self.init_from:
            run, _, step = self.init_from.rpartition(":") if ":" in self.init_from else (self.init_from, "", "")
            if not run or (step and not step.isdigit()):
                raise ConfigError("init_from", f"expects RUN or RUN:STEP (STEP a number), got {self.init_from!r}")
        if self.coordinator_timeout_s <= 0:
            raise ConfigError("coordinator_timeout_s", f"must be positive, got {self.coordinator_timeout_s}")
        if self.sharpness:  # what the end-of-run measurement needs, checked before training, not after
            if self.lanczos_iters < 1:
                raise ConfigError("lanczos_iters", "must be at least 1 when --sharpness is on (or pass --nosharpness)")
            if self.sharpness_examples < 1:
                raise ConfigError(
                    "sharpness_examples", "must be at least 1 when --sharpness is on (or pass --nosharpness)"
                )
            if self.epsilons and self.lbfgs_iters < 1:
                raise ConfigError(
                    "lbfgs_iters",
                    "must be at least 1 when --epsilons is set (or pass --epsilons= to skip eps-sharpness)",
                )
        if self.top_k < 1 or self.top_k > max(self.lanczos_iters, 1):
            raise ConfigError("top_k", f"must be in [1, lanczos_iters={self.lanczos_iters}]")
        if any(e <= 0 for e in self.epsilons):
            raise ConfigError("epsilons", f"must all be positive, got {self.epsilons}")
        if any(e <= 0 or e > self.epochs for e in self.decay_epochs):
            raise ConfigError("decay_epochs", f"must lie in (0, epochs={self.epochs}], got {self.decay_epochs}")
        if self.decay_factor < 1:
            raise ConfigError("decay_factor", f"must be at least 1 (1 = no decay), got {self.decay_factor}")
        if self.batch_schedule:
            check_batch_schedule(self)
        if self.batch_size % self.noise_scale_groups:
            raise groups_error(
                self.batch_size, self.noise_scale_groups, Config.__dataclass_fields__["noise_scale_groups"].default
            )
        ghost = ghost_error(self.batch_size, self.ghost_batch_size, self.noise_scale_groups)
        if ghost:
            raise ghost
        if not 0 <= self.seed < SEED_LIMIT:
            raise ConfigError("seed", f"must be in [0, 2^63), got {self.seed}")
        if self.wandb_project and not wandb_available():
            raise ConfigError(
                "wandb_project",
                f"{self.wandb_project!r} needs the wandb package, which is not installed: {WANDB_INSTALL_HINT}",
            )
        multi = (bool(self.coordinator_address), self.num_processes > 0, self.process_id >= 0)
        if any(multi) and not all(multi):
            raise ConfigError(
                "coordinator_address",
                "multi-host needs --coordinator_address, --num_processes and --process_id together (or none of them)",
            )
        if all(multi) and self.process_id >= self.num_processes:
            raise ConfigError("process_id", f"{self.process_id} must be < --num_processes={self.num_processes}")
        return self

    def warnings(self) -> list[str]:
        """Legal but probably unintended settings, printed and stored in result.json."""
        out = []
        if self.optimizer == "lars" and self.scaled_learning_rate * self.trust_coefficient < 1e-4:
            out.append(
                f"LARS relative step lr*eta = {self.scaled_learning_rate * self.trust_coefficient:.1e} "
                "per step is tiny: LARS needs a large base LR (You et al. use 2-30 with eta=1e-3)"
            )
        return out


def wandb_available() -> bool:
    """Whether the optional wandb package is installed (--wandb_project needs it)."""
    return importlib.util.find_spec("wandb") is not None


SEED_LIMIT = 2**63  # PRNG keys and numpy take a signed 64-bit seed


__all__ = ["Config", "ConfigError", "parse_batch_schedule"]
