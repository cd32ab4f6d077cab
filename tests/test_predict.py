"""predict(): the Prediction of one record, the scored table, reasons, warnings and errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from data_schemas import (
    FIELDS,
    FIELDS_BY_NAME,
    Field,
    Kind,
    Reason,
    Role,
    SchemaError,
    validate,
    validate_record,
)
from predictor import Prediction, load_model, predict
from predictor._explain import (
    NOTE_SEPARATOR,
    SAFETY_FIELDS,
    TEXT,
    Notes,
    _reasons,
    _top_order,
    join_notes,
    notes_for,
    reason_notes,
    record_reasons,
    record_warnings,
    warning_notes,
)
from predictor._scoring import OUTPUT_COLUMNS
from predictor.model._additive import AdditiveModel, fit_additive_model
from predictor.model._features import Encoded
from predictor.simulation._synthetic import simulate_cohort

PATIENT = json.loads(
    (Path(__file__).resolve().parents[1] / "examples" / "patient.json").read_text()
)


ROUTES = FIELDS_BY_NAME["route"].levels
NEW_ROUTES = ROUTES[2:]
"""The routes the schema gained after the shipped model was fitted (it knows IV and
intranasal only)."""


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def test_predict_record_gives_a_full_prediction() -> None:
    p = predict(PATIENT)
    assert isinstance(p, Prediction)
    assert 0.0 < p.interval[0] < p.probability < p.interval[1] < 1.0
    assert set(p.contributions) == set(load_model().fields)
    assert p.baseline + sum(p.contributions.values()) == pytest.approx(
        _logit(p.probability), abs=1e-9
    )
    assert p.label == ("likely responder" if p.probability >= 0.5 else "unlikely responder")
    assert 1 <= len(p.reasons) <= 3
    assert p.warnings == ()  # everything measured, in range, no safety flag


def test_predict_to_dict_is_json_serialisable_and_complete() -> None:
    d = predict(PATIENT).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {
        "probability",
        "interval",
        "label",
        "contributions",
        "baseline",
        "reasons",
        "warnings",
    }


def test_prediction_is_frozen() -> None:
    p = predict(PATIENT)
    with pytest.raises(AttributeError):
        p.probability = 0.9  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.contributions["crp_mg_l"] = 9.0  # type: ignore[index]


def test_reasons_follow_the_largest_contributions_in_order() -> None:
    p = predict(PATIENT)
    top = sorted(p.contributions, key=lambda f: -abs(p.contributions[f]))[: len(p.reasons)]
    words = {"crp_mg_l": "CRP 0.9 mg/L", "family_history_alcohol_use_disorder": "family history"}
    for field, reason in zip(top, p.reasons, strict=True):
        effect = "raises" if p.contributions[field] > 0 else "lowers"
        if "not measured" in reason:
            effect = "goes with a higher" if p.contributions[field] > 0 else "goes with a lower"
        assert reason.endswith(f"{effect} the chance of response")
        if field in words:
            assert words[field] in reason


def test_reason_names_the_value_and_unit_with_clinical_crp_wording() -> None:
    low = predict({"crp_mg_l": 0.9, "route": "iv_ketamine"})
    assert "Low inflammation (CRP 0.9 mg/L) raises the chance of response" in low.reasons
    high = predict({"crp_mg_l": 12, "route": "iv_ketamine"})
    assert "High inflammation (CRP 12 mg/L) lowers the chance of response" in high.reasons


@pytest.mark.parametrize(
    ("trials", "words"),
    [(2, "Few failed"), (4, "Several failed"), (5, "Many failed")],
    ids=["lowest-is-low", "middle", "high"],
)
def test_reason_buckets_reach_low_when_the_first_cut_is_the_training_minimum(
    trials: int, words: str
) -> None:
    term = load_model().features.terms[load_model().fields.index("failed_antidepressant_trials")]
    assert term.tertiles[0] == term.value_range[0]  # the case this test is about
    reasons = predict({"failed_antidepressant_trials": trials}).reasons
    assert any(r.startswith(f"{words} antidepressants ({trials} failed trials)") for r in reasons)


def test_reason_for_a_field_not_measured_is_worded_as_an_association() -> None:
    p = predict({"crp_mg_l": 0.9})
    missing = [r for r in p.reasons if "not measured" in r]
    assert missing, p.reasons
    for reason in missing:
        assert reason.endswith(
            ("goes with a higher chance of response", "goes with a lower chance of response")
        )


def test_missing_fields_are_warned_about_and_never_rejected() -> None:
    p = predict({"crp_mg_l": 0.9})
    text = " | ".join(p.warnings)
    assert "age not measured: the training average was assumed" in text
    assert "polysomnography not recorded (delta sleep ratio and slow-wave sleep" in text
    assert p.contributions["age_years"] == pytest.approx(0.0, abs=1e-12)


def test_a_key_that_resembles_a_field_is_named_in_a_warning_never_read() -> None:
    # Cyrillic Es and o: the values are not read (never a guess), but not silently either
    record = {"\u0421RP (mg/L)": 40, "r\u043eute": "iv", "Site": "York"}
    p = predict(record)
    assert p.contributions["crp_mg_l"] == predict({}).contributions["crp_mg_l"]
    unread = [w for w in p.warnings if w.startswith("not used: ")]
    assert len(unread) == 2
    assert "resembles crp_mg_l" in unread[0] and "resembles route" in unread[1]
    assert "40" not in " ".join(unread)  # names the key, never the value
    assert not any("Site" in w for w in p.warnings)  # an unknown key that resembles nothing
    with pytest.warns(UserWarning) as caught:
        table = predict(pd.DataFrame([record]))
    assert [str(w.message) for w in caught] == unread and len(table) == 1


def test_empty_record_predicts_the_model_from_missing_terms() -> None:
    p = predict({})
    assert 0.0 < p.probability < 1.0
    assert p.baseline + sum(p.contributions.values()) == pytest.approx(
        _logit(p.probability), abs=1e-9
    )


def test_value_outside_training_range_is_warned_and_held_at_the_edge() -> None:
    model = load_model()
    high = model.features.terms[model.fields.index("crp_mg_l")].value_range[1]
    at_edge = predict({**PATIENT, "crp_mg_l": high})
    beyond = predict({**PATIENT, "crp_mg_l": 499})
    assert beyond.contributions["crp_mg_l"] == at_edge.contributions["crp_mg_l"]
    assert any("CRP 499 is above the range seen in training" in w for w in beyond.warnings)


@pytest.mark.parametrize(
    "flag",
    [
        "history_of_psychosis",
        "uncontrolled_hypertension",
        "cardiovascular_disease",
        "current_naltrexone",
    ],
)
def test_safety_flag_raises_a_warning_first_and_does_not_change_the_probability(flag) -> None:
    flagged = predict({**PATIENT, flag: "yes"})
    assert flagged.warnings[0].startswith("safety screen: ")
    assert flagged.probability == predict(PATIENT).probability
    assert predict({**PATIENT, flag: "no"}).warnings == ()


def test_aliases_and_units_give_the_same_prediction() -> None:
    canonical = predict({"crp_mg_l": 2.5, "bdnf_ng_ml": 20.0, "route": "iv_ketamine"})
    spelled = predict({"CRP (mg/dL)": "0.25", "bdnf_pg_ml": 20000, "Route": "IV"})
    assert spelled.probability == pytest.approx(canonical.probability, abs=1e-12)


def test_bad_record_raises_schema_error_listing_every_problem() -> None:
    with pytest.raises(SchemaError) as caught:
        predict({"crp_mg_l": "high", "age_years": 12, "route": "subcutaneous"})
    reasons = sorted(p.reason for p in caught.value.problems)
    assert reasons == sorted([Reason.NOT_A_NUMBER, Reason.OUT_OF_RANGE, Reason.UNKNOWN_LEVEL])


@pytest.mark.parametrize("bad", [[PATIENT], "crp_mg_l=1", 3], ids=["list", "str", "int"])
def test_predict_refuses_other_input_types(bad) -> None:
    with pytest.raises(TypeError, match=r"^predict\(\): patients = .* must be a mapping \(one"):
        predict(bad)


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    cohort = simulate_cohort(300, seed=42)
    return cohort.drop(columns=["responded", "true_probability"])


def test_predict_frame_matches_predict_record_row_by_row(patients: pd.DataFrame) -> None:
    table = predict(patients, explain=True)
    model = load_model()
    assert list(table.columns[: len(OUTPUT_COLUMNS)]) == list(OUTPUT_COLUMNS)
    for i in range(0, len(patients), 37):
        record = {k: v for k, v in patients.iloc[i].to_dict().items() if not pd.isna(v)}
        single = predict(record)
        row = table.iloc[i]
        assert row["response_probability"] == pytest.approx(single.probability, abs=1e-12)
        assert row["probability_low"] == pytest.approx(single.interval[0], abs=1e-12)
        assert row["predicted_label"] == single.label
        assert row["top_reasons"] == NOTE_SEPARATOR.join(single.reasons)
        assert row["warnings"] == NOTE_SEPARATOR.join(single.warnings)
        for field in model.fields:
            assert row[f"contribution_{field}"] == pytest.approx(
                single.contributions[field], abs=1e-12
            )


def test_predict_frame_contributions_add_up(patients: pd.DataFrame) -> None:
    table = predict(patients, explain=True)
    contributions = table.filter(like="contribution_").sum(axis=1)
    logit = np.log(table["response_probability"] / (1 - table["response_probability"]))
    assert np.allclose(load_model().baseline + contributions, logit, atol=1e-9)


def test_predict_frame_ignores_column_order_and_keeps_the_index(patients) -> None:
    shuffled = patients[patients.columns[::-1]].set_axis(
        pd.Index([f"r{i}" for i in range(len(patients))])
    )
    table = predict(shuffled)
    assert list(table.index) == list(shuffled.index)
    assert np.array_equal(
        table["response_probability"].to_numpy(),
        predict(patients)["response_probability"].to_numpy(),
    )


def test_predict_frame_with_a_bad_row_raises_schema_error_naming_it(patients) -> None:
    bad = patients.astype(object)
    bad.loc[5, "crp_mg_l"] = "n/a mg"
    with pytest.raises(SchemaError, match="crp_mg_l") as caught:
        predict(bad)
    assert [p.row for p in caught.value.problems] == [5]


def test_predict_frame_carries_unknown_columns_through(patients: pd.DataFrame) -> None:
    table = predict(patients.assign(Site="Leeds", note=range(len(patients))), explain=True)
    assert list(table.columns[-2:]) == ["Site", "note"]
    assert table["note"].tolist() == list(range(len(patients)))


def test_predict_frame_without_patient_id_numbers_the_rows_from_1(patients) -> None:
    unnamed = patients.drop(columns=["patient_id"])
    unnamed.index = [f"r{i}" for i in range(len(unnamed))]
    table = predict(unnamed)
    assert table["patient_id"].tolist() == list(range(1, len(patients) + 1))
    assert list(table.index) == list(unnamed.index)


def test_predict_frame_keeps_responded_after_the_scores_and_before_unknown_columns() -> None:
    cohort = simulate_cohort(50, seed=5).drop(columns=["true_probability"])
    table = predict(cohort.assign(Site="York"))
    assert list(table.columns[len(OUTPUT_COLUMNS) :]) == ["responded", "Site"]
    assert table["responded"].tolist() == cohort["responded"].tolist()


def test_predict_frame_without_responded_does_not_add_one(patients) -> None:
    assert "responded" not in predict(patients).columns


def test_predict_frame_carries_a_repeated_unknown_column_once_under_a_unique_name() -> None:
    frame = pd.DataFrame(
        [["K-1", "a", "0.9", "b"]], columns=["patient_id", "note", "crp_mg_l", "note"]
    )
    table = predict(frame)
    assert list(table.columns[len(OUTPUT_COLUMNS) :]) == ["note", "note_input"]
    assert table.iloc[0, len(OUTPUT_COLUMNS) :].tolist() == ["a", "b"]


@st.composite
def _notes_and_texts(draw: st.DrawFn) -> tuple[list[Notes], list[list[str]], int]:
    """Notes for ``n`` patients (each one text for everyone, or a text of its own for each
    patient from distinct texts that notes may share) and each patient's texts, in order."""
    n = draw(st.integers(0, 12))
    some_texts = st.lists(st.text(max_size=6), min_size=1, max_size=4)
    shared = draw(some_texts)
    shared_array = pa.array(shared, type=TEXT)
    notes, texts = [], [[] for _ in range(n)]
    for _ in range(draw(st.integers(0, 8))):
        mask = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        kind = draw(st.sampled_from(["constant", "own", "shared"]))
        if kind == "constant":
            distinct = draw(some_texts)[:1]
            which = [0] * n
            note = Notes(np.array(mask, dtype=bool), pa.array(distinct, type=TEXT))
        else:
            distinct = shared if kind == "shared" else draw(some_texts)
            which = draw(st.lists(st.integers(0, len(distinct) - 1), min_size=n, max_size=n))
            array = shared_array if kind == "shared" else pa.array(distinct, type=TEXT)
            note = Notes(np.array(mask, dtype=bool), array, np.array(which, dtype=np.intp))
        notes.append(note)
        for i in range(n):
            if mask[i]:
                texts[i].append(distinct[which[i]])
    return notes, texts, n


