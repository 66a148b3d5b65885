"""Render Hub model cards from the Jinja2 templates in `model_cards/` (as `huggingface_hub.ModelCard` templates).

All model cards of the package come from here: `write_model_card` (a fine-tuned head) and `write_encoder_card` (an
exported encoder) fill the templates `model_cards/finetuned_template.md` and `model_cards/pretrained_template.md`
(top of the repository; installed, `qualityfm_hf/model_cards/`).

Templates are Jinja2 with `StrictUndefined` (a missing field is an error, not an empty string):
- in the YAML front matter every value is written as a JSON scalar (valid YAML, so ':' or '#' in a value
  cannot break the metadata); lists are written with a loop, one item per element
  (`{% for item in datasets %}- {{ item }}{% endfor %}`);
- in the Markdown body a value is inserted as text (lists are joined with ", ").
After rendering, the front matter is parsed with `huggingface_hub.ModelCard`, the `model-index` is
filled from `fields["eval_results"]`, and the metadata is written back in the Hub's canonical form.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2
import jinja2.meta
import numpy as np
from huggingface_hub import EvalResult, ModelCard

from ..finetuning.task_data import get_task
from ..modeling.configuration_qualityfm import PRESETS, QualityFMConfig

# Installed, the templates are package data of the package (`qualityfm_hf/model_cards/`); in a checkout they are
# the repository's top-level `model_cards/`.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
MODEL_CARDS_DIR = next((path for path in (_PACKAGE_DIR / "model_cards", _PACKAGE_DIR.parent / "model_cards")
                        if path.is_dir()), _PACKAGE_DIR / "model_cards")
TEMPLATE_NAMES = ("finetuned", "pretrained")
# Keys of `fields` that are not template variables: they are applied to the parsed metadata.
SPECIAL_FIELDS = ("eval_results", "extra_metadata")


def template_path(template: str | Path) -> Path:
    """Path of a template given by name (`"finetuned"`, `"pretrained"`) or as a path to a `.md` file."""
    if str(template) in TEMPLATE_NAMES:
        path = MODEL_CARDS_DIR / f"{template}_template.md"
        if not path.is_file():
            raise FileNotFoundError(
                f"model card template {path} is missing; reinstall qualityfm-hf (templates ship as package "
                "data under qualityfm_hf/model_cards/) or pass the path of a template."
            )
        return path
    path = Path(template)
    if not path.is_file():
        raise ValueError(
            f"template {template!r} not found. Must be one of {TEMPLATE_NAMES} or the path of a .md file."
        )
    return path


def template_fields(template: str | Path) -> list[str]:
    """Sorted variable names a template needs (besides the optional `SPECIAL_FIELDS`)."""
    text = template_path(template).read_text(encoding="utf-8")
    return sorted(jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(text)))


def _split_front_matter(text: str) -> tuple[str, str]:
    match = re.match(r"^---\r?\n(.*?)\r?\n---\r?\n", text, flags=re.DOTALL)
    if match is None:
        raise ValueError("a model card template must start with YAML front matter between two '---' lines.")
    return match.group(1), text[match.end() :]


def _as_text(value) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(str(v) for v in value)
    return str(value)


def _environment(finalize) -> jinja2.Environment:
    # trim_blocks/lstrip_blocks: a `{% for %}` line leaves no blank line behind in the YAML.
    return jinja2.Environment(undefined=jinja2.StrictUndefined, finalize=finalize, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def render_model_card(template: str | Path, fields: Mapping) -> str:
    """Fill a model card template and check that the result is a valid Hub model card.

    Args:
        template (`str` or `Path`): `"finetuned"`, `"pretrained"`, or the path of a template file.
        fields (`Mapping`): one value per placeholder (see `template_fields(template)`), plus optionally
            - `eval_results`: `huggingface_hub.EvalResult`s (or dicts of their arguments) for the
              `model-index`; needs the `model_name` field;
            - `extra_metadata`: a dict merged into the metadata, e.g. `{"license_name": ...,
              "license_link": ...}` when `license` is `"other"`.

    Returns:
        `str`: the card (front matter + Markdown), ready for `ModelCard(text).push_to_hub(repo_id)` or to
        be written as `README.md`.

    Raises:
        `ValueError`: a placeholder has no value, a key of `fields` matches no placeholder (a typo), or the
        metadata misses `license`, `library_name: transformers` or the `qualityfm` tag.
    """
    text = template_path(template).read_text(encoding="utf-8")
    needed = set(template_fields(template))
    given = set(fields) - set(SPECIAL_FIELDS)
    if needed - given:
        raise ValueError(f"model card fields missing: {sorted(needed - given)}. Add them to `fields`.")
    if given - needed:
        raise ValueError(
            f"model card fields not used by {template!s}: {sorted(given - needed)}. "
            f"Check the spelling; the template's fields are {sorted(needed)}."
        )
    front_matter, body = _split_front_matter(text)
    values = {k: v for k, v in fields.items() if k not in SPECIAL_FIELDS}
    metadata_text = _environment(json.dumps).from_string(front_matter).render(values).rstrip("\n")
    body = _environment(_as_text).from_string(body).render(values)
    card = ModelCard(f"---\n{metadata_text}\n---\n{body}")

    for key, value in dict(fields.get("extra_metadata") or {}).items():
        setattr(card.data, key, value)
    if fields.get("eval_results"):
        if "model_name" not in fields:
            raise ValueError("eval_results need a `model_name` field: the Hub's model-index is keyed by it.")
        card.data.model_name = fields["model_name"]
        card.data.eval_results = [
            r if isinstance(r, EvalResult) else EvalResult(**r) for r in fields["eval_results"]
        ]

    metadata = card.data.to_dict()
    problems = []
    if not metadata.get("license"):
        problems.append("license is empty")
    if metadata.get("library_name") != "transformers":
        problems.append(f"library_name is {metadata.get('library_name')!r}, not 'transformers'")
    if "qualityfm" not in (metadata.get("tags") or []):
        problems.append("the 'qualityfm' tag is missing")
    if problems:
        raise ValueError(f"rendered model card metadata is invalid: {'; '.join(problems)}.")
    return str(card)


def eval_results_from_metrics(
    metrics: Mapping[str, float],
    *,
    task_type: str,
    dataset_type: str,
    dataset_name: str,
    dataset_split: str = "test",
    task_name: str | None = None,
) -> list[EvalResult]:
    """One `EvalResult` per finite metric, e.g. from `classification_metrics(...)` (counts are skipped)."""
    skip = {"threshold", "tp", "tn", "fp", "fn", "n"}
    return [
        EvalResult(
            task_type=task_type,
            task_name=task_name,
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split=dataset_split,
            metric_type=name,
            metric_value=float(value),
        )
        for name, value in metrics.items()
        if name not in skip
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    ]


def format_metrics_table(
    results: Mapping[str, tuple[float, float, float]], *, confidence: float = 0.95, digits: int = 3
) -> str:
    """Markdown table of `{metric: (point, low, high)}`, as returned by `bootstrap_ci`; NaN shows as "n/a"."""

    def fmt(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"

    rows = [f"| metric | value | {confidence:.0%} CI |", "|---|---|---|"]
    rows += [f"| {name} | {fmt(p)} | {fmt(lo)} – {fmt(hi)} |" for name, (p, lo, hi) in results.items()]
    return "\n".join(rows)


def _is_repo_id(model) -> bool:
    return isinstance(model, str) and model.count("/") == 1 and not Path(model).exists()


NORMALISATION_TEXT = {
    "minmax_joint": "joint min-max to [-1, 1] over both present channels per window (as in pretraining)",
    "minmax_channel": "min-max to [-1, 1] per channel and window",
    "zscore_channel": "zero mean and unit variance per channel and window",
    "robust_channel": "per channel and window, the median subtracted, divided by half the 1st-99th percentile "
    "range and clipped at ±4",
    "none": "none (physical units)",
}


def preprocessing_description(output_dir: str | Path, config) -> str:
    """The card's normalisation line, from the feature extractor saved next to the model."""
    import json

    path = Path(output_dir) / "preprocessor_config.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    text = NORMALISATION_TEXT.get(saved.get("normalization", "minmax_joint"), str(saved.get("normalization")))
    if saved.get("bandpass"):
        text = "band-pass (PPG 0.5-8 Hz, ECG 0.5-40 Hz, zero-phase Butterworth order 2), then " + text
    crop = getattr(config, "crop_seconds", None)
    if crop:
        text += (f"; trained on random {crop:g}-s crops, and each window is scored as the mean over half-overlapping "
                 f"{crop:g}-s crops")
    if getattr(config, "classifier_rhythm_features", 0):
        text += ("; the head also reads eight RR-interval statistics of each whole window's ECG (heart rate, RR "
                 "variability and irregularity, QRS consistency; `rhythm_qualityfm.py`), and started as a logistic "
                 "regression on them")
    return text + " (`preprocessor_config.json`; the feature extractor applies it)."


