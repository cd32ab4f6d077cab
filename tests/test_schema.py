"""Tests of input schema v1 (`data_schemas`): header matching, aliases and units, the missing
tokens, parsing of every kind of field, ranges, messages, and the two entry points
(`validate` on many rows, `validate_record` on one) following the same rules.

Most rule tables run through every entry point (the ``check`` parameter):

* ``validate-records``: ``validate([record])``, a list of dicts (pandas infers the dtypes);
* ``validate-object-frame``: ``validate(frame)`` with every column of dtype object, as a CSV
  read as text gives;
* ``validate_record``: the single-record path, which never builds a DataFrame.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_schemas import (
    FIELDS,
    FIELDS_BY_NAME,
    Field,
    Kind,
    Problem,
    Reason,
    Role,
    SchemaError,
    Subgroups,
    Wording,
    match_columns,
    validate,
    validate_record,
    without_value,
)
from data_schemas.parse import (
    _FEW_DISTINCT,
    _KNOWN_SPELLINGS,
    MISSING_TOKENS,
    REASONS,
    _parse_column,
    categorical,
    parse_column,
    parse_value,
)
from data_schemas.validate import PROBLEM_COLUMNS, header_key

SCHEMA_ORDER = [f.name for f in FIELDS]
PARSED_FIELDS = [f for f in FIELDS if f.kind is not Kind.TEXT]


# --------------------------------------------------------------------------- helpers


class Outcome(NamedTuple):
    """What one entry point made of one record: the clean record (None if rejected), problems."""

    clean: dict[str, Any] | None
    problems: list[Problem]

    @property
    def reasons(self) -> list[tuple[str, Reason]]:
        return [(p.column, p.reason) for p in self.problems]


def _from_result(clean: pd.DataFrame, problems: pd.DataFrame) -> Outcome:
    assert len(clean) + problems["row"].nunique() == 1, "one row in, one verdict out"
    found = [
        Problem(row, column, field, value, Reason(reason), message)
        for row, column, field, value, reason, message in problems.itertuples(index=False)
    ]
    return Outcome(clean.iloc[0].to_dict() if len(clean) else None, found)


def via_records(record: dict[str, Any]) -> Outcome:
    return _from_result(*validate([record]))


def via_object_frame(record: dict[str, Any]) -> Outcome:
    frame = pd.DataFrame({k: pd.Series([v], dtype=object) for k, v in record.items()})
    return _from_result(*validate(frame))


def via_record(record: dict[str, Any]) -> Outcome:
    try:
        return Outcome(validate_record(record), [])
    except SchemaError as exc:
        return Outcome(None, list(exc.problems))


ENTRY_POINTS = pytest.mark.parametrize(
    "check",
    [via_records, via_object_frame, via_record],
    ids=["validate-records", "validate-object-frame", "validate_record"],
)


def is_missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def validate_raises(record: dict[str, Any]) -> list[SchemaError]:
    """The SchemaError each entry point raises for a record whose columns are unusable."""
    errors = []
    frames = [
        [record],
        pd.DataFrame({k: pd.Series([v], dtype=object) for k, v in record.items()}),
    ]
    for records in frames:
        with pytest.raises(SchemaError) as info:
            validate(records)
        errors.append(info.value)
    with pytest.raises(SchemaError) as info:
        validate_record(record)
    errors.append(info.value)
    return errors


# --------------------------------------------------------------------------- 1. aliases, units


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("column", "value", "field", "expected"),
    [
        ("crp_mg_dl", 0.25, "crp_mg_l", 2.5),
        ("crp_mg_dl", " 0.25 ", "crp_mg_l", 2.5),
        ("crp_mg_dl", 50, "crp_mg_l", 500.0),  # the top of the range, after conversion
        ("bdnf_pg_ml", 27000, "bdnf_ng_ml", 27.0),
        ("bdnf_pg_ml", "27000.0", "bdnf_ng_ml", 27.0),
        ("bdnf_pg_ml", 200_000, "bdnf_ng_ml", 200.0),
        ("crp_mg_l", 80, "crp_mg_l", 80.0),  # the canonical column is not converted
        ("bdnf_ng_ml", 27, "bdnf_ng_ml", 27.0),
    ],
    ids=[
        "crp-mg-dl-x10",
        "crp-mg-dl-text",
        "crp-mg-dl-top-of-range",
        "bdnf-pg-ml-div1000",
        "bdnf-pg-ml-text",
        "bdnf-pg-ml-top-of-range",
        "crp-mg-l-as-is",
        "bdnf-ng-ml-as-is",
    ],
)
def test_alias_converts_to_canonical_unit(check, column, value, field, expected):
    outcome = check({column: value})
    assert outcome.problems == []
    assert outcome.clean[field] == pytest.approx(expected, rel=1e-12)
    assert column == field or column not in outcome.clean  # an alias is not passed through


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("column", "value", "field", "converted"),
    [
        ("crp_mg_dl", 80, "crp_mg_l", "800 mg/L"),
        ("crp_mg_dl", "50.1", "crp_mg_l", "501 mg/L"),
        ("CRP (mg/dL)", 80, "crp_mg_l", "800 mg/L"),
        ("bdnf_pg_ml", 250_000, "bdnf_ng_ml", "250 ng/mL"),
        ("bdnf_pg_ml", -5, "bdnf_ng_ml", "-0.005 ng/mL"),
    ],
    ids=[
        "crp-80-mg-dl",
        "crp-50.1-mg-dl",
        "crp-bracketed-unit",
        "bdnf-250k-pg-ml",
        "bdnf-negative",
    ],
)
def test_alias_range_checked_after_conversion(check, column, value, field, converted):
    outcome = check({column: value})
    assert outcome.clean is None
    assert outcome.reasons == [(column, Reason.OUT_OF_RANGE)]
    (problem,) = outcome.problems
    assert problem.field == field
    assert f"(= {converted})" in problem.message


# --------------------------------------------------------------------------- 2. header matching


@pytest.mark.parametrize(
    ("column", "field"),
    [
        ("CRP (mg/L)", "crp_mg_l"),
        ("Patient ID", "patient_id"),
        ("Delta Sleep Ratio", "delta_sleep_ratio"),
        ("delta-sleep-ratio", "delta_sleep_ratio"),
        ("  AGE_years  ", "age_years"),
        ("Delta sleep ratio (ratio)", "delta_sleep_ratio"),
        ("DELTA  sleep__ratio", "delta_sleep_ratio"),
        ("Slow wave sleep pct (%)", "slow_wave_sleep_pct"),
        ("BMI kg/m2", "bmi_kg_m2"),
        ("Age [years]", "age_years"),
        ("CRP (mg/dL)", "crp_mg_l"),
        ("BDNF (pg/mL)", "bdnf_ng_ml"),
    ],
    ids=[
        "crp-bracketed-unit",
        "patient-id-spaces",
        "title-case-spaces",
        "hyphens",
        "surrounding-spaces-upper-case",
        "trailing-unit-dropped",
        "runs-of-separators",
        "bracketed-percent",
        "slash-in-name",
        "square-brackets",
        "crp-alias",
        "bdnf-alias",
    ],
)
def test_match_columns_maps_spellings_to_fields(column, field):
    match = match_columns((column,))
    assert [s.field.name for s in match.sources] == [field]
    assert match.unknown == ()


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("column", "value", "field", "expected"),
    [
        ("CRP (mg/L)", "0.9", "crp_mg_l", 0.9),
        ("Patient ID", "A-17", "patient_id", "A-17"),
        ("Delta Sleep Ratio", "1.2", "delta_sleep_ratio", 1.2),
        ("delta-sleep-ratio", 1.2, "delta_sleep_ratio", 1.2),
        ("  AGE_years  ", 45, "age_years", 45.0),
        ("Delta sleep ratio (ratio)", "1.2", "delta_sleep_ratio", 1.2),
        ("CRP (mg/dL)", "0.09", "crp_mg_l", 0.9),
        ("SEX", "F", "sex", "female"),
        ("Route", "IV", "route", "iv_ketamine"),
    ],
    ids=[
        "crp-mg-l",
        "patient-id",
        "delta-sleep-ratio-title-case",
        "delta-sleep-ratio-hyphens",
        "age-spaces-upper-case",
        "trailing-unit",
        "crp-mg-dl-converted",
        "sex-upper-case",
        "route-title-case",
    ],
)
def test_header_spelling_feeds_canonical_field(check, column, value, field, expected):
    outcome = check({column: value})
    assert outcome.problems == []
    got = outcome.clean[field]
    assert got == (pytest.approx(expected) if isinstance(expected, float) else expected)
    assert column not in outcome.clean  # matched, so not passed through as an unknown column


@pytest.mark.parametrize(
    "column",
    ["CRP mg", "crp_mg_per_l", "bdnf (ng/mL) extra", "sex (M/F) note", "delta sleep"],
    ids=["crp-partial", "crp-unit-words", "unit-not-trailing", "two-parts", "prefix-only"],
)
def test_match_columns_never_guesses_a_near_miss(column):
    match = match_columns(("patient_id", column))
    assert [s.field.name for s in match.sources] == ["patient_id"]
    assert match.unknown == (1,)


@pytest.mark.parametrize(
    ("column", "field", "expected"),
    [
        ("CRP", "crp_mg_l", "does not say its unit.*crp_mg_l for mg/L or crp_mg_dl for mg/dL"),
        ("crp", "crp_mg_l", "does not say its unit"),
        ("BDNF", "bdnf_ng_ml", "bdnf_ng_ml for ng/mL or bdnf_pg_ml for pg/mL"),
        ("Age", "age_years", "name it age_years for years"),
        ("BMI", "bmi_kg_m2", "name it bmi_kg_m2 for kg/m2"),
        ("Slow wave sleep", "slow_wave_sleep_pct", "does not say its unit"),
        ("crp (mg per litre)", "crp_mg_l", "'mg per litre', which is none of the schema's units"),
        ("crp_mg_l (mg/dL)", "crp_mg_l", "gives the unit 'mg/dL', but its name says mg/L"),
        ("crp_mg_l (nmol/L)", "crp_mg_l", "gives the unit 'nmol/L', but its name says mg/L"),
        ("bdnf_ng_ml [pg/mL]", "bdnf_ng_ml", "gives the unit 'pg/mL', but its name says ng/mL"),
        ("slow_wave_sleep_pct (min)", "slow_wave_sleep_pct", "gives the unit 'min'"),
        ("Age (months)", "age_years", "'months', which is none of the schema's units"),
    ],
    ids=[
        "crp-bare",
        "crp-lower",
        "bdnf-bare",
        "age-bare",
        "bmi-bare",
        "sws-bare",
        "crp-unknown-unit",
        "crp-contradicting-unit",
        "crp-foreign-unit",
        "bdnf-contradicting-unit",
        "sws-minutes",
        "age-months",
    ],
)
@pytest.mark.parametrize("check", ["validate", "validate_record"])
def test_column_with_unclear_unit_is_refused_never_dropped(check, column, field, expected):
    entry = validate if check == "validate" else validate_record
    with pytest.raises(SchemaError, match=expected) as exc:
        entry({"patient_id": "A1", column: "1.0"})
    (problem,) = exc.value.problems
    assert (problem.column, problem.field, problem.reason) == (column, field, Reason.UNIT_UNCLEAR)
    assert problem.row is None


@pytest.mark.parametrize(
    ("column", "field", "value", "expected"),
    [
        ("hs-CRP (mg/L)", "crp_mg_l", "0.9", 0.9),
        ("hs-CRP (mg/dL)", "crp_mg_l", "0.25", 2.5),
        ("Serum BDNF (ng/mL)", "bdnf_ng_ml", "27", 27.0),
        ("Serum BDNF (pg/mL)", "bdnf_ng_ml", "27000", 27.0),
        ("MADRS", "baseline_madrs", "31", 31.0),
        ("Baseline MADRS (points)", "baseline_madrs", "31", 31.0),
        ("Slow wave sleep (%)", "slow_wave_sleep_pct", "9.5", 9.5),
        ("N3 (% TST)", "slow_wave_sleep_pct", "9.5", 9.5),
        ("Age (yrs)", "age_years", "41", 41.0),
        ("BMI (kg/m²)", "bmi_kg_m2", "27.5", 27.5),
        ("BMI (kg/m^2)", "bmi_kg_m2", "27.5", 27.5),
        ("Failed antidepressant trials (n)", "failed_antidepressant_trials", "3", 3.0),
        ("Family history of alcohol use disorder", "family_history_alcohol_use_disorder", "y", 1.0),
        ("Rhythm relative amplitude (a.u.)", "rhythm_relative_amplitude", "0.8", 0.8),
    ],
    ids=[
        "hs-crp",
        "hs-crp-mg-dl",
        "serum-bdnf",
        "serum-bdnf-pg",
        "madrs",
        "madrs-points",
        "sws-percent",
        "n3-percent-tst",
        "age-yrs",
        "bmi-superscript",
        "bmi-caret",
        "trials-n",
        "family-history-of",
        "unitless-note",
    ],
)
@pytest.mark.parametrize("check", ["validate", "validate_record"])
def test_clinic_header_spellings_are_read(check, column, field, value, expected):
    if check == "validate":
        clean, problems = validate({column: value})
        assert problems.empty
        assert clean.loc[0, field] == pytest.approx(expected)
    else:
        assert validate_record({column: value})[field] == pytest.approx(expected)


def test_header_problems_are_all_reported_at_once():
    match = match_columns(("CRP", "Age", "bmi_kg_m2", "BMI (kg/m2)", "sex"))
    assert [s.field.name for s in match.sources] == ["sex"]
    assert [p.reason for p in match.problems] == [
        Reason.UNIT_UNCLEAR,
        Reason.UNIT_UNCLEAR,
        Reason.DUPLICATE_FIELD,
    ]


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("CRP (mg/L)", "crp_mg_l"),
        ("  Patient ID ", "patient_id"),
        ("delta-sleep--ratio", "delta_sleep_ratio"),
        ("__age__years__", "age_years"),
        (7, "7"),
    ],
    ids=["brackets-and-slash", "spaces", "hyphen-run", "leading-trailing-underscores", "not-a-str"],
)
def test_header_key_normalises(name, key):
    assert header_key(name) == key


@given(
    field=st.sampled_from(FIELDS),
    data=st.data(),
)
def test_header_matching_accepts_any_case_and_separator(field, data):
    parts = field.name.split("_")
    separators = data.draw(
        st.lists(
            st.sampled_from([" ", "-", "_", "  ", " - ", "__"]),
            min_size=len(parts) - 1,
            max_size=len(parts) - 1,
        )
    )
    name = parts[0] + "".join(sep + part for sep, part in zip(separators, parts[1:], strict=True))
    flips = data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    name = "".join(c.upper() if flip else c for c, flip in zip(name, flips, strict=True))
    pad = data.draw(st.sampled_from(["", " ", "\t"]))
    bracket = data.draw(st.sampled_from(["", " (units)", " [units]", "(x)", "own"]))
    bracket = f" ({field.unit})" if bracket == "own" else bracket
    column = f"{pad}{name}{bracket}{pad}"
    match = match_columns((column,))
    if field.unit and bracket and bracket != f" ({field.unit})":
        # A unit that is not the field's own is refused, never ignored.
        assert [p.reason for p in match.problems] == [Reason.UNIT_UNCLEAR]
        assert match.sources == ()
    else:
        assert [(s.field.name, s.alias) for s in match.sources] == [(field.name, None)]


# --------------------------------------------------------------------------- 3. missing tokens


MISSING_CELLS = [
    "",
    "   ",
    "NA",
    "na",
    " N/A ",
    "n/a",
    "NaN",
    "nan",
    "NULL",
    "null",
    "Null",
    ".",
    " . ",
    "-",
    "\t-\n",
    "#N/A",
    "#n/a",
    " #N/A ",
    "unknown",
    "Unknown",
    "UNKNOWN ",
    None,
    float("nan"),
    np.nan,
    np.float32("nan"),
    pd.NA,
]
MISSING_IDS = [
    "empty",
    "spaces",
    "NA",
    "na",
    "N/A-padded",
    "n/a",
    "NaN",
    "nan",
    "NULL",
    "null",
    "Null",
    "dot",
    "dot-padded",
    "dash",
    "dash-tab-newline",
    "spreadsheet-#N/A",
    "spreadsheet-#n/a",
    "spreadsheet-#N/A-padded",
    "unknown",
    "Unknown",
    "UNKNOWN-padded",
    "None",
    "float-nan",
    "np-nan",
    "float32-nan",
    "pd-NA",
]


@ENTRY_POINTS
@pytest.mark.parametrize("value", MISSING_CELLS, ids=MISSING_IDS)
@pytest.mark.parametrize(
    "field",
    ["crp_mg_l", "failed_antidepressant_trials", "sex", "substance_use_disorder", "responded"],
)
def test_missing_token_is_missing_never_a_problem(check, value, field):
    outcome = check({field: value, "age_years": 40})
    assert outcome.problems == []
    assert is_missing(outcome.clean[field])
    assert outcome.clean["age_years"] == 40.0


def test_missing_tokens_match_design():
    # design.md's tokens, plus a spreadsheet's "#N/A" and "unknown" (issue 12)
    assert {"", "na", "n/a", "#n/a", "nan", "null", "unknown", ".", "-"} == MISSING_TOKENS


@pytest.mark.parametrize(
    "storage", ["object", "string", "str"], ids=["object", "string-dtype", "str-dtype"]
)
@pytest.mark.parametrize(
    "field", ["crp_mg_l", "sex", "responded"], ids=["number", "category", "boolean"]
)
def test_missing_spreadsheet_tokens_on_the_vector_path(storage, field):
    # 300 other distinct values: a column stored as strings takes the vectorised path, not
    # parse_value on each distinct value (as up to 256 distinct values do).
    tokens = ["#N/A", "#n/a", " Unknown ", "UNKNOWN"]
    series = pd.Series(tokens + [f"x{k}" for k in range(300)], dtype=storage)
    parsed = parse_column(FIELDS_BY_NAME[field], series)
    assert not parsed.bad[: len(tokens)].any()
    assert pd.isna(np.asarray(parsed.values, dtype=object)[: len(tokens)]).all()
    assert parsed.bad[len(tokens) :].all()  # the rest are bad values, so parsing did happen


@ENTRY_POINTS
@pytest.mark.parametrize(
    "value", ["none", "None", "NONE", " none "], ids=["lower", "title", "upper", "padded"]
)
def test_substance_use_disorder_none_is_a_level_not_missing(check, value):
    outcome = check({"substance_use_disorder": value})
    assert outcome.problems == []
    assert outcome.clean["substance_use_disorder"] == "none"


@ENTRY_POINTS
@pytest.mark.parametrize("field", ["crp_mg_l", "history_of_psychosis"], ids=["number", "boolean"])
def test_none_text_is_not_missing_outside_categories(check, field):
    outcome = check({field: "none"})
    assert outcome.clean is None
    expected = Reason.NOT_A_NUMBER if field == "crp_mg_l" else Reason.NOT_A_BOOLEAN
    assert outcome.reasons == [(field, expected)]


# --------------------------------------------------------------------------- 4. booleans


BOOLEAN_CELLS = [
    ("yes", 1.0),
    ("Yes", 1.0),
    ("YES", 1.0),
    (" yes ", 1.0),
    ("y", 1.0),
    ("Y", 1.0),
    ("true", 1.0),
    ("True", 1.0),
    ("TRUE", 1.0),
    ("1", 1.0),
    ("1.0", 1.0),
    (True, 1.0),
    (np.True_, 1.0),
    (1, 1.0),
    (1.0, 1.0),
    ("no", 0.0),
    ("No", 0.0),
    ("N", 0.0),
    ("n", 0.0),
    ("false", 0.0),
    ("FALSE", 0.0),
    ("0", 0.0),
    ("0.0", 0.0),
    (False, 0.0),
    (0, 0.0),
    (0.0, 0.0),
    (-0.0, 0.0),
]


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("value", "expected"),
    BOOLEAN_CELLS,
    ids=[f"{v!r}-{type(v).__name__}" for v, _ in BOOLEAN_CELLS],
)
def test_boolean_accepts_every_spelling(check, value, expected):
    outcome = check({"family_history_alcohol_use_disorder": value, "current_naltrexone": value})
    assert outcome.problems == []
    assert outcome.clean["family_history_alcohol_use_disorder"] == expected
    assert outcome.clean["current_naltrexone"] == expected


@ENTRY_POINTS
@pytest.mark.parametrize(
    "value",
    ["maybe", 2, "2", -1, 0.5, "yes please", "oui", "t", "ja", "1.5", "+1", "01"],
    ids=[
        "maybe",
        "int-2",
        "text-2",
        "minus-1",
        "half",
        "phrase",
        "oui",
        "t",
        "ja",
        "text-1.5",
        "plus-1",
        "leading-zero",
    ],
)
def test_boolean_rejects_other_values(check, value):
    outcome = check({"family_history_alcohol_use_disorder": value})
    assert outcome.clean is None
    assert outcome.reasons == [("family_history_alcohol_use_disorder", Reason.NOT_A_BOOLEAN)]


# --------------------------------------------------------------------------- 5. numbers


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" 2.5 ", 2.5),
        ("1e1", 10.0),
        ("1E1", 10.0),
        ("+3", 3.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("2.5e-1", 0.25),
        ("\t7\n", 7.0),
        ("\xa07\u3000", 7.0),
        (7, 7.0),
        (np.int64(7), 7.0),
        (np.float32(0.5), 0.5),
        (2.5, 2.5),
    ],
    ids=[
        "padded",
        "exponent",
        "upper-exponent",
        "plus-sign",
        "leading-point",
        "trailing-point",
        "negative-exponent",
        "tab-newline",
        "unicode-spaces",
        "int",
        "np-int64",
        "np-float32",
        "float",
    ],
)
def test_number_given_as_text_or_number_parses(check, value, expected):
    outcome = check({"crp_mg_l": value})
    assert outcome.problems == []
    assert outcome.clean["crp_mg_l"] == expected


@ENTRY_POINTS
@pytest.mark.parametrize(
    "value",
    [
        "high",
        "1,5",
        "1_000",
        "1 000",
        "0x10",
        "--1",
        "+-1",
        "1e",
        "e1",
        "1.2.3",
        "\uff15",  # fullwidth five
        "١٢",
        "2 mg",
        "~3",
        True,
        False,
        np.True_,
    ],
    ids=[
        "word",
        "decimal-comma",
        "underscore",
        "thousands-space",
        "hex",
        "double-minus",
        "plus-minus",
        "bare-exponent",
        "no-mantissa",
        "two-points",
        "fullwidth-digit",
        "arabic-indic-digits",
        "with-unit",
        "tilde",
        "True",
        "False",
        "np-True",
    ],
)
def test_number_rejects_text_and_bools(check, value):
    outcome = check({"crp_mg_l": value, "age_years": 40})
    assert outcome.clean is None
    assert outcome.reasons == [("crp_mg_l", Reason.NOT_A_NUMBER)]


@ENTRY_POINTS
@pytest.mark.parametrize(
    "value",
    [
        math.inf,
        -math.inf,
        np.inf,
        "inf",
        "-Infinity",
        "INF",
        "+inf",
        "infinity",
        " Inf ",
        "1e400",
        "-1e999",
        10**400,
        -(10**400),
    ],
    ids=[
        "inf",
        "-inf",
        "np-inf",
        "text-inf",
        "text-minus-Infinity",
        "upper",
        "plus-inf",
        "infinity",
        "padded",
        "overflowing-text",
        "overflowing-negative-text",
        "huge-int",
        "huge-negative-int",
    ],
)
def test_number_rejects_infinity(check, value):
    outcome = check({"bmi_kg_m2": value})
    assert outcome.clean is None
    assert outcome.reasons == [("bmi_kg_m2", Reason.NOT_FINITE)]
    assert "is not a finite number" in outcome.problems[0].message


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("column", "value", "rejected"),
    [("crp_mg_dl", 1e308, True), ("crp_mg_dl", "1e308", True), ("bdnf_pg_ml", 1e-320, False)],
    ids=["overflow-on-conversion", "overflow-on-conversion-text", "underflow-on-conversion"],
)
def test_unit_conversion_at_float_limits_warns_nothing(check, column, value, rejected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outcome = check({column: value})
    if rejected:  # 1e308 mg/dL is 1e309 mg/L: beyond the range (and beyond a float)
        assert outcome.reasons == [(column, Reason.OUT_OF_RANGE)]
        assert "(= inf mg/L)" in outcome.problems[0].message
    else:
        assert outcome.problems == []
        assert outcome.clean["bdnf_ng_ml"] == pytest.approx(0.0)


@ENTRY_POINTS
@pytest.mark.parametrize(
    "text",
    ["+477.0e-49", "+92285713.92285713e-109", "+306.306e-115", "+0.5", "+.25", "+3"],
    ids=["exponent", "long-mantissa", "short-mantissa", "half", "leading-point", "int"],
)
def test_number_with_plus_sign_parses_exactly_as_without(check, text):
    outcome = check({"crp_mg_l": text})
    assert outcome.problems == []
    assert outcome.clean["crp_mg_l"] == float(text) == float(text[1:])


# --------------------------------------------------------------------------- 6. ranges


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age_years", 12),
        ("age_years", 17.99),
        ("age_years", "100.5"),
        ("bmi_kg_m2", 81),
        ("bmi_kg_m2", "11.9"),
        ("baseline_madrs", -1),
        ("baseline_madrs", 61),
        ("failed_antidepressant_trials", 31),
        ("failed_antidepressant_trials", "-1"),
        ("crp_mg_l", -0.1),
        ("crp_mg_l", 500.5),
        ("delta_sleep_ratio", 10.01),
        ("slow_wave_sleep_pct", 61),
        ("rhythm_relative_amplitude", 1.01),
        ("rhythm_relative_amplitude", "-0.01"),
        ("rhythm_interdaily_stability", 2),
        ("true_probability", 1.5),
    ],
    ids=lambda v: str(v),
)
def test_value_outside_hard_range_is_out_of_range(check, field, value):
    outcome = check({field: value})
    assert outcome.clean is None
    assert outcome.reasons == [(field, Reason.OUT_OF_RANGE)]
    assert f"outside the plausible range {FIELDS_BY_NAME[field].range_text}" in (
        outcome.problems[0].message
    )


@ENTRY_POINTS
@pytest.mark.parametrize("field", [f.name for f in FIELDS if f.low is not None])
def test_range_boundaries_are_inclusive(check, field):
    low, high = FIELDS_BY_NAME[field].low, FIELDS_BY_NAME[field].high
    for value in (low, high, str(low), f" {high} "):
        outcome = check({field: value})
        assert outcome.problems == [], value
        assert outcome.clean[field] == float(value)


# --------------------------------------------------------------------------- 7. integers


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("value", "expected"),
    [("3.0", 3.0), ("3", 3.0), (3, 3.0), (3.0, 3.0), ("1e1", 10.0), (" 0 ", 0.0)],
    ids=["text-3.0", "text-3", "int", "float", "exponent", "padded-zero"],
)
def test_integer_accepts_whole_numbers(check, value, expected):
    outcome = check({"failed_antidepressant_trials": value})
    assert outcome.problems == []
    assert outcome.clean["failed_antidepressant_trials"] == expected
    assert isinstance(outcome.clean["failed_antidepressant_trials"], float)


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2.5", Reason.NOT_AN_INTEGER),
        (2.5, Reason.NOT_AN_INTEGER),
        ("0.1", Reason.NOT_AN_INTEGER),
        ("30.5", Reason.NOT_AN_INTEGER),
        ("two", Reason.NOT_A_NUMBER),
        ("inf", Reason.NOT_FINITE),
        ("31", Reason.OUT_OF_RANGE),
    ],
    ids=["text-2.5", "float-2.5", "text-0.1", "text-30.5", "word", "inf", "too-many"],
)
def test_integer_rejects_fractions_with_reason(check, value, reason):
    outcome = check({"failed_antidepressant_trials": value})
    assert outcome.clean is None
    assert outcome.reasons == [("failed_antidepressant_trials", reason)]


# --------------------------------------------------------------------------- 8. categories


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("sex", "F", "female"),
        ("sex", "f", "female"),
        ("sex", "m", "male"),
        ("sex", " Male ", "male"),
        ("sex", "FEMALE", "female"),
        ("route", "IV", "iv_ketamine"),
        ("route", "iv", "iv_ketamine"),
        ("route", "intranasal", "intranasal_esketamine"),
        ("route", "Esketamine", "intranasal_esketamine"),
        ("route", "IV_KETAMINE", "iv_ketamine"),
        ("route", "intranasal_esketamine", "intranasal_esketamine"),
        ("route", "IV ketamine", "iv_ketamine"),
        ("route", "IV-ketamine", "iv_ketamine"),
        ("route", "Intranasal esketamine", "intranasal_esketamine"),
        ("substance_use_disorder", "Past", "past"),
        ("substance_use_disorder", "CURRENT", "current"),
    ],
    ids=lambda v: str(v),
)
def test_category_level_aliases_normalise(check, field, value, expected):
    outcome = check({field: value})
    assert outcome.problems == []
    assert outcome.clean[field] == expected


ROUTE_SPELLINGS = {
    "IM": "intramuscular_ketamine",
    "im": "intramuscular_ketamine",
    "Intramuscular": "intramuscular_ketamine",
    "i.m.": "intramuscular_ketamine",
    "IM ketamine": "intramuscular_ketamine",
    "Intramuscular ketamine": "intramuscular_ketamine",
    "intramuscular_ketamine": "intramuscular_ketamine",
    "PO": "oral_ketamine",
    "p.o.": "oral_ketamine",
    "Oral": "oral_ketamine",
    "ORAL KETAMINE": "oral_ketamine",
    "PO ketamine": "oral_ketamine",
    "oral_ketamine": "oral_ketamine",
    "SL": "sublingual_ketamine",
    "S.L.": "sublingual_ketamine",
    "Sublingual": "sublingual_ketamine",
    "sublingual ketamine": "sublingual_ketamine",
    "SL-ketamine": "sublingual_ketamine",
    "Troche": "sublingual_ketamine",
    "ketamine troche": "sublingual_ketamine",
    "LOZENGE": "sublingual_ketamine",
    "Ketamine lozenge": "sublingual_ketamine",
    "\uff29\uff2d": "intramuscular_ketamine",  # fullwidth "IM"
}
"""Route spellings of clinic exports -> the level (matched as every level is: case-folded,
punctuation and spaces as one underscore)."""


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("value", "expected"), list(ROUTE_SPELLINGS.items()), ids=list(ROUTE_SPELLINGS)
)
def test_route_spellings_of_the_new_routes_parse_to_their_level(check, value, expected):
    outcome = check({"route": value})
    assert outcome.problems == []
    assert outcome.clean["route"] == expected


def test_route_column_of_new_route_spellings_parses_as_each_cell_does():
    # the vector path (a column as a CSV reader gives it, past the few-distinct-values path)
    spellings = list(ROUTE_SPELLINGS)
    column = pd.Series(spellings * 30 + [f"x{k}" for k in range(300)], dtype="string")
    parsed = parse_column(FIELDS_BY_NAME["route"], column)
    assert list(parsed.values[: len(spellings)]) == list(ROUTE_SPELLINGS.values())
    assert not parsed.bad[: len(spellings) * 30].any() and parsed.bad[-300:].all()


def test_route_levels_keep_the_first_two_and_add_three_in_words():
    route = FIELDS_BY_NAME["route"]
    assert route.levels == (
        "iv_ketamine",
        "intranasal_esketamine",
        "intramuscular_ketamine",
        "oral_ketamine",
        "sublingual_ketamine",
    )
    assert route.wording is not None and route.wording.levels is not None
    assert dict(route.wording.levels) == {
        "iv_ketamine": "IV ketamine",
        "intranasal_esketamine": "Intranasal esketamine",
        "intramuscular_ketamine": "Intramuscular ketamine",
        "oral_ketamine": "Oral ketamine",
        "sublingual_ketamine": "Sublingual ketamine",
    }
    for words in ("IV", "intranasal esketamine", "intramuscular", "oral", "sublingual"):
        assert words in route.description


@pytest.mark.parametrize(
    "field", [f for f in FIELDS if f.kind is Kind.CATEGORY], ids=lambda f: f.name
)
def test_no_spelling_of_a_level_means_two_levels(field):
    # a level alias and a level (or two aliases) that normalise alike would make one of them
    # silently win; and an alias is never another level's name
    meanings: dict[str, set[str]] = {}
    for spelling, level in [*((lv, lv) for lv in field.levels), *field.level_aliases.items()]:
        meanings.setdefault(header_key(spelling), set()).add(level)
    assert {key: levels for key, levels in meanings.items() if len(levels) > 1} == {}


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sex", "other"),
        ("sex", "fem"),
        ("sex", 1),
        ("sex", True),
        ("route", "subcutaneous"),
        ("route", "ketamine"),
        ("route", "tablet"),  # oral or sublingual: ambiguous
        ("route", "buccal"),  # a route of its own
        ("route", "in"),
        ("route", "iv ketamine infusion"),
        ("substance_use_disorder", "no"),
        ("substance_use_disorder", "yes"),
    ],
    ids=lambda v: str(v),
)
def test_category_unknown_level_is_a_problem(check, field, value):
    outcome = check({field: value})
    assert outcome.clean is None
    assert outcome.reasons == [(field, Reason.UNKNOWN_LEVEL)]


@pytest.mark.parametrize(
    "records",
    [
        [{"sex": "F", "route": "iv"}, {"sex": "m", "route": "esketamine"}, {"sex": None}],
        pd.DataFrame({"sex": pd.Series(["f", "NA", "MALE"], dtype=object)}),
        [{"age_years": 40}],  # no category columns at all
        [],
    ],
    ids=["list-of-dicts", "object-frame", "absent", "no-rows"],
)
def test_category_clean_column_is_categorical_with_schema_levels(records):
    clean, problems = validate(records)
    assert problems.empty
    for field in FIELDS:
        if field.kind is Kind.CATEGORY:
            dtype = clean[field.name].dtype
            assert isinstance(dtype, pd.CategoricalDtype), field.name
            assert list(dtype.categories) == list(field.levels), field.name


def test_category_values_in_frame_are_canonical():
    clean, _ = validate([{"sex": "F", "route": "iv"}, {"sex": "m", "route": "esketamine"}, {}])
    assert clean["sex"].tolist()[:2] == ["female", "male"]
    assert clean["route"].tolist()[:2] == ["iv_ketamine", "intranasal_esketamine"]
    assert clean[["sex", "route"]].iloc[2].isna().all()


# --------------------------------------------------------------------------- 9. duplicate fields


@pytest.mark.parametrize(
    ("first", "second", "field"),
    [
        ("crp_mg_l", "CRP (mg/dL)", "crp_mg_l"),
        ("age_years", "Age (years)", "age_years"),
        ("crp_mg_dl", "CRP (mg/dL)", "crp_mg_l"),
        ("bdnf_ng_ml", "bdnf_pg_ml", "bdnf_ng_ml"),
        ("Patient ID", "patient_id", "patient_id"),
        ("sex", "SEX", "sex"),
        ("delta_sleep_ratio", "Delta sleep ratio (ratio)", "delta_sleep_ratio"),
    ],
    ids=[
        "crp-and-crp-mg-dl",
        "age-and-bracketed-age",
        "alias-twice",
        "bdnf-units",
        "patient-id",
        "case-only",
        "trailing-unit",
    ],
)
def test_field_given_twice_is_duplicate_field_from_every_entry_point(first, second, field):
    record = {first: "1", second: "1"}  # even when the two agree: never a guess
    for error in validate_raises(record):
        (problem,) = error.problems
        assert problem.reason is Reason.DUPLICATE_FIELD
        assert problem.field == field
        assert problem.row is None
        assert repr(first) in problem.message and repr(second) in problem.message
        assert f"give {field}" in problem.message


def test_duplicate_field_message_names_both_columns():
    pattern = re.escape("columns 'crp_mg_l' and 'CRP (mg/dL)' both give crp_mg_l; keep one of them")
    with pytest.raises(SchemaError, match=pattern):
        validate_record({"crp_mg_l": 5, "CRP (mg/dL)": 0.5})
    with pytest.raises(SchemaError, match=pattern):
        validate([{"crp_mg_l": 5, "CRP (mg/dL)": 0.5}])


def test_duplicate_fields_are_all_reported_at_once():
    record = {"age_years": 40, "AGE-YEARS": 40, "Age (years)": 40, "sex": "f", "Sex": "f"}
    for error in validate_raises(record):
        assert [p.field for p in error.problems] == ["age_years", "sex"]
        assert all(p.reason is Reason.DUPLICATE_FIELD for p in error.problems)
        assert "all give age_years" in error.problems[0].message
        assert "both give sex" in error.problems[1].message
        assert str(error).startswith("2 problems with the input:")


# --------------------------------------------------------------------------- 10. unknown columns


def test_validate_passes_unknown_columns_through_after_schema_fields():
    site = pd.Series(["north", "south", "east"], dtype=object)
    visit = pd.Series(pd.to_datetime(["2024-01-02", "2024-02-03", "2024-03-04"]))
    frame = pd.DataFrame(
        {"site": site, "crp_mg_l": [1.0, 2.0, 3.0], "Visit Date": visit, "lab comment": [9, 8, 7]},
        index=[5, 6, 7],
    )
    clean, problems = validate(frame)
    assert problems.empty
    assert list(clean.columns) == [*SCHEMA_ORDER, "site", "Visit Date", "lab comment"]
    for column in ("site", "Visit Date", "lab comment"):
        pd.testing.assert_series_equal(clean[column], frame[column])


def test_validate_record_passes_unknown_keys_through_untouched():
    note = ["anything", {"nested": 1}]
    clean = validate_record({"note": note, "Age group": " 41-50 ", "age_years": 40, "visit": None})
    assert list(clean) == [*SCHEMA_ORDER, "note", "Age group", "visit"]
    assert clean["note"] is note
    assert clean["Age group"] == " 41-50 "
    assert clean["visit"] is None
    assert clean["age_years"] == 40.0


# --------------------------------------------------------------------------- 11. every problem


def test_validate_record_reports_every_problem_at_once():
    record = {"age_years": 12, "sex": "other", "crp_mg_l": "high", "bmi_kg_m2": 25}
    with pytest.raises(SchemaError, match=r"^3 problems with the input:") as info:
        validate_record(record)
    assert [(p.column, p.reason) for p in info.value.problems] == [
        ("age_years", Reason.OUT_OF_RANGE),
        ("sex", Reason.UNKNOWN_LEVEL),
        ("crp_mg_l", Reason.NOT_A_NUMBER),
    ]
    assert [p.value for p in info.value.problems] == ["12", "other", "high"]
    assert all(p.row is None for p in info.value.problems)


def test_validate_reports_every_problem_of_a_row():
    outcome = via_records({"age_years": 12, "sex": "other", "crp_mg_l": "high"})
    assert outcome.clean is None
    assert outcome.reasons == [
        ("age_years", Reason.OUT_OF_RANGE),
        ("sex", Reason.UNKNOWN_LEVEL),
        ("crp_mg_l", Reason.NOT_A_NUMBER),
    ]


@pytest.mark.parametrize(
    "index",
    [pd.RangeIndex(3), pd.Index([10, 20, 30]), pd.Index(["p1", "p2", "p3"]), pd.Index([7, 7, 8])],
    ids=["range", "ints", "labels", "repeated-labels"],
)
def test_validate_keeps_valid_rows_and_index_labels(index):
    frame = pd.DataFrame(
        {
            "patient_id": ["a", "b", "c"],
            "age_years": ["40", "twelve", "50"],
            "sex": ["f", "x", "m"],
        },
        index=index,
    )
    clean, problems = validate(frame)
    assert list(clean.index) == [index[0], index[2]]
    assert clean["patient_id"].tolist() == ["a", "c"]
    assert clean["age_years"].tolist() == [40.0, 50.0]
    assert list(problems.columns) == list(PROBLEM_COLUMNS)
    assert list(PROBLEM_COLUMNS) == ["row", "column", "field", "value", "reason", "message"]
    assert problems["row"].tolist() == [index[1], index[1]]
    assert problems["reason"].tolist() == ["not_a_number", "unknown_level"]
    assert problems["value"].tolist() == ["twelve", "x"]


def test_validate_problems_are_in_row_then_column_order():
    frame = pd.DataFrame(
        {"sex": ["x", "f", "y"], "age_years": [12, 40, 13]}, index=["r0", "r1", "r2"]
    )
    _, problems = validate(frame)
    assert problems[["row", "column"]].values.tolist() == [
        ["r0", "sex"],
        ["r0", "age_years"],
        ["r2", "sex"],
        ["r2", "age_years"],
    ]


def test_validate_problem_row_is_a_plain_label():
    _, problems = validate(pd.DataFrame({"age_years": [40, 12]}, index=np.array([3, 9])))
    (row,) = problems["row"].tolist()
    assert row == 9 and type(row) is int


def test_validate_without_problems_has_an_empty_problems_table():
    clean, problems = validate({"age_years": 40})
    assert len(clean) == 1
    assert problems.empty
    assert list(problems.columns) == list(PROBLEM_COLUMNS)


def test_validate_column_order_does_not_change_the_output():
    record = {"sex": "f", "age_years": "40", "note": "x", "CRP (mg/dL)": "0.1", "route": "iv"}
    forward, _ = validate([record])
    backward, _ = validate([dict(reversed(record.items()))])
    pd.testing.assert_frame_equal(forward, backward)


@pytest.mark.parametrize(
    "records",
    ["age_years", b"age_years", 42, [{"age_years": 40}, "age_years"], [["age_years", 40]]],
    ids=["str", "bytes", "int", "list-with-a-str", "list-of-lists"],
)
def test_validate_rejects_what_is_not_records(records):
    with pytest.raises(TypeError, match="validate"):
        validate(records)


@pytest.mark.parametrize(
    "record", [[("age_years", 40)], "age_years", None], ids=["list", "str", "None"]
)
def test_validate_record_rejects_what_is_not_a_dict(record):
    with pytest.raises(TypeError, match=r"validate_record\(\) takes a dict"):
        validate_record(record)


# --------------------------------------------------------------------------- 12. clean dtypes


@pytest.mark.parametrize(
    "records",
    [
        [{"age_years": "40", "sex": "f", "history_of_psychosis": "no", "patient_id": "A1"}],
        pd.DataFrame(
            {"age_years": [40, 50], "history_of_psychosis": [True, False], "patient_id": [1, 2]}
        ),
        pd.DataFrame({"Route": pd.Series(["iv", "NA"], dtype=object)}),
        {"note": "only an unknown column"},
        [],
    ],
    ids=["text-record", "typed-frame", "object-frame", "no-schema-field", "no-rows"],
)
def test_clean_frame_has_every_field_in_schema_order_with_its_dtype(records):
    clean, problems = validate(records)
    assert problems.empty
    assert list(clean.columns)[: len(FIELDS)] == SCHEMA_ORDER
    for field in FIELDS:
        dtype = clean[field.name].dtype
        if field.kind in (Kind.NUMBER, Kind.INTEGER, Kind.BOOLEAN):
            assert dtype == np.float64, field.name
        elif field.kind is Kind.CATEGORY:
            assert isinstance(dtype, pd.CategoricalDtype), field.name


def test_clean_frame_fields_absent_from_input_are_all_missing():
    clean, _ = validate([{"age_years": 40}, {"age_years": 50}])
    absent = [name for name in SCHEMA_ORDER if name != "age_years"]
    assert clean[absent].isna().all().all()
    assert clean["age_years"].tolist() == [40.0, 50.0]


@pytest.mark.parametrize(
    "ids",
    [["A-1", " b 2 ", None], [17, 18, None], ["NA", "-", "x"]],
    ids=["text", "ints", "missing-tokens-are-ids"],
)
def test_clean_frame_keeps_patient_id_untouched(ids):
    clean, problems = validate(pd.DataFrame({"Patient ID": pd.Series(ids, dtype=object)}))
    assert problems.empty
    got = clean["patient_id"].tolist()
    assert got[:2] == ids[:2] and type(got[0]) is type(ids[0])
    assert got[2] == ids[2] or (ids[2] is None and is_missing(got[2]))


def test_validate_record_types_match_schema():
    clean = validate_record(
        {"age_years": "40", "sex": "F", "history_of_psychosis": "yes", "patient_id": 17}
    )
    assert list(clean) == SCHEMA_ORDER
    assert clean["age_years"] == 40.0 and isinstance(clean["age_years"], float)
    assert clean["history_of_psychosis"] == 1.0 and isinstance(clean["history_of_psychosis"], float)
    assert clean["sex"] == "female"
    assert clean["patient_id"] == 17  # text is passed through untouched
    assert clean["route"] is None  # a category not given: None, not NaN
    assert math.isnan(clean["crp_mg_l"])


# --------------------------------------------------------------------------- 13. messages


MESSAGES = [
    (
        {"CRP (mg/dL)": 80},
        "CRP (mg/dL) = 80 (= 800 mg/L) is outside the plausible range 0 to 500 mg/L; "
        "check the value and its unit",
    ),
    (
        {"crp_mg_l": "high"},
        "crp_mg_l = 'high' is not a number; give the value in mg/L, or use the column crp_mg_dl "
        "for mg/dL, or leave it empty if not measured",
    ),
    (
        {"bdnf_pg_ml": "lots"},
        "bdnf_pg_ml = 'lots' is not a number; give the value in pg/mL",
    ),
    (
        {"Age (years)": 12},
        "Age (years) = 12 is outside the plausible range 18 to 100 years",
    ),
    (
        {"rhythm_relative_amplitude": "1.01"},
        "rhythm_relative_amplitude = 1.01 is outside the plausible range 0 to 1;",
    ),
    (
        {"sex": "other"},
        "sex = 'other' is not a known sex; use one of female, male (also f, m), in any case",
    ),
    (
        {"history_of_psychosis": "maybe"},
        "history_of_psychosis = 'maybe' is not yes or no; use yes/no, true/false, 1/0, y/n",
    ),
    (
        {"failed_antidepressant_trials": "2.5"},
        "failed_antidepressant_trials = 2.5 is not a whole number; give a count",
    ),
    (
        {"bmi_kg_m2": "-Infinity"},
        "bmi_kg_m2 = '-Infinity' is not a finite number; leave the cell empty",
    ),
]


@ENTRY_POINTS
@pytest.mark.parametrize(
    ("record", "expected"),
    MESSAGES,
    ids=[
        "alias-range",
        "not-a-number",
        "alias-not-a-number",
        "range-with-unit",
        "range-unitless",
        "unknown-level",
        "not-a-boolean",
        "not-an-integer",
        "not-finite",
    ],
)
def test_message_names_column_value_and_rule(check, record, expected):
    (problem,) = check(record).problems
    assert expected in problem.message
    assert problem.column == next(iter(record))


@pytest.mark.parametrize(
    ("record", "expected"),
    MESSAGES[:4],
    ids=["alias-range", "not-a-number", "alias-not-a-number", "range-with-unit"],
)
def test_schema_error_message_lists_the_problem(record, expected):
    with pytest.raises(SchemaError, match="^1 problem with the input:\n  " + re.escape(expected)):
        validate_record(record)


def test_schema_error_is_a_value_error_carrying_problems():
    with pytest.raises(ValueError, match=re.escape("age_years = 12 is outside")) as info:
        validate_record({"age_years": 12, "sex": "x"})
    error = info.value
    assert isinstance(error, SchemaError)
    assert isinstance(error.problems, tuple) and len(error.problems) == 2
    assert error.problems[1] == Problem(
        None, "sex", "sex", "x", Reason.UNKNOWN_LEVEL, error.problems[1].message
    )


# --------------------------------------------------------------------------- 14. properties


_FACTORS = {f.name: [1.0, *(a.factor for a in f.aliases)] for f in PARSED_FIELDS}
_NUMBERISH = st.from_regex(
    r"\A\s?[+-]?(\d{0,12}\.?\d{0,12})([eE][+-]?\d{1,3})?\s?\Z", fullmatch=True
)
_TOKENS = st.sampled_from(
    sorted(
        {
            *MISSING_TOKENS,
            "NA",
            "N/A",
            "NULL",
            "none",
            "None",
            "yes",
            "No",
            "Y",
            "TRUE",
            "1.0",
            "0.0",
            "-0.0",
            "inf",
            "-Infinity",
            "+INF",
            "female",
            "F",
            "m",
            "IV",
            "esketamine",
            "past",
            "current",
            "2.5",
            "3.0",
            "1e1",
            "+3",
            " 2.5 ",
            "1,5",
            "1_000",
            "high",
            "#N/A",
            "#n/a",
            "Unknown",
            "\uff29\uff36",  # fullwidth IV
            "\uff46",  # fullwidth f
            "\uff11.\uff15",  # fullwidth 1.5
        }
    )
)
TEXT_CELLS = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(" \t\n\xa0\u2003\u3000\x1f")),
    _NUMBERISH,
    _TOKENS,
    st.floats().map(str),
    st.integers().map(str),
)
_SPELLED = st.sampled_from(["iv", "F", "none", "yes", "1", "2.5"]) | TEXT_CELLS
CONTAINER_CELLS = st.one_of(
    st.lists(_SPELLED, max_size=2),
    st.lists(_SPELLED, max_size=2).map(tuple),
    st.frozensets(_SPELLED, max_size=2).map(set),
    st.dictionaries(_SPELLED, _SPELLED, max_size=1),
    st.binary(max_size=4),
    _SPELLED.map(str.encode),
    st.lists(_SPELLED, min_size=1, max_size=2).map(np.array),  # a Parquet list column's cell
)
"""Values that are no cell (a list, a set, a mapping, bytes): refused by every field, however
their text reads."""
CELLS = st.one_of(
    TEXT_CELLS,
    CONTAINER_CELLS,
    st.floats(),
    st.floats(width=32),
    st.sampled_from([0.0, -0.0, 1.0, 5e-324, 1e-300, 1.7976931348623157e308, math.nan, math.inf]),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**64, -(2**63) - 1]),
    st.booleans(),
    st.none(),
)


def _verdict_of_value(field, value, factor):
    """``parse_value``'s verdict: (reason or None, parsed value, or converted if out of range)."""
    parsed, reason = parse_value(field, value, factor)
    return reason, parsed


