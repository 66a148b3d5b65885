"""Idle OpenMP threads sleep under the `qualityfm` command (OMP_WAIT_POLICY=PASSIVE), set before torch loads.

The probe imports the `qualityfm` launcher first, as the command does: it defers the package's torch import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("import os, qualityfm_cli; from qualityfm_hf.utils.threads import sleep_idle_threads; first = sleep_idle_threads(); "
         "import torch; print(first, os.environ.get('OMP_WAIT_POLICY'), sleep_idle_threads())")


@pytest.mark.parametrize("preset,expected", [(None, "True PASSIVE False"), ("ACTIVE", "False ACTIVE False")])
def test_sleep_idle_threads_sets_passive_before_torch_and_keeps_a_users_choice(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected.split()


def test_the_command_sets_it_before_loading_the_package(monkeypatch):
    import qualityfm_hf.utils.threads as threads
    from qualityfm_hf.cli.main import main

    calls = []
    monkeypatch.setattr(threads, "sleep_idle_threads", lambda: calls.append(True) or False)
    assert main(["env", "--json"]) == 0 and calls == [True]
