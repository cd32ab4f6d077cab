"""The additive logistic model (a penalised GAM): fit, exact contributions and 90% intervals.

Each model field has its own term on the log-odds scale (a block of design columns from
:mod:`predictor.model._features`)::

    logit P(response) = intercept + sum over fields of term_f(x_f),   term_f = X_f @ coef_f

The coefficients are fitted by penalised maximum likelihood with one smoothing parameter per
penalty block (two per spline term: its wiggles and its straight line; one per category term),
each chosen by Laplace-approximate marginal likelihood (LAML, "REML" for a GLM), as mgcv's
``gam(..., method = "REML", select = TRUE)`` does: :mod:`predictor.model._fitter`. A term the
data do not support shrinks to zero.

Explanations are the terms themselves, centred: ``contribution_f = term_f(x_f) - mean of term_f
over the training data`` and ``baseline = intercept + sum of those means``, so that
``baseline + sum(contributions) == logit(probability)`` exactly, for every patient.

A category level that no training patient had has a column of zeros, whose coefficient the
data cannot tell (the penalty makes it 0). It is set to the term's training mean instead, so a
patient with that level contributes exactly 0 (the average training patient's term) and it is
never given as a reason; the prediction warns that the level was not seen in training. The
fit is the same for every training patient, since the column is 0 for all of them.

Intervals come from the penalised fit's Bayesian posterior covariance ``(X' W X + S)^-1`` (``W``
the fitted binomial weights, ``S`` the penalty, 0 for the intercept) corrected for the
uncertainty of the smoothing parameters (mgcv's ``Vc``, with an edge correction:
:func:`predictor.model._fitter.fit_penalised_logistic`); the 90% interval is
``sigmoid(logit +/- 1.645 se)`` with ``se^2 = x' V x``. They carry the uncertainty of the
coefficients given this model and its training population only: not a change of population
(another clinic), nor an effect the model's form cannot express.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd

from predictor.model._document import finite_array, finite_number, read_document
from predictor.model._features import FeatureMap, SparseDesign
from predictor.model._fitter import (
    LAMBDA_BOUNDS,
    PER_TERM,
    POOLED,
    STRUCTURES,
    fit_penalised_logistic,
    term_penalties,
)
from predictor.model._protocol import ModelSummary, Scores

INTERVAL_LEVEL = 0.90
CV_FOLDS = 5
"""Folds of the internal validation (:func:`predictor.evaluation.cross_validate`)."""
SELECTION_LAML = "LAML"
SELECTION_GRID = "cross-validated grid"
"""How a model file of before the LAML fitter chose its one penalty (``penalty_c``)."""
DEFAULT_THRESHOLD = 0.5
"""Probability at or above which a patient is labelled a likely responder: response is then at
least as likely as not."""

LABELS = ("unlikely responder", "likely responder")
_Z = 1.6448536269514722
"""The interval's half-width in standard errors: the normal quantile of ``0.5 + INTERVAL_LEVEL /
2``, 1.645 for 90% (``scipy.special.ndtri``'s, to the last bit: a test holds them equal)."""
SCORE_BLOCK_ROWS = 1024
"""Rows of a sparse design scored at a time: the block's basis rows stay in the cache."""
SCORE_TILE_ROWS = 16
"""A block's rows are a multiple of this (zero rows added, their results dropped): BLAS
rounds a row of a product alike only among rows in full tiles of its kernel (the last row of
an odd number is summed otherwise), and a patient's numbers must not depend on how many others
are scored with them. 16 is a multiple of the row tiles of OpenBLAS's x86 kernels."""


def _probabilities(
    logit: np.ndarray, half_width: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probability and the interval's ends: ``sigmoid(logit)``, ``sigmoid(logit -
    half_width)`` and ``sigmoid(logit + half_width)``.

    The logistic function as ``scipy.special.expit`` computes it, ``1 / (1 + exp(-x))``
    (scoring does without scipy's import): exactly 0 below about -709.8 (``exp`` overflows to
    inf there, silently) and 1 above about 37, NaN for NaN. The three in one array, so that one
    row costs a few numpy calls, not three times as many (``predict(dict)``).
    """
    ends = np.empty((3, *logit.shape))
    # -x of each: -(logit - half_width) is half_width - logit, to the last bit
    np.negative(logit, out=ends[0])
    np.subtract(half_width, logit, out=ends[1])
    np.subtract(ends[0], half_width, out=ends[2])
    with np.errstate(over="ignore"):
        np.exp(ends, out=ends)
    ends += 1.0
    np.divide(1.0, ends, out=ends)
    return ends[0], ends[1], ends[2]


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
        Posterior covariance of (intercept, coef) behind the intervals: corrected for the
        uncertainty of the smoothing parameters.
    term_means : numpy.ndarray, shape (number of terms,)
        Each term's mean over the training data, log-odds.
    smoothing : mapping of str to float
        Smoothing parameter of each penalty block, by the block's name
        (:func:`~predictor.model._fitter.term_penalties`: ``"crp_mg_l:wiggles"``, ...).
    edf : mapping of str to float
        Effective degrees of freedom of each block (empty for a model file of before the LAML
        fitter).
    selection : str
        How the smoothing parameters were chosen: :data:`SELECTION_LAML`, or
        :data:`SELECTION_GRID` (one penalty for every block, a model file of before the LAML
        fitter).
    structure : str
        How the penalty blocks share smoothing parameters: ``"per term"`` or ``"pooled"``
        (:func:`~predictor.model._fitter.term_penalties`).
    threshold : float
        Probability at or above which ``label`` is "likely responder".
    prior : numpy.ndarray or None, shape (p,)
        For a revision (:func:`revise_additive_model`), the coefficients its penalties pulled
        toward (the base model's, times the recalibration slope); None for a fit from scratch,
        whose penalties pull toward zero. :meth:`refit` pulls toward it again.
    """

    kind: ClassVar[str] = "additive"
    DESCRIPTION: ClassVar[str] = "penalised additive logistic model (GAM)"

    features: FeatureMap
    intercept: float
    coef: np.ndarray
    covariance: np.ndarray
    term_means: np.ndarray
    smoothing: Mapping[str, float]
    edf: Mapping[str, float]
    selection: str = SELECTION_LAML
    structure: str = PER_TERM
    threshold: float = DEFAULT_THRESHOLD
    prior: np.ndarray | None = None

    @property
    def toward_base(self) -> bool:
        """Whether the penalties pulled the terms toward another model's (a revision; not one
        whose slope was 0): a term with (almost) no effective degrees of freedom is then that
        model's term, not a term shrunk to zero."""
        return self.prior is not None and bool(self.prior.any())

    @functools.cached_property
    def fields(self) -> tuple[str, ...]:
        """The model's input fields, one term each, in order."""
        return tuple(term.field for term in self.features.terms)

    @functools.cached_property
    def shrunk_fields(self) -> list[str]:
        """The fields whose every penalty block has (almost) no effective degrees of freedom:
        terms the data did not support, shrunk to zero (a revision's: kept at the base's,
        see :attr:`toward_base`; pooled blocks name no field)."""
        edf_by_field: dict[str, float] = {}
        for name, edf in self.edf.items():
            field = name.split(":")[0]
            edf_by_field[field] = edf_by_field.get(field, 0.0) + edf
        return [field for field, edf in edf_by_field.items() if edf < 0.01 and field != "all"]

    @functools.cached_property
    def baseline(self) -> float:
        """Log-odds of the average training patient: intercept + sum of the term means."""
        return float(self.intercept + self.term_means.sum())

    @functools.cached_property
    def _basis_numbers(self) -> np.ndarray:
        """The model in the terms' own bases (:class:`~predictor.model._features.Basis`), as
        one matrix ``[E | H]`` of shape (size, number of terms + p + 1) for a row ``z`` of the
        basis space: ``z @ E`` is each term's value (log-odds, not centred), and ``H @ H.T``
        is the posterior covariance in that basis, so that ``x' V x = |z @ H|^2`` for the
        design row ``x`` of ``z``."""
        to_design = self.features.basis.to_design
        # Products by einsum, not BLAS: OpenBLAS rounds some products differently with another
        # number of threads, and these numbers are made once and kept, so every score would
        # carry the thread count of the moment they were made (score's one, or predict's).
        effect = np.einsum("ij,j->i", to_design[:, 1:], self.coef)  # each column's own effect
        own_term = (to_design[:, 1:] != 0.0) @ self.features.membership > 0.0
        by_term = np.where(own_term, effect[:, None], 0.0)
        root = np.linalg.cholesky(self.covariance)  # the same for 1 and 2 threads (a test)
        return np.hstack([by_term, np.einsum("ij,jk->ik", to_design, root)])

    @functools.cached_property
    def _row_starts(self) -> np.ndarray:
        """Where each row of a block of :data:`SCORE_BLOCK_ROWS` basis rows starts in the
        flattened block, shape (SCORE_BLOCK_ROWS, 1) (built once: a call costs microseconds)."""
        return np.arange(SCORE_BLOCK_ROWS)[:, None] * self.features.basis.size

    def score(self, design: np.ndarray | SparseDesign) -> Scores:
        """Probabilities, 90% intervals and contributions for rows of the design matrix,
        dense or sparse (:meth:`FeatureMap.encode` with ``sparse=True``).

        A sparse design is scored from each row's nonzero basis columns, in blocks of
        :data:`SCORE_BLOCK_ROWS` rows: a term's value is the sum of its (at most four) basis
        values times their effects, and ``x' V x`` is ``|z @ H|^2`` for the basis row ``z``.
        The numbers are those of the dense design to rounding (tests hold them to 1e-12).
        """
        return self._scores(*self.terms(design))

    def terms(self, design: np.ndarray | SparseDesign) -> tuple[np.ndarray, np.ndarray]:
        """Each row's centred terms (contributions, shape (n, number of terms), log-odds) and
        ``x' V x`` (the variance of its logit, shape (n,)): what :meth:`score` is made of, for
        a model built on this one (a recalibrated model scales both)."""
        if isinstance(design, SparseDesign):
            return self._sparse_terms(design)
        terms = (design * self.coef) @ self.features.membership
        contributions = terms - self.term_means
        # se^2 = x' V x with x = (1, design row): V's intercept row and column split out.
        covariance = self.covariance
        variance = (
            covariance[0, 0]
            + 2.0 * (design @ covariance[0, 1:])  # exactly the same, without an (n, p) copy
            + np.einsum("ij,ij->i", design @ covariance[1:, 1:], design)
        )
        return contributions, variance

    def _sparse_terms(self, design: SparseDesign) -> tuple[np.ndarray, np.ndarray]:
        """Contributions and ``x' V x`` of the rows of a sparse design."""
        features, n = self.features, design.n
        basis, numbers = features.basis, self._basis_numbers
        terms = len(features.terms)
        contributions = np.empty((n, terms))
        variance = np.empty(n)
        tiled = -(-min(n, SCORE_BLOCK_ROWS) // SCORE_TILE_ROWS) * SCORE_TILE_ROWS
        block = np.zeros((tiled, basis.size))
        for start in range(0, n, SCORE_BLOCK_ROWS):
            stop = min(n, start + SCORE_BLOCK_ROWS)
            columns, values = features.nonzero(design, start, stop)
            rows = block[: -(-(stop - start) // SCORE_TILE_ROWS) * SCORE_TILE_ROWS]
            if start:  # a block's rows are zeros when it is first used
                rows[:] = 0.0
            rows[: stop - start, 0] = 1.0  # the intercept
            flat = self._row_starts[: stop - start] + columns
            rows.reshape(-1)[flat.reshape(-1)] = values.reshape(-1)
            # one product gives the terms (a sum of at most four nonzero products each: other
            # columns add exact zeros) and the projection whose square is x' V x; in whole
            # tiles of rows (SCORE_TILE_ROWS), of which the added zero rows are dropped
            product = (rows @ numbers)[: stop - start]
            np.subtract(product[:, :terms], self.term_means, out=contributions[start:stop])
            projected = product[:, terms:]
            variance[start:stop] = np.einsum("ij,ij->i", projected, projected)
        return contributions, variance

    def _scores(self, contributions: np.ndarray, variance: np.ndarray) -> Scores:
        """Scores from the centred terms and ``x' V x`` of each row."""
        logit = self.baseline + contributions.sum(axis=1)
        # x' V x >= 0 for a positive definite V, but rounding can take it a hair below 0 when V
        # is nearly singular: 0 then, not NaN.
        se = np.sqrt(np.maximum(variance, 0.0))
        half_width = _Z * se
        return Scores(logit, *_probabilities(logit, half_width), contributions)

    def labels(self, probability: np.ndarray) -> np.ndarray:
        """``"likely responder"`` at or above the threshold, else ``"unlikely responder"``."""
        return np.asarray(LABELS, dtype=object)[(probability >= self.threshold).astype(np.intp)]

    def term_contribution(self, j: int, block: np.ndarray) -> np.ndarray:
        """Centred contribution of term ``j`` (log-odds) for rows of its design block, shape
        (n, len(features.terms[j].columns)) -> (n,)."""
        return block @ self.coef[self.features.slices[j]] - self.term_means[j]

    def summary(self) -> ModelSummary:
        """The kind of model, its number of coefficients and how smooth each term is."""
        if self.selection == SELECTION_GRID:
            penalty = 1.0 / next(iter(self.smoothing.values()))
            settings = {"penalty_c": penalty}
            chosen = (
                f"one penalty for every term (C = {penalty:g}), chosen by {CV_FOLDS}-fold "
                "cross-validated\nlog-loss"
            )
        else:
            settings = {
                "smoothing_parameters": len(self.smoothing),
                "edf_total": round(sum(self.edf.values()), 2),
            }
            off = self.shrunk_fields
            straight = [
                name.split(":")[0]
                for name, edf in self.edf.items()
                if name.endswith(":wiggles") and edf < 0.01 and name.split(":")[0] not in off
            ]
            # a revision's penalties pull toward the base's terms: what they keep is the base's
            pulled = (
                ",\nevery penalty pulling the term toward the model it revised (that model's "
                "coefficients times\nlogistic recalibration's slope), not toward zero"
                if self.toward_base
                else ""
            )
            curve, whole = (
                ("whose change of curve the data do not support keeps that model's curve",
                 "whose change the data do not support at all stays that model's")
                if self.toward_base
                else ("whose curve the data do not support becomes a straight\nline",
                      "the data do not support at all shrinks to zero")
            )  # fmt: skip
            chosen = (
                "one smoothing parameter per term's wiggles, per term's straight line and per "
                "category term,\neach chosen by Laplace-approximate marginal likelihood "
                f'(REML for a GLM, as mgcv\'s\n`method = "REML", select = TRUE`){pulled}: a '
                f"spline {curve}"
                + (f" (here: {', '.join(straight)})" if straight else "")
                + f", and a term {whole}"
                + (f" (here: {', '.join(off)})" if off else "")
                if self.structure == PER_TERM
                else "one smoothing parameter for all the terms' wiggles and one for all their "
                "straight lines and\ncategory levels, each chosen by Laplace-approximate "
                f"marginal likelihood (REML for a GLM){pulled}; the\ncohort was too small to "
                "support one per term (5-fold cross-validated log-loss decided,\nsee the "
                "manifest)"
            )
        details = (
            "A penalised additive logistic model (a GAM): each field has its own term on the "
            "log-odds scale\n(for numbers, a cubic B-spline with knots at training quantiles and "
            "a second-difference\nsmoothness penalty (P-spline), held constant beyond the "
            "training range; for categories, one\ncoefficient per level). The coefficients are "
            f"fitted by penalised maximum likelihood, with\n{chosen}. The\n"
            f"{INTERVAL_LEVEL:.0%} interval is sigmoid(logit +/- {_Z:.3f} se), with se from the "
            "penalised fit's\nBayesian posterior covariance"
            + (
                ", corrected for the uncertainty of the smoothing parameters\n(mgcv's Vc)."
                if self.selection == SELECTION_LAML
                else " (as mgcv computes it)."
            )
        )
        return ModelSummary("additive model", self.DESCRIPTION, len(self.coef), settings, details)

    def refit(self, clean: pd.DataFrame, responded: np.ndarray, *, seed: int) -> AdditiveModel:
        """The additive model of the same fields, smoothing parameters and threshold, fitted on
        ``clean`` (the smoothing parameters are this model's, not chosen again; ``seed`` is not
        used: the fit has no randomness). A revision is revised again: the same terms' inputs
        (knots, levels), pulled toward the same :attr:`prior`."""
        if self.prior is not None:
            y = _both_outcomes(responded)
            args = (self.structure, self.smoothing, self.prior, self.threshold, None)
            return _fit_terms(self.features, clean, y, *args)[0]
        model, _ = fit_additive_model(
            clean,
            responded,
            smoothing=self.smoothing,
            structure=self.structure,
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
            # A model of before the LAML fitter keeps its one penalty, as it was written.
            **(
                {"penalty_c": 1.0 / next(iter(self.smoothing.values()))}
                if self.selection == SELECTION_GRID
                else {
                    "selection": self.selection,
                    "structure": self.structure,
                    "smoothing": dict(self.smoothing),
                    "edf": dict(self.edf),
                }
            ),
            **({"prior": self.prior.tolist()} if self.prior is not None else {}),
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
        threshold in (0, 1), positive smoothing parameters, a symmetric positive definite
        covariance. A document of before the LAML fitter (one ``penalty_c``) is read as one
        smoothing parameter ``1 / penalty_c`` for every block.

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
        if "penalty_c" in document:  # before the LAML fitter: one penalty for every block
            penalty = finite_number(document["penalty_c"], "penalty_c")
            if not penalty > 0.0:
                raise ValueError(f"its penalty C {penalty!r} is not positive")
            smoothing = dict.fromkeys(_block_names(features, PER_TERM), 1.0 / penalty)
            edf: dict[str, float] = {}
            selection, structure = SELECTION_GRID, PER_TERM
        else:
            structure = document["structure"]
            if structure not in STRUCTURES:
                raise ValueError(f"its structure {structure!r} is not one of {STRUCTURES}")
            names = _block_names(features, structure)
            smoothing = _named_numbers(document["smoothing"], "smoothing", names, LAMBDA_BOUNDS)
            edf = _named_numbers(document["edf"], "edf", names, (0.0, len(features.columns)))
            selection = document["selection"]
            if selection != SELECTION_LAML:
                raise ValueError(f"its selection {selection!r} is not {SELECTION_LAML!r}")
        prior = document.get("prior")  # a revision's only
        model = cls(
            features=features,
            intercept=finite_number(document["intercept"], "intercept"),
            coef=finite_array(document["coef"], "coef", (p,)),
            covariance=finite_array(document["covariance"], "covariance", (p + 1, p + 1)),
            term_means=finite_array(document["term_means"], "term_means", (len(features.terms),)),
            smoothing=smoothing,
            edf=edf,
            selection=selection,
            structure=structure,
            threshold=finite_number(document["threshold"], "threshold"),
            prior=None if prior is None else finite_array(prior, "prior", (p,)),
        )
        if not 0.0 < model.threshold < 1.0:
            raise ValueError(f"its threshold {model.threshold!r} is not between 0 and 1")
        covariance = model.covariance
        if not np.array_equal(covariance, covariance.T):
            raise ValueError("its covariance is not symmetric")
        try:
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            raise ValueError("its covariance is not positive definite") from None
        return model


def _block_names(features: FeatureMap, structure: str) -> list[str]:
    return term_penalties(features, structure)[0]


def _named_numbers(
    value: Any, name: str, names: Sequence[str], bounds: tuple[float, float]
) -> dict[str, float]:
    """A mapping of every penalty block's name to a number within ``bounds``, from a model
    document."""
    if not isinstance(value, Mapping) or sorted(value) != sorted(names):
        raise ValueError(f"its {name} does not name exactly the model's penalty blocks")
    numbers = {key: float(np.asarray(value[key], dtype=np.float64)) for key in names}
    for key, number in numbers.items():
        if not bounds[0] <= number <= bounds[1]:  # NaN fails too
            raise ValueError(f"its {name}[{key!r}] = {number!r} is not in {list(bounds)}")
    return numbers


class FitReport(NamedTuple):
    """How the smoothing parameters were chosen: one per penalty block, in the fitter's order."""

    blocks: tuple[str, ...]
    """Block names (:func:`~predictor.model._fitter.term_penalties`)."""
    smoothing: tuple[float, ...]
    edf: tuple[float, ...]
    laml: float
    """The log marginal likelihood at the fit."""
    selected: bool
    """Whether the smoothing parameters were chosen (False: given)."""
    converged: bool
    iterations: int
    structure: str
    """``"per term"`` or ``"pooled"`` (:func:`~predictor.model._fitter.term_penalties`)."""
    structure_log_loss: Mapping[str, float] | None = None
    """Each structure's 5-fold cross-validated log-loss, when the structure was chosen by it
    (cohorts of at most :data:`STRUCTURE_CHECK_ROWS`); None otherwise."""


def fit_additive_model(
    clean: pd.DataFrame,
    responded: np.ndarray,
    *,
    smoothing: float | Mapping[str, float] | None = None,
    structure: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fields: Sequence[str] | None = None,
) -> tuple[AdditiveModel, FitReport]:
    """Fit the additive model on every row given, choosing each penalty block's smoothing
    parameter by LAML (module docstring).

    Parameters
    ----------
    clean : pandas.DataFrame, shape (n, ...)
        Training records as ``data_schemas.validate`` returns them.
    responded : numpy.ndarray, shape (n,)
        0/1 outcome.
    smoothing : float or mapping of str to float, optional
        Smoothing parameters to use instead of choosing them: one number for every block, or
        one per block name (a block the mapping does not name gets the geometric mean of the
        others). None (the default): chosen by LAML. The fit has no randomness: the same data
        give the same model.
    structure : str, optional
        ``"per term"`` (one smoothing parameter per term's wiggles, per term's straight line
        and per category term) or ``"pooled"`` (two in all): see
        :func:`~predictor.model._fitter.term_penalties`. None (the default): per term, except
        that a cohort of at most :data:`STRUCTURE_CHECK_ROWS` rows whose smoothing is chosen
        gets the one with the lower 5-fold cross-validated log-loss (the smoothing chosen again
        in each fold): the about 25 smoothing parameters of a per-term fit are themselves
        fitted to the data, and on a few hundred patients they fit its noise (measured by
        ``bench/model_quality.py``). With ``smoothing`` a mapping, its block names say which.
    threshold : float
        Stored in the model for its labels.
    fields : sequence of str, optional
        The model's input fields, predictor fields of the schema (default: all of them); see
        :meth:`FeatureMap.fit`.

    Returns
    -------
    (AdditiveModel, FitReport)

    Raises
    ------
    ValueError
        If the fit is impossible (say, only one outcome).
    """
    from predictor._params import INF, NONE, InstanceOf, Interval, Options, check

    check(
        "fit_additive_model",
        {
            "structure": [NONE, Options(*STRUCTURES)],
            "smoothing": [
                NONE,
                Interval(float, 0, INF, closed="neither"),
                InstanceOf(Mapping, "a mapping of penalty block names to floats"),
            ],
            "threshold": [Interval(float, 0, 1, closed="neither")],
        },
        locals(),
    )
    y = _both_outcomes(responded)
    log_losses = None
    if structure is None and isinstance(smoothing, Mapping):
        structure = POOLED if all(name.startswith("all:") for name in smoothing) else PER_TERM
    elif structure is None and smoothing is None and len(y) <= STRUCTURE_CHECK_ROWS:
        log_losses = _structure_log_loss(clean, y, fields)
        structure = min(log_losses, key=log_losses.__getitem__)
    structure = structure or PER_TERM
    features = FeatureMap.fit(clean, fields=fields)
    return _fit_terms(features, clean, y, structure, smoothing, None, threshold, log_losses)


def revise_additive_model(
    base: AdditiveModel,
    clean: pd.DataFrame,
    responded: np.ndarray,
    *,
    slope: float = 1.0,
    structure: str | None = None,
) -> tuple[AdditiveModel, FitReport]:
    """Model revision: every term of ``base`` refitted on ``clean``, each penalty pulling its
    coefficients toward ``slope`` times the base's instead of toward zero.

    The fitter's prior mean (:func:`~predictor.model._fitter.fit_penalised_logistic`'s
    ``prior_mean``) is ``slope * base.coef``: a huge smoothing parameter keeps a term at the
    base's, scaled by ``slope`` (logistic recalibration's slope, so that revision starts from
    the recalibrated model), and a small one lets the site's data reshape it; LAML chooses
    each, as for a fit from scratch, and the intercept is free. The terms keep the base's
    inputs (knots, ranges, levels: ``base.features``), so the revised model reads the same
    fields the same way; its baseline and contributions are centred on ``clean``'s patients.
    Intervals are the revised fit's posterior covariance (corrected for the smoothing
    parameters' uncertainty): the site's data and the pull toward the base, not the base's own
    uncertainty.

    Parameters
    ----------
    base : AdditiveModel
        The model to revise.
    clean : pandas.DataFrame, shape (n, ...)
        The new site's records, as ``data_schemas.validate`` returns them.
    responded : numpy.ndarray, shape (n,)
        0/1 outcome.
    slope : float
        The prior mean is ``slope * base.coef``.
    structure : str, optional
        As for :func:`fit_additive_model`: None chooses between per-term and pooled smoothing
        by 5-fold cross-validated log-loss on cohorts of at most :data:`STRUCTURE_CHECK_ROWS`.

    Returns
    -------
    (AdditiveModel, FitReport)

    Raises
    ------
    ValueError
        If the fit is impossible (say, only one outcome).
    """
    y = _both_outcomes(responded)
    prior = slope * base.coef
    log_losses = None
    if structure is None and len(y) <= STRUCTURE_CHECK_ROWS:
        log_losses = _structure_log_loss(clean, y, base.fields, features=base.features, prior=prior)
        structure = min(log_losses, key=log_losses.__getitem__)
    return _fit_terms(
        base.features, clean, y, structure or PER_TERM, None, prior, base.threshold, log_losses
    )


def _both_outcomes(responded: np.ndarray) -> np.ndarray:
    """The 0/1 outcomes as floats; a ValueError if every row has the same one."""
    y = np.asarray(responded, dtype=np.float64)
    if y.size and (y.min() == y.max()):
        raise ValueError("every row has the same outcome: a model needs both")
    return y


def _fit_terms(
    features: FeatureMap,
    clean: pd.DataFrame,
    y: np.ndarray,
    structure: str,
    smoothing: float | Mapping[str, float] | None,
    prior: np.ndarray | None,
    threshold: float,
    log_losses: dict[str, float] | None,
) -> tuple[AdditiveModel, FitReport]:
    """The additive model on a feature map: the penalised fit, centred terms, a model."""
    design = features.design(clean)
    names, penalties = term_penalties(features, structure, design)
    lambdas = _given_smoothing(smoothing, names)
    fit = fit_penalised_logistic(
        design, y, penalties, prior_mean=prior, lambdas=lambdas, select=lambdas is None
    )
    coef = fit.coef.copy()
    term_means = np.array([design[:, s].mean(axis=0) @ coef[s] for s in features.slices])
    for j, (term, columns) in enumerate(zip(features.terms, features.slices, strict=True)):
        for level in term.unseen_levels:  # a zero column: the mean term, contribution 0
            coef[columns.start + term.levels.index(level)] = term_means[j]
    model = AdditiveModel(
        features=features,
        intercept=fit.intercept,
        coef=coef,
        covariance=fit.covariance_corrected,
        term_means=term_means,
        smoothing=dict(zip(names, fit.lambdas.tolist(), strict=True)),
        edf=dict(zip(names, fit.edf.tolist(), strict=True)),
        structure=structure,
        threshold=threshold,
        prior=prior,
    )
    report = FitReport(
        tuple(names),
        tuple(fit.lambdas.tolist()),
        tuple(fit.edf.tolist()),
        fit.laml,
        lambdas is None,
        fit.converged,
        fit.n_iter,
        structure,
        log_losses,
    )
    return model, report


STRUCTURE_CHECK_ROWS = 5_000
"""Cohorts of at most this many rows have their smoothing structure chosen by cross-validation
(:func:`fit_additive_model`); on larger ones per term is kept (the check would cost ten fits)."""
STRUCTURE_FOLDS = 5
STRUCTURE_SEED = 0
"""Seed of the structure check's folds: a fixed one, so that the same data give the same model."""


MAX_ROWS_PER_PATIENT = 20
"""A ``patient_id`` on more rows than this is not one patient's (a placeholder an export puts
for every patient: ``REDACTED``, ``0``): :func:`patient_groups` counts its rows alone."""


def _patient_ids(clean: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``patient_id`` as a code (-1: none: absent, blank, a missing-value word of the
    schema such as ``NA`` or ``unknown``, or a placeholder, see :data:`MAX_ROWS_PER_PATIENT`),
    and which rows carry a placeholder."""
    from data_schemas.parse import MISSING_TOKENS

    ids = clean["patient_id"] if "patient_id" in clean else pd.Series([None] * len(clean))
    text = ids.astype("str").str.strip()
    given = ids.notna().to_numpy() & ~text.str.casefold().isin(MISSING_TOKENS).to_numpy()
    codes = np.full(len(clean), -1, dtype=np.int64)
    codes[given] = pd.factorize(text[given])[0]
    counts = np.bincount(codes[given]) if given.any() else np.zeros(0, dtype=np.int64)
    placeholder = np.zeros(len(clean), dtype=bool)
    placeholder[given] = counts[codes[given]] > MAX_ROWS_PER_PATIENT
    codes[placeholder] = -1
    return codes, placeholder


def patient_groups(clean: pd.DataFrame) -> np.ndarray | None:
    """One label per row for grouped folds (cross-validation, the structure check) and the
    bootstrap's resamples: the rows that share a ``patient_id`` share one, a row without one
    (see :func:`_patient_ids`: a missing-value word or a placeholder is none) has its own;
    None when no ``patient_id`` repeats (the folds are then the ungrouped ones)."""
    codes, _ = _patient_ids(clean)
    given = codes >= 0
    if len(np.unique(codes[given])) == int(given.sum()):
        return None
    alone = np.flatnonzero(~given)
    codes[alone] = codes.max(initial=-1) + 1 + np.arange(len(alone))
    return codes


def placeholder_rows(clean: pd.DataFrame) -> np.ndarray:
    """Which rows carry a ``patient_id`` that more than :data:`MAX_ROWS_PER_PATIENT` rows share
    (counted as different patients by :func:`patient_groups`), shape (n,), bool."""
    return _patient_ids(clean)[1]


def stratified_folds(
    y: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, test rows) of ``folds`` stratified folds shuffled with ``seed``; with
    ``groups`` (:func:`patient_groups`), each group's rows in one fold (scikit-learn's
    ``StratifiedGroupKFold``)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    rows = np.zeros(len(y))
    if groups is None:
        return StratifiedKFold(folds, shuffle=True, random_state=seed).split(rows, y)
    return StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(rows, y, groups)


def _structure_log_loss(
    clean: pd.DataFrame,
    y: np.ndarray,
    fields: Sequence[str] | None,
    *,
    features: FeatureMap | None = None,
    prior: np.ndarray | None = None,
) -> dict[str, float]:
    """Each smoothing structure's cross-validated log-loss: every row predicted by a fit (the
    feature map, the smoothing parameters and the coefficients) without its fold. With
    ``features`` (a revision), that feature map is kept in every fold and the penalty pulls
    toward ``prior``."""
    from scipy.special import expit
    from sklearn.metrics import log_loss

    predicted = {name: np.empty(len(y)) for name in STRUCTURES}
    folds = stratified_folds(y, STRUCTURE_FOLDS, STRUCTURE_SEED, patient_groups(clean))
    for fit_index, test_index in folds:  # a patient's rows in one fold
        rows, test = clean.iloc[fit_index], clean.iloc[test_index]
        fold_features = features or FeatureMap.fit(rows, fields=fields)
        design, test_design = fold_features.design(rows), fold_features.design(test)
        for name in STRUCTURES:
            penalties = term_penalties(fold_features, name, design)[1]
            fit = fit_penalised_logistic(design, y[fit_index], penalties, prior_mean=prior)
            predicted[name][test_index] = expit(fit.intercept + test_design @ fit.coef)
    return {name: float(log_loss(y, p, labels=[0.0, 1.0])) for name, p in predicted.items()}


def _given_smoothing(
    smoothing: float | Mapping[str, float] | None, names: Sequence[str]
) -> np.ndarray | None:
    """The smoothing parameters a caller gave, one per block name (None: choose them)."""
    if smoothing is None:
        return None
    if isinstance(smoothing, Mapping):
        given = {k: float(v) for k, v in smoothing.items()}
        if not given or not all(0.0 < v < math.inf for v in given.values()):
            raise ValueError(f"smoothing = {smoothing!r} must map block names to numbers > 0")
        fill = math.exp(float(np.mean(np.log(list(given.values())))))
        return np.array([given.get(name, fill) for name in names])
    value = float(smoothing)
    if not 0.0 < value < math.inf:
        raise ValueError(f"smoothing = {smoothing!r} must be a number > 0")
    return np.full(len(names), value)
