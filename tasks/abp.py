"""Arterial blood pressure estimation (paper notes §5.3): SBP and DBP (mmHg) per window from PPG + ECG.

Targets come from the invasive ABP channel of the same window: systolic = median of the beat-wise peaks, diastolic =
median of the beat-wise troughs (`scipy.signal.find_peaks`), which is steadier than the window max/min the reference
code used. Windows whose ABP is missing (> 20% NaN), flat (5-95th percentile spread < 10 mmHg, e.g. a disconnected
transducer), out of the physiological range (any sample > 300 mmHg, e.g. flush artefacts, or more than 1% of samples
< 20 mmHg, e.g. zeroing), or has too few beats are dropped and counted by reason.

Layouts:
- WFDB records with ECG, PLETH and ABP channels (PhysioNet 2015 alarm records, MIMIC);
- the UCI "Cuff-Less Blood Pressure Estimation" `.mat` files: a cell array (`p`, or the file's only variable) of
  3 × N matrices with rows [PPG, ABP, ECG] at 125 Hz. Each cell counts as one record for the split (the UCI release
  has no patient ids, so one patient may span several cells).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from scipy.signal import find_peaks

from .common import (
    DEFAULT_FRACTIONS,
    BuildReport,
    ChannelFinder,
    Reader,
    channel_on_grid,
    list_records,
    make_dataset,
    require_reader,
    window_starts,
)

NAME = "abp"
HEAD_CLASS = "QualityFMForABPRegression"
PROBLEM = "regression"
TARGET_NAMES = ("sbp", "dbp")
ID2LABEL = {0: "SBP (mmHg)", 1: "DBP (mmHg)"}
DEFAULT_WINDOW_SECONDS = 30.0
UCI_SAMPLING_RATE = 125.0
ABP_RANGE_MMHG = (20.0, 300.0)
MIN_PULSE_PRESSURE_MMHG = 10.0
MIN_HEART_RATE_BPM = 30.0
MAX_HEART_RATE_BPM = 200.0
MAX_NAN_FRACTION = 0.2
METRIC = "qualityfm_regression"
HEADLINE_METRICS = ("sbp_mae", "dbp_mae")
CARD = {
    "task_name": "arterial blood pressure estimation (SBP/DBP)",
    "task_tag": "blood-pressure-estimation",
    "input_description": "a synchronised PPG + ECG lead II window from an ICU bedside monitor",
    "task_description": "Estimate systolic and diastolic arterial pressure (mmHg) of a window from PPG + ECG. "
    "Targets are the median beat-wise peaks and troughs of the invasive ABP channel in the same window.",
    "output_description": "systolic and diastolic blood pressure in mmHg",
    "label_description": "two regression outputs [SBP, DBP] in mmHg",
    "dataset_name": "PhysioNet/Computing in Cardiology Challenge 2015 records with II, PLETH and ABP",
    "dataset_url": "https://physionet.org/content/challenge-2015/1.0.0/",
    "data_license": "Open Data Commons Attribution License v1.0 (ODC-By 1.0)",
    "data_citation": 'Clifford GD et al., "The PhysioNet/Computing in Cardiology Challenge 2015: Reducing False Arrhythmia Alarms in the ICU", Computing in Cardiology 2015; Goldberger AL et al., "PhysioBank, PhysioToolkit, and PhysioNet", Circulation 101(23), 2000.',
    "window_description": "non-overlapping 30-s windows; windows with missing, flat, out-of-range (> 300 or "
    "< 20 mmHg) ABP or too few beats are dropped and counted.",
    "limitations": "Few patients; cuff-less BP estimates are not validated to any clinical standard (check the AAMI "
    "and BHS rows above).",
}


def abp_targets(abp: np.ndarray, rate: float) -> tuple[float, float, str | None]:
    """`(sbp, dbp, None)` in mmHg from one window of ABP, or `(nan, nan, reason)` when the window is unusable."""
    missing = ~np.isfinite(abp)
    if missing.mean() > MAX_NAN_FRACTION:
        return np.nan, np.nan, "abp_missing"
    values = abp[~missing]
    low, high = ABP_RANGE_MMHG
    # Flat first: a disconnected or zeroing transducer reads a constant near 0 mmHg and is "flat", not "low".
    spread = np.percentile(values, 95) - np.percentile(values, 5)
    if spread < MIN_PULSE_PRESSURE_MMHG:
        return np.nan, np.nan, "abp_flat"
    if values.max() > high:  # flush artefacts saturate far above any systolic pressure
        return np.nan, np.nan, "abp_above_300_mmHg"
    if np.percentile(values, 1) < low:  # more than 1% of the window below 20 mmHg (zeroing, line opened)
        return np.nan, np.nan, "abp_below_20_mmHg"
    filled = abp.copy()
    if missing.any():
        t = np.arange(abp.size)
        filled[missing] = np.interp(t[missing], t[~missing], values)
    # Beats are at most MAX_HEART_RATE_BPM apart; prominence of a third of the pulse spread ignores the dicrotic notch.
    distance = max(1, int(rate * 60.0 / MAX_HEART_RATE_BPM))
    peaks, _ = find_peaks(filled, distance=distance, prominence=spread / 3)
    troughs, _ = find_peaks(-filled, distance=distance, prominence=spread / 3)
    min_beats = max(2, int(abp.size / rate * MIN_HEART_RATE_BPM / 60.0))
    if len(peaks) < min_beats or len(troughs) < min_beats:
        return np.nan, np.nan, "too_few_beats"
    return float(np.median(filled[peaks])), float(np.median(filled[troughs])), None


def windows_from_arrays(name: str, ppg: np.ndarray, ecg: np.ndarray, abp: np.ndarray | None, rate: float,
                        window_seconds: float, skipped: Counter, channels: str = "") -> list[dict]:
    """Rows of one record whose channels share `rate`; `abp=None` gives rows without targets (prediction)."""
    size = int(round(window_seconds * rate))
    rows = []
    for start in window_starts(ecg.size, size):
        stop = min(start + size, ecg.size)
        if stop - start < size:
            skipped["shorter_than_window"] += 1
            continue
        label = [np.nan, np.nan]
        if abp is not None:
            sbp, dbp, reason = abp_targets(abp[start:stop], rate)
            if reason:
                skipped[reason] += 1
                continue
            label = [sbp, dbp]
        if np.mean(~np.isfinite(ppg[start:stop])) > MAX_NAN_FRACTION:
            skipped["ppg_missing"] += 1
            continue
        if np.mean(~np.isfinite(ecg[start:stop])) > MAX_NAN_FRACTION:
            skipped["ecg_missing"] += 1
            continue
        rows.append({
            "record": name,
            "signals": np.stack([ppg[start:stop], ecg[start:stop]]),
            "sampling_rate": float(rate),
            "channel_mask": [1, 1],
            "start_seconds": start / rate,
            "channels": channels,
            "label": label,
        })
    return rows


def record_windows(recording, find_channel: ChannelFinder, window_seconds: float = DEFAULT_WINDOW_SECONDS,
                   skipped: Counter | None = None, with_targets: bool = True) -> tuple[list[dict], str | None]:
    """Windows of a WFDB recording with PPG + ECG (+ ABP for targets), or `([], reason)`."""
    skipped = Counter() if skipped is None else skipped
    ecg, ppg, abp = (find_channel(recording, kind) for kind in ("ECG", "PPG", "ABP"))
    if ecg is None:
        return [], "no_ecg_channel"
    if ppg is None:
        return [], "no_ppg_channel"
    if with_targets and abp is None:
        return [], "no_abp_channel"
    rate = float(recording.sampling_rates[ecg])
    ecg_values = np.asarray(recording.signals[ecg], dtype=np.float64)
    ppg_values, _ = channel_on_grid(recording, ppg, rate, ecg_values.size)
    abp_values = None
    if with_targets:
        abp_values, _ = channel_on_grid(recording, abp, rate, ecg_values.size)
        if not np.isfinite(abp_values).any():
            return [], "abp_all_nan"
    rows = windows_from_arrays(recording.name, ppg_values, ecg_values, abp_values, rate, window_seconds, skipped,
                               f"{ppg},{ecg},{abp}")
    return rows, None if rows else "no_usable_window"


def read_uci_mat(path: str | Path) -> list[np.ndarray]:
    """The 3 × N [PPG, ABP, ECG] matrices of one UCI cuff-less BP `.mat` file."""
    from scipy.io import loadmat

    try:
        content = loadmat(str(path))
    except NotImplementedError as err:  # MATLAB v7.3 (HDF5) files
        raise ValueError(f"{path} is a MATLAB v7.3 file; re-save it as v7 (`save(..., '-v7')`) to read it here.") from err
    names = [k for k in content if not k.startswith("__")]
    name = "p" if "p" in names else names[0] if len(names) == 1 else None
    if name is None:
        raise ValueError(f"{path}: expected a cell array named `p` (or a single variable); found variables {names}.")
    cells = np.asarray(content[name]).ravel()
    matrices = []
    for cell in cells:
        matrix = np.asarray(cell, dtype=np.float64)
        if matrix.ndim != 2 or 3 not in matrix.shape:
            raise ValueError(f"{path}: each cell of `{name}` must be 3 × N rows [PPG, ABP, ECG]; got {matrix.shape}.")
        matrices.append(matrix if matrix.shape[0] == 3 else matrix.T)
    return matrices


def build_dataset(
    data_dir: str | Path,
    *,
    reader: Reader | None = None,
    find_channel: ChannelFinder | None = None,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
):
    """Windows with SBP/DBP targets from WFDB records (II + PLETH + ABP) or UCI `.mat` files under `data_dir`.

    The `label` column holds `[SBP, DBP]` in mmHg. Splits are by record (UCI: by cell), never by window.
    """
    data_dir = Path(data_dir)
    wfdb_paths = list_records(data_dir)
    report = BuildReport()
    rows = []
    if wfdb_paths:
        require_reader(reader, find_channel)
        report.records_found = len(wfdb_paths)
        for path in wfdb_paths:
            try:
                recording = reader(path)
            except (ValueError, OSError) as err:
                report.skip_record(f"unreadable ({type(err).__name__})")
                continue
            windows, reason = record_windows(recording, find_channel, window_seconds, report.skipped_windows)
            if reason:
                report.skip_record(reason)
            rows.extend(windows)
        layout = "wfdb"
    else:
        mat_files = sorted(data_dir.rglob("*.mat"))
        if not mat_files:
            raise ValueError(
                f"{data_dir}: no WFDB records (.hea) and no UCI `.mat` files; the ABP task needs records with ECG, "
                "PLETH and ABP channels, or UCI cuff-less BP part*.mat files."
            )
        for path in mat_files:
            for index, matrix in enumerate(read_uci_mat(path)):
                report.records_found += 1
                ppg, abp, ecg = matrix
                windows = windows_from_arrays(f"{path.stem}_{index:04d}", ppg, ecg, abp, UCI_SAMPLING_RATE,
                                              window_seconds, report.skipped_windows, "PPG,ECG,ABP")
                if not windows:
                    report.skip_record("no_usable_window")
                rows.extend(windows)
        layout = "uci_cuffless_bp"
    options = dict(data_dir=str(data_dir), layout=layout, window_seconds=window_seconds)
    return make_dataset(NAME, rows, report, options, None, seed, fractions)


__all__ = ["NAME", "HEAD_CLASS", "TARGET_NAMES", "abp_targets", "build_dataset", "read_uci_mat", "record_windows",
           "windows_from_arrays"]
