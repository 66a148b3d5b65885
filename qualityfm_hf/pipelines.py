"""transformers pipelines for QualityFM, registered when `qualityfm_hf` is imported.

    from transformers import pipeline
    import qualityfm_hf

    classify = pipeline("waveform-classification", model="runs/af")
    classify({"ECG_II": ecg, "sampling_rate": 300})          # [{"label": ..., "score": ...}, ...], predicted label first
    classify("data/A00002")                                  # a WFDB record: the windows `qualityfm predict` uses
    embed = pipeline("waveform-feature-extraction", model=qualityfm_hf.pretrained_path("base"))
    embed({"PPG": ppg, "ECG_II": ecg, "sampling_rate": 125})  # {"embedding": (512,) float32 array, ...}

An input is a dict of 1-D arrays keyed by channel name (`PPG`, `ECG_II`; either may be left out) with
`sampling_rate` (Hz, one number or a dict per channel), a path to a WFDB or `.vital` record, or a list of those.
Arrays are cut into consecutive windows of the task's length (10 s for VT alarms, 30 s otherwise; `window_seconds`
changes it); a record is windowed as its task windows it (`tasks.<task>.record_windows`). Each window then goes the
one way every window goes: `task_data.extract_row` (feature extractor; a single unusable channel is masked) and,
for a model fine-tuned on crops, test-time crop averaging. Scores are averaged over a recording's windows, as
`qualityfm predict` does. Batching (`batch_size=`), `device=` and `dtype=` work as in transformers' own pipelines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline

CLASSIFICATION_TASK = "waveform-classification"
FEATURE_EXTRACTION_TASK = "waveform-feature-extraction"


def _recording_from_arrays(inputs: dict, channel_names) -> object:
    """An in-memory `io.Recording` of a `{"PPG": array, "ECG_II": array, "sampling_rate": ...}` input."""
    from .recordings.io import Recording

    if "sampling_rate" not in inputs:
        raise ValueError(
            f"a waveform input needs 'sampling_rate' (Hz) beside its channels {list(channel_names)}; got keys "
            f"{sorted(inputs)}. Pass e.g. {{'ECG_II': ecg, 'sampling_rate': 300}}."
        )
    rate = inputs["sampling_rate"]
    unknown = sorted(set(inputs) - {"sampling_rate", *channel_names})
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown}; QualityFM reads {list(channel_names)} (either may be left out).")
    signals, rates = {}, {}
    for name in channel_names:
        if inputs.get(name) is None:
            continue
        values = np.asarray(inputs[name], dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"channel {name} must be a 1-D array of samples; got shape {values.shape}.")
        channel_rate = rate.get(name) if isinstance(rate, dict) else rate
        if channel_rate is None or not np.isfinite(float(channel_rate)) or float(channel_rate) <= 0:
            raise ValueError(f"sampling_rate of {name} must be a positive number of Hz; got {channel_rate!r}.")
        signals[name], rates[name] = values, float(channel_rate)
    if not signals:
        raise ValueError(f"the input holds none of the channels {list(channel_names)}.")
    return Recording(name="input", signals=signals, sampling_rates=rates)


def _array_rows(recording, window_seconds: float) -> list[dict]:
    """Consecutive windows of [PPG, ECG] on the grid of the ECG (else the PPG), like the tasks' rows."""
    from .recordings.io import find_channel
    from .tasks.common import channel_on_grid, window_starts

    ecg, ppg = find_channel(recording, "ECG"), find_channel(recording, "PPG")
    reference = ecg or ppg
    rate = float(recording.sampling_rates[reference])
    length = len(recording.signals[reference])
    ecg_values, has_ecg = channel_on_grid(recording, ecg, rate, length)
    ppg_values, has_ppg = channel_on_grid(recording, ppg, rate, length)
    size = int(round(window_seconds * rate))
    rows = []
    for start in window_starts(length, size):
        stop = min(start + size, length)
        rows.append({"signals": np.stack([ppg_values[start:stop], ecg_values[start:stop]]), "sampling_rate": rate,
                     "channel_mask": [int(has_ppg), int(has_ecg)], "start_seconds": start / rate})
    return rows


