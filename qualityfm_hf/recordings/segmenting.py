"""Cut one recording into scored 30-s [PPG, ECG_II] windows: the per-segment pipeline of pretraining.

Paper notes §4.1 (the pretraining code): non-overlapping 30-s windows with the tail dropped; a window is dropped
when a channel has more than 20% NaN or is constant; NaNs are interpolated linearly; the quality label (§2.1) is
computed on the raw window; the window is then min-max normalised to [-1, 1] jointly over both channels.

Two departures, both for ICU monitor data that the reference code never saw:
- every channel is resampled to 300 Hz with a polyphase filter (the reference FFT-resamples each 30-s window of
  MIMIC to 9,000 samples; VitalDB is read at 300 Hz directly);
- a recording without PPG, or without any ECG, keeps its windows with `channel_mask` 0 for the missing channel
  (the reference skips it); the quality score then comes from the other channel alone. Lead II is preferred; the
  first other ECG lead stands in for it, with a note.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..modeling.configuration_qualityfm import QualityFMConfig
from ..modeling.feature_extraction_qualityfm import resample_channel as _resample_channel
from ..quality import score_windows
from .io import Recording, find_channel

# The model's input contract, from its config: one owner for the channel order, the window and the rate.
CHANNELS = tuple(QualityFMConfig.channel_names)  # ("PPG", "ECG_II"), paper notes §1.1
WINDOW_SECONDS = float(QualityFMConfig.segment_seconds)  # 30 s
SAMPLING_RATE = int(QualityFMConfig.sampling_rate)  # 300 Hz
MAX_NAN_FRACTION = 0.2
# Reject reasons, in the order they are checked; a window counts once, under the first that applies.
REJECT_REASONS = ("ppg_nan", "ecg_nan", "ppg_flat", "ecg_flat")
# PhysioNet 2015: the alarm fires at t = 300 s; a real-time system may only use what came before it.
PHYSIONET2015_ALARM_SECONDS = 300.0
_PHYSIONET2015_COMMENTS = {"true alarm", "false alarm"}


@dataclass
class RecordWindows:
    """Kept windows of one recording, in time order, plus what happened to the rest.

    Args:
        record (`str`): Record name.
        status (`str`): `"ok"` (at least one window kept), `"no_windows"` (every window rejected or the usable
            span is shorter than one window) or `"skipped"` (nothing usable: see `skip_reason`).
        skip_reason (`str | None`): `"empty"`, `"no_ppg_or_ecg"`, `"all_nan"`, or `None`.
        input_values (`np.ndarray` of shape `(n, 2, T)`, float32): Windows in [PPG, ECG_II] order, min-max
            normalised to [-1, 1] jointly over the present channels; a missing channel is all zeros.
        channel_mask (`np.ndarray` of shape `(n, 2)`, int8): 1 where the channel was recorded.
        window_index (`np.ndarray` of shape `(n,)`, int64): Position of each kept window on the recording's
            30-s grid (rejected windows keep their positions), so `start_seconds = offset + 30 * window_index`.
        start_seconds (`np.ndarray` of shape `(n,)`, float64): Window start in seconds from the recording start.
        ecg_quality, ppg_quality, quality (`np.ndarray` of shape `(n,)`, float64): rrSQI, PPG SQI (NaN where the
            channel is missing) and their mean, all in [0, 1].
        quality_class (`np.ndarray` of shape `(n,)`, int8): Index into `QUALITY_CLASSES` (0 Bad ... 4 Excellent).
        num_windows (`int`): Windows on the grid, kept and rejected.
        rejects (`Counter`): Rejected windows by reason (`REJECT_REASONS`).
        channels (`dict[str, str | None]`): Model channel -> channel name used in the file.
        notes (`list[str]`): Fallbacks taken (ECG lead used instead of II, channel missing).
    """

    record: str
    status: str = "ok"
    skip_reason: str | None = None
    input_values: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 0), np.float32))
    channel_mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int8))
    window_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    start_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ecg_quality: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ppg_quality: np.ndarray = field(default_factory=lambda: np.zeros(0))
    quality: np.ndarray = field(default_factory=lambda: np.zeros(0))
    quality_class: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    num_windows: int = 0
    rejects: Counter = field(default_factory=Counter)
    channels: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.quality)


def is_physionet2015(recording: Recording) -> bool:
    """True for a PhysioNet 2015 alarm record (header comments `True alarm` / `False alarm`)."""
    return any(c.strip().lower() in _PHYSIONET2015_COMMENTS for c in recording.comments)


def resample_channel(signal: np.ndarray, rate: float, target: float = SAMPLING_RATE) -> tuple[np.ndarray, np.ndarray]:
    """`modeling.feature_extraction_qualityfm.resample_channel` at 300 Hz by default: the pair builder resamples
    exactly as the feature extractor does."""
    return _resample_channel(signal, rate, target)


def _pick_channels(recording: Recording) -> tuple[dict[str, str | None], list[str]]:
    notes = []
    ppg = find_channel(recording, "PPG")
    ecg = find_channel(recording, "ECG_II")
    if ecg is None:
        ecg = find_channel(recording, "ECG")
        if ecg is not None:
            notes.append(f"no lead II: used ECG lead {ecg!r} instead")
    if ppg is None and ecg is not None:
        notes.append("no PPG channel: kept with channel_mask 0, scored from ECG alone")
    if ecg is None and ppg is not None:
        notes.append("no ECG channel: kept with channel_mask 0, scored from PPG alone")
    return {"PPG": ppg, "ECG_II": ecg}, notes


def segment_recording(
    recording: Recording,
    time_range: tuple[float, float | None] | None = None,
    window_seconds: float = WINDOW_SECONDS,
    sampling_rate: int = SAMPLING_RATE,
    max_nan_fraction: float = MAX_NAN_FRACTION,
    num_workers: int | None = 1,
) -> RecordWindows:
    """Kept, scored and normalised windows of one recording (paper notes §4.1, §2.1).

    Args:
        recording (`Recording`): From `qualityfm_hf.recordings.io.read_recording`.
        time_range (`tuple[float, float | None]`, *optional*): `[start, end)` in seconds from the recording
            start; `end=None` runs to the end. PhysioNet 2015 uses `(0, 300)`: only the 5 min before the alarm.
        window_seconds (`float`, defaults to 30): Window length in seconds; windows do not overlap; the tail
            shorter than a window is dropped.
        sampling_rate (`int`, defaults to 300): Rate every channel is resampled to, in Hz.
        max_nan_fraction (`float`, defaults to 0.2): A window is rejected when more than this fraction of a
            present channel is NaN/inf (counted at `sampling_rate`, before interpolation).
        num_workers (`int | None`, defaults to 1): Processes for `score_windows`; 1 scores in this process
            (the builder parallelises over records instead).

    Returns:
        `RecordWindows`: `input_values` `(n, 2, window_seconds * sampling_rate)` float32 in [-1, 1].
    """
    out = RecordWindows(recording.name)
    channels, out.notes = _pick_channels(recording)
    out.channels = channels
    if all(name is None for name in channels.values()):
        out.status, out.skip_reason = "skipped", "no_ppg_or_ecg"
        out.notes.append(f"no PPG or ECG among channels {recording.channels}")
        return out
    start = 0.0 if time_range is None else float(time_range[0])
    end = None if time_range is None else time_range[1]

    values, missing, sources = {}, {}, {}
    for kind, name in channels.items():
        if name is None:
            continue
        rate = recording.sampling_rates[name]
        first = int(round(start * rate))
        last = None if end is None else int(round(float(end) * rate))
        signal = np.asarray(recording.signals[name], dtype=np.float64)[first:last]
        if signal.size == 0:
            continue
        if not np.isfinite(signal).any():
            out.notes.append(f"{kind} channel {name!r} is all NaN: treated as missing")
            continue
        values[kind], missing[kind] = resample_channel(signal, rate, sampling_rate)
        sources[kind] = (signal, rate)
    if not values:
        empty = all(np.asarray(recording.signals[n]).size == 0 for n in channels.values() if n is not None)
        out.status, out.skip_reason = "skipped", "empty" if empty else "all_nan"
        return out

    size = int(round(window_seconds * sampling_rate))
    length = min(v.size for v in values.values())
    out.num_windows = length // size
    if out.num_windows == 0:
        out.notes.append(f"shorter than one window: {length / sampling_rate:.1f} s < {window_seconds:g} s")
    present = np.array([kind in values for kind in CHANNELS])
    kept, raw = [], []
    for w in range(out.num_windows):
        window = np.zeros((2, size))
        reasons = set()
        for row, kind in enumerate(CHANNELS):
            if kind not in values:
                continue
            gone = missing[kind][w * size:(w + 1) * size]
            if gone.mean() > max_nan_fraction:
                reasons.add("ppg_nan" if kind == "PPG" else "ecg_nan")
                continue
            # Gaps were bridged over the whole channel before resampling, as the feature extractor bridges them, so a
            # pretraining window holds exactly the values fine-tuning and inference see for the same segment.
            data = values[kind][w * size:(w + 1) * size]
            # Flatness is judged on the source samples: the resampling filter rings at the edges of a flat run.
            source, rate = sources[kind]
            span = source[int(round(w * window_seconds * rate)):int(round((w + 1) * window_seconds * rate))]
            real = span[np.isfinite(span)]
            if np.ptp(real) <= 1e-9 * max(1.0, np.abs(real).max()):
                reasons.add("ppg_flat" if kind == "PPG" else "ecg_flat")
            window[row] = data
        if not reasons:
            kept.append(w)
            raw.append(window)
        else:
            # A window counts once, under the first reason in REJECT_REASONS order (NaN before flatness).
            out.rejects[next(r for r in REJECT_REASONS if r in reasons)] += 1
    if not kept:
        out.status = "no_windows"
        return out

    raw = np.stack(raw)  # (n, 2, T), physical units: the PPG SQI needs the raw DC level
    mask = np.broadcast_to(present, (len(kept), 2))
    scores = score_windows(raw, sampling_rate=sampling_rate, channel_mask=mask, num_workers=num_workers)
    out.input_values = _minmax_joint(raw, present).astype(np.float32)
    out.channel_mask = mask.astype(np.int8)
    out.window_index = np.asarray(kept, dtype=np.int64)
    out.start_seconds = start + out.window_index * window_seconds
    out.ecg_quality, out.ppg_quality, out.quality = scores.ecg, scores.ppg, scores.combined
    out.quality_class = scores.class_index.astype(np.int8)
    return out


def _minmax_joint(windows: np.ndarray, present: np.ndarray) -> np.ndarray:
    """[-1, 1] with one min and max per window over the present channels; missing channels stay 0."""
    out = np.zeros_like(windows)
    rows = np.flatnonzero(present)
    data = windows[:, rows]  # (n, present, T)
    low = data.min(axis=(1, 2), keepdims=True)
    high = data.max(axis=(1, 2), keepdims=True)
    out[:, rows] = 2.0 * (data - low) / (high - low) - 1.0  # high > low: flat channels were rejected
    return out


__all__ = [
    "CHANNELS",
    "WINDOW_SECONDS",
    "SAMPLING_RATE",
    "MAX_NAN_FRACTION",
    "REJECT_REASONS",
    "PHYSIONET2015_ALARM_SECONDS",
    "RecordWindows",
    "is_physionet2015",
    "resample_channel",
    "segment_recording",
]
