"""Tests for QualityFMFeatureExtractor (issue 2, preprocessing)."""

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

from qualityfm_hf.modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor, QualityFMWarning

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FS = 300


def sine(
    seconds: float, fs: float, hz: float = 1.3, offset: float = 0.0, amplitude: float = 1.0
) -> np.ndarray:
    t = np.arange(round(seconds * fs)) / fs
    return offset + amplitude * np.sin(2 * np.pi * hz * t)


def pair(seconds: float, fs: float = FS) -> dict[str, np.ndarray]:
    return {"PPG": sine(seconds, fs, 1.1, offset=2.0), "ECG_II": sine(seconds, fs, 1.7, amplitude=0.5)}


@pytest.fixture(scope="module")
def v100s() -> wfdb.Record:
    return wfdb.rdrecord(str(FIXTURES / "v100s"))


@pytest.fixture
def fe() -> QualityFMFeatureExtractor:
    return QualityFMFeatureExtractor()


# ---- real record ---------------------------------------------------------------------------------------


def test_v100s_gives_ten_30s_windows_of_9000_samples(fe, v100s):
    x = v100s.p_signal  # (samples, channels), WFDB layout
    names = v100s.sig_name
    out = fe(
        {"PLETH": x[:, names.index("PLETH")], "II": x[:, names.index("II")]},
        sampling_rate=v100s.fs,
        return_tensors="pt",
        return_window_info=True,
    )
    assert v100s.fs == 250 and x.shape[0] == 75000
    assert out["input_values"].shape == (10, 2, 9000) and out["input_values"].dtype == torch.float32
    assert out["attention_mask"].dtype == torch.int64 and bool(out["attention_mask"].all())
    assert out["channel_mask"].tolist() == [[1, 1]] * 10
    values = out["input_values"]
    assert torch.isfinite(values).all()
    # Joint min-max: each window spans exactly [-1, 1] over both channels.
    assert torch.allclose(values.amin(dim=(1, 2)), torch.full((10,), -1.0))
    assert torch.allclose(values.amax(dim=(1, 2)), torch.full((10,), 1.0))
    np.testing.assert_allclose(out["window_starts"], np.arange(0, 300, 30))
    assert isinstance(out["window_starts"], np.ndarray) and out["signal_index"].tolist() == [0] * 10
    # The (channels, time) array in model order gives the same windows as the dict.
    array = np.stack([x[:, names.index("PLETH")], x[:, names.index("II")]])
    np.testing.assert_array_equal(fe(array, sampling_rate=250)["input_values"], values.numpy())


def test_v100s_whole_signal_is_one_padded_window(fe, v100s):
    out = fe({"II": v100s.p_signal[:, 0]}, sampling_rate=250, segment_seconds=None)
    assert out["input_values"].shape == (1, 2, 90000)  # 300 s x 300 Hz, already a multiple of 500
    assert out["channel_mask"].tolist() == [[0, 1]]


# ---- input validation: expected vs found, and the fix -----------------------------------------------------


def test_missing_sampling_rate_raises_and_says_why(fe):
    with pytest.raises(ValueError, match=r"sampling_rate is required.*125-500 Hz"):
        fe(pair(30))


def test_rate_dict_missing_a_channel_raises(fe):
    with pytest.raises(ValueError, match=r"no rate for channel ECG_II.*add 'ECG_II'"):
        fe(pair(30), sampling_rate={"Pleth": 300})


def test_rate_dict_that_mismatches_lengths_raises(fe):
    with pytest.raises(ValueError, match=r"different durations.*check each channel's sampling_rate"):
        fe(pair(30), sampling_rate={"PPG": 300, "ECG_II": 150})


@pytest.mark.parametrize("rate", [0, -250, float("nan"), "250", True])
def test_bad_rate_value_raises(fe, rate):
    with pytest.raises(ValueError, match="positive number of Hz"):
        fe(pair(30), sampling_rate=rate)


