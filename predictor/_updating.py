"""Updating a model to a new site: the five candidates, and a principled choice between them.

A clinic with a few hundred patients of its own gets a better model by *updating* an existing
one than by developing a new one (Steyerberg, *Clinical Prediction Models*, 2nd ed., ch. 20;
Vergouwe et al. 2017, Stat Med 36:4529). :func:`choose_update` fits, on the site's labelled
patients:

(a) the base model as it is (nothing fitted);
(b) recalibration in the large (1 number: the intercept moves);
(c) logistic recalibration (2 numbers: intercept and slope; every contribution scaled);
(d) revision: every term refitted, its penalty pulling toward the recalibrated base's
    coefficients (slope times the base's) instead of toward zero, the pull of each penalty
    block chosen by LAML, the fitter's criterion (:func:`~predictor.model.revise_additive_model`);
(e) a refit from scratch of the same fields (:func:`~predictor.model.fit_additive_model`).

The choice:

1. Vergouwe's closed test among (a)-(c), by likelihood-ratio tests on the site's patients at
   level ``alpha``: (c) against (a) on 2 degrees of freedom; if not significant, the base as
   it is; else (c) against (b) on 1: (c) if significant, else (b). The tests compare
   maximum-likelihood fits; the recalibration chosen is then shrunk toward the base by van
   Houwelingen and le Cessie's ``(LR - df) / LR`` (:func:`~predictor.model.recalibrate`), so
   that one the data barely support moves the base little (not at all when ``LR <= df``).
   ``alpha`` is 0.5: the test picks the form of the update and the shrinkage its size, as
   Steyerberg et al. (Stat Med 2000; 19:1059) found best for prediction models from small
   data sets, where selection at 0.05 or 0.157 without shrinkage did worse. On second-site
   cohorts (seeds 101 to 140, 40 per size), the mean Brier score and calibration slope of the
   closed test's choice, unshrunk at 0.157 / shrunk at 0.157 / shrunk at 0.5: at 150
   patients 0.2338 and 0.93 / 0.2333 and 0.86 / 0.2331 and 0.87 (the base: 0.2333 and 0.80);
   at 300, 0.2334 and 0.89 / 0.2331 and 0.86 / 0.2329 and 0.87; at 600, 0.2326 and 0.99 /
   0.2325 and 0.94 / 0.2323 and 0.95. On cohorts like the training population, where the
   base is right (0.2268), shrinkage also cost less than the unshrunk test at 0.157 (at 300:
   0.2271 and 0.2272 against 0.2274), and the level mattered little once shrunk (0.2270 to
   0.2274 at 150 patients, 0.2269 to 0.2272 at 300). ``python bench/closed_test_level.py
   [--site house]`` prints these.
2. (d) and (e) are compared with the closed test's choice by 5-fold cross-validated log-loss
   (stratified, on the same folds for every candidate, each candidate's whole fit repeated in
   each fold, with the smoothing structure chosen on all the rows), and the lowest wins, but
   only among the candidates the site's size supports: a revision or refit takes part only
   when the site has at least :data:`EVENTS_PER_PARAMETER` (20) patients of its rarer outcome
   for each of the candidate's effective parameters, the upper end of Harrell's m/10 to m/20
   (*Regression Modeling Strategies*, 2nd ed., section 4.4), and a revision only when it
   changes a term (at least 1 effective parameter beyond the recalibration's 2: one that
   changes none is the logistic recalibration, unshrunk, which the closed test has judged;
   on a cohort of 600 like the training population, such a "revision" won by 0.0004 in
   cross-validated log-loss and did worse than the base), and a refit only when it uses a
   predictor (at least 1 effective parameter beyond its intercept: on two second-site cohorts
   of 150, a refit shrunk to its intercept alone, the same probability for every patient,
   won in cross-validated log-loss over a logistic recalibration with p < 0.001, and was 0.017
   and 0.021 worse in Brier score on new patients). Below that size, cross-validation
   cannot tell a flexible fit from its noise: on second-site cohorts of 150 patients it
   preferred revisions of 11 and 14 effective parameters (4 to 6 events each) by 1.5 to 1.9
   standard errors of the paired differences, and each was 0.008 worse in Brier score on
   20,000 new patients of the site; on a cohort of 300 like the training population, one of
   10 parameters (15 events each) by 1.9, 0.007 worse. (Such standard errors are too small:
   the folds share their patients, Bengio & Grandvalet 2004.) Where the size supports them,
   no margin is asked: a margin of 1.0 standard error, used before, kept the recalibration
   at 600 second-site patients where the revision was better in 10 of 12 cohorts (mean Brier
   0.2327 against 0.2306). (Tried and dropped: 10 folds instead of 5; choosing the smoothing
   structure again in each fold, which left those standard errors as they were.)

Every candidate's statistics are kept (:class:`UpdateChoice`), for the log, the manifest and
the model card; the chosen candidate's out-of-fold scores are its internal validation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from predictor._training import (
    TrainingDataError,
    check_destination,
    check_outcomes,
    manifest_header,
    repeated_patients,
    sample_size_check,
    training_data_record,
    write_model_folder,
)
from predictor.model import (
    CV_FOLDS,
    AdditiveModel,
    Model,
    ModelFiles,
    RecalibratedModel,
    Scores,
    fit_additive_model,
    log_likelihood,
    patient_groups,
    recalibrate,
    revise_additive_model,
    stratified_folds,
)

BASE = "base model as it is"
IN_THE_LARGE = "recalibration in the large"
LOGISTIC = "logistic recalibration"
REVISION = "revision"
REFIT = "refit from scratch"
CANDIDATES = (BASE, IN_THE_LARGE, LOGISTIC, REVISION, REFIT)
"""The candidates, (a) to (e), in the order of the module docstring."""
ALPHA = 0.5
"""Level of the closed test's likelihood-ratio tests, whose choice is then shrunk (module
docstring)."""
EVENTS_PER_PARAMETER = 20
"""Patients of the site's rarer outcome per effective parameter that a revision or refit needs
to take part in the cross-validated comparison (module docstring)."""
UPDATE_SEED = 0
"""Seed of the cross-validation folds (a fixed one: the same data give the same choice)."""


@dataclass(frozen=True)
class CandidateFit:
    """One candidate fitted on every site patient, with its statistics.

    Attributes
    ----------
    name : str
        One of :data:`CANDIDATES`.
    parameters : float
        Numbers fitted on the site: 0, 1, 2, or the effective degrees of freedom of a revision
        or refit (the intercept included).
    log_likelihood : float
        On the site's patients, as fitted (apparent).
    cv_log_loss : float
        Mean log-loss of the out-of-fold predictions (per patient).
    cv_brier : float
        Brier score of the out-of-fold predictions.
    failed : str or None
        Why the candidate could not be fitted (its statistics are then NaN), or None.
    """

    name: str
    parameters: float
    log_likelihood: float
    cv_log_loss: float
    cv_brier: float
    failed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.failed is not None:
            return {"name": self.name, "failed": self.failed}
        return {
            "name": self.name,
            "parameters": round(self.parameters, 2),
            "log_likelihood": self.log_likelihood,
            "cv_log_loss": self.cv_log_loss,
            "cv_brier": self.cv_brier,
        }


@dataclass(frozen=True)
class LikelihoodRatioTest:
    """One step of the closed test: ``larger`` against ``smaller``."""

    larger: str
    smaller: str
    statistic: float
    df: int
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def to_dict(self) -> dict[str, Any]:
        return {
            "larger": self.larger,
            "smaller": self.smaller,
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
        }

    def describe(self) -> str:
        verdict = "significant" if self.significant else "not significant"
        return (
            f"{self.larger} against {self.smaller}: LR {self.statistic:.2f} on {self.df} df, "
            f"p = {self.p_value:.3g} ({verdict} at {ALPHA})"
        )


@dataclass(frozen=True, eq=False)
class UpdateChoice:
    """What :func:`choose_update` found.

    Attributes
    ----------
    model : Model
        The chosen candidate, fitted on every site patient.
    chosen : str
        Its name (one of :data:`CANDIDATES`).
    why : str
        One sentence: the closed test's verdict and the cross-validated comparison.
    candidates : tuple of CandidateFit
        Every candidate's statistics, in the order of :data:`CANDIDATES`.
    tests : tuple of LikelihoodRatioTest
        The closed test's steps, in order.
    closed_test_choice : str
        What the closed test chose among (a)-(c).
    scores : Scores
        The chosen candidate's out-of-fold scores (each patient scored by a fit without
        their fold; the base's own scores when the base is chosen).
    probability : mapping of str to numpy.ndarray
        Every candidate's out-of-fold probabilities.
    structure : mapping of str to str
        The smoothing structure of the revision and the refit.
    """

    model: Model
    chosen: str
    why: str
    candidates: tuple[CandidateFit, ...]
    tests: tuple[LikelihoodRatioTest, ...]
    closed_test_choice: str
    scores: Scores
    probability: Mapping[str, np.ndarray] = field(repr=False)
    structure: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """For the manifest: plain JSON values."""
        return {
            "chosen": self.chosen,
            "why": self.why,
            "procedure": (
                f"Vergouwe's closed test (likelihood-ratio tests at {ALPHA}) among the base, "
                "recalibration in the large and logistic recalibration, the recalibration "
                "chosen shrunk toward the base by (LR - df) / LR; then the lowest "
                f"{CV_FOLDS}-fold cross-validated log-loss among its choice and the revision "
                "and refit that the site's size supports (at least "
                f"{EVENTS_PER_PARAMETER} patients of the rarer outcome per effective parameter)"
            ),
            "closed_test": [test.to_dict() for test in self.tests],
            "closed_test_choice": self.closed_test_choice,
            "candidates": [candidate.to_dict() for candidate in self.candidates],
            "structure": dict(self.structure),
        }

    def lines(self) -> list[str]:
        """Every candidate's statistics and the choice, for the log."""
        width = max(len(name) for name in CANDIDATES)
        table = [
            f"  {'candidate':<{width}}  parameters  log-likelihood  CV log-loss  CV Brier",
            *(
                f"  {c.name:<{width}}  could not be fitted: {c.failed}"
                if c.failed is not None
                else f"  {c.name:<{width}}  {c.parameters:10.1f}  {c.log_likelihood:14.2f}  "
                f"{c.cv_log_loss:11.4f}  {c.cv_brier:8.4f}"
                + ("  <- chosen" if c.name == self.chosen else "")
                for c in self.candidates
            ),
        ]
        return [
            "closed test: " + "; ".join(test.describe() for test in self.tests),
            *table,
            f"chosen: {self.chosen}: {self.why}",
        ]


