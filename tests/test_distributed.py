"""Two-process data-parallel pretraining on CPU (torchrun, gloo): ranks must end with identical weights."""

import json
import os
import shutil
import socket
import sys
import warnings
from pathlib import Path

import pytest
from process_helpers import run_in_own_session

# Two torchrun launches of 2 ranks each (about 40 s of CPU): run by CI with the slow tests (.ci/run).
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent / "dist_pretrain_script.py"


def run_two_processes(tmp_path, recipe: str) -> dict:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not found")
    with socket.socket() as probe:  # a free port: torchrun's --master_port 0 can hang waiting for rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    command = [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port), str(SCRIPT),
               str(tmp_path), recipe]
    result = tmp_path / "ranks.json"
    returncode, stderr, timed_out = run_in_own_session(command, env=env, timeout=300)
    if timed_out:
        # Seen about once in ten CI runs on 2 cores: both ranks trained and rank 0 wrote ranks.json after gathering
        # every rank's weights, then gloo hung in the script's closing barrier. What this test checks (the ranks'
        # weights) is complete by then; a hang before the gather still fails below.
        if not result.is_file():
            pytest.fail(f"two-process pretraining hung before the ranks reported:\n{stderr[-4000:]}")
        warnings.warn("two-process pretraining reported its ranks but hung in process-group teardown; killed it.",
                      stacklevel=2)
    else:
        assert returncode == 0, stderr[-4000:]
    return json.loads(result.read_text())


def test_two_process_pretraining_keeps_student_teacher_and_center_identical(tmp_path):
    result = run_two_processes(tmp_path, "paper")
    assert result["world_size"] == 2 and result["wrapped"] == "DistributedDataParallel"
    assert result["global_step"] == 3
    first, second = result["ranks"]
    for key in ("student", "teacher", "center"):
        assert first[key] == second[key], (key, first, second)
    assert result["center_norm"] > 0
    assert {"distillation_loss", "amplitude_loss", "phase_loss"} <= set(result["logged"][-1])
    # Rank 0 alone wrote the exported encoder and the curves.
    assert (tmp_path / "encoder" / "model.safetensors").is_file() and (tmp_path / "loss_curves.png").is_file()


def test_two_process_pretraining_with_the_default_recipe_keeps_ranks_identical(tmp_path):
    # No distillation term: the teacher is not run, every student parameter (band-power head included) still gets a
    # gradient, so DDP(find_unused_parameters=False) works and the ranks stay in step.
    result = run_two_processes(tmp_path, "default")
    assert result["world_size"] == 2 and result["global_step"] == 3
    first, second = result["ranks"]
    for key in ("student", "teacher", "band_power_head"):
        assert first[key] == second[key], (key, first, second)
    assert first["band_power_head"] != 0
    assert {"band_power_loss", "student_rank"} <= set(result["logged"][-1])
