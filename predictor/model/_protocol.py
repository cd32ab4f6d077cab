"""What the rest of the package needs from a model: the :class:`Model` protocol.

Scoring, explanations, batch files, training and reports use a model through these members
only, so that another kind of model (a recalibrated one, which scales each term by a slope
and moves the baseline) is added in this layer alone: a class with these members and an entry
in the model files' registry (:data:`predictor.model._artifact.MODEL_KINDS`).

Every model here is *additive on the log-odds scale*: ``logit = baseline + sum of the
contributions``, one contribution per input field, which is what makes explanations exact.
The input layer (:class:`~predictor.model._features.FeatureMap`: fields -> design rows, their
training ranges, levels and missing-value handling) is shared by every kind; what a kind adds
is how a design row becomes a score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, Protocol, Self, runtime_checkable

import numpy as np

from predictor.model._features import FeatureMap, SparseDesign


class Scores(NamedTuple):
    """The model's output for ``n`` patients (arrays of shape (n,) unless noted)."""

    logit: np.ndarray
    probability: np.ndarray
    low: np.ndarray
    high: np.ndarray
    contributions: np.ndarray
    """shape (n, number of terms): centred terms, log-odds"""


@dataclass(frozen=True)
class ModelSummary:
    """How a model was fitted, in the words and numbers the model card and training log use.

    Attributes
    ----------
    name : str
        The model's name in tables of metrics, beside the comparison models ("additive
        model").
    description : str
        One line: what kind of model it is ("penalised additive logistic model (GAM)").
    coefficients : int
        Number of fitted coefficients (design columns; the intercept not counted).
    settings : mapping of str to float
        The fit's settings a reader needs to reproduce it (``{"penalty_c": 0.03}``).
    details : str
        Markdown for the model card's "Model" section: how the model is built and fitted, and
        where its intervals come from.
    """

    name: str
    description: str
    coefficients: int
    settings: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    details: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))


@runtime_checkable
class Model(Protocol):
    """A fitted model, as scoring, explanations, model files and reports use it.

    Attributes
    ----------
    kind : str
        The model's kind in a model file (``"additive"``); a class attribute.
    features : FeatureMap
        The input layer: one term per input field (``features.terms``), and
        ``features.encode(clean)`` -> design matrix (or, with ``sparse=True``, its nonzero
        basis columns), missing and out-of-range flags.
    threshold : float
        Probability at or above which :meth:`labels` says "likely responder".
    fields : tuple of str
        The input fields, one term (and one contribution) each, in order.
    baseline : float
        Log-odds of the average training patient: ``baseline + sum(contributions)`` is the
        logit of the probability.
    """

    kind: ClassVar[str]

    @property
    def features(self) -> FeatureMap: ...

    @property
    def threshold(self) -> float: ...

    @property
    def fields(self) -> tuple[str, ...]: ...

    @property
    def baseline(self) -> float: ...

    def score(self, design: np.ndarray | SparseDesign) -> Scores:
        """Probabilities, intervals and contributions for rows of the design matrix,
        shape (n, len(features.columns)), or the same rows as a :class:`SparseDesign`
        (``features.encode(clean, sparse=True)``, what scoring passes)."""
        ...

    def labels(self, probability: np.ndarray) -> np.ndarray:
        """The label of each probability (shape (n,), object)."""
        ...

    def term_contribution(self, j: int, block: np.ndarray) -> np.ndarray:
        """Contribution (log-odds, centred) of term ``j`` for rows of its own design block,
        shape (n, len(features.terms[j].columns)) -> (n,); what :meth:`score` gives as
        ``contributions[:, j]`` for the same rows. Reports draw each term's shape with it."""
        ...

    def summary(self) -> ModelSummary:
        """How the model was fitted (for the model card and the training log)."""
        ...

    def refit(self, clean: Any, responded: np.ndarray, *, seed: int) -> Model:
        """The same kind of model, with the same fields and settings, fitted on other rows
        (cross-validation refits the model in each fold with it)."""
        ...

    def to_document(self) -> dict[str, Any]:
        """The model as plain JSON values: ``kind``, ``fields`` (each input field's
        definition, as the schema gave it), ``terms`` and the model's own numbers."""
        ...

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, source: str = ...) -> Self:
        """Rebuild a model from :meth:`to_document`'s output, checking every number the
        scorer relies on, so that a model that loads scores finite probabilities.

        Raises
        ------
        ModelFileError
            Saying what is wrong, and naming ``source``.
        """
        ...
