"""How well a model does on data it did not see: metrics, comparison models, the evaluation
report (numbers, Markdown, figures) and the model card.

Above the model layer; training and the command line use the names below.
"""

from predictor.evaluation._card import model_card
from predictor.evaluation._metrics import COMPARISONS, cross_validate, evaluate_additive, metrics
from predictor.evaluation._report import (
    FIGURES_DIR,
    METRICS_NAME,
    NO_FIGURES_NOTE,
    REPORT_NAME,
    build_report,
    training_distribution,
    write_report,
)

__all__ = [
    "COMPARISONS",
    "FIGURES_DIR",
    "METRICS_NAME",
    "NO_FIGURES_NOTE",
    "REPORT_NAME",
    "build_report",
    "cross_validate",
    "evaluate_additive",
    "metrics",
    "model_card",
    "training_distribution",
    "write_report",
]
