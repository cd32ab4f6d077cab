"""Metric functions of predictor.evaluation._metrics against scikit-learn's and direct fits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from predictor.evaluation._comparison import COMPARISONS, cross_validate
from predictor.evaluation._metrics import (
    auc_interval,
    calibration_bins,
    calibration_intercept,
    calibration_slope,
    expected_calibration_error,
    metrics,
    net_benefit,
    smoothed_calibration,
    threshold_table,
)
from predictor.model import fit_additive_model
from predictor.model._additive import patient_groups
from predictor.simulation._synthetic import simulate_cohort


def _draw(n: int, *, shift: float = 0.0, scale: float = 1.0, seed: int = 0):
    """Outcomes drawn from expit(lp), and predictions expit(shift + scale * lp)."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(0.0, 1.0, n)
    y = (rng.random(n) < expit(lp)).astype(np.float64)
    return y, expit(shift + scale * lp)


def _negative_log_likelihood(y: np.ndarray, eta: np.ndarray) -> float:
    return float(-np.sum(y * eta - np.logaddexp(0.0, eta)))


@pytest.mark.parametrize("strategy", ["quantile", "uniform"], ids=["quantile", "uniform"])
@pytest.mark.parametrize("n_bins", [5, 10], ids=["5-bins", "10-bins"])
def test_calibration_bins_match_sklearn_calibration_curve(strategy: str, n_bins: int) -> None:
    y, p = _draw(3000, scale=0.7, seed=1)
    p = np.round(p, 2)  # ties on the bin edges
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    bins = calibration_bins(y, p, n_bins=n_bins, strategy=strategy)
    np.testing.assert_allclose(bins["observed"], observed, rtol=1e-12)
    np.testing.assert_allclose(bins["mean_predicted"], predicted, rtol=1e-12)
    assert bins["n"].sum() == len(y)


def test_calibration_bins_leave_out_empty_bins_and_give_wilson_intervals() -> None:
    y = np.array([0, 1, 1, 0, 1, 1, 1, 0, 1, 1], dtype=float)
    p = np.array([0.05, 0.07, 0.15, 0.12, 0.18, 0.93, 0.95, 0.91, 0.97, 0.99])
    bins = calibration_bins(y, p, n_bins=10, strategy="uniform")
    assert bins["n"].tolist() == [2, 3, 5]  # [0, 0.1), [0.1, 0.2) and [0.9, 1]; 7 bins empty
    assert bins["low"].tolist() == pytest.approx([0.0, 0.1, 0.9])
    last = bins.iloc[-1]
    assert last["observed"] == 0.8
    k, n, z = 4, 5, 1.959963984540054  # Wilson's interval for 4 of 5, by hand
    centre = (k + z**2 / 2) / (n + z**2)
    half = z / (n + z**2) * np.sqrt(k * (n - k) / n + z**2 / 4)
    assert last["observed_low"] == pytest.approx(centre - half, abs=1e-9)
    assert last["observed_high"] == pytest.approx(centre + half, abs=1e-9)


def test_expected_calibration_error_is_the_weighted_mean_gap() -> None:
    # Two equal-width bins: [0, 0.5) holds p = 0.2 (x2), observed 0.5; [0.5, 1] holds p = 0.8
    # (x2), observed 1.0. ECE = 0.5 * |0.5 - 0.2| + 0.5 * |1.0 - 0.8| = 0.25.
    y = np.array([0, 1, 1, 1], dtype=float)
    p = np.array([0.2, 0.2, 0.8, 0.8])
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.25)


def test_expected_calibration_error_is_zero_when_each_bin_is_right() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0], dtype=float)
    p = np.array([0.25] * 4 + [0.75] * 4)
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("shift", "scale"), [(0.0, 1.0), (0.4, 0.6), (-0.3, 1.5)], ids=["ideal", "flat", "steep"]
)
def test_calibration_slope_matches_a_direct_logistic_fit(shift: float, scale: float) -> None:
    y, p = _draw(4000, shift=shift, scale=scale, seed=2)
    lp = logit(p)
    fit = minimize(
        lambda ab: _negative_log_likelihood(y, ab[0] + ab[1] * lp), x0=[0.0, 1.0], tol=1e-10
    )
    assert calibration_slope(y, p) == pytest.approx(fit.x[1], abs=1e-4)
    assert calibration_slope(y, p) == pytest.approx(1 / scale, rel=0.15)


