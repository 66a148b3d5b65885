"""Pair items -> training batches: stacking, the paper's augmentations, the student's crop and the heads' targets.

Everything random is seeded by (seed, epoch, the pair's bytes), so a pair gets the same augmentation in the same epoch
whatever the workers, ranks or resumption (see `PairCollator`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..modeling.configuration_qualityfm import QualityFMConfig
from ..modeling.rhythm_qualityfm import scale_rhythm
from ..quality.ecg import sleepecg_rhythm_statistics

PAIR_KEYS = ("teacher_input_values", "student_input_values")
MASK_KEYS = ("teacher_channel_mask", "student_channel_mask")
SCORE_KEY = "student_quality_scores"  # the quality head's target; the teacher's scores matter for same-window items
RHYTHM_KEY = "student_rhythm_features"  # the rhythm head's target, computed by the collator


class PairCollator:
    """Stack pair items into a batch and augment each window independently (§2, augmentation table).

    Per window, in order: Gaussian noise (p 0.5, σ 0.01); amplitude scaling (p 0.5, ×U(0.9, 1.1)); per-channel DC shift
    (p 0.3, U(−0.1, 0.1)); one contiguous zero span over both channels (p 0.3, length U[T/20, T/10)).

    The random draws are seeded by (`seed`, epoch, the pair's bytes), not by a call counter: the Trainer skips the
    batches of a resumed epoch without collating them and prefetches ahead, and workers hold copies, so a counter would
    drift. This way a pair gets the same augmentation in the same epoch whatever the workers, ranks or resumption.
    The epoch comes from `set_epoch`, which `QualityFMDistillationTrainer` calls at each epoch start.

    With `same_window_fraction` > 0 (beyond the paper), that fraction of items, drawn from the same seeded generator,
    gives the student the teacher's window (and channel mask) instead of the worse one; the two views then differ only
    by their independent augmentations, as in DINO.

    When every item carries `teacher_quality_scores` and `student_quality_scores` (as `load_pairs` items do), the
    batch holds `student_quality_scores`, the quality head's target: the scores of the window the student sees (the
    teacher's for a same-window item; a crop keeps its whole window's scores).

    With `student_crop_min_samples` > 0 (beyond the paper), the student sees a random contiguous crop of its window
    (length uniform from that minimum to the whole window), min-max normalised again over its present channels as the
    feature extractor would, placed at the start and right-padded with zeros; the batch then holds a
    `student_attention_mask`. Downstream windows are often shorter than 30 s (10 s before a VT alarm), so the pooled
    embedding must mean the same at any length; the targets stay those of the teacher's whole window.

    Args:
        augment (`bool`, defaults to True): False only stacks (evaluation).
        seed (`int`, defaults to 0)
        same_window_fraction (`float`, defaults to 0.0): see above; `pretrain` passes `config.same_window_fraction`.
        student_crop_min_samples (`int`, defaults to 0): see above; `pretrain` passes
            `config.student_crop_min_seconds × config.sampling_rate`. 0 turns cropping off.
    """

    def __init__(self, augment: bool = True, seed: int = 0, same_window_fraction: float = 0.0,
                 student_crop_min_samples: int = 0, rhythm_features: bool = False, sampling_rate: float = 300.0):
        self.rhythm_features = bool(rhythm_features)
        self.sampling_rate = float(sampling_rate)
        self._rhythm_cache: dict[int, np.ndarray] = {}
        self.augment = augment
        self.seed = int(seed)
        self.same_window_fraction = float(same_window_fraction)
        self.student_crop_min_samples = int(student_crop_min_samples)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __call__(self, features: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("PairCollator got an empty batch.")
        batch: dict[str, list[np.ndarray]] = {key: [] for key in PAIR_KEYS}
        masks = [key for key in MASK_KEYS if all(feature.get(key) is not None for feature in features)]
        with_scores = all(feature.get(key) is not None for feature in features
                          for key in ("teacher_quality_scores", SCORE_KEY))
        for feature in features:
            missing = [key for key in PAIR_KEYS if key not in feature]
            if missing:
                raise ValueError(
                    f"a pair item must hold {list(PAIR_KEYS)} (each (2, 9000) float32); this one lacks {missing} "
                    f"and has {sorted(feature)}. Load pairs with qualityfm_hf.pairs.load_pairs."
                )
            windows = [np.asarray(_to_numpy(feature[key]), dtype=np.float32) for key in PAIR_KEYS]
            mask_values = {key: np.asarray(_to_numpy(feature[key]), dtype=np.float32) for key in masks}
            scores = None
            if with_scores:
                scores = np.asarray(_to_numpy(feature[SCORE_KEY]), dtype=np.float32)
            rng = np.random.default_rng([self.seed, self.epoch, _fingerprint(windows)])
            if self.same_window_fraction > 0 and rng.random() < self.same_window_fraction:
                windows[1] = windows[0]
                if masks:
                    mask_values[MASK_KEYS[1]] = mask_values[MASK_KEYS[0]]
                if with_scores:
                    scores = np.asarray(_to_numpy(feature["teacher_quality_scores"]), dtype=np.float32)
            if self.rhythm_features:
                batch.setdefault(RHYTHM_KEY, []).append(self._rhythm(windows[1], mask_values.get(MASK_KEYS[1])))
            if self.augment:
                windows = [augment_window(window, rng) for window in windows]
            if self.student_crop_min_samples > 0:
                present = mask_values.get(MASK_KEYS[1])
                windows[1], length = crop_window(windows[1], self.student_crop_min_samples, rng, present)
                batch.setdefault("student_attention_mask", []).append(np.arange(windows[1].shape[1]) < length)
            for key, window in zip(PAIR_KEYS, windows):
                batch[key].append(window)
            for key in masks:
                batch.setdefault(key, []).append(mask_values[key])
            if with_scores:
                batch.setdefault(SCORE_KEY, []).append(scores)
        return {key: torch.from_numpy(np.stack(values)) for key, values in batch.items()}

    def _rhythm(self, window: np.ndarray, channel_mask: np.ndarray | None) -> np.ndarray:
        # A deterministic function of the window: computed once per window (about 3 ms), then cached.
        key = _fingerprint([window])
        if key not in self._rhythm_cache:
            self._rhythm_cache[key] = rhythm_targets(window, channel_mask, self.sampling_rate)
        return self._rhythm_cache[key]


def rhythm_targets(window: np.ndarray, channel_mask: np.ndarray | None, sampling_rate: float) -> np.ndarray:
    """The rhythm head's target for one `(2, T)` [PPG, ECG_II] window: the AF baseline's R-peak statistics
    (`quality.ecg.sleepecg_rhythm_statistics`) of its ECG, standardised and clipped by `rhythm_qualityfm.scale_rhythm`;
    float32 `(8,)`, NaN where a statistic is undefined (fewer than 4 beats, no ECG)."""
    present = channel_mask is None or int(np.asarray(channel_mask)[1])
    ecg = np.asarray(window, dtype=np.float64)[1] if present else None
    return scale_rhythm(sleepecg_rhythm_statistics(ecg, float(sampling_rate))).astype(np.float32)


def crop_window(window: np.ndarray, min_samples: int, rng: np.random.Generator,
                channel_mask: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """A random contiguous crop of `window` (C, T), length uniform in [min_samples, T], jointly min-max normalised to
    [-1, 1] over the present channels, at the start of a zero (C, T) array; returns it and the crop length."""
    channels, time = window.shape
    length = int(rng.integers(min(min_samples, time), time + 1))
    start = int(rng.integers(0, time - length + 1))
    crop = window[:, start:start + length]
    present = np.ones(channels, bool) if channel_mask is None else np.asarray(channel_mask) > 0
    out = np.zeros_like(window)
    if present.any():
        low, high = crop[present].min(), crop[present].max()
        scale = 2.0 / (high - low) if high > low else 0.0
        out[present, :length] = (crop[present] - low) * scale - (1.0 if scale else 0.0)
    return out, length


def _to_numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _fingerprint(windows: list[np.ndarray]) -> int:
    digest = hashlib.blake2b(digest_size=8)
    for window in windows:
        digest.update(np.ascontiguousarray(window).tobytes())
    return int.from_bytes(digest.digest(), "little")


def augment_window(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The paper's four augmentations on one `(channels, time)` window; returns a new float32 array."""
    window = window.copy()
    channels, time = window.shape
    if rng.random() < 0.5:
        window += rng.normal(0.0, 0.01, size=window.shape).astype(np.float32)
    if rng.random() < 0.5:
        window *= np.float32(rng.uniform(0.9, 1.1))
    if rng.random() < 0.3:
        window += rng.uniform(-0.1, 0.1, size=(channels, 1)).astype(np.float32)
    if rng.random() < 0.3:
        length = int(rng.integers(time // 20, time // 10))  # 450–899 samples at 9,000
        start = int(rng.integers(0, time - length + 1))
        window[:, start : start + length] = 0.0
    return window


def check_pair_item(item: Mapping, config: QualityFMConfig) -> None:
    """Validate one dataset item against the input contract, with expected / found / fix."""
    shape = (config.num_channels, config.segment_samples)
    for key in PAIR_KEYS:
        if key not in item:
            raise ValueError(
                f"pairs dataset items must hold {list(PAIR_KEYS)} of shape {shape}; the first item has "
                f"{sorted(item)}. Build pairs with `qualityfm_hf.pairs.build_pairs` and load them with `load_pairs`."
            )
        found = tuple(np.shape(_to_numpy(item[key])))
        if found != shape:
            raise ValueError(
                f"{key} must be {shape} = ({', '.join(config.channel_names)}) × {config.segment_seconds} s at "
                f"{config.sampling_rate} Hz; the first item has {found}. Cut windows with QualityFMFeatureExtractor."
            )



__all__ = ["PairCollator", "augment_window", "check_pair_item", "crop_window", "rhythm_targets"]
