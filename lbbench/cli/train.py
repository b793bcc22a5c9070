"""CLI: `python -m lbbench.main --batch_size=4096 --schedule=warmup` trains one configuration.

Flags are generated from the Config dataclass (one source of defaults and help). Exit status:
0 completed, 2 bad input (flags, data, a run folder that already holds a run), 3 diverged,
130 interrupted (SIGINT/Ctrl-C), 143 terminated (SIGTERM), 1 any other failure (a full disk
included). Never a traceback unless LBBENCH_DEBUG=1.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys

from absl import flags

from lbbench.config import Config, ConfigError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143


class FlagError(ConfigError):
    """absl could not parse the command line (unknown flag, value of the wrong type)."""

    def __init__(self, message: str):
        ValueError.__init__(self, message)
        self.flag = "flags"


def make_flags() -> flags.FlagValues:
    """A fresh FlagValues with one flag per Config field (no module-level global is touched)."""
    fv = flags.FlagValues()
    flags.DEFINE_list("seeds", [], "train these seeds side by side as one compiled program (e.g. 0,1,2,3,4): "
                      "one run folder per seed, mean ± std printed and written to <workdir>/<run>_seeds.json; "
                      "overrides --seed", flag_values=fv)
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
    if any(s < 0 for s in seeds):
        raise ConfigError("seeds", f"must not be negative, got {seeds}")
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
    return Config(**values)


def parse(argv: list[str]) -> list[Config]:
    """The configs of this command: one, or one per --seeds value (trained as one group)."""
    fv = make_flags()
    try:
        rest = fv(argv)
    except flags.Error as e:
        raise FlagError(str(e)) from None
    if len(rest) > 1:
        raise FlagError(f"unexpected positional arguments {rest[1:]}; flags take the form --name=value")
    cfg = config_from_flags(fv).validate()
    seeds = parse_seeds(fv["seeds"].value)
    return seed_configs(cfg, seeds) if seeds else [cfg]


def _fail(msg: str, code: int) -> int:
    print(f"lbbench: error: {msg}", file=sys.stderr)
    return code


USAGE = "usage: lbbench [--flag=value ...] [--flagfile=FILE]      (or: python -m lbbench.main ...)"
ABOUT = ("Train one network at one batch size and measure what the batch size did to it: test accuracy, "
         "generalization gap, Hessian sharpness (lambda_max, trace, Keskar's eps-sharpness) and the gradient "
         "noise scale. Results go to <workdir>/<run name>/ (result.json, TensorBoard events, metrics.jsonl).")
EXAMPLES = (
    ("lbbench --batch_size=4096 --schedule=warmup", "the main job: about a minute on 2 CPU cores"),
    ("lbbench --model=f1 --batch_size=6000 --epochs=20 --run_name=keskar_lb",
     "Keskar's F1 network with a large batch"),
    ("lbbench --flagfile=run.flags", "flags read from a file, one --name=value per line"),
)
FOOTER = ("Exit status: 0 completed, 2 bad input (one line says what to fix), 3 diverged, 130 interrupted, "
          "1 other failure.  --helpfull also lists absl's own flags.")


def _flag_line(f: dataclasses.Field) -> str:
    d = f.default
    if isinstance(d, bool):
        return f"--[no]{f.name}  (default: {'on' if d else 'off'})"
    if isinstance(d, tuple):
        return f"--{f.name}={','.join(f'{x:g}' if isinstance(x, float) else str(x) for x in d)}"
    return f"--{f.name}={d:g}" if isinstance(d, float) else f"--{f.name}={d}"


def help_text(width: int = 100) -> str:
    """`--help`: a usage line, what the program does, examples, then the flags by section."""
    import textwrap

    from lbbench.config import SECTIONS

    fields = {f.name: f for f in dataclasses.fields(Config)}
    out = [USAGE, "", *textwrap.wrap(ABOUT, width), "", "examples:"]
    for cmd, what in EXAMPLES:
        out += [f"  # {what}", f"  {cmd}"]
    for section, names in SECTIONS.items():
        out += ["", f"{section}:"]
        for name in names:
            f = fields[name]
            head = f"  {_flag_line(f)}"
            text = f.metadata["help"]
            if len(head) > 34:
                out.append(head)
                head = ""
            wrapped = textwrap.wrap(text, width - 36) or [""]
            out.append(f"{head:<36}{wrapped[0]}")
            out += [" " * 36 + line for line in wrapped[1:]]
    out += ["", *textwrap.wrap(FOOTER, width)]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv[1:]):
        print(help_text())
        return EXIT_OK
    if "--helpfull" in argv[1:]:
        print(make_flags().get_help())
        return EXIT_OK
    from lbbench.runs import signals

    signals.install()  # SIGTERM ends a run like Ctrl-C: result marked failed, one line, exit 143
    try:
        cfgs = parse(argv)
        from lbbench.training import parallel
        from lbbench.training import loop as train

        parallel.initialize_distributed(cfgs[0])
        results = train.run_group(cfgs)
    except ConfigError as e:
        return _fail(str(e), EXIT_BAD_INPUT)
    except KeyboardInterrupt as e:
        what = "terminated (SIGTERM)" if isinstance(e, signals.Terminated) else "interrupted"
        return _fail(f"{what}; the run's result.json (if it started) says status failed; a finished "
                     "earlier run of the same name is kept", signals.exit_code(e))
    except Exception as e:  # noqa: BLE001 - the CLI's contract is one line, no traceback
        if os.environ.get("LBBENCH_DEBUG") == "1":
            raise
        from lbbench.data import DataError

        if isinstance(e, DataError):
            return _fail(str(e), EXIT_BAD_INPUT)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return _fail(f"no space left on the device ({e.filename or 'writing the run'}); no partial files "
                         "were kept and an earlier run of the same name is untouched. Free space and rerun",
                         EXIT_FAILED)
        return _fail(f"run failed: {type(e).__name__}: {e} (details in result.json if the run started; "
                     "LBBENCH_DEBUG=1 shows the traceback)", EXIT_FAILED)
    if len(results) > 1:
        _report_seeds(cfgs, results)
    for result in results:
        where = result["run_dir"]
        if result["status"] == "diverged":
            print(f"lbbench: DIVERGED ({result.get('error')}); logs and result kept in {where}", file=sys.stderr)
            continue
        print(summary_line(result))
        print(f"lbbench: result  {os.path.join(where, 'result.json')}")
    print(f"lbbench: logs    tensorboard --logdir {os.path.dirname(results[0]['run_dir']) or '.'}")
    return EXIT_DIVERGED if any(r["status"] == "diverged" for r in results) else EXIT_OK


def _report_seeds(cfgs: list[Config], results: list[dict]) -> None:
    """Print mean ± std over the seeds and write <workdir>/<run>_seeds.json (atomically)."""
    from lbbench.report import seeds as seeds_summary
    from lbbench.runs.writer import atomic_write_json

    summary = seeds_summary.summarise(results)
    path = os.path.join(cfgs[0].workdir, cfgs[0].run_name.rsplit("_s", 1)[0] + "_seeds.json")
    atomic_write_json(path, summary)
    for line in seeds_summary.lines(summary):
        print(f"lbbench: {line}")
    print(f"lbbench: summary {path}")


def summary_line(result: dict) -> str:
    """The last line of a run: accuracy, gap, the sharpness measures, the noise scale, wall time."""
    from lbbench.report.numfmt import mean_sd, num

    final, parts = result["final"], []
    parts.append(f"test accuracy {final['test_accuracy']:.4f}, generalization gap {final['generalization_gap']:+.4f}")
    s = result.get("sharpness") or {}
    if s.get("lambda_max") is not None:
        parts.append(f"lambda_max {num(s['lambda_max'])}")
    if s.get("hessian_trace") is not None:
        parts.append(f"Hessian trace {mean_sd(s['hessian_trace'], s.get('hessian_trace_stderr'))}")
    eps = s.get("epsilon_sharpness") or {}
    if eps:
        parts.append("eps-sharpness " + ", ".join(f"{k.replace('_', ' eps=')} {num(v)}" for k, v in sorted(eps.items())))
    b = (result.get("noise_scale") or {}).get("b_simple")
    if b is not None:
        parts.append(f"B_simple {num(b)}")
    total = (result.get("timing") or {}).get("total_s")
    wall = f" in {total:.1f} s" if total is not None else ""
    return f"lbbench: done{wall}. " + ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
