"""qualityfm-hf: QualityFM, a PPG + ECG foundation model, as a first-class transformers 5 model.

`import qualityfm_hf` registers the config, models, heads and feature extractor with the transformers Auto classes.

The `qualityfm` command is the one exception: its launcher (`qualityfm_cli`) defers that import, which pulls in
torch and transformers (about 8 s), until a command has parsed its arguments, so `--help` and argument errors answer
at once. It then calls `load()`, which does what a plain import does.
"""

import sys

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "QualityFMConfig",
    "QualityFMFeatureExtractor",
    "QualityFMForPretraining",
    "QualityFMModel",
    "QualityFMPreTrainedModel",
    "QualityFMWarning",
    "add_model_inputs",
    "build_task_dataset",
    "load",
    "pretrained_path",
    "push_task_dataset",
    "register",
    "task_dataset_provenance",
]


def load() -> None:
    """Import the public API and register it with the Auto classes (idempotent)."""
    from .finetuning.task_datasets import (
        add_model_inputs,
        build_task_dataset,
        push_task_dataset,
        task_dataset_provenance,
    )
    from .modeling.configuration_qualityfm import PRESETS, QualityFMConfig
    from .modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor, QualityFMWarning
    from .modeling.modeling_qualityfm import QualityFMForPretraining, QualityFMModel, QualityFMPreTrainedModel
    from .pretrained import pretrained_path
    from .registration import register

    globals().update(
        PRESETS=PRESETS, QualityFMConfig=QualityFMConfig, QualityFMFeatureExtractor=QualityFMFeatureExtractor,
        QualityFMForPretraining=QualityFMForPretraining, QualityFMModel=QualityFMModel,
        QualityFMPreTrainedModel=QualityFMPreTrainedModel, QualityFMWarning=QualityFMWarning,
        pretrained_path=pretrained_path, register=register, add_model_inputs=add_model_inputs,
        build_task_dataset=build_task_dataset, push_task_dataset=push_task_dataset,
        task_dataset_provenance=task_dataset_provenance,
    )
    register()


def __getattr__(name: str):
    # Reached only while the CLI launcher defers the import (otherwise `load()` has set every public name).
    if name in __all__:
        load()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not getattr(sys.modules.get("qualityfm_cli"), "DEFER_PACKAGE_IMPORT", False):
    load()
