"""Atrial fibrillation identification (paper notes §5.2): AF (1) vs not AF (0), or the four 2017 rhythm classes.

Two layouts are recognised:

- PhysioNet/CinC Challenge 2017: single-lead ECG at 300 Hz, 9-60 s, labels in `REFERENCE.csv` (`record,label` with
  N normal, A AF, O other rhythm, ~ noisy). There is no PPG: the channel is absent and masked. The headers that
  wfdb 4.3 rejects are the reader's business (`qualityfm_hf.recordings.io.read_wfdb` rewrites them).
- MIMIC PERform AF (PPG + ECG at 125 Hz, 20-min ICU recordings): records whose name contains `non_af` (0) or `af`
  (1), or records inside folders named `af`/`1` and `non_af`/`0`.

Each record gives non-overlapping `window_seconds` windows (a shorter record gives one shorter window, padded later);
every window of a record lands in the record's split.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

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

NAME = "af"
HEAD_CLASS = "QualityFMForAFClassification"
PROBLEM = "binary"
ID2LABEL = {0: "not AF", 1: "AF"}
RHYTHM_ID2LABEL = {0: "normal", 1: "AF", 2: "other rhythm", 3: "noisy"}
LABEL_SETS = ("binary", "rhythm")
CHALLENGE_2017_CODES = {"N": 0, "A": 1, "O": 2, "~": 3}
DEFAULT_WINDOW_SECONDS = 30.0
METRIC = "qualityfm_classification"
HEADLINE_METRICS = ("auroc", "f1", "accuracy")
THRESHOLD_CRITERION = "youden"
CARD = {
    "task_name": "atrial fibrillation identification",
    "task_tag": "atrial-fibrillation",
    "input_description": "an ECG window (PPG optional: the PhysioNet 2017 training data are single-lead handheld "
    "ECG recordings without PPG, so the PPG channel was absent and masked in training)",
    "task_description": "Classify a window of monitor waveform as atrial fibrillation (1) or not (0). Records longer "
    "than one window give several windows; the record's probability is the mean over its windows.",
    "output_description": "the probability of atrial fibrillation",
    "label_description": "0 = not AF (normal, other rhythm, noisy), 1 = AF",
    "dataset_name": "PhysioNet/Computing in Cardiology Challenge 2017",
    "dataset_url": "https://physionet.org/content/challenge-2017/1.0.0/",
    "data_license": "Open Data Commons Attribution License v1.0 (ODC-By 1.0)",
    "data_citation": 'Clifford GD et al., "AF Classification from a Short Single Lead ECG Recording: the PhysioNet/Computing in Cardiology Challenge 2017", Computing in Cardiology 2017; Goldberger AL et al., Circulation 101(23), 2000.',
    "window_description": "non-overlapping 30-s windows (a shorter record is one shorter window); the 2017 data are "
    "single-lead ECG, so the PPG channel is absent and masked.",
    "limitations": "Trained on single-lead handheld ECG (AliveCor) without PPG; ICU monitor data with PPG may differ.",
}


def read_reference(path: str | Path) -> dict[str, str]:
    """PhysioNet 2017 `REFERENCE.csv` (no header: `record,code`) -> record -> code in N/A/O/~."""
    codes = {}
    with open(path, newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), 1):
            if not row or row[0].strip().lower() == "record":
                continue
            if len(row) < 2 or row[1].strip() not in CHALLENGE_2017_CODES:
                raise ValueError(
                    f"{path} line {line_number}: expected `record,code` with code in {sorted(CHALLENGE_2017_CODES)}; "
                    f"got {row}."
                )
            codes[row[0].strip()] = row[1].strip()
    return codes


def perform_label(path: Path) -> int | None:
    """MIMIC PERform AF label from the record name or its folder: `non_af`/`0` -> 0, `af`/`1` -> 1."""
    name = path.name.lower()
    if re.search(r"(^|_)non_?af(_|$)", name):
        return 0
    if re.search(r"(^|_)af(_|$)", name):
        return 1
    folder = path.parent.name.lower()
    return {"af": 1, "1": 1, "non_af": 0, "nonaf": 0, "0": 0}.get(folder)


def record_windows(
    recording, find_channel: ChannelFinder, window_seconds: float | None = DEFAULT_WINDOW_SECONDS
) -> tuple[list[dict], str | None]:
    """Non-overlapping windows of [PPG, ECG] at the ECG's rate (rows without label), or `([], reason)`.
    `window_seconds=None` keeps the whole record as one row."""
    ecg = find_channel(recording, "ECG")
    if ecg is None:
        return [], "no_ecg_channel"
    rate = float(recording.sampling_rates[ecg])
    ecg_values = np.asarray(recording.signals[ecg], dtype=np.float64)
    if not np.isfinite(ecg_values).any():
        return [], "ecg_all_nan"
    ppg = find_channel(recording, "PPG")
    ppg_values, has_ppg = channel_on_grid(recording, ppg, rate, ecg_values.size)
    size = ecg_values.size if window_seconds is None else int(round(window_seconds * rate))
    rows = []
    for start in window_starts(ecg_values.size, size):
        stop = min(start + size, ecg_values.size)
        rows.append({
            "record": recording.name,
            "signals": np.stack([ppg_values[start:stop], ecg_values[start:stop]]),
            "sampling_rate": rate,
            "channel_mask": [int(has_ppg), 1],
            "start_seconds": start / rate,
            "channels": f"{ppg or '-'},{ecg}",
        })
    return rows, None


def build_dataset(
    data_dir: str | Path,
    *,
    reader: Reader | None = None,
    find_channel: ChannelFinder | None = None,
    label_set: str = "binary",
    window_seconds: float | None = DEFAULT_WINDOW_SECONDS,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    require_labels: bool = True,
):
    """Windows of AF / non-AF records (see the module docstring for the two layouts).

    Args:
        label_set: "binary" (AF = 1, N/O/~ = 0) or "rhythm" (N 0, A 1, O 2, ~ 3; 2017 data only).
        window_seconds: window length; None keeps each record whole.
        require_labels: False keeps unlabelled records with label -1 (for prediction).
    """
    require_reader(reader, find_channel)
    if label_set not in LABEL_SETS:
        raise ValueError(f"label_set is {label_set!r}, but has to be one of {list(LABEL_SETS)}.")
    data_dir = Path(data_dir)
    paths = list_records(data_dir)
    reference = data_dir / "REFERENCE.csv"
    codes = read_reference(reference) if reference.is_file() else {}
    layout = "physionet2017" if codes else "mimic_perform_af"
    if layout == "mimic_perform_af" and label_set == "rhythm":
        raise ValueError("label_set='rhythm' needs PhysioNet 2017 REFERENCE.csv codes; MIMIC PERform AF is AF vs not.")
    report = BuildReport(records_found=len(paths))
    rows, labelled = [], 0
    for path in paths:
        if codes:
            code = codes.get(path.name)
            label = None if code is None else (int(code == "A") if label_set == "binary" else CHALLENGE_2017_CODES[code])
        else:
            label = perform_label(path)
        if label is None:
            if require_labels:
                report.skip_record("no_label")
                continue
            label = -1
        try:
            recording = reader(path)
        except (ValueError, OSError) as err:
            report.skip_record(f"unreadable ({type(err).__name__})")
            continue
        windows, reason = record_windows(recording, find_channel, window_seconds)
        if reason:
            report.skip_record(reason)
            continue
        labelled += label >= 0
        rows.extend({**row, "label": int(label)} for row in windows)
    if require_labels and paths and not labelled:
        raise ValueError(
            f"{data_dir}: no record has an AF label. Expected PhysioNet 2017 REFERENCE.csv (record,code with N/A/O/~) "
            "or MIMIC PERform AF names/folders (`..._af_...` / `..._non_af_...`)."
        )
    options = dict(data_dir=str(data_dir), layout=layout, label_set=label_set, window_seconds=window_seconds)
    return make_dataset(NAME, rows, report, options, "label", seed, fractions)


__all__ = ["NAME", "HEAD_CLASS", "ID2LABEL", "RHYTHM_ID2LABEL", "build_dataset", "perform_label", "read_reference",
           "record_windows"]
