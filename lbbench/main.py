"""`python -m lbbench.main --batch_size=4096 --schedule=warmup`: the project's defining command.

The program is lbbench.cli.train (also installed as `lbbench`); this module only keeps the
documented `python -m lbbench.main` working.
"""

import sys

from lbbench.runs import signals

signals.install()  # before the imports below (jax takes seconds): a Ctrl-C then is no traceback

from lbbench.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv))
