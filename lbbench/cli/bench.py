"""`lbbench-bench [--what=throughput|sharpness|curvature]` (python -m lbbench.bench): the benchmarks.

Benchmarks are scripts, not tests: run them on a quiet machine and report the load with the
numbers. --what picks one (lbbench/bench/):

    throughput  vmapped trials vs sequential runs, noise-scale cost, GFLOP/s vs the matmul peak
    sharpness   HVP cost vs a gradient, time of lambda_max / trace / eps-sharpness (Keskar's F1)
    curvature   cost of one curvature-tracker / gradient-tests measurement in train steps
"""

from __future__ import annotations

import argparse
import sys

from lbbench.bench import curvature, sharpness, throughput
from lbbench.runs import atomic

BENCHES = ("throughput", "sharpness", "curvature")


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
