"""`python -m lbbench.sweep`: the same program as `lbbench-sweep` (lbbench.cli.sweep)."""

import sys

from lbbench.runs import signals

signals.install("lbbench.sweep")  # before the heavy imports below: a Ctrl-C then is no traceback

from lbbench.cli.sweep import main  # noqa: E402

sys.exit(main(sys.argv))
