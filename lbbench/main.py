"""CLI: `python -m lbbench.main --batch_size=4096 --schedule=warmup` trains one configuration.

Flags are generated from the Config dataclass (one source of defaults and help). Exit status:
0 completed, 2 bad input (flags, data), 3 diverged, 130 interrupted, 1 any other failure. Never a traceback unless
LBBENCH_DEBUG=1.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import flags

from lbbench.config import Config, ConfigError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class FlagError(ConfigError):
    """absl could not parse the command line (unknown flag, value of the wrong type)."""

    def __init__(self, message: str):
        ValueError.__init__(self, message)
        self.flag = "flags"


def make_flags() -> flags.FlagValues:
    """A fresh FlagValues with one flag per Config field (no module-level global is touched)."""
    fv = flags.FlagValues()
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


def parse(argv: list[str]) -> Config:
    fv = make_flags()
    try:
        rest = fv(argv)
    except flags.Error as e:
        raise FlagError(str(e)) from None
    if len(rest) > 1:
        raise FlagError(f"unexpected positional arguments {rest[1:]}; flags take the form --name=value")
    return config_from_flags(fv).validate()


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
    try:
        cfg = parse(argv)
        from lbbench import parallel, train

        parallel.initialize_distributed(cfg)
        result = train.run(cfg)
    except ConfigError as e:
        return _fail(str(e), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted; the run's result.json (if it started) says status failed", EXIT_INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the CLI's contract is one line, no traceback
        if os.environ.get("LBBENCH_DEBUG") == "1":
            raise
        from lbbench.data import DataError

        if isinstance(e, DataError):
            return _fail(str(e), EXIT_BAD_INPUT)
        return _fail(f"run failed: {type(e).__name__}: {e} (details in result.json if the run started; "
                     "LBBENCH_DEBUG=1 shows the traceback)", EXIT_FAILED)
    where = result["run_dir"]
    if result["status"] == "diverged":
        print(f"lbbench: DIVERGED ({result.get('error')}); logs and result kept in {where}", file=sys.stderr)
        return EXIT_DIVERGED
    print(summary_line(result))
    print(f"lbbench: result  {os.path.join(where, 'result.json')}")
    print(f"lbbench: logs    tensorboard --logdir {os.path.dirname(where) or '.'}")
    return EXIT_OK


def summary_line(result: dict) -> str:
    """The last line of a run: accuracy, gap, the sharpness measures, the noise scale, wall time."""
    from lbbench.numfmt import mean_sd, num

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
