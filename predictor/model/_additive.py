"""The additive logistic model (a penalised GAM): fit, exact contributions and 90% intervals.

Each model field has its own term on the log-odds scale (a block of design columns from
:mod:`predictor.model._features`)::

    logit P(response) = intercept + sum over fields of term_f(x_f),   term_f = X_f @ coef_f

The coefficients are fitted by L2-penalised maximum likelihood (scikit-learn's
``LogisticRegression``, Newton-Cholesky solver); the penalty, i.e. how smooth the terms are, is
chosen by cross-validated log-loss.

Explanations are the terms themselves, centred: ``contribution_f = term_f(x_f) - mean of term_f
over the training data`` and ``baseline = intercept + sum of those means``, so that
``baseline + sum(contributions) == logit(probability)`` exactly, for every patient.

A category level that no training patient had has a column of zeros, whose coefficient the
data cannot tell (the penalty makes it 0). It is set to the term's training mean instead, so a
patient with that level contributes exactly 0 (the average training patient's term) and it is
never given as a reason; the prediction warns that the level was not seen in training. The
fit is the same for every training patient, since the column is 0 for all of them.

Intervals come from the penalised fit's Bayesian posterior covariance, as mgcv computes it:
``V = (X' W X + S)^-1`` with ``W`` the fitted binomial weights and ``S`` the penalty (0 for the
intercept); the 90% interval is ``sigmoid(logit +/- 1.645 se)`` with ``se^2 = x' V x``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, cho_solve
from scipy.special import expit, ndtri

from predictor.model._document import finite_array, finite_number, read_document
from predictor.model._features import FeatureMap, SparseDesign
from predictor.model._protocol import ModelSummary, Scores

INTERVAL_LEVEL = 0.90
PENALTY_GRID: tuple[float, ...] = tuple(np.logspace(-3, 2, 11).tolist())
"""Values of scikit-learn's ``C`` (inverse penalty) tried by cross-validation."""
CV_FOLDS = 5
DEFAULT_THRESHOLD = 0.5
"""Probability at or above which a patient is labelled a likely responder: response is then at
least as likely as not."""

LABELS = ("unlikely responder", "likely responder")
_Z = float(ndtri(0.5 + INTERVAL_LEVEL / 2))
"""The interval's half-width in standard errors (1.645 for 90%)."""
SCORE_BLOCK_ROWS = 1024
"""Rows of a sparse design scored at a time: the block's basis rows stay in the cache."""


