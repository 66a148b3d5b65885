"""Readers for bedside-monitor recordings: WFDB (PhysioNet, MIMIC) and VitalDB `.vital` files.

Every reader returns a `Recording`: one 1-D float array per channel in physical units, each with its own
sampling rate. The WFDB conventions (`fs` per frame, `(samples, channels)` arrays, `samps_per_frame`) are
converted here, once, so nothing downstream sees them.

`find_channel` maps the many spellings of a channel (`PLETH`, `Pleth`, `SNUADC/PLETH`, `II`, `ECG II`, ...)
to the kinds the model uses: `"PPG"`, `"ECG_II"`, `"ECG"` (lead II if present, else the first ECG lead) and
`"ABP"`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WFDB_SUFFIXES = (".hea", ".mat", ".dat", "")
VITAL_SUFFIXES = (".vital",)
SUPPORTED_FORMATS = "WFDB records (RECORD, RECORD.hea, RECORD.mat, RECORD.dat) and VitalDB files (.vital)"

# VitalDB track names of the two model channels; SNUADC waveforms are recorded at 500 Hz.
VITAL_DEFAULT_TRACKS = ("SNUADC/ECG_II", "SNUADC/PLETH")
VITAL_DEFAULT_INTERVAL = 1 / 300  # seconds; read straight at the model's 300 Hz

# Channel names are compared after `_normalise_name` (device prefix dropped, upper case, no space/_/-).
_PPG_NAMES = {"PLETH", "PPG", "PLETHYSMOGRAM", "PPGFINGER"}
# MLII (modified limb lead II, MIT-BIH) is recorded with lead II's electrode axis, so it counts as II.
_ECG_II_NAMES = {"II", "ECGII", "LEADII", "MLII"}
_ABP_NAMES = {"ABP", "ART", "ART1", "ARTERIAL", "IBP", "IBP1"}
_ECG_LEADS = {"I", "II", "III", "V", "AVR", "AVL", "AVF", "MCL", "MLII", "MLIII", ""}
_ECG_LEADS |= {f"V{i}" for i in range(1, 7)} | {f"MCL{i}" for i in range(1, 7)}
CHANNEL_KINDS = ("PPG", "ECG_II", "ECG", "ABP")

# PhysioNet 2017 headers: "A00002 1 300 9000 2014-05-16 11:05:25" (ISO date first; WFDB wants time first).
_ISO_DATETIME = re.compile(r"\s(\d{4})-(\d{2})-(\d{2})\s+(\d{1,2}:\d{2}:\d{2}(?:\.\d+)?)\s*$")


@dataclass
class Recording:
    """One recording, every channel at its own rate, in physical units.

    Args:
        name (`str`): Record name (file stem).
        signals (`dict[str, np.ndarray]`): Channel name (as stored in the file) -> 1-D float64 array of shape
            `(samples,)` in physical units. NaN marks missing samples (WFDB's invalid-sample sentinel,
            VitalDB gaps).
        sampling_rates (`dict[str, float]`): Channel name -> sampling rate in Hz. Channels may differ
            (multi-frequency WFDB records: ECG 250 Hz, Pleth 125 Hz).
        units (`dict[str, str]`): Channel name -> physical unit (`"mV"`, `"mmHg"`, `"NU"`, ...).
        comments (`list[str]`): Header comments (WFDB `#` lines, e.g. `"False alarm"`).
        source (`str`): Path the recording was read from.
    """

    name: str
    signals: dict[str, np.ndarray]
    sampling_rates: dict[str, float]
    units: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def channels(self) -> list[str]:
        return list(self.signals)

    def duration(self, channel: str) -> float:
        """Length of `channel` in seconds."""
        return len(self.signals[channel]) / self.sampling_rates[channel]


def _normalise_name(name: str) -> str:
    # "SNUADC/ECG_II" -> "ECGII", "ECG II" -> "ECGII", "Pleth" -> "PLETH"
    base = name.strip().rsplit("/", 1)[-1]
    return re.sub(r"[\s_\-]", "", base).upper()


def _is_ecg_lead(name: str) -> bool:
    key = _normalise_name(name)
    for prefix in ("ECG", "LEAD"):
        if key.startswith(prefix):
            return key[len(prefix):] in _ECG_LEADS
    return key in _ECG_LEADS and key != ""


def find_channel(recording: Recording, kind: str) -> str | None:
    """Name of the channel of `recording` that holds `kind`, or `None` when it has none.

    Args:
        recording (`Recording`): A recording from `read_recording`.
        kind (`str`): One of `"PPG"` (PLETH, Pleth, PPG, SNUADC/PLETH), `"ECG_II"` (II, ECG II, ECG_II,
            SNUADC/ECG_II, MLII), `"ECG"` (lead II if present, else the first ECG lead in channel order:
            I, III, V, V1-V6, aVR, aVL, aVF, MCL, ECG, ...), `"ABP"` (ABP, ART, ART1, SNUADC/ART).

    Returns:
        `str | None`: The channel name exactly as stored in `recording.signals`.
    """
    names = list(recording.signals)
    if kind == "PPG":
        wanted = _PPG_NAMES
    elif kind == "ECG_II":
        wanted = _ECG_II_NAMES
    elif kind == "ABP":
        wanted = _ABP_NAMES
    elif kind == "ECG":
        lead_ii = find_channel(recording, "ECG_II")
        return lead_ii if lead_ii is not None else next((n for n in names if _is_ecg_lead(n)), None)
    else:
        raise ValueError(f"`kind` is {kind!r}, but has to be one of {list(CHANNEL_KINDS)}.")
    return next((n for n in names if _normalise_name(n) in wanted), None)


def _record_base(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".hea", ".mat", ".dat") else path


def _sanitised_header(text: str) -> str | None:
    """Header text wfdb can parse, or `None` when `text` needs no change.

    PhysioNet 2017 headers put an ISO date before the time on the record line and end lines with CRLF;
    wfdb 4.3 rejects both ("unconverted data remains"). Rewriting the date as WFDB's `HH:MM:SS DD/MM/YYYY`
    keeps it; everything else is unchanged.
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    first = next((i for i, line in enumerate(lines) if line and not line.startswith("#")), None)
    if first is not None:
        match = _ISO_DATETIME.search(lines[first])
        if match:
            year, month, day, time = match.groups()
            lines[first] = lines[first][: match.start()] + f" {time} {day}/{month}/{year}"
    new_text = "\n".join(lines)
    return None if new_text == text else new_text


