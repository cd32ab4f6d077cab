"""The comparison models (plain logistic regression, gradient boosting) and the additive model,
evaluated on the same data or cross-validated on the same folds: what the additive model gives
up for being additive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from data_schemas import FIELDS_BY_NAME, Kind
from predictor._processes import can_fork, forked_pool, signals_held, with_inherited
from predictor.evaluation._metrics import Metrics, metrics
from predictor.model import CV_FOLDS, Model, Scores, stratified_folds


def _categories(fields: tuple[str, ...]) -> tuple[str, ...]:
    """The category fields among ``fields`` (the others are numbers: numbers, integers and
    0/1 booleans)."""
    return tuple(f for f in fields if FIELDS_BY_NAME[f].kind is Kind.CATEGORY)


def logistic_regression(seed: int, fields: tuple[str, ...]) -> Pipeline:
    """Plain logistic regression on the raw values of ``fields``: median imputation with
    missing indicators, standardised numbers, one-hot categories (a missing category is its
    own level)."""
    categorical = _categories(fields)
    numbers = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    categories = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    prepare = ColumnTransformer(
        [
            ("numbers", numbers, [f for f in fields if f not in categorical]),
            ("categories", categories, list(categorical)),
        ]
    )
    return make_pipeline(prepare, LogisticRegression(max_iter=1000, random_state=seed))


def gradient_boosting(seed: int, fields: tuple[str, ...]) -> HistGradientBoostingClassifier:
    """Histogram gradient boosting with native missing values and categories, early stopping."""
    return HistGradientBoostingClassifier(
        categorical_features="from_dtype", early_stopping=True, random_state=seed
    )


def _categories_as_objects(clean: pd.DataFrame, fields: tuple[str, ...]) -> pd.DataFrame:
    return clean[list(fields)].astype({name: object for name in _categories(fields)})


def _fields_only(clean: pd.DataFrame, fields: tuple[str, ...]) -> pd.DataFrame:
    return clean[list(fields)]


@dataclass(frozen=True)
class Comparison:
    """A standard model fitted on the same data, to show what the additive model gives up."""

    name: str
    build: Callable[[int, tuple[str, ...]], Any]
    prepare: Callable[[pd.DataFrame, tuple[str, ...]], pd.DataFrame]

    def fit(
        self, clean: pd.DataFrame, responded: np.ndarray, *, seed: int, fields: tuple[str, ...]
    ) -> Any:
        """The estimator fitted on ``fields`` (those of the model it is compared with).

        A field no training patient has carries no information; it is given one value (0 for
        a number, "not recorded" for a category given as text) so that gradient boosting's
        binning and the imputers accept it (scikit-learn's imputer drops such a column, with a
        warning per fit, and a file with no predictor at all left no column to fit on), and
        so is ignored.
        """
        inputs = self.prepare(clean, fields)
        empty = [c for c in inputs if inputs[c].isna().all()]
        numbers = [c for c in empty if inputs[c].dtype.kind == "f"]
        texts = [c for c in empty if inputs[c].dtype == object]
        estimator = self.build(seed, fields)
        filled = inputs.assign(
            # pandas-stubs: column labels are Hashable; these are field names (str)
            **dict.fromkeys(numbers, 0.0),  # type: ignore[arg-type]
            **dict.fromkeys(texts, "not recorded"),  # type: ignore[arg-type]
        )
        return estimator.fit(filled, responded)

    def probability(self, estimator: Any, clean: pd.DataFrame) -> np.ndarray:
        """A fitted estimator's probabilities of response for clean records."""
        fields = tuple(estimator.feature_names_in_)
        return estimator.predict_proba(self.prepare(clean, fields))[:, 1]


COMPARISONS = (
    Comparison("logistic regression", logistic_regression, _categories_as_objects),
    Comparison("gradient boosting", gradient_boosting, _fields_only),
)


def evaluate_model(model: Model, clean: pd.DataFrame) -> Metrics:
    """:func:`~predictor.evaluation._metrics.metrics` of a model on clean records with
    ``responded`` (and, when present, ``true_probability``)."""
    scores = model.score(model.features.design(clean))
    truth = (
        clean["true_probability"].to_numpy() if clean["true_probability"].notna().all() else None
    )
    return metrics(
        clean["responded"].to_numpy(),
        scores.probability,
        true_probability=truth,
        interval=(scores.low, scores.high),
    )


@dataclass(frozen=True, eq=False)
class CrossValidation:
    """A model and the comparison models cross-validated on the same folds.

    Attributes
    ----------
    folds : dict of str to list of Metrics
        Model name -> one :class:`~predictor.evaluation._metrics.Metrics` per fold, measured
        on the fold's held-out part.
    probability : dict of str to numpy.ndarray
        Model name -> every row's out-of-fold probability (from the fit without its fold), in
        the rows' order.
    scores : Scores
        The model's out-of-fold scores (probability, interval, contributions), in the rows'
        order: what the evaluation report of internal validation is built on.
    """

    folds: dict[str, list[Metrics]]
    probability: dict[str, np.ndarray]
    scores: Scores