def _verdict_of_column(field, series, factor):
    column = parse_column(field, series, factor)
    assert column.codes.shape == (1,)
    if column.bad[0]:
        reason = column.reason(0)
        if reason is Reason.OUT_OF_RANGE:
            return reason, float(column.converted[0])
        assert is_missing(column.values[0])
        return reason, None
    value = column.values[0]
    if field.kind is Kind.CATEGORY:
        return None, None if is_missing(value) else value
    return None, float(value)


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@given(field=st.sampled_from(PARSED_FIELDS), value=CELLS, data=st.data())
def test_parse_value_and_parse_column_agree(field, value, data):
    factor = data.draw(st.sampled_from(_FACTORS[field.name]), label="factor")
    dtype = data.draw(st.sampled_from([object, None]), label="dtype")  # None: pandas infers
    scalar = _verdict_of_value(field, value, factor)
    vector = _verdict_of_column(field, pd.Series([value], dtype=dtype), factor)
    assert scalar[0] == vector[0]
    assert _same(scalar[1], vector[1])


@given(field=st.sampled_from(PARSED_FIELDS), value=TEXT_CELLS, data=st.data())
def test_parse_value_and_parse_column_agree_on_text_series(field, value, data):
    factor = data.draw(st.sampled_from(_FACTORS[field.name]), label="factor")
    scalar = _verdict_of_value(field, value, factor)
    vector = _verdict_of_column(field, pd.Series([value], dtype="str"), factor)
    assert scalar[0] == vector[0]
    assert _same(scalar[1], vector[1])