@pytest.mark.parametrize(
    "p",
    [
        [0.2, 0.3, 0.6, 0.9],  # every responder above every non-responder
        [0.2, 0.6, 0.6, 0.9],  # a tie at the edge: still no finite maximum
        [0.9, 0.8, 0.3, 0.1],  # every responder below
        [0.6, 0.6 + 1e-10, 0.6 - 1e-9, 0.6 + 2e-10],  # one probability, to a fit's rounding
    ],
    ids=["separated", "touching", "reversed", "flat"],
)
def test_calibration_slope_is_nan_where_no_finite_slope_exists(p: list[float]) -> None:
    # a fit stops at an arbitrary large number there (scikit-learn's, with warnings), which a
    # bootstrap's mean turned into a corrected slope of -8,000 on a 30-patient cohort
    y = np.array([0.0, 0.0, 1.0, 1.0])
    assert np.isnan(calibration_slope(y, np.array(p)))


def test_calibration_slope_of_overlapping_outcomes_stays_finite() -> None:
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    p = np.array([0.2, 0.3, 0.4, 0.6, 0.8, 0.7])  # the outcomes overlap: a finite maximum
    slope = calibration_slope(y, p)
    lp = logit(p)
    fit = minimize(
        lambda ab: _negative_log_likelihood(y, ab[0] + ab[1] * lp), x0=[0.0, 1.0], tol=1e-12
    )
    assert np.isfinite(slope) and slope == pytest.approx(fit.x[1], abs=1e-4)


@pytest.mark.parametrize("shift", [0.0, 0.5, -0.8], ids=["none", "too-high", "too-low"])
def test_calibration_intercept_matches_a_direct_offset_fit(shift: float) -> None:
    y, p = _draw(4000, shift=shift, seed=3)
    lp = logit(p)
    fit = minimize_scalar(lambda a: _negative_log_likelihood(y, a + lp), bounds=(-5, 5))
    assert calibration_intercept(y, p) == pytest.approx(fit.x, abs=1e-4)
    # Predictions shifted by `shift` on the log-odds scale are corrected by about -shift.
    assert calibration_intercept(y, p) == pytest.approx(-shift, abs=0.1)


def test_calibration_intercept_is_nan_with_one_outcome() -> None:
    assert np.isnan(calibration_intercept(np.ones(10), np.full(10, 0.3)))


