"""How well a model predicts on data it never saw: discrimination, calibration, interval coverage,
and the comparison models (plain logistic regression, gradient boosting) fitted on the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from data_schemas import FIELDS_BY_NAME, Kind
from predictor.features import MODEL_FIELDS
from predictor.model import AdditiveModel


def calibration_slope(responded: np.ndarray, probability: np.ndarray) -> float:
    """Slope ``b`` of the logistic recalibration ``logit P(y) = a + b logit(p)`` (1 is ideal;
    below 1, predictions are too extreme)."""
    lp = logit(np.clip(probability, 1e-12, 1 - 1e-12))[:, None]
    return float(LogisticRegression(C=np.inf).fit(lp, responded).coef_[0, 0])


def metrics(
    responded: np.ndarray,
    probability: np.ndarray,
    *,
    true_probability: np.ndarray | None = None,
    interval: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Discrimination and calibration of predicted probabilities against observed outcomes.

    Parameters
    ----------
    responded : numpy.ndarray, shape (n,)
        0/1 outcomes.
    probability : numpy.ndarray, shape (n,)
        Predicted probabilities.
    true_probability : numpy.ndarray, shape (n,), optional
        The simulator's probabilities: adds the oracle AUC and, with ``interval``, coverage.
    interval : (low, high), optional
        The predicted intervals.

    Returns
    -------
    dict
        ``n``, ``response_rate``, ``auc``, ``log_loss``, ``brier``, ``calibration_slope``,
        ``calibration_in_the_large`` (observed minus mean predicted rate), and with the truth
        ``oracle_auc``, ``auc_gap`` (oracle minus model) and ``interval_coverage``.
    """
    y = np.asarray(responded, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    out = {
        "n": len(y),
        "response_rate": float(y.mean()),
        "auc": float(roc_auc_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0.0, 1.0])),
        "brier": float(brier_score_loss(y, p)),
        "calibration_slope": calibration_slope(y, p),
        "calibration_in_the_large": float(y.mean() - p.mean()),
    }
    if true_probability is not None:
        truth = np.asarray(true_probability, dtype=np.float64)
        out["oracle_auc"] = float(roc_auc_score(y, truth))
        out["auc_gap"] = out["oracle_auc"] - out["auc"]
        if interval is not None:
            low, high = interval
            out["interval_coverage"] = float(np.mean((truth >= low) & (truth <= high)))
    return out


NUMBER_FIELDS = tuple(
    f for f in MODEL_FIELDS if FIELDS_BY_NAME[f].kind in (Kind.NUMBER, Kind.INTEGER, Kind.BOOLEAN)
)
CATEGORY_FIELDS = tuple(f for f in MODEL_FIELDS if f not in NUMBER_FIELDS)


def logistic_regression(seed: int) -> Pipeline:
    """Plain logistic regression on the raw values: median imputation with missing indicators,
    standardised numbers, one-hot categories (a missing category is its own level)."""
    numbers = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    categories = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    prepare = ColumnTransformer(
        [
            ("numbers", numbers, list(NUMBER_FIELDS)),
            ("categories", categories, list(CATEGORY_FIELDS)),
        ]
    )
    return make_pipeline(prepare, LogisticRegression(max_iter=1000, random_state=seed))


def gradient_boosting(seed: int) -> HistGradientBoostingClassifier:
    """Histogram gradient boosting with native missing values and categories, early stopping."""
    return HistGradientBoostingClassifier(
        categorical_features="from_dtype", early_stopping=True, random_state=seed
    )


def _categories_as_objects(clean: pd.DataFrame) -> pd.DataFrame:
    return clean[list(MODEL_FIELDS)].astype({name: object for name in CATEGORY_FIELDS})


def _model_fields(clean: pd.DataFrame) -> pd.DataFrame:
    return clean[list(MODEL_FIELDS)]


@dataclass(frozen=True)
class Comparison:
    """A standard model fitted on the same data, to show what the additive model gives up."""

    name: str
    build: Callable[[int], Any]
    prepare: Callable[[pd.DataFrame], pd.DataFrame]

    def fit(self, clean: pd.DataFrame, responded: np.ndarray, *, seed: int) -> Any:
        """The fitted estimator.

        A number field no training patient has carries no information; it is given one value
        (0) so that gradient boosting's binning accepts it, and so is ignored.
        """
        inputs = self.prepare(clean)
        empty = [c for c in inputs if inputs[c].dtype.kind == "f" and inputs[c].isna().all()]
        return self.build(seed).fit(inputs.assign(**dict.fromkeys(empty, 0.0)), responded)

    def probability(self, estimator: Any, clean: pd.DataFrame) -> np.ndarray:
        """A fitted estimator's probabilities of response for clean records."""
        return estimator.predict_proba(self.prepare(clean))[:, 1]


COMPARISONS = (
    Comparison("logistic regression", logistic_regression, _categories_as_objects),
    Comparison("gradient boosting", gradient_boosting, _model_fields),
)


def evaluate_additive(model: AdditiveModel, clean: pd.DataFrame) -> dict[str, float]:
    """:func:`metrics` of the additive model on clean records with ``responded`` (and, when
    present, ``true_probability``)."""
    scores = model.score(model.features.design(clean))
    truth = (
        clean["true_probability"].to_numpy() if clean["true_probability"].notna().all() else None
    )
    return metrics(
        clean["responded"].to_numpy(),
        scores.probability,
        true_probability=truth,
        interval=(scores.low, scores.high),
    )
