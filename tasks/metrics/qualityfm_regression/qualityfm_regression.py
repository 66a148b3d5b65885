"""`evaluate` module: blood-pressure regression metrics of the QualityFM ABP task.

Load it with `qualityfm_hf.tasks.metrics.load_metric("qualityfm_regression")`, or
`evaluate.load(<this directory>)`. `evaluate` copies this file into its modules cache and imports it
from there, so relative imports would break; the absolute import below works because the package is
installed. `_compute` only wraps `regression_metrics`, so the maths is tested once.
"""

import datasets
import evaluate

from qualityfm_hf.tasks.metrics.regression import regression_metrics

_DESCRIPTION = """
MAE, ME and SD of (pred - true: device minus reference), MASE against the training-mean predictor, BHS grade and the AAMI
criterion (|ME| <= 5 mmHg and SD <= 8 mmHg) for blood pressure in mmHg. Predictions are either one
value per sample or two columns [SBP, DBP]; two-column results are prefixed `sbp_` and `dbp_`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`, or of `[sbp, dbp]` pairs): predicted pressure in mmHg.
    references: the reference pressures, same shape as predictions.
    y_train (`list`, *optional*): training labels (same columns) for MASE; computed on the TRAINING split.
    naive_mae (`float` or `list` of `float`, *optional*): precomputed MASE scale instead of y_train.
    target_names (`list` of `str`, *optional*): key prefixes for 2-column input (default sbp, dbp).
Returns:
    `dict`: mae, me, sd, [mase], bhs_within_5/10/15, bhs_grade, aami_passed, n (prefixed per column).
Examples:
    >>> metric = load_metric("qualityfm_regression")
    >>> metric.compute(predictions=[[120, 80]], references=[[124, 79]])["sbp_mae"]
    4.0
"""

_CITATION = """
@article{obrien1993bhs,
  title={The British Hypertension Society protocol for the evaluation of blood pressure measuring devices},
  author={O'Brien, Eoin and Petrie, James and Littler, William and others},
  journal={Journal of Hypertension},
  volume={11},
  pages={S43--S62},
  year={1993}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class QualityfmRegression(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # evaluate picks whichever schema matches the first batch: [SBP, DBP] rows or single values.
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float64")),
                        "references": datasets.Sequence(datasets.Value("float64")),
                    }
                ),
                datasets.Features(
                    {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
                ),
            ],
        )

    def _compute(self, predictions, references, y_train=None, naive_mae=None, target_names=None):
        return regression_metrics(
            references, predictions, y_train=y_train, naive_mae=naive_mae, target_names=target_names
        )