@given(case=_notes_and_texts(), separator=st.sampled_from([NOTE_SEPARATOR, ", ", ""]))
def test_join_notes_equals_joining_each_patients_texts_one_by_one(
    case: tuple[list[Notes], list[list[str]], int], separator: str
) -> None:
    # join_notes joins every patient's texts in Arrow at once; it must give exactly what
    # str.join of each patient's own texts gives ("" for none), and notes_for those texts.
    notes, texts, n = case
    joined = join_notes(notes, n, separator)
    assert joined.type == TEXT and joined.null_count == 0
    assert joined.to_pylist() == [separator.join(row) for row in texts]
    assert [list(notes_for(notes, i)) for i in range(n)] == texts


def test_join_notes_gives_an_empty_text_to_a_patient_without_notes() -> None:
    # (pyarrow's binary_join_element_wise with null_handling="skip" drops such rows)
    only_first = Notes(np.array([True, False, False]), pa.array(["a"], type=TEXT))
    assert join_notes([only_first], 3).to_pylist() == ["a", "", ""]
    assert join_notes([], 3).to_pylist() == ["", "", ""]


def test_top_order_breaks_ties_as_a_stable_sort_does() -> None:
    rng = np.random.default_rng(8)
    contributions = rng.choice([-0.5, -0.2, 0.0, 0.2, 0.5], size=(1000, 14))  # many ties
    stable = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :3]
    assert np.array_equal(_top_order(contributions, 3), stable)


