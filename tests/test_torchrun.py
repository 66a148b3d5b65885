"""`qualityfm finetune` under torchrun (2 CPU ranks, gloo): only rank 0 writes the outputs (issue 11).

Both ranks share one output folder, so a second writer leaves no second copy to find afterwards: each rank runs
the CLI behind a `sys.addaudithook` that logs the files it opens for writing (and removes, renames, creates)
under the output folder. model.safetensors is written from Rust and escapes the hook; it is checked by parsing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from process_helpers import run_in_own_session

torch = pytest.importorskip("torch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

# Two torchrun launches of 2 ranks each (about 40 s of CPU): run by CI with the slow tests (.ci/run). The fast
# suite keeps the single-process check that a rank other than 0 writes nothing
# (test_finetune_cli.py::test_only_the_main_process_writes_the_fine_tuned_outputs).
pytestmark = pytest.mark.slow

BUNDLED_VT = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"
RECORDS = sorted(p.stem for p in BUNDLED_VT.glob("*.hea"))
# The smallest run the CLI allows that still writes every output: 2 folds, 1 step each, then the final model.
FAST = ["--no-progress", "--n-bootstrap", "10", "--max_steps", "1", "--per_device_train_batch_size", "4",
        "--logging_steps", "1"]
FINAL_FILES = {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "metrics.json"}

# Run by torchrun on every rank: the `qualityfm` CLI (qualityfm_cli.main, what the console script calls) with an
# audit hook logging this rank's file-system writes under the output folder to AUDIT.rank<RANK>.json.
LAUNCHER = r'''
import json, os, sys

audit, watched = sys.argv[1], os.path.realpath(sys.argv[2])
events = []


def inside(path):
    if not isinstance(path, (str, bytes, os.PathLike)):
        return None
    path = os.path.realpath(os.fsdecode(path))
    return path if path == watched or path.startswith(watched + os.sep) else None


def hook(event, args):
    if event == "open":
        path, mode, flags = (list(args) + [None, None])[:3]
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
            (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writing and inside(path):
            events.append(["write", inside(path)])
    elif event in ("os.rename", "os.replace", "os.remove", "os.unlink", "os.rmdir", "os.mkdir", "shutil.rmtree",
                   "shutil.move", "shutil.copyfile"):
        for path in args[:2]:
            if inside(path):
                events.append([event, inside(path)])


sys.addaudithook(hook)
import qualityfm_cli  # noqa: E402

try:
    code = qualityfm_cli.main(sys.argv[3:])
finally:
    with open(f"{audit}.rank{os.environ['RANK']}.json", "w") as f:
        json.dump(events, f)
sys.exit(code)
'''


def run_finetune_under_torchrun(tmp_path: Path, backbone: Path, *options: str, timeout: float = 300) -> dict:
    """`python -m torch.distributed.run --nproc_per_node 2 --standalone` on `qualityfm finetune`; each rank's
    stdout, stderr and audited writes, and the output folder."""
    launcher, output, logs = tmp_path / "launcher.py", tmp_path / "out", tmp_path / "logs"
    launcher.write_text(LAUNCHER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
               "--log-dir", str(logs), "--redirects", "3",  # each rank's stdout and stderr in its own file
               str(launcher), str(tmp_path / "audit"), str(output),
               "finetune", "--task", "vt-false-alarm", "--data", str(BUNDLED_VT), "--model", str(backbone),
               "--output", str(output), *FAST, *options]
    returncode, stderr, timed_out = run_in_own_session(command, env=env, timeout=timeout, cwd=tmp_path)
    if timed_out:
        pytest.fail(f"torchrun finetune did not finish in {timeout} s:\n{stderr[-4000:]}")
    ranks = {}
    for rank in (0, 1):
        folder = next(logs.glob(f"*/attempt_0/{rank}"), tmp_path / "no-log")
        audit = tmp_path / f"audit.rank{rank}.json"
        ranks[rank] = {
            "stdout": (folder / "stdout.log").read_text() if (folder / "stdout.log").is_file() else "",
            "stderr": (folder / "stderr.log").read_text() if (folder / "stderr.log").is_file() else "",
            "events": [(event, str(Path(path).relative_to(output.resolve()))) for event, path in
                       json.loads(audit.read_text())] if audit.is_file() else None,
        }
    if returncode != 0:
        pytest.fail(f"torchrun exited {returncode}\n{stderr[-3000:]}\n--- rank 0\n"
                    f"{ranks[0]['stderr'][-3000:]}\n--- rank 1\n{ranks[1]['stderr'][-3000:]}")
    return {"ranks": ranks, "output": output}


def written(events) -> list[str]:
    return [path for event, path in events if event == "write"]


@pytest.fixture(scope="module")
def ddp_cv(backbone, tmp_path_factory):
    """A 2-fold cross-validation then the final model, as one DDP job over two CPU ranks (`--use_cpu true` makes
    accelerate set up gloo DDP; see `test_without_use_cpu_...` for what happens without it)."""
    return run_finetune_under_torchrun(tmp_path_factory.mktemp("torchrun_cv"), backbone,
                                       "--cv", "2", "--no-baselines", "--use_cpu", "true")


def test_both_ranks_train_as_one_job_and_exit_zero(ddp_cv):
    first, second = ddp_cv["ranks"][0], ddp_cv["ranks"][1]
    assert first["events"] is not None and second["events"] is not None  # both ranks reached the end of the CLI
    # Trainer logs on the main process only: rank 0 logged its steps, rank 1 (a DDP worker, not a second job) not.
    assert "[qualityfm] step 1:" in first["stderr"] and "[qualityfm] step" not in second["stderr"]


def test_only_rank_0_writes_and_each_output_is_there_once_and_parses(ddp_cv):
    from huggingface_hub import ModelCard
    from safetensors import safe_open

    output, (first, second) = ddp_cv["output"], (ddp_cv["ranks"][0]["events"], ddp_cv["ranks"][1]["events"])
    # Rank 1 writes, renames and removes nothing; it may only create (exist_ok) the Trainer's checkpoint folders.
    assert [(event, path) for event, path in second if not (event == "os.mkdir" and path.startswith("checkpoints"))] \
        == []
    final = {path for path in written(first) if "/" not in path}
    assert FINAL_FILES - {"model.safetensors"} | {"cv_predictions.json"} <= final
    # Outputs written once each (transformers copies the remote-code .py files twice, once with the config).
    for name in ("metrics.json", "cv_predictions.json", "README.md", "config.json", "preprocessor_config.json"):
        assert written(first).count(name) == 1, name
    names = {p.name for p in output.iterdir()}
    assert FINAL_FILES | {"cv_predictions.json"} <= names
    assert "checkpoints" not in names and not [n for n in names if n.endswith((".tmp", ".lock", ".part"))]
    assert names - FINAL_FILES - {"cv_predictions.json"} == {
        "attention_qualityfm.py", "configuration_qualityfm.py", "feature_extraction_qualityfm.py",
        "heads_qualityfm.py", "modeling_qualityfm.py", "rhythm_qualityfm.py",
    }
    for name in ("config.json", "preprocessor_config.json", "metrics.json"):
        json.loads((output / name).read_text())
    with safe_open(str(output / "model.safetensors"), "pt") as weights:
        assert len(list(weights.keys())) > 10
    assert ModelCard.load(output / "README.md").data.library_name == "transformers"
    predictions = json.loads((output / "cv_predictions.json").read_text())
    # One out-of-fold row per record (not one per rank), each record in exactly one fold.
    assert sorted(p["record"] for p in predictions) == RECORDS
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["cross_validation"]["records"] == len(RECORDS) and metrics["cross_validation"]["folds"] == 2
    assert metrics["train"]["global_step"] == 1


def test_rank_1_does_not_print_the_result(ddp_cv):
    first, second = ddp_cv["ranks"][0]["stdout"], ddp_cv["ranks"][1]["stdout"]
    assert "2-fold cross-validation by record" in first and "cv_predictions.json" in first
    assert "cross-validation" not in second and "cv_predictions.json" not in second


# On a CPU-only host accelerate reports a launch without `use_cpu` as not distributed (process_index 0 on every rank,
# each rank training on all the data and writing the outputs); `utils.distributed.cpu_launch_defaults` sets it.
def test_without_use_cpu_only_rank_0_writes(backbone, tmp_path):
    run = run_finetune_under_torchrun(tmp_path, backbone, "--cv", "0")
    assert written(run["ranks"][0]["events"])  # rank 0 wrote the outputs
    assert written(run["ranks"][1]["events"]) == []
