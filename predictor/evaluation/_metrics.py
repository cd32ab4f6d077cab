"""How well predicted probabilities match outcomes: discrimination, calibration, interval
coverage and clinical usefulness (net benefit). Functions of arrays; no model is fitted here
except the recalibration fits the calibration measures need.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit, ndtri
from scipy.stats import binomtest, rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, confusion_matrix, log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer

NEWTON_ITERATIONS = 50
"""Most Newton steps of :func:`calibration_slope` before it hands the fit to scikit-learn
(from perfect calibration, a well-posed fit takes 3 to 6)."""


def finite_or_none(value: float) -> float | None:
    """``value``, or None where it is NaN or infinite: a metric as a JSON file keeps it (JSON
    has no NaN)."""
    return value if math.isfinite(value) else None


FLAT_LOGIT_RANGE = 1e-3
"""Predictions whose log-odds all lie within this of each other are one probability for
everyone, to rounding: :func:`calibration_slope` has no slope to fit to them."""


def calibration_slope(responded: np.ndarray, probability: np.ndarray) -> float:
    """Slope ``b`` of the logistic recalibration ``logit P(y) = a + b logit(p)`` (1 is ideal;
    below 1, predictions are too extreme).

    The maximum-likelihood fit by Newton's method on the two parameters, from ``(0, 1)``
    (perfect calibration), to a step below 1e-10: a few passes over the data. It is the fit
    scikit-learn's ``LogisticRegression(C=inf, solver="newton-cholesky", tol=1e-10)`` makes,
    at a hundredth of the cost (its checks and set-up dominate at these sizes, and a training
    run computes about 40 slopes); where Newton's method does not converge, that fit is made
    instead.

    NaN where no finite slope exists: one probability for everyone (log-odds within
    :data:`FLAT_LOGIT_RANGE` of each other: a model whose every term was shrunk to zero differs
    between patients by its fit's rounding, about 1e-9, and a slope fitted to that is noise in
    the thousands), one outcome only, or outcomes the prediction separates (every responder's
    probability at or above every non-responder's, or at or below: the likelihood grows without
    end as the slope does, and a fit stops at an arbitrary large number that would read as a
    measurement).
    """
    lp = logit(np.clip(np.asarray(probability, dtype=np.float64), 1e-12, 1 - 1e-12))
    if np.ptp(lp) < FLAT_LOGIT_RANGE:  # one probability for everyone: no slope to fit
        return float("nan")
    y = np.asarray(responded, dtype=np.float64)
    responders, others = lp[y == 1.0], lp[y != 1.0]
    if not len(responders) or not len(others):
        return float("nan")
    if others.max() <= responders.min() or responders.max() <= others.min():
        return float("nan")  # separated: the slope's estimate is infinite
    design = np.column_stack([np.ones_like(lp), lp])
    beta = np.array([0.0, 1.0])
    for _ in range(NEWTON_ITERATIONS):
        mu = expit(design @ beta)
        weight = mu * (1.0 - mu)
        hessian = design.T @ (design * weight[:, None])
        try:
            step = np.linalg.solve(hessian, design.T @ (y - mu))
        except np.linalg.LinAlgError:
            break
        if not np.isfinite(step).all():
            break
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            return float(beta[1])
    # Newton's method to a tight tolerance: lbfgs's default stopped up to 0.002 short of the MLE.
    fit = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-10)
    return float(fit.fit(lp[:, None], y).coef_[0, 0])


def calibration_intercept(responded: np.ndarray, probability: np.ndarray) -> float:
    """Intercept ``a`` of the logistic recalibration ``logit P(y) = a + logit(p)``, the slope held
    at 1 (the model's log-odds as an offset): 0 is ideal; above 0, the predictions are too low
    on average. NaN when every outcome is the same.

    Parameters
    ----------
    responded : numpy.ndarray, shape (n,)
        0/1 outcomes.
    probability : numpy.ndarray, shape (n,)
        Predicted probabilities.

    Returns
    -------
    float
        The maximum-likelihood intercept, log-odds.

    Examples
    --------
    >>> import numpy as np
    >>> round(calibration_intercept(np.array([0, 1, 1, 1]), np.full(4, 0.5)), 4)  # log(3)
    1.0986
    """
    y = np.asarray(responded, dtype=np.float64)
    if not 0.0 < y.mean() < 1.0:
        return float("nan")
    offset = logit(np.clip(np.asarray(probability, dtype=np.float64), 1e-12, 1 - 1e-12))
    # The score equation sum(expit(a + offset) - y) = 0 rises in a; |offset| < 28, so the root
    # lies well inside +/-100.
    return float(brentq(lambda a: np.sum(expit(a + offset) - y), -100.0, 100.0, xtol=1e-12))


def _bins(
    responded: np.ndarray, probability: np.ndarray, n_bins: int, strategy: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin edges, and each bin's size, responders and sum of predictions (empty bins kept)."""
    y = np.asarray(responded, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0.0, 100.0, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', not {strategy!r}")
    ids = np.searchsorted(edges[1:-1], p)
    n = np.bincount(ids, minlength=n_bins)
    responders = np.bincount(ids, weights=y, minlength=n_bins)
    predicted = np.bincount(ids, weights=p, minlength=n_bins)
    return edges, n, responders, predicted


def calibration_bins(
    responded: np.ndarray,
    probability: np.ndarray,
    *,
    n_bins: int = 10,
    strategy: str = "quantile",
    confidence_level: float = 0.95,
) -> pd.DataFrame:
    """Predicted and observed response rates in bins of predicted probability.

    The bins are those of ``sklearn.calibration.calibration_curve`` (same edges, same
    assignment); this adds each bin's edges, size and a Wilson interval for its observed rate.

    Parameters
    ----------
    responded : numpy.ndarray, shape (n,)
        0/1 outcomes.
    probability : numpy.ndarray, shape (n,)
        Predicted probabilities.
    n_bins : int
        Number of bins; empty bins are left out.
    strategy : {"quantile", "uniform"}
        Bins of (nearly) equal size, or of equal width on [0, 1].
    confidence_level : float
        Of the interval for each bin's observed rate.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``low``, ``high`` (edges), ``n``, ``mean_predicted``,
        ``observed``, ``observed_low``, ``observed_high``.
    """
    edges, n, responders, predicted = _bins(responded, probability, n_bins, strategy)
    kept = np.flatnonzero(n)
    intervals = [
        binomtest(round(responders[k]), int(n[k])).proportion_ci(confidence_level, "wilson")
        for k in kept
    ]
    return pd.DataFrame(
        {
            "low": edges[kept],
            "high": edges[kept + 1],
            "n": n[kept],
            "mean_predicted": predicted[kept] / n[kept],
            "observed": responders[kept] / n[kept],
            "observed_low": [ci.low for ci in intervals],
            "observed_high": [ci.high for ci in intervals],
        }
    )


def expected_calibration_error(
    responded: np.ndarray, probability: np.ndarray, *, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """Expected calibration error: the mean over bins of |observed - mean predicted| rate,
    weighted by the share of patients in the bin (10 equal-width bins by default).

    Parameters
    ----------
    responded : numpy.ndarray, shape (n,)
        0/1 outcomes.
    probability : numpy.ndarray, shape (n,)
        Predicted probabilities.
    n_bins, strategy
        As :func:`calibration_bins`.

    Examples
    --------
    >>> import numpy as np
    >>> expected_calibration_error(np.array([0, 1, 1, 1]), np.full(4, 0.5))
    0.25
    """
    # The bins without their intervals (scipy's binomtest computes a p-value for each).
    _, n, responders, predicted = _bins(responded, probability, n_bins, strategy)
    return float(np.abs(responders - predicted).sum() / n.sum())


def smoothed_calibration(
    responded: np.ndarray, probability: np.ndarray, at: np.ndarray
) -> np.ndarray:
    """A smooth calibration curve: the observed response rate as a function of the predicted
    probability, from a logistic regression of the outcome on a cubic spline of logit(p) (five
    knots at quantiles, unpenalised); deterministic.

    Parameters
    ----------
    responded : numpy.ndarray, shape (n,)
        0/1 outcomes.
    probability : numpy.ndarray, shape (n,)
        Predicted probabilities.
    at : numpy.ndarray, shape (m,)
        Predicted probabilities at which to evaluate the curve.

    Returns
    -------
    numpy.ndarray, shape (m,)
        Estimated observed response rate at each value of ``at``.
    """

    def lp(p: np.ndarray) -> np.ndarray:
        return logit(np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12))[:, None]

    curve = make_pipeline(
        SplineTransformer(n_knots=5, knots="quantile", extrapolation="linear", include_bias=False),
        LogisticRegression(C=np.inf, max_iter=1000),
    ).fit(lp(probability), np.asarray(responded, dtype=np.float64))
    return curve.predict_proba(lp(at))[:, 1]


def auc_interval(
    responded: np.ndarray, probability: np.ndarray, *, confidence_level: float = 0.95
) -> tuple[float, float]:
    """DeLong's interval for the AUC: the AUC plus or minus a normal quantile times DeLong's
    standard error (DeLong, DeLong & Clarke-Pearson 1988; computed from midranks as Sun & Xu
    2014 do), clipped to [0, 1]. The default of R's pROC; it needs one sort where a bootstrap
    of 1,000 resamples needs 1,000 (0.8 s at 20,000 patients, against milliseconds).

    Parameters
    ----------
    responded : numpy.ndarray, shape (n,)
        0/1 outcomes, at least two of each.
    probability : numpy.ndarray, shape (n,)
        Predicted probabilities.
    confidence_level : float
        Of the interval.

    Returns
    -------
    (float, float)
        Lower and upper end.
    """
    y = np.asarray(responded, dtype=np.float64) == 1.0
    p = np.asarray(probability, dtype=np.float64)
    positives, negatives = p[y], p[~y]
    m, n = len(positives), len(negatives)
    if min(m, n) < 2:
        raise ValueError(f"DeLong's interval needs two of each outcome; got {m} and {n}")
    pooled = rankdata(np.concatenate([positives, negatives]))
    auc = min(max((pooled[:m].sum() - m * (m + 1) / 2) / (m * n), 0.0), 1.0)  # rounding
    # Each responder's share of non-responders scored below it, and each non-responder's share
    # of responders scored above it (ties count half): DeLong's structural components.
    v10 = (pooled[:m] - rankdata(positives)) / n
    v01 = 1.0 - (pooled[m:] - rankdata(negatives)) / m
    se = np.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    half = ndtri(0.5 + confidence_level / 2) * se
    return float(max(auc - half, 0.0)), float(min(auc + half, 1.0))


def net_benefit(
    responded: np.ndarray, probability: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Net benefit of treating the patients whose probability is at or above each threshold
    (Vickers and Elkin 2006): ``TP / n - FP / n * t / (1 - t)``.

    Parameters
    ----------
    responded : numpy.ndarray, shape (n,)
        0/1 outcomes.
    probability : numpy.ndarray, shape (n,)
        Predicted probabilities.
    thresholds : numpy.ndarray, shape (m,)
        Threshold probabilities, each in (0, 1).

    Returns
    -------
    numpy.ndarray, shape (m,)
        Net benefit at each threshold: true positives per patient, less false positives per
        patient weighted by the odds of the threshold. Treat-none is 0; treat-all is
        ``net_benefit(responded, np.ones(n), thresholds)``.

    Examples
    --------
    >>> import numpy as np
    >>> y, p = np.array([1, 1, 0, 0]), np.array([0.9, 0.6, 0.7, 0.2])
    >>> net_benefit(y, p, np.array([0.5]))  # 2 TP, 1 FP, odds 1: (2 - 1) / 4
    array([0.25])
    """
    y = np.asarray(responded, dtype=bool)
    t = np.asarray(thresholds, dtype=np.float64)
    flagged = np.asarray(probability, dtype=np.float64)[None, :] >= t[:, None]
    true_positives = (flagged & y).sum(axis=1)
    false_positives = (flagged & ~y).sum(axis=1)
    return (true_positives - false_positives * t / (1.0 - t)) / len(y)


def threshold_table(
    responded: np.ndarray, probability: np.ndarray, thresholds: tuple[float, ...]
) -> pd.DataFrame:
    """What flagging "likely responders" at each threshold would do.

    Parameters
    ----------
    responded : numpy.ndarray, shape (n,)
        0/1 outcomes.
    probability : numpy.ndarray, shape (n,)
        Predicted probabilities; a patient is flagged when at or above the threshold.
    thresholds : tuple of float
        Threshold probabilities, each in (0, 1).

    Returns
    -------
    pandas.DataFrame
        One row per threshold: ``threshold``, ``flagged`` (share of patients), ``sensitivity``,
        ``specificity``, ``ppv``, ``npv`` (NaN when undefined), ``net_benefit`` and
        ``treat_all`` (the net benefit of treating everyone).
    """
    y = np.asarray(responded, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    rows = []
    for t in thresholds:
        tn, fp, fn, tp = confusion_matrix(y, p >= t, labels=[0.0, 1.0]).ravel().tolist()

        def share(part: int, whole: int) -> float:
            return part / whole if whole else float("nan")

        rows.append(
            {
                "threshold": t,
                "flagged": (tp + fp) / len(y),
                "sensitivity": share(tp, tp + fn),
                "specificity": share(tn, tn + fp),
                "ppv": share(tp, tp + fp),
                "npv": share(tn, tn + fn),
            }
        )
    table = pd.DataFrame(rows)
    table["net_benefit"] = net_benefit(y, p, table["threshold"].to_numpy())
    table["treat_all"] = net_benefit(y, np.ones_like(p), table["threshold"].to_numpy())
    return table


@dataclass(frozen=True)
class Metrics:
    """Discrimination and calibration of predicted probabilities against observed outcomes
    (:func:`metrics`); the last three only when the simulator's truth is known.

    Attributes
    ----------
    n : int
        Patients.
    response_rate : float
        Observed share of responders.
    auc, log_loss, brier : float
    calibration_slope : float
        :func:`calibration_slope` (ideal 1).
    calibration_in_the_large : float
        Observed minus mean predicted response rate.
    calibration_intercept : float
        :func:`calibration_intercept` (ideal 0; NaN with one outcome only).
    ece : float
        :func:`expected_calibration_error`.
    oracle_auc : float or None
        AUC of the simulator's true probability.
    auc_gap : float or None
        Oracle AUC minus the model's.
    interval_coverage : float or None
        Share of patients whose predicted interval contains the true probability.
    """

    n: int
    response_rate: float
    auc: float
    log_loss: float
    brier: float
    calibration_slope: float
    calibration_in_the_large: float
    calibration_intercept: float
    ece: float
    oracle_auc: float | None = None
    auc_gap: float | None = None
    interval_coverage: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        """The metrics known (those without the truth left out), in field order: as the
        manifest and ``metrics.json`` store them, a metric that has no value here (NaN: a
        calibration slope of separated outcomes) as None, since JSON has no NaN."""
        return {
            key: finite_or_none(value) if isinstance(value, float) else value
            for key, value in asdict(self).items()
            if value is not None
        }


def metrics(
    responded: np.ndarray,
    probability: np.ndarray,
    *,
    true_probability: np.ndarray | None = None,
    interval: tuple[np.ndarray, np.ndarray] | None = None,
) -> Metrics:
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
    Metrics

    Examples
    --------
    >>> import numpy as np
    >>> m = metrics(np.array([0, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.6]))
    >>> m.auc, m.oracle_auc
    (1.0, None)
    """
    y = np.asarray(responded, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    oracle_auc = auc_gap = coverage = None
    auc = float(roc_auc_score(y, p))
    if true_probability is not None:
        truth = np.asarray(true_probability, dtype=np.float64)
        oracle_auc = float(roc_auc_score(y, truth))
        auc_gap = oracle_auc - auc
        if interval is not None:
            low, high = interval
            coverage = float(np.mean((truth >= low) & (truth <= high)))
    return Metrics(
        n=len(y),
        response_rate=float(y.mean()),
        auc=auc,
        log_loss=float(log_loss(y, p, labels=[0.0, 1.0])),
        brier=float(brier_score_loss(y, p)),
        calibration_slope=calibration_slope(y, p),
        calibration_in_the_large=float(y.mean() - p.mean()),
        calibration_intercept=calibration_intercept(y, p),
        ece=expected_calibration_error(y, p),
        oracle_auc=oracle_auc,
        auc_gap=auc_gap,
        interval_coverage=coverage,
    )
