"""`evaluate` module: binary classification metrics of the QualityFM tasks (false VT alarm, AF).

Load it with `qualityfm_hf.tasks.metrics.load_metric("qualityfm_classification")`, or
`evaluate.load(<this directory>)`. `evaluate` copies this file into its modules cache and imports it
from there, so relative imports would break; the absolute import below works because the package is
installed. `_compute` only wraps `classification_metrics`, so the maths is tested once.
"""

import datasets
import evaluate

from qualityfm_hf.tasks.metrics.classification import classification_metrics

_DESCRIPTION = """
AUROC, AUPRC, accuracy, sensitivity (TPR), specificity (TNR), PPV, F1 and the PhysioNet/CinC 2015 score
(TP+TN)/(TP+TN+FP+5*FN) for a binary task with 1 = positive class. Class 1 is predicted when
probability >= threshold. Undefined metrics (e.g. AUROC with one class) are NaN, with a warning.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): predicted probability of class 1, in [0, 1] (apply a sigmoid to logits).
    references (`list` of `int`): true labels in {0, 1}.
    threshold (`float`, defaults to 0.5): decision threshold; choose it on validation data with
        `qualityfm_hf.tasks.metrics.choose_threshold`, never on the test split.
Returns:
    `dict`: auroc, auprc, accuracy, sensitivity, specificity, ppv, f1, physionet_score (fractions),
    threshold, tp, tn, fp, fn, n.
Examples:
    >>> metric = load_metric("qualityfm_classification")
    >>> metric.compute(predictions=[0.9, 0.2, 0.6, 0.1], references=[1, 1, 0, 0], threshold=0.5)["accuracy"]
    0.5
"""

_CITATION = """
@article{clifford2015physionet,
  title={The PhysioNet/Computing in Cardiology Challenge 2015: Reducing False Arrhythmia Alarms in the ICU},
  author={Clifford, Gari D. and Silva, Ikaro and Moody, Benjamin and others},
  journal={Computing in Cardiology},
  volume={42},
  pages={273--276},
  year={2015}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class QualityfmClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, threshold=0.5):
        return classification_metrics(references, predictions, threshold=threshold)
