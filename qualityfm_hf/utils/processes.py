"""Worker processes that die with their parent.

A `ProcessPoolExecutor` worker forked on Linux inherits both ends of the pool's pipes, so when the parent is killed
(SIGKILL, the OOM killer) it never sees end-of-file and waits on the pipe for ever, holding its memory (about 430 MB
per build-pairs worker). `worker_pool` starts workers that ask the kernel to kill them when their parent dies.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: SIGKILL this process when its parent dies (Linux; elsewhere nothing is done)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def worker_pool(workers: int, start_method: str | None = "fork"):
    """A `ProcessPoolExecutor` of `workers` processes that die with this one; `start_method` "fork" where the
    platform has it (workers then inherit what the parent imported), else the platform's default."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = start_method if start_method in multiprocessing.get_all_start_methods() else None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                               initializer=die_with_parent, initargs=(os.getpid(),))


__all__ = ["die_with_parent", "worker_pool"]