@given(field=st.sampled_from(PARSED_FIELDS), value=CONTAINER_CELLS)
def test_a_list_a_set_a_mapping_or_bytes_is_refused_on_both_paths(field, value):
    # ["iv"] once read as the route iv: its text's brackets and quotes are separators
    assert parse_value(field, value)[1] is not None
    assert parse_column(field, pd.Series([value, None], dtype=object)).bad.tolist() == [
        True,
        False,
    ]


@given(field=st.sampled_from(FIELDS), value=CELLS, as_object=st.booleans())
def test_validate_any_value_gives_a_clean_row_or_problems(field, value, as_object):
    cell = pd.Series([value], dtype=object) if as_object else [value]
    clean, problems = validate(pd.DataFrame({field.name: cell}, index=["only"]))
    if len(clean) == 0:
        assert problems["row"].tolist() == ["only"]
        assert problems["column"].tolist() == [field.name]
        assert problems["reason"].iloc[0] in {r.value for r in Reason}
        assert problems["message"].iloc[0].startswith(f"{field.name} = ")
        return
    assert problems.empty
    assert list(clean.index) == ["only"]
    got = clean[field.name].iloc[0]
    if field.kind in (Kind.NUMBER, Kind.INTEGER) and not math.isnan(got):
        assert field.low <= got <= field.high
        assert field.kind is Kind.NUMBER or float(got).is_integer()
    elif field.kind is Kind.BOOLEAN:
        assert math.isnan(got) or got in (0.0, 1.0)
    elif field.kind is Kind.CATEGORY:
        assert is_missing(got) or got in field.levels


