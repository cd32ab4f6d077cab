"""Internal validation by the bootstrap: Harrell's optimism correction of the apparent
performance, and the instability of each patient's prediction across the bootstrap models.

Optimism (Harrell, *Regression Modeling Strategies*, 2nd ed., section 5.3; R's
``rms::validate``): the whole modelling procedure is fitted again on ``B`` resamples of the
patients drawn with replacement; each bootstrap model is scored on its own resample (its
apparent performance) and on the original patients (its test performance); the mean of the
differences is the optimism, which the final model's apparent performance less is the corrected
figure. Where a patient has several rows (``groups``), the patient is drawn, with all of their
rows (the cluster bootstrap): a model fitted on one of a patient's rows would otherwise be
tested on the other as if on a new patient, and the optimism understated.

Instability (Riley and Collins, Stability of clinical prediction models developed using
statistical or machine learning methods, *Biometrical Journal* 2023): the same bootstrap models'
probabilities for the original patients, against the final model's: each patient's 2.5th and
97.5th percentiles, the mean absolute prediction error (MAPE) and the classification instability
index (CII, per patient: the share of bootstrap models whose label at the threshold differs from
the final model's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.metrics import brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from predictor._params import (
    CALLABLE,
    INF,
    NONE,
    SEED,
    InstanceOf,
    Interval,
    ParameterTable,
    Where,
    check,
)
from predictor.evaluation._metrics import calibration_intercept, calibration_slope

BOOTSTRAP_METRICS: tuple[str, ...] = ("auc", "calibration_slope", "calibration_intercept", "brier")
"""The metrics corrected for optimism, named as :class:`~predictor.evaluation.Metrics` names
them."""
PERCENTILES = (2.5, 97.5)
"""Each patient's range of bootstrap predictions (Riley and Collins' instability plot)."""

Refit = Callable[[pd.DataFrame, np.ndarray], Callable[[pd.DataFrame], np.ndarray]]
"""The modelling procedure: fitted on rows and their 0/1 outcomes, it returns a function that
gives probabilities of response for a frame of rows."""


def _measured(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The :data:`BOOTSTRAP_METRICS` of probabilities ``p`` against outcomes ``y``, computed as
    :func:`~predictor.evaluation._metrics.metrics` computes them."""
    return {
        "auc": float(roc_auc_score(y, p)),
        "calibration_slope": calibration_slope(y, p),
        "calibration_intercept": calibration_intercept(y, p),
        "brier": float(brier_score_loss(y, p)),
    }


@dataclass(frozen=True)
class Optimism:
    """One metric's optimism correction.

    Attributes
    ----------
    apparent : float
        The final model's performance on the patients it was fitted on.
    optimism : float
        Mean over the bootstrap models of (performance on their resample - performance on the
        original patients), over those where both are finite (NaN where none is).
    corrected : float
        ``apparent - optimism``: the estimate to quote.
    models : int or None
        Bootstrap models the optimism is the mean of, where some had no finite value (a
        calibration slope where the refit separated its resample's outcomes); None where
        every model counted.
    """

    apparent: float
    optimism: float
    corrected: float
    models: int | None = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True, eq=False)
class BootstrapValidation:
    """What :func:`bootstrap_validation` found.

    Attributes
    ----------
    repeats : int
        Resamples drawn (``B``).
    failed : int
        Of them, refits that raised ``ValueError`` (skipped); ``repeats - failed`` models are
        used.
    redrawn : int
        Resamples drawn again because they held one outcome only (not counted in ``repeats``).
    seed : int
        Seed of the resamples.
    threshold : float
        Probability at or above which a patient is labelled a likely responder.
    responders : int
        Responders among the original patients.
    metrics : dict of str to Optimism
        Metric name (:data:`BOOTSTRAP_METRICS`) -> apparent, optimism and corrected value.
    resample : dict of str to numpy.ndarray
        Metric name -> shape (models, 2): each bootstrap model's performance on its resample
        and on the original patients.
    final : numpy.ndarray, shape (n,)
        The final model's probabilities for the original patients.
    probability : numpy.ndarray, shape (models, n)
        Each bootstrap model's probabilities for the original patients.
    low, high : numpy.ndarray, shape (n,)
        Each patient's 2.5th and 97.5th percentile of ``probability``.
    patient_mape : numpy.ndarray, shape (n,)
        Each patient's mean over the models of ``|probability - final|``.
    patient_instability : numpy.ndarray, shape (n,)
        Each patient's classification instability index: the share of models whose label
        differs from the final model's.
    """

    repeats: int
    failed: int
    redrawn: int
    seed: int
    threshold: float
    responders: int
    metrics: dict[str, Optimism]
    resample: dict[str, np.ndarray]
    final: np.ndarray
    probability: np.ndarray
    low: np.ndarray
    high: np.ndarray
    patient_mape: np.ndarray
    patient_instability: np.ndarray
    patients: int | None = None
    """Patients drawn in each resample when rows were grouped by patient (``groups``), all of
    a patient's rows with them; None when each row was drawn alone."""

    @property
    def models(self) -> int:
        """Bootstrap models used: ``repeats - failed``."""
        return self.repeats - self.failed

    @property
    def mape(self) -> float:
        """Mean absolute prediction error: the mean over patients and models of
        ``|p_b - p_final|`` (probability)."""
        return float(self.patient_mape.mean())

    @property
    def classification_instability(self) -> float:
        """Mean over patients of the classification instability index."""
        return float(self.patient_instability.mean())