def _lr_test(larger: str, smaller: str, ll: Mapping[str, float], df: int) -> LikelihoodRatioTest:
    statistic = max(0.0, 2.0 * (ll[larger] - ll[smaller]))
    return LikelihoodRatioTest(larger, smaller, statistic, df, float(chi2.sf(statistic, df)))


def _closed_test(ll: Mapping[str, float]) -> tuple[str, tuple[LikelihoodRatioTest, ...]]:
    """Vergouwe's closed test among (a)-(c): the choice and the tests made. A candidate that
    could not be fitted is not in ``ll``: without (c), (b) against (a) on 1 degree of
    freedom; without both, the base."""
    if LOGISTIC not in ll:
        if IN_THE_LARGE not in ll:
            return BASE, ()
        only = _lr_test(IN_THE_LARGE, BASE, ll, 1)
        return (IN_THE_LARGE if only.significant else BASE), (only,)
    first = _lr_test(LOGISTIC, BASE, ll, 2)
    if not first.significant:
        return BASE, (first,)
    second = _lr_test(LOGISTIC, IN_THE_LARGE, ll, 1)
    return (LOGISTIC if second.significant else IN_THE_LARGE), (first, second)


def _fitters(
    base: AdditiveModel, structure: Mapping[str, str]
) -> dict[str, Callable[[pd.DataFrame, np.ndarray], Model]]:
    """Each fitted candidate as a function of (rows, outcomes); the revision and the refit
    with the smoothing structure chosen on all the rows."""

    def revision(rows: pd.DataFrame, y: np.ndarray) -> Model:
        slope = _revision_slope(base, rows, y)
        return revise_additive_model(base, rows, y, slope=slope, structure=structure[REVISION])[0]

    return {
        BASE: lambda rows, y: base,
        IN_THE_LARGE: lambda rows, y: recalibrate(
            base, rows, y, method="in the large", shrink=True
        ),
        LOGISTIC: lambda rows, y: recalibrate(base, rows, y, method="logistic", shrink=True),
        REVISION: revision,
        REFIT: lambda rows, y: fit_additive_model(
            rows, y, structure=structure[REFIT], threshold=base.threshold, fields=base.fields
        )[0],
    }


