"""The penalised logistic fitter: agreement with scikit-learn at a fixed penalty, the smoothing
parameter at the LAML's maximum, shrinkage of unsupported blocks, prior mean, offset."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, log_expit
from sklearn.linear_model import LogisticRegression

from predictor.model._fitter import (
    FLAT_CURVATURE,
    Penalty,
    _blocks,
    _laml_hessian,
    _rho_covariance_root,
    fit_penalised_logistic,
)


def _data(n: int, p: int, seed: int, scale: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = rng.normal(scale=scale, size=p)
    y = (rng.random(n) < expit(-0.3 + X @ beta)).astype(np.float64)
    return X, y


def _sklearn(X: np.ndarray, y: np.ndarray, lam: float, **fit: object) -> LogisticRegression:
    """The ridge fit with penalty lam/2 ||beta||^2 (C = 1/lam), intercept unpenalised."""
    model = LogisticRegression(C=1.0 / lam, solver="newton-cholesky", tol=1e-12, max_iter=100)
    return model.fit(X, y, **fit)


def _laml(X: np.ndarray, y: np.ndarray, lam: float) -> float:
    """The LAML of a one-block ridge problem from its definition (Wood 2011, scale 1), at
    scikit-learn's fit: l(b) - lam/2 |b|^2 + p/2 log lam - 1/2 log|H| + 1/2 log(2 pi)."""
    model = _sklearn(X, y, lam)
    b, b0 = model.coef_[0], model.intercept_[0]
    eta = b0 + X @ b
    log_lik = np.sum(y * log_expit(eta) + (1 - y) * log_expit(-eta))
    Z = np.hstack([np.ones((len(X), 1)), X])
    mu = expit(eta)
    H = Z.T @ (Z * (mu * (1 - mu))[:, None]) + np.diag(np.r_[0.0, np.full(X.shape[1], lam)])
    p = X.shape[1]
    return float(
        log_lik
        - 0.5 * lam * b @ b
        + 0.5 * p * np.log(lam)
        - 0.5 * np.linalg.slogdet(H)[1]
        + 0.5 * np.log(2 * np.pi)
    )


@pytest.mark.parametrize("lam", [0.01, 1.0, 30.0], ids=["weak", "unit", "strong"])
def test_fitter_fixed_penalty_equals_sklearn(lam: float) -> None:
    X, y = _data(800, 6, seed=1)
    fit = fit_penalised_logistic(X, y, [(slice(None), None)], lambdas=[lam], select=False)
    reference = _sklearn(X, y, lam)
    assert fit.converged
    np.testing.assert_allclose(fit.coef, reference.coef_[0], atol=1e-6)
    assert fit.intercept == pytest.approx(reference.intercept_[0], abs=1e-6)


def test_fitter_weights_equal_sklearn_sample_weight() -> None:
    X, y = _data(500, 4, seed=2)
    weights = np.random.default_rng(3).uniform(0.2, 3.0, size=len(y))
    fit = fit_penalised_logistic(
        X, y, [(slice(None), None)], weights=weights, lambdas=[2.0], select=False
    )
    reference = _sklearn(X, y, 2.0, sample_weight=weights)
    np.testing.assert_allclose(fit.coef, reference.coef_[0], atol=1e-6)
    assert fit.intercept == pytest.approx(reference.intercept_[0], abs=1e-6)


def test_fitter_lambda_maximises_laml_on_a_fine_grid() -> None:
    X, y = _data(600, 8, seed=4, scale=0.3)
    fit = fit_penalised_logistic(X, y, [(slice(None), None)], tol=1e-9)
    log_grid = np.linspace(np.log(1e-2), np.log(1e4), 241)
    step = log_grid[1] - log_grid[0]
    values = np.array([_laml(X, y, lam) for lam in np.exp(log_grid)])
    best = np.argmax(values)
    assert 0 < best < len(log_grid) - 1, "the optimum must be inside the grid for this check"
    assert abs(np.log(fit.lambdas[0]) - log_grid[best]) <= step
    # Its LAML is the definition's at its lambda, and no grid point beats it.
    assert fit.laml == pytest.approx(_laml(X, y, fit.lambdas[0]), abs=1e-6)
    assert fit.laml >= values.max() - 1e-8


