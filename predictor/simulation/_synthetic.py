"""Synthetic cohort of ketamine-treated patients, simulated from published effect sizes.

No public patient-level data links these biomarkers to ketamine response, so the shipped model is
trained on a simulated cohort. The project's literature review is the specification: the
published sources, and a table of targets (response rates, contrasts, marginals, missingness,
oracle AUC) that the tests hold this simulator to, kept here as
:mod:`predictor.simulation._targets`.
The evidence for several predictors is thin; the simulator encodes the direction the sources
report, at a modest size.

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

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr, ndtri

from data_schemas import validate
from predictor._params import INF, InstanceOf, Interval, ParameterTable, check

DEFAULT_SEED = 0
FAMILY_HISTORY_AUD_PREVALENCE = 0.35


@dataclass(frozen=True)
class ResponseModel:
    """Effects on the log-odds of response; see the module docstring for each term's shape."""

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


def _truncated_normal(
    rng: np.random.Generator,
    mean: float | np.ndarray,
    sd: float,
    low: float,
    high: float,
    size: int,
) -> np.ndarray:
    """Normal(mean, sd) truncated to [low, high], by inverse transform (no rejection loop)."""
    a, b = ndtr((low - mean) / sd), ndtr((high - mean) / sd)
    return mean + sd * ndtri(a + (b - a) * rng.random(size))


def draw_patients(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` recorded patient records, without outcome or id (the first half of
    :func:`simulate_cohort`; the calibration script solves the response model on its output)."""
    age = np.round(_truncated_normal(rng, 44.0, 13.0, 18.0, 80.0, n))
    female = rng.random(n) < 0.60
    bmi = np.exp(_truncated_normal(rng, np.log(28.4), 0.20, np.log(16.0), np.log(60.0), n))
    madrs = np.round(_truncated_normal(rng, 32.0, 6.0, 20.0, 54.0, n))
    trials = 2.0 + np.minimum(rng.negative_binomial(2, 2.0 / 3.4, n), 8)
    iv = rng.random(n) < 0.5

    family_history = rng.random(n) < FAMILY_HISTORY_AUD_PREVALENCE
    any_sud = rng.random(n) < np.where(family_history, 0.50, 0.192)
    current = any_sud & (rng.random(n) < 1.0 / 3.0)
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

    crp_measured = rng.random(n) >= 0.10
    bdnf_measured = rng.random(n) < np.where(iv, 0.80, 0.60)
    psg_measured = rng.random(n) < expit(-0.9 + 0.06 * (bmi - 29.0) + 0.015 * (age - 44.0))
    actigraphy_measured = rng.random(n) < np.where(iv, 0.60, 0.40)
    family_history_known = rng.random(n) >= 0.15

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


def response_logit(patients: pd.DataFrame, model: ResponseModel = RESPONSE_MODEL) -> np.ndarray:
    """The response model's log-odds for recorded patients (a missing value contributes 0).

    Parameters
    ----------
    patients : pandas.DataFrame, shape (n, ...)
        Canonical records (as :func:`simulate_cohort` or ``data_schemas.validate`` give them).
    model : ResponseModel
        The effects.

    Returns
    -------
    numpy.ndarray, shape (n,)
    """

    def term(values: np.ndarray) -> np.ndarray:
        return np.nan_to_num(values, nan=0.0)

    def column(name: str) -> np.ndarray:
        return patients[name].to_numpy(dtype=np.float64)

    sud = patients["substance_use_disorder"]
    eta = (
        model.intercept
        + model.iv_route * (patients["route"] == "iv_ketamine").to_numpy(dtype=float)
        + model.crp * term(np.tanh(np.log(column("crp_mg_l") / 1.7)))
        + model.bdnf * term(np.tanh((column("bdnf_ng_ml") - 22.0) / 10.0))
        + model.delta_sleep_ratio * term(np.tanh(np.log(column("delta_sleep_ratio") / 1.2) / 0.35))
        + model.relative_amplitude * term((column("rhythm_relative_amplitude") - 0.75) / 0.12)
        + model.interdaily_stability * term((column("rhythm_interdaily_stability") - 0.50) / 0.13)
        + model.sud_past * (sud == "past").to_numpy(dtype=float)
        + model.sud_current * (sud == "current").to_numpy(dtype=float)
        + model.family_history_aud
        * np.nan_to_num(
            column("family_history_alcohol_use_disorder"), nan=FAMILY_HISTORY_AUD_PREVALENCE
        )
        + model.bmi * term(np.tanh((column("bmi_kg_m2") - 29.0) / 8.0))
        + model.failed_trials * term(np.log2((column("failed_antidepressant_trials") + 1.0) / 4.0))
        + model.age * term((column("age_years") - 44.0) / 13.0)
        + model.female * (patients["sex"] == "female").to_numpy(dtype=float)
        + model.baseline_madrs * term((column("baseline_madrs") - 32.0) / 6.0)
    )
    return eta


_SIMULATE_PARAMETERS: ParameterTable = {
    "n": [Interval(int, 1, INF, closed="left")],
    "seed": [Interval(int, 0, INF, closed="left")],
    "model": [InstanceOf(ResponseModel, "a ResponseModel")],
}


def simulate_cohort(
    n: int,
    *,
    seed: int = DEFAULT_SEED,
    model: ResponseModel = RESPONSE_MODEL,
) -> pd.DataFrame:
    """Simulate a cohort of ``n`` patients with their response to ketamine.

    The data-generating process is in this module's docstring and the README; the same ``n`` and
    ``seed`` always give the same frame.

    Parameters
    ----------
    n : int
        Number of patients (>= 1).
    seed : int
        Seed of the random generator.
    model : ResponseModel
        The response model's effects (default: the ones calibrated to the literature).

    Returns
    -------
    pandas.DataFrame, shape (n, 21)
        Every schema field in schema order and canonical dtypes (as ``data_schemas.validate``
        returns them), including ``patient_id`` (``"S<seed>-<k>"``), ``responded`` (0/1) and
        ``true_probability`` (the probability ``responded`` was drawn from).

    Raises
    ------
    InvalidParameterError
        If ``n`` is not a whole number >= 1, or ``seed`` not one >= 0.

    Examples
    --------
    >>> cohort = simulate_cohort(1000, seed=1)
    >>> cohort.shape
    (1000, 21)
    >>> bool(cohort["responded"].isin([0.0, 1.0]).all())
    True
    """
    check("simulate_cohort", _SIMULATE_PARAMETERS, locals())
    rng = np.random.default_rng(seed)
    patients = draw_patients(int(n), rng)
    probability = expit(response_logit(patients, model))
    patients["responded"] = (rng.random(int(n)) < probability).astype(float)
    patients["true_probability"] = probability
    width = len(str(n))
    patients["patient_id"] = [f"S{seed}-{k:0{width}d}" for k in range(1, int(n) + 1)]
    cohort, problems = validate(patients)  # schema order and dtypes, and a check of every value
    if not problems.empty:
        raise RuntimeError(f"the simulator wrote values the schema refuses:\n{problems}")
    return cohort
