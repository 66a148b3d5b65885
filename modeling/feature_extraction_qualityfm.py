"""Feature extractor for QualityFM: raw monitor waveforms -> `(windows, 2, time)` model input.

Ships as Hub remote code next to `preprocessor_config.json`, so it imports only numpy, scipy, transformers, the
standard library and its sibling `rhythm_qualityfm.py` (no `qualityfm_hf`).

Pipeline, following the pretraining code (paper notes §1.1, §4.1):
1. map each channel to [PPG, ECG_II] (aliases such as `PLETH` and `II` accepted);
2. resample each channel to 300 Hz with a polyphase filter (`scipy.signal.resample_poly`);
3. cut non-overlapping `segment_seconds` windows and drop the tail;
4. reject windows with too many missing samples, a long gap, or a flat channel;
5. bridge the remaining (short) gaps linearly and min-max normalise to [-1, 1] jointly over both channels;
6. pad to the longest window and to a multiple of 500 samples (one token), with `attention_mask` and
   `channel_mask`;
7. with `rhythm_features=True`, add the window's standardised ECG rhythm statistics (`rhythm_qualityfm`).
"""

import warnings
from collections import Counter
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from scipy.signal import resample_poly
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature

from .rhythm_qualityfm import RHYTHM_FEATURE_NAMES, rhythm_statistics, standardize_rhythm


class QualityFMWarning(UserWarning):
    """Warnings from QualityFM preprocessing (count of affected items and the action taken)."""


# Lower-case spellings accepted for each canonical channel name (WFDB, MIMIC and VitalDB use these).
CHANNEL_ALIASES = {
    "PPG": ("ppg", "pleth", "plethysmogram", "ppg_finger"),
    "ECG_II": ("ecg_ii", "ii", "ecg ii", "ecg-ii", "ecgii", "lead ii", "lead_ii"),
}
NORMALIZATIONS = ("minmax_joint", "minmax_channel", "zscore_channel", "robust_channel", "none")
# Pass bands of `bandpass=True` (Hz): PPG pulse waves sit below 8 Hz, the ECG's QRS energy below 40 Hz; 0.5 Hz
# removes baseline wander and respiration drift in both.
BANDPASS_HZ = {"PPG": (0.5, 8.0), "ECG_II": (0.5, 40.0)}
# `robust_channel` clips at this many half-ranges so one artefact cannot dominate the window.
ROBUST_CLIP = 4.0
_UNSET = object()  # lets `segment_seconds=None` (whole signal) be told apart from "not given"


class QualityFMFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Turns raw PPG + ECG lead II recordings at any sampling rate into QualityFM input windows.

    Args:
        feature_size (`int`, defaults to 2): Number of input channels, `[PPG, ECG_II]`.
        sampling_rate (`int`, defaults to 300): Rate the model was pretrained at, in Hz. Inputs are resampled
            to it; the rate of *your* data goes to `__call__`.
        padding_value (`float`, defaults to 0.0): Value written into padded time steps.
        channel_names (`tuple[str, str]`, defaults to `("PPG", "ECG_II")`): Canonical channel names, in model
            order. Dict keys are matched to them case-insensitively, with the aliases in `CHANNEL_ALIASES`.
        segment_seconds (`float` or `None`, defaults to 30.0): Window length in seconds. `None` keeps each
            signal whole (one window per signal). A signal shorter than one window is kept as one shorter
            window, padded.
        normalization (`str`, defaults to `"minmax_joint"`): `"minmax_joint"` scales each window to [-1, 1]
            with one min and max over both present channels, as in pretraining; `"minmax_channel"` scales each
            channel to [-1, 1]; `"zscore_channel"` gives each channel zero mean and unit variance; `"none"`
            keeps physical units. Statistics use real samples of present channels only.
        max_nan_fraction (`float`, defaults to 0.2): A window is rejected when more than this fraction of a
            present channel is missing (NaN or inf), counted before any interpolation (pretraining rule).
        max_gap_seconds (`float` or `None`, defaults to 1.0): Longest run of missing samples that is bridged by
            linear interpolation. A window with a longer gap in a present channel is rejected, so no more than
            this much signal is ever invented. `None` bridges any gap the `max_nan_fraction` rule lets through,
            as the pretraining code did (up to 6 s in a 30-s window).
        pad_to_multiple_of (`int` or `None`, defaults to 500): Pad the time axis to a multiple of this; 500
            samples is the tokenizer's total stride, i.e. one token.
        bandpass (`bool`, defaults to `False`): band-pass each channel (`BANDPASS_HZ`) before normalising.
        rhythm_features (`bool`, defaults to `False`): also return `rhythm_features` `(n_windows, 8)` float32, the
            standardised RR-interval statistics of each window's ECG (`rhythm_qualityfm.RHYTHM_FEATURE_NAMES`; all
            0, the typical value, where undefined: no ECG, fewer than 4 beats), for heads with
            `config.classifier_rhythm_features`. Computed on the unfiltered, unnormalised window.
    """

    model_input_names: ClassVar[list[str]] = ["input_values", "attention_mask", "channel_mask"]

    def __init__(
        self,
        feature_size: int = 2,
        sampling_rate: int = 300,
        padding_value: float = 0.0,
        channel_names: tuple[str, ...] | list[str] = ("PPG", "ECG_II"),
        segment_seconds: float | None = 30.0,
        normalization: str = "minmax_joint",
        max_nan_fraction: float = 0.2,
        max_gap_seconds: float | None = 1.0,
        pad_to_multiple_of: int | None = 500,
        bandpass: bool = False,
        rhythm_features: bool = False,
        **kwargs,
    ):
        super().__init__(
            feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs
        )
        self.channel_names = tuple(channel_names)
        if len(self.channel_names) != feature_size:
            raise ValueError(
                f"channel_names has {len(self.channel_names)} names {list(self.channel_names)}, but feature_size is "
                f"{feature_size}; give one name per input channel."
            )
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization is {normalization!r}, but has to be one of {list(NORMALIZATIONS)}."
            )
        if not 0.0 <= max_nan_fraction <= 1.0:
            raise ValueError(f"max_nan_fraction must be in [0, 1]; got {max_nan_fraction}.")
        if max_gap_seconds is not None and not max_gap_seconds >= 0:
            raise ValueError(f"max_gap_seconds must be >= 0 seconds or None; got {max_gap_seconds!r}.")
        if pad_to_multiple_of is not None and not (
            isinstance(pad_to_multiple_of, int) and pad_to_multiple_of > 0
        ):
            raise ValueError(
                f"pad_to_multiple_of must be a positive int (500 = one token) or None; got {pad_to_multiple_of!r}."
            )
        self.segment_seconds = self._check_segment_seconds(segment_seconds)
        self.normalization = normalization
        self.max_nan_fraction = max_nan_fraction
        self.max_gap_seconds = max_gap_seconds
        self.pad_to_multiple_of = pad_to_multiple_of
        self.bandpass = bool(bandpass)
        self.rhythm_features = bool(rhythm_features)
        if self.rhythm_features and not any(name.upper().startswith("ECG") for name in self.channel_names):
            raise ValueError(
                f"rhythm_features=True needs an ECG channel, but channel_names are {list(self.channel_names)}; "
                "name the ECG channel ECG_... or set rhythm_features=False."
            )

    def __call__(
        self,
        signals: Any,
        sampling_rate: float | dict[str, float] | list | None = None,
        *,
        segment_seconds: float | None = _UNSET,
        return_tensors: str | None = None,
        return_rejected: bool = False,
        return_window_info: bool = False,
    ) -> BatchFeature:
        r"""
        Resample, window, check, normalise and pad one recording or a batch of recordings.

        Args:
            signals: One recording or a list of recordings. A recording is either an array of shape
                `(2, time)` in the order `[PPG, ECG_II]`, or a dict channel name -> 1-D array (a missing key
                means the channel was not recorded: it stays zero with `channel_mask` 0). A 3-D array
                `(batch, 2, time)` is a batch.
            sampling_rate (`float`, `dict[str, float]` or a list of those, one per recording): Rate of the
                input in Hz, required. A dict gives one rate per channel name.
            segment_seconds (`float` or `None`, *optional*): Overrides `self.segment_seconds` for this call;
                `None` keeps each signal whole.
            return_tensors (`str`, *optional*): `"pt"` for torch tensors, `"np"` or `None` for numpy arrays.
            return_rejected (`bool`, defaults to `False`): Add `rejected`, a list of
                `(signal_index, window_index, start_seconds, reason)`, instead of warning about rejections.
            return_window_info (`bool`, defaults to `False`): Add numpy arrays `window_starts` (seconds from
                the start of the recording) and `signal_index` (which recording each window came from).

        Returns:
            [`BatchFeature`] with
            - **input_values** (`(n_windows, 2, time)`, float32): normalised `[PPG, ECG_II]` at 300 Hz;
            - **attention_mask** (`(n_windows, time)`, int64): 1 for real samples, 0 for padding;
            - **channel_mask** (`(n_windows, 2)`, int64): 1 where the channel was given.
        """
        seconds = (
            self.segment_seconds
            if segment_seconds is _UNSET
            else self._check_segment_seconds(segment_seconds)
        )
        batch = self._as_batch(signals)
        rates = self._rates_per_signal(sampling_rate, len(batch))

        kept, rejected = [], []
        for index, (item, rate) in enumerate(zip(batch, rates)):
            channels = self._parse_signal(item, index)
            channel_rates = self._parse_rates(rate, channels, index)
            values, missing, present = self._resample(channels, channel_rates, index)
            scaled = self._bandpass(values, present) if self.bandpass else values
            for window, start in enumerate(self._window_starts(values.shape[1], seconds)):
                stop = start + (values.shape[1] if seconds is None else round(seconds * self.sampling_rate))
                stop = min(stop, values.shape[1])
                x, gone = values[:, start:stop], missing[:, start:stop]
                start_s = start / self.sampling_rate
                # Flatness is judged on the source samples of the window: resampling a constant adds a ripple of
                # about 1e-4 at some rates, which min-max would stretch to [-1, 1].
                sources = [self._source_window(channels, channel_rates, name, start_s, stop / self.sampling_rate)
                           for name in self.channel_names]
                problem = self._window_problem(x, gone, present, sources)
                if problem is None:
                    kept.append((self._normalize(scaled[:, start:stop], present), present, index, start_s,
                                 self._rhythm(x, present)))
                else:
                    rejected.append((index, window, start_s, problem))

        reasons = Counter(reason.split(":")[0] for *_, reason in rejected)
        summary = ", ".join(f"{count} x {kind}" for kind, count in reasons.most_common())
        if not kept:
            raise ValueError(
                f"All {len(rejected)} windows were rejected ({summary}); first: {rejected[0][3]}. Check the channel "
                f"order [PPG, ECG_II] and the units, or relax max_nan_fraction={self.max_nan_fraction} / "
                f"max_gap_seconds={self.max_gap_seconds}."
            )
        if rejected and not return_rejected:
            warnings.warn(
                f"{len(rejected)} of {len(rejected) + len(kept)} windows rejected and dropped ({summary}). "
                "Pass return_rejected=True to get them per window.",
                QualityFMWarning,
                stacklevel=2,
            )
        return self._collate(kept, rejected, return_tensors, return_rejected, return_window_info)

    # ---- input parsing --------------------------------------------------------------------------------

    def _check_segment_seconds(self, seconds: float | None) -> float | None:
        if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
            raise ValueError(
                f"segment_seconds must be a positive number of seconds or None; got {seconds!r}."
            )
        return None if seconds is None else float(seconds)

    def _as_batch(self, signals: Any) -> list:
        if isinstance(signals, (list, tuple)):
            if len(signals) == 0:
                raise ValueError("signals is an empty list; pass at least one recording.")
            return list(signals)
        if isinstance(signals, dict):
            return [signals]
        array = self._as_numeric(signals, "signals")
        return list(array) if array.ndim == 3 else [array]

    def _as_numeric(self, value: Any, what: str) -> np.ndarray:
        if hasattr(value, "detach"):  # a torch tensor, without importing torch
            value = value.detach().cpu().numpy()
        try:
            array = np.asarray(value)
        except ValueError as err:  # ragged nested lists
            raise ValueError(
                f"{what} could not be read as a numeric array ({err}); pass a numpy array."
            ) from None
        if array.dtype.kind not in "iuf":
            raise ValueError(
                f"{what} must hold real numbers (float or int); got dtype {array.dtype}. Convert it with "
                "np.asarray(x, dtype=np.float64), and pass each channel as numbers, not strings or objects."
            )
        return array.astype(np.float64, copy=False)

    def _canonical_name(self, name: Any, what: str) -> str:
        key = str(name).strip().lower()
        for canonical in self.channel_names:
            if key == canonical.lower() or key in CHANNEL_ALIASES.get(canonical, ()):
                return canonical
        accepted = {c: [c, *CHANNEL_ALIASES.get(c, ())] for c in self.channel_names}
        raise ValueError(
            f"Unknown channel name {name!r} in {what}. Expected names: {list(self.channel_names)} "
            f"(case-insensitive aliases: {accepted}). Drop other channels (e.g. V, RESP, ABP) before calling."
        )

    def _parse_signal(self, item: Any, index: int) -> dict[str, np.ndarray | None]:
        """Returns canonical channel name -> 1-D float64 array, or None for a channel that was not given."""
        where = f"signal {index}"
        if isinstance(item, dict):
            channels = dict.fromkeys(self.channel_names)
            for name, value in item.items():
                canonical = self._canonical_name(name, f"{where}'s dict")
                if channels[canonical] is not None:
                    raise ValueError(f"{where} gives channel {canonical} twice (key {name!r}); keep one.")
                array = self._as_numeric(value, f"{where}[{name!r}]")
                if array.ndim != 1:
                    raise ValueError(f"{where}[{name!r}] must be 1-D (time,); got shape {array.shape}.")
                channels[canonical] = array
            if all(v is None for v in channels.values()):
                raise ValueError(
                    f"{where} is an empty dict; give at least one of {list(self.channel_names)}."
                )
        else:
            array = self._as_numeric(item, where)
            expected = (
                f"(channels, time) = ({self.feature_size}, time) in the order {list(self.channel_names)}"
            )
            if array.ndim != 2:
                raise ValueError(
                    f"{where} must be {expected}; got a {array.ndim}-D array of shape {array.shape}. For one channel "
                    f"pass a dict such as {{'{self.channel_names[-1]}': x}}; a list is read as a batch, so stack "
                    "the channels of one recording with np.stack([ppg, ecg_ii])."
                )
            if array.shape[0] != self.feature_size and array.shape[1] == self.feature_size:
                raise ValueError(
                    f"{where} must be {expected}; got shape {array.shape}. WFDB arrays are (samples, channels): "
                    "transpose it (x.T)."
                )
            if array.shape[0] != self.feature_size:
                raise ValueError(
                    f"{where} must be {expected}; got shape {array.shape} with {array.shape[0]} channels. Select "
                    "the PPG and ECG lead II rows (a WFDB array must also be transposed), or pass a dict of the "
                    "channels you have."
                )
            channels = dict(zip(self.channel_names, array))
        for name, value in channels.items():
            if value is not None and value.size == 0:
                raise ValueError(
                    f"{where} channel {name} is empty; give at least one sample or omit the channel."
                )
        return channels

    def _rates_per_signal(self, sampling_rate: Any, n_signals: int) -> list:
        if sampling_rate is None:
            raise ValueError(
                f"sampling_rate is required: QualityFM expects {self.sampling_rate} Hz, and bedside monitors record "
                "at 125-500 Hz, so the extractor must know your rate to resample. Pass e.g. sampling_rate=250, or a "
                "dict like {'PPG': 125, 'ECG_II': 250}."
            )
        if isinstance(sampling_rate, (list, tuple)):
            if len(sampling_rate) != n_signals:
                raise ValueError(
                    f"sampling_rate is a list of {len(sampling_rate)} rates but there are {n_signals} signals; give "
                    "one rate (or rate dict) per signal, or a single rate for all."
                )
            return list(sampling_rate)
        return [sampling_rate] * n_signals

    def _parse_rates(self, rate: Any, channels: dict, index: int) -> dict[str, float]:
        if isinstance(rate, dict):
            rates = {self._canonical_name(k, f"sampling_rate for signal {index}"): v for k, v in rate.items()}
        else:
            rates = dict.fromkeys(self.channel_names, rate)
        out = {}
        for name, value in channels.items():
            if value is None:
                continue
            if name not in rates:
                raise ValueError(
                    f"sampling_rate for signal {index} has no rate for channel {name} (rates given for "
                    f"{sorted(rates)}); add {name!r}: <Hz> to the dict."
                )
            fs = rates[name]
            if (
                isinstance(fs, bool)
                or not isinstance(fs, (int, float, np.integer, np.floating))
                or not (np.isfinite(fs) and fs > 0)
            ):
                raise ValueError(
                    f"sampling_rate for signal {index} channel {name} must be a positive number of Hz; "
                    f"got {fs!r}."
                )
            out[name] = float(fs)
        return out

    # ---- signal processing ----------------------------------------------------------------------------

    def _resample(self, channels: dict, rates: dict, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns values `(2, T)` at the target rate with gaps bridged, missing mask `(2, T)`, present `(2,)`."""
        target = self.sampling_rate
        resampled = {}
        for name, value in channels.items():
            if value is None:
                continue
            fs = rates[name]
            out, gone = resample_channel(value, fs, target)
            resampled[name] = (out, gone, value.size / fs)
        durations = {name: seconds for name, (_, _, seconds) in resampled.items()}
        if max(durations.values()) - min(durations.values()) > 1.0:
            raise ValueError(
                f"signal {index}: channels span different durations { ({k: round(v, 2) for k, v in durations.items()}) } "
                "seconds (samples / sampling_rate); check each channel's sampling_rate."
            )
        length = min(out.size for out, _, _ in resampled.values())
        values = np.zeros((self.feature_size, length))
        missing = np.zeros((self.feature_size, length), dtype=bool)
        present = np.zeros(self.feature_size, dtype=bool)
        for row, name in enumerate(self.channel_names):
            if name in resampled:
                values[row], missing[row], present[row] = (
                    resampled[name][0][:length],
                    resampled[name][1][:length],
                    True,
                )
        return values, missing, present

    def _window_starts(self, length: int, seconds: float | None) -> list[int]:
        if seconds is None:
            return [0]
        size = round(seconds * self.sampling_rate)
        # A signal shorter than one window still gives one (shorter, padded) window instead of nothing.
        return list(range(0, length - size + 1, size)) or [0]

    @staticmethod
    def _source_window(channels: dict, rates: dict, name: str, start_s: float, stop_s: float) -> np.ndarray | None:
        """The finite source samples of channel `name` between two times (seconds), None for an absent channel."""
        value = channels.get(name)
        if value is None:
            return None
        fs = rates[name]
        window = value[int(np.floor(start_s * fs)):int(np.ceil(stop_s * fs))]
        return window[np.isfinite(window)]

    def _window_problem(self, x: np.ndarray, missing: np.ndarray, present: np.ndarray, sources=None) -> str | None:
        """Returns a reason `"<channel> <kind>: detail"` when the window must be rejected, else None. `sources`: per
        channel, the window's finite source samples (flatness is judged on them when given)."""
        for row in np.flatnonzero(present):
            name, gone = self.channel_names[row], missing[row]
            fraction = gone.mean()
            if fraction == 1.0:
                return f"{name} missing: all samples are NaN/inf (omit the channel if it was not recorded)"
            if fraction > self.max_nan_fraction:
                return (
                    f"{name} missing: {fraction:.0%} of samples are NaN/inf "
                    f"(max_nan_fraction {self.max_nan_fraction:.0%})"
                )
            if self.max_gap_seconds is not None and gone.any():
                edges = np.diff(np.concatenate([[0], gone.astype(np.int8), [0]]))
                longest = (
                    np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
                ).max() / self.sampling_rate
                if longest > self.max_gap_seconds:
                    return f"{name} gap: {longest:.2f} s of NaN/inf (max_gap_seconds {self.max_gap_seconds})"
            real = x[row][~gone]
            if sources is not None and sources[row] is not None and sources[row].size:
                real = sources[row]
            if np.ptp(real) <= 1e-9 * max(1.0, np.abs(real).max()):
                return f"{name} flat: constant value {real[0]:.6g}"
        return None

    def _bandpass(self, values: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Each present channel band-passed over the whole signal (window edges would ring if filtered per window)."""
        from scipy.signal import butter, sosfiltfilt

        out = values.copy()
        for row in np.flatnonzero(present):
            low, high = BANDPASS_HZ.get(self.channel_names[row], (0.5, 40.0))
            sos = butter(2, [low, min(high, 0.45 * self.sampling_rate)], btype="bandpass", fs=self.sampling_rate,
                         output="sos")
            # filtfilt needs a signal longer than its padding; a very short signal is kept unfiltered.
            if values.shape[1] > 3 * (2 * sos.shape[0] + 1):
                out[row] = sosfiltfilt(sos, values[row])
        return out

    def _rhythm(self, x: np.ndarray, present: np.ndarray) -> np.ndarray | None:
        """Standardised rhythm statistics of the first ECG channel of one window, None unless asked for."""
        if not self.rhythm_features:
            return None
        row = next(i for i, name in enumerate(self.channel_names) if name.upper().startswith("ECG"))
        ecg = x[row] if present[row] else None
        return standardize_rhythm(rhythm_statistics(ecg, self.sampling_rate))

    def _normalize(self, x: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Scales one unpadded window `(2, t)`; absent channels stay exactly zero and never enter the statistics."""
        out = np.zeros_like(x)
        rows = np.flatnonzero(present)
        data = x[rows]
        if self.normalization == "minmax_joint":
            low, high = data.min(), data.max()
            out[rows] = 2.0 * (data - low) / (high - low) - 1.0
        elif self.normalization == "minmax_channel":
            low, high = data.min(axis=1, keepdims=True), data.max(axis=1, keepdims=True)
            out[rows] = 2.0 * (data - low) / (high - low) - 1.0
        elif self.normalization == "zscore_channel":
            out[rows] = (data - data.mean(axis=1, keepdims=True)) / data.std(axis=1, keepdims=True)
        elif self.normalization == "robust_channel":
            low, mid, high = np.percentile(data, [1.0, 50.0, 99.0], axis=1, keepdims=True)
            half_range = np.maximum((high - low) / 2.0, 1e-12 * np.maximum(1.0, np.abs(data).max()))
            out[rows] = np.clip((data - mid) / half_range, -ROBUST_CLIP, ROBUST_CLIP)
        elif self.normalization == "none":
            out[rows] = data
        else:
            raise ValueError(
                f"normalization is {self.normalization!r}, but has to be one of {list(NORMALIZATIONS)}."
            )
        return out

    def _collate(self, kept, rejected, return_tensors, return_rejected, return_window_info) -> BatchFeature:
        longest = max(x.shape[1] for x, *_ in kept)
        multiple = self.pad_to_multiple_of
        total = longest if not multiple else -(-longest // multiple) * multiple
        values = np.full((len(kept), self.feature_size, total), self.padding_value, dtype=np.float32)
        attention = np.zeros((len(kept), total), dtype=np.int64)
        for row, (x, present, *_) in enumerate(kept):
            span = slice(0, x.shape[1]) if self.padding_side == "right" else slice(total - x.shape[1], total)
            values[row, :, span] = x
            attention[row, span] = 1
        data = {
            "input_values": values,
            "attention_mask": attention,
            "channel_mask": np.stack([present for _, present, *_ in kept]).astype(np.int64),
        }
        if self.rhythm_features:
            data["rhythm_features"] = np.stack([rhythm for *_, rhythm in kept]).reshape(len(kept),
                                                                                     len(RHYTHM_FEATURE_NAMES))
        extra = {}
        if return_window_info:
            extra["signal_index"] = np.array([i for _, _, i, _, _ in kept], dtype=np.int64)
            extra["window_starts"] = np.array([s for _, _, _, s, _ in kept], dtype=np.float64)
        if return_rejected:
            extra["rejected"] = rejected
        # Window bookkeeping stays numpy/list so that `model(**features)` only sees model inputs as tensors.
        return BatchFeature({**data, **extra}, tensor_type=return_tensors, skip_tensor_conversion=set(extra))


def resample_channel(signal: np.ndarray, rate: float, target: float) -> tuple[np.ndarray, np.ndarray]:
    """Polyphase resampling of one channel that may contain NaN: the package's one resampler.

    The feature extractor, the pair builder (`qualityfm_hf.segmenting`) and the task windows
    (`tasks.common.channel_on_grid`) all resample through this function, so a window means the same in pretraining,
    fine-tuning and inference.

    Args:
        signal (`np.ndarray` of shape `(samples,)`): physical units, NaN/inf where missing.
        rate (`float`): its sampling rate in Hz.
        target (`float`): output rate in Hz.

    Returns:
        `(values, missing)`, both of shape `(ceil(samples * target / rate),)` (the input itself when the rates are
        equal): values with every gap bridged linearly, and True where the nearest source sample was missing.
    """
    signal = np.asarray(signal, dtype=np.float64)
    missing = ~np.isfinite(signal)
    filled = signal.copy()
    if missing.all():
        filled[:] = 0.0
    elif missing.any():
        # Bridge every gap before filtering so NaN cannot spread through the polyphase filter; the caller decides
        # from the missing mask whether a window has too much of it.
        grid = np.arange(signal.size)
        filled[missing] = np.interp(grid[missing], grid[~missing], signal[~missing])
    if rate == target:
        return filled, missing
    # Polyphase needs an integer up/down; non-integer rates are approximated by a nearby fraction. Monitor rates
    # (125, 250, 500 Hz) are exact.
    ratio = Fraction(target) / Fraction(rate).limit_denominator(1000)
    if ratio.denominator > 1000:
        ratio = ratio.limit_denominator(1000)
    # padtype="line" avoids the edge transients of the default zero padding.
    out = resample_poly(filled, ratio.numerator, ratio.denominator, padtype="line")
    # Nearest source sample of each output sample marks it missing or not.
    source = np.minimum(np.round(np.arange(out.size) * rate / target).astype(np.int64), signal.size - 1)
    return out, missing[source]


__all__ = ["BANDPASS_HZ", "CHANNEL_ALIASES", "NORMALIZATIONS", "QualityFMFeatureExtractor", "QualityFMWarning",
           "resample_channel"]
