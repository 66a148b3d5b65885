"""Two-process data-parallel pretraining on CPU (torchrun, gloo): ranks must end with identical weights."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

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
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((tmp_path / "ranks.json").read_text())


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