def _rdrecord(base: Path):
    import wfdb

    header = base.parent / (base.name + ".hea")
    text = header.read_text(encoding="latin-1")
    fixed = _sanitised_header(text)
    if fixed is None:
        return wfdb.rdrecord(str(base), smooth_frames=False)
    # wfdb only reads headers from disk, so the fixed header goes into a temp dir next to links to (or, where
    # links are not allowed, copies of) the signal files it names.
    with tempfile.TemporaryDirectory(prefix="qualityfm-wfdb-") as tmp:
        Path(tmp, header.name).write_text(fixed, encoding="latin-1")
        for line in fixed.split("\n")[1:]:
            if not line or line.startswith("#"):
                continue
            signal_file = base.parent / line.split()[0]
            target = Path(tmp, signal_file.name)
            if signal_file.exists() and not target.exists():
                try:
                    os.symlink(signal_file.resolve(), target)
                except OSError:
                    shutil.copyfile(signal_file, target)
        return wfdb.rdrecord(str(Path(tmp, base.name)), smooth_frames=False)


def read_wfdb(path: str | os.PathLike) -> Recording:
    """Read a WFDB record (PhysioNet 2015/2017 `.hea` + `.mat`, MIT `.dat`, MIMIC, multi-frequency FLAC).

    Each channel keeps its own rate: `fs × samps_per_frame` in WFDB terms, so a multi-frequency record gives
    ECG at 250 Hz and Pleth at 125 Hz. Headers wfdb 4.3 rejects (PhysioNet 2017: ISO date on the record line,
    CRLF endings) are rewritten into a temporary directory and read from there; the files are not touched.

    Args:
        path (`str` or `os.PathLike`): Record path with or without `.hea`/`.mat`/`.dat` (`data/v100s`).

    Returns:
        `Recording`: physical-unit float64 signals; wfdb maps the invalid-sample sentinel (-32768) to NaN.

    Raises:
        `FileNotFoundError`: the header is missing. `ValueError`: the record is corrupt or unreadable.
    """
    base = _record_base(path)
    header = base.parent / (base.name + ".hea")
    if not header.is_file():
        raise FileNotFoundError(f"WFDB header {header} not found: pass a record path whose .hea file exists.")
    try:
        record = _rdrecord(base)
    except Exception as err:  # wfdb raises ValueError, IndexError, OSError... for damaged records
        raise ValueError(f"could not read WFDB record {header}: {type(err).__name__}: {err}") from err

    signals, rates, units = {}, {}, {}
    frames = record.samps_per_frame or [1] * record.n_sig
    # smooth_frames=False gives e_p_signal, one array per channel at its own rate; multi-segment records
    # that wfdb merges may come back with p_signal only.
    per_channel = record.e_p_signal if record.e_p_signal is not None else list(np.asarray(record.p_signal).T)
    for i, name in enumerate(record.sig_name):
        # Repeated channel names (two "V" leads) keep their order with a suffix rather than overwrite.
        key = name if name not in signals else f"{name}_{i}"
        signals[key] = np.asarray(per_channel[i], dtype=np.float64)
        rates[key] = float(record.fs) * frames[i]
        units[key] = (record.units or [""] * record.n_sig)[i]
    return Recording(base.name, signals, rates, units, list(record.comments or []), str(path))


