"""qualityfm-hf: QualityFM, a PPG + ECG foundation model, as a first-class transformers 5 model.

`import qualityfm_hf` registers the config, models, heads and feature extractor with the transformers Auto classes.
"""

from .feature_extraction_qualityfm import QualityFMFeatureExtractor, QualityFMWarning
from .modeling.configuration_qualityfm import PRESETS, QualityFMConfig
from .modeling.modeling_qualityfm import (
    QualityFMForPretraining,
    QualityFMModel,
    QualityFMPreTrainedModel,
)
from .pretrained import pretrained_path
from .registration import register

register()

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "QualityFMConfig",
    "QualityFMFeatureExtractor",
    "QualityFMForPretraining",
    "QualityFMModel",
    "QualityFMPreTrainedModel",
    "QualityFMWarning",
    "pretrained_path",
    "register",
]
