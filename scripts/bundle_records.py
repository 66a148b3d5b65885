"""Write the compact real records the package ships (`qualityfm_hf/data/`), from the PhysioNet folders.

- `physionet2015_vt_prealarm/`: for every VT alarm record of the PhysioNet/CinC Challenge 2015 training set, the
  `--seconds` before the alarm (t = 300 s) of the channels the VT task and its baselines read: every ECG lead (the
  task falls back from lead II to the next usable lead) and PLETH. The digital samples, gains, baselines and units
  are copied unchanged (WFDB format 16), so the physical values are those of the original record. Each header keeps
  the Challenge's comments and adds `#alarm_seconds: S`, which tells the VT task where the alarm now fires.
- `physionet2017_af/`: the 200 AF ECGs of the Challenge 2017 validation set, copied byte for byte with
  `REFERENCE.csv`.

    python scripts/bundle_records.py --vt ../shared/data/physionet2015_vt --af ../shared/data/physionet2017_af
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

import numpy as np
import wfdb

from qualityfm_hf.recordings.io import _PPG_NAMES, _is_ecg_lead, _normalise_name

ALARM_SECONDS = 300.0
DATA = Path(__file__).resolve().parents[1] / "qualityfm_hf" / "data"


def keep_channel(name: str) -> bool:
    """An ECG lead or the PPG, by the reader's own channel-name rules."""
    return _is_ecg_lead(name) or _normalise_name(name) in _PPG_NAMES


def write_prealarm(source: Path, out_dir: Path, seconds: float) -> list[str]:
    """One trimmed WFDB record; returns the channel names kept."""
    record = wfdb.rdrecord(str(source), physical=False)
    keep = [i for i, name in enumerate(record.sig_name) if keep_channel(name)]
    stop = int(round(ALARM_SECONDS * record.fs))
    start = stop - int(round(seconds * record.fs))
    if record.sig_len < stop:
        raise ValueError(f"{source}: {record.sig_len} samples, shorter than the alarm time ({stop}).")
    digital = np.ascontiguousarray(record.d_signal[start:stop, keep])
    comments = [c for c in record.comments] + [
        f"alarm_seconds: {seconds:g}",
        f"Seconds {start / record.fs:g}-{stop / record.fs:g} of PhysioNet challenge-2015 record {record.record_name}",
    ]
    wfdb.wrsamp(record.record_name, fs=record.fs, units=[record.units[i] for i in keep],
                sig_name=[record.sig_name[i] for i in keep], d_signal=digital, fmt=["16"] * len(keep),
                adc_gain=[record.adc_gain[i] for i in keep], baseline=[record.baseline[i] for i in keep],
                comments=comments, write_dir=str(out_dir))
    return [record.sig_name[i] for i in keep]


def bundle_vt(vt_dir: Path, seconds: float) -> None:
    out_dir = DATA / "physionet2015_vt_prealarm"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    with open(vt_dir / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(out_dir / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["record", "label", "label_text", "fs", "channels"])
        for row in rows:
            channels = write_prealarm(vt_dir / row["record"], out_dir, seconds)
            writer.writerow([row["record"], row["label"], row["label_text"], row["fs"], ";".join(channels)])
    print(f"{len(rows)} VT records -> {out_dir}")


def bundle_af(af_dir: Path) -> None:
    out_dir = DATA / "physionet2017_af"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    names = [p.stem for p in sorted(af_dir.glob("*.hea"))]
    for name in names:
        for suffix in (".hea", ".mat"):
            shutil.copyfile(af_dir / f"{name}{suffix}", out_dir / f"{name}{suffix}")
    shutil.copyfile(af_dir / "REFERENCE.csv", out_dir / "REFERENCE.csv")
    print(f"{len(names)} AF records -> {out_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vt", type=Path, required=True, help="the PhysioNet 2015 VT records (231, with labels.csv)")
    parser.add_argument("--af", type=Path, required=True, help="the PhysioNet 2017 AF records (with REFERENCE.csv)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds kept before each alarm (default 20)")
    args = parser.parse_args()
    bundle_vt(args.vt, args.seconds)
    bundle_af(args.af)


if __name__ == "__main__":
    main()
