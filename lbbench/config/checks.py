"""Config's checks that need more than one line: --batch_schedule's phases, and the errors that name the
fix for a ghost batch or noise-scale split that does not divide the batch (lbbench.config calls them)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid; `flag` names the offending field."""

    def __init__(self, flag: str, problem: str):
        super().__init__(f"--{flag}: {problem}")
        self.flag = flag


def parse_batch_schedule(text: str) -> tuple[tuple[int, int | None], ...]:
    """'256:2,1024:3,4096:5' → ((256, 2), (1024, 3), (4096, 5)); the last phase may be a bare 'BATCH'
    (its epochs None: the rest of --epochs). ConfigError (one line) on anything else."""
    parts = [p.strip() for p in text.split(",")]
    phases = []
    for i, part in enumerate(parts):
        batch, sep, epochs = part.partition(":")
        last_bare = i == len(parts) - 1 and not sep
        if not batch.strip().isdigit() or not (last_bare or epochs.strip().isdigit()):
            raise ConfigError(
                "batch_schedule",
                f"expects BATCH:EPOCHS phases separated by commas, e.g. 256:2,1024:3,4096:5 (the last may "
                f"be a bare BATCH: the rest of --epochs); got {text!r}",
            )
        phases.append((int(batch), None if last_bare else int(epochs)))
    return tuple(phases)


def check_batch_schedule(cfg) -> None:
    """--batch_schedule's phases: positive, each batch a change, the last one --batch_size, the epochs
    adding up to --epochs, and every batch split as --batch_size must be (noise scale, ghost BN)."""
    given = parse_batch_schedule(cfg.batch_schedule)
    if any(b <= 0 or (e is not None and e <= 0) for b, e in given):
        raise ConfigError("batch_schedule", f"batch sizes and epochs must be positive, got {cfg.batch_schedule!r}")
    for i in range(1, len(given)):
        if given[i][0] == given[i - 1][0]:
            raise ConfigError(
                "batch_schedule", f"phases {i} and {i + 1} both train at batch {given[i][0]}; merge them into one"
            )
    if given[-1][0] != cfg.batch_size:
        raise ConfigError(
            "batch_schedule",
            f"the last phase's batch {given[-1][0]} must be --batch_size={cfg.batch_size} (the run is named, "
            f"LR-scaled and reported at its final batch); set --batch_size={given[-1][0]} or leave it out",
        )
    total = sum(e for _, e in cfg.batch_phases)
    if given[-1][1] is None and cfg.batch_phases[-1][1] <= 0:
        raise ConfigError(
            "batch_schedule",
            f"the phases before the last take {total - cfg.batch_phases[-1][1]} epochs, "
            f"leaving none of --epochs={cfg.epochs} for the last",
        )
    if total != cfg.epochs:
        raise ConfigError(
            "batch_schedule",
            f"the phases add up to {total} epochs but --epochs={cfg.epochs}; make them agree or leave --epochs out",
        )
    for b, _ in cfg.batch_phases[:-1]:  # the last is --batch_size, checked as usual
        k, ghost = cfg.noise_scale_groups, cfg.ghost_batch_size
        if b % k:
            raise ConfigError(
                "batch_schedule", f"batch {b} is not divisible by --noise_scale_groups={k} (it splits every batch)"
            )
        if ghost_error(b, ghost, k):
            raise ConfigError(
                "batch_schedule",
                f"--ghost_batch_size={ghost} does not divide batch {b} or its noise-scale sub-batch of {b // k}",
            )
    if cfg.sharpness_every:
        raise ConfigError(
            "sharpness_every",
            "counts epochs in steps of one batch size, which --batch_schedule changes; use 0 (sharpness at "
            "the end) or --track_curvature_every (in steps)",
        )


def ghost_error(batch_size: int, ghost: int, groups: int) -> ConfigError | None:
    """--ghost_batch_size must divide the batch and, with the noise scale on, each of its
    `groups` sub-batches (BatchNorm runs on every sub-batch there); the error names sizes that fit."""
    if not ghost:
        return None
    sub = batch_size // groups if groups > 1 else batch_size
    bad = [n for n in dict.fromkeys((batch_size, sub)) if n % ghost]
    if not bad:
        return None
    fits = [g for g in range(max(1, ghost // 2), 2 * ghost + 1) if batch_size % g == 0 and sub % g == 0]
    near = sorted(fits, key=lambda g: abs(g - ghost))[:2]
    hint = f"; nearby sizes that do: {', '.join(map(str, sorted(near)))}" if near else ""
    what = (
        f"--batch_size={batch_size}"
        if bad[0] == batch_size
        else f"the noise-scale sub-batch of {sub} (--batch_size={batch_size} / --noise_scale_groups={groups})"
    )
    return ConfigError(
        "ghost_batch_size", f"{ghost} does not divide {what}{hint} (or 0 for statistics over the whole batch)"
    )


def groups_error(batch_size: int, groups: int, default_groups: int) -> ConfigError:
    """--noise_scale_groups does not divide --batch_size: blame the flag the user set, name the fixes."""
    fixes = [f"--noise_scale_groups={g}" for g in range(2, groups) if batch_size % g == 0]
    fixes.append("--noise_scale_groups=1 (noise scale off)")
    if groups == default_groups:
        return ConfigError(
            "batch_size",
            f"{batch_size} is not divisible by {groups}, the default "
            f"--noise_scale_groups (the gradient noise scale splits each batch into {groups} "
            f"sub-batches); set {' or '.join(fixes)}, or use a batch size divisible by {groups}",
        )
    return ConfigError(
        "noise_scale_groups",
        f"{groups} does not divide --batch_size={batch_size}; use "
        f"{' or '.join(fixes)}, or a batch size divisible by {groups}",
    )
