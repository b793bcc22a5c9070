"""`lbbench` (python -m lbbench.main): argv → Configs → training.loop.run_group → exit status.

Flags come from the Config dataclass (lbbench/cli/flags.py). Exit status:
0 completed, 2 bad input (flags, data, a run folder that already holds a run), 3 diverged,
130 interrupted (SIGINT/Ctrl-C), 143 terminated (SIGTERM), 1 any other failure (a full disk
included). Never a traceback unless LBBENCH_DEBUG=1.
"""

from __future__ import annotations

import errno
import os
import sys

from lbbench.cli.flags import help_text, make_flags, parse
from lbbench.config import Config, ConfigError
from lbbench.data import DataError
from lbbench.report import run_summary
from lbbench.report import seeds as seeds_summary
from lbbench.runs import atomic, compile_cache, signals
from lbbench.training import loop, parallel

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143


def _fail(msg: str, code: int) -> int:
    print(f"lbbench: error: {msg}", file=sys.stderr)
    return code


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv[1:]):
        print(help_text())
        return EXIT_OK
    if "--helpfull" in argv[1:]:
        print(make_flags().get_help())
        return EXIT_OK
    signals.install()  # SIGTERM ends a run like Ctrl-C: result marked failed, one line, exit 143
    return _late_signal(_main(argv))


def _late_signal(code: int) -> int:
    """The exit status once the work is done: a signal that came after the last safe point (the
    run had already finished and is saved) still exits 130/143, saying so in one line."""
    late = signals.finished()
    if late is None or code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        return code
    return _fail("interrupted as the command ended; everything it reported above is saved", late)


def _main(argv: list[str]) -> int:
    try:
        cfgs = parse(argv)
        compile_cache.enable(cfgs[0].data_dir)
        parallel.initialize_distributed(cfgs[0])
        results = loop.run_group(cfgs)
    except ConfigError as e:
        return _fail(str(e), EXIT_BAD_INPUT)
    except KeyboardInterrupt as e:
        what = "terminated (SIGTERM)" if isinstance(e, signals.Terminated) else "interrupted"
        return _fail(
            f"{what}; the run's result.json (if it started) says status failed; a finished "
            "earlier run of the same name is kept",
            signals.exit_code(e),
        )
    except Exception as e:  # noqa: BLE001 - the CLI's contract is one line, no traceback
        if os.environ.get("LBBENCH_DEBUG") == "1":
            raise
        if isinstance(e, DataError):
            return _fail(str(e), EXIT_BAD_INPUT)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return _fail(
                f"no space left on the device ({e.filename or 'writing the run'}); no partial files "
                "were kept and an earlier run of the same name is untouched. Free space and rerun",
                EXIT_FAILED,
            )
        return _fail(
            f"run failed: {type(e).__name__}: {e} (details in result.json if the run started; "
            "LBBENCH_DEBUG=1 shows the traceback)",
            EXIT_FAILED,
        )
    if parallel.process_index() == 0:  # multi-process: process 0 prints the results and writes the summary
        _print_results(cfgs, results)
    return EXIT_DIVERGED if any(r["status"] == "diverged" for r in results) else EXIT_OK


def _print_results(cfgs: list[Config], results: list[dict]) -> None:
    """Each run's summary block and where it is; for a --seeds group a line per seed, then the mean and
    95 % interval (and <run>_seeds.json)."""
    for result in results:
        where = result["run_dir"]
        if result["status"] == "diverged":
            print(f"lbbench: DIVERGED ({result.get('error')}); logs and result kept in {where}", file=sys.stderr)
            continue
        if len(results) == 1:
            print(f"lbbench: {os.path.basename(where)} done")
            for line in run_summary.block(result):
                print(f"lbbench: {line}")
        else:
            print(f"lbbench: seed {result['config']['seed']}: {run_summary.one_line(result)}")
        print(f"lbbench: result  {os.path.join(where, 'result.json')}")
    if len(results) > 1:
        _report_seeds(cfgs, results)
    print(f"lbbench: logs    tensorboard --logdir {os.path.dirname(results[0]['run_dir']) or '.'}")


def _report_seeds(cfgs: list[Config], results: list[dict]) -> None:
    """Print the mean and 95 % t-interval over the seeds and write <workdir>/<run>_seeds.json (atomically)."""
    summary = seeds_summary.summarise(results)
    path = os.path.join(cfgs[0].workdir, cfgs[0].run_name.rsplit("_s", 1)[0] + "_seeds.json")
    atomic.write_json(path, summary)
    for line in seeds_summary.lines(summary):
        print(f"lbbench: {line}")
    print(f"lbbench: summary {path}")