def _revision_slope(base: AdditiveModel, rows: pd.DataFrame, y: np.ndarray) -> float:
    """The slope revision starts from: logistic recalibration's, or 1 when it cannot be
    fitted, or 0 (the prior mean at zero: a refit on the base's inputs) when it is not
    positive."""
    try:
        return max(0.0, recalibrate(base, rows, y).slope)
    except ValueError:
        return 1.0


FIT_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)
"""What a candidate's fit raises on data it cannot be fitted to (a singular system, NaN from
columns no patient has): the candidate is then left out, and said so."""


def _parameters(model: Model, name: str) -> float:
    if name in (REVISION, REFIT):  # the intercept, the effective degrees of freedom, and for
        assert isinstance(model, AdditiveModel)  # a revision the recalibration's slope
        return (2.0 if name == REVISION else 1.0) + sum(model.edf.values())
    return float(CANDIDATES.index(name))  # 0, 1, 2 for (a)-(c)


def choose_update(
    base: AdditiveModel,
    clean: pd.DataFrame,
    *,
    progress: Callable[[str], None] | None = None,
) -> UpdateChoice:
    """Fit the five candidates on a site's labelled patients and choose one (module
    docstring).

    Parameters
    ----------
    base : AdditiveModel
        The model to update (the shipped one by default on the command line).
    clean : pandas.DataFrame, shape (n, ...)
        The site's records as ``data_schemas.validate`` returns them, with ``responded``.
    progress : callable, optional
        Receives a line after each stage.

    Returns
    -------
    UpdateChoice

    Raises
    ------
    ValueError
        If a candidate cannot be fitted (say, one outcome only).
    """
    from sklearn.metrics import brier_score_loss, log_loss

    from predictor.evaluation import pooled_scores

    say = progress or (lambda line: None)
    started = time.perf_counter()
    y = clean["responded"].to_numpy(dtype=np.float64)
    n = len(y)

    def stage(text: str) -> None:
        say(f"[{time.perf_counter() - started:6.1f} s] {text}")

    # On every patient: the candidates themselves, and the structures the folds keep.
    failed: dict[str, str] = {}
    models: dict[str, Model] = {BASE: base}

    def attempt(name: str, fit: Callable[[], Model]) -> None:
        try:
            with np.errstate(all="ignore"):
                models[name] = fit()
        except FIT_ERRORS as exc:
            failed[name] = str(exc) or type(exc).__name__

    attempt(IN_THE_LARGE, lambda: recalibrate(base, clean, y, method="in the large"))
    attempt(LOGISTIC, lambda: recalibrate(base, clean, y))
    # The closed test compares the maximum-likelihood fits; the candidates are them shrunk.
    ll = {
        name: log_likelihood(model.score(model.features.design(clean)).logit, y)
        for name, model in models.items()
    }
    recalibrated = models.get(LOGISTIC)
    if isinstance(recalibrated, RecalibratedModel) and recalibrated.slope <= 0.0:
        upper = recalibrated.slope + 1.96 * float(np.sqrt(recalibrated.covariance[1, 1]))
        if upper < 0.0:
            raise TrainingDataError(
                "the base model's log-odds predict the outcome the wrong way round on these "
                f"patients (logistic recalibration slope {recalibrated.slope:.2f}, 95% upper "
                f"bound {upper:.2f}): check that `responded` is 1 for a responder (at least "
                "50% MADRS reduction) and 0 for a non-responder; if it is, the base does not "
                "apply to this site: train a model of your own (train --data)"
            )
        del models[LOGISTIC], ll[LOGISTIC]
        failed[LOGISTIC] = (
            f"its slope {recalibrated.slope:.2f} is not positive: the base's log-odds do not "
            "rank these patients the right way round"
        )
    for name in (IN_THE_LARGE, LOGISTIC):
        if isinstance(fitted := models.get(name), RecalibratedModel):
            models[name] = fitted.shrunk(2.0 * (ll[name] - ll[BASE]))
    reports: dict[str, Any] = {}

    def revise() -> Model:
        model, reports[REVISION] = revise_additive_model(
            base, clean, y, slope=_revision_slope(base, clean, y)
        )
        return model

    def refit() -> Model:
        model, reports[REFIT] = fit_additive_model(
            clean, y, threshold=base.threshold, fields=base.fields
        )
        return model

    attempt(REVISION, revise)
    if REVISION in reports:
        stage(
            f"revision fitted ({reports[REVISION].structure} smoothing, "
            f"{sum(reports[REVISION].edf):.1f} effective parameters of change)"
        )
    attempt(REFIT, refit)
    if REFIT in reports:
        stage(
            f"refit fitted ({reports[REFIT].structure} smoothing, "
            f"{sum(reports[REFIT].edf):.1f} edf)"
        )
    structure = {name: report.structure for name, report in reports.items() if name in models}
    fitters = {
        name: fit
        for name, fit in _fitters(
            base, {**dict.fromkeys((REVISION, REFIT), ""), **structure}
        ).items()
        if name in models
    }
    for name in (REVISION, REFIT):
        if name in models:
            ll[name] = log_likelihood(
                models[name].score(models[name].features.design(clean)).logit, y
            )

    # Cross-validation: each candidate's whole fit repeated without each fold (a patient's
    # rows in one fold).
    folds = stratified_folds(y, CV_FOLDS, UPDATE_SEED, patient_groups(clean))
    parts: dict[str, list[tuple[np.ndarray, Scores]]] = {name: [] for name in fitters}
    for k, (fit_index, test_index) in enumerate(folds, 1):
        rows, test = clean.iloc[fit_index], clean.iloc[test_index]
        for name, fit in list(fitters.items()):
            try:
                with np.errstate(all="ignore"):
                    model = fit(rows, y[fit_index])
                    parts[name].append((test_index, model.score(model.features.design(test))))
            except FIT_ERRORS as exc:
                failed[name] = f"in cross-validation fold {k}: {exc or type(exc).__name__}"
                del fitters[name], parts[name], models[name], ll[name]
        stage(f"cross-validation: fold {k} of {CV_FOLDS} done ({len(fitters)} candidates)")
    closed_choice, tests = _closed_test(ll)
    scores = {name: pooled_scores(pieces) for name, pieces in parts.items()}
    probability = {name: s.probability for name, s in scores.items()}
    cv_loss = {name: float(log_loss(y, p, labels=[0.0, 1.0])) for name, p in probability.items()}
    nan = float("nan")
    candidates = tuple(
        CandidateFit(
            name,
            _parameters(models[name], name),
            ll[name],
            cv_loss[name],
            float(brier_score_loss(y, probability[name])),
        )
        if name in models
        else CandidateFit(name, nan, nan, nan, nan, failed[name])
        for name in CANDIDATES
    )
    rarer = float(min(y.sum(), n - y.sum()))
    excluded = {
        name: _unsupported(name, models[name], rarer)
        for name in (REVISION, REFIT)
        if name in models
    }
    chosen = min(
        [closed_choice, *(name for name, why in excluded.items() if why is None)],
        key=cv_loss.__getitem__,
    )
    why = f"the closed test chose the {closed_choice}" + _shrunk_by(models[closed_choice])
    why += (
        f"; the {chosen} has the lower cross-validated log-loss ({cv_loss[chosen]:.4f} against "
        f"{cv_loss[closed_choice]:.4f})"
        if chosen != closed_choice
        else f", whose cross-validated log-loss ({cv_loss[closed_choice]:.4f}) no revision or "
        "refit the site's size supports beats"
    )
    others = [
        f"{'a ' if name == REFIT else ''}{name}: {cv_loss[name]:.4f}"
        + ("" if reason is None else f", left out: {reason}")
        for name, reason in excluded.items()
        if name != chosen
    ]
    why += f" ({'; '.join(others)})" if others else ""
    chosen_scores = base.score(base.features.design(clean)) if chosen == BASE else scores[chosen]
    return UpdateChoice(
        models[chosen],
        chosen,
        why,
        candidates,
        tests,
        closed_choice,
        chosen_scores,
        probability,
        structure,
    )


