"""Worker pools whose processes die with their parent (issue 10 item 9: `build-pairs --num-workers 2` killed with
SIGKILL left both workers alive, blocked on a pipe, indefinitely)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

PARENT = """
import sys, time
import qualityfm_cli  # noqa: F401  (as the CLI does: defers `import qualityfm_hf`'s torch import, ~8 s)
from qualityfm_hf.utils.processes import worker_pool

pool = worker_pool(2)
futures = [pool.submit(time.sleep, 600) for _ in range(2)]  # both workers busy, as while segmenting records
while len(pool._processes) < 2:
    time.sleep(0.05)
print(" ".join(str(pid) for pid in pool._processes), flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_pool_workers_die_when_their_parent_is_sigkilled():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        workers = [psutil.Process(int(pid)) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(w.ppid() == parent.pid for w in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=20)
        assert alive == [], f"workers {[w.pid for w in alive]} outlived their SIGKILLed parent"
    finally:
        for process in psutil.Process().children(recursive=True):
            process.kill()
        parent.kill()


def test_build_pairs_and_quality_scoring_use_the_pool_that_dies_with_its_parent():
    import inspect

    from qualityfm_hf.pairs import build as pairs
    from qualityfm_hf.quality import batch as quality

    for module in (pairs, quality):
        source = inspect.getsource(module)
        assert "worker_pool(" in source and "ProcessPoolExecutor(" not in source, module.__name__
