"""`python -m lbbench.sweep`: the same program as `lbbench-sweep` (lbbench.cli.sweep)."""

import sys

from lbbench.cli.sweep import main

sys.exit(main(sys.argv))