@given(field=st.sampled_from(PARSED_FIELDS), value=CELLS)
def test_validate_and_validate_record_agree(field, value):
    frame = via_object_frame({field.name: value})
    single = via_record({field.name: value})
    assert frame.reasons == single.reasons
    assert [p.message for p in frame.problems] == [p.message for p in single.problems]
    if single.clean is not None:
        assert _same(frame.clean[field.name], single.clean[field.name]) or (
            is_missing(frame.clean[field.name]) and is_missing(single.clean[field.name])
        )


def test_validate_record_reports_header_and_value_problems_together():
    record = {"crp_mg_l": "1", "CRP (mg/dL)": "0.1", "age_years": 5, "sex": "x", "BDNF": "20"}
    with pytest.raises(SchemaError) as exc:
        validate_record(record)
    assert sorted((p.field, p.reason) for p in exc.value.problems) == [
        ("age_years", Reason.OUT_OF_RANGE),
        ("bdnf_ng_ml", Reason.UNIT_UNCLEAR),
        ("crp_mg_l", Reason.DUPLICATE_FIELD),
        ("sex", Reason.UNKNOWN_LEVEL),
    ]


def _assert_clean_within_rules(clean: pd.DataFrame) -> None:
    """Every value of a clean frame obeys its field's hard rule."""
    for field in FIELDS:
        if field.name not in clean:
            continue
        column = clean[field.name]
        present = column[~column.isna()]
        if field.kind in (Kind.NUMBER, Kind.INTEGER):
            values = present.astype(float)
            assert ((values >= field.low) & (values <= field.high)).all(), field.name
            assert field.kind is Kind.NUMBER or (values == values.round()).all(), field.name
        elif field.kind is Kind.BOOLEAN:
            assert present.isin([0.0, 1.0]).all(), field.name
        elif field.kind is Kind.CATEGORY:
            assert present.isin(field.levels).all(), field.name