# ------------------------------------------------- levels never seen, and the cells' separator


@pytest.fixture(scope="module")
def narrow_model() -> AdditiveModel:
    """A model from a cohort with one route only, no current substance-use disorder, no BDNF
    and one slow-wave-sleep value: unseen levels and unused fields, fitted in about a second."""
    cohort = simulate_cohort(3000, seed=5)
    cohort = cohort[cohort["route"] == "iv_ketamine"].copy()
    use = cohort["substance_use_disorder"].astype(object)
    cohort["substance_use_disorder"] = use.where(use != "current", "past")
    cohort["bdnf_ng_ml"] = np.nan
    cohort["slow_wave_sleep_pct"] = cohort["slow_wave_sleep_pct"].where(
        cohort["slow_wave_sleep_pct"].isna(), 12.0
    )
    model, _ = fit_additive_model(cohort, cohort["responded"].to_numpy(), smoothing=10.0)
    return model


UNSEEN = "was not seen when this model was trained: its "


def test_unseen_level_is_warned_after_out_of_range_values_and_contributes_zero(
    narrow_model: AdditiveModel,
) -> None:
    route = narrow_model.features.terms[narrow_model.fields.index("route")]
    assert route.seen_levels == ("iv_ketamine",)
    assert route.unseen_levels == ROUTES[1:]  # fitted on today's schema: all its levels
    p = predict(
        {"route": "intranasal_esketamine", "substance_use_disorder": "current", "age_years": 99},
        model=narrow_model,
    )
    expected = [
        f"route = intranasal_esketamine {UNSEEN}route term is that of an average training "
        "patient (contribution 0), and the interval does not cover what this route changes",
        f"substance-use disorder = current {UNSEEN}substance-use disorder term is that of an "
        "average training patient (contribution 0), and the interval does not cover what this "
        "substance-use disorder changes",
    ]
    assert list(p.warnings[-2:]) == expected
    assert "is above the range seen in training" in p.warnings[-3]  # out of range: before
    assert p.contributions["route"] == 0.0
    assert p.contributions["substance_use_disorder"] == 0.0
    assert not any(r.startswith(("Intranasal", "A current")) for r in p.reasons)
    seen = predict({"route": "iv_ketamine", "substance_use_disorder": "past"}, model=narrow_model)
    assert not any(UNSEEN in w for w in seen.warnings)


