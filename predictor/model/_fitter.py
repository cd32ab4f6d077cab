"""Penalised logistic regression with one smoothing parameter per penalty block, chosen by
Laplace-approximate marginal likelihood (LAML, "REML" for a GLM).

The model is ``logit P(y=1) = offset + intercept + X @ beta`` and the fit maximises the
penalised log-likelihood::

    l(beta) - 1/2 sum_j lambda_j (beta - beta0)' S_j (beta - beta0)

with one block ``j`` per penalty: a set of columns and a positive semi-definite ``S_j`` on
them; the intercept and any column outside every block are not penalised. ``beta0`` (the
prior mean) is what a huge ``lambda_j`` pulls the block's coefficients to (default 0).

For given lambdas the coefficients come from penalised IRLS (Newton's method on the penalised
log-likelihood, a Cholesky factor of ``H = X'WX + S_lambda`` per step, step halving when the
objective does not improve). The lambdas maximise the LAML of Wood (2011, JRSS-B 73(1), eq.
(4) with scale 1)::

    V(lambda) = l(b) - 1/2 (b - beta0)' S_lambda (b - beta0)
                + 1/2 log|S_lambda|_+ - 1/2 log|H| + M_p/2 log(2 pi)

(``b`` the penalised fit, ``M_p`` the dimension of the penalty's null space), by the
(generalised) Fellner-Schall update of Wood & Fasiolo (2017, Biometrics 73(4)), mgcv's
``optimizer="efs"``, alternated with single PIRLS steps until both settle::

    lambda_j <- lambda_j * (r_j - lambda_j tr(H^-1 S_j) - c_j) / (lambda_j (b-beta0)' S_j (b-beta0))

where ``r_j = rank(S_j) = lambda_j tr(S_lambda^+ S_j)`` (the blocks are disjoint) and
``c_j = tr(H^-1 dH/d log lambda_j)`` through the weights ``W`` (``dW/d eta`` times the change
of the fit). The plain update omits ``c_j``; with it, the fixed point is exactly a stationary
point of V (``dV/d log lambda_j`` is half the numerator minus half the denominator), which the
tests check against a brute-force maximisation of V. Where ``c_j`` would make the numerator
non-positive the plain update (numerator ``r_j - lambda_j tr(H^-1 S_j) > 0``) is used.

Identifiability: the columns are centred over the training rows (weighted means) inside the
fit, ``theta = (a, beta)`` with ``logit = offset + a + (X - 1 m') beta``, and the results are
mapped back to the given columns (``intercept = a - m' beta``; the covariance through the same
linear map). Centring is mgcv's sum-to-zero constraint ``1' X_j beta_j = 0`` for every block
with the constrained direction left in place rather than dropped: a column that is constant over
the training rows (a spline term's level, or its level plus its "not measured" column) becomes
zero, so its coefficient is data-free, the ridge holds it at its prior mean, and the intercept
carries the mean. A data-free direction inside a ridge block adds ``log lambda_j`` to both
``log|S_lambda|_+`` and ``log|H|`` and 1 to both ``rank(S_j)`` and ``lambda_j tr(H^-1 S_j)``, so
it changes neither the fit, the LAML nor the smoothing parameters; no penalty acts on the mean.
(Without centring the problem is the same one, the unpenalised intercept reparametrised; the
centred form decouples the intercept from the columns in ``H``.)

Smoothing-parameter uncertainty: ``FitResult.covariance_corrected`` is mgcv's ``Vc``, ``Vp + J
V_rho J' + V''`` (Wood, Pya & Saefken 2016, JASA 111, section 3.1), with ``J = d theta / d log
lambda`` (exact: ``-H^-1 lambda_j S_j (b - beta0)``), ``V_rho`` the inverse of minus the LAML's
Hessian in ``log lambda`` at fixed working weights, and the second-order term ``V'' = sum_jk
V_rho[j, k] (d R / d rho_j)(d R / d rho_k)'`` for the root ``R = L^-T`` of ``Vp = R R'`` (``L``
the lower Cholesky factor of ``H``; ``dH / d rho_j = lambda_j S_j``, fixed weights, as mgcv's
``Vb.corr``): a draw ``theta + R z`` whose ``R`` moves with the smoothing parameters. All of it is
taken after an edge correction that moves smoothing parameters off the LAML's flat edges
(``_edge_corrected``). Directions in ``log lambda`` where the LAML does not curve downward get
no variance (as mgcv's first-order term): there the Laplace approximation says nothing, and a
tiny or negative curvature would make ``V_rho`` unbounded. Not done: the Hessian's terms through
``dW / d log lambda`` (third and fourth derivatives of the log-likelihood).

Cost per iteration at n rows, p columns: ``Z'WZ`` by a symmetric rank-k update (``n p^2``
flops) and the leverages ``diag(Z H^-1 Z')`` for ``c_j`` by one triangular product with
``L^-1`` (``n p^2``; reused from the last iteration while some lambda still moves by more than
a factor e, and always fresh when convergence is declared), plus one pass over ``Z`` per
likelihood evaluation (the accepted step's likelihood is the next iteration's starting value).

Libraries considered (all MIT-compatible licences) and why none is used:

* statsmodels' ``GLMGam`` (BSD-3): one ``alpha`` per smooth, but chosen by AIC/GCV with a
  global optimiser (basinhopping) or by k-fold CV, not by REML/LAML; documented as
  experimental, with binomial and weights "most likely" wrong in its PIRLS.
* glum (BSD-3): a fast GLM with a matrix L2 penalty ``P2``, an offset and weights, but one
  scalar ``alpha`` times ``P2``, chosen by a cross-validated path: no per-block smoothing
  parameters, no marginal likelihood.
* pyGAM (Apache-2.0): one ``lam`` per term, chosen by GCV/UBRE over a grid (the Cartesian
  product of the terms' grids), no REML/LAML, no prior mean.

Written here it is about 250 lines of numpy/scipy, dependency-free, and tested against
scikit-learn at a fixed penalty and against a directly computed LAML. scipy is imported inside
the functions that fit: loading and scoring a model reads this module's constants and
:func:`term_penalties` only, and should not pay for scipy's import (about 0.3 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    from predictor.model._features import FeatureMap

LAMBDA_BOUNDS = (1e-8, 1e12)
"""Smoothing parameters are kept in this range: at the top a block is switched off (its
coefficients are its prior mean to about 1e-10), at the bottom it is all but unpenalised."""


class Penalty(NamedTuple):
    """One penalty block: the columns of ``X`` it penalises and its matrix.

    A plain tuple ``(columns, matrix)`` works the same.
    """

    columns: slice | np.ndarray
    """A slice or integer index array into the columns of X."""
    matrix: np.ndarray | None = None
    """shape (k, k), symmetric positive semi-definite, for the block's k columns (None: the
    identity, a ridge)."""


@dataclass(frozen=True, eq=False)
class FitResult:
    """A penalised logistic fit.

    Attributes
    ----------
    intercept : float
        Intercept, log-odds.
    coef : numpy.ndarray, shape (p,)
        Coefficients of the columns of X.
    lambdas : numpy.ndarray, shape (number of penalties,)
        Smoothing parameter of each penalty block.
    covariance : numpy.ndarray, shape (p + 1, p + 1)
        Bayesian posterior covariance ``Vp = (Z'WZ + S_lambda)^-1`` of (intercept, coef), with
        ``Z = [1, X]`` (as mgcv's ``Vp``, scale 1).
    edf : numpy.ndarray, shape (number of penalties,)
        Effective degrees of freedom of each block: the block's part of the trace of
        ``Vp Z'WZ``.
    edf_total : float
        Effective degrees of freedom of the whole model, intercept and unpenalised columns
        included.
    laml : float
        The Laplace-approximate log marginal likelihood at the fit.
    n_iter : int
        Iterations (PIRLS steps, each with a smoothing-parameter update when selecting).
    converged : bool
        Whether the iterations met the tolerance before ``max_iter``.
    covariance_corrected : numpy.ndarray, shape (p + 1, p + 1)
        The posterior covariance corrected for the uncertainty of the smoothing parameters
        (``_edge_corrected``; given lambdas are treated as estimates from this data too), same
        layout.
    """

    intercept: float
    coef: np.ndarray
    lambdas: np.ndarray
    covariance: np.ndarray
    edf: np.ndarray
    edf_total: float
    laml: float
    n_iter: int
    converged: bool
    covariance_corrected: np.ndarray


class _Blocks(NamedTuple):
    """The penalty blocks in the coordinates of ``theta = (intercept, beta)``."""

    positions: list[np.ndarray]  # each block's positions in theta
    matrix: list[np.ndarray]  # each block's S_j
    rank: np.ndarray  # rank of each S_j
    logdet: np.ndarray  # log pseudo-determinant of each S_j


def _blocks(penalties: Sequence[Penalty | tuple], p: int) -> _Blocks:
    positions = np.arange(p)
    index, matrix, rank, logdet = [], [], [], []
    taken = np.zeros(p, dtype=bool)
    for j, penalty in enumerate(penalties):
        columns, s = Penalty(*penalty)
        cols = np.atleast_1d(positions[columns])
        s = np.eye(cols.size) if s is None else np.asarray(s, dtype=np.float64)
        if cols.size == 0 or s.shape != (cols.size, cols.size):
            raise ValueError(
                f"penalty {j}: its matrix has shape {s.shape} for {cols.size} columns; give a "
                f"square matrix with one row per column (or None for a ridge)"
            )
        if not np.allclose(s, s.T):
            raise ValueError(f"penalty {j}: its matrix is not symmetric")
        if taken[cols].any() or np.unique(cols).size != cols.size:
            raise ValueError(
                f"penalty {j}: its columns overlap another block's (or repeat); the blocks "
                f"must be disjoint"
            )
        taken[cols] = True
        eigenvalues = np.linalg.eigvalsh(s)
        if eigenvalues.min() < -1e-10 * max(eigenvalues.max(), 1.0):
            raise ValueError(f"penalty {j}: its matrix is not positive semi-definite")
        positive = eigenvalues[eigenvalues > 1e-10 * eigenvalues.max()]
        if positive.size == 0:
            raise ValueError(f"penalty {j}: its matrix is zero")
        index.append(cols + 1)  # theta[0] is the intercept
        matrix.append(s)
        rank.append(positive.size)
        logdet.append(np.log(positive).sum())
    return _Blocks(index, matrix, np.array(rank, dtype=np.float64), np.array(logdet))


def _penalty_matrix(blocks: _Blocks, lambdas: np.ndarray, size: int) -> np.ndarray:
    """``S_lambda`` in theta coordinates, shape (size, size)."""
    s = np.zeros((size, size))
    for idx, s_j, lam in zip(blocks.positions, blocks.matrix, lambdas, strict=True):
        s[np.ix_(idx, idx)] += lam * s_j
    return s


def log_likelihood(logit: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Bernoulli log-likelihood of 0/1 outcomes ``y`` at log-odds ``logit`` (each term times
    its case weight, if given)."""
    from scipy.special import log_expit

    terms = y * log_expit(logit) + (1.0 - y) * log_expit(-logit)
    return float(np.sum(terms) if weights is None else weights @ terms)


def fit_penalised_logistic(
    X: np.ndarray,
    y: np.ndarray,
    penalties: Sequence[Penalty | tuple],
    *,
    offset: np.ndarray | None = None,
    prior_mean: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    lambdas: Sequence[float] | np.ndarray | None = None,
    select: bool = True,
    tol: float = 1e-7,
    max_iter: int = 200,
) -> FitResult:
    """Fit a penalised logistic regression, choosing one smoothing parameter per penalty block
    by Laplace-approximate marginal likelihood (see the module's docstring).

    Parameters
    ----------
    X : numpy.ndarray, shape (n, p)
        Design matrix, without the intercept column (the intercept is added and not penalised).
    y : numpy.ndarray, shape (n,)
        Outcomes, 0 or 1 (or proportions in [0, 1]).
    penalties : sequence of Penalty or (columns, matrix) tuples
        Disjoint blocks of columns of X, each with its own smoothing parameter.
    offset : numpy.ndarray, shape (n,), optional
        Known part of each row's log-odds (coefficient 1, not fitted).
    prior_mean : numpy.ndarray, shape (p,), optional
        ``beta0``: the penalty is on ``beta - beta0`` (default 0).
    weights : numpy.ndarray, shape (n,), optional
        Prior (case) weights multiplying each row's log-likelihood (default 1).
    lambdas : sequence of float, optional
        Smoothing parameters: the starting values when ``select``, else the values used.
        Default: a start scaled to each block's share of ``X'WX``.
    select : bool
        Choose the smoothing parameters (True) or use ``lambdas`` as given (False).
    tol : float
        Convergence tolerance: the Newton decrement of the penalised log-likelihood below
        ``tol * n``, and when selecting, every ``|dV / d log lambda_j|`` below ``1e4 * tol``
        (a block held at a bound by a gradient pointing outward excepted).
    max_iter : int
        Most iterations.

    Returns
    -------
    FitResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 4))
    >>> y = (rng.random(500) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    >>> fit = fit_penalised_logistic(X, y, [(slice(0, 2), None), (slice(2, 4), None)])
    >>> bool(fit.lambdas[1] > 10 * fit.lambdas[0]) and fit.converged
    True
    """
    # One BLAS thread: with p ~ 100, X'WX (n p^2) gains little from threads, and on a busy
    # 2-core machine OpenBLAS's threads made it 40x slower (1.3 s against 0.035 s at n = 40,000).
    with threadpool_limits(1, user_api="blas"):
        return _fit(X, y, penalties, offset, prior_mean, weights, lambdas, select, tol, max_iter)


def _fit(
    X: np.ndarray,
    y: np.ndarray,
    penalties: Sequence[Penalty | tuple],
    offset: np.ndarray | None,
    prior_mean: np.ndarray | None,
    weights: np.ndarray | None,
    lambdas: Sequence[float] | np.ndarray | None,
    select: bool,
    tol: float,
    max_iter: int,
) -> FitResult:
    from scipy.linalg import cho_solve
    from scipy.linalg.blas import dsyrk as syrk
    from scipy.special import expit

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, p = X.shape
    if y.shape != (n,) or ((y < 0) | (y > 1)).any() or not np.isfinite(X).all():
        raise ValueError(
            f"y must be n = {n} values in [0, 1] and X finite; got y of shape {y.shape}"
        )
    offset = np.zeros(n) if offset is None else np.asarray(offset, dtype=np.float64)
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    beta0 = np.zeros(p) if prior_mean is None else np.asarray(prior_mean, dtype=np.float64)
    if offset.shape != (n,) or weights.shape != (n,) or beta0.shape != (p,):
        raise ValueError(
            f"offset and weights need shape ({n},) and prior_mean ({p},); got "
            f"{offset.shape}, {weights.shape}, {beta0.shape}"
        )
    if (weights < 0).any() or not weights.sum() > 0:
        raise ValueError("weights must be non-negative, and not all zero")
    blocks = _blocks(penalties, p)
    n_blocks = len(blocks.positions)
    size = p + 1
    # Centred columns (module docstring): theta = (centred intercept, beta), and the intercept
    # of the given columns is theta[0] - centre @ beta.
    centre = (weights @ X) / weights.sum()
    Z = np.empty((n, size))
    Z[:, 0] = 1.0
    np.subtract(X, centre, out=Z[:, 1:])
    theta0 = np.r_[0.0, beta0]  # the intercept's prior mean is irrelevant (not penalised)
    theta = theta0.copy()
    mean_y = np.clip((weights @ y) / weights.sum(), 1e-6, 1 - 1e-6)
    theta[0] = np.log(mean_y / (1 - mean_y)) - (weights @ offset) / weights.sum()
    work = np.empty((n, size))  # sqrt(W) Z, reused

    def cross_product(w: np.ndarray) -> np.ndarray:
        """Z'WZ by a symmetric rank-k update (half the work of a general product)."""
        np.multiply(Z, np.sqrt(w)[:, None], out=work)
        upper = syrk(1.0, work.T)  # work.T is Fortran-ordered: no copy
        return np.triu(upper) + np.triu(upper, 1).T

    if lambdas is None:
        # A start where each block's penalty is of the size of its part of X'WX (W at the mean).
        w_start = weights * mean_y * (1 - mean_y)
        diag = np.einsum("ij,ij,i->j", Z, Z, w_start)
        pairs = zip(blocks.positions, blocks.matrix, strict=True)
        lam = np.array([diag[idx].mean() / max(np.trace(s) / len(idx), 1e-12) for idx, s in pairs])
        lam = np.clip(lam, *LAMBDA_BOUNDS)
    else:
        lam = np.asarray(lambdas, dtype=np.float64).copy()
        if lam.shape != (n_blocks,) or not (lam > 0).all():
            raise ValueError(f"lambdas must be {n_blocks} positive numbers, got {lam!r}")

    converged = False
    n_iter = 0
    boost = np.ones(n_blocks)
    last_sign = np.zeros(n_blocks)
    eta = offset + Z @ theta
    log_lik = log_likelihood(eta, y, weights)
    leverage: np.ndarray | None = None
    fresh = True
    settling = False  # the last lambda step: below a factor e, blocks at a bound apart
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported)
        mu = expit(eta)
        w = weights * mu * (1.0 - mu)
        xtwx = cross_product(w)
        gradient = 0.0
        if select:
            factor = _cholesky(xtwx + _penalty_matrix(blocks, lam, size))
            # The leverages (half of an iteration's cost) change slowly; while the lambdas
            # still move by more than a factor e they are reused from the last iteration that
            # computed them. Convergence is only declared on fresh ones.
            fresh = leverage is None or settling
            if fresh:
                leverage = _leverage(Z, factor)
            assert leverage is not None
            step_rho, grad, _ = _efs_step(
                Z, theta - theta0, w * (1.0 - 2.0 * mu), factor, blocks, lam, leverage
            )
            # Steps of one sign in a row grow (x2 each, to x16), as a block heads for "off"
            # (lambda -> infinity) or creeps to its optimum; a change of sign resets the boost.
            # The fixed points (step 0, gradient 0) are the Fellner-Schall update's.
            sign = np.sign(step_rho)
            boost = np.where(sign == last_sign, np.minimum(boost * 2.0, 16.0), 1.0)
            last_sign = sign
            rho = np.log(lam) + np.clip(step_rho * boost, -5.0, 5.0)
            lam = np.clip(np.exp(rho), *LAMBDA_BOUNDS)
            # A block held at a bound with the gradient pushing outward is converged.
            at_top = (lam >= LAMBDA_BOUNDS[1]) & (grad > 0)
            at_bottom = (lam <= LAMBDA_BOUNDS[0]) & (grad < 0)
            gradient = float(np.abs(np.where(at_top | at_bottom, 0.0, grad)).max())
            settling = bool(np.abs(np.where(at_top | at_bottom, 0.0, step_rho)).max() < 1.0)
        s_lam = _penalty_matrix(blocks, lam, size)
        factor = _cholesky(xtwx + s_lam)
        d = theta - theta0
        score = Z.T @ (weights * (y - mu)) - s_lam @ d
        step = cho_solve(factor, score)
        decrement = float(score @ step)  # Newton decrement: twice the predicted gain
        before = log_lik - 0.5 * d @ s_lam @ d
        for _ in range(40):  # step halving: the objective must not go down
            candidate = theta + step
            eta = offset + Z @ candidate
            log_lik = log_likelihood(eta, y, weights)
            d = candidate - theta0
            if log_lik - 0.5 * d @ s_lam @ d >= before - 1e-12 * abs(before):
                break
            step = step / 2.0
        theta = candidate
        if decrement < tol * n and gradient < 1e4 * tol and fresh:
            converged = True
            break

    # Everything at the final coefficients and lambdas.
    mu = expit(eta)
    w = weights * mu * (1.0 - mu)
    xtwx = cross_product(w)
    s_lam = _penalty_matrix(blocks, lam, size)
    factor = _cholesky(xtwx + s_lam)
    d = theta - theta0
    vp = cho_solve(factor, np.eye(size))
    vp = (vp + vp.T) / 2.0
    influence = np.einsum("ij,ji->i", vp, xtwx)  # diag(Vp Z'WZ)
    log_det_h = 2.0 * np.log(np.diag(factor[0])).sum()
    log_det_s = float((blocks.rank * np.log(lam) + blocks.logdet).sum())
    null_dim = size - blocks.rank.sum()
    laml = (
        log_lik
        - 0.5 * d @ s_lam @ d
        + 0.5 * log_det_s
        - 0.5 * log_det_h
        + 0.5 * null_dim * np.log(2.0 * np.pi)
    )
    # Given lambdas are treated as estimates from this data too (as when a model is refitted
    # on part of its training data with the smoothing parameters chosen on all of it).
    gradient = Z.T @ (weights * (y - mu))  # of the log-likelihood, at the fit
    corrected = _edge_corrected(xtwx, gradient, log_lik, theta, theta0, blocks, lam, vp)
    # Back to the given columns: intercept = theta[0] - centre @ beta, a linear map A.
    to_given = np.eye(size)
    to_given[0, 1:] = -centre
    return FitResult(
        intercept=float(theta[0] - centre @ theta[1:]),
        coef=theta[1:].copy(),
        lambdas=lam,
        covariance=_symmetric(to_given @ vp @ to_given.T),
        edf=np.array([influence[idx].sum() for idx in blocks.positions]),
        edf_total=float(influence.sum()),
        laml=float(laml),
        n_iter=n_iter,
        converged=converged,
        covariance_corrected=_symmetric(to_given @ corrected @ to_given.T),
    )


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    return (matrix + matrix.T) / 2.0


def _cholesky(h: np.ndarray) -> tuple[np.ndarray, bool]:
    from scipy.linalg import LinAlgError, cho_factor

    try:
        return cho_factor(h, lower=True)
    except LinAlgError as exc:
        raise ValueError(
            "X'WX + S is not positive definite: some columns are neither penalised nor "
            "identified by the data (collinear with the intercept or each other); put them "
            "in a penalty block"
        ) from exc


def _leverage(Z: np.ndarray, factor: tuple[np.ndarray, bool]) -> np.ndarray:
    """``diag(Z H^-1 Z')``, shape (n,), from the lower Cholesky factor ``L`` of ``H``: ``L^-1``
    (``p^3``, cheap), then ``h_i = |L^-1 z_i|^2`` by one triangular product over the rows (half
    the work of ``Z @ H^-1``)."""
    from scipy.linalg import solve_triangular
    from scipy.linalg.blas import dtrmm as trmm

    l_inv = solve_triangular(factor[0], np.eye(Z.shape[1]), lower=True)
    rows = trmm(1.0, l_inv, Z.T, lower=1)  # L^-1 Z', shape (p + 1, n); Z is not overwritten
    return np.einsum("ij,ij->j", rows, rows)


def _efs_step(
    Z: np.ndarray,
    d: np.ndarray,
    dw_deta: np.ndarray,
    factor: tuple[np.ndarray, bool],
    blocks: _Blocks,
    lam: np.ndarray,
    leverage: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generalised Fellner-Schall step in log lambda (module docstring), the LAML's
    gradient by log lambda, and the fit's derivatives ``d theta / d log lambda`` (shape
    (p + 1, number of penalties)).

    ``d = theta - theta0``; ``dw_deta`` the derivative of the working weights by the linear
    predictor; ``factor`` the lower Cholesky factor ``L`` of ``H``; ``leverage`` the
    diagonal of ``Z H^-1 Z'`` (``_leverage``).
    """
    from scipy.linalg import cho_solve

    n_blocks = len(lam)
    size = len(d)
    vp = cho_solve(factor, np.eye(size))
    s_d = np.zeros((size, n_blocks))  # column j: lambda_j S_j d (zero outside block j)
    trace = np.empty(n_blocks)  # lambda_j tr(H^-1 S_j)
    for j, (idx, s_j) in enumerate(zip(blocks.positions, blocks.matrix, strict=True)):
        s_d[idx, j] = lam[j] * (s_j @ d[idx])
        trace[j] = lam[j] * np.einsum("ij,ji->", vp[np.ix_(idx, idx)], s_j)
    quadratic = d @ s_d  # lambda_j d' S_j d
    # c_j = sum_i h_i w'_i (d eta_i / d rho_j), h = diag(Z H^-1 Z'), d theta/d rho_j = -H^-1 s_d_j
    d_theta = -(vp @ s_d)
    c = (Z.T @ (leverage * dw_deta)) @ d_theta
    plain = blocks.rank - trace  # > 0: lambda_j tr(H^-1 S_j) < rank(S_j)
    exact = plain - c
    numerator = np.where(exact > 0, exact, plain)
    with np.errstate(divide="ignore", invalid="ignore"):  # the where() drops those entries
        step = np.where(quadratic > 0, np.log(numerator) - np.log(quadratic), 5.0)
    return step, 0.5 * (exact - quadratic), d_theta


def _laml_hessian(vp: np.ndarray, d: np.ndarray, blocks: _Blocks, lam: np.ndarray) -> np.ndarray:
    """The LAML's Hessian in ``log lambda`` at fixed working weights (``_edge_corrected``),
    shape (number of penalties, number of penalties)."""
    n_blocks = len(lam)
    s_d = np.zeros((len(d), n_blocks))  # lambda_j S_j d
    v_s = []  # lambda_j H^-1 S_j: its non-zero columns, shape (p + 1, k_j)
    for j, (idx, s_j) in enumerate(zip(blocks.positions, blocks.matrix, strict=True)):
        s_d[idx, j] = lam[j] * (s_j @ d[idx])
        v_s.append(lam[j] * (vp[:, idx] @ s_j))
    t = np.array([np.trace(m[idx]) for m, idx in zip(v_s, blocks.positions, strict=True)])
    pair_trace = np.array(
        [
            [np.sum(v_s[j][idx_k] * v_s[k][idx_j].T) for k, idx_k in enumerate(blocks.positions)]
            for j, idx_j in enumerate(blocks.positions)
        ]
    )
    hessian = -0.5 * np.diag(d @ s_d + t) + s_d.T @ vp @ s_d + 0.5 * pair_trace
    return hessian


EDGE_STEP = 1.0
"""Step in ``log lambda`` of the edge correction (mgcv's)."""
EDGE_LAML_DROP = 1.35
"""How far the LAML must fall before a flat smoothing parameter counts as moved off its edge:
half the 90% point of chi-squared with 1 degree of freedom (2.71 / 2), the edge of a 90%
likelihood-ratio set for one log smoothing parameter. mgcv's ``edge.correct`` uses 0.02."""
FLAT_CURVATURE = 0.1
"""A smoothing parameter whose LAML curvature in ``log lambda`` is below this (mgcv's prior
precision on log smoothing parameters) is on a flat edge of the LAML."""


def _laml_at(
    xtwx: np.ndarray,
    gradient: np.ndarray,
    log_lik: float,
    theta: np.ndarray,
    theta0: np.ndarray,
    blocks: _Blocks,
    lam: np.ndarray,
) -> tuple[float, np.ndarray, tuple[np.ndarray, bool]]:
    """The LAML (up to its constant ``M_p/2 log(2 pi)``), coefficients and the Cholesky factor
    of ``H`` at smoothing parameters ``lam``, from the log-likelihood's quadratic expansion at
    the fit ``theta`` (its value ``log_lik``, its gradient, its Hessian ``-xtwx``: the working
    weights held fixed): no pass over the rows, and accurate near the fit, which is all the
    edge correction needs."""
    from scipy.linalg import cho_solve

    s_lam = _penalty_matrix(blocks, lam, len(theta))
    factor = _cholesky(xtwx + s_lam)
    step = cho_solve(factor, gradient - s_lam @ (theta - theta0))
    d = theta + step - theta0
    laml = (
        log_lik
        + gradient @ step
        - 0.5 * step @ xtwx @ step
        - 0.5 * d @ s_lam @ d
        + 0.5 * float((blocks.rank * np.log(lam) + blocks.logdet).sum())
        - np.log(np.diag(factor[0])).sum()
    )
    return float(laml), theta + step, factor


def _edge_corrected(
    xtwx: np.ndarray,
    gradient: np.ndarray,
    log_lik: float,
    theta: np.ndarray,
    theta0: np.ndarray,
    blocks: _Blocks,
    lam: np.ndarray,
    vp: np.ndarray,
) -> np.ndarray:
    """The posterior covariance corrected for smoothing-parameter uncertainty: ``Vp + J V_rho
    J' + V''`` (Wood, Pya & Saefken 2016, section 3.1; module docstring), with an edge
    correction after mgcv's (``gam.control(edge.correct = TRUE)``), taken further.

    A block whose smoothing parameter sits on a flat edge of the LAML (a term switched off, or
    a spline shrunk to its straight line) has ``J = d theta / d rho = 0`` and almost no
    posterior variance there, so the plain correction adds nothing for it, although the data
    cannot tell a small effect from none: its interval is too narrow. Each such ``log
    lambda`` (LAML curvature below :data:`FLAT_CURVATURE`) is lowered in steps of
    :data:`EDGE_STEP`, one block after another, until the LAML has fallen by
    :data:`EDGE_LAML_DROP`: the least smooth value a 90% likelihood-ratio test would not
    reject. ``Vp``, ``J``, ``V_rho`` (the inverse of minus the LAML's Hessian on the directions
    where it curves downward, ``_rho_covariance_root``) and the second-order term
    (``_cholesky_root_derivatives``) are taken there. mgcv stops at a fall of 0.02 and
    keeps the fitted ``Vp``; measured on simulated cohorts (``bench/model_quality.py``), that
    left the 90% intervals too narrow. The coefficients are the fitted model's either way:
    only the intervals change. ``vp`` is the fit's posterior covariance ``H^-1`` at ``lam``.
    """
    from scipy.linalg import cho_solve

    size = len(theta)
    curvature = -np.diag(_laml_hessian(vp, theta - theta0, blocks, lam))
    flat = np.flatnonzero((curvature < FLAT_CURVATURE) & (lam > LAMBDA_BOUNDS[0] * 1.001))
    moved = lam.copy()
    value, _, _ = _laml_at(xtwx, gradient, log_lik, theta, theta0, blocks, lam)
    for block in flat.tolist():  # one after another, each from where the last left the others
        start = value
        for _ in range(int(np.log(LAMBDA_BOUNDS[1] / LAMBDA_BOUNDS[0]) / EDGE_STEP) + 1):
            moved[block] = max(moved[block] * np.exp(-EDGE_STEP), LAMBDA_BOUNDS[0])
            value, _, _ = _laml_at(xtwx, gradient, log_lik, theta, theta0, blocks, moved)
            if value < start - EDGE_LAML_DROP or moved[block] <= LAMBDA_BOUNDS[0]:
                break
        if value >= start - EDGE_LAML_DROP:
            # The LAML never fell: the block is data-free (say, a field no training patient
            # had), and its smoothing parameter carries no uncertainty to add. It stays.
            moved[block] = lam[block]
            value = start
    _, at, factor = _laml_at(xtwx, gradient, log_lik, theta, theta0, blocks, moved)
    vp_moved = _symmetric(cho_solve(factor, np.eye(size)))
    d = at - theta0
    s_d = np.zeros((size, len(moved)))
    for j, (idx, s_j) in enumerate(zip(blocks.positions, blocks.matrix, strict=True)):
        s_d[idx, j] = moved[j] * (s_j @ d[idx])
    jacobian = -(vp_moved @ s_d)
    rho_root = _rho_covariance_root(_laml_hessian(vp_moved, d, blocks, moved))
    first = jacobian @ rho_root
    second = np.zeros((size, size))
    for root_derivative in _cholesky_root_derivatives(factor, blocks, moved, rho_root):
        second += root_derivative @ root_derivative.T
    return vp_moved + first @ first.T + second


CURVATURE_TOLERANCE = 1e-6
"""A direction in ``log lambda`` along which minus the LAML's Hessian is at most this is flat
(say, a data-free block's): it gets no smoothing-parameter variance (``_rho_covariance_root``)."""


def _rho_covariance_root(hessian: np.ndarray) -> np.ndarray:
    """A root ``B`` of ``V_rho = B B'``, shape (number of penalties, k): the inverse of minus the
    LAML's ``hessian`` on the k directions along which the LAML curves downward (more than
    :data:`CURVATURE_TOLERANCE`), none on the others (mgcv's first-order term, ``gam.fit3.post.
    proc``: ``d[d <= 0] <- 0``)."""
    values, vectors = np.linalg.eigh(-hessian)
    curved = values > CURVATURE_TOLERANCE
    return vectors[:, curved] / np.sqrt(values[curved])


def _cholesky_root_derivatives(
    factor: tuple[np.ndarray, bool], blocks: _Blocks, lam: np.ndarray, rho_root: np.ndarray
) -> list[np.ndarray]:
    """The second-order term's factors: for each column ``b`` of ``rho_root`` (``V_rho = B
    B'``), ``sum_j b_j dR / d rho_j`` with ``R = L^-T``, ``L L' = H`` (``factor``, lower), so
    that ``V'' = sum over them of D D'``. ``dH / d rho_j = lambda_j S_j`` (fixed working
    weights); ``dL = L Phi(L^-1 dH L^-T)`` (``Phi``: the lower triangle, diagonal halved) and
    ``dR = -R dL' R``."""
    from scipy.linalg import solve_triangular

    chol = np.tril(factor[0])
    size = chol.shape[0]
    l_inv = solve_triangular(chol, np.eye(size), lower=True)
    derivatives = np.empty((len(lam), size, size))
    for j, (idx, s_j) in enumerate(zip(blocks.positions, blocks.matrix, strict=True)):
        inner = lam[j] * (l_inv[:, idx] @ s_j @ l_inv[:, idx].T)  # L^-1 dH_j L^-T
        phi = np.tril(inner)
        phi[np.diag_indices(size)] *= 0.5
        derivatives[j] = -(l_inv.T @ (chol @ phi).T @ l_inv.T)
    return [np.tensordot(b, derivatives, axes=1) for b in rho_root.T]


PER_TERM = "per term"
POOLED = "pooled"
STRUCTURES = (PER_TERM, POOLED)
"""How the additive model's penalty blocks share smoothing parameters (:func:`term_penalties`)."""


def term_penalties(
    features: FeatureMap, structure: str = PER_TERM, design: np.ndarray | None = None
) -> tuple[list[str], list[Penalty]]:
    """The penalty blocks of the additive model's design, with a name for each.

    ``structure="per term"``: a spline term gives two blocks: its wiggle columns (an identity
    penalty, which the (level, slope, wiggles) reparametrisation makes the P-spline smoothness
    penalty) and its null space, the level and slope columns plus its "not measured" column if
    it has one (a ridge, as mgcv's ``select=TRUE``: a term the data do not support shrinks to
    zero). A category term gives one ridge block on its level columns and its "not measured"
    column. The level column (with the "not measured" one, if any) is aliased with the
    intercept; the fitter's centring makes that direction data-free, so the ridge does not act
    on the term's mean (module docstring). An unused term gives none.

    ``structure="pooled"``: the same penalties in two blocks, one smoothing parameter for all
    the terms' wiggles (``"all:wiggles"``) and one for all their null spaces and category
    levels (``"all:null"``): 2 parameters to choose instead of about 25, which a small cohort
    supports better. Given the training ``design``, the ``"all:null"`` block penalises each
    column on its standardised scale (its matrix is the diagonal of the columns' variances over
    the rows, 1 for a column constant there): one smoothing parameter then means the same prior
    for a one-SD change of any predictor, as a ridge regression on standardised predictors,
    instead of shrinking hardest the slopes of fields whose range is wide for their SD (a
    slope column spans -1 to 1 over the training range). Without ``design``, an identity (the
    names, and the blocks' columns, are the same).
    """
    if structure not in STRUCTURES:
        raise ValueError(f"structure {structure!r} is not one of {STRUCTURES}")
    names: list[str] = []
    blocks: list[Penalty] = []
    for term, columns in zip(features.terms, features.slices, strict=True):
        index = np.arange(columns.start, columns.stop)
        if term.unused:
            continue
        if term.is_spline:
            wiggles = index[2 : term.n_basis]
            null = np.r_[index[:2], index[term.n_basis :]]
            names += [f"{term.field}:wiggles", f"{term.field}:null"]
            blocks += [Penalty(wiggles), Penalty(null)]
        else:
            names.append(term.field)
            blocks.append(Penalty(index))
    if structure == POOLED:
        kinds: dict[str, list[Any]] = {"all:wiggles": [], "all:null": []}
        for name, block in zip(names, blocks, strict=True):
            kinds["all:wiggles" if name.endswith(":wiggles") else "all:null"].append(block.columns)
        names = [name for name, parts in kinds.items() if parts]
        blocks = [Penalty(np.concatenate(kinds[name])) for name in names]
        if design is not None and "all:null" in names:
            j = names.index("all:null")
            variance = design[:, blocks[j].columns].var(axis=0)
            scale = np.where(variance > 1e-12, variance, 1.0)
            blocks[j] = Penalty(blocks[j].columns, np.diag(scale))
    return names, blocks