@given(
    rows=st.lists(
        st.lists(CELLS, min_size=len(FIELDS), max_size=len(FIELDS)), min_size=1, max_size=6
    ),
    as_text=st.booleans(),
)
def test_validate_any_values_in_every_field_give_clean_rows_and_problems_only(rows, as_text):
    """Arbitrary values in every field at once: validate never raises, every row is either
    clean or has problems (never both, never neither), and clean values obey the rules."""
    frame = pd.DataFrame(rows, columns=[field.name for field in FIELDS], dtype=object)
    if as_text:
        frame = frame.map(lambda v: "" if v is None else str(v))
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    clean, problems = validate(frame)
    refused = set(problems["row"])
    assert set(clean.index).isdisjoint(refused)
    assert set(clean.index) | refused == set(frame.index)
    assert list(clean.index) == sorted(clean.index)  # input order kept
    assert problems["reason"].isin([r.value for r in Reason]).all()
    _assert_clean_within_rules(clean)


@given(field=st.sampled_from(PARSED_FIELDS), value=CELLS)
def test_without_value_leaves_no_trace_of_the_value(field, value):
    """Summaries on stderr never carry a patient's value: only the column and the rule."""
    _, problems = validate(pd.DataFrame({field.name: pd.Series([value], dtype=object)}))
    for row in problems.itertuples():
        text = without_value(row.message, row.column, row.value)
        assert text.startswith(f"{row.column} ")
        assert " = " not in text and "(= " not in text


