"""`lbbench-bench [--what=throughput|sharpness|curvature]` (python -m lbbench.bench): the benchmarks.

Benchmarks are scripts, not tests: run them on a quiet machine and report the load with the
numbers. --what picks one (lbbench/bench/):

    throughput  vmapped trials vs sequential runs, noise-scale cost, GFLOP/s vs the matmul peak
    sharpness   HVP cost vs a gradient, time of lambda_max / trace / eps-sharpness (Keskar's F1)
    curvature   cost of one curvature-tracker / gradient-tests measurement in train steps
    study       a study's per-batch-size throughput, evaluation and instrument cost, its projected
                wall time, and (--sweep) the measured one
"""

from __future__ import annotations

import argparse
import sys

from lbbench.bench import curvature, sharpness, study, throughput
from lbbench.runs import atomic

BENCHES = ("throughput", "sharpness", "curvature", "study")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="lbbench-bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--what", choices=BENCHES, default="throughput", help="which benchmark (default %(default)s)")
    p.add_argument("--json", default="", help="also write the results here (JSON)")
    g = p.add_argument_group("throughput")
    g.add_argument("--batch_sizes", type=_ints, default=(32, 256, 4096), help="global batch sizes, e.g. 32,256")
    g.add_argument("--trials", type=_ints, default=(1, 4, 8, 16), help="numbers of vmapped trials")
    g.add_argument("--model", default="mlp")
    g.add_argument("--optimizer", default="adam")
    g.add_argument("--examples", type=int, default=60000, help="synthetic training examples (MNIST-1D shaped)")
    g.add_argument("--matmul_n", type=int, default=4096, help="square float32 matmul measuring the peak")
    g.add_argument("--repeats", type=int, default=3, help="timed warm epochs per program (median)")
    g = p.add_argument_group("sharpness and curvature")
    g.add_argument("--measure_examples", type=int, default=2048, help="examples of the measurement subset")
    g.add_argument("--reps", type=int, default=None, help="timed repetitions (sharpness 10, curvature 5)")
    g.add_argument("--batch_size", type=int, default=256, help="curvature: the train step's batch size")
    g.add_argument("--iters", type=int, default=5, help="curvature: warm Lanczos steps")
    g = p.add_argument_group("study")
    g.add_argument("--experiment", default="critical_batch", help="the study whose plan is projected")
    g.add_argument("--sweep", default="", help="a finished sweep folder of it: its measured time beside")
    g.add_argument("--min_steps", type=int, default=50, help="steps of each measured program (whole epochs)")
    g.add_argument("--winners", type=int, default=2, help="distinct winners assumed per batch size")
    g.add_argument("--pack", type=int, default=8, help="trials per program (the sweep's default)")
    g.add_argument("--quick", action="store_true", help="the experiment's quick plan (a smoke test)")
    return p.parse_args(argv[1:])


def run(args: argparse.Namespace) -> dict:
    if args.what == "throughput":
        return throughput.run(
            args.batch_sizes,
            args.trials,
            args.model,
            args.optimizer,
            args.examples,
            args.matmul_n,
            args.repeats,
            log=lambda m: print(m, flush=True),
        )
    if args.what == "study":
        return study.run(args.experiment, args.sweep, args.pack, args.min_steps, args.winners, quick=args.quick)
    if args.what == "sharpness":
        out = sharpness.run(args.measure_examples, args.reps or 10)
        print(sharpness.format_table(out))
        return out
    out = curvature.run(args.measure_examples, args.batch_size, args.iters, args.reps or 5)
    print(curvature.format_table(out))
    return out


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as e:  # argparse printed the usage or the error
        return int(e.code or 0)
    try:
        out = run(args)
    except KeyboardInterrupt:
        print("lbbench-bench: interrupted", file=sys.stderr)
        return 130
    if args.json:
        atomic.write_json(args.json, out)
    return 0