def cross_validation_table(task: str, cv: dict) -> tuple[str, str, dict]:
    """Markdown table of the model and the baselines over the same folds, its description, and the headline metrics
    (pooled out-of-fold, first repeat) for the card's machine-readable results."""
    regression = get_task(task).PROBLEM == "regression"
    names = ("sbp_mae", "dbp_mae", "sbp_mase", "dbp_mase") if regression else ("auroc", "auprc")

    def cell(summary: dict, name: str) -> str:
        stats = summary["over_folds"].get(name)
        return "n/a" if not stats or not np.isfinite(stats["mean"]) else f"{stats['mean']:.3f} ± {stats['sd']:.3f}"

    header = "| method | " + " | ".join(f"{n} (mean ± sd over folds)" for n in names) + " | pooled out-of-fold |"
    rows = [header, "|---" * (len(names) + 2) + "|"]
    for method, summary in cv.items():
        if not isinstance(summary, dict) or "over_folds" not in summary:
            continue
        pooled = summary["pooled_oof"][0]
        if regression:
            extra = (f"SBP MAE {pooled['sbp_mae']:.2f} mmHg, MASE {pooled.get('sbp_mase', float('nan')):.3f}; "
                     f"DBP MAE {pooled['dbp_mae']:.2f}, MASE {pooled.get('dbp_mase', float('nan')):.3f}")
        else:
            low, high = pooled.get("auroc_ci95", [float("nan")] * 2)
            extra = f"AUROC {pooled['auroc']:.3f} (95% CI {low:.3f}–{high:.3f})"
        label = "QualityFM (this recipe)" if method == "model" else method.replace("baseline:", "baseline: ")
        rows.append(f"| {label} | " + " | ".join(cell(summary, n) for n in names) + f" | {extra} |")
    description = (
        f"{cv['repeats']} × {cv['folds']}-fold cross-validation by record on {cv['records']} records "
        f"({cv['windows']} windows), stratified by class. In each fold the model is fine-tuned on the other folds "
        f"(with {int(100 * cv['inner_validation_fraction'])}% of their records held out for early stopping) and "
        "scored on records it never saw; the transparent baselines (`qualityfm_hf.finetuning.baselines`) are fitted and scored "
        "on the same folds and windows. Metrics are per " + ("window" if regression else "record (mean over its "
        "windows)") + ". The released model was then trained once more on all records; its own performance on new "
        "data is estimated by, not equal to, these figures.")
    headline = {k: v for k, v in cv["model"]["pooled_oof"][0].items() if isinstance(v, float)}
    return "\n".join(rows), description, headline