def _fold(
    clean: pd.DataFrame,
    y: np.ndarray,
    truth: np.ndarray | None,
    fit_index: np.ndarray,
    test_index: np.ndarray,
    model: Model,
    seed: int,
    comparisons: Sequence[Comparison],
) -> tuple[Scores, dict[str, tuple[np.ndarray, Metrics]]]:
    """One fold: the model refitted and the comparison models fitted without it, and each one's
    probabilities and metrics on it."""
    fit_rows, test_rows = clean.iloc[fit_index], clean.iloc[test_index]
    fit_y, test_y = y[fit_index], y[test_index]
    test_truth = truth[test_index] if truth is not None else None
    refitted = model.refit(fit_rows, fit_y, seed=seed)
    scores = refitted.score(refitted.features.design(test_rows))
    interval = (scores.low, scores.high)
    fitted = {
        model.summary().name: (
            scores.probability,
            metrics(test_y, scores.probability, true_probability=test_truth, interval=interval),
        )
    }
    # OpenMP's thread count is a setting of each thread: cross_validate's limit holds for the
    # thread that set it, not for this one, where gradient boosting would start an OpenMP
    # thread per core (two folds at once on 2 cores: 4 busy threads, CV 7.6 s of CPU against
    # 4.2 s when the folds ran one after the other).
    with threadpool_limits(1, user_api="openmp"):
        for comparison in comparisons:
            estimator = comparison.fit(fit_rows, fit_y, seed=seed, fields=model.fields)
            p = comparison.probability(estimator, test_rows)
            fitted[comparison.name] = (p, metrics(test_y, p, true_probability=test_truth))
    return scores, fitted


def cross_validate(
    clean: pd.DataFrame,
    *,
    model: Model,
    seed: int,
    folds: int = CV_FOLDS,
    progress: Callable[[int, int], None] | None = None,
    n_jobs: int = -1,
    comparisons: Sequence[Comparison] = COMPARISONS,
    groups: np.ndarray | None = None,
) -> CrossValidation:
    """A model and the comparison models, cross-validated on the same folds (stratified,
    shuffled with ``seed``; with ``groups``, the rows of one group in one fold).

    In each fold the model is refitted with its own settings (:meth:`Model.refit`: for the
    additive model, the smoothing parameters chosen on all the rows; choosing them again in
    every fold would cost ``folds`` times the selection, and leaves out only the optimism of
    choosing about 25 numbers on all the rows), and the comparison models are fitted on the
    model's fields as they are for the external evaluation. The fits run on one thread (BLAS
    and OpenMP): these small fits gain little from more, and on a busy machine threads that
    wait for each other made them many times slower.

    Parameters
    ----------
    clean : pandas.DataFrame
        Training records with ``responded`` (and, when simulated, ``true_probability``).
    seed : int
        Seed of the folds and of the comparison models.
    model : Model
        The fitted model, whose kind, fields and settings are refitted in each fold.
    folds : int
        Number of folds.
    progress : callable, optional
        Called with (folds done, folds) after each fold, in the folds' order.
    n_jobs : int
        Folds fitted at once (joblib's meaning: -1, the default, is one per core this process
        may use): on processes forked from this one where it can fork
        (:func:`predictor._processes.can_fork`), else on threads. The results do not depend on
        it.
    comparisons : sequence of Comparison
        The comparison models cross-validated with the model (default: both of
        :data:`COMPARISONS`; none, to cross-validate the model alone).
    groups : numpy.ndarray, shape (n,), optional
        A label per row (rows of one patient share one: :func:`patient_groups`); the folds
        then keep each group whole (scikit-learn's ``StratifiedGroupKFold``), so that no
        patient is predicted by a fit that saw another of their rows. None: every row its own.

    Returns
    -------
    CrossValidation
    """
    y = clean["responded"].to_numpy()
    truth_column = clean["true_probability"]
    truth = truth_column.to_numpy() if truth_column.notna().all() else None
    splits = list(stratified_folds(y, folds, seed, groups))
    name = model.summary().name
    results: dict[str, list[Metrics]] = {name: []}
    results.update({comparison.name: [] for comparison in comparisons})
    probability = {key: np.full(len(y), np.nan) for key in results}
    parts: list[Scores] = []
    workers = min(effective_n_jobs(n_jobs), folds)
    with threadpool_limits(1), contextlib.ExitStack() as stack:
        outcomes: Iterator[tuple[Scores, dict[str, tuple[np.ndarray, Metrics]]]]
        if workers > 1 and can_fork():
            # Processes forked from this one: on threads, the folds' fits held each other up
            # (the GIL between their numpy and BLAS calls), and 5 folds on 2 cores took 2.3 s,
            # about as long as one after the other (2.5 s).
            pool = stack.enter_context(forked_pool(workers, inherited=(clean, y, truth)))
            with signals_held():  # the first submit forks the processes
                futures = [
                    pool.submit(with_inherited, _fold, *split, model, seed, comparisons)
                    for split in splits
                ]
            outcomes = (future.result() for future in futures)
        else:  # threads: a process that cannot fork would start each afresh (imports: 1 s)
            jobs = (
                delayed(_fold)(clean, y, truth, fit_index, test_index, model, seed, comparisons)
                for fit_index, test_index in splits
            )
            outcomes = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(jobs)
        for done, (scores, fitted) in enumerate(outcomes, 1):
            test_index = splits[done - 1][1]
            parts.append(scores)
            for key, (p, measured) in fitted.items():
                probability[key][test_index] = p
                results[key].append(measured)
            if progress is not None:
                progress(done, folds)
    pooled = pooled_scores(
        [(test, scores) for (_, test), scores in zip(splits, parts, strict=True)]
    )
    return CrossValidation(results, probability, pooled)


def pooled_scores(pieces: Sequence[tuple[np.ndarray, Scores]]) -> Scores:
    """Out-of-fold scores put back in the rows' order: ``pieces`` holds each fold's test rows
    (indices) and their scores; the folds cover every row once.

    Raises
    ------
    ValueError
        If the folds do not cover the rows ``0 .. n-1`` once each.
    """
    index = np.concatenate([rows for rows, _ in pieces])
    if not np.array_equal(np.sort(index), np.arange(len(index))):
        raise ValueError("the folds do not cover every row once")
    order = np.argsort(index, kind="stable")
    return Scores(
        *(np.concatenate([getattr(s, f) for _, s in pieces])[order] for f in Scores._fields)
    )