def read_vital(
    path: str | os.PathLike,
    tracks: tuple[str, ...] | list[str] = VITAL_DEFAULT_TRACKS,
    interval: float = VITAL_DEFAULT_INTERVAL,
) -> Recording:
    """Read waveform tracks of a VitalDB `.vital` file, resampled by `vitaldb` to one rate.

    Args:
        path (`str` or `os.PathLike`): The `.vital` file.
        tracks (`tuple[str, ...]`, defaults to `("SNUADC/ECG_II", "SNUADC/PLETH")`): Track names to read.
            Tracks the file lacks are left out; at least one must exist.
        interval (`float`, defaults to 1/300): Sample interval in seconds handed to `VitalFile.to_numpy`.

    Returns:
        `Recording` whose channels are the track names found, each at `1 / interval` Hz, NaN in gaps.
    """
    import vitaldb

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VitalDB file {path} not found.")
    if interval <= 0:
        raise ValueError(f"`interval` must be > 0 seconds; got {interval}.")
    try:
        vital = vitaldb.VitalFile(str(path), list(tracks))
    except Exception as err:
        raise ValueError(f"could not read VitalDB file {path}: {type(err).__name__}: {err}") from err
    present = [t for t in tracks if t in vital.trks]
    if not present:
        available = sorted(vitaldb.VitalFile(str(path), header_only=True).get_track_names())
        raise ValueError(f"{path} has none of the tracks {list(tracks)}; it has {available}. Pass `tracks=`.")
    values = vital.to_numpy(present, interval)  # (samples, tracks)
    signals = {t: np.asarray(values[:, i], dtype=np.float64) for i, t in enumerate(present)}
    rates = {t: 1.0 / interval for t in present}
    units = {t: vital.trks[t].unit for t in present}
    return Recording(path.stem, signals, rates, units, [], str(path))


def read_recording(path: str | os.PathLike) -> Recording:
    """Read a recording, choosing the reader from the suffix: `.vital` -> `read_vital`, `.hea`/`.mat`/`.dat` or
    no suffix -> `read_wfdb`.

    Raises:
        `ValueError`: unsupported suffix (the message lists the supported formats).
        `FileNotFoundError`: the file (or WFDB header) does not exist.
    """
    suffix = Path(path).suffix.lower()
    if suffix in VITAL_SUFFIXES:
        return read_vital(path)
    # A WFDB record name may itself contain dots ("3000003_0003.x"), so anything with a header is WFDB.
    if suffix in WFDB_SUFFIXES or Path(str(path) + ".hea").is_file():
        return read_wfdb(path)
    raise ValueError(f"{path}: unsupported format {suffix!r}; supported: {SUPPORTED_FORMATS}.")


def expand_records(paths) -> list[str]:
    """Record paths with every folder replaced by the records inside it (WFDB headers without suffix and `.vital`
    files, searched recursively, sorted), so a command given a data folder reads its records."""
    out: list[str] = []
    for path in map(Path, paths):
        if not path.is_dir():
            out.append(str(path))
            continue
        found = sorted({p.with_suffix("") for p in path.rglob("*.hea")} | set(path.rglob("*.vital")))
        if not found:
            raise ValueError(f"{path} is a folder without WFDB records (.hea) or .vital files; pass record paths.")
        out.extend(map(str, found))
    return out


__all__ = [
    "CHANNEL_KINDS",
    "SUPPORTED_FORMATS",
    "VITAL_DEFAULT_TRACKS",
    "Recording",
    "expand_records",
    "find_channel",
    "read_recording",
    "read_vital",
    "read_wfdb",
]