def _resamples(
    y: np.ndarray, repeats: int, seed: int, groups: np.ndarray | None = None
) -> tuple[list[np.ndarray], int]:
    """``repeats`` resamples of row positions, with replacement, each holding both outcomes (a
    resample with one outcome only is drawn again), and how many were drawn again. All are
    drawn before any fit, in order, so that the numbers do not depend on how the fits run.

    With ``groups`` (a label per row), as many groups as there are are drawn, each with all of
    its rows in their order (a resample then has about as many rows as the data); without,
    rows."""
    rng = np.random.default_rng(seed)
    redrawn = 0
    if groups is None:
        members = None
        n = len(y)
    else:
        labels, position = np.unique(groups, return_inverse=True)
        order = np.argsort(position, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(position))[:-1])
        n = len(labels)
    drawn: list[np.ndarray] = []
    while len(drawn) < repeats:
        index = rng.integers(0, n, size=n)
        if members is not None:
            index = np.concatenate([members[k] for k in index])
        outcomes = y[index]
        if outcomes.min() == outcomes.max():
            redrawn += 1
            continue
        drawn.append(index)
    return drawn, redrawn


def _one(
    clean: pd.DataFrame, y: np.ndarray, index: np.ndarray, refit: Refit
) -> tuple[dict[str, float], dict[str, float], np.ndarray] | None:
    """One resample: the procedure fitted on it, and the model's metrics on the resample and on
    the original rows, with its probabilities for them; None when the fit raised ValueError."""
    rows, y_rows = clean.iloc[index], y[index]
    try:
        predict = refit(rows, y_rows)
        on_resample = np.asarray(predict(rows), dtype=np.float64)
        on_original = np.asarray(predict(clean), dtype=np.float64)
    except ValueError:
        return None
    return _measured(y_rows, on_resample), _measured(y, on_original), on_original


def _is_array(value: object) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 1


_PARAMETERS: ParameterTable = {
    "clean": [InstanceOf(pd.DataFrame, "a pandas DataFrame")],
    "y": [Where(_is_array, "a 1-d numpy array")],
    "refit": [CALLABLE],
    "final": [Where(_is_array, "a 1-d numpy array")],
    "repeats": [Interval(int, 1, INF, closed="left")],
    "seed": [SEED],
    "threshold": [Interval(float, 0, 1, closed="neither")],
    "progress": [NONE, CALLABLE],
    "n_jobs": [Interval(int, -INF, -1), Interval(int, 1, INF, closed="left")],
    "groups": [NONE, Where(_is_array, "a 1-d numpy array")],
}


