"""Two-process pretraining smoke run for tests/test_distributed.py (`torchrun --nproc_per_node 2`, gloo on CPU).

Usage: torchrun --nproc_per_node 2 tests/dist_pretrain_script.py OUTPUT_DIR [RECIPE]

RECIPE "paper" (default) trains the small config as it is (the paper's token-level distillation); "default" applies
the default recipe's config (no distillation term, band-power head, student crops, modality dropout).

Trains a few steps of the small config on real v100s pairs through `qualityfm_hf.pretraining.pretrain`, then every rank
computes a float64 checksum of its student, teacher and centre; rank 0 writes them with the world size and the
rank-0 centre norm to OUTPUT_DIR/ranks.json. Identical checksums mean DDP kept the student in sync and the centre
all-reduce and EMA updates kept teacher and centre in sync.
"""

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pretrain_helpers import RealPairs, small_config

from qualityfm_hf.pretraining import RECIPES, default_training_arguments, pretrain


def checksums(model) -> dict[str, float]:
    def total(tensors):
        return sum(float(t.double().abs().sum() + t.double().sum()) for t in tensors)

    return {
        "student": total(p for module in model.student_modules() for p in module.parameters()),
        "band_power_head": total(model.band_power_head.parameters()) if model.band_power_head is not None else 0.0,
        "teacher": total(model.teacher.parameters()),
        "center": total([model.center]),
    }


def main(output_dir: str, recipe: str = "paper") -> None:
    # Started here, not by the Trainer, to bound every collective: a stuck one raises (naming itself) after 120 s
    # instead of waiting gloo's default 30 min. Accelerate reuses an initialised group.
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    args = default_training_arguments(
        output_dir, max_steps=3, per_device_train_batch_size=2, logging_steps=1, save_strategy="no", use_cpu=True,
        seed=0, disable_tqdm=True,
    )
    config = small_config() if recipe == "paper" else small_config(**RECIPES[recipe].config)
    trainer = pretrain(RealPairs(with_channel_mask=True), config, args, recipe=recipe)
    model = trainer.model
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, {"rank": dist.get_rank(), **checksums(model)})
    if dist.get_rank() == 0:
        logged = [entry for entry in trainer.state.log_history if "loss" in entry]
        result = {
            "world_size": dist.get_world_size(),
            "ranks": gathered,
            "center_norm": float(model.center.norm()),
            "global_step": trainer.state.global_step,
            "logged": logged,
            "wrapped": type(trainer.model_wrapped).__name__,
        }
        partial = Path(output_dir) / "ranks.json.partial"
        partial.write_text(json.dumps(result, indent=2))
        partial.replace(Path(output_dir) / "ranks.json")  # whole or absent: the test may read it after killing us
    # The gather above was the last collective and rank 0 has written its file. gloo's teardown (a closing barrier,
    # destroy_process_group, or its destructors at interpreter exit, which abort without them: transformers-v5 notes
    # §3.5) left rank 0 waiting on a futex about once in ten runs on 2 cores after rank 1 had exited. Leave without
    # it: flush and exit at once, on every rank.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:3])