def head_fit_description(train: Mapping) -> str:
    """How the released head was fitted, from `metrics["train"]`."""
    if train.get("head_fit") == "ridge":
        return (f"a ridge regression on the frozen encoder's pooled embeddings (alpha {train.get('ridge_alpha', '?'):g}, "
                "chosen by an inner record-grouped cross-validation); the encoder is the base model's, unchanged.")
    return "encoder and head fine-tuned with the transformers Trainer, early stopping on held-out records."


def write_model_card(output_dir: str | Path, task: str, metrics: dict, config, repo_id: str | None = None) -> Path:
    """Fill `model_cards/finetuned_template.md` for a fine-tuned head and write it as `README.md`."""
    module = get_task(task)
    regression = module.PROBLEM == "regression"
    if "cross_validation" in metrics:
        table, evaluation, test = cross_validation_table(task, metrics["cross_validation"])
    else:
        test = metrics["test"]
        headline = {name: tuple(test["ci95"][name]) for name in module.HEADLINE_METRICS
                    if name in test.get("ci95", {})}
        others = ("sbp_me", "sbp_sd", "dbp_me", "dbp_sd", "sbp_mase", "dbp_mase") if regression else (
            "accuracy", "sensitivity", "specificity", "ppv", "auprc")
        table = format_metrics_table(headline) + "\n\nOther test metrics (point estimates): " + ", ".join(
            f"{k} {test[k]:.3f}" for k in others if isinstance(test.get(k), float))
        records = metrics.get("records_per_split") or {}
        evaluation = (f"Held-out test split ({records.get('test', '?')} records, "
                      f"{metrics.get('windows_per_split', {}).get('test', '?')} windows) never used for training, "
                      "early stopping or the threshold. Metrics are computed per "
                      + ("window" if regression else "record") + ".")
    window = (metrics.get("dataset_options") or {}).get("window_seconds", module.DEFAULT_WINDOW_SECONDS)
    model_name = f"QualityFM {module.NAME}"
    records = metrics.get("records_per_split") or {}
    inner = metrics.get("cross_validation", {}).get("inner_validation_fraction", 0.15)
    threshold = metrics.get("decision_threshold")
    fields = {
        **{k: v for k, v in module.CARD.items() if k not in ("task_tag",)},
        "task_tag": module.CARD["task_tag"],
        "license": "apache-2.0",
        "datasets": [module.CARD["dataset_name"]],
        "metrics": list(module.HEADLINE_METRICS),
        "base_model": str(metrics.get("model")),
        # Hub metadata accepts only a repo id as base_model: a preset name or a local folder stays in the card's text.
        **({"extra_metadata": {"base_model": metrics["model"]}} if _is_repo_id(metrics.get("model")) else {}),
        "base_model_url": "https://arxiv.org/abs/2509.06516",
        "model_name": model_name,
        "head_class": module.HEAD_CLASS,
        "head_fit_description": head_fit_description(metrics.get("train") or {}),
        "auto_class": "AutoModelForSequenceClassification",
        "split_description": f"by record (never by window), seeded (seed {metrics.get('seed')}): "
        + (", ".join(f"{n} {s}" for s, n in records.items()) + " records." if records else
           f"{metrics.get('cross_validation', {}).get('records', '?')} records in cross-validation; the released "
           f"model is trained on all of them ({int(100 * (1 - inner))}%) with {int(100 * inner)}% "
           "held out for early stopping."),
        "window_seconds": window,
        "window_samples": int(round(float(window) * config.sampling_rate)) if window else "variable",
        "normalisation": preprocessing_description(output_dir, config),
        "evaluation_description": evaluation,
        "results_table": table,
        "ci_unit": "records",
        "n_resamples": metrics.get("n_bootstrap", 1000),
        "threshold_description": "not applicable (regression)." if regression else
        f"{threshold:.4f}, chosen on the " + ("pooled out-of-fold predictions of the cross-validation"
                                              if "cross_validation" in metrics else "validation split")
        + f" by maximising {module.THRESHOLD_CRITERION} and stored as `config.decision_threshold`.",
        "repo_id": repo_id or "ORG/NAME",
        "revision": "main",
        "citation": "Guo Z, Chen T, Ferrario M. QualityFM: a Multimodal Physiological Signal Foundation Model with "
        "Self-Distillation for Signal Quality Challenges in Critically Ill Patients. arXiv:2509.06516, 2025.",
        "eval_results": eval_results_from_metrics(
            {k: v for k, v in test.items() if k in module.HEADLINE_METRICS},
            task_type="waveform-regression" if regression else "waveform-classification",
            dataset_type=module.CARD["dataset_url"], dataset_name=module.CARD["dataset_name"], task_name=module.NAME),
    }
    path = Path(output_dir) / "README.md"
    path.write_text(render_model_card("finetuned", fields), encoding="utf-8")
    return path




