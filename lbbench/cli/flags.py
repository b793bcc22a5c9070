"""Command-line flags of `lbbench` (python -m lbbench.main): one flag per Config field, `--seeds`, and
the grouped `--help`. Flags are generated from the Config dataclass (one source of defaults and help).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import textwrap

from absl import flags

from lbbench.config import SEED_LIMIT, Config, ConfigError, parse_batch_schedule
from lbbench.config.sections import SECTIONS
from lbbench.runs import folder as run_folder
from lbbench.runs import names
from lbbench.training import checkpoint


class FlagError(ConfigError):
    """absl could not parse the command line (unknown flag, value of the wrong type)."""

    def __init__(self, message: str):
        ValueError.__init__(self, message)
        self.flag = "flags"


def make_flags() -> flags.FlagValues:
    """A fresh FlagValues with one flag per Config field (no module-level global is touched)."""
    fv = flags.FlagValues()
    flags.DEFINE_list("seeds", [], SEEDS_HELP, flag_values=fv)
    for f in dataclasses.fields(Config):
        h, d = f.metadata["help"], f.default
        if isinstance(d, bool):
            flags.DEFINE_bool(f.name, d, h, flag_values=fv)
        elif isinstance(d, int):
            flags.DEFINE_integer(f.name, d, h, flag_values=fv)
        elif isinstance(d, float):
            flags.DEFINE_float(f.name, d, h, flag_values=fv)
        elif isinstance(d, tuple):
            flags.DEFINE_list(f.name, [str(x) for x in d], h + " (comma-separated)", flag_values=fv)
        else:
            flags.DEFINE_string(f.name, d, h, flag_values=fv)
    return fv


def parse_seeds(values: list[str]) -> list[int]:
    """--seeds=0,1,2 → [0, 1, 2]: non-negative, distinct integers."""
    try:
        seeds = [int(v) for v in values if v.strip() != ""]
    except ValueError:
        raise ConfigError("seeds", f"expects comma-separated integers, got {','.join(values)!r}") from None
    if any(not 0 <= s < SEED_LIMIT for s in seeds):
        raise ConfigError("seeds", f"must be in [0, 2^63), got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"must be distinct, got {seeds}")
    return seeds


def seed_configs(cfg: Config, seeds: list[int]) -> list[Config]:
    """One config per seed, named <run name>_s<seed> (the default name already ends in the seed)."""
    base = cfg.run_name or cfg.default_run_name().rsplit("_s", 1)[0]
    return [cfg.replace(seed=s, run_name=f"{base}_s{s}").validate() for s in seeds]


def config_from_flags(fv: flags.FlagValues) -> Config:
    values = {}
    for f in dataclasses.fields(Config):
        v = fv[f.name].value
        if isinstance(f.default, tuple):
            cast = float if f.name == "epsilons" else int
            try:
                v = tuple(cast(x) for x in v if x != "")
            except ValueError:
                raise ConfigError(f.name, f"expects comma-separated numbers, got {','.join(v)!r}") from None
        values[f.name] = v
    return Config(**{**values, **_from_batch_schedule(fv, values["batch_schedule"])})


def _from_batch_schedule(fv: flags.FlagValues, schedule: str) -> dict:
    """--batch_size and --epochs taken from --batch_schedule where the command line does not give them:
    its last phase's batch and the sum of its epochs (Config.validate checks the two agree if given)."""
    if not schedule:
        return {}
    phases = parse_batch_schedule(schedule)
    out = {}
    if not fv["batch_size"].present:
        out["batch_size"] = phases[-1][0]
    if not fv["epochs"].present:
        if phases[-1][1] is None:
            raise ConfigError("batch_schedule", "the last phase has no epochs; give them (BATCH:EPOCHS) or --epochs")
        out["epochs"] = sum(e for _, e in phases)
    return out


def parse(argv: list[str]) -> list[Config]:
    """The configs of this command: one, or one per --seeds value (trained as one group)."""
    fv = make_flags()
    try:
        rest = fv(argv)
    except flags.Error as e:
        raise FlagError(str(e)) from None
    except UnicodeDecodeError:  # absl reads --flagfile as text
        files = [a.split("=", 1)[1] for a in argv if a.startswith(("--flagfile=", "-flagfile="))]
        named = f" {', '.join(files)}" if files else ""
        raise FlagError(f"--flagfile{named} is not a text file of --name=value lines") from None
    if len(rest) > 1:
        raise FlagError(f"unexpected positional arguments {rest[1:]}; flags take the form --name=value")
    cfg = config_from_flags(fv).validate()
    if cfg.run_name:  # a run name must be one plain folder name: say so now, not after loading data
        try:
            names.normalize_run_name(cfg.run_name)
        except names.UnsafeName as e:
            raise ConfigError("run_name", str(e)) from None
    seeds = parse_seeds(fv["seeds"].value)
    cfgs = seed_configs(cfg, seeds) if seeds else [cfg]
    if cfg.run_name:
        return cfgs
    return resumable(cfgs) if cfg.resume else versioned(cfgs)


def _inserter(seeded: bool):
    """How a version suffix goes into a default name (before the seed of a --seeds group)."""
    if seeded:
        return lambda n, v: f"{n.rsplit('_s', 1)[0]}{v}_s{n.rsplit('_s', 1)[1]}"
    return lambda n, v: n + v


