"""`python -m lbbench.bench`: the same program as `lbbench-bench` (lbbench.cli.bench)."""

import sys

from lbbench.cli import bench

sys.exit(bench())