def test_fitter_shrinks_a_noise_block_and_keeps_a_real_effect() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    signal, noise = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    y = (rng.random(n) < expit(signal @ np.array([0.8, -0.5, 0.4, 0.3]))).astype(np.float64)
    X = np.hstack([signal, noise])
    fit = fit_penalised_logistic(X, y, [Penalty(slice(0, 4)), Penalty(slice(4, 8))])
    assert fit.converged
    assert fit.lambdas[1] > 1e3 * fit.lambdas[0]
    assert np.abs(fit.coef[4:]).max() < 0.01
    assert fit.edf[1] < 0.1 < 3.5 < fit.edf[0]
    # The real effects are kept, within about 3 standard errors (0.045 each at n = 3000).
    np.testing.assert_allclose(fit.coef[:4], [0.8, -0.5, 0.4, 0.3], atol=0.15)


def test_fitter_huge_penalty_pulls_to_the_prior_mean_not_zero() -> None:
    X, y = _data(400, 5, seed=6)
    prior = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    fit = fit_penalised_logistic(
        X, y, [(slice(None), None)], prior_mean=prior, lambdas=[1e10], select=False
    )
    np.testing.assert_allclose(fit.coef, prior, atol=1e-6)


def test_fitter_offset_equals_a_fixed_extra_column() -> None:
    X, y = _data(700, 4, seed=7)
    offset = np.random.default_rng(8).normal(size=len(y))
    with_offset = fit_penalised_logistic(
        X, y, [(slice(None), None)], offset=offset, lambdas=[3.0], select=False
    )
    # The offset as a fifth column whose coefficient a huge penalty holds at its prior mean 1.
    extra = fit_penalised_logistic(
        np.column_stack([X, offset]),
        y,
        [(slice(0, 4), None), (np.array([4]), None)],
        prior_mean=np.r_[np.zeros(4), 1.0],
        lambdas=[3.0, 1e12],
        select=False,
    )
    assert extra.coef[4] == pytest.approx(1.0, abs=1e-8)
    np.testing.assert_allclose(with_offset.coef, extra.coef[:4], atol=1e-7)
    assert with_offset.intercept == pytest.approx(extra.intercept, abs=1e-7)