def test_unseen_level_is_warned_in_a_scored_table_too(narrow_model: AdditiveModel) -> None:
    frame = pd.DataFrame({"route": ["iv_ketamine", "intranasal_esketamine", None]})
    warned = predict(frame, model=narrow_model)["warnings"].str.contains(UNSEEN, regex=False)
    assert warned.tolist() == [False, True, False]


def _every_message(model: AdditiveModel) -> set[str]:
    """Every reason and warning text ``model`` can give: each field's reasons for each level or
    value bucket and not measured, both directions; each warning template's every case."""
    texts = set()
    for j, term in enumerate(model.features.terms):
        if term.unused:
            continue
        if term.levels:
            values = np.array([*term.levels, None], dtype=object)
        else:
            low, high = term.value_range
            values = np.r_[np.linspace(low, high, 25), np.nan]
        for raises in (False, True):
            distinct, index = _reasons(model, j, values, np.full(len(values), raises))
            texts.update(distinct[k] for k in index.tolist())
    terms, n_terms = model.features.terms, len(model.features.terms)
    # Rows: all missing; each field alone missing; each number below, then above its range.
    missing = np.vstack([np.ones(n_terms, bool), np.eye(n_terms, dtype=bool)])
    outside = np.zeros((len(missing), n_terms), np.int8)
    spline = np.array([term.is_spline for term in terms])
    below, above = np.diag(-spline.astype(np.int8)), np.diag(spline.astype(np.int8))
    missing = np.vstack([missing, np.zeros((2 * n_terms, n_terms), bool)])
    outside = np.vstack([outside, below, above])
    n = len(missing)
    values: dict[str, np.ndarray] = {name: np.ones(n) for name in SAFETY_FIELDS}
    for j, term in enumerate(terms):
        if term.levels:  # every level, seen or not, and the schema's the model does not have
            levels = (*term.levels, *term.schema_only_levels)
            values[term.field] = np.resize(np.array(levels, dtype=object), n)
        elif term.is_spline:
            low, high = term.value_range
            column = np.full(n, (low + high) / 2)
            column[outside[:, j] < 0], column[outside[:, j] > 0] = low - 1.5, high + 2.5
            values[term.field] = column
        else:  # unused: a value given for it
            values[term.field] = np.full(n, 7.0)
    encoded = Encoded(np.zeros((n, 0)), missing, outside)
    for note in warning_notes(model, values, encoded):
        texts.update(note.texts.to_pylist())  # each made for some patient
    return texts