@dataclass(frozen=True, eq=False)
class AdditiveModel:
    """A fitted additive model (a :class:`~predictor.model._protocol.Model` of kind
    ``"additive"``). Build with :func:`fit_additive_model`; save with
    :mod:`predictor.model._artifact`.

    Attributes
    ----------
    features : FeatureMap
        The fitted feature map (one term per model field).
    intercept : float
        Intercept, log-odds.
    coef : numpy.ndarray, shape (p,)
        Coefficients of the design columns.
    covariance : numpy.ndarray, shape (p + 1, p + 1)
        Posterior covariance of (intercept, coef).
    term_means : numpy.ndarray, shape (number of terms,)
        Each term's mean over the training data, log-odds.
    penalty_c : float
        The chosen inverse penalty (scikit-learn's ``C``).
    threshold : float
        Probability at or above which ``label`` is "likely responder".
    """

    kind: ClassVar[str] = "additive"
    DESCRIPTION: ClassVar[str] = "penalised additive logistic model (GAM)"

    features: FeatureMap
    intercept: float
    coef: np.ndarray
    covariance: np.ndarray
    term_means: np.ndarray
    penalty_c: float
    threshold: float = DEFAULT_THRESHOLD

    @functools.cached_property
    def fields(self) -> tuple[str, ...]:
        """The model's input fields, one term each, in order."""
        return tuple(term.field for term in self.features.terms)

    @functools.cached_property
    def baseline(self) -> float:
        """Log-odds of the average training patient: intercept + sum of the term means."""
        return float(self.intercept + self.term_means.sum())

    @functools.cached_property
    def _basis_numbers(self) -> tuple[np.ndarray, np.ndarray]:
        """The model in the terms' own bases (:class:`~predictor.model._features.Basis`):
        each basis column's effect on its term (log-odds), shape (size,), and ``H`` with
        ``H @ H.T`` the posterior covariance in that basis, shape (size, p + 1), so that a row
        ``z`` of the basis space has ``x' V x = |z @ H|^2`` for its design row ``x``."""
        to_design = self.features.basis.to_design
        effect = to_design[:, 1:] @ self.coef
        effect[0] = 0.0  # the intercept is not a term
        return effect, to_design @ np.linalg.cholesky(self.covariance)

    def score(self, design: np.ndarray | SparseDesign) -> Scores:
        """Probabilities, 90% intervals and contributions for rows of the design matrix,
        dense or sparse (:meth:`FeatureMap.encode` with ``sparse=True``).

        A sparse design is scored from each row's nonzero basis columns, in blocks of
        :data:`SCORE_BLOCK_ROWS` rows: a term's value is the sum of its (at most four) basis
        values times their effects, and ``x' V x`` is ``|z @ H|^2`` for the basis row ``z``.
        The numbers are those of the dense design to rounding (tests hold them to 1e-12).
        """
        if isinstance(design, SparseDesign):
            return self._scores(*self._sparse_terms(design))
        terms = (design * self.coef) @ self.features.membership
        contributions = terms - self.term_means
        # se^2 = x' V x with x = (1, design row): V's intercept row and column split out.
        covariance = self.covariance
        variance = (
            covariance[0, 0]
            + 2.0 * (design @ covariance[0, 1:])  # exactly the same, without an (n, p) copy
            + np.einsum("ij,ij->i", design @ covariance[1:, 1:], design)
        )
        return self._scores(contributions, variance)

    def _sparse_terms(self, design: SparseDesign) -> tuple[np.ndarray, np.ndarray]:
        """Contributions and ``x' V x`` of the rows of a sparse design."""
        features, n = self.features, design.n
        basis = features.basis
        effect, root = self._basis_numbers
        contributions = np.empty((n, len(features.terms)))
        contributions[:] = -self.term_means  # an unused term: 0 minus its mean
        variance = np.empty(n)
        firsts = basis.firsts
        used = basis.slots[firsts]
        block = np.zeros((min(n, SCORE_BLOCK_ROWS), basis.size))
        for start in range(0, n, SCORE_BLOCK_ROWS):
            stop = min(n, start + SCORE_BLOCK_ROWS)
            columns, values = features.nonzero(design, start, stop)
            if used.size:
                terms = np.add.reduceat(values * effect[columns], firsts, axis=1)
                contributions[start:stop, used] = terms - self.term_means[used]
            rows = block[: stop - start]
            rows[:] = 0.0
            rows[:, 0] = 1.0  # the intercept
            flat = np.arange(stop - start)[:, None] * basis.size + columns
            rows.reshape(-1)[flat.reshape(-1)] = values.reshape(-1)
            projected = rows @ root
            variance[start:stop] = np.einsum("ij,ij->i", projected, projected)
        return contributions, variance

    def _scores(self, contributions: np.ndarray, variance: np.ndarray) -> Scores:
        """Scores from the centred terms and ``x' V x`` of each row."""
        logit = self.baseline + contributions.sum(axis=1)
        # x' V x >= 0 for a positive definite V, but rounding can take it a hair below 0 when V
        # is nearly singular: 0 then, not NaN.
        se = np.sqrt(np.maximum(variance, 0.0))
        half_width = _Z * se
        return Scores(
            logit,
            expit(logit),
            expit(logit - half_width),
            expit(logit + half_width),
            contributions,
        )

    def labels(self, probability: np.ndarray) -> np.ndarray:
        """``"likely responder"`` at or above the threshold, else ``"unlikely responder"``."""
        return np.asarray(LABELS, dtype=object)[(probability >= self.threshold).astype(np.intp)]

    def term_contribution(self, j: int, block: np.ndarray) -> np.ndarray:
        """Centred contribution of term ``j`` (log-odds) for rows of its design block, shape
        (n, len(features.terms[j].columns)) -> (n,)."""
        return block @ self.coef[self.features.slices[j]] - self.term_means[j]

    def summary(self) -> ModelSummary:
        """The kind of model, its number of coefficients and its penalty."""
        z = ndtri(0.5 + INTERVAL_LEVEL / 2)
        details = (
            "A penalised additive logistic model (a GAM): each field has its own term on the "
            "log-odds scale\n(for numbers, a cubic B-spline with knots at training quantiles and "
            "a second-difference\nsmoothness penalty (P-spline), held constant beyond the "
            "training range; for categories, one\ncoefficient per level). The coefficients are "
            "fitted by penalised maximum likelihood; the\n"
            f"penalty (C = {self.penalty_c:g}) was chosen by {CV_FOLDS}-fold cross-validated "
            f"log-loss. The\n{INTERVAL_LEVEL:.0%} interval is sigmoid(logit +/- {z:.3f} se), "
            "with se from the penalised fit's\nBayesian posterior covariance (as mgcv computes it)."
        )
        return ModelSummary(
            "additive model",
            self.DESCRIPTION,
            len(self.coef),
            {"penalty_c": self.penalty_c},
            details,
        )

    def refit(self, clean: pd.DataFrame, responded: np.ndarray, *, seed: int) -> AdditiveModel:
        """The additive model of the same fields, penalty and threshold, fitted on ``clean``
        (no penalty search: the penalty is this model's)."""
        model, _ = fit_additive_model(
            clean,
            responded,
            seed=seed,
            penalty_grid=(self.penalty_c,),
            threshold=self.threshold,
            fields=self.fields,
        )
        return model

    def to_document(self) -> dict[str, Any]:
        """The model as plain JSON values (floats exact: JSON text round-trips them)."""
        features = self.features.to_document()
        return {
            "kind": self.kind,
            "fields": features["fields"],
            "threshold": self.threshold,
            "penalty_c": self.penalty_c,
            "intercept": self.intercept,
            "coef": self.coef.tolist(),
            "term_means": self.term_means.tolist(),
            "covariance": self.covariance.tolist(),
            "terms": features["terms"],
        }

    @classmethod
    def from_document(
        cls, document: Mapping[str, Any], *, source: str = "model document"
    ) -> AdditiveModel:
        """Rebuild a model from :meth:`to_document`'s output, checking every part of it:
        the terms (:meth:`FeatureMap.from_document`), the numbers' shapes and sizes, the
        threshold in (0, 1), a positive penalty, a symmetric positive definite covariance.

        Raises
        ------
        ModelFileError
            Saying what is wrong, naming ``source``.
        """
        return read_document(lambda: cls._from_document(document), source)

    @classmethod
    def _from_document(cls, document: Mapping[str, Any]) -> AdditiveModel:
        features = FeatureMap.from_document(document)
        p = len(features.columns)
        model = cls(
            features=features,
            intercept=finite_number(document["intercept"], "intercept"),
            coef=finite_array(document["coef"], "coef", (p,)),
            covariance=finite_array(document["covariance"], "covariance", (p + 1, p + 1)),
            term_means=finite_array(document["term_means"], "term_means", (len(features.terms),)),
            penalty_c=finite_number(document["penalty_c"], "penalty_c"),
            threshold=finite_number(document["threshold"], "threshold"),
        )
        if not 0.0 < model.threshold < 1.0:
            raise ValueError(f"its threshold {model.threshold!r} is not between 0 and 1")
        if not model.penalty_c > 0.0:
            raise ValueError(f"its penalty C {model.penalty_c!r} is not positive")
        covariance = model.covariance
        if not np.array_equal(covariance, covariance.T):
            raise ValueError("its covariance is not symmetric")
        try:
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            raise ValueError("its covariance is not positive definite") from None
        return model


