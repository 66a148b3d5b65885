"""False ventricular-tachycardia alarm detection (paper notes §5.1): true (1) vs false (0) alarm.

Data: PhysioNet/CinC Challenge 2015 and VTaC-style WFDB records where the alarm fires at `alarm_seconds` (300 s).
A record trimmed to the seconds before its alarm (the package's `physionet2015_vt_prealarm`) says where its alarm
fires with a header comment `#alarm_seconds: 20`, used when `alarm_seconds` is not given.
The model sees only the `window_seconds` (10 s) before the alarm, as a real-time system would. ECG: lead II, else the
first ECG lead; PPG: PLETH, masked when the record has none. Labels come from a CSV (`record,label` with 1 = true
alarm; `labels.csv` in the data folder is used when present) or from the header comments `#True alarm` /
`#False alarm`.
"""

from __future__ import annotations

import csv
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
    usable_ecg_channel,
)

NAME = "vt-false-alarm"
HEAD_CLASS = "QualityFMForVTFalseAlarm"
PROBLEM = "binary"
ID2LABEL = {0: "false alarm", 1: "true alarm"}
DEFAULT_ALARM_SECONDS = 300.0
DEFAULT_WINDOW_SECONDS = 10.0
METRIC = "qualityfm_classification"
HEADLINE_METRICS = ("auroc", "physionet_score", "f1")
THRESHOLD_CRITERION = "physionet_score"  # the Challenge score; chosen on validation only
# The paper's VTaC loss weight (notes §5.1); our finetune sets pos_weight from the training split instead.
PAPER_POS_WEIGHT = 3.54
CARD = {
    "task_name": "false VT alarm detection",
    "task_tag": "false-alarm-detection",
    "input_description": "a synchronised PPG + ECG window from an ICU bedside monitor (a lead that is dead before "
    "the alarm is replaced by the next usable ECG lead; a missing or flat PPG is masked)",
    "task_description": "Given the 10 s of monitor waveform before a ventricular-tachycardia alarm (the alarm fires at "
    "t = 300 s), decide whether the alarm is true (1) or false (0). Suppressing false alarms reduces alarm fatigue.",
    "output_description": "the probability that the alarm is a true alarm",
    "label_description": "0 = false alarm, 1 = true alarm (one logit; sigmoid gives P(true alarm))",
    "dataset_name": "PhysioNet/Computing in Cardiology Challenge 2015, VT alarms",
    "dataset_url": "https://physionet.org/content/challenge-2015/1.0.0/",
    "data_license": "Open Data Commons Attribution License v1.0 (ODC-By 1.0)",
    "data_citation": 'Clifford GD et al., "The PhysioNet/Computing in Cardiology Challenge 2015: Reducing False Arrhythmia Alarms in the ICU", Computing in Cardiology 2015; Goldberger AL et al., "PhysioBank, PhysioToolkit, and PhysioNet", Circulation 101(23), 2000.',
    "window_description": "the 10 s that end at the alarm; ECG lead II (else the first ECG lead) and PLETH as PPG, "
    "masked when the record has no PLETH.",
    "limitations": "The Challenge 2015 records are few and come from a handful of monitors; the paper's VT results "
    "are on VTaC, a different and larger data set.",
}


# Spellings of the two labels a label CSV may hold (written by hand or by pandas as floats).
VALID_LABELS = {"1": 1, "0": 0, "1.0": 1, "0.0": 0}


def read_label_csv(path: str | Path) -> dict[str, int]:
    """`record,label` (1 = true alarm) or `record,label_text` ("True alarm"/"False alarm") -> record -> 0/1."""
    labels = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if "record" not in fields or not ({"label", "label_text"} & set(fields)):
            raise ValueError(
                f"{path}: a VT label CSV needs a `record` column and a `label` (1 = true alarm, 0 = false) or "
                f"`label_text` column; found columns {fields}."
            )
        for line, row in enumerate(reader, 2):
            value = row.get("label")
            if value not in (None, ""):
                if value.strip() not in VALID_LABELS:
                    raise ValueError(
                        f"{path} line {line}: record {row['record']!r} has label {value!r}; expected 1 (true alarm) "
                        "or 0 (false alarm). Fix the file or leave the cell empty to use the header comment."
                    )
                labels[row["record"]] = VALID_LABELS[value.strip()]
            else:
                labels[row["record"]] = label_from_comments([row.get("label_text")])
    return {k: v for k, v in labels.items() if v is not None}


def label_from_comments(comments) -> int | None:
    """1 for a `True alarm` comment, 0 for `False alarm`, None when neither is there."""
    for comment in comments or []:
        text = comment.strip().lstrip("#").strip().lower()
        if text == "true alarm":
            return 1
        if text == "false alarm":
            return 0
    return None


ALARM_COMMENT = "alarm_seconds:"


