"""Render Hub model cards from the Jinja2 templates in `model_cards/` (as `huggingface_hub.ModelCard` templates).

The canonical templates are `model_cards/finetuned_template.md` and `model_cards/pretrained_template.md`
at the top of the repository. Installed, they live in `qualityfm_hf/model_cards/`; both places are
`../model_cards` relative to this file's package directory, so one lookup serves a checkout, an editable
install and a wheel.

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
from huggingface_hub import EvalResult, ModelCard

MODEL_CARDS_DIR = Path(__file__).resolve().parents[1] / "model_cards"
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


__all__ = [
    "MODEL_CARDS_DIR",
    "TEMPLATE_NAMES",
    "eval_results_from_metrics",
    "format_metrics_table",
    "render_model_card",
    "template_fields",
    "template_path",
]