class _WaveformPipeline(ChunkPipeline):
    """Shared preprocessing: an input -> its windows -> one model item per window (or crop)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False
    default_window_seconds = 30.0

    def _task_module(self):
        from .finetuning.task_data import config_task, get_task

        task = config_task(self.model.config)
        return None if task is None else get_task(task)

    def _rows(self, inputs, window_seconds: float | None) -> list[dict]:
        module = self._task_module()
        seconds = window_seconds or (module.DEFAULT_WINDOW_SECONDS if module else self.default_window_seconds)
        if isinstance(inputs, (str, Path)):
            from .recordings.io import find_channel, read_recording

            recording = read_recording(inputs)
            if module is None:
                return _array_rows(recording, seconds)
            kwargs = {"window_seconds": seconds}
            if module.PROBLEM == "regression":
                kwargs["with_targets"] = False
            rows, reason = module.record_windows(recording, find_channel, **kwargs)
            if reason or not rows:
                raise ValueError(f"{inputs}: no window to score ({reason or 'no window'}).")
            return rows
        if isinstance(inputs, dict):
            return _array_rows(_recording_from_arrays(inputs, self.feature_extractor.channel_names), seconds)
        raise ValueError(
            f"a waveform input is a dict of channel arrays with 'sampling_rate', or a record path; got "
            f"{type(inputs).__name__}."
        )

    def preprocess(self, inputs, window_seconds: float | None = None):
        from .finetuning.task_data import extract_row, inference_crop_samples, window_crops

        rows = self._rows(inputs, window_seconds)
        windows, reasons = [], []
        for row in rows:
            out, note = extract_row(self.feature_extractor, np.asarray(row["signals"], dtype=np.float64),
                                    row["channel_mask"], row["sampling_rate"])
            if out is None:
                reasons.append(note)
            else:
                windows.append((out, row.get("start_seconds", 0.0)))
        if not windows:
            raise ValueError(f"every window of the input was rejected by the feature extractor: {sorted(set(reasons))}.")
        crop = inference_crop_samples(self.model.config)
        # One fixed length per call: the pipeline's batch collation pads only the channel axis of (1, 2, T) items.
        items = [(w, start, piece) for w, (out, start) in enumerate(windows) for piece in window_crops(out, crop)]
        length = max(self.model.config.segment_samples, max(p["input_values"].shape[-1] for _, _, p in items))
        for index, (window, start, piece) in enumerate(items):
            values = np.zeros((piece["input_values"].shape[0], length), np.float32)
            mask = np.zeros(length, np.int64)
            n = piece["input_values"].shape[-1]
            values[:, :n], mask[:n] = piece["input_values"], piece["attention_mask"]
            extra = {}
            if "rhythm_features" in piece:  # whole-window statistics: every crop of a window carries its window's
                extra["rhythm_features"] = torch.as_tensor(np.asarray(piece["rhythm_features"]))[None]
            yield {
                **extra,
                "input_values": torch.from_numpy(values)[None],
                "attention_mask": torch.from_numpy(mask)[None],
                "channel_mask": torch.as_tensor(np.asarray(piece["channel_mask"]), dtype=torch.long)[None],
                "window": torch.tensor([window]),
                "start_seconds": torch.tensor([float(start)], dtype=torch.float64),
                "is_last": index == len(items) - 1,
            }


class WaveformClassificationPipeline(_WaveformPipeline):
    """`pipeline("waveform-classification", model=...)` for the VT-alarm, AF and ABP heads.

    Classification heads return `[{"label": ..., "score": ...}, ...]` for each input, the predicted label first
    (`top_k` keeps that many), with the score a probability averaged over the input's windows. A one-logit head
    predicts with its saved `config.decision_threshold` (0.5 when unset), as `qualityfm predict` does, so the first
    label can have a score below 0.5. The ABP head returns
    `{"sbp_mmhg": ..., "dbp_mmhg": ..., "windows": n}` (median over windows, as `qualityfm predict`).
    """

    def _sanitize_parameters(self, window_seconds=None, top_k=None, **kwargs):
        return {"window_seconds": window_seconds}, {}, {"top_k": top_k}

    def _forward(self, model_inputs):
        is_last = model_inputs.pop("is_last")
        window = model_inputs.pop("window")
        model_inputs.pop("start_seconds")
        model_inputs["input_values"] = model_inputs["input_values"].to(self.dtype)
        logits = self.model(**model_inputs).logits
        return {"logits": logits.float(), "window": window, "is_last": is_last}

    def postprocess(self, model_outputs, top_k=None):
        config = self.model.config
        logits = torch.cat([out["logits"] for out in model_outputs]).float()
        windows = torch.cat([out["window"] for out in model_outputs]).numpy()
        if getattr(config, "problem_type", None) == "regression":
            per_window = np.stack([logits.numpy()[windows == w].mean(0) for w in np.unique(windows)])
            return {"sbp_mmhg": float(np.median(per_window[:, 0])), "dbp_mmhg": float(np.median(per_window[:, 1])),
                    "windows": len(per_window)}
        probs = torch.sigmoid(logits[:, 0]) if logits.shape[-1] == 1 else torch.softmax(logits, -1)
        probs = probs.numpy()
        per_window = np.stack([probs[windows == w].mean(0) for w in np.unique(windows)])  # crop means
        mean = per_window.mean(0)
        if np.ndim(mean) == 0:
            # One logit: the saved decision threshold (chosen on out-of-fold predictions) decides the label, as in
            # `qualityfm predict` and `evaluate`; that label comes first even when its score is below 0.5.
            threshold = getattr(config, "decision_threshold", None) or 0.5
            predicted = int(mean >= threshold)
            scores = {0: 1.0 - float(mean), 1: float(mean)}
            ranked = [(config.id2label[i], scores[i]) for i in (predicted, 1 - predicted)]
        else:
            ranked = sorted(((config.id2label[i], float(s)) for i, s in enumerate(mean)), key=lambda x: -x[1])
        return [{"label": label, "score": score} for label, score in ranked[:top_k]]


class WaveformFeatureExtractionPipeline(_WaveformPipeline):
    """`pipeline("waveform-feature-extraction", model=...)`: the encoder's pooled embedding of each input.

    Returns `{"embedding": (hidden_size,) float32, "windows": n}` with the embedding averaged over the input's
    windows; `return_windows=True` adds `window_embeddings` `(n, hidden_size)` and `window_starts` (seconds), and
    `return_tokens=True` adds `tokens`, one `(tokens, hidden_size)` array per window (real tokens only).
    """

    def _sanitize_parameters(self, window_seconds=None, return_windows=None, return_tokens=None, **kwargs):
        return ({"window_seconds": window_seconds}, {"return_tokens": bool(return_tokens)},
                {"return_windows": bool(return_windows), "return_tokens": bool(return_tokens)})

    def _forward(self, model_inputs, return_tokens=False):
        is_last = model_inputs.pop("is_last")
        out = {"window": model_inputs.pop("window"), "start_seconds": model_inputs.pop("start_seconds"),
               "is_last": is_last}
        model_inputs.pop("rhythm_features", None)  # read by a task head's linear layer, not by the encoder
        model_inputs["input_values"] = model_inputs["input_values"].to(self.dtype)
        encoder = self.model.base_model  # a fine-tuned head's encoder, or the encoder itself
        encoded = encoder(**model_inputs)
        out["embedding"] = encoded.pooler_output.float()
        if return_tokens:
            out["tokens"] = encoded.last_hidden_state.float()
            out["token_mask"] = encoded.token_mask
        return out

    def postprocess(self, model_outputs, return_windows=False, return_tokens=False):
        embeddings = torch.cat([out["embedding"] for out in model_outputs]).numpy()
        windows = torch.cat([out["window"] for out in model_outputs]).numpy()
        starts = torch.cat([out["start_seconds"] for out in model_outputs]).numpy()
        order = np.unique(windows)
        per_window = np.stack([embeddings[windows == w].mean(0) for w in order]).astype(np.float32)
        result = {"embedding": per_window.mean(0), "windows": len(order)}
        if return_windows:
            result["window_embeddings"] = per_window
            result["window_starts"] = [float(starts[windows == w][0]) for w in order]
        if return_tokens:
            tokens = torch.cat([out["tokens"] for out in model_outputs]).numpy()
            masks = torch.cat([out["token_mask"] for out in model_outputs]).numpy()
            result["tokens"] = [tokens[i][masks[i]] for i in range(len(tokens))]
        return result


def register_pipelines() -> None:
    """Register both tasks with transformers' `PIPELINE_REGISTRY` (idempotent)."""
    for task, pipeline_class in ((CLASSIFICATION_TASK, WaveformClassificationPipeline),
                                 (FEATURE_EXTRACTION_TASK, WaveformFeatureExtractionPipeline)):
        if PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl") is not pipeline_class:
            PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=pipeline_class, pt_model=AutoModel)


__all__ = [
    "CLASSIFICATION_TASK",
    "FEATURE_EXTRACTION_TASK",
    "WaveformClassificationPipeline",
    "WaveformFeatureExtractionPipeline",
    "register_pipelines",
]