def alarm_time(recording, alarm_seconds: float | None = None) -> float:
    """Seconds from the record's start to its alarm: `alarm_seconds` when given, else the header comment
    `#alarm_seconds: S` of a trimmed record, else the Challenge's 300 s."""
    if alarm_seconds is not None:
        return float(alarm_seconds)
    for comment in recording.comments or []:
        text = comment.strip().lstrip("#").strip()
        if text.lower().startswith(ALARM_COMMENT):
            value = text[len(ALARM_COMMENT):].strip()
            try:
                return float(value)
            except ValueError:
                raise ValueError(
                    f"record {recording.name}: header comment {comment!r} should give the alarm time in seconds "
                    f"(e.g. '#alarm_seconds: 20'); fix the header or pass alarm_seconds."
                ) from None
    return DEFAULT_ALARM_SECONDS


def record_windows(
    recording,
    find_channel: ChannelFinder,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    alarm_seconds: float | None = None,
) -> tuple[list[dict], str | None]:
    """The window before the alarm as one row (without label), or `([], reason)` when the record cannot give it.
    ECG: lead II, else the first ECG lead usable in that window (`tasks.common.usable_ecg_channel`). The alarm time
    is `alarm_time(recording, alarm_seconds)`."""
    alarm_seconds = alarm_time(recording, alarm_seconds)
    ecg = usable_ecg_channel(recording, find_channel, alarm_seconds - window_seconds, alarm_seconds)
    if ecg is None:
        return [], "no_ecg_channel"
    rate = float(recording.sampling_rates[ecg])
    start, stop = int(round((alarm_seconds - window_seconds) * rate)), int(round(alarm_seconds * rate))
    if start < 0:
        raise ValueError(f"window_seconds ({window_seconds}) must not exceed alarm_seconds ({alarm_seconds}).")
    if len(recording.signals[ecg]) < stop:
        return [], "shorter_than_alarm_time"
    ppg = find_channel(recording, "PPG")
    length = len(recording.signals[ecg])
    ppg_values, has_ppg = channel_on_grid(recording, ppg, rate, length)
    ecg_values = np.asarray(recording.signals[ecg], dtype=np.float64)
    signals = np.stack([ppg_values[start:stop], ecg_values[start:stop]])
    row = {
        "record": recording.name,
        "signals": signals,
        "sampling_rate": rate,
        "channel_mask": [int(has_ppg), 1],
        "start_seconds": start / rate,
        "channels": f"{ppg or '-'},{ecg}",
    }
    return [row], None


def build_dataset(
    data_dir: str | Path,
    *,
    reader: Reader | None = None,
    find_channel: ChannelFinder | None = None,
    labels_csv: str | Path | None = None,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    alarm_seconds: float | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    require_labels: bool = True,
):
    """One row per alarm record: the `window_seconds` before the alarm, label 1 = true alarm.

    Args:
        data_dir: folder of WFDB records (searched recursively).
        reader, find_channel: see `tasks.common`.
        labels_csv: CSV of labels; defaults to `data_dir/labels.csv` when it exists, else header comments.
        window_seconds / alarm_seconds: the input window ends at the alarm; `alarm_seconds=None` reads each
            record's `#alarm_seconds:` header comment, else 300 s.
        seed / fractions: the record-level split (stratified by label).
        require_labels: False keeps unlabelled records with label -1 (for prediction).

    Returns:
        `datasets.Dataset` (columns in `tasks.common`), metadata in `info.description`.
    """
    require_reader(reader, find_channel)
    paths = list_records(data_dir)
    csv_path = Path(labels_csv) if labels_csv else Path(data_dir) / "labels.csv"
    csv_labels = read_label_csv(csv_path) if csv_path.is_file() else {}
    if labels_csv and not csv_path.is_file():
        raise ValueError(f"labels_csv {csv_path} does not exist.")
    report = BuildReport(records_found=len(paths))
    rows, labelled = [], 0
    for path in paths:
        try:
            recording = reader(path)
        except (ValueError, OSError) as err:
            report.skip_record(f"unreadable ({type(err).__name__})")
            continue
        header_label = label_from_comments(recording.comments)
        label = csv_labels.get(recording.name, header_label)
        if header_label is not None and recording.name in csv_labels and csv_labels[recording.name] != header_label:
            report.skip_record("label_conflict_csv_vs_header")
            continue
        if label is None:
            if require_labels:
                report.skip_record("no_label")
                continue
            label = -1
        labelled += label >= 0
        windows, reason = record_windows(recording, find_channel, window_seconds, alarm_seconds)
        if reason:
            report.skip_record(reason)
        for row in windows:
            rows.append({**row, "label": int(label)})
    if require_labels and paths and not labelled:
        raise ValueError(
            f"{data_dir}: none of {len(paths)} records has a label. Expected header comments `#True alarm` / "
            "`#False alarm`, or a labels.csv in that folder with columns record,label (1 = true alarm, 0 = false)."
        )
    options = dict(data_dir=str(data_dir), window_seconds=window_seconds,
                   alarm_seconds=alarm_seconds if alarm_seconds is not None else "per record (header comment, else 300)",
                   labels_source=str(csv_path) if csv_labels else "header comments")
    return make_dataset(NAME, rows, report, options, "label", seed, fractions)


__all__ = ["NAME", "HEAD_CLASS", "ID2LABEL", "alarm_time", "build_dataset", "label_from_comments", "read_label_csv", "record_windows"]
