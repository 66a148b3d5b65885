"""Stage 4: fine-tuning on the clinical tasks (false VT alarm, AF, ABP) and evaluating the heads.

`task_data` is a task's windows as a table and through the feature extractor (shared by all below); `task_datasets`
the same windows as a `datasets.DatasetDict`; `train` fine-tunes on one record-level split (`finetune`);
`crossval` and `finetune_cv` cross-validate by record against the `baselines` (handcrafted features); `evaluation`
scores and plots held-out predictions; `probing` fits linear probes and k-NN on frozen embeddings.

The names below (`train`'s entry points) are importable from `qualityfm_hf.finetuning` as before the package was split.
"""

from .train import DEFAULT_TRAINING_ARGS, TASK_RECIPES, finetune, training_arguments

__all__ = ["DEFAULT_TRAINING_ARGS", "TASK_RECIPES", "finetune", "training_arguments"]