def test_auc_interval_is_delongs_computed_from_its_definition() -> None:
    """DeLong's variance from the pairwise kernel psi (1 above, 1/2 tied, 0 below), on data
    with many ties, against the midrank computation."""
    rng = np.random.default_rng(4)
    y = (rng.random(120) < 0.4).astype(np.float64)
    p = np.round(rng.random(120) * 0.5 + 0.3 * y, 1)  # many ties
    pos, neg = p[y == 1], p[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    variance = psi.mean(axis=1).var(ddof=1) / len(pos) + psi.mean(axis=0).var(ddof=1) / len(neg)
    half = 1.959963984540054 * np.sqrt(variance)
    assert auc == pytest.approx(roc_auc_score(y, p))
    assert auc_interval(y, p) == pytest.approx((auc - half, auc + half), abs=1e-12)
    assert auc_interval(y, p, confidence_level=0.5)[1] - auc < half


@pytest.mark.slow
def test_auc_interval_agrees_with_a_plain_bootstrap_of_roc_auc_score() -> None:
    y, p = _draw(1500, scale=0.8, seed=5)
    low, high = auc_interval(y, p)
    assert low < roc_auc_score(y, p) < high
    rng = np.random.default_rng(99)
    resamples = [rng.integers(0, len(y), len(y)) for _ in range(1000)]
    plain = np.percentile([roc_auc_score(y[i], p[i]) for i in resamples], [2.5, 97.5])
    assert (low, high) == pytest.approx(tuple(plain), abs=0.006)  # Monte Carlo error


def test_auc_interval_of_a_perfect_separation_is_one_point() -> None:
    y = np.r_[np.zeros(50), np.ones(50)]
    assert auc_interval(y, np.linspace(0.01, 0.99, 100)) == (1.0, 1.0)
    assert auc_interval(y, np.linspace(0.99, 0.01, 100)) == (0.0, 0.0)


def test_auc_interval_needs_two_of_each_outcome() -> None:
    with pytest.raises(ValueError, match="two of each outcome"):
        auc_interval(np.array([1.0, 0.0, 0.0]), np.array([0.9, 0.2, 0.1]))


@pytest.mark.parametrize("t", [0.1, 0.3, 0.5, 0.7, 0.9], ids=lambda t: f"t={t}")
def test_net_benefit_matches_the_confusion_matrix(t: float) -> None:
    y, p = _draw(2000, seed=6)
    _, fp, _, tp = confusion_matrix(y, p >= t).ravel()
    expected = tp / len(y) - fp / len(y) * t / (1 - t)
    assert net_benefit(y, p, np.array([t]))[0] == pytest.approx(expected, abs=1e-12)
    prevalence = y.mean()
    treat_all = net_benefit(y, np.ones_like(p), np.array([t]))[0]
    assert treat_all == pytest.approx(prevalence - (1 - prevalence) * t / (1 - t))
    assert net_benefit(y, y, np.array([t]))[0] == pytest.approx(prevalence)  # a perfect model


def test_threshold_table_matches_sklearn_metrics() -> None:
    y, p = _draw(2000, seed=7)
    table = threshold_table(y, p, (0.3, 0.5, 0.7)).set_index("threshold")
    for t, row in table.iterrows():
        flagged = (p >= t).astype(int)
        assert row["sensitivity"] == pytest.approx(recall_score(y, flagged))
        assert row["specificity"] == pytest.approx(recall_score(y, flagged, pos_label=0))
        assert row["ppv"] == pytest.approx(precision_score(y, flagged))
        assert row["npv"] == pytest.approx(precision_score(y, flagged, pos_label=0))
        assert row["flagged"] == pytest.approx(flagged.mean())
        assert row["net_benefit"] == pytest.approx(net_benefit(y, p, np.array([t]))[0])


def test_threshold_table_says_nan_when_no_one_is_flagged() -> None:
    y, p = _draw(200, seed=8)
    row = threshold_table(y, p * 0.5, (0.9,)).iloc[0]
    assert row["flagged"] == 0.0 and row["sensitivity"] == 0.0 and row["specificity"] == 1.0
    assert np.isnan(row["ppv"])


@pytest.mark.parametrize(
    ("scale", "at", "expected"),
    [(1.0, 0.7, 0.7), (0.5, 0.7, float(expit(2 * logit(0.7))))],
    ids=["calibrated", "too-flat"],
)
def test_smoothed_calibration_recovers_a_known_curve(scale, at, expected) -> None:
    y, p = _draw(20_000, scale=scale, seed=9)
    assert smoothed_calibration(y, p, np.array([at]))[0] == pytest.approx(expected, abs=0.03)


def test_metrics_adds_calibration_intercept_and_ece() -> None:
    y, p = _draw(1000, shift=0.3, seed=10)
    m = metrics(y, p)
    assert m.calibration_intercept == calibration_intercept(y, p)
    assert m.ece == expected_calibration_error(y, p)
    assert m.oracle_auc is None and "oracle_auc" not in m.to_dict()


@pytest.fixture(scope="module")
def folds() -> tuple[pd.DataFrame, Any, Any]:
    cohort = simulate_cohort(1200, seed=12)
    model, _ = fit_additive_model(cohort, cohort["responded"], smoothing=10.0)
    return cohort, model, cross_validate(cohort, model=model, seed=3)


@pytest.mark.slow
def test_cross_validate_scores_every_model_on_the_same_folds(folds) -> None:
    cohort, _, results = folds
    assert set(results.folds) == {"additive model", *(c.name for c in COMPARISONS)}
    splits = StratifiedKFold(5, shuffle=True, random_state=3).split(cohort, cohort["responded"])
    tests = [test for _, test in splits]
    for per_fold in results.folds.values():
        assert [m.n for m in per_fold] == [len(test) for test in tests]
        rows = [cohort.iloc[test] for test in tests]
        oracle = [roc_auc_score(r["responded"], r["true_probability"]) for r in rows]
        assert [m.oracle_auc for m in per_fold] == pytest.approx(oracle)  # the same rows
        assert all(0.5 < m.auc < 0.85 for m in per_fold)


@pytest.mark.slow
def test_cross_validate_predicts_each_row_by_the_fit_without_it(folds) -> None:
    cohort, model, results = folds
    y = cohort["responded"].to_numpy()
    fit, test = next(StratifiedKFold(5, shuffle=True, random_state=3).split(cohort, y))
    refitted = model.refit(cohort.iloc[fit], y[fit], seed=3)
    expected = refitted.score(refitted.features.design(cohort.iloc[test]))
    for field in expected._fields:
        assert np.allclose(getattr(results.scores, field)[test], getattr(expected, field))
    assert np.array_equal(results.probability["additive model"], results.scores.probability)
    for p in results.probability.values():
        assert np.isfinite(p).all() and len(p) == len(cohort)
    # The fold metrics are those of the pooled out-of-fold predictions, fold by fold.
    first = results.folds["gradient boosting"][0]
    assert first.auc == pytest.approx(
        roc_auc_score(y[test], results.probability["gradient boosting"][test])
    )


def test_patient_groups_join_the_rows_of_one_patient_and_only_those() -> None:
    frame = pd.DataFrame({"patient_id": ["A", "B", " A", None, "", "C", "B", None]})
    groups = patient_groups(frame)
    assert groups is not None
    assert groups[0] == groups[2] and groups[1] == groups[6]  # " A" is A: ids are stripped
    assert len(set(groups[[0, 1, 3, 4, 5, 7]])) == 6  # no id: a patient of its own
    assert patient_groups(frame.iloc[[0, 1, 3, 4, 5]]) is None  # no id repeats
    assert patient_groups(frame.drop(columns=["patient_id"])) is None


def test_cross_validate_keeps_a_patients_rows_in_one_fold() -> None:
    # Copies of 60 patients: in one fold with their originals, they get the same out-of-fold
    # prediction (one fit, one row); in other folds (ungrouped) they are predicted by a fit
    # that saw them.
    cohort = simulate_cohort(400, seed=21)
    cohort["patient_id"] = [f"P{k}" for k in range(len(cohort))]
    data = pd.concat([cohort, cohort.iloc[:60]], ignore_index=True)
    model, _ = fit_additive_model(data, data["responded"], smoothing=10.0)
    copies, originals = np.arange(400, 460), np.arange(60)
    grouped = cross_validate(
        data, model=model, seed=3, comparisons=(), groups=patient_groups(data), n_jobs=1
    )
    p = grouped.probability["additive model"]
    assert np.array_equal(p[copies], p[originals])
    plain = cross_validate(data, model=model, seed=3, comparisons=(), n_jobs=1)
    p = plain.probability["additive model"]
    assert not np.array_equal(p[copies], p[originals])


@pytest.mark.slow
def test_cross_validate_does_not_depend_on_the_threads(folds) -> None:
    cohort, model, results = folds
    again = cross_validate(cohort, model=model, seed=3, n_jobs=1)
    assert again.folds == results.folds
    for key, p in results.probability.items():
        assert np.array_equal(again.probability[key], p)
