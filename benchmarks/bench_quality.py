"""Throughput of `score_windows` on real 30-s, 300-Hz windows from PhysioNet 2015 VT-alarm records.

    python benchmarks/bench_quality.py [--max-windows 600] [--output benchmarks/results/quality.json]

Prints windows/s on one core and on all cores, the time per window of each stage, and (with
`--detectors`) each neurokit2 R-peak detector's time and accuracy against the MIT-BIH record 100 beat
annotations (30-s windows resampled 360 -> 300 Hz, a detection within 150 ms of a beat counts). Writes JSON
with device, versions, commit and shapes. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def load_windows(max_windows: int) -> np.ndarray:
    from qualityfm_hf.io import find_channel, read_recording

    windows = []
    for header in sorted((SHARED / "physionet2015_vt").glob("*.hea")):
        recording = read_recording(header)
        ppg, ecg = find_channel(recording, "PPG"), find_channel(recording, "ECG_II")
        if ppg is None or ecg is None:
            continue
        pair = [resample_poly(recording.signals[c], 6, 5) for c in (ppg, ecg)]  # 250 -> 300 Hz
        for k in range(min(len(s) for s in pair) // 9000):
            windows.append(np.stack([s[k * 9000:(k + 1) * 9000] for s in pair]))
        if len(windows) >= max_windows:
            break
    return np.stack(windows[:max_windows])


def rate(fn, n: int, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def detector_accuracy(methods) -> dict:
    import neurokit2 as nk
    import wfdb

    from qualityfm_hf.quality import _ecg_clean_batch

    base = str(SHARED / "wfdb_samples" / "100")
    ecg = resample_poly(wfdb.rdrecord(base).p_signal[:, 0], 5, 6)  # MLII, 360 -> 300 Hz
    ann = wfdb.rdann(base, "atr")
    beats = ann.sample[np.isin(ann.symbol, list("NLRBAaJSVFejnE/fQ"))] * 300 / 360
    n = len(ecg) // 9000
    rows = ecg[: n * 9000].reshape(n, 9000)
    out = {}
    for method in methods:
        clean = _ecg_clean_batch(rows, 300.0, method)
        tp = fp = fn = 0
        start = time.perf_counter()
        found = [np.asarray(nk.ecg_findpeaks(c, sampling_rate=300, method=method)["ECG_R_Peaks"]) for c in clean]
        seconds = (time.perf_counter() - start) / n
        for i, peaks in enumerate(found):
            ref = beats[(beats >= i * 9000 + 45) & (beats < (i + 1) * 9000 - 45)] - i * 9000  # skip edge beats
            peaks = peaks[(peaks >= 45) & (peaks < 9000 - 45)]
            hit = np.abs(peaks[:, None] - ref[None, :]) <= 45 if len(peaks) else np.zeros((0, len(ref)), bool)
            tp += int(hit.any(axis=1).sum())
            fp += int((~hit.any(axis=1)).sum())
            fn += int((~hit.any(axis=0)).sum())
        out[method] = {"findpeaks_ms_per_window": 1000 * seconds, "sensitivity": tp / (tp + fn),
                       "precision": tp / (tp + fp)}
        print(f"  {method:16s} {1000 * seconds:6.2f} ms/window  sens {tp / (tp + fn):.4f}  ppv {tp / (tp + fp):.4f}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-windows", type=int, default=600)
    parser.add_argument("--ecg-method", default="neurokit")
    parser.add_argument("--detectors", action="store_true", help="also compare neurokit2 detectors on MIT-BIH 100")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "quality.json"))
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 1
    warnings.filterwarnings("ignore")
    import neurokit2

    from qualityfm_hf import quality

    windows = load_windows(args.max_windows)
    windows = quality._interpolate_rows(windows.reshape(-1, windows.shape[-1])).reshape(windows.shape)
    n = len(windows)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"windows {windows.shape} (PPG, ECG_II at 300 Hz), cores {cores}, ECG method {args.ecg_method}")
    quality.score_windows(windows[:8], num_workers=1, ecg_method=args.ecg_method)  # warm-up

    one = rate(lambda: quality.score_windows(windows, num_workers=1, ecg_method=args.ecg_method), n)
    every = rate(lambda: quality.score_windows(windows, num_workers=cores, ecg_method=args.ecg_method), n)
    clean = quality._ecg_clean_batch(windows[:, 1], 300.0, args.ecg_method)
    stages = {
        "ppg_sqi_batch": 1000 / rate(lambda: quality._ppg_quality_batch(windows[:, 0], 300.0), n),
        "ecg_clean_batch": 1000 / rate(lambda: quality._ecg_clean_batch(windows[:, 1], 300.0, args.ecg_method), n),
        "ecg_findpeaks": 1000 / rate(lambda: [neurokit2.ecg_findpeaks(c, sampling_rate=300,
                                                                      method=args.ecg_method) for c in clean], n),
    }
    print(f"one core: {one:.0f} windows/s; {cores} cores: {every:.0f} windows/s ({every / one:.2f}x)")
    print("ms per window: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    detectors = None
    if args.detectors:
        print("neurokit2 detectors on MIT-BIH record 100:")
        detectors = detector_accuracy(["neurokit", "pantompkins1985", "kalidas2017", "martinez2004",
                                       "elgendi2010", "hamilton2002"])
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = None
    result = {
        "benchmark": "score_windows", "commit": commit, "device": platform.processor() or platform.machine(),
        "platform": platform.platform(), "cores": cores, "python": platform.python_version(),
        "versions": {p: version(p) for p in ("numpy", "scipy", "neurokit2", "wfdb")},
        "shape": list(windows.shape), "sampling_rate": 300, "ecg_method": args.ecg_method,
        "windows_per_s_one_core": one, "windows_per_s_all_cores": every, "ms_per_window_stage": stages,
        "detectors_mitbih100": detectors,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
