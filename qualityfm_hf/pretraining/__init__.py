"""Stage 3: self-distillation pretraining on the pairs (paper notes §2–§4.2), with the transformers Trainer.

`recipes` holds the two recipes and the TrainingArguments they start from, `collator` turns pair items into
augmented batches with the heads' targets, `callbacks` run the per-step schedules (EMA teacher, temperature, weight
decay), `trainer` is the Trainer and `pretrain()`, `checkpoints` finds what `--resume_from_checkpoint` means,
`monitors` are the collapse monitors logged beside the loss and `plots` draws them.
"""

from .checkpoints import resolve_resume_checkpoint
from .collator import PairCollator
from .recipes import RECIPES, Recipe, default_training_arguments, get_recipe
from .trainer import QualityFMDistillationTrainer, export_encoder, pretrain

__all__ = ["PairCollator", "QualityFMDistillationTrainer", "RECIPES", "Recipe", "default_training_arguments",
           "export_encoder", "get_recipe", "pretrain", "resolve_resume_checkpoint"]