def _unsupported(name: str, model: Model, rarer: float) -> str | None:
    """Why a fitted revision or refit cannot replace the closed test's choice, or None: the
    site has fewer than :data:`EVENTS_PER_PARAMETER` patients of its rarer outcome per
    effective parameter, a revision changes no term (under 1 effective parameter beyond the
    recalibration's 2: it is the logistic recalibration, which the closed test has judged),
    or a refit uses no predictor (under 1 beyond its intercept: a flat model)."""
    parameters = _parameters(model, name)
    if name == REVISION and parameters < 3.0:
        return (
            f"it changes no term ({parameters - 2.0:.1f} effective parameters beyond the "
            "recalibration's two)"
        )
    if name == REFIT and parameters < 2.0:
        return (
            f"it uses no predictor ({parameters - 1.0:.1f} effective parameters beyond the "
            "intercept): it gives every patient the same probability"
        )
    if rarer / parameters < EVENTS_PER_PARAMETER:
        return (
            f"{parameters:.1f} effective parameters with {rarer / parameters:.0f} patients of "
            f"the rarer outcome each ({EVENTS_PER_PARAMETER} needed)"
        )
    return None


def _shrunk_by(model: Model) -> str:
    if isinstance(model, RecalibratedModel) and model.shrinkage != 1.0:
        return f" (shrunk toward the base by {model.shrinkage:.2f})"
    return ""


