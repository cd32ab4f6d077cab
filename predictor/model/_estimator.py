"""The penalised LAML fitter as a scikit-learn classifier, so that users can put the model in
their own pipelines, cross-validation and calibration displays.

:class:`PenalisedLogisticGAM` wraps :func:`~predictor.model._fitter.fit_penalised_logistic`
and adds nothing to the fit: scikit-learn's input validation, any two class labels, and the
fitted attributes a scikit-learn linear classifier has (``coef_``, ``intercept_``,
``classes_``). This is the only module of the package that imports scikit-learn at import
time; scoring never imports it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from predictor.model._fitter import Penalty, fit_penalised_logistic


class PenalisedLogisticGAM(ClassifierMixin, BaseEstimator):
    """Binary logistic regression with one smoothing parameter per penalty block, chosen by
    Laplace-approximate marginal likelihood (LAML, "REML" for a GLM).

    The model is ``logit P(y = classes_[1]) = offset + intercept_ + X @ coef_[0]``; the fit
    maximises the log-likelihood minus ``1/2 sum_j lambda_j (b - b0)' S_j (b - b0)`` with one
    block ``j`` per penalty (see :mod:`predictor.model._fitter`). Give the columns of a spline
    basis (e.g. from :class:`sklearn.preprocessing.SplineTransformer`) their own blocks to get
    a generalised additive model; by default all columns share one ridge penalty whose size is
    chosen from the data.

    Parameters
    ----------
    penalties : sequence of Penalty or (columns, matrix) tuples, default=None
        Disjoint blocks of columns of X (a slice or an integer index array into the columns
        seen by :meth:`fit`), each with a symmetric positive semi-definite matrix of shape
        (k, k) for its k columns, or None for the identity (a ridge). Columns in no block are
        not penalised. None: one ridge block over all columns.
    select : bool, default=True
        Choose the smoothing parameters by LAML (True) or use ``lambdas`` as given (False).
    lambdas : sequence of float, default=None
        One positive smoothing parameter per block: the starting values when ``select``, the
        values used otherwise. None: a start scaled to each block's share of ``X'WX``.
    prior_mean : array-like of shape (n_features,), default=None
        The coefficients a huge smoothing parameter pulls toward, in log-odds per unit of each
        column (the penalty is on ``coef - prior_mean``). None: zero.
    tol : float, default=1e-7
        Convergence tolerance of the fitter (its ``tol``).
    max_iter : int, default=200
        Most iterations of the fitter.

    Attributes
    ----------
    classes_ : numpy.ndarray of shape (2,)
        The two class labels, sorted; ``classes_[1]`` is the positive class.
    coef_ : numpy.ndarray of shape (1, n_features)
        Coefficients, log-odds per unit of each column (the shape of
        :class:`sklearn.linear_model.LogisticRegression`'s).
    intercept_ : numpy.ndarray of shape (1,)
        Intercept, log-odds.
    lambdas_ : numpy.ndarray of shape (n_penalties,)
        The smoothing parameter of each block.
    covariance_ : numpy.ndarray of shape (n_features + 1, n_features + 1)
        Bayesian posterior covariance of ``(intercept, coef)``, intercept first.
    edf_ : numpy.ndarray of shape (n_penalties,)
        Effective degrees of freedom of each block.
    laml_ : float
        The log marginal likelihood (LAML) at the fit.
    n_iter_ : int
        Iterations the fitter took.
    n_features_in_ : int
        Number of columns seen by :meth:`fit`.
    feature_names_in_ : numpy.ndarray of shape (n_features_in_,)
        Column names seen by :meth:`fit`, when X had string column names.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = np.where(rng.random(400) < 1 / (1 + np.exp(-2 * X[:, 0])), "responder", "not")
    >>> model = PenalisedLogisticGAM().fit(X, y)
    >>> model.classes_.tolist()
    ['not', 'responder']
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(
        self,
        penalties: Sequence[Penalty | tuple] | None = None,
        *,
        select: bool = True,
        lambdas: Sequence[float] | None = None,
        prior_mean: Any = None,
        tol: float = 1e-7,
        max_iter: int = 200,
    ) -> None:
        self.penalties = penalties
        self.select = select
        self.lambdas = lambdas
        self.prior_mean = prior_mean
        self.tol = tol
        self.max_iter = max_iter

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        offset: Any = None,
    ) -> PenalisedLogisticGAM:
        """Fit the coefficients and choose the smoothing parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Design matrix, without an intercept column (one is added, not penalised).
        y : array-like of shape (n_samples,)
            Class labels, exactly two distinct values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative case weights multiplying each row's log-likelihood.
        offset : array-like of shape (n_samples,), default=None
            Known part of each row's log-odds (coefficient 1, not fitted).

        Returns
        -------
        self : PenalisedLogisticGAM
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            classes = np.unique(y)
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{y_type} ({classes.size} classes: {_shorten(classes)}); PenalisedLogisticGAM "
                "models one event against its absence, so give y with two labels (e.g. "
                "responder or not), or use one model per class"
            )
        sample_weight = _weights(sample_weight, len(y))
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if not (sample_weight > 0).any():
            raise ValueError(
                "every sample weight is zero, so there is nothing to fit; give some rows a "
                "positive weight"
            )
        present = np.unique(y_index[sample_weight > 0])
        if present.size < 2:
            raise ValueError(
                f"y has one class with positive weight ({_shorten(self.classes_[present])}); "
                "a classifier needs rows of both classes to learn from, so give rows of each"
            )
        n_features = X.shape[1]
        penalties = [Penalty(np.arange(n_features))] if self.penalties is None else self.penalties
        offset_array = None if offset is None else _vector(offset, len(y), "offset")
        prior_mean = (
            None if self.prior_mean is None else _vector(self.prior_mean, n_features, "prior_mean")
        )
        fit = fit_penalised_logistic(
            X,
            y_index.astype(np.float64),
            penalties,
            offset=offset_array,
            prior_mean=prior_mean,
            weights=sample_weight,
            lambdas=self.lambdas,
            select=self.select,
            tol=self.tol,
            max_iter=self.max_iter,
        )
        if not fit.converged:
            warnings.warn(
                f"PenalisedLogisticGAM did not converge in max_iter = {self.max_iter} "
                "iterations; raise max_iter or tol, or scale the columns of X",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.coef_ = fit.coef[np.newaxis, :]
        self.intercept_ = np.array([fit.intercept])
        self.lambdas_ = fit.lambdas
        self.covariance_ = fit.covariance
        self.edf_ = fit.edf
        self.laml_ = fit.laml
        self.n_iter_ = fit.n_iter
        return self

    def decision_function(self, X: Any, offset: Any = None) -> np.ndarray:
        """Log-odds of the positive class ``classes_[1]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Design matrix with the columns seen by :meth:`fit`.
        offset : array-like of shape (n_samples,), default=None
            Known part of each row's log-odds (None: zero).

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
            Log-odds.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        logit = X @ self.coef_[0] + self.intercept_[0]
        if offset is not None:
            logit = logit + _vector(offset, X.shape[0], "offset")
        return np.asarray(logit)

    def predict_proba(self, X: Any, offset: Any = None) -> np.ndarray:
        """Probability of each class, in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Design matrix with the columns seen by :meth:`fit`.
        offset : array-like of shape (n_samples,), default=None
            Known part of each row's log-odds (None: zero).

        Returns
        -------
        numpy.ndarray of shape (n_samples, 2)
            Probabilities; each row sums to 1.
        """
        logit = self.decision_function(X, offset=offset)
        return np.column_stack([expit(-logit), expit(logit)])

    def predict(self, X: Any, offset: Any = None) -> np.ndarray:
        """The more probable class of each row (``classes_[1]`` where its probability > 0.5).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Design matrix with the columns seen by :meth:`fit`.
        offset : array-like of shape (n_samples,), default=None
            Known part of each row's log-odds (None: zero).

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
            Class labels.
        """
        positive = self.decision_function(X, offset=offset) > 0
        return np.asarray(self.classes_[positive.astype(np.intp)])


def _weights(sample_weight: Any, size: int) -> np.ndarray:
    """Case weights as a float vector of length ``size`` (None: ones), or a ValueError."""
    if sample_weight is None:
        return np.ones(size)
    weights = check_array(
        sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight"
    )
    if weights.shape != (size,) or (weights < 0).any():
        raise ValueError(
            f"sample_weight must be {size} non-negative numbers, one per row of X; got shape "
            f"{weights.shape}" + (" with negative values" if (weights < 0).any() else "")
        )
    return np.asarray(weights)


def _vector(values: Any, size: int, name: str) -> np.ndarray:
    """``values`` as a finite float vector of length ``size``, or a ValueError naming it."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (size,) or not np.isfinite(array).all():
        raise ValueError(
            f"{name} must be {size} finite numbers, one per "
            f"{'row' if name == 'offset' else 'column'} of X; got shape {array.shape}"
        )
    return array


def _shorten(values: np.ndarray, most: int = 5) -> str:
    """Up to ``most`` values for a message."""
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:most])
    return shown + (", ..." if len(values) > most else "")
