"""Other simulated sites: cohorts the shipped model never saw, for testing and benchmarking the
update of a model to a clinic's own data (``python -m predictor update``).

The house site (:data:`~predictor.simulation._synthetic.HOUSE_SITE`, documented in
:mod:`predictor.simulation._synthetic`) is the one the shipped model was trained on. A real
clinic differs from it in whom it treats, which tests it runs, and how its patients respond;
the issue that asked for updating measured a shipped model on an external cohort of that kind at
AUC 0.656 against an oracle of 0.690, calibration slope 0.83. :data:`SECOND_SITE` is such a site.

Second site
-----------
A community clinic that mostly gives intranasal esketamine to older, heavier, more treatment-
resistant patients with more substance use, and runs fewer research tests. Every effect keeps
the direction the literature gives (the project's literature review, ``literature.md``); sizes
and shapes move within its uncertainty, and the log-odds stay additive over fields. What is not
listed here is as at the house site (the draws of CRP given BMI, BDNF, sleep and rhythm, the
safety screen).

Case mix (:class:`CaseMix`):

* ``age_years``: normal(50, 14), truncated to 18-80 (mean about 50; real-world ketamine clinics
  report mean ages of 40-50).
* ``sex``: female 55% (house 60%).
* ``bmi_kg_m2``: median 30.5 (mean about 31), so CRP is a little higher too (median about
  1.6 mg/L, 32% above 3 mg/L, within Osimo et al. 2019's range for depression).
* ``baseline_madrs``: mean 34 (house 32): more severe.
* ``failed_antidepressant_trials``: 2 + negative binomial (mean 2.0): median 4 (house 3).
* ``route``: IV ketamine 30%, intranasal esketamine 70% (house 50/50).
* ``family_history_alcohol_use_disorder``: yes for 30%, unknown for 25% (about 22% of records
  say yes).
* ``substance_use_disorder``: any SUD for 55% with a family history of AUD and 25% without
  (odds ratio about 3.7, as the house site's 4); 40% of those current: none 66%, past 20%,
  current 14% (house 70/20/10).

Missingness (:class:`Missingness`):

* ``crp_mg_l``: missing for 5% (a routine test here; house 10%).
* ``bdnf_ng_ml``: measured for 50% of IV and 30% of intranasal patients (about 64% missing;
  house 30%): a research assay, rarer outside research settings.
* Polysomnography (DSR and N3 %): measured with log-odds -1.8 + 0.08 (BMI - 29) + 0.02 (age - 44),
  about 20% (house 30%): fewer sleep studies, still mostly for heavier, older patients.
* Actigraphy (RA and IS): worn by 40% of IV and 20% of intranasal patients (about 74% missing;
  house 50%).

Response model (:data:`SECOND_SITE_RESPONSE`; shapes as :class:`ResponseModel` describes them)::

    eta = -0.10 + 0.55 [IV]
          - 0.30 (expit(log(CRP / 3) / 0.3) - expit(log(1.7 / 3) / 0.3))   smooth step at 3 mg/L
          + 0.12 (BDNF - 22) / 10                                          linear
          + 0.20 (DSR - 1.2) / 0.4                                         linear
          + 0.08 (RA - 0.75) / 0.12 + 0.03 (IS - 0.50) / 0.13
          - 0.70 [past SUD] - 1.40 [current SUD]
          + 0.60 [family history of AUD]       (unknown: 0.30 x 0.60, this site's prevalence)
          + 0.15 (BMI - 29) / 8                                            linear
          - 0.30 (trials - 3) / 2                                          linear
          - 0.05 (age - 44) / 13 + 0.05 [female] - 0.10 (MADRS - 32) / 6

How each moves within the literature's uncertainty (house effect in brackets):

* Route 0.55 (0.31): IV racemic ketamine shows larger effects than esketamine in meta-analysis
  (Bahji et al. 2021; bioavailability 100% vs about 45%); the crude IV minus intranasal
  difference is about +0.12 (house target +0.07).
* CRP -0.30 as a step at the clinical cut-off of 3 mg/L (-0.49 as a tanh of log CRP): weak and
  mixed evidence, several studies found no effect (Kiraly et al. 2017, Park et al. 2017, Kruse
  et al. 2021); crude CRP < 1 minus > 3 mg/L about +0.04 (house +0.15).
* BDNF 0.12 per 10 ng/mL, linear (0.45 x a saturating tanh): no baseline blood biomarker
  predicted response consistently (Medeiros et al. 2022); top minus bottom tertile about +0.04
  (house +0.12).
* Delta sleep ratio 0.20 per 0.4, linear (0.39 x tanh): one study of n = 30 (Duncan et al.
  2013); tertile contrast about +0.08 (house +0.12).
* Rhythm RA 0.08, IS 0.03 (0.12, 0.04): weak and mixed (Punturieri et al. 2024 found none).
* SUD past -0.70, current -1.40 (-0.61, -1.15): no study gives a size (an assumption at the
  house site too); crude no SUD minus current about +0.27, minus past +0.13 (house +0.20,
  +0.08).
* Family history of AUD 0.60 (0.91): still positive (Phelps et al. 2009; Niciu et al. 2014),
  smaller; crude yes minus no about +0.07 (house +0.15), since a family history also raises
  the risk of a SUD, more so at this site.
* BMI 0.15 per 8 kg/m2, linear (0.36 x tanh): Niciu et al. 2014's direction, smaller; crude
  BMI >= 30 minus < 25 about +0.04 (house +0.05).
* Failed trials -0.30 per 2 trials, linear (-0.29 per doubling of trials + 1): the general TRD
  finding, stronger at the more resistant end; >= 5 minus <= 2 about -0.15 (house -0.08).
* Age -0.05, female 0.05, MADRS -0.10 per 6 points (-0.08, 0.05, -0.05): weak or none.
* The intercept gives a response rate of about 0.44 (house 0.52; real-world cohorts 27-72%).

Its oracle AUC is about 0.67 (house about 0.70). The shipped model on 20,000 of its patients
(``python bench/second_site.py``): AUC about 0.64 (ratio to the oracle about 0.96), calibration
slope about 0.80, calibration-in-the-large about -0.03: it transports, imperfectly, which is
what recalibration and revision are for. Its 90% intervals, which carry only the uncertainty of
its own fit, contain this site's ``true_probability`` for about 20% of patients (house site:
about 87%). Patient ids are ``"B<seed>-<k>"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from predictor.simulation._synthetic import (
    HOUSE_SITE,
    CaseMix,
    Missingness,
    ResponseModel,
    Site,
)

SECOND_SITE_RESPONSE = ResponseModel(
    intercept=-0.10,
    iv_route=0.55,
    crp=-0.30,
    bdnf=0.12,
    delta_sleep_ratio=0.20,
    relative_amplitude=0.08,
    interdaily_stability=0.03,
    sud_past=-0.70,
    sud_current=-1.40,
    family_history_aud=0.60,
    bmi=0.15,
    failed_trials=-0.30,
    age=-0.05,
    female=0.05,
    baseline_madrs=-0.10,
    crp_shape="threshold",
    bdnf_shape="linear",
    delta_sleep_ratio_shape="linear",
    bmi_shape="linear",
    failed_trials_shape="linear",
    family_history_unknown=0.30,
)
"""The second site's response model (this module's docstring gives each term and why)."""

SECOND_SITE = Site(
    name="second",
    id_prefix="B",
    case_mix=CaseMix(
        age_mean=50.0,
        age_sd=14.0,
        female=0.55,
        bmi_median=30.5,
        baseline_madrs_mean=34.0,
        extra_failed_trials=2.0,
        iv_share=0.30,
        family_history_aud=0.30,
        sud_with_family_history=0.55,
        sud_without_family_history=0.25,
        current_sud=0.40,
    ),
    missingness=Missingness(
        crp_missing=0.05,
        bdnf_measured_iv=0.50,
        bdnf_measured_intranasal=0.30,
        polysomnography_intercept=-1.8,
        polysomnography_bmi=0.08,
        polysomnography_age=0.02,
        actigraphy_measured_iv=0.40,
        actigraphy_measured_intranasal=0.20,
        family_history_missing=0.25,
    ),
    response=SECOND_SITE_RESPONSE,
)
"""A community esketamine clinic the shipped model never saw (this module's docstring)."""

SITES: Mapping[str, Site] = MappingProxyType({s.name: s for s in (HOUSE_SITE, SECOND_SITE)})
"""Every simulated site by name (``python -m predictor simulate --site NAME``)."""