def test_no_message_contains_the_note_separator(narrow_model: AdditiveModel) -> None:
    shipped, narrow = _every_message(load_model()), _every_message(narrow_model)
    texts = shipped | narrow
    cautions = {f"safety screen: {f.caution}" for f in FIELDS if f.role is Role.SAFETY}
    assert cautions <= texts and any("; " in c for c in cautions)  # why "; " cannot serve
    kinds = ("not measured", "not recorded", "is not used by this model", "below the range",
             "above the range", "was not seen when this model was trained",
             " the chance of response")  # fmt: skip
    for kind in kinds:
        assert any(kind in text for text in texts), kind
    levels = sum(len(t.levels) for t in load_model().features.terms)
    assert len(shipped) > 2 * levels  # every level, both ways, and much more
    assert [text for text in texts if NOTE_SEPARATOR in text or not text] == []
    for field in FIELDS_BY_NAME.values():  # what the schema could put into a text
        if field.kind in (Kind.CATEGORY, Kind.BOOLEAN):
            assert not any(NOTE_SEPARATOR.strip() in level for level in field.levels)


def _with_every_warning(patients: pd.DataFrame) -> pd.DataFrame:
    """Patients with safety flags, missing fields, out-of-range values and every route."""
    frame = patients.iloc[:40].copy()
    for k, name in enumerate(SAFETY_FIELDS):
        frame[name] = np.where(np.arange(len(frame)) % (k + 2) == 0, "yes", "no")
    frame["route"] = np.resize(ROUTES, len(frame))
    frame["age_years"] = frame["age_years"].astype(float)
    frame.iloc[::3, frame.columns.get_loc("age_years")] = 99.0
    frame.iloc[::4, frame.columns.get_loc("crp_mg_l")] = np.nan
    return frame


