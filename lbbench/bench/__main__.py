"""`python -m lbbench.bench`: the same program as `lbbench-bench` (lbbench.cli.bench)."""

import sys

from lbbench.cli.bench import main

sys.exit(main(sys.argv))
