"""Signal quality of every window of one recording (what `qualityfm quality` prints)."""

from __future__ import annotations

import warnings

from .segmenting import SAMPLING_RATE

TARGET_RATE = SAMPLING_RATE  # 300 Hz, the rate the scores (and QualityFM) are defined at


def _to_target_rate(signal, rate: float):
    """The pair builder's resampler, so `qualityfm quality` scores the same samples as `qualityfm build-pairs`.

    An all-missing channel stays NaN, so scoring treats it as absent rather than flat.
    """
    import numpy as np

    from .segmenting import resample_channel

    values, missing = resample_channel(signal, rate, TARGET_RATE)
    if missing.all():
        values[:] = np.nan
    return values


def score_record(path: str, window_seconds: float, num_workers: int | None, ecg_method: str) -> dict:
    """Read `path`, cut it into consecutive windows at 300 Hz and score each (ECG rrSQI, PPG SQI, their mean and
    class); returns a JSON-ready dict. Every window is scored, none rejected (the pair builder rejects).

    Raises:
        `FileNotFoundError`: no such record. `ValueError`: unreadable, or no PPG or ECG channel.
    """
    import numpy as np

    from ..modeling.feature_extraction_qualityfm import QualityFMWarning
    from ..quality import score_windows
    from .io import find_channel, read_recording

    try:
        recording = read_recording(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: no such record ({err})") from err
    ppg_name, ecg_name = find_channel(recording, "PPG"), find_channel(recording, "ECG")
    if ppg_name is None and ecg_name is None:
        raise ValueError(f"{path}: no PPG or ECG channel among {recording.channels}; nothing to score.")
    channels = [
        _to_target_rate(recording.signals[name], recording.sampling_rates[name]) if name else None
        for name in (ppg_name, ecg_name)
    ]
    length = round(window_seconds * TARGET_RATE)
    n = min(len(c) for c in channels if c is not None) // length
    notes = []
    if ecg_name is not None and find_channel(recording, "ECG_II") is None:
        notes.append(f"no lead II; ECG scored on {ecg_name}")
    result = {"record": path, "ppg_channel": ppg_name, "ecg_channel": ecg_name, "windows": [], "notes": notes}
    if n == 0:
        notes.append(f"shorter than one {window_seconds:g}-s window; nothing scored")
        return result
    windows = np.full((n, 2, length), np.nan)
    for i, channel in enumerate(channels):
        if channel is not None:
            windows[:, i] = channel[: n * length].reshape(n, length)
    mask = np.array([ppg_name is not None, ecg_name is not None])
    # The scorer's notices (gaps bridged, a PPG mean below 0) become this record's notes, printed under its name,
    # rather than Python warnings, one per record, that do not say which record.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QualityFMWarning)
        scores = score_windows(windows, TARGET_RATE, channel_mask=mask, num_workers=num_workers,
                               ecg_method=ecg_method)
    for warning in caught:
        if issubclass(warning.category, QualityFMWarning):
            notes.append(str(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)

    def number(x):
        return None if np.isnan(x) else round(float(x), 4)

    for i in range(n):
        result["windows"].append({
            "start_s": i * window_seconds, "ecg": number(scores.ecg[i]), "ppg": number(scores.ppg[i]),
            "combined": number(scores.combined[i]), "class": scores.classes[i], "note": scores.notes[i],
        })
    return result


__all__ = ["TARGET_RATE", "score_record"]