@pytest.mark.parametrize("which", ["shipped", "narrow"])
def test_scored_cells_split_back_into_the_lists_of_predict_record(
    patients: pd.DataFrame, narrow_model: AdditiveModel, which: str
) -> None:
    model = load_model() if which == "shipped" else narrow_model
    frame = _with_every_warning(patients)
    table = predict(frame, model=model)
    assert table["warnings"].str.contains("; ").any()  # safety cautions are in cells
    for i in range(len(frame)):
        record = {k: v for k, v in frame.iloc[i].to_dict().items() if not pd.isna(v)}
        single = predict(record, model=model)
        for column, texts in (("warnings", single.warnings), ("top_reasons", single.reasons)):
            cell = table.iloc[i][column]
            assert (cell.split(NOTE_SEPARATOR) if cell else []) == list(texts), (i, column)


@pytest.mark.parametrize("ties", [False, True], ids=["measured", "tied"])
def test_one_patients_reasons_are_those_the_table_gives_that_patient(ties: bool) -> None:
    # record_reasons (predict(dict)) builds one patient's texts from Python values; they must
    # be the table's, ties included (the lower field index first).
    model = load_model()
    cohort = simulate_cohort(200, seed=23)
    values = {name: cohort[name].to_numpy() for name in model.fields}
    contributions = model.score(model.features.design(cohort)).contributions
    if ties:  # equal magnitudes, both signs, and some too small to be a reason
        rng = np.random.default_rng(1)
        contributions = rng.choice([-0.5, 0.5, 0.3, -0.3, 0.001], size=contributions.shape)
    table = reason_notes(model, values, contributions)
    for i in range(len(cohort)):
        record = validate_record(cohort.iloc[i].to_dict())
        alone = record_reasons(model, record, contributions[i].tolist())
        assert alone == notes_for(table, i)


@pytest.mark.parametrize("which", ["shipped", "narrow"])
def test_one_patients_warnings_are_those_the_table_gives_that_patient(
    patients: pd.DataFrame, narrow_model: AdditiveModel, which: str
) -> None:
    # record_warnings (predict(dict)) builds one patient's texts from Python values
    model = load_model() if which == "shipped" else narrow_model
    clean = validate(_with_every_warning(patients)).clean
    table = warning_notes(model, clean, model.features.encode(clean, sparse=True))
    for i in range(len(clean)):
        record = validate_record(clean.iloc[i].to_dict())
        encoded = model.features.encode({k: [v] for k, v in record.items()}, sparse=True)
        missing, outside = encoded.missing[0].tolist(), encoded.outside[0].tolist()
        assert record_warnings(model, record, missing, outside) == notes_for(table, i)


# ------------------------------------------------- levels the schema gained after the model


def _not_in_model(route: str, scored: str) -> str:
    return (
        f"route = {route} was not seen when this model was trained: {scored}, and the interval "
        "does not cover what this route changes"
    )


AVERAGE = "its route term is that of an average training patient (contribution 0)"
ROUTE_REASONS = ("IV ketamine", "Intranasal esketamine", "Intramuscular", "Oral", "Sublingual")


@pytest.mark.parametrize("route", NEW_ROUTES, ids=NEW_ROUTES)
def test_a_route_the_shipped_model_never_saw_contributes_zero_and_is_warned(route: str) -> None:
    model = load_model()
    term = model.features.terms[model.fields.index("route")]
    # no training patient had it: the model's level without patients, or a level it lacks
    assert route in term.unseen_levels or route in term.schema_only_levels
    record = {**PATIENT, "route": route}
    p = predict(record)
    without = predict({k: v for k, v in record.items() if k != "route"})
    assert p.contributions["route"] == 0.0
    assert p.warnings == (_not_in_model(route, AVERAGE),)  # nothing else: PATIENT is complete
    assert not any(r.startswith(ROUTE_REASONS) or "Route" in r for r in p.reasons)
    # the average patient's route term: the probability of a patient without a route; the
    # interval as wide or wider (a level the model has without patients keeps its column's
    # prior variance; one it lacks gets the missing row's)
    assert p.probability == without.probability
    assert p.interval[0] <= without.interval[0] and p.interval[1] >= without.interval[1]
    assert "route not measured: the training average was assumed" in without.warnings


