"""The feature extractor moved to `qualityfm_hf.modeling.feature_extraction_qualityfm` (it ships as Hub remote code
with the model files); this name still imports it."""

from .modeling.feature_extraction_qualityfm import *  # noqa: F403
from .modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor, QualityFMWarning  # noqa: F401
