"""The scikit-learn estimator over the penalised LAML fitter: scikit-learn's own estimator
checks, the same fit as the fitter, and use in pipelines, cross-validation and cloning."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from predictor.model._estimator import PenalisedLogisticGAM
from predictor.model._fitter import Penalty, fit_penalised_logistic

ESTIMATORS = [
    PenalisedLogisticGAM(),
    PenalisedLogisticGAM(select=False, lambdas=[1.0]),
]


def _expected_failed_checks(estimator: PenalisedLogisticGAM) -> dict[str, str]:
    """Each check scikit-learn's battery is expected to fail, with the reason: none since the
    fitter converges on separable p > n data (check_sample_weight_equivalence_on_dense_data
    failed before: weighted and repeated fits stopped at different smoothing parameters)."""
    return {}


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    logit = -0.4 + 1.2 * X[:, 0] - 0.8 * X[:, 1] + np.sin(2 * X[:, 2])
    y = (rng.random(n) < expit(logit)).astype(np.int64)
    return X, y


def _spline_penalties(n_features: int, n_basis: int) -> list[Penalty]:
    """One block per input feature of a SplineTransformer: second differences of the
    coefficients plus the projection on their null space (constant and linear), so the
    block is of full rank and one smoothing parameter shrinks an unsupported term to zero."""
    d = np.diff(np.eye(n_basis), n=2, axis=0)
    smooth = d.T @ d
    values, vectors = np.linalg.eigh(smooth)
    null = vectors[:, values < 1e-8 * values.max()]
    matrix = smooth + null @ null.T
    return [Penalty(np.arange(j * n_basis, (j + 1) * n_basis), matrix) for j in range(n_features)]


@pytest.mark.slow
@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=_expected_failed_checks, xfail_strict=True
)
def test_estimator_passes_sklearn_checks(
    estimator: PenalisedLogisticGAM, check: Callable[[PenalisedLogisticGAM], None]
) -> None:
    # The checks fit separable toy data (iris, blobs), where the fitter stops at max_iter:
    # its ConvergenceWarning there is expected and not what the checks test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_estimator_equals_fitter_on_the_same_data() -> None:
    X, y = _data(600, seed=1)
    rng = np.random.default_rng(2)
    weights = rng.uniform(0.5, 2.0, size=len(y))
    offset = rng.normal(scale=0.3, size=len(y))
    prior = np.array([0.5, 0.0, 0.0, -0.2])
    penalties = [Penalty(slice(0, 2)), Penalty(np.array([2, 3]), np.array([[2.0, 1], [1, 2]]))]
    labels = np.array(["non-responder", "responder"])[y]

    model = PenalisedLogisticGAM(penalties, prior_mean=prior)
    model.fit(X, labels, sample_weight=weights, offset=offset)
    fit = fit_penalised_logistic(
        X, y.astype(float), penalties, offset=offset, prior_mean=prior, weights=weights
    )

    np.testing.assert_allclose(model.coef_, fit.coef[np.newaxis, :], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.intercept_, [fit.intercept], rtol=1e-12)
    np.testing.assert_allclose(model.lambdas_, fit.lambdas, rtol=1e-12)
    np.testing.assert_allclose(model.covariance_, fit.covariance, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.edf_, fit.edf, rtol=1e-12)
    assert model.laml_ == pytest.approx(fit.laml, rel=1e-12)
    assert model.n_iter_ == fit.n_iter
    assert model.classes_.tolist() == ["non-responder", "responder"]
    logit = offset + fit.intercept + X @ fit.coef
    np.testing.assert_allclose(model.decision_function(X, offset=offset), logit, rtol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X, offset=offset)[:, 1], expit(logit))


def test_estimator_default_is_one_ridge_over_all_columns() -> None:
    X, y = _data(400, seed=3)
    model = PenalisedLogisticGAM().fit(X, y)
    fit = fit_penalised_logistic(X, y.astype(float), [Penalty(slice(None))])
    assert model.lambdas_.shape == (1,)
    np.testing.assert_allclose(model.coef_[0], fit.coef, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("labels", "positive"),
    [
        (np.array([-1, 1]), 1),
        (np.array(["yes", "no"]), "yes"),  # sorted: "no" first, so "yes" is positive
        (np.array([True, False]), True),
        (np.array([7, 2]), 7),
    ],
    ids=["minus-one-one", "strings", "booleans", "integers"],
)
def test_estimator_any_two_labels_give_the_same_probabilities(
    labels: np.ndarray, positive: object
) -> None:
    X, y = _data(300, seed=4)
    reference = PenalisedLogisticGAM().fit(X, y)
    model = PenalisedLogisticGAM().fit(X, labels[1 - y] if labels[0] == positive else labels[y])
    assert model.classes_[1] == positive
    expected = reference.predict_proba(X)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-10)
    predicted = model.predict(X)
    assert set(predicted) <= set(model.classes_)
    np.testing.assert_array_equal(predicted == positive, expected[:, 1] > 0.5)


def test_estimator_more_than_two_classes_is_a_clear_error() -> None:
    X, _ = _data(90, seed=5)
    with pytest.raises(ValueError, match=r"Only binary .* multiclass \(3 classes: 'a', 'b', 'c'\)"):
        PenalisedLogisticGAM().fit(X, np.array(["a", "b", "c"])[np.arange(90) % 3])


@pytest.mark.parametrize(
    ("fit", "match"),
    [
        ({"sample_weight": np.zeros(50)}, "every sample weight is zero"),
        ({"sample_weight": -np.ones(50)}, "non-negative"),
        ({"offset": np.zeros(49)}, "offset must be 50 finite numbers"),
    ],
    ids=["zero-weights", "negative-weights", "short-offset"],
)
def test_estimator_bad_fit_arguments_are_clear_errors(fit: dict, match: str) -> None:
    X, y = _data(50, seed=6)
    with pytest.raises(ValueError, match=match):
        PenalisedLogisticGAM().fit(X, y, **fit)


def test_estimator_prior_mean_of_the_wrong_length_is_a_clear_error() -> None:
    X, y = _data(50, seed=6)
    with pytest.raises(ValueError, match="prior_mean must be 4 finite numbers, one per column"):
        PenalisedLogisticGAM(prior_mean=[0.0, 1.0]).fit(X, y)


def test_estimator_predict_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        PenalisedLogisticGAM().predict_proba(np.zeros((2, 3)))


def test_estimator_warns_when_the_fitter_does_not_converge() -> None:
    X, y = _data(200, seed=7)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter = 1"):
        PenalisedLogisticGAM(max_iter=1).fit(X, y)


def test_estimator_records_feature_names_of_a_dataframe() -> None:
    X, y = _data(200, seed=8)
    frame = pd.DataFrame(X, columns=["crp_mg_l", "il6_pg_ml", "age_years", "bmi"])
    model = PenalisedLogisticGAM().fit(frame, y)
    assert model.feature_names_in_.tolist() == list(frame.columns)
    assert model.n_features_in_ == 4
    # Column order is checked, not silently misread.
    with pytest.raises(ValueError, match="feature names"):
        model.predict_proba(frame[frame.columns[::-1]])


def test_estimator_in_a_spline_pipeline_and_cross_validation() -> None:
    X, y = _data(600, seed=9)
    n_knots, degree = 6, 3
    n_basis = n_knots + degree - 1
    pipeline = make_pipeline(
        SplineTransformer(n_knots=n_knots, degree=degree),
        PenalisedLogisticGAM(_spline_penalties(X.shape[1], n_basis)),
    )
    pipeline.fit(X, y)
    gam = pipeline[-1]
    assert gam.coef_.shape == (1, X.shape[1] * n_basis)
    # The noise feature (column 3) is shrunk hardest: the largest smoothing parameter.
    assert int(np.argmax(gam.lambdas_)) == 3
    scores = cross_val_score(pipeline, X, y, cv=3, scoring="roc_auc")
    assert scores.shape == (3,)
    assert scores.min() > 0.7


def test_estimator_get_params_set_params_clone_round_trip() -> None:
    penalties = [Penalty(slice(0, 2)), Penalty(slice(2, 4))]
    model = PenalisedLogisticGAM(penalties, select=False, lambdas=[1.0, 2.0], tol=1e-9)
    params = model.get_params()
    assert params == {
        "penalties": penalties,
        "select": False,
        "lambdas": [1.0, 2.0],
        "prior_mean": None,
        "tol": 1e-9,
        "max_iter": 200,
    }
    copy = clone(model)
    assert copy is not model
    assert copy.get_params().keys() == params.keys()
    assert copy.get_params()["lambdas"] == [1.0, 2.0]
    assert copy.set_params(max_iter=50, select=True) is copy
    assert copy.get_params()["max_iter"] == 50 and copy.select
    assert model.max_iter == 200 and not model.select  # the original is untouched
    X, y = _data(200, seed=10)
    fitted = model.fit(X, y)
    assert not hasattr(clone(fitted), "coef_")  # clone is unfitted
    np.testing.assert_array_equal(clone(fitted).fit(X, y).coef_, fitted.coef_)


@pytest.mark.slow  # a fresh interpreter importing the package: about 2 s
def test_estimator_import_does_not_reach_the_scoring_path() -> None:
    # Scoring must not import scikit-learn; the estimator lives outside the package exports.
    check = (
        "import sys, predictor, predictor.model; print('predictor.model._estimator' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_estimator_is_public_and_imports_scikit_learn_only_when_asked() -> None:
    code = (
        "import sys, predictor; assert 'sklearn' not in sys.modules; "
        "from predictor import PenalisedLogisticGAM; print(PenalisedLogisticGAM.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PenalisedLogisticGAM"
    import predictor

    assert predictor.PenalisedLogisticGAM is PenalisedLogisticGAM
    assert "PenalisedLogisticGAM" in predictor.__all__
