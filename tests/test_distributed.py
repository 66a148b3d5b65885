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


def test_two_process_pretraining_keeps_student_teacher_and_center_identical(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not found")
    with socket.socket() as probe:  # a free port: torchrun's --master_port 0 can hang waiting for rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    command = [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port), str(SCRIPT), str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp_path / "ranks.json").read_text())
    assert result["world_size"] == 2 and result["wrapped"] == "DistributedDataParallel"
    assert result["global_step"] == 3
    first, second = result["ranks"]
    for key in ("student", "teacher", "center"):
        assert first[key] == second[key], (key, first, second)
    assert result["center_norm"] > 0
    assert {"distillation_loss", "amplitude_loss", "phase_loss"} <= set(result["logged"][-1])
    # Rank 0 alone wrote the exported encoder and the curves.
    assert (tmp_path / "encoder" / "model.safetensors").is_file() and (tmp_path / "loss_curves.png").is_file()
