"""Running torchrun (or any launcher that starts worker processes) from a test without leaking a hung rank."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def run_in_own_session(command: list[str], *, env: dict, timeout: float, cwd=None) -> tuple[int | None, str, bool]:
    """Run `command` in its own session; returns `(returncode, stderr, timed_out)`.

    On a timeout every descendant is killed: torchrun starts its workers in their own process groups, so killing
    the launcher's group alone would leave an orphaned rank holding the pipes, and `communicate()` would wait for
    ever. The return code is None after a timeout."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=timeout)
        return process.returncode, stderr, False
    except subprocess.TimeoutExpired:
        import psutil

        ranks = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signal.SIGKILL)
        for rank in ranks:
            with contextlib.suppress(psutil.NoSuchProcess):
                rank.kill()
        _, stderr = process.communicate(timeout=60)
        return None, stderr, True