def bootstrap_validation(
    clean: pd.DataFrame,
    y: np.ndarray,
    *,
    refit: Refit,
    final: np.ndarray,
    repeats: int = 200,
    seed: int,
    threshold: float,
    progress: Callable[[int, int], None] | None = None,
    n_jobs: int = -1,
    groups: np.ndarray | None = None,
) -> BootstrapValidation:
    """Harrell's bootstrap optimism correction of AUC, calibration slope, calibration intercept
    and Brier score, and the instability of the predictions (module docstring).

    Parameters
    ----------
    clean : pandas.DataFrame, shape (n, ...)
        The rows the final model was fitted on.
    y : numpy.ndarray, shape (n,)
        Their 0/1 outcomes; both must occur.
    refit : callable
        ``refit(rows, y_rows)`` fits the whole modelling procedure (every choice the final
        model's fit made from the data) on a resample and returns a function giving
        probabilities, shape (m,), for a frame of m rows. A ``ValueError`` from either counts
        the resample as failed and skips it. It should be deterministic, and safe to call from
        several threads at once.
    final : numpy.ndarray, shape (n,)
        The final model's probabilities for ``clean``.
    repeats : int
        Resamples ``B`` (Harrell and Riley and Collins suggest at least 200).
    seed : int
        Seed of the resamples: the same seed gives the same numbers, whatever ``n_jobs``.
    threshold : float
        Probability at or above which a patient is a likely responder, for the classification
        instability.
    progress : callable, optional
        Called with (resamples done, ``repeats``) after each resample, in order.
    n_jobs : int
        Refits run at once, on threads (joblib's meaning: -1, the default, is one per core).
    groups : numpy.ndarray, shape (n,), optional
        A label per row, shared by the rows of one patient
        (:func:`~predictor.model.patient_groups`): resamples then draw patients, each with all
        of their rows. None (the default): each row is a patient.

    Returns
    -------
    BootstrapValidation

    Raises
    ------
    ValueError
        If ``y``, ``final`` or ``groups`` does not have one value per row, ``y`` has one
        outcome only, or every refit failed.
    InvalidParameterError
        If a parameter has a value it does not accept.
    """
    check("bootstrap_validation", _PARAMETERS, locals())
    y = np.asarray(y, dtype=np.float64)
    final = np.asarray(final, dtype=np.float64)
    if not len(y) == len(final) == len(clean):
        raise ValueError(
            f"y has {len(y)} values and final {len(final)} for {len(clean)} rows; give one "
            "outcome and one probability per row"
        )
    if not np.isin(y, (0.0, 1.0)).all() or y.min() == y.max():
        raise ValueError("y must be 0/1 outcomes with both outcomes present")
    if groups is not None and len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} labels for {len(y)} rows; give one per row")
    indices, redrawn = _resamples(y, repeats, seed, groups)
    jobs = (delayed(_one)(clean, y, index, refit) for index in indices)
    kept: list[tuple[dict[str, float], dict[str, float], np.ndarray]] = []
    # Threads, as cross_validate: the fits spend their time in compiled code that releases the
    # GIL, and need no copy of the data; one BLAS thread each.
    with threadpool_limits(1):
        outcomes = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(jobs)
        for done, outcome in enumerate(outcomes, 1):
            if outcome is not None:
                kept.append(outcome)
            if progress is not None:
                progress(done, repeats)
    if not kept:
        raise ValueError(f"every one of the {repeats} bootstrap refits failed (ValueError)")
    apparent = _measured(y, final)
    resample = {
        key: np.array(
            [[on_resample[key], on_original[key]] for on_resample, on_original, _ in kept]
        )
        for key in BOOTSTRAP_METRICS
    }
    # A metric with no finite value on a resample (a calibration slope where the refit separated
    # its resample's responders from its non-responders) leaves that model out of its mean.
    differences = {key: pairs[:, 0] - pairs[:, 1] for key, pairs in resample.items()}
    finite = {key: np.isfinite(d) for key, d in differences.items()}
    optimism = {
        key: float(d[finite[key]].mean()) if finite[key].any() else float("nan")
        for key, d in differences.items()
    }
    probability = np.vstack([p for _, _, p in kept])
    low, high = np.percentile(probability, PERCENTILES, axis=0)
    flagged = final >= threshold
    return BootstrapValidation(
        repeats=repeats,
        failed=repeats - len(kept),
        redrawn=redrawn,
        seed=seed,
        threshold=threshold,
        responders=int(y.sum()),
        metrics={
            key: Optimism(
                apparent[key],
                optimism[key],
                apparent[key] - optimism[key],
                None if finite[key].all() else int(finite[key].sum()),
            )
            for key in BOOTSTRAP_METRICS
        },
        resample=resample,
        final=final,
        probability=probability,
        low=low,
        high=high,
        patient_mape=np.abs(probability - final).mean(axis=0),
        patient_instability=((probability >= threshold) != flagged).mean(axis=0),
        patients=None if groups is None else len(np.unique(groups)),
    )
