"""Synthetic cohort of ketamine-treated patients, simulated from published effect sizes.

No public patient-level data links these biomarkers to ketamine response, so the shipped model is
trained on a simulated cohort. The project's literature review is the specification: the
published sources, and a table of targets (response rates, contrasts, marginals, missingness,
oracle AUC) that the tests hold this simulator to, kept here as
:mod:`predictor.simulation._targets`.
The evidence for several predictors is thin; the simulator encodes the direction the sources
report, at a modest size.

What follows is the house site (:data:`HOUSE_SITE`, the default), the one the shipped model is
trained on: a :class:`Site` is its case mix (:class:`CaseMix`), missingness
(:class:`Missingness`) and response model (:class:`ResponseModel`), and
:mod:`predictor.simulation._sites` documents the others.

Data-generating process
-----------------------
Patients (one row each; every value rounded as a clinic would record it, and inside the schema's
hard ranges):

* ``age_years``: normal(44, 13) truncated to 18-80, whole years.
* ``sex``: female with probability 0.60.
* ``bmi_kg_m2``: log-normal, median 28.4, log-SD 0.20, truncated to 16-60 (mean about 29, SD 6).
* ``baseline_madrs``: normal(32, 6) truncated to 20-54 (a TRD trial's entry threshold is ~20).
* ``failed_antidepressant_trials``: 2 + negative binomial (mean 1.4, size 2), at most 10
  (median 3).
* ``route``: IV ketamine or intranasal esketamine with probability 1/2 each.
* ``family_history_alcohol_use_disorder``: yes for 35% of patients; unknown (missing) for a
  random 15%, so about 30% of all records say yes.
* ``substance_use_disorder``: any SUD for 50% of patients with a family history of alcohol use
  disorder and 19.2% of those without (odds ratio about 4; 30% overall); of those, 2/3 past and
  1/3 current (none 70%, past 20%, current 10%).
* ``crp_mg_l``: log-normal; log CRP = log(1.4) + 0.075 (BMI - 29) + normal(0, 1.22), so CRP
  rises with BMI (r about 0.34 with log CRP) and has median about 1.4 mg/L and log-SD about 1.3
  (Osimo et al. 2019); 0.05-300, two decimals.
* ``bdnf_ng_ml`` (serum): normal(22, 7) truncated to 3-60, one decimal.
* ``delta_sleep_ratio``: log DSR = log(1.17) - 0.005 (age - 44) + 0.26 z, z standard normal
  (mean about 1.2; healthy sleepers would be 1.5-2.5), two decimals.
* ``slow_wave_sleep_pct``: N3 % follows DSR and age and has no effect of its own:
  log(N3 / 9) = 0.08 z - 0.018 (age - 44) + normal(0, 0.45); 0.5-45, one decimal (mean about
  10%, r about 0.25 with DSR and -0.4 with age).
* ``rhythm_relative_amplitude`` and ``rhythm_interdaily_stability``: logit-normal, RA about
  0.75 +/- 0.12 and IS about 0.50 +/- 0.13, correlated (r about 0.5); RA falls slightly with
  age; three decimals.
* Safety screen (not model inputs, no effect on response): history of psychosis 2%,
  uncontrolled hypertension 3%, cardiovascular disease rising with age (about 7%), naltrexone
  1% (8% with a current SUD).

Missingness (realistic and documented; missing never means a bad record):

* ``crp_mg_l``: missing for a random 10%.
* ``bdnf_ng_ml``: a research assay, more often run where IV ketamine is given in research
  settings: missing for 20% of IV and 40% of intranasal patients (30% overall).
* ``delta_sleep_ratio`` and ``slow_wave_sleep_pct`` (polysomnography, missing together): more
  often done for heavier and older patients, whom clinicians refer for suspected sleep apnoea:
  measured with log-odds -0.9 + 0.06 (BMI - 29) + 0.015 (age - 44) (about 30% measured).
* ``rhythm_*`` (actigraphy, missing together): more often worn at research (IV) sites:
  missing for 40% of IV and 60% of intranasal patients (50% overall).

Response model
--------------
``responded`` is drawn from ``true_probability`` = sigmoid(eta), an additive model on the
log-odds scale with smooth shapes (:class:`ResponseModel` holds the effects)::

    eta = intercept + iv_route [route is IV]
          + crp * tanh(log(CRP / 1.7))                 lower CRP -> better; flattens at extremes
          + bdnf * tanh((BDNF - 22) / 10)              higher BDNF -> better; saturating
          + delta_sleep_ratio * tanh(log(DSR / 1.2) / 0.35)
          + relative_amplitude * (RA - 0.75) / 0.12    stronger rhythm -> better
          + interdaily_stability * (IS - 0.50) / 0.13  more regular rhythm -> better
          + sud_past [past SUD] + sud_current [current SUD]
          + family_history_aud [family history of AUD]  positive family history -> better
          + bmi * tanh((BMI - 29) / 8)                 higher BMI -> better (Niciu et al. 2014)
          + failed_trials * log2((trials + 1) / 4)     more failed trials -> worse
          + age * (age - 44) / 13 + female [female] + baseline_madrs * (MADRS - 32) / 6

N3 % has no term: its association with response comes only through DSR and age.

A biomarker that was not recorded contributes 0, the term of a typical patient: each shape is 0
at a typical value (CRP 1.7 mg/L, between the clinical cut-offs of 1 and 3; BDNF 22 ng/mL;
DSR 1.2; RA 0.75; IS 0.50; BMI 29; 3 failed trials; age 44; MADRS 32). An unknown family
history contributes the population average, 0.35 x family_history_aud. (The simulator always
records route, sex and SUD status; in other data a missing one contributes 0, as the reference
level does: intranasal, male, no SUD.) The response model
is thus written on the data a clinic actually has, so ``true_probability`` is exactly
P(response | the recorded record), the ceiling that a model of these fields can reach, and its
AUC (the oracle AUC) is the yardstick for a fitted model. The effects were solved so that the
cohort reproduces the literature targets: ``python bench/calibrate_simulator.py`` re-solves
them and ``python bench/simulator_targets.py`` prints every target against the value reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from data_schemas import validate
from predictor._params import (
    INF,
    NONE,
    InstanceOf,
    Interval,
    Options,
    ParameterTable,
    check,
)

DEFAULT_SEED = 0
FAMILY_HISTORY_AUD_PREVALENCE = 0.35


_SHAPE_PARAMETERS: ParameterTable = {
    "crp_shape": [Options("tanh", "threshold")],
    "bdnf_shape": [Options("tanh", "linear")],
    "delta_sleep_ratio_shape": [Options("tanh", "linear")],
    "bmi_shape": [Options("tanh", "linear")],
    "failed_trials_shape": [Options("log2", "linear")],
    "family_history_unknown": [Interval(float, 0, 1)],
}


@dataclass(frozen=True)
class ResponseModel:
    """Effects on the log-odds of response, and the shape of each field's term.

    The house site's shapes are the defaults (see the module docstring); another site may draw
    some terms with another shape (:mod:`predictor.simulation._sites`). Every shape is 0 at the
    same typical value, so a missing value contributes 0 whatever the shape.

    Attributes
    ----------
    crp_shape : {"tanh", "threshold"}
        ``tanh(log(CRP / 1.7))``, or a smooth step at the clinical cut-off of 3 mg/L:
        ``expit(log(CRP / 3) / 0.3) - expit(log(1.7 / 3) / 0.3)`` (about -0.13 below 1 mg/L,
        0.87 above 8 mg/L).
    bdnf_shape : {"tanh", "linear"}
        ``tanh((BDNF - 22) / 10)``, or ``(BDNF - 22) / 10`` (BDNF in ng/mL).
    delta_sleep_ratio_shape : {"tanh", "linear"}
        ``tanh(log(DSR / 1.2) / 0.35)``, or ``(DSR - 1.2) / 0.4``.
    bmi_shape : {"tanh", "linear"}
        ``tanh((BMI - 29) / 8)``, or ``(BMI - 29) / 8`` (BMI in kg/m2).
    failed_trials_shape : {"log2", "linear"}
        ``log2((trials + 1) / 4)``, or ``(trials - 3) / 2``.
    family_history_unknown : float
        What an unknown family history of AUD counts as (the site's prevalence), 0 to 1.
    """

    intercept: float
    iv_route: float
    crp: float
    bdnf: float
    delta_sleep_ratio: float
    relative_amplitude: float
    interdaily_stability: float
    sud_past: float
    sud_current: float
    family_history_aud: float
    bmi: float
    failed_trials: float
    age: float = -0.08
    female: float = 0.05
    baseline_madrs: float = -0.05
    crp_shape: Literal["tanh", "threshold"] = "tanh"
    bdnf_shape: Literal["tanh", "linear"] = "tanh"
    delta_sleep_ratio_shape: Literal["tanh", "linear"] = "tanh"
    bmi_shape: Literal["tanh", "linear"] = "tanh"
    failed_trials_shape: Literal["log2", "linear"] = "log2"
    family_history_unknown: float = FAMILY_HISTORY_AUD_PREVALENCE

    def __post_init__(self) -> None:
        shapes = {name: getattr(self, name) for name in _SHAPE_PARAMETERS}
        check("ResponseModel", _SHAPE_PARAMETERS, shapes)


RESPONSE_MODEL = ResponseModel(
    intercept=-0.178,
    iv_route=0.312,
    crp=-0.488,
    bdnf=0.445,
    delta_sleep_ratio=0.387,
    relative_amplitude=0.123,
    interdaily_stability=0.041,
    sud_past=-0.609,
    sud_current=-1.151,
    family_history_aud=0.908,
    bmi=0.364,
    failed_trials=-0.293,
)
"""The effects solved by ``bench/calibrate_simulator.py`` to reproduce the literature targets."""


@dataclass(frozen=True)
class CaseMix:
    """Who a site treats: the parameters of the patient draws (the house site's by default; the
    module docstring gives each draw).

    Attributes
    ----------
    age_mean, age_sd : float
        Age in years, before truncation to 18-80.
    female : float
        Share of women.
    bmi_median : float
        Median BMI in kg/m2 (log-SD 0.20, truncated to 16-60).
    baseline_madrs_mean : float
        Mean baseline MADRS in points (SD 6, truncated to 20-54).
    extra_failed_trials : float
        Mean number of failed trials above 2 (negative binomial, size 2).
    iv_share : float
        Share given IV ketamine (the others intranasal esketamine).
    family_history_aud : float
        Share with a family history of alcohol use disorder (before any is unknown).
    sud_with_family_history, sud_without_family_history : float
        Share with any substance-use disorder, with and without that family history.
    current_sud : float
        Share of those with a SUD whose SUD is current (the others past).
    """

    age_mean: float = 44.0
    age_sd: float = 13.0
    female: float = 0.60
    bmi_median: float = 28.4
    baseline_madrs_mean: float = 32.0
    extra_failed_trials: float = 1.4
    iv_share: float = 0.5
    family_history_aud: float = FAMILY_HISTORY_AUD_PREVALENCE
    sud_with_family_history: float = 0.50
    sud_without_family_history: float = 0.192
    current_sud: float = 1.0 / 3.0


@dataclass(frozen=True)
class Missingness:
    """Which tests a site runs: the chance each value is recorded (the house site's by default).

    Attributes
    ----------
    crp_missing : float
        Share of patients without a CRP (missing at random).
    bdnf_measured_iv, bdnf_measured_intranasal : float
        Share with a BDNF assay, by route.
    polysomnography_intercept, polysomnography_bmi, polysomnography_age : float
        Log-odds of a sleep study (DSR and N3 %, recorded together):
        ``intercept + bmi (BMI - 29) + age (age - 44)``, BMI in kg/m2, age in years.
    actigraphy_measured_iv, actigraphy_measured_intranasal : float
        Share with actigraphy (RA and IS, recorded together), by route.
    family_history_missing : float
        Share whose family history of AUD is unknown.
    """

    crp_missing: float = 0.10
    bdnf_measured_iv: float = 0.80
    bdnf_measured_intranasal: float = 0.60
    polysomnography_intercept: float = -0.9
    polysomnography_bmi: float = 0.06
    polysomnography_age: float = 0.015
    actigraphy_measured_iv: float = 0.60
    actigraphy_measured_intranasal: float = 0.40
    family_history_missing: float = 0.15


@dataclass(frozen=True)
class Site:
    """A simulated site: whom it treats, which tests it runs, and how its patients respond.

    Attributes
    ----------
    name : str
        What the command line calls it (``--site``).
    id_prefix : str
        Start of its patient ids, ``"<prefix><seed>-<k>"``; no two sites share one, so ids
        of two sites' cohorts never collide.
    case_mix : CaseMix
    missingness : Missingness
    response : ResponseModel
        The true response model: ``true_probability`` = sigmoid(:func:`response_logit`).
    """

    name: str
    id_prefix: str
    case_mix: CaseMix
    missingness: Missingness
    response: ResponseModel


HOUSE_SITE = Site(
    name="house",
    id_prefix="S",
    case_mix=CaseMix(),
    missingness=Missingness(),
    response=RESPONSE_MODEL,
)
"""The site the shipped model was trained on: this module's docstring documents it."""


def _truncated_normal(
    rng: np.random.Generator,
    mean: float | np.ndarray,
    sd: float,
    low: float,
    high: float,
    size: int,
) -> np.ndarray:
    """Normal(mean, sd) truncated to [low, high], by inverse transform (no rejection loop)."""
    from scipy.special import ndtr, ndtri

    a, b = ndtr((low - mean) / sd), ndtr((high - mean) / sd)
    return mean + sd * ndtri(a + (b - a) * rng.random(size))


def draw_patients(n: int, rng: np.random.Generator, *, site: Site = HOUSE_SITE) -> pd.DataFrame:
    """Draw ``n`` recorded patient records of ``site``, without outcome or id (the first half of
    :func:`simulate_cohort`; the calibration script solves the response model on its output).

    Parameters
    ----------
    n : int
        Number of patients.
    rng : numpy.random.Generator
        The random generator (the draws follow one fixed order, so a seed gives one cohort).
    site : Site
        Whose case mix and missingness to draw (default: the house site).

    Returns
    -------
    pandas.DataFrame, shape (n, 18)
        The schema's patient fields, unvalidated (plain strings and floats).
    """
    from scipy.special import expit

    mix, missing = site.case_mix, site.missingness
    age = np.round(_truncated_normal(rng, mix.age_mean, mix.age_sd, 18.0, 80.0, n))
    female = rng.random(n) < mix.female
    bmi = np.exp(
        _truncated_normal(rng, np.log(mix.bmi_median), 0.20, np.log(16.0), np.log(60.0), n)
    )
    madrs = np.round(_truncated_normal(rng, mix.baseline_madrs_mean, 6.0, 20.0, 54.0, n))
    trials = 2.0 + np.minimum(rng.negative_binomial(2, 2.0 / (2.0 + mix.extra_failed_trials), n), 8)
    iv = rng.random(n) < mix.iv_share

    family_history = rng.random(n) < mix.family_history_aud
    any_sud = rng.random(n) < np.where(
        family_history, mix.sud_with_family_history, mix.sud_without_family_history
    )
    current = any_sud & (rng.random(n) < mix.current_sud)
    sud = np.where(current, "current", np.where(any_sud, "past", "none"))

    crp = np.exp(np.log(1.4) + 0.075 * (bmi - 29.0) + rng.normal(0.0, 1.22, n))
    bdnf = _truncated_normal(rng, 22.0, 7.0, 3.0, 60.0, n)
    z_sleep = rng.standard_normal(n)
    dsr = np.exp(np.log(1.17) - 0.005 * (age - 44.0) + 0.26 * z_sleep)
    sws = 9.0 * np.exp(0.08 * z_sleep - 0.018 * (age - 44.0) + rng.normal(0.0, 0.45, n))
    z_rhythm = rng.standard_normal(n)
    z_stability = 0.5 * z_rhythm + np.sqrt(0.75) * rng.standard_normal(n)
    ra = expit(1.15 - 0.01 * (age - 44.0) + 0.68 * z_rhythm)
    stability = expit(0.55 * z_stability)

    psychosis = rng.random(n) < 0.02
    hypertension = rng.random(n) < 0.03
    cardiovascular = rng.random(n) < expit(-2.9 + 0.06 * (age - 44.0))
    naltrexone = rng.random(n) < np.where(current, 0.08, 0.01)

    crp_measured = rng.random(n) >= missing.crp_missing
    bdnf_measured = rng.random(n) < np.where(
        iv, missing.bdnf_measured_iv, missing.bdnf_measured_intranasal
    )
    psg_measured = rng.random(n) < expit(
        missing.polysomnography_intercept
        + missing.polysomnography_bmi * (bmi - 29.0)
        + missing.polysomnography_age * (age - 44.0)
    )
    actigraphy_measured = rng.random(n) < np.where(
        iv, missing.actigraphy_measured_iv, missing.actigraphy_measured_intranasal
    )
    family_history_known = rng.random(n) >= missing.family_history_missing

    def recorded(values: np.ndarray, measured: np.ndarray, decimals: int) -> np.ndarray:
        return np.where(measured, np.round(values, decimals), np.nan)

    return pd.DataFrame(
        {
            "age_years": age,
            "sex": np.where(female, "female", "male"),
            "bmi_kg_m2": np.round(bmi, 1),
            "baseline_madrs": madrs,
            "failed_antidepressant_trials": trials,
            "route": np.where(iv, "iv_ketamine", "intranasal_esketamine"),
            "crp_mg_l": recorded(np.clip(crp, 0.05, 300.0), crp_measured, 2),
            "bdnf_ng_ml": recorded(bdnf, bdnf_measured, 1),
            "delta_sleep_ratio": recorded(np.clip(dsr, 0.2, 5.0), psg_measured, 2),
            "slow_wave_sleep_pct": recorded(np.clip(sws, 0.5, 45.0), psg_measured, 1),
            "rhythm_relative_amplitude": recorded(ra, actigraphy_measured, 3),
            "rhythm_interdaily_stability": recorded(stability, actigraphy_measured, 3),
            "substance_use_disorder": sud,
            "family_history_alcohol_use_disorder": recorded(
                family_history.astype(float), family_history_known, 0
            ),
            "history_of_psychosis": psychosis.astype(float),
            "uncontrolled_hypertension": hypertension.astype(float),
            "cardiovascular_disease": cardiovascular.astype(float),
            "current_naltrexone": naltrexone.astype(float),
        }
    )


def _crp_step(crp: np.ndarray) -> np.ndarray:
    """The CRP threshold shape (see :class:`ResponseModel`): a smooth step at 3 mg/L, 0 at the
    typical 1.7 mg/L."""
    from scipy.special import expit

    return expit(np.log(crp / 3.0) / 0.3) - float(expit(np.log(1.7 / 3.0) / 0.3))


_SHAPES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # term:shape -> the shape, 0 at the term's typical value (see ResponseModel)
    "crp:tanh": lambda crp: np.tanh(np.log(crp / 1.7)),
    "crp:threshold": _crp_step,
    "bdnf:tanh": lambda bdnf: np.tanh((bdnf - 22.0) / 10.0),
    "bdnf:linear": lambda bdnf: (bdnf - 22.0) / 10.0,
    "delta_sleep_ratio:tanh": lambda dsr: np.tanh(np.log(dsr / 1.2) / 0.35),
    "delta_sleep_ratio:linear": lambda dsr: (dsr - 1.2) / 0.4,
    "bmi:tanh": lambda bmi: np.tanh((bmi - 29.0) / 8.0),
    "bmi:linear": lambda bmi: (bmi - 29.0) / 8.0,
    "failed_trials:log2": lambda trials: np.log2((trials + 1.0) / 4.0),
    "failed_trials:linear": lambda trials: (trials - 3.0) / 2.0,
}


def response_logit(patients: pd.DataFrame, model: ResponseModel = RESPONSE_MODEL) -> np.ndarray:
    """The response model's log-odds for recorded patients (a missing value contributes 0).

    Parameters
    ----------
    patients : pandas.DataFrame, shape (n, ...)
        Canonical records (as :func:`simulate_cohort` or ``data_schemas.validate`` give them).
    model : ResponseModel
        The effects and shapes (default: the house site's).

    Returns
    -------
    numpy.ndarray, shape (n,)
    """

    def column(name: str) -> np.ndarray:
        return patients[name].to_numpy(dtype=np.float64)

    def term(name: str, shape: str, values: np.ndarray) -> np.ndarray:
        return np.nan_to_num(_SHAPES[f"{name}:{shape}"](values), nan=0.0)

    def plain(values: np.ndarray) -> np.ndarray:
        return np.nan_to_num(values, nan=0.0)

    sud = patients["substance_use_disorder"]
    eta = (
        model.intercept
        + model.iv_route * (patients["route"] == "iv_ketamine").to_numpy(dtype=float)
        + model.crp * term("crp", model.crp_shape, column("crp_mg_l"))
        + model.bdnf * term("bdnf", model.bdnf_shape, column("bdnf_ng_ml"))
        + model.delta_sleep_ratio
        * term("delta_sleep_ratio", model.delta_sleep_ratio_shape, column("delta_sleep_ratio"))
        + model.relative_amplitude * plain((column("rhythm_relative_amplitude") - 0.75) / 0.12)
        + model.interdaily_stability * plain((column("rhythm_interdaily_stability") - 0.50) / 0.13)
        + model.sud_past * (sud == "past").to_numpy(dtype=float)
        + model.sud_current * (sud == "current").to_numpy(dtype=float)
        + model.family_history_aud
        * np.nan_to_num(
            column("family_history_alcohol_use_disorder"), nan=model.family_history_unknown
        )
        + model.bmi * term("bmi", model.bmi_shape, column("bmi_kg_m2"))
        + model.failed_trials
        * term("failed_trials", model.failed_trials_shape, column("failed_antidepressant_trials"))
        + model.age * plain((column("age_years") - 44.0) / 13.0)
        + model.female * (patients["sex"] == "female").to_numpy(dtype=float)
        + model.baseline_madrs * plain((column("baseline_madrs") - 32.0) / 6.0)
    )
    return eta


_SIMULATE_PARAMETERS: ParameterTable = {
    "n": [Interval(int, 1, INF, closed="left")],
    "seed": [Interval(int, 0, INF, closed="left")],
    "model": [InstanceOf(ResponseModel, "a ResponseModel"), NONE],
    "site": [InstanceOf(Site, "a Site")],
}


def simulate_cohort(
    n: int,
    *,
    seed: int = DEFAULT_SEED,
    model: ResponseModel | None = None,
    site: Site = HOUSE_SITE,
) -> pd.DataFrame:
    """Simulate a cohort of ``n`` patients of a site with their response to ketamine.

    The house site's data-generating process is in this module's docstring and the README, the
    other sites' in :mod:`predictor.simulation._sites`; the same ``n``, ``seed`` and ``site``
    always give the same frame.

    Parameters
    ----------
    n : int
        Number of patients (>= 1).
    seed : int
        Seed of the random generator.
    model : ResponseModel, optional
        The response model (default: the site's; the house site's is calibrated to the
        literature).
    site : Site
        Whose patients: case mix, missingness and response model (default: the house site,
        on which the shipped model was trained; ``SECOND_SITE`` is another).

    Returns
    -------
    pandas.DataFrame, shape (n, 21)
        Every schema field in schema order and canonical dtypes (as ``data_schemas.validate``
        returns them), including ``patient_id`` (``"<site prefix><seed>-<k>"``, ``"S<seed>-<k>"``
        at the house site), ``responded`` (0/1) and
        ``true_probability`` (the probability ``responded`` was drawn from).

    Raises
    ------
    InvalidParameterError
        If ``n`` is not a whole number >= 1, ``seed`` not one >= 0, or ``site`` not a Site.

    Examples
    --------
    >>> cohort = simulate_cohort(1000, seed=1)
    >>> cohort.shape
    (1000, 21)
    >>> bool(cohort["responded"].isin([0.0, 1.0]).all())
    True
    """
    check("simulate_cohort", _SIMULATE_PARAMETERS, locals())
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    patients = draw_patients(int(n), rng, site=site)
    probability = expit(response_logit(patients, site.response if model is None else model))
    patients["responded"] = (rng.random(int(n)) < probability).astype(float)
    patients["true_probability"] = probability
    width = len(str(n))
    patients["patient_id"] = [f"{site.id_prefix}{seed}-{k:0{width}d}" for k in range(1, int(n) + 1)]
    cohort, problems = validate(patients)  # schema order and dtypes, and a check of every value
    if not problems.empty:
        raise RuntimeError(f"the simulator wrote values the schema refuses:\n{problems}")
    return cohort
