"""Multi-host start-up that ends with one clear line instead of a 5-minute hang and a C++ abort.

`jax.distributed.initialize` blocks until every process has registered with the coordinator and,
when that fails, aborts the process from C++ (a Check-failure stack, exit 134) after its
`initialization_timeout`. We pass JAX a slightly longer timeout and run a watchdog thread on
ours (--coordinator_timeout_s): when it fires, it prints what to check and exits with status 2.
"""

from __future__ import annotations

import os
import sys
import threading

import jax

EXIT_BAD_INPUT = 2
JAX_MARGIN_S = 30


def initialize(coordinator_address, num_processes, process_id, timeout_s: float, init=None) -> None:
    """jax.distributed.initialize(...), or exit 2 with a message after `timeout_s` seconds."""
    if init is None:
        init = jax.distributed.initialize
    done = threading.Event()

    def watchdog():
        if done.wait(timeout_s):
            return
        where = f"the coordinator {coordinator_address}" if coordinator_address else "the cluster's coordinator"
        print(
            f"lbbench: error: --coordinator_address: could not start multi-host training within "
            f"{timeout_s:g} s (--coordinator_timeout_s): {where} was not reachable, or not all "
            f"{num_processes or 'the'} processes joined. Check the address and port, that process 0 is "
            "running, and that every process got the same --num_processes.",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        os._exit(EXIT_BAD_INPUT)  # the JAX client thread is blocked in C++; nothing else can stop it

    threading.Thread(target=watchdog, name="lbbench-coordinator-watchdog", daemon=True).start()
    kwargs = {"initialization_timeout": int(timeout_s) + JAX_MARGIN_S}
    if coordinator_address:
        kwargs.update(coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id)
    try:
        init(**kwargs)
    finally:
        done.set()