def resumable(cfgs: list[Config]) -> list[Config]:
    """--resume with default names: the newest version (…, …_v2, …) whose every run has a checkpoint,
    so the same command continues the run it started instead of opening a new version."""
    names_ = [c.run_name or c.default_run_name() for c in cfgs]
    insert, workdir = _inserter(len(cfgs) > 1), cfgs[0].workdir
    found, version = None, 1
    while True:
        suffix = "" if version == 1 else f"_v{version}"
        versions = [insert(n, suffix) for n in names_]
        if all(checkpoint.steps(checkpoint.ckpt_dir(os.path.join(workdir, n))) for n in versions):
            found = suffix
        elif not any(run_folder.taken(workdir, n) for n in versions):
            break
        version += 1
    if found is None:
        raise ConfigError(
            "resume",
            f"nothing to resume: no checkpoint of {names_[0]} or its versions in {workdir} (a run that "
            "finished removes its checkpoints; drop --resume to start afresh)",
        )
    return [c.replace(run_name=insert(n, found)) for c, n in zip(cfgs, names_)]


def versioned(cfgs: list[Config]) -> list[Config]:
    """Configs named by default whose folders are taken get the next free version (…_v2, …_v3; for
    --seeds the version goes before the seed: …_v2_s0), announced in one line. An explicit --run_name
    keeps the refuse / --overwrite rules. Multi-host runs keep the plain name: every process must
    agree on it and only process 0 sees the folders being made."""
    if cfgs[0].coordinator_address:
        return cfgs
    names_ = [c.run_name or c.default_run_name() for c in cfgs]
    seeded = len(cfgs) > 1
    insert = _inserter(seeded)
    suffix = run_folder.free_version(cfgs[0].workdir, names_, insert)
    if not suffix:
        return cfgs
    out = [c.replace(run_name=insert(n, suffix)) for c, n in zip(cfgs, names_)]
    print(
        f"lbbench: {os.path.join(cfgs[0].workdir, names_[0])} already holds a run; this one is "
        f"{out[0].run_name}{' (and its seeds)' if seeded else ''} (--run_name chooses, --overwrite replaces)",
        file=sys.stderr,
    )
    return out


USAGE = "usage: lbbench [--flag=value ...] [--flagfile=FILE]      (or: python -m lbbench.main ...)"
ABOUT = (
    "Train one network at one batch size and measure what the batch size did to it: test accuracy, "
    "generalization gap, Hessian sharpness (lambda_max, trace, Keskar's eps-sharpness) and the gradient "
    "noise scale. Results go to <workdir>/<run name>/ (result.json, TensorBoard events, metrics.jsonl)."
)
# Measured (BUILD_NOTES "One stated time"); README.md states the same words (a test checks).
MAIN_JOB_TIME = (
    "about 21 s on a 2-core x86-64 CPU, about 14 s once its compiled programs are cached; "
    "generating MNIST-1D the first time adds about 20 s"
)
EXAMPLES = (
    ("lbbench --batch_size=4096 --schedule=warmup", f"the main job: {MAIN_JOB_TIME}"),
    ("lbbench --model=f1 --batch_size=6000 --epochs=20 --run_name=keskar_lb", "Keskar's F1 network with a large batch"),
    ("lbbench --flagfile=run.flags", "flags read from a file, one --name=value per line"),
)
SEEDS_HELP = (
    "train these seeds side by side as one compiled program (e.g. 0,1,2,3,4): one run folder per seed; "
    "the per-seed lines, then the mean and 95 % t-interval, printed and written to <workdir>/<run>_seeds.json; "
    "overrides --seed"
)
# The flags of the command itself, not of a Config field.
COMMAND_FLAGS = (
    ("--seeds=", SEEDS_HELP),
    ("--flagfile=FILE", "read flags from FILE, one --name=value a line; flags after it override it"),
    ("--helpfull", "also list absl's own flags"),
)
FOOTER = (
    "Exit status: 0 completed, 2 bad input (one line says what to fix), 3 diverged, 130 interrupted, "
    "143 terminated (SIGTERM), 1 other failure (a full disk included)."
)


def _flag_line(f: dataclasses.Field) -> str:
    d = f.default
    if isinstance(d, bool):
        return f"--[no]{f.name}  (default: {'on' if d else 'off'})"
    if isinstance(d, tuple):
        return f"--{f.name}={','.join(f'{x:g}' if isinstance(x, float) else str(x) for x in d)}"
    return f"--{f.name}={d:g}" if isinstance(d, float) else f"--{f.name}={d}"


def help_text(width: int = 100) -> str:
    """`--help`: a usage line, what the program does, examples, then the flags by section."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    out = [USAGE, "", *textwrap.wrap(ABOUT, width), "", "examples:"]
    for cmd, what in EXAMPLES:
        out += [f"  # {what}", f"  {cmd}"]
    for section, members in SECTIONS.items():
        out += ["", f"{section}:"]
        for name in members:
            f = fields[name]
            head = f"  {_flag_line(f)}"
            text = f.metadata["help"]
            if len(head) > 34:
                out.append(head)
                head = ""
            wrapped = textwrap.wrap(text, width - 36) or [""]
            out.append(f"{head:<36}{wrapped[0]}")
            out += [" " * 36 + line for line in wrapped[1:]]
    out += ["", "beyond one run:"]
    for flag, text in COMMAND_FLAGS:
        wrapped = textwrap.wrap(text, width - 36)
        out.append(f"  {flag:<34}{wrapped[0]}")
        out += [" " * 36 + line for line in wrapped[1:]]
    out += ["", *textwrap.wrap(FOOTER, width)]
    return "\n".join(out)