@dataclass(frozen=True)
class UpdateResult:
    """What :func:`update` produced."""

    choice: UpdateChoice
    manifest: dict[str, Any]
    files: ModelFiles


def update(
    clean: pd.DataFrame,
    *,
    base: Model,
    base_source: str,
    base_manifest: Mapping[str, Any] | None = None,
    out: str | Path,
    source: str,
    n_refused: int = 0,
    progress: Callable[[str], None] = print,
) -> UpdateResult:
    """Update ``base`` to a site's labelled patients and write the model folder.

    Chooses among the five candidates (:func:`choose_update`) and writes, as training does
    (one set of files, or none: :func:`predictor._training.write_model_folder`), the chosen
    model's ``model.json``, a manifest recording every candidate's statistics, the choice and
    why, the evaluation report on the chosen candidate's out-of-fold predictions (internal
    validation; the base's own predictions when the base is kept, which is then an external
    validation), and the model card. ``predict(..., model=out)`` and ``score --model out`` use
    the result.

    Parameters
    ----------
    clean : pandas.DataFrame
        The site's records with ``responded``, as :func:`predictor._training.training_rows`
        returns them.
    base : Model
        The model to update: an additive model (the shipped one by default on the command
        line).
    base_source : str
        Where the base came from, for the manifest and card.
    base_manifest : mapping, optional
        The base's manifest (``read_manifest``): its ``model.json``'s sha256 and what it was
        trained on are recorded with the update.
    out : path
        The folder to write (:func:`predictor._training.check_destination` says which).
    source : str
        Where the site's data came from.
    n_refused : int
        Rows of the site's file left out for schema problems.
    progress : callable
        Receives one line per stage.

    Raises
    ------
    TrainingDataError
        If the base is not an additive model, the cohort has too few of an outcome, or a
        candidate cannot be fitted.
    OSError
        If ``out`` is refused or the files cannot be written.
    """
    from predictor.evaluation import build_report, training_distribution

    if not isinstance(base, AdditiveModel):
        raise TrainingDataError(
            f"the base model is a {base.kind} model; update takes an additive model (a model "
            "that `train` wrote, or the shipped one)"
        )
    check_destination(out)
    check_outcomes(clean["responded"], purpose="update a model", n_refused=n_refused)
    started = time.perf_counter()
    _, repeated = repeated_patients(clean, progress, bootstrap=False)
    try:
        choice = choose_update(base, clean, progress=progress)
    except TrainingDataError:
        raise  # says what is wrong with the data itself
    except ValueError as exc:
        raise TrainingDataError(f"the candidates cannot be fitted on this data: {exc}") from exc
    for line in choice.lines():
        progress(line)
    y = clean["responded"].to_numpy()
    model = choice.model
    internal = (
        "the base model is kept as it is: nothing was fitted on these patients, so its "
        "report on them is an external validation of the base"
        if choice.chosen == BASE
        else f"internal, by {CV_FOLDS}-fold cross-validation (stratified"
        + (", each patient's rows in one fold" if repeated else "")
        + f", seed {UPDATE_SEED}): "
        f"each patient predicted by a {choice.chosen} fitted without them (the choice between "
        "the candidates was made once, on all of them); no external validation"
    )
    manifest = {
        **manifest_header(),
        "training_data": training_data_record(
            clean,
            source=source,
            seed=UPDATE_SEED,
            n_refused=n_refused,
            simulated=False,
            model=model,
        )
        | ({"repeated_patient_rows": repeated} if repeated else {}),
        "update": {
            "base": base_source,
            "base_sha256": (base_manifest or {}).get("artifact_sha256"),
            "base_training_data": ((base_manifest or {}).get("training_data") or {}).get("source"),
            **choice.to_dict(),
        },
        "validation": {"internal": internal, "external": None},
        "evaluation_cohort": None,
        "model": {
            "kind": model.kind,
            "coefficients": model.summary().coefficients,
            "threshold": model.threshold,
            "fields": list(model.fields),
        },
        "metrics": {"cross-validated": _candidate_metrics(choice, y)},
        "training_distribution": training_distribution(model, clean),
    }
    if choice.chosen == REFIT:  # a model developed here: is the cohort large enough for it?
        manifest["sample_size"] = sample_size_check(clean, model.fields)
    report_source = (
        f"the {len(clean):,} patients of {source}, scored by the base model as it is (nothing "
        "was fitted on them: external validation)"
        if choice.chosen == BASE
        else f"the {len(clean):,} patients of {source}, each predicted by a {choice.chosen} "
        f"fitted without them ({CV_FOLDS}-fold cross-validation: internal validation)"
    )
    files, manifest = write_model_folder(
        model,
        manifest,
        out,
        lambda written: build_report(
            model,
            clean,
            manifest=written,
            source=report_source,
            scores=choice.scores,
        ),
        progress=lambda text: progress(f"[{time.perf_counter() - started:6.1f} s] {text}"),
    )
    return UpdateResult(choice, manifest, files)


def _candidate_metrics(choice: UpdateChoice, y: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Each candidate's metrics on its out-of-fold predictions."""
    from predictor.evaluation import metrics

    return {name: metrics(y, p, interval=None).to_dict() for name, p in choice.probability.items()}
