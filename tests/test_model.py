"""The additive model: feature map, exact contributions, directions, missing fields, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import BSpline
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from data_schemas import FIELDS_BY_NAME
from predictor import load_model
from predictor.model._additive import (
    MAX_ROWS_PER_PATIENT,
    fit_additive_model,
    patient_groups,
    placeholder_rows,
)
from predictor.model._artifact import model_to_json
from predictor.model._features import (
    MIN_MISSING_TO_LEARN,
    MODEL_FIELDS,
    SPLINE_DEGREE,
    FeatureMap,
    model_scale,
    smoothness_transform,
)
from predictor.simulation._synthetic import simulate_cohort


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return simulate_cohort(3000, seed=11)


@pytest.fixture(scope="module")
def small_model(cohort: pd.DataFrame):
    model, _ = fit_additive_model(cohort, cohort["responded"].to_numpy(), smoothing=10.0)
    return model


@pytest.fixture(scope="module")
def shipped():
    return load_model()


@pytest.mark.parametrize("name", ["bdnf_ng_ml", "crp_mg_l", "failed_antidepressant_trials"])
def test_feature_map_spline_basis_matches_scipy_design_matrix(cohort, name: str) -> None:
    term = FeatureMap.fit(cohort).terms[MODEL_FIELDS.index(name)]
    values = cohort[name].dropna().to_numpy()
    ours = term.block(values)[:, : term.n_basis] @ np.linalg.inv(term.transform)
    x = model_scale(name, values)
    reference = BSpline.design_matrix(x, term.knots, SPLINE_DEGREE).toarray()
    assert np.allclose(ours, reference, atol=1e-12)


def test_feature_map_measured_spline_rows_span_a_constant(cohort: pd.DataFrame) -> None:
    # B-splines sum to one; through the transform that is the "level" column alone.
    features = FeatureMap.fit(cohort)
    for term, columns in zip(features.terms, features.slices, strict=True):
        if term.is_spline:
            measured = cohort[term.field].notna().to_numpy()
            block = features.design(cohort)[measured, columns][:, : term.n_basis]
            basis = block @ np.linalg.inv(term.transform)
            assert np.allclose(basis.sum(axis=1), 1.0), term.field


def test_smoothness_transform_turns_ridge_into_second_difference_penalty() -> None:
    transform = smoothness_transform(9)
    difference = np.diff(np.eye(9), n=2, axis=0)
    theta = np.random.default_rng(0).normal(size=9)
    beta = transform @ theta
    assert np.isclose(np.sum((difference @ beta) ** 2), np.sum(theta[2:] ** 2))


def test_feature_map_learns_a_missing_term_only_with_enough_missing_patients(
    cohort: pd.DataFrame,
) -> None:
    features = FeatureMap.fit(cohort)
    for term in features.terms:
        n_missing = int(cohort[term.field].isna().sum())
        assert term.learned_missing == (n_missing >= MIN_MISSING_TO_LEARN), term.field


def test_feature_map_values_outside_training_range_are_held_at_the_edge(
    small_model,
) -> None:
    term = small_model.features.terms[MODEL_FIELDS.index("crp_mg_l")]
    low, high = term.value_range
    edge = term.block(np.array([low, high]))
    beyond = term.block(np.array([low / 2, high * 1.5]))
    assert np.array_equal(edge, beyond)


@pytest.mark.parametrize("which", ["small", "shipped"])
def test_contributions_add_up_to_the_logit_for_every_patient(
    which: str, small_model, shipped
) -> None:
    model = small_model if which == "small" else shipped
    patients = simulate_cohort(2000, seed=99)  # many with missing biomarkers
    patients.loc[::7, ["age_years", "sex", "route", "substance_use_disorder"]] = np.nan
    design = model.features.design(patients)
    scores = model.score(design)
    # The logit of the linear model itself, computed without the term bookkeeping.
    direct = model.intercept + design @ model.coef
    assert np.allclose(model.baseline + scores.contributions.sum(axis=1), direct, atol=1e-9)
    assert np.allclose(logit(scores.probability), direct, atol=1e-9)


def test_model_probability_is_scikit_learns_fit_on_the_same_design(cohort, small_model) -> None:
    design = small_model.features.design(cohort)
    reference = LogisticRegression(
        C=1 / 10.0,
        solver="newton-cholesky",
        tol=1e-8,
        max_iter=200,  # smoothing 10 everywhere
    ).fit(design, cohort["responded"].to_numpy())
    patients = simulate_cohort(500, seed=98)
    ours = small_model.score(small_model.features.design(patients)).probability
    theirs = reference.predict_proba(small_model.features.design(patients))[:, 1]
    assert np.allclose(ours, theirs, atol=1e-9)


def test_covariance_is_the_inverse_penalised_hessian_plus_a_correction(cohort, small_model) -> None:
    design = small_model.features.design(cohort)
    y = cohort["responded"].to_numpy()
    full = np.hstack([np.ones((len(design), 1)), design])
    p = expit(full @ np.r_[small_model.intercept, small_model.coef])
    penalty = np.r_[0.0, np.full(design.shape[1], 10.0)]  # small_model's smoothing
    gradient = full.T @ (y - p) - penalty * np.r_[small_model.intercept, small_model.coef]
    fitted = np.ones(len(gradient), dtype=bool)  # not a level no training patient had: its
    for term, columns in zip(small_model.features.terms, small_model.features.slices, strict=True):
        for level in term.unseen_levels:  # zero column's coefficient is set after the fit
            fitted[1 + columns.start + term.levels.index(level)] = False
    assert not fitted.all()  # the routes the simulator does not give
    assert np.abs(gradient[fitted]).max() < 1e-4  # the penalised likelihood's optimum
    hessian = full.T @ (full * (p * (1 - p))[:, None]) + np.diag(penalty)
    # The covariance is the posterior one, the inverse penalised Hessian, plus a positive
    # semi-definite correction for the smoothing parameters' uncertainty.
    correction = small_model.covariance - np.linalg.inv(hessian)
    assert np.linalg.eigvalsh((correction + correction.T) / 2).min() > -1e-10
    assert np.abs(correction).max() > 1e-8
    scores = small_model.score(design[:50])
    se = np.sqrt(np.einsum("ij,jk,ik->i", full[:50], small_model.covariance, full[:50]))
    assert np.allclose(logit(scores.high) - scores.logit, 1.6448536269514722 * se, atol=1e-9)
    assert np.allclose(scores.logit - logit(scores.low), 1.6448536269514722 * se, atol=1e-9)


def test_contributions_are_centred_on_the_training_data(cohort: pd.DataFrame, small_model) -> None:
    scores = small_model.score(small_model.features.design(cohort))
    assert np.allclose(scores.contributions.mean(axis=0), 0.0, atol=1e-12)


def test_field_never_missing_in_training_contributes_zero_when_missing(small_model) -> None:
    no_age = {"age_years": np.array([np.nan])}
    term = small_model.features.terms[MODEL_FIELDS.index("age_years")]
    assert not term.learned_missing
    j = MODEL_FIELDS.index("age_years")
    value = term.block(no_age["age_years"]) @ small_model.coef[small_model.features.slices[j]]
    assert value[0] - small_model.term_means[j] == pytest.approx(0.0, abs=1e-12)


def test_interval_contains_the_probability_and_is_narrower_with_more_data(cohort) -> None:
    y = cohort["responded"].to_numpy()
    small, _ = fit_additive_model(cohort.iloc[:600], y[:600], smoothing=33.0)
    large, _ = fit_additive_model(cohort, y, smoothing=33.0)
    test = simulate_cohort(500, seed=12)
    widths = []
    for model in (small, large):
        scores = model.score(model.features.design(test))
        assert np.all((scores.low < scores.probability) & (scores.probability < scores.high))
        widths.append(np.median(scores.high - scores.low))
    assert widths[1] < widths[0]


BASE_PATIENT = {
    "age_years": 45.0,
    "sex": "female",
    "bmi_kg_m2": 29.0,
    "baseline_madrs": 32.0,
    "failed_antidepressant_trials": 3.0,
    "route": "iv_ketamine",
    "crp_mg_l": 1.5,
    "bdnf_ng_ml": 22.0,
    "delta_sleep_ratio": 1.2,
    "slow_wave_sleep_pct": 10.0,
    "rhythm_relative_amplitude": 0.75,
    "rhythm_interdaily_stability": 0.5,
    "substance_use_disorder": "none",
    "family_history_alcohol_use_disorder": 0.0,
}

BETTER_THAN = [  # (field, value with the higher predicted chance, value with the lower)
    ("crp_mg_l", 0.5, 6.0),
    ("bdnf_ng_ml", 32.0, 14.0),
    ("rhythm_relative_amplitude", 0.88, 0.6),
    ("substance_use_disorder", "none", "past"),
    ("substance_use_disorder", "past", "current"),
    ("family_history_alcohol_use_disorder", 1.0, 0.0),
    ("route", "iv_ketamine", "intranasal_esketamine"),
]


@pytest.mark.parametrize(
    ("field", "better", "worse"), BETTER_THAN, ids=[f"{f}={b}>{w}" for f, b, w in BETTER_THAN]
)
def test_shipped_model_directions_match_the_literature(shipped, field, better, worse) -> None:
    def probability(value) -> float:
        patient = {
            name: np.array([v], dtype=object if isinstance(v, str) else float)
            for name, v in {**BASE_PATIENT, field: value}.items()
        }
        return float(shipped.score(shipped.features.design(patient)).probability[0])

    assert probability(better) > probability(worse)


@pytest.mark.slow
def test_fit_is_deterministic(cohort: pd.DataFrame, small_model) -> None:
    again, _ = fit_additive_model(cohort, cohort["responded"].to_numpy(), smoothing=10.0)
    assert model_to_json(again) == model_to_json(small_model)


def test_smoothing_is_chosen_by_marginal_likelihood(cohort: pd.DataFrame) -> None:
    y = cohort["responded"].to_numpy()
    model, report = fit_additive_model(cohort, y)
    assert report.selected and report.converged
    assert dict(zip(report.blocks, report.smoothing, strict=True)) == model.smoothing
    assert dict(zip(report.blocks, report.edf, strict=True)) == model.edf
    # Any other smoothing has a lower LAML: every block 10 times smoother or rougher.
    for factor in (0.1, 10.0):
        given = {name: value * factor for name, value in model.smoothing.items()}
        _, other = fit_additive_model(cohort, y, smoothing=given)
        assert not other.selected
        assert other.laml < report.laml


@pytest.mark.parametrize("n_missing", [MIN_MISSING_TO_LEARN - 1, MIN_MISSING_TO_LEARN])
def test_feature_map_missing_threshold_is_exact(cohort: pd.DataFrame, n_missing: int) -> None:
    patients = cohort.copy()
    patients["age_years"] = patients["age_years"].astype(float)
    patients.loc[patients.index[:n_missing], "age_years"] = np.nan
    term = FeatureMap.fit(patients).terms[MODEL_FIELDS.index("age_years")]
    assert term.learned_missing == (n_missing >= MIN_MISSING_TO_LEARN)
    assert term.columns[-1].endswith("=missing") == term.learned_missing


@pytest.mark.parametrize(
    ("values", "codes"),
    [
        (np.array([1.0, 0.0, np.nan]), [1, 0, -1]),
        (np.array(["yes", "no", None], dtype=object), [1, 0, -1]),
        (pd.Series([1.0, np.nan]), [1, -1]),
    ],
    ids=["float", "text", "series"],
)
def test_term_codes_reads_boolean_input_types(cohort, values, codes) -> None:
    term = FeatureMap.fit(cohort).terms[MODEL_FIELDS.index("family_history_alcohol_use_disorder")]
    assert term.codes(values).tolist() == codes


def test_term_codes_refuses_a_boolean_code_other_than_0_or_1(cohort) -> None:
    term = FeatureMap.fit(cohort).terms[MODEL_FIELDS.index("family_history_alcohol_use_disorder")]
    with pytest.raises(ValueError, match="coded 0 or 1"):
        term.codes(np.array([0.0, 2.0]))


def test_term_code_of_one_value_is_what_codes_gives_it(shipped) -> None:
    # Term.code (one patient's value) and Term.codes (a column) read values alike: every
    # level, the schema's levels the model does not have, missing values and booleans' floats.
    for term in shipped.features.terms:
        if not term.levels:
            continue
        if term.levels == ("no", "yes"):
            values = [1.0, 0.0, np.nan]
        else:
            values = [*term.levels, *term.schema_only_levels, None, "not a level"]
        column = np.array(values, dtype=np.float64 if term.levels == ("no", "yes") else object)
        assert [term.code(v) for v in values] == term.codes(column).tolist(), term.field
    boolean = shipped.features.terms[MODEL_FIELDS.index("family_history_alcohol_use_disorder")]
    with pytest.raises(ValueError, match="coded 0 or 1"):
        boolean.code(2.0)


def test_category_codes_read_categorical_and_text_alike(cohort) -> None:
    term = FeatureMap.fit(cohort).terms[MODEL_FIELDS.index("route")]
    text = np.array(["intranasal_esketamine", "iv_ketamine", None], dtype=object)
    categorical = pd.Categorical(text, categories=list(term.levels))
    assert term.codes(text).tolist() == term.codes(categorical).tolist() == [1, 0, -1]


def test_feature_map_records_the_levels_seen_in_training(cohort: pd.DataFrame) -> None:
    one_route = cohort[cohort["route"] == "intranasal_esketamine"].copy()
    one_route["family_history_alcohol_use_disorder"] = 0.0  # a boolean: "no" only
    features = FeatureMap.fit(one_route)
    route = features.terms[MODEL_FIELDS.index("route")]
    family = features.terms[MODEL_FIELDS.index("family_history_alcohol_use_disorder")]
    others = tuple(level for level in route.levels if level != "intranasal_esketamine")
    assert (route.seen_levels, route.unseen_levels) == (("intranasal_esketamine",), others)
    assert route.levels == FIELDS_BY_NAME["route"].levels  # a term has the schema's levels
    assert (family.seen_levels, family.unseen_levels) == (("no",), ("yes",))
    new_routes = ("intramuscular_ketamine", "oral_ketamine", "sublingual_ketamine")
    for term in FeatureMap.fit(cohort).terms:  # every level seen but the routes not simulated
        assert term.unseen_levels == (new_routes if term.field == "route" else ())
        assert term.seen_levels == tuple(v for v in term.levels if v not in term.unseen_levels)


def test_unseen_level_gets_the_mean_term_and_nothing_else_changes(cohort: pd.DataFrame) -> None:
    one_route = cohort[cohort["route"] == "iv_ketamine"]
    y = one_route["responded"].to_numpy()
    model, _ = fit_additive_model(one_route, y, smoothing=10.0)
    j = MODEL_FIELDS.index("route")
    unseen = model.features.slices[j].start + model.features.terms[j].levels.index(
        "intranasal_esketamine"
    )
    assert model.coef[unseen] == model.term_means[j]  # so its contribution is exactly 0
    design = model.features.design(one_route)
    reference = LogisticRegression(C=0.1, solver="newton-cholesky", tol=1e-8, max_iter=200).fit(
        design, y
    )
    ours = model.score(design).probability
    assert np.allclose(ours, reference.predict_proba(design)[:, 1], atol=1e-9)


def test_additive_model_implements_the_model_protocol(small_model) -> None:
    from predictor import Model

    assert isinstance(small_model, Model)
    assert small_model.kind == "additive"
    summary = small_model.summary()
    assert summary.coefficients == len(small_model.features.columns)
    assert summary.settings["edf_total"] == round(sum(small_model.edf.values()), 2)
    with pytest.raises(TypeError):
        summary.settings["edf_total"] = 1.0  # a read-only mapping


def test_term_contribution_is_the_scores_contribution(cohort, small_model) -> None:
    design = small_model.features.design(cohort.iloc[:200])
    scores = small_model.score(design)
    for j, columns in enumerate(small_model.features.slices):
        assert np.allclose(
            small_model.term_contribution(j, design[:, columns]),
            scores.contributions[:, j],
            rtol=0,
            atol=1e-12,
        )


def test_fit_on_some_fields_gives_a_model_of_those_fields(cohort) -> None:
    fields = ("route", "crp_mg_l", "age_years")
    model, _ = fit_additive_model(
        cohort, cohort["responded"].to_numpy(), smoothing=10.0, fields=fields
    )
    assert model.fields == fields
    scores = model.score(model.features.design(cohort))
    assert scores.contributions.shape == (len(cohort), 3)
    assert np.allclose(scores.logit, model.baseline + scores.contributions.sum(axis=1))


@pytest.mark.parametrize(
    "fields",
    [(), ("route", "route"), ("patient_id",), ("history_of_psychosis",), ("shoe_size",)],
    ids=["none", "twice", "id", "safety", "unknown"],
)
def test_feature_map_fit_refuses_fields_that_are_not_predictors(cohort, fields) -> None:
    with pytest.raises(ValueError, match="must be predictor fields of the schema, each once"):
        FeatureMap.fit(cohort, fields=fields)


def test_a_small_cohort_chooses_its_smoothing_structure_by_cross_validation(tmp_path) -> None:
    from predictor.model import load_model, save_model

    cohort = simulate_cohort(300, seed=5)
    y = cohort["responded"].to_numpy()
    model, report = fit_additive_model(cohort, y)
    losses = report.structure_log_loss
    assert losses is not None and set(losses) == {"per term", "pooled"}
    assert report.structure == model.structure == min(losses, key=losses.__getitem__)
    pooled, pooled_report = fit_additive_model(cohort, y, structure="pooled")
    assert pooled_report.structure_log_loss is None  # given, not chosen
    assert set(pooled.smoothing) == {"all:wiggles", "all:null"}
    assert "too small to support one per term" in pooled.summary().details
    # The block names say the structure; the file keeps it; a refit keeps it.
    again, _ = fit_additive_model(cohort, y, smoothing=dict(pooled.smoothing))
    assert again.structure == "pooled"
    np.testing.assert_allclose(again.coef, pooled.coef, atol=1e-8)
    save_model(pooled, tmp_path / "m", {"note": "test"})
    loaded = load_model(tmp_path / "m")
    assert loaded.structure == "pooled" and loaded.smoothing == pooled.smoothing
    assert pooled.refit(cohort.iloc[:200], y[:200], seed=0).structure == "pooled"


def test_pooled_smoothing_penalises_the_null_space_on_the_standardised_scale() -> None:
    # One smoothing parameter for every slope, category level and "not measured" column is a
    # ridge: it penalises each column on its standardised scale (the diagonal of the columns'
    # variances), so a field whose range is wide for its SD is not shrunk hardest. On 150
    # patients (seed 0) the unscaled pooled ridge switched every term off (a flat model, SD of
    # predictions 0.0001, Brier 0.2508 on a fresh cohort); scaled it keeps about 5 effective
    # parameters (Brier 0.2466).
    from predictor.model._fitter import POOLED, term_penalties

    cohort = simulate_cohort(150, seed=0)
    y = cohort["responded"].to_numpy()
    features = FeatureMap.fit(cohort)
    design = features.design(cohort)
    names, blocks = term_penalties(features, POOLED, design)
    null = blocks[names.index("all:null")]
    variance = design[:, null.columns].var(axis=0)
    assert null.matrix is not None
    np.testing.assert_allclose(np.diag(null.matrix), np.where(variance > 1e-12, variance, 1.0))
    assert term_penalties(features, POOLED)[1][names.index("all:null")].matrix is None
    model, _ = fit_additive_model(cohort, y, structure="pooled")
    assert model.score(design).probability.std() > 0.01


def test_a_large_cohort_keeps_one_smoothing_parameter_per_term(small_model) -> None:
    from predictor.model._additive import STRUCTURE_CHECK_ROWS

    assert small_model.structure == "per term"
    cohort = simulate_cohort(STRUCTURE_CHECK_ROWS + 1, seed=3)
    _, report = fit_additive_model(cohort, cohort["responded"].to_numpy())
    assert report.structure == "per term" and report.structure_log_loss is None


def test_patient_groups_read_missing_words_and_placeholders_as_no_patient() -> None:
    ids = ["A", "A", "NA", "na", "unknown", "-", "", None, *["REDACTED"] * 21, "B", "C"]
    clean = pd.DataFrame({"patient_id": ids})
    groups = patient_groups(clean)
    assert groups is not None
    assert groups[0] == groups[1]  # one patient, twice
    assert len(set(groups.tolist())) == len(ids) - 1  # every other row a patient of its own
    placeholder = placeholder_rows(clean)
    assert placeholder.tolist() == [False] * 8 + [True] * 21 + [False, False]
    # the same words alone, and a placeholder alone: no repeats, no grouping
    assert patient_groups(pd.DataFrame({"patient_id": ["NA", "n/a", "NA", "x"]})) is None
    assert patient_groups(pd.DataFrame({"patient_id": ["0"] * (MAX_ROWS_PER_PATIENT + 1)})) is None
    twenty = pd.DataFrame({"patient_id": ["P"] * MAX_ROWS_PER_PATIENT + ["Q"]})
    assert not placeholder_rows(twenty).any()  # at most MAX_ROWS_PER_PATIENT: a patient
