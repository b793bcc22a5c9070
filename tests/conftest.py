"""Tests run on the CPU backend; multi-device tests start their own processes (see _multidevice.py)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