class FitReport(NamedTuple):
    """How the penalty was chosen: mean cross-validated log-loss for each ``C`` tried."""

    penalty_grid: tuple[float, ...]
    cv_log_loss: tuple[float, ...]
    penalty_c: float


def _posterior_covariance(design: np.ndarray, probability: np.ndarray, c: float) -> np.ndarray:
    full = np.hstack([np.ones((len(design), 1)), design])
    precision = full.T @ (full * (probability * (1.0 - probability))[:, None])
    precision[np.diag_indices_from(precision)] += np.r_[0.0, np.full(design.shape[1], 1.0 / c)]
    covariance = cho_solve(cho_factor(precision), np.eye(len(precision)))
    return (covariance + covariance.T) / 2.0


def fit_additive_model(
    clean: pd.DataFrame,
    responded: np.ndarray,
    *,
    seed: int,
    penalty_grid: tuple[float, ...] = PENALTY_GRID,
    threshold: float = DEFAULT_THRESHOLD,
    fields: Sequence[str] | None = None,
) -> tuple[AdditiveModel, FitReport]:
    """Fit the additive model, choosing the penalty by cross-validated log-loss.

    Parameters
    ----------
    clean : pandas.DataFrame, shape (n, ...)
        Training records as ``data_schemas.validate`` returns them.
    responded : numpy.ndarray, shape (n,)
        0/1 outcome.
    seed : int
        Seed of the cross-validation folds; the same seed and data give the same model.
    penalty_grid : tuple of float
        Inverse penalties (``C``) to try (one value: used without cross-validation).
    threshold : float
        Stored in the model for its labels.
    fields : sequence of str, optional
        The model's input fields, predictor fields of the schema (default: all of them); see
        :meth:`FeatureMap.fit`.

    Returns
    -------
    (AdditiveModel, FitReport)
    """
    from predictor._params import INF, SEED, Interval, NonEmptySequenceOf, check

    check(
        "fit_additive_model",
        {
            "seed": [SEED],
            "penalty_grid": [NonEmptySequenceOf(Interval(float, 0, INF, closed="neither"))],
            "threshold": [Interval(float, 0, 1, closed="neither")],
        },
        locals(),
    )
    # Imported here: scoring needs no scikit-learn, and importing it costs about 1 s of start-up.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    y = np.asarray(responded, dtype=np.float64)
    features = FeatureMap.fit(clean, fields=fields)
    design = features.design(clean)
    estimator = LogisticRegression(solver="newton-cholesky", tol=1e-8, max_iter=200)
    if len(penalty_grid) == 1:  # nothing to choose
        fitted = estimator.set_params(C=penalty_grid[0]).fit(design, y)
        cv_log_loss: tuple[float, ...] = (float("nan"),)
    else:
        search = GridSearchCV(
            estimator,
            {"C": list(penalty_grid)},
            scoring="neg_log_loss",
            cv=StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed),
        ).fit(design, y)
        fitted = search.best_estimator_
        cv_log_loss = tuple((-search.cv_results_["mean_test_score"]).tolist())
    c = float(fitted.C)
    coef = fitted.coef_[0].astype(np.float64)
    intercept = float(fitted.intercept_[0])
    probability = expit(intercept + design @ coef)
    term_means = np.array([design[:, s].mean(axis=0) @ coef[s] for s in features.slices])
    for j, (term, columns) in enumerate(zip(features.terms, features.slices, strict=True)):
        for level in term.unseen_levels:  # a zero column: the mean term, contribution 0
            coef[columns.start + term.levels.index(level)] = term_means[j]
    model = AdditiveModel(
        features=features,
        intercept=intercept,
        coef=coef,
        covariance=_posterior_covariance(design, probability, c),
        term_means=term_means,
        penalty_c=c,
        threshold=threshold,
    )
    report = FitReport(tuple(penalty_grid), cv_log_loss, c)
    return model, report
