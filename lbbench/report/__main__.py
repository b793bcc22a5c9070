"""`python -m lbbench.report`: the same program as `lbbench-report` (lbbench.cli.report)."""

import sys

from lbbench.cli.report import main

sys.exit(main(sys.argv))