def test_three_channels_raise(fe):
    with pytest.raises(ValueError, match=r"got shape \(3, 9000\) with 3 channels"):
        fe(np.zeros((3, 9000)), sampling_rate=300)


def test_one_dimensional_input_raises(fe):
    with pytest.raises(ValueError, match=r"got a 1-D array of shape \(9000,\).*pass a dict"):
        fe(np.zeros(9000), sampling_rate=300)


def test_time_by_channels_array_says_transpose(fe):
    with pytest.raises(
        ValueError, match=r"got shape \(9000, 2\)\. WFDB arrays are \(samples, channels\): transpose"
    ):
        fe(np.zeros((9000, 2)), sampling_rate=300)


def test_unknown_channel_name_lists_expected(fe):
    with pytest.raises(ValueError, match=r"Unknown channel name 'V'.*Expected names: \['PPG', 'ECG_II'\]"):
        fe({"II": sine(30, 250), "V": sine(30, 250)}, sampling_rate=250)


def test_same_channel_twice_raises(fe):
    with pytest.raises(ValueError, match="gives channel ECG_II twice"):
        fe({"II": sine(30, 250), "ECG_II": sine(30, 250)}, sampling_rate=250)


@pytest.mark.parametrize(
    "bad", [np.array([["a"] * 10] * 2), np.array([[object()] * 10] * 2), np.ones((2, 10), bool)]
)
def test_non_numeric_dtype_raises(fe, bad):
    with pytest.raises(
        ValueError, match=r"must hold real numbers.*got dtype.*np.asarray\(x, dtype=np.float64\)"
    ):
        fe(bad, sampling_rate=300)


def test_all_nan_raises_naming_the_reason(fe):
    signal = pair(60)
    signal["PPG"][:] = np.nan
    with pytest.raises(
        ValueError, match=r"All 2 windows were rejected \(2 x PPG missing\).*omit the channel"
    ):
        fe(signal, sampling_rate=300)