def test_iv_and_intranasal_score_as_before_beside_the_new_routes() -> None:
    # the shipped model's own levels are untouched by the schema's new ones
    for route, sign in (("iv_ketamine", 1.0), ("intranasal_esketamine", -1.0)):
        p = predict({**PATIENT, "route": route})
        assert math.copysign(1.0, p.contributions["route"]) == sign
        assert p.warnings == ()


def test_new_routes_in_a_table_contribute_zero_and_are_warned_row_by_row() -> None:
    spelled = ["IV", "esketamine", "IM", "PO", "troche", None, "Sublingual"]
    canonical = [*ROUTES[:2], ROUTES[2], ROUTES[3], ROUTES[4], None, ROUTES[4]]
    frame = pd.DataFrame([{**PATIENT, "route": route} for route in spelled])
    table = predict(frame, explain=True)
    for i, route in enumerate(canonical):
        warned = route in NEW_ROUTES
        assert (table["contribution_route"].iloc[i] == 0.0) == (warned or route is None)
        expected = _not_in_model(route, AVERAGE) if warned else ""
        if route is None:
            expected = "route not measured: the training average was assumed"
        assert table["warnings"].iloc[i] == expected, i
        single = predict({**PATIENT, "route": spelled[i]})
        assert table["response_probability"].iloc[i] == pytest.approx(single.probability, abs=1e-12)


@pytest.fixture(scope="module")
def route_missing_model() -> AdditiveModel:
    """A model fitted before the schema had the new routes (they are cut out of a fitted one:
    its columns are zero columns, so the rest of the fit is the same), from a cohort where
    route is missing for enough patients to learn a "not measured" term of its own, and where
    its absence goes with response, so that the term is large enough to be a reason."""
    cohort = simulate_cohort(3000, seed=11)
    gone = cohort["responded"].to_numpy(dtype=bool) & (np.arange(len(cohort)) % 3 == 0)
    cohort["route"] = cohort["route"].astype(object).where(~gone, None)
    model, _ = fit_additive_model(cohort, cohort["responded"].to_numpy(), smoothing=1.0)
    j = model.fields.index("route")
    document = model.to_document()
    term = document["terms"][j]
    assert term["learned_missing"] and term["levels"] == list(ROUTES)
    drop = [model.features.slices[j].start + ROUTES.index(route) for route in NEW_ROUTES]
    keep = [k for k in range(len(model.coef)) if k not in drop]
    covariance = np.asarray(document["covariance"])[
        np.ix_([0, *np.add(keep, 1)], [0, *np.add(keep, 1)])
    ]
    document.update(coef=model.coef[keep].tolist(), covariance=covariance.tolist())
    own = [k for k, level in enumerate(term["levels"]) if level not in NEW_ROUTES]
    term.update(
        levels=list(ROUTES[:2]),
        seen_levels=list(ROUTES[:2]),
        columns=[term["columns"][k] for k in [*own, len(ROUTES)]],
        missing_row=[term["missing_row"][k] for k in [*own, len(ROUTES)]],
    )
    document["fields"][j]["levels"] = list(ROUTES[:2])
    return AdditiveModel.from_document(document)


def test_a_route_the_model_never_saw_is_never_a_reason_even_when_its_term_is_not_zero(
    route_missing_model: AdditiveModel,
) -> None:
    model = route_missing_model
    scored = (
        "it is scored as route not measured (the model used what it learned from patients "
        "without it)"
    )
    without = predict({"crp_mg_l": 1.5}, model=model)
    assert abs(without.contributions["route"]) >= 0.3  # its absence is a large term
    assert any(r.startswith("Route not measured") for r in without.reasons)
    for route in NEW_ROUTES:
        p = predict({"crp_mg_l": 1.5, "route": route}, model=model)
        assert p.contributions["route"] == without.contributions["route"]
        assert p.probability == without.probability
        assert not any(r.startswith(ROUTE_REASONS) or "Route" in r for r in p.reasons)
        assert _not_in_model(route, scored) in p.warnings
        assert not any(w.startswith("route not measured") for w in p.warnings)
        table = predict(pd.DataFrame({"crp_mg_l": [1.5], "route": [route]}), model=model)
        assert table["top_reasons"].iloc[0].split(NOTE_SEPARATOR) == list(p.reasons)
        assert table["warnings"].iloc[0].split(NOTE_SEPARATOR) == list(p.warnings)


