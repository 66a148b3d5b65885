"""Let torch's idle OpenMP threads sleep instead of spinning, so a run on cores that other jobs share slows down in
proportion to the load instead of several-fold.

By default the OpenMP runtime of torch's CPU build keeps a finished worker thread spinning for a while, waiting for
the next parallel region. On a machine whose cores are busy with other jobs, above all another torch job whose
threads spin too, the spinning threads compete with the thread that has work: on a 2-core AMD EPYC beside one such
job, a fine-tuning step of the base VT head took 0.3-2.8 s with the default and 0.13-0.15 s with
`OMP_WAIT_POLICY=PASSIVE`, which costs nothing measurable on quiet cores (benchmarks/bench_busy_cores.py,
benchmarks/BUSY_CORES.md). The runtime reads the variable once, when torch loads, so the `qualityfm` command
sets it before importing torch; from Python, set it in the environment before `import torch`.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


def sleep_idle_threads() -> bool:
    """Set `OMP_WAIT_POLICY=PASSIVE` unless the user chose a policy. Returns True when the setting takes effect
    (torch not loaded yet and no policy given), False when it cannot or was not wanted."""
    if WAIT_POLICY_ENV in os.environ or "torch" in sys.modules:
        return False
    os.environ[WAIT_POLICY_ENV] = "PASSIVE"
    return True


__all__ = ["WAIT_POLICY_ENV", "sleep_idle_threads"]