def test_flat_channel_everywhere_raises(fe):
    with pytest.raises(ValueError, match=r"All 1 windows were rejected \(1 x ECG_II flat\)"):
        fe({"PPG": sine(30, 300), "ECG_II": np.full(9000, 0.25)}, sampling_rate=300)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_gap_seconds": -1}, "max_gap_seconds must be"),
        ({"pad_to_multiple_of": 0}, "pad_to_multiple_of must be"),
        ({"max_nan_fraction": 1.5}, "max_nan_fraction must be"),
        ({"segment_seconds": 0}, "segment_seconds must be"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QualityFMFeatureExtractor(**kwargs)


def test_unknown_normalization_lists_options():
    with pytest.raises(
        ValueError,
        match=r"'robust'.*\['minmax_joint', 'minmax_channel', 'zscore_channel', 'robust_channel', 'none'\]",
    ):
        QualityFMFeatureExtractor(normalization="robust")


# ---- windows, rejection, NaN --------------------------------------------------------------------------------


def test_flat_window_is_dropped_with_a_counted_warning(fe):
    signal = pair(90)
    signal["ECG_II"][9000:18000] = 3.0  # window 1 flat
    with pytest.warns(QualityFMWarning, match=r"1 of 3 windows rejected and dropped \(1 x ECG_II flat\)"):
        out = fe(signal, sampling_rate=300, return_window_info=True)
    assert out["input_values"].shape == (2, 2, 9000)
    np.testing.assert_allclose(out["window_starts"], [0.0, 60.0])


def test_return_rejected_lists_windows_without_warning(fe, recwarn):
    signal = pair(90)
    signal["PPG"][18000 + 100 : 18000 + 100 + 2500] = np.nan  # 28% of window 2 missing
    signal["ECG_II"][9000 + 50 : 9000 + 50 + 600] = np.inf  # a 2-s gap in window 1
    out = fe(signal, sampling_rate=300, return_rejected=True, return_tensors="pt")
    assert not [w for w in recwarn if issubclass(w.category, QualityFMWarning)]
    assert [r[:3] for r in out["rejected"]] == [(0, 1, 30.0), (0, 2, 60.0)]
    assert out["rejected"][0][3].startswith("ECG_II gap: 2.00 s")
    assert out["rejected"][1][3].startswith("PPG missing: 28%")
    assert out["input_values"].shape == (1, 2, 9000) and isinstance(out["rejected"], list)


def test_short_gaps_are_bridged_and_never_nan(fe):
    signal = pair(30)
    signal["PPG"][4000:4150] = np.nan  # 0.5 s, under max_gap_seconds=1.0
    signal["ECG_II"][100:103] = -np.inf
    out = fe(signal, sampling_rate=300)
    assert out["input_values"].shape == (1, 2, 9000) and np.isfinite(out["input_values"]).all()


def test_max_gap_none_bridges_long_gaps_like_pretraining():
    signal = pair(30)
    signal["PPG"][3000:4200] = np.nan  # 4 s = 13% of the window
    with pytest.raises(
        ValueError, match=r"All 1 windows were rejected \(1 x PPG gap\); first: PPG gap: 4.00 s"
    ):
        QualityFMFeatureExtractor()(signal, sampling_rate=300)
    out = QualityFMFeatureExtractor(max_gap_seconds=None)(signal, sampling_rate=300)
    assert np.isfinite(out["input_values"]).all()


def test_tail_shorter_than_a_window_is_dropped(fe):
    out = fe(pair(70), sampling_rate=300)
    assert out["input_values"].shape == (2, 2, 9000)


def test_signal_shorter_than_a_window_is_one_padded_window(fe):
    out = fe(pair(10.5), sampling_rate=300)
    assert out["input_values"].shape == (1, 2, 3500)  # 3150 real samples, padded to 7 tokens
    assert out["attention_mask"].sum() == 3150
    assert np.all(out["input_values"][0, :, 3150:] == 0.0)


def test_left_padding_puts_real_samples_last():
    out = QualityFMFeatureExtractor(padding_side="left")(pair(10.5), sampling_rate=300)
    assert out["attention_mask"][0, :350].sum() == 0 and out["attention_mask"][0, 350:].all()
    assert out["input_values"][0, :, 350:].min() == pytest.approx(-1.0)


def test_segment_seconds_override(fe):
    assert fe(pair(30), sampling_rate=300, segment_seconds=10)["input_values"].shape == (3, 2, 3000)
    assert fe.segment_seconds == 30.0


def test_missing_ppg_key_gives_zero_channel_and_mask(fe):
    out = fe({"II": sine(60, 250, offset=5.0)}, sampling_rate=250, return_tensors="pt")
    assert out["channel_mask"].tolist() == [[0, 1], [0, 1]]
    assert torch.count_nonzero(out["input_values"][:, 0]) == 0
    # The absent channel's zeros do not enter the joint min/max: ECG alone spans [-1, 1].
    assert torch.allclose(out["input_values"][:, 1].amin(dim=1), torch.tensor([-1.0, -1.0]))
    assert torch.allclose(out["input_values"][:, 1].amax(dim=1), torch.tensor([1.0, 1.0]))


def test_torch_tensor_and_batch_of_mixed_rates(fe):
    batch = [torch.tensor(np.stack(list(pair(30, 125).values()))), pair(60, 500)]
    out = fe(batch, sampling_rate=[125, {"PPG": 500, "II": 500}], return_window_info=True)
    assert out["input_values"].shape == (3, 2, 9000)
    assert out["signal_index"].tolist() == [0, 1, 1]


# ---- normalisation and padding ------------------------------------------------------------------------------


def test_minmax_joint_spans_both_channels_together(fe):
    values = fe(pair(30), sampling_rate=300)["input_values"][0]
    assert values.min() == pytest.approx(-1.0) and values.max() == pytest.approx(1.0)
    # PPG spans [1, 3] and ECG [-0.5, 0.5]: one joint range [-0.5, 3] maps PPG's min 1 to -1/7, ECG's max to -3/7.
    assert values[0].min() == pytest.approx(-1 / 7, abs=1e-3) and values[1].max() == pytest.approx(
        -3 / 7, abs=1e-3
    )


def test_minmax_channel_and_zscore_channel():
    minmax = QualityFMFeatureExtractor(normalization="minmax_channel")(pair(30), sampling_rate=300)[
        "input_values"
    ][0]
    np.testing.assert_allclose(minmax.min(axis=1), [-1, -1], atol=1e-6)
    np.testing.assert_allclose(minmax.max(axis=1), [1, 1], atol=1e-6)
    z = QualityFMFeatureExtractor(normalization="zscore_channel")(pair(30), sampling_rate=300)[
        "input_values"
    ][0]
    np.testing.assert_allclose(z.mean(axis=1), [0, 0], atol=1e-5)
    np.testing.assert_allclose(z.std(axis=1), [1, 1], atol=1e-5)


def test_none_keeps_units(fe):
    signal = pair(30)
    values = QualityFMFeatureExtractor(normalization="none")(signal, sampling_rate=300)["input_values"][0]
    np.testing.assert_allclose(values, np.stack([signal["PPG"], signal["ECG_II"]]), rtol=1e-6)


@pytest.mark.parametrize("normalization", ["minmax_joint", "minmax_channel", "zscore_channel"])
def test_padding_does_not_enter_statistics(normalization):
    fe = QualityFMFeatureExtractor(normalization=normalization, segment_seconds=None)
    short, long = pair(12), pair(20)
    for signal in (short, long):  # all values far from the padding value 0
        signal["ECG_II"] += 10.0
    batch = fe([long, short], sampling_rate=300)
    alone = fe(short, sampling_rate=300)
    assert batch["input_values"].shape == (2, 2, 6000) and alone["input_values"].shape == (1, 2, 4000)
    assert batch["attention_mask"].sum(axis=1).tolist() == [6000, 3600]
    np.testing.assert_array_equal(batch["input_values"][1, :, :3600], alone["input_values"][0, :, :3600])
    assert np.all(batch["input_values"][1, :, 3600:] == 0.0)


# ---- resampling ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [125, 250, 128, 100.5])
def test_resampling_to_300_hz_preserves_a_sine(rate):
    hz = 7.0
    fe = QualityFMFeatureExtractor(normalization="none")
    out = fe({"ECG_II": sine(30, rate, hz)}, sampling_rate=rate)
    ecg = out["input_values"][0, 1].astype(np.float64)
    assert ecg.shape == (9000,)
    spectrum = np.abs(np.fft.rfft(ecg))
    assert np.fft.rfftfreq(9000, 1 / 300)[spectrum.argmax()] == pytest.approx(hz)
    # Sample k sits at k / 300 s: compare with the analytic sine away from the filter's edges.
    expected = np.sin(2 * np.pi * hz * np.arange(9000) / 300)
    np.testing.assert_allclose(ecg[300:-300], expected[300:-300], atol=0.02)


@pytest.mark.parametrize("rate", [125, 250])
def test_resampling_has_no_edge_transient(rate):
    # Zero padding inside the polyphase filter would pull the first and last samples towards 0.
    fe = QualityFMFeatureExtractor(normalization="none")
    ecg = fe({"ECG_II": sine(30, rate, 1.0, offset=5.0)}, sampling_rate=rate)["input_values"][0, 1]
    np.testing.assert_allclose(ecg, sine(30, FS, 1.0, offset=5.0), atol=0.05)


def test_missing_samples_map_to_the_right_window_after_resampling():
    signal = {"PPG": sine(90, 125, 1.1), "ECG_II": sine(90, 125, 1.7)}
    signal["PPG"][62 * 125 : 71 * 125] = np.nan  # 9 s = 30% of the window at 60-90 s
    out = QualityFMFeatureExtractor(max_gap_seconds=None)(signal, sampling_rate=125, return_rejected=True)
    assert [r[:3] for r in out["rejected"]] == [(0, 2, 60.0)]
    assert out["rejected"][0][3].startswith("PPG missing: 30%")


def test_channels_at_different_rates_are_aligned(fe):
    hz = 1.0
    out = QualityFMFeatureExtractor(normalization="none")(
        {"Pleth": sine(30, 125, hz), "II": sine(30, 250, hz)}, sampling_rate={"PLETH": 125, "ii": 250}
    )
    values = out["input_values"][0]
    np.testing.assert_allclose(values[0, 300:-300], values[1, 300:-300], atol=1e-3)


# ---- save / load -----------------------------------------------------------------------------------------


def test_save_and_from_pretrained_round_trip(tmp_path):
    fe = QualityFMFeatureExtractor(
        segment_seconds=10.0,
        normalization="zscore_channel",
        max_nan_fraction=0.1,
        max_gap_seconds=None,
        pad_to_multiple_of=250,
    )
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "QualityFMFeatureExtractor" and saved["sampling_rate"] == 300
    loaded = QualityFMFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == fe.to_dict()
    assert loaded.channel_names == ("PPG", "ECG_II") and loaded.max_gap_seconds is None


def test_auto_feature_extractor_loads_remote_code_without_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(QualityFMFeatureExtractor, "_auto_class", None)
    QualityFMFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    QualityFMFeatureExtractor(segment_seconds=10.0, rhythm_features=True).save_pretrained(tmp_path / "fe")
    assert (tmp_path / "fe" / "feature_extraction_qualityfm.py").exists()
    assert (tmp_path / "fe" / "rhythm_qualityfm.py").exists()  # its relative import ships beside it
    # -S skips site.py, so the editable install's .pth finder never registers; site-packages is added by hand,
    # the cwd is outside the repo, and a meta-path blocker covers a regular (non-editable) install in CI.
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "qualityfm_hf":
                    raise ModuleNotFoundError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        sys.path.append({sysconfig.get_paths()["purelib"]!r})
        try:
            import qualityfm_hf
            raise SystemExit("qualityfm_hf must not be importable here")
        except ModuleNotFoundError:
            pass
        import numpy as np
        from transformers import AutoFeatureExtractor
        fe = AutoFeatureExtractor.from_pretrained({str(tmp_path / "fe")!r}, trust_remote_code=True)
        out = fe({{"II": np.sin(np.arange(7500) / 20.0)}}, sampling_rate=250)
        print(type(fe).__module__, fe.segment_seconds, tuple(out["input_values"].shape), out["channel_mask"].tolist(),
              tuple(out["rhythm_features"].shape), sep="|")
        assert not any(m.split(".")[0] == "qualityfm_hf" for m in sys.modules)
    """)
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    module, seconds, shape, mask, rhythm = result.stdout.strip().splitlines()[-1].split("|")
    assert module.startswith("transformers_modules.") and module.endswith("feature_extraction_qualityfm")
    assert (seconds, shape, mask, rhythm) == ("10.0", "(3, 2, 3000)", "[[0, 1], [0, 1], [0, 1]]", "(3, 8)")


def test_bandpass_removes_baseline_wander_and_keeps_the_rhythm():
    seconds = 30
    t = np.arange(seconds * FS) / FS
    clean = {"PPG": sine(seconds, FS, 1.2), "ECG_II": sine(seconds, FS, 5.0, amplitude=0.5)}
    drift = 40.0 + 3.0 * np.sin(2 * np.pi * 0.05 * t)  # offset + 20-s baseline wander, far below 0.5 Hz
    wandering = {k: v + drift for k, v in clean.items()}
    fe = QualityFMFeatureExtractor(bandpass=True, normalization="robust_channel")
    a = fe(clean, sampling_rate=FS)["input_values"][0]
    b = fe(wandering, sampling_rate=FS)["input_values"][0]
    core = slice(3 * FS, -3 * FS)  # away from the filter's edge response
    assert np.abs(a[:, core] - b[:, core]).max() < 0.05
    # Without the filter the drift dominates the scaled window.
    c = QualityFMFeatureExtractor(normalization="robust_channel")(wandering, sampling_rate=FS)["input_values"][0]
    assert np.abs(a[:, core] - c[:, core]).max() > 0.5


def test_robust_scaling_is_not_squashed_by_one_artefact():
    signal = pair(30)
    spiky = {k: v.copy() for k, v in signal.items()}
    spiky["ECG_II"][4000] = 1e4  # one saturated sample
    robust = QualityFMFeatureExtractor(normalization="robust_channel")(spiky, sampling_rate=FS)["input_values"][0]
    minmax = QualityFMFeatureExtractor(normalization="minmax_channel")(spiky, sampling_rate=FS)["input_values"][0]
    assert np.ptp(np.delete(robust[1], 4000)) > 1.5  # the sine keeps its full scale
    assert np.ptp(np.delete(minmax[1], 4000)) < 0.01  # min-max squashes it flat
    assert np.abs(robust).max() <= 4.0 + 1e-6


def test_bandpass_still_rejects_a_flat_channel_and_round_trips(tmp_path):
    fe = QualityFMFeatureExtractor(bandpass=True, normalization="robust_channel")
    with pytest.raises(ValueError, match="ECG_II flat"):
        fe({"PPG": sine(30, FS), "ECG_II": np.full(30 * FS, 0.7)}, sampling_rate=FS)
    fe.save_pretrained(tmp_path)
    loaded = QualityFMFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.bandpass is True and loaded.normalization == "robust_channel"
    assert QualityFMFeatureExtractor.from_pretrained(tmp_path).to_dict()["bandpass"] is True


@pytest.mark.parametrize("rate", [125, 250, 300, 500])
def test_a_constant_channel_is_flat_at_any_source_rate(rate):
    # Resampling a constant adds a tiny ripple (2.4e-4 at 125/250 Hz) that min-max would stretch to [-1, 1]:
    # flatness is judged on the source samples, as the pair builder does.
    fe = QualityFMFeatureExtractor()
    signal = {"PPG": sine(30, rate, 1.2), "ECG_II": np.full(30 * rate, 0.35)}
    with pytest.raises(ValueError, match="ECG_II flat: constant value 0.35"):
        fe(signal, sampling_rate=rate)
    # A channel flat in one window only loses that window, not the others.
    ecg = sine(60, rate, 1.5)
    ecg[: 30 * rate] = 0.35
    out = fe({"PPG": sine(60, rate, 1.2), "ECG_II": ecg}, sampling_rate=rate, return_rejected=True)
    assert len(out["input_values"]) == 1 and [r[3].split(":")[0] for r in out["rejected"]] == ["ECG_II flat"]


def test_pretraining_windows_are_the_feature_extractors_windows():
    # Issue 12: pretraining never went through the feature extractor; the same record segment must give the same
    # input_values whichever way it is cut (real records at 250 Hz with PLETH and lead II, some windows with NaN).
    import warnings

    from conftest import FIXTURES

    from qualityfm_hf.recordings.io import find_channel, read_recording
    from qualityfm_hf.recordings.segmenting import segment_recording

    extractor = QualityFMFeatureExtractor()
    compared = 0
    for name in ("v100s", "v176s", "v290s"):
        recording = read_recording(FIXTURES / name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            windows = segment_recording(recording)
            names = {kind: find_channel(recording, kind) for kind in ("PPG", "ECG_II")}
            names["ECG_II"] = names["ECG_II"] or find_channel(recording, "ECG")  # as the pair builder: another lead
            names = {kind: name for kind, name in names.items() if name is not None}
            out = extractor({kind: recording.signals[name] for kind, name in names.items()},
                            sampling_rate={kind: recording.sampling_rates[name] for kind, name in names.items()},
                            return_window_info=True, return_rejected=True)
        starts = {round(float(s), 3): i for i, s in enumerate(out["window_starts"])}
        for start, values in zip(windows.start_seconds, windows.input_values):
            if round(float(start), 3) in starts:
                np.testing.assert_array_equal(values, out["input_values"][starts[round(float(start), 3)]])
                compared += 1
    assert compared >= 25  # 27 windows kept by the pair builder across the three records