# --------------------------------------------------------------------------- string columns


@given(
    field=st.sampled_from(PARSED_FIELDS),
    values=st.lists(st.one_of(TEXT_CELLS, st.none()), min_size=2, max_size=12),
    data=st.data(),
)
def test_parse_column_of_strings_parses_distinct_values_as_each_cell_alone(field, values, data):
    # A string column is parsed one distinct value at a time; that must not change any verdict.
    factor = data.draw(st.sampled_from(_FACTORS[field.name]), label="factor")
    decimal = data.draw(st.sampled_from([".", ","]), label="decimal")
    cells = values + values[:1]  # at least one value repeated
    # Few distinct values go through parse_value, one cell alone through the vector path.
    column = parse_column(field, pd.Series(cells, dtype="str"), factor, decimal=decimal)
    for i, value in enumerate(cells):
        alone = parse_column(field, pd.Series([value], dtype="str"), factor, decimal=decimal)
        assert column.codes[i] == alone.codes[0]
        if column.bad[i] and column.reason(i) is Reason.OUT_OF_RANGE:  # what converted is for
            assert _same(float(column.converted[i]), float(alone.converted[0]))
        if field.kind is Kind.CATEGORY:
            assert is_missing(column.values[i]) == is_missing(alone.values[0])
            assert is_missing(alone.values[0]) or column.values[i] == alone.values[0]
        else:
            assert _same(float(column.values[i]), float(alone.values[0]))


