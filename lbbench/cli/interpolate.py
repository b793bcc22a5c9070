"""`lbbench-interpolate SB_RUN LB_RUN`: the loss and accuracy along the line between two trained runs
(Keskar et al. 2017 Fig. 3; lbbench.training.interpolate)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from lbbench.data import DataError
from lbbench.runs import atomic
from lbbench.training.interpolate import interpolate


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lbbench-interpolate", description=__doc__.split("\n\n")[0])
    p.add_argument("sb_run")
    p.add_argument("lb_run")
    p.add_argument("--points", type=int, default=25, help="number of α values in [-1, 2]")
    p.add_argument("--out", default="", help="write the curves as JSON here (default: print a table)")
    p.add_argument(
        "--trust",
        action="store_true",
        help="load parameters whose result.json records no params_sha256 (nothing shows they are that run's)",
    )
    args = p.parse_args(argv[1:])
    try:
        curve = interpolate(args.sb_run, args.lb_run, np.linspace(-1.0, 2.0, args.points), trust=args.trust)
    except (OSError, ValueError, DataError) as e:
        print(f"lbbench-interpolate: error: {e}", file=sys.stderr)
        return 2
    if args.out:
        atomic.write_json(args.out, curve)
    for i, a in enumerate(curve["alphas"]):
        print(
            f"alpha {a:+.3f}  train loss {curve['train_loss'][i]:.4f} acc {curve['train_accuracy'][i]:.4f}"
            f"  test loss {curve['test_loss'][i]:.4f} acc {curve['test_accuracy'][i]:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