# ------------------------------------------- one record (predict(dict)) against a table of one


MISSING_CELLS = [None, "", "NA", "unknown", math.nan]


def _cells(field: Field, *, valid: bool) -> st.SearchStrategy[Any]:
    """Cells of ``field`` as a clinic might give them: valid values and missing ones, or
    (``valid=False``) values that a rule refuses: out of range, not a number, not an
    integer, not finite, unknown level, not a boolean."""
    if field.kind in (Kind.NUMBER, Kind.INTEGER):
        low, high = field.bounds
        if valid:
            numbers = st.floats(low, high)
            if field.kind is Kind.INTEGER:
                numbers = numbers.map(round)
            return st.one_of(numbers, numbers.map(str), st.sampled_from(MISSING_CELLS))
        above = st.floats(high, high + 100, exclude_min=True)
        outside = above | st.floats(low - 100, low, exclude_max=True)
        junk = st.sampled_from(["high", "1,5", "inf", "12 mg", 1e400, 2.5])
        return st.one_of(outside, outside.map(str), junk)
    if field.kind is Kind.BOOLEAN:
        flags = ["yes", "no", "Y", "n", "1", "0", 1.0, 0.0, 1, "true", *MISSING_CELLS]
        return st.sampled_from(flags if valid else ["maybe", 2.0, "10"])
    levels = [*field.levels, *field.level_aliases, *(level.upper() for level in field.levels)]
    return st.sampled_from([*levels, *MISSING_CELLS] if valid else ["subcutaneous", "other"])


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    """A record of any predictor and safety fields (CRP under one of its names, in mg/L or
    mg/dL) and an unknown column; its cells valid, or (half the records) any cell possibly
    refused."""
    bad = draw(st.booleans())
    record = {}
    for field in FIELDS:
        if field.role in (Role.PREDICTOR, Role.SAFETY) and draw(st.booleans()):
            name = field.name
            if field.aliases:
                name = draw(st.sampled_from([name, *(alias.name for alias in field.aliases)]))
            factor = next((a.factor for a in field.aliases if a.name == name), 1.0)
            cell = _cells(field, valid=True)
            if bad:
                cell = cell | _cells(field, valid=False)
            value = draw(cell)
            is_number = isinstance(value, float) and factor != 1.0 and math.isfinite(value)
            record[name] = value / factor if is_number else value  # in the alias's unit
    record["Site"] = "Leeds"
    return record


RECORDS = _records()


@given(record=RECORDS)
def test_predict_record_agrees_with_predict_table_on_random_records(record: dict) -> None:
    # predict(dict) takes the one-record path (validate_record, record_reasons...); a table
    # of that one record takes the table path (validate, reason_notes...): the same numbers to
    # 1e-12, the same texts, and the same problems for a bad record.
    frame = pd.DataFrame([record], dtype=object) if record else pd.DataFrame(index=[0])
    try:
        single = predict(record)
    except SchemaError as error:
        event("refused")
        scored, problems = predict(frame, invalid="collect")
        assert scored.empty
        shown = ["column", "field", "value", "reason", "message"]
        assert sorted(problems[shown].itertuples(index=False, name=None)) == sorted(
            (p.column, p.field, p.value, str(p.reason), p.message) for p in error.problems
        )
        return
    event("scored")
    row = predict(frame, explain=True).iloc[0]
    numbers = [single.probability, *single.interval, *single.contributions.values()]
    table = [row["response_probability"], row["probability_low"], row["probability_high"]]
    table += [row[f"contribution_{field}"] for field in single.contributions]
    assert np.allclose(numbers, table, rtol=0, atol=1e-12)
    assert row["predicted_label"] == single.label
    for column, texts in (("top_reasons", single.reasons), ("warnings", single.warnings)):
        assert (row[column].split(NOTE_SEPARATOR) if row[column] else []) == list(texts)