@pytest.mark.parametrize("cells", [["-0"], ["-0", "1"], ["-0.0", "+0", "-00"]])
def test_minus_zero_reads_as_zero_on_every_path(cells):
    # "-0" is 0: the Arrow cast, Python's float and the general rules must not keep a sign
    # that pandas' to_numeric drops (CI found the fast path writing -0.0 where the rest wrote 0).
    field = FIELDS_BY_NAME["baseline_madrs"]
    series = pd.Series(cells, dtype="str")
    paths = {
        "column": parse_column(field, series, 1.0).values,
        "general": _parse_column(field, series, 1.0, ".").values,
        "each": np.array([parse_value(field, c)[0] for c in cells], dtype=np.float64),
        "floats": parse_column(field, pd.Series([-0.0] * len(cells)), 1.0).values,
    }
    for path, values in paths.items():
        zeros = np.asarray(values)[[c.lstrip("+-").strip("0.") == "" for c in cells]]
        assert len(zeros) > 0 and (zeros == 0).all(), path
        assert not np.signbit(zeros).any(), path


def test_a_boolean_given_as_minus_zero_is_zero_on_every_path() -> None:
    field = FIELDS_BY_NAME["family_history_alcohol_use_disorder"]
    flag, reason = parse_value(field, -0.0)
    assert reason is None and flag == 0.0 and not np.signbit(flag)
    for series in (pd.Series([-0.0, 1.0]), pd.Series([-0.0, 1.0], dtype=object)):
        values = np.asarray(parse_column(field, series, 1.0).values)
        assert values[0] == 0.0 and not np.signbit(values[0]), series.dtype


_PLAIN_CELLS = st.one_of(
    st.from_regex(r"[0-9]{1,17}(\.[0-9]{0,17})?", fullmatch=True),
    st.from_regex(r"\.[0-9]{1,16}", fullmatch=True),
    st.sampled_from(["0", "1", "17", "101", "2.5", "999999999999999", "1e1", "-3", "-0", "+1"]),
    st.sampled_from([*sorted(MISSING_TOKENS), "NA", "N/A", "NaN", "NULL", "Unknown", " NA"]),
)
"""Numbers as most files write them (digits and a decimal mark; around the 15 characters that
Arrow's cast reads), missing tokens, and a few that are not plain."""


@given(
    field=st.sampled_from([f for f in PARSED_FIELDS if f.kind in (Kind.NUMBER, Kind.INTEGER)]),
    values=st.lists(_PLAIN_CELLS, min_size=1, max_size=12),
    data=st.data(),
)
def test_parse_column_of_plain_numbers_agrees_with_the_general_rules(field, values, data):
    # A column of plain numbers is read by one Arrow cast; the general vector rules (used on
    # many distinct values) and parse_value (on few) must give the same floats and verdicts.
    factor = data.draw(st.sampled_from(_FACTORS[field.name]), label="factor")
    decimal = data.draw(st.sampled_from([".", ","]), label="decimal")
    cells = [v.replace(".", decimal) if any(c.isdigit() for c in v) else v for v in values]
    series = pd.Series(cells + cells[:1], dtype="str")
    column = parse_column(field, series, factor, decimal=decimal)
    general = _parse_column(field, series, factor, decimal)
    assert column.codes.tolist() == general.codes.tolist()
    for i, cell in enumerate(series):
        value, reason = parse_value(field, cell, factor, decimal=decimal)
        assert column.codes[i] == (0 if reason is None else REASONS.index(reason) + 1)
        assert np.float64(column.values[i]).tobytes() == np.float64(general.values[i]).tobytes()
        if reason is None:
            assert np.float64(column.values[i]).tobytes() == np.float64(value).tobytes()
        elif reason is Reason.OUT_OF_RANGE:
            assert column.converted[i] == general.converted[i] == value


@pytest.mark.parametrize(
    ("field", "column"),
    [
        ("age_years", pd.Series(np.array([0.1, 30, 12.5, 1e30], dtype=np.float32))),
        ("age_years", pd.Series([5, 30, 200, 7], dtype="Int64")),
        ("age_years", pd.Series([0.1, "x", None, 10**400], dtype=object)),
        ("sex", pd.Series(["x", "F", None, "?"], dtype="str")),
        ("sex", pd.Series(["x", "F", None, "?"], dtype="string")),
        ("current_naltrexone", pd.Series([2.0, 1.0, np.inf, -0.5])),
        (
            "age_years",
            pd.Series(np.array([0.1, 30, 12.5, 0.1], dtype=np.float32)).astype("category"),
        ),
    ],
    ids=["float32", "Int64", "object", "str", "string", "float64", "category-float32"],
)
def test_validate_problem_value_is_the_cell_as_series_iloc_gives_it(field, column):
    # The bad cells are taken at once; each problem's value must still be the cell as
    # series.iloc[i] gives it, as text (a float32 0.1 is '0.1', not its float64 digits).
    _, problems = validate(pd.DataFrame({field: column}))
    bad = problems["row"].tolist()
    assert bad
    cells = [column.iloc[i] for i in bad]
    assert problems["value"].tolist() == [c if isinstance(c, str) else str(c) for c in cells]


_SPELLED_FIELDS = [f for f in FIELDS if f.kind in (Kind.CATEGORY, Kind.BOOLEAN)]


