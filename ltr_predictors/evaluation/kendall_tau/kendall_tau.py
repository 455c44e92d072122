"""Kendall tau-b rank correlation as an `evaluate` metric, shipped with the package so it loads offline.

The Hub has no Kendall-tau correlation metric (`kendall_tau_distance` is a permutation distance), so we wrap
`scipy.stats.kendalltau`. Predictions are scores where higher means longer, references are output lengths:
a positive tau means the predictor orders prompts the right way.
"""

import datasets
import evaluate
from scipy.stats import kendalltau

_DESCRIPTION = "Kendall tau-b between predicted scores and true output lengths (scipy.stats.kendalltau)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): predicted scores, higher = longer expected output.
    references (list of float): true output lengths.
    return_pvalue (bool): also return the two-sided p-value. Default False.
Returns:
    kendall_tau (float): tau-b in [-1, 1]; p_value (float) when asked.
Example:
    >>> metric = evaluate.load("path/to/kendall_tau")
    >>> metric.compute(predictions=[1, 2, 3, 4, 5], references=[1, 3, 2, 4, 5])["kendall_tau"]
    0.8
"""
_CITATION = """@article{kendall1945treatment, title={The treatment of ties in ranking problems},
author={Kendall, Maurice G}, journal={Biometrika}, volume={33}, number={3}, pages={239--251}, year={1945}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class KendallTau(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(
        self, predictions: list[float], references: list[float], return_pvalue: bool = False
    ) -> dict[str, float]:
        result = kendalltau(predictions, references, variant="b")
        if return_pvalue:
            return {"kendall_tau": float(result.statistic), "p_value": float(result.pvalue)}
        return {"kendall_tau": float(result.statistic)}
