"""How well a model does on data it did not see: metrics, comparison models, the evaluation
report and the model card.

Above the model layer; training and the command line use the names below. Inside, data flows
one way: metrics (``_metrics``), comparison models (``_comparison``) and the bootstrap
(``_bootstrap``: optimism correction and prediction instability) -> the report's numbers
(``_report``: :class:`Report`) -> Markdown (``_markdown``) and figures (``_figures``, with
matplotlib) -> the model card (``_card``) -> files (``_files``).
"""

from predictor.evaluation._bootstrap import BootstrapValidation, bootstrap_validation
from predictor.evaluation._card import (
    FLAT_SD,
    flat_model_text,
    model_card,
    repeated_patients_text,
)
from predictor.evaluation._comparison import (
    COMPARISONS,
    CrossValidation,
    cross_validate,
    evaluate_model,
    pooled_scores,
)
from predictor.evaluation._files import ReportFiles, figures_module, write_report
from predictor.evaluation._markdown import NO_FIGURES_NOTE
from predictor.evaluation._metrics import Metrics, metrics
from predictor.evaluation._report import (
    BOOTSTRAP_FIGURE_NAMES,
    FIGURE_NAMES,
    FIGURES_DIR,
    METRICS_NAME,
    REPORT_NAME,
    Report,
    build_report,
    training_distribution,
)
from predictor.evaluation._sample_size import (
    SampleSize,
    cox_snell_r2,
    max_cox_snell_r2,
    minimum_sample_size,
    nagelkerke_r2,
)

__all__ = [
    "BOOTSTRAP_FIGURE_NAMES",
    "COMPARISONS",
    "FIGURES_DIR",
    "FIGURE_NAMES",
    "FLAT_SD",
    "METRICS_NAME",
    "NO_FIGURES_NOTE",
    "REPORT_NAME",
    "BootstrapValidation",
    "CrossValidation",
    "Metrics",
    "Report",
    "ReportFiles",
    "SampleSize",
    "bootstrap_validation",
    "build_report",
    "cox_snell_r2",
    "cross_validate",
    "evaluate_model",
    "figures_module",
    "flat_model_text",
    "max_cox_snell_r2",
    "metrics",
    "minimum_sample_size",
    "model_card",
    "nagelkerke_r2",
    "pooled_scores",
    "repeated_patients_text",
    "training_distribution",
    "write_report",
]