def objective_description(config: QualityFMConfig) -> str:
    """What a pretraining config optimises, in words, from its loss weights."""
    terms = []
    if config.distillation_loss_weight:
        terms.append(f"the student matches an EMA teacher that sees the better window ({config.distillation_target} "
                     f"distillation, weight {config.distillation_loss_weight:g})")
    if config.band_power_loss_weight:
        terms.append(f"predicts the better window's log band powers from its pooled embedding (weight "
                     f"{config.band_power_loss_weight:g})")
    if config.amplitude_loss_weight:
        terms.append(f"reconstructs the better window's {config.spectral_target.replace('_', '-')} spectrum "
                     f"(weight {config.amplitude_loss_weight:g})")
    if config.quality_loss_weight:
        terms.append(f"predicts the signal-quality score of each channel it sees (weight {config.quality_loss_weight:g})")
    if config.rhythm_loss_weight:
        terms.append(f"predicts RR-interval statistics of its ECG (weight {config.rhythm_loss_weight:g})")
    if config.koleo_loss_weight:
        terms.append(f"a KoLeo term spreads the embeddings (weight {config.koleo_loss_weight:g})")
    return "the student encoder sees the worse window and " + "; ".join(terms) if terms else "no loss terms"


def write_encoder_card(directory: str | Path, config: QualityFMConfig, num_parameters: int, fields: Mapping) -> Path:
    """`README.md` of an exported encoder from `model_cards/pretrained_template.md`."""
    preset = next((name for name, values in PRESETS.items()
                   if all(getattr(config, k) == v for k, v in values.items())), "custom")
    values = {
        "license": "apache-2.0",
        "datasets": ["physionet/challenge-2015"],
        "model_name": f"QualityFM-{preset.capitalize()} encoder",
        "preset": preset,
        "num_parameters": f"{num_parameters / 1e6:.2f} M",
        "objective_description": objective_description(config),
        "num_hidden_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "window_size": config.window_size,
        "pooling": config.pooling,
        "token_seconds": f"{config.segment_seconds / config.segment_tokens:.2f}",
        "dataset_description": "the quality pairs given to `qualityfm pretrain` (see the run's command).",
        "data_license": "that of the pretraining records.",
        "normalisation": "joint min-max to [-1, 1] over the present channels of each window (the feature "
                         "extractor applies it).",
        "training_description": "See the `config.json` of the run for every recipe setting.",
        "limitations": "Pretrained on the records named above only; its embedding has not been evaluated on "
                       "other monitors or populations.",
        "repo_id": "ORG/NAME",
        "revision": "main",
        "citation": "Guo Z, Chen T, Ferrario M. QualityFM: a Multimodal Physiological Signal Foundation Model "
                    "with Self-Distillation for Signal Quality Challenges in Critically Ill Patients. "
                    "arXiv:2509.06516, 2025.",
    }
    values.update(fields)
    path = Path(directory) / "README.md"
    path.write_text(render_model_card("pretrained", values), encoding="utf-8")
    return path




__all__ = [
    "MODEL_CARDS_DIR",
    "cross_validation_table",
    "objective_description",
    "preprocessing_description",
    "write_encoder_card",
    "write_model_card",
    "TEMPLATE_NAMES",
    "eval_results_from_metrics",
    "format_metrics_table",
    "render_model_card",
    "template_fields",
    "template_path",
]