def test_fitter_same_data_same_fit() -> None:
    X, y = _data(1000, 6, seed=9)
    penalties = [(slice(0, 3), None), (slice(3, 6), np.diag([1.0, 2.0, 3.0]))]
    first = fit_penalised_logistic(X, y, penalties)
    second = fit_penalised_logistic(X, y, penalties)
    for name in ("coef", "lambdas", "covariance", "edf"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert (first.intercept, first.laml, first.n_iter) == (
        second.intercept,
        second.laml,
        second.n_iter,
    )


def test_fitter_edf_and_covariance_are_consistent() -> None:
    X, y = _data(500, 6, seed=10)
    fit = fit_penalised_logistic(X, y, [(slice(0, 3), None), (slice(3, 6), None)])
    # Intercept (1 edf, unpenalised) plus the blocks' edf; each block at most its width.
    assert fit.edf_total == pytest.approx(1.0 + fit.edf.sum())
    assert ((fit.edf > 0) & (fit.edf < 3)).all()
    assert np.array_equal(fit.covariance, fit.covariance.T)
    assert np.linalg.eigvalsh(fit.covariance).min() > 0


@pytest.mark.parametrize(
    ("penalties", "match"),
    [
        ([(slice(0, 3), None), (slice(2, 4), None)], "overlap"),
        ([(slice(0, 3), np.eye(2))], "one row per column"),
        ([(slice(0, 2), np.array([[1.0, 2.0], [0.0, 1.0]]))], "not symmetric"),
        ([(slice(0, 2), -np.eye(2))], "positive semi-definite"),
        ([(slice(0, 2), np.zeros((2, 2)))], "zero"),
    ],
    ids=["overlap", "shape", "asymmetric", "negative", "zero"],
)
def test_fitter_rejects_bad_penalties(penalties: list, match: str) -> None:
    X, y = _data(50, 4, seed=11)
    with pytest.raises(ValueError, match=match):
        fit_penalised_logistic(X, y, penalties)


def test_fitter_laml_hessian_matches_finite_differences() -> None:
    # Two blocks at their LAML optimum; the Hessian at fixed working weights (what the
    # smoothing-parameter correction uses) against central differences of the LAML itself,
    # which also has the terms through the weights: close, not equal, for small effects.
    X, y = _data(2000, 6, seed=12, scale=0.2)
    penalties = [(slice(0, 3), None), (slice(3, 6), np.diag([1.0, 2.0, 3.0]))]
    fit = fit_penalised_logistic(X, y, penalties, tol=1e-10)
    rho, h = np.log(fit.lambdas), 0.05

    def laml(shift: np.ndarray) -> float:
        lam = np.exp(rho + shift)
        return fit_penalised_logistic(X, y, penalties, lambdas=lam, select=False, tol=1e-12).laml

    numeric = np.empty((2, 2))
    for j, k in np.ndindex(2, 2):
        e_j, e_k = np.eye(2)[j] * h, np.eye(2)[k] * h
        numeric[j, k] = (laml(e_j + e_k) - laml(e_j - e_k) - laml(e_k - e_j) + laml(-e_j - e_k)) / (
            4 * h * h
        )
    d = np.r_[0.0, fit.coef]
    analytic = _laml_hessian(fit.covariance, d, _blocks(penalties, 6), fit.lambdas)
    np.testing.assert_allclose(analytic, numeric, rtol=0.1, atol=0.02)


def test_fitter_corrected_covariance_adds_a_positive_semi_definite_term() -> None:
    X, y = _data(1500, 6, seed=13, scale=0.3)
    fit = fit_penalised_logistic(X, y, [(slice(0, 3), None), (slice(3, 6), None)])
    extra = fit.covariance_corrected - fit.covariance
    assert np.array_equal(fit.covariance_corrected, fit.covariance_corrected.T)
    assert np.linalg.eigvalsh(extra).min() > -1e-12
    assert np.trace(extra) > 0
    # A block switched off (at the top bound) has almost no posterior variance, but the data
    # cannot tell a small effect from none: the edge correction gives it some.
    off = fit_penalised_logistic(X, y, [(slice(None), None)], lambdas=[1e12], select=False)
    assert np.abs(off.coef).max() < 1e-8
    assert np.diag(off.covariance)[1:].max() < 1e-10
    assert np.diag(off.covariance_corrected)[1:].min() > 1e-6


def test_fitter_column_shift_moves_only_the_intercept() -> None:
    # A constant added to a column (the centring's invariance): same coefficients, lambdas and
    # LAML; the intercept absorbs the shift; so does a column aliased with the intercept.
    X, y = _data(800, 5, seed=14)
    penalties = [(slice(0, 2), None), (slice(2, 5), None)]
    fit = fit_penalised_logistic(X, y, penalties, tol=1e-10)
    shift = np.array([3.0, -1.0, 0.0, 10.0, 0.5])
    moved = fit_penalised_logistic(X + shift, y, penalties, tol=1e-10)
    np.testing.assert_allclose(moved.coef, fit.coef, atol=1e-6)
    np.testing.assert_allclose(moved.lambdas, fit.lambdas, rtol=1e-3)
    assert moved.laml == pytest.approx(fit.laml, abs=1e-6)
    assert moved.intercept == pytest.approx(fit.intercept - shift @ fit.coef, abs=1e-6)


def test_fitter_a_data_free_block_gets_no_smoothing_correction() -> None:
    # Columns no training row has (a field nobody had): the LAML is flat in their smoothing
    # parameter all the way down, so the edge correction leaves them as the penalty has them.
    X, y = _data(1000, 4, seed=15, scale=0.5)
    X[:, 2:] = 0.0
    fit = fit_penalised_logistic(X, y, [(slice(0, 2), None), (slice(2, 4), None)])
    block = np.s_[3:5, 3:5]  # intercept first
    np.testing.assert_allclose(fit.covariance_corrected[block], fit.covariance[block], rtol=1e-9)
    assert np.abs(fit.covariance_corrected).max() < 1e6


def test_fitter_corrected_covariance_has_the_second_order_term() -> None:
    # mgcv's Vc (Wood, Pya & Saefken 2016, section 3.1) rebuilt from its definition, with the
    # derivatives of the root R = L^-T of Vp (L L' = H) by central differences: Vp + J V_rho J'
    # + sum_jk V_rho[j, k] dR_j dR_k'. No block is on a flat edge, so no edge correction.
    X, y = _data(3000, 6, seed=16, scale=0.4)
    penalties = [(slice(0, 3), None), (slice(3, 6), np.diag([1.0, 2.0, 3.0]))]
    fit = fit_penalised_logistic(X, y, penalties, tol=1e-10)
    blocks = _blocks(penalties, 6)
    centre = X.mean(axis=0)
    Z = np.hstack([np.ones((len(X), 1)), X - centre])
    mu = expit(fit.intercept + X @ fit.coef)
    xtwx = Z.T @ (Z * (mu * (1 - mu))[:, None])

    def hessian_of(rho: np.ndarray) -> np.ndarray:
        h = xtwx.copy()
        for idx, s_j, lam in zip(blocks.positions, blocks.matrix, np.exp(rho), strict=True):
            h[np.ix_(idx, idx)] += lam * s_j
        return h

    def root(rho: np.ndarray) -> np.ndarray:
        return np.linalg.inv(np.linalg.cholesky(hessian_of(rho))).T

    rho = np.log(fit.lambdas)
    vp = np.linalg.inv(hessian_of(rho))
    d = np.r_[0.0, fit.coef]
    hessian = _laml_hessian(vp, d, blocks, fit.lambdas)
    assert (-np.diag(hessian) > FLAT_CURVATURE).all()  # no edge correction
    v_rho = np.linalg.inv(-hessian)
    s_d = np.zeros((7, 2))
    for j, (idx, s_j) in enumerate(zip(blocks.positions, blocks.matrix, strict=True)):
        s_d[idx, j] = fit.lambdas[j] * (s_j @ d[idx])
    jacobian = -(vp @ s_d)
    h = 1e-5
    d_root = [(root(rho + h * e) - root(rho - h * e)) / (2 * h) for e in np.eye(2)]
    second = sum(v_rho[j, k] * d_root[j] @ d_root[k].T for j, k in np.ndindex(2, 2))
    first_order = vp + jacobian @ v_rho @ jacobian.T
    to_given = np.eye(7)
    to_given[0, 1:] = -centre
    expected = to_given @ (first_order + second) @ to_given.T
    np.testing.assert_allclose(fit.covariance_corrected, expected, rtol=0, atol=1e-11)
    # The second-order term is far above that tolerance: without it the test fails.
    without = to_given @ first_order @ to_given.T
    assert np.abs(fit.covariance_corrected - without).max() > 1e-8


def test_rho_covariance_root_leaves_out_directions_without_downward_curvature() -> None:
    # Along a direction where minus the LAML's Hessian is not positive, the Laplace
    # approximation says nothing: no variance there (mgcv's first-order term), rather than an
    # unbounded one (1 / 1e-7 made one cohort's 90% intervals 10 times too wide).
    rng = np.random.default_rng(17)
    vectors, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    hessian = -(vectors * np.array([2.0, 0.5, -0.03])) @ vectors.T
    root = _rho_covariance_root(hessian)
    assert root.shape == (3, 2)
    expected = (vectors[:, :2] / np.array([2.0, 0.5])) @ vectors[:, :2].T
    np.testing.assert_allclose(root @ root.T, expected, atol=1e-12)
    flat = _rho_covariance_root(-np.diag([1.0, 0.0]))
    np.testing.assert_allclose(flat @ flat.T, np.diag([1.0, 0.0]), atol=1e-12)