@given(
    field=st.sampled_from(_SPELLED_FIELDS),
    decimal=st.sampled_from([".", ","]),
    data=st.data(),
)
def test_parse_column_of_known_spellings_agrees_with_parse_value(field, decimal, data):
    # A category or boolean column spelled as the schema spells it is parsed by one Arrow
    # lookup; every cell must get parse_value's verdict, as the distinct values did before.
    known = _KNOWN_SPELLINGS[id(field), decimal].cells.to_pylist()
    assert len(known) <= _FEW_DISTINCT  # so parse_value's rules were the ones used before
    cell = st.one_of(st.sampled_from(known), st.none())
    cells = data.draw(st.lists(cell | st.sampled_from(["F", " yes", "IV", "2"]), min_size=2))
    column = parse_column(field, pd.Series(cells, dtype="str"), decimal=decimal)
    for i, value in enumerate(cells):
        parsed, reason = parse_value(field, value, decimal=decimal)
        assert column.codes[i] == (0 if reason is None else REASONS.index(reason) + 1)
        if field.kind is Kind.CATEGORY:
            assert (None if is_missing(column.values[i]) else column.values[i]) == parsed
        elif reason is None:
            assert _same(float(column.values[i]), parsed)


@pytest.mark.parametrize(
    ("value", "expected", "reason"),
    [
        ("1,5", 1.5, None),
        ("12", 12.0, None),
        ("1e1", 10.0, None),
        ("1.5", None, Reason.NOT_A_NUMBER),
        ("27.500", None, Reason.NOT_A_NUMBER),
        ("1,5,0", None, Reason.NOT_A_NUMBER),
        ("NA", math.nan, None),
        ("inf", None, Reason.NOT_FINITE),
    ],
    ids=["comma", "whole", "exponent", "dot", "thousands-dot", "two-commas", "missing", "inf"],
)
def test_validate_with_decimal_comma(value, expected, reason):
    frame = pd.DataFrame({"crp_mg_l": [value, "30,25"]}, dtype="str")
    clean, problems = validate(frame, decimal=",")
    if reason is None:
        assert problems.empty
        assert _same(float(clean["crp_mg_l"].iloc[0]), expected)
        return
    assert problems["reason"].tolist() == [reason.value]
    assert problems["value"].tolist() == [value]
    assert clean["crp_mg_l"].tolist() == [30.25]
    if reason is Reason.NOT_A_NUMBER:
        assert "with ',' as the decimal mark, as in 1,5" in problems["message"].iloc[0]


def test_validate_refuses_an_unknown_decimal_mark():
    with pytest.raises(ValueError, match="decimal must be"):
        validate(pd.DataFrame({"bmi_kg_m2": ["1", "2"]}, dtype="str"), decimal=";")


@pytest.mark.parametrize(
    "cells",
    [["P1", "P2"], ["P1", None], [None, None], ["", "P2"], [], ["P1"]],
    ids=["strings", "one-missing", "all-missing", "empty-string", "no-rows", "one-row"],
)
@pytest.mark.parametrize("dtype", ["str", "string", object])
def test_validate_text_column_is_what_an_object_array_of_its_cells_makes(cells, dtype):
    # A str column is passed through as it is: the same column as its cells as Python objects.
    series = pd.Series(cells, dtype=dtype)
    clean, _ = validate(pd.DataFrame({"patient_id": series}))
    expected = pd.DataFrame({"patient_id": series.to_numpy(dtype=object)})["patient_id"]
    pd.testing.assert_series_equal(clean["patient_id"], expected, check_exact=True)


@given(
    field=st.sampled_from([f for f in FIELDS if f.kind is Kind.CATEGORY]),
    data=st.data(),
)
def test_categorical_from_positions_is_the_categorical_of_the_levels(field, data):
    positions = data.draw(st.lists(st.integers(-1, len(field.levels) - 1), max_size=8))
    levels = [None if k < 0 else field.levels[k] for k in positions]
    made = categorical(field, np.array(positions, dtype=np.int64))
    expected = pd.Categorical(levels, categories=field.levels)
    assert made.dtype == expected.dtype
    assert made.categories.dtype == expected.categories.dtype
    assert made.codes.dtype == expected.codes.dtype
    assert made.codes.tolist() == expected.codes.tolist()


# ---------------------------------------------------------------------------------------------
# Field entries: everything the code reads about a field, checked when the table is built

NUMBER_WORDS = Wording("IL-6 {value} {unit}", "Low IL-6", "Mid-range IL-6", "High IL-6")
LEVEL_WORDS = Wording(levels={"a": "Level a", "b": "Level b"})


def _number(**changes: Any) -> Field:
    entry = {"label": "IL-6", "wording": NUMBER_WORDS, "unit": "pg/mL", "low": 0, "high": 1000}
    return Field("il6_pg_ml", Kind.NUMBER, Role.PREDICTOR, "Interleukin-6.", **entry | changes)


def _category(kind: Kind = Kind.CATEGORY, **changes: Any) -> Field:
    levels = ("a", "b") if kind is Kind.CATEGORY else ()
    entry = {"label": "thing", "wording": LEVEL_WORDS, "levels": levels}
    return Field("thing", kind, Role.PREDICTOR, "A thing.", **entry | changes)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _number(label=""), "a predictor needs a label"),
        (lambda: _number(wording=None), r"a predictor needs a wording \(Wording"),
        (lambda: _number(wording=Wording("IL-6 {value}")), "needs low, typical and high words"),
        (
            lambda: _number(wording=Wording("IL-6", "l", "t", "h")),
            r"needs \{value\} once",
        ),
        (lambda: _number(wording=Wording("{value:.1f}", "l", "t", "h")), r"\{value\} once"),
        (lambda: _number(wording=Wording("{value} {units}", "l", "t", "h")), r"\{value\} once"),
        (lambda: _number(unit=""), r"has \{unit\}, but the field has no unit"),
        (
            lambda: _number(wording=Wording("{value}", "l", "t", "h", cuts=(3.0, 1.0))),
            "cuts are two increasing numbers",
        ),
        (lambda: _category(wording=Wording(levels={"a": "A"})), r"give words for each of \['a'"),
        (
            lambda: _category(Kind.BOOLEAN),
            r"wording's levels are \['a', 'b'\]; give words for each of \['yes', 'no'\]",
        ),
        (
            lambda: _category(wording=Wording("x {value}", levels=LEVEL_WORDS.levels)),
            "wording has levels only",
        ),
        (
            lambda: Field("note", Kind.TEXT, Role.ID, "A note.", wording=NUMBER_WORDS),
            "a wording is given for predictors only",
        ),
        (lambda: _number(log_floor=0.0), "a log floor is a positive number"),
        (lambda: _category(log_floor=0.05), "given for number fields only"),
        (lambda: _number(subgroups=Subgroups("IL-6 band")), "need increasing band edges"),
        (lambda: _number(subgroups=Subgroups("IL-6 band", (5, 2))), "increasing band edges"),
        (lambda: _category(subgroups=Subgroups("thing", (1,))), "only a number's subgroups"),
    ],
    ids=[
        "no-label",
        "no-wording",
        "number-without-words",
        "shown-without-value",
        "shown-with-format-spec",
        "shown-unknown-name",
        "unit-without-unit",
        "cuts-decreasing",
        "category-level-without-words",
        "boolean-words-not-yes-no",
        "category-with-number-words",
        "wording-not-predictor",
        "log-floor-zero",
        "log-floor-category",
        "number-subgroups-without-edges",
        "edges-decreasing",
        "category-subgroups-with-edges",
    ],
)
def test_field_entry_missing_what_the_code_reads_fails_when_built(build, message):
    with pytest.raises(ValueError, match=rf"^field '\w+' in data_schemas/fields.py: .*{message}"):
        build()


def test_field_entry_lists_every_problem_at_once():
    with pytest.raises(ValueError, match=r"needs a label.*; .*needs a wording.*; a log floor"):
        _number(label="", wording=None, log_floor=-1.0)


def test_field_entries_that_fit_their_kind_are_accepted():
    assert _number(log_floor=0.1, subgroups=Subgroups("IL-6 band", (2, 7))).log_floor == 0.1
    assert _category().wording.levels["a"] == "Level a"
    yes_no = Wording(levels={"yes": "Yes thing", "no": "No thing"})
    assert _category(Kind.BOOLEAN, wording=yes_no, subgroups=Subgroups("thing")).label == "thing"


def test_every_predictor_has_words_and_only_numbers_have_a_log_scale():
    for f in FIELDS:
        assert (f.wording is not None) == (f.role is Role.PREDICTOR), f.name
        assert f.log_floor is None or f.is_number, f.name
    assert FIELDS_BY_NAME["crp_mg_l"].log_floor == 0.05


@pytest.mark.parametrize(
    ("edges", "labels"),
    [
        ((18, 35, 50, 65), ("under 18", "18-34", "35-49", "50-64", "65+")),
        ((1.0, 3.0), ("under 1", "1-2", "3+")),
        ((0.5, 3), ("under 0.5", "0.5 to <3", "3+")),
        ((), ()),
    ],
    ids=["age", "whole-floats", "fractional", "levels"],
)
def test_subgroup_band_labels(edges, labels):
    assert Subgroups("bands", edges).band_labels == labels
