"""Register QualityFM with the transformers Auto classes, both ways (transformers-v5 notes §2.1).

A. In-process: after `import qualityfm_hf`, `AutoConfig`/`AutoModel`/`AutoModelForSequenceClassification`/
   `AutoFeatureExtractor` know the "qualityfm" model type. `AutoModel` maps the config to a tuple of classes, so
   transformers picks the one named in the checkpoint's `architectures` (`_get_model_class`): a backbone checkpoint
   loads as `QualityFMModel`, a fine-tuned head checkpoint as its head.
B. Remote code: `register_for_auto_class` makes `save_pretrained` copy the flat `modeling/` files into the checkpoint
   and write `auto_map`, so a user without the package loads it with `trust_remote_code=True`.
"""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .modeling import configuration_qualityfm as configuration
from .modeling import modeling_qualityfm as modeling

_REGISTERED = False


def head_classes() -> tuple[type, ...]:
    """The fine-tuning heads, in `modeling/heads_qualityfm.py`."""
    from .modeling import heads_qualityfm

    return tuple(getattr(heads_qualityfm, name) for name in heads_qualityfm.__all__ if name.startswith("QualityFMFor"))


def register() -> None:
    """Idempotent: safe to call on every import."""
    global _REGISTERED
    if _REGISTERED:
        return
    from .modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor

    config_class = configuration.QualityFMConfig
    heads = head_classes()
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    # The first class of the tuple is the default when a checkpoint names no architecture.
    AutoModel.register(config_class, (modeling.QualityFMModel, modeling.QualityFMForPretraining) + heads, exist_ok=True)
    AutoModelForPreTraining.register(config_class, modeling.QualityFMForPretraining, exist_ok=True)
    if heads:
        AutoModelForSequenceClassification.register(config_class, heads, exist_ok=True)
    AutoFeatureExtractor.register(config_class, QualityFMFeatureExtractor, exist_ok=True)

    config_class.register_for_auto_class()
    modeling.QualityFMModel.register_for_auto_class("AutoModel")
    modeling.QualityFMForPretraining.register_for_auto_class("AutoModelForPreTraining")
    for head in heads:
        head.register_for_auto_class("AutoModelForSequenceClassification")
    QualityFMFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    from .pipelines import register_pipelines

    register_pipelines()  # "waveform-classification" and "waveform-feature-extraction"
    _REGISTERED = True
