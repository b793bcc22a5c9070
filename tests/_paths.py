"""Paths the tests need: the repository root (subprocesses run there) and the committed fixtures."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
