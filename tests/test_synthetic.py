"""The synthetic cohort: literature targets, determinism, ranges, missingness, response model."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from data_schemas import FIELDS, Kind, validate
from predictor.simulation._synthetic import DEFAULT_SEED, response_logit, simulate_cohort
from predictor.simulation._targets import TARGETS, measure_targets

TARGET_N = 50_000
HOUSE_SITE_DATA = Path(__file__).parent / "data" / "house_site"
HOUSE_SITE_SHA256 = {
    0: "fa7721708498758f3e03dc2035d7bfc208c662e2d16363ecd4f51bde81a16ce8",
    7: "3ffb87dfc68eab0178ef56e4089ace65ae853edd234f4d93d4744bca960b0163",
}
"""sha256 of ``simulate_cohort(2000, seed=s).to_csv()`` written by the simulator before sites
existed; the stored files in tests/data/house_site are those texts, gzipped."""


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    """The default cohort the literature targets are asserted on (n = 50,000, default seed)."""
    return simulate_cohort(TARGET_N, seed=DEFAULT_SEED)


@pytest.mark.parametrize("target", TARGETS, ids=[t.id for t in TARGETS])
def test_simulator_reproduces_literature_target(cohort: pd.DataFrame, target) -> None:
    value = target.measure(cohort, "responded")
    assert target.low <= value <= target.high, (
        f"{target.id} {target.quantity}: {value:.4f} outside [{target.low:.3f}, {target.high:.3f}]"
    )


def test_measure_targets_reports_every_row_with_its_band(cohort: pd.DataFrame) -> None:
    report = measure_targets(cohort)
    assert report["id"].tolist() == [f"T{k}" for k in range(1, 23)]
    assert (report["low"] < report["target"]).all() and (report["target"] < report["high"]).all()
    assert report["ok"].tolist() == [
        lo <= v <= hi for lo, v, hi in report[["low", "value", "high"]].values
    ]


@pytest.mark.parametrize("seed", sorted(HOUSE_SITE_SHA256))
def test_house_site_gives_the_cohort_it_gave_before_sites_existed(seed: int) -> None:
    # The stored text is the one the earlier simulator wrote (its hash says so); the new one is
    # compared with it value by value, floats with a tolerance, so that a last-bit difference of
    # another platform's maths library does not fail the test while any real change does.
    text = gzip.decompress((HOUSE_SITE_DATA / f"seed{seed}_n2000.csv.gz").read_bytes())
    assert hashlib.sha256(text).hexdigest() == HOUSE_SITE_SHA256[seed]
    stored = pd.read_csv(HOUSE_SITE_DATA / f"seed{seed}_n2000.csv.gz", index_col=0)
    cohort = simulate_cohort(2000, seed=seed)
    assert list(cohort.columns) == list(stored.columns)
    for name in cohort.columns:
        if pd.api.types.is_float_dtype(cohort[name]):
            np.testing.assert_allclose(
                cohort[name].to_numpy(), stored[name].to_numpy(), rtol=1e-9, atol=1e-12
            )
        else:
            assert cohort[name].astype(str).tolist() == stored[name].astype(str).tolist(), name


def test_simulate_same_seed_gives_identical_frame() -> None:
    pd.testing.assert_frame_equal(simulate_cohort(3000, seed=7), simulate_cohort(3000, seed=7))


def test_simulate_other_seed_gives_other_cohort() -> None:
    first, second = simulate_cohort(3000, seed=7), simulate_cohort(3000, seed=8)
    assert not np.allclose(first["true_probability"], second["true_probability"])
    assert first["patient_id"].iloc[0] != second["patient_id"].iloc[0]


def test_simulate_has_every_schema_field_in_order_with_canonical_dtypes() -> None:
    cohort = simulate_cohort(500, seed=3)
    assert list(cohort.columns) == [f.name for f in FIELDS]
    for field in FIELDS:
        dtype = cohort[field.name].dtype
        if field.kind is Kind.CATEGORY:
            assert isinstance(dtype, pd.CategoricalDtype), field.name
            assert list(dtype.categories) == list(field.levels), field.name
        elif field.kind is not Kind.TEXT:
            assert dtype == np.float64, field.name
    assert cohort["patient_id"].is_unique


def test_simulated_values_stay_inside_the_hard_ranges(cohort: pd.DataFrame) -> None:
    for field in FIELDS:
        if field.kind in (Kind.NUMBER, Kind.INTEGER):
            values = cohort[field.name].dropna()
            assert values.between(field.low, field.high).all(), field.name
        if field.kind is Kind.INTEGER:
            values = cohort[field.name].dropna()
            assert (values == values.round()).all(), field.name


def test_simulated_cohort_passes_validation_unchanged() -> None:
    cohort = simulate_cohort(5000, seed=11)
    clean, problems = validate(cohort)
    assert problems.empty
    pd.testing.assert_frame_equal(clean, cohort)


def test_true_probability_is_the_response_model_of_the_recorded_record(
    cohort: pd.DataFrame,
) -> None:
    # The oracle depends only on what a clinic records: recomputing it from the recorded,
    # rounded, partly missing cohort gives it back exactly. A simulator that drew the outcome
    # from latent (unrounded or unrecorded) values would fail here, and its true_probability
    # would no longer be the ceiling a fitted model can reach.
    np.testing.assert_allclose(cohort["true_probability"], expit(response_logit(cohort)), rtol=0)


def test_responded_is_drawn_from_true_probability(cohort: pd.DataFrame) -> None:
    bins = pd.qcut(cohort["true_probability"], 10)
    by_bin = cohort.groupby(bins, observed=True)
    observed, expected = by_bin["responded"].mean(), by_bin["true_probability"].mean()
    # 5,000 patients per decile: the binomial SE is at most 0.007.
    assert (observed - expected).abs().max() < 0.03
    assert set(cohort["responded"].unique()) == {0.0, 1.0}


@pytest.mark.parametrize(
    ("columns", "share_missing"),
    [
        (["delta_sleep_ratio", "slow_wave_sleep_pct"], 0.70),
        (["rhythm_relative_amplitude", "rhythm_interdaily_stability"], 0.50),
    ],
    ids=["polysomnography", "actigraphy"],
)
def test_fields_from_one_test_go_missing_together(
    cohort: pd.DataFrame, columns: list[str], share_missing: float
) -> None:
    missing = cohort[columns].isna()
    assert (missing.iloc[:, 0] == missing.iloc[:, 1]).all()
    assert missing.iloc[:, 0].mean() == pytest.approx(share_missing, abs=0.03)


def test_missingness_depends_on_other_fields_as_documented(cohort: pd.DataFrame) -> None:
    iv = cohort["route"] == "iv_ketamine"
    measured = cohort.notna()
    # Research (IV) sites run BDNF assays and actigraphy more often.
    assert measured.loc[iv, "bdnf_ng_ml"].mean() - measured.loc[~iv, "bdnf_ng_ml"].mean() > 0.15
    assert (
        measured.loc[iv, "rhythm_relative_amplitude"].mean()
        - measured.loc[~iv, "rhythm_relative_amplitude"].mean()
        > 0.15
    )
    # Heavier patients are referred for polysomnography (suspected sleep apnoea) more often.
    heavy = cohort["bmi_kg_m2"] >= 30
    light = cohort["bmi_kg_m2"] < 25
    assert (
        measured.loc[heavy, "delta_sleep_ratio"].mean()
        - measured.loc[light, "delta_sleep_ratio"].mean()
        > 0.08
    )
    # CRP is missing at random.
    assert abs(measured.loc[iv, "crp_mg_l"].mean() - measured.loc[~iv, "crp_mg_l"].mean()) < 0.02


def test_documented_correlations_hold(cohort: pd.DataFrame) -> None:
    # The figures the module docstring (and so the README) states, to their stated precision.
    crp = cohort.dropna(subset=["crp_mg_l"])
    assert np.corrcoef(crp["bmi_kg_m2"], np.log(crp["crp_mg_l"]))[0, 1] == pytest.approx(
        0.34, abs=0.03
    )
    assert np.log(crp["crp_mg_l"]).std() == pytest.approx(1.3, abs=0.05)
    sleep = cohort.dropna(subset=["slow_wave_sleep_pct"])
    assert sleep["slow_wave_sleep_pct"].corr(sleep["age_years"]) == pytest.approx(-0.4, abs=0.04)
    assert sleep["slow_wave_sleep_pct"].corr(sleep["delta_sleep_ratio"]) == pytest.approx(
        0.24, abs=0.04
    )
    assert sleep["slow_wave_sleep_pct"].mean() == pytest.approx(10.0, abs=0.5)
    rhythm = cohort.dropna(subset=["rhythm_relative_amplitude"])
    r = rhythm["rhythm_relative_amplitude"].corr(rhythm["rhythm_interdaily_stability"])
    assert r == pytest.approx(0.5, abs=0.04)
    assert rhythm["rhythm_relative_amplitude"].mean() == pytest.approx(0.75, abs=0.015)
    assert rhythm["rhythm_relative_amplitude"].std() == pytest.approx(0.12, abs=0.01)
    assert rhythm["rhythm_interdaily_stability"].mean() == pytest.approx(0.50, abs=0.01)
    assert rhythm["rhythm_interdaily_stability"].std() == pytest.approx(0.13, abs=0.01)


def test_documented_marginals_hold(cohort: pd.DataFrame) -> None:
    # literature.md's "other marginals, not asserted but to be realistic", as documented.
    assert cohort["age_years"].mean() == pytest.approx(44, abs=1.0)
    assert cohort["age_years"].between(18, 80).all()
    assert (cohort["sex"] == "female").mean() == pytest.approx(0.60, abs=0.01)
    assert cohort["bmi_kg_m2"].mean() == pytest.approx(29, abs=0.5)
    assert cohort["bmi_kg_m2"].std() == pytest.approx(6, abs=0.5)
    assert cohort["baseline_madrs"].mean() == pytest.approx(32, abs=0.6)
    assert cohort["failed_antidepressant_trials"].median() == 3
    assert cohort["failed_antidepressant_trials"].between(2, 10).all()
    assert (cohort["route"] == "iv_ketamine").mean() == pytest.approx(0.5, abs=0.01)
    sud = cohort["substance_use_disorder"].value_counts(normalize=True)
    assert sud.to_dict() == pytest.approx({"none": 0.70, "past": 0.20, "current": 0.10}, abs=0.01)
    family = cohort["family_history_alcohol_use_disorder"]
    assert (family == 1.0).mean() == pytest.approx(0.30, abs=0.01)
    assert family.isna().mean() == pytest.approx(0.15, abs=0.01)


@pytest.mark.parametrize(
    ("column", "low", "high", "direction"),
    [
        ("crp_mg_l", 0.5, 8.0, -1),
        ("bdnf_ng_ml", 12.0, 32.0, +1),
        ("delta_sleep_ratio", 0.8, 1.8, +1),
        ("rhythm_relative_amplitude", 0.6, 0.9, +1),
        ("rhythm_interdaily_stability", 0.3, 0.7, +1),
        ("bmi_kg_m2", 22.0, 36.0, +1),
        ("failed_antidepressant_trials", 2.0, 8.0, -1),
        ("family_history_alcohol_use_disorder", 0.0, 1.0, +1),
    ],
    ids=["crp", "bdnf", "dsr", "ra", "is", "bmi", "failed-trials", "family-history-aud"],
)
def test_response_model_directions_match_the_literature(
    column: str, low: float, high: float, direction: int
) -> None:
    patients = simulate_cohort(200, seed=5)
    at_low = response_logit(patients.assign(**{column: low}))
    at_high = response_logit(patients.assign(**{column: high}))
    assert (np.sign(at_high - at_low) == direction).all()


def test_response_model_substance_use_lowers_response_current_most() -> None:
    patients = simulate_cohort(200, seed=5)
    logit = {
        level: response_logit(
            patients.assign(
                substance_use_disorder=pd.Categorical(
                    [level] * len(patients), categories=["none", "past", "current"]
                )
            )
        )
        for level in ("none", "past", "current")
    }
    assert (logit["none"] > logit["past"]).all()
    assert (logit["past"] > logit["current"]).all()


def test_slow_wave_sleep_has_no_direct_effect() -> None:
    patients = simulate_cohort(200, seed=5)
    np.testing.assert_array_equal(
        response_logit(patients.assign(slow_wave_sleep_pct=2.0)),
        response_logit(patients.assign(slow_wave_sleep_pct=30.0)),
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n = 0"),
        ({"n": 2.5}, "n = 2.5"),
        ({"n": True}, "n = True"),
        ({"n": 10, "seed": -1}, "seed = -1"),
        ({"n": 10, "seed": "7"}, "seed = '7'"),
    ],
    ids=["zero", "fraction", "bool", "negative-seed", "text-seed"],
)
def test_simulate_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=match):
        simulate_cohort(n, **kwargs)
