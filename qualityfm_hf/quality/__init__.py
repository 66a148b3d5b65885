"""Signal-quality scores for 30-s PPG + ECG windows, used to form the quality-divergent pretraining pairs.

Implements paper notes §2.1 (the pretraining code's rules): q = (q_ECG + q_PPG) / 2 with

- q_ECG: rrSQI, the fraction of beats whose RR interval is plausible (Ferrario's `rrSQI.m`), on R peaks from
  a maintained detector (sleepecg's compiled `detect_heartbeats` by default, or one of neurokit2's);
- q_PPG: a five-component handcrafted SQI, rescaled by clip((q - 0.5) / 0.3, 0, 1);

and five classes, Bad < Poor < Acceptable < Good < Excellent (`QUALITY_CLASSES`, index order = better).
Functions follow NeuroKit's shape, `(signal, sampling_rate, method=...)`. `score_windows` scores a batch
`(n, 2, time)` in [PPG, ECG_II] order: the PPG part is vectorised over cache-sized blocks of windows, the
R-peak detection runs per window, and windows are spread over forked worker processes (issue 5 target:
>= 500 windows/s per core; see benchmarks/bench_quality.py).

References:
    Ferrario M. et al., rrSQI (MATLAB, 2014), as ported in the QualityFM pretraining code.
    Makowski D. et al., "NeuroKit2: A Python toolbox for neurophysiological signal processing",
    Behavior Research Methods 53, 2021 (R-peak detectors).
    Hofer F., Brunner C., sleepecg (2022), `detect_heartbeats` (Pan-Tompkins variant, compiled).

The code is split along its parts: `common` (classes, thresholds, input checks), `ecg` (rrSQI), `ppg` (the PPG
SQI) and `batch` (`score_windows` over many windows and worker processes).
"""

from __future__ import annotations

from .batch import QualityScores, score_windows
from .common import (
    QUALITY_CLASSES,
    QUALITY_THRESHOLDS,
    UNSCORED,
    _interpolate_rows,  # noqa: F401  (benchmarks/bench_quality.py)
    quality_class,
    quality_class_index,
)
from .ecg import (  # noqa: F401  (tests and benchmarks)
    DEFAULT_ECG_METHOD,
    ECG_METHODS,
    _ecg_clean_batch,
    _ecg_quality_batch,
    _sleepecg_rows,
    ecg_quality,
    rr_sqi,
)
from .ppg import PPG_METHODS, _ppg_quality_batch, _welch_bands, ppg_quality  # noqa: F401  (tests and benchmarks)

__all__ = [
    "DEFAULT_ECG_METHOD",
    "ECG_METHODS",
    "QUALITY_CLASSES",
    "QUALITY_THRESHOLDS",
    "UNSCORED",
    "QualityScores",
    "ecg_quality",
    "ppg_quality",
    "quality_class",
    "quality_class_index",
    "rr_sqi",
    "score_windows",
]
