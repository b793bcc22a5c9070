"""`python -m lbbench.report`: the same program as `lbbench-report` (lbbench.cli.report)."""

import sys

from lbbench.cli import report

sys.exit(report())
