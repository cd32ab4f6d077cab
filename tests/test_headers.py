"""Tests of the column names a clinic writes (issue 12): NFKC normalisation, the clinic aliases,
a unit after a bare ``%``, and the columns that match nothing but resemble a field (a look-alike
letter, the field's name inside, a few edits away), reported but never matched.
"""

from __future__ import annotations

import unicodedata

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_schemas import (
    FIELDS,
    ColumnMatch,
    Problem,
    Reason,
    Resemblance,
    Role,
    SchemaError,
    match_columns,
    validate,
    validate_record,
)
from data_schemas.validate import _LOOKALIKES, _edits


def fullwidth(text: str) -> str:
    """``text`` with every printable ASCII character in its fullwidth form (NFKC undoes it)."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


def matched(match: ColumnMatch) -> list[tuple[str, float]]:
    return [(s.field.name, s.factor) for s in match.sources]


# --------------------------------------------------------------------------- clinic aliases

CLINIC_HEADERS = [
    # (column, field, factor); "new" marks a header unmatched (or refused) before issue 12
    ("hsCRP (mg/L)", "crp_mg_l", 1.0),  # new
    ("hsCRP (mg/dL)", "crp_mg_l", 10.0),  # new
    ("HSCRP (MG/DL)", "crp_mg_l", 10.0),  # new
    ("hsCRP mg/L", "crp_mg_l", 1.0),  # new
    ("hscrp_mg_dl", "crp_mg_l", 10.0),  # new
    ("hs-CRP (mg/L)", "crp_mg_l", 1.0),
    ("hs CRP mg/dL", "crp_mg_l", 10.0),
    ("Gender", "sex", 1.0),  # new
    (" GENDER ", "sex", 1.0),  # new
    ("Gender (M/F)", "sex", 1.0),  # new
    ("MADRS", "baseline_madrs", 1.0),
    ("MADRS score", "baseline_madrs", 1.0),  # new
    ("madrs_score", "baseline_madrs", 1.0),  # new
    ("MADRS total", "baseline_madrs", 1.0),  # new
    ("MADRS-Total (points)", "baseline_madrs", 1.0),  # new
    ("MADRS total score", "baseline_madrs", 1.0),  # new
    ("Age (years)", "age_years", 1.0),
    ("AGE [Years]", "age_years", 1.0),
    ("SWS (%)", "slow_wave_sleep_pct", 1.0),  # new
    ("sws pct", "slow_wave_sleep_pct", 1.0),  # new
    ("SWS %", "slow_wave_sleep_pct", 1.0),  # new
    ("N3 %", "slow_wave_sleep_pct", 1.0),  # new: refused as unit_unclear before
    ("N3%", "slow_wave_sleep_pct", 1.0),  # new
    ("N3 (%)", "slow_wave_sleep_pct", 1.0),
    ("Slow wave sleep %", "slow_wave_sleep_pct", 1.0),  # new
    ("Route", "route", 1.0),
    ("Route of administration", "route", 1.0),  # new
    ("route_of_administration", "route", 1.0),  # new
    ("ROUTE-OF-ADMINISTRATION (IV/IN)", "route", 1.0),  # new
]
CLINIC_IDS = [
    "hscrp-mg-l",
    "hscrp-mg-dl-x10",
    "hscrp-upper-case",
    "hscrp-unit-unbracketed",
    "hscrp-snake-case",
    "hs-crp-mg-l",
    "hs-crp-spaces-mg-dl",
    "gender",
    "gender-upper-padded",
    "gender-with-note",
    "madrs",
    "madrs-score",
    "madrs-score-snake",
    "madrs-total",
    "madrs-total-points",
    "madrs-total-score",
    "age-years",
    "age-square-brackets",
    "sws-percent",
    "sws-pct",
    "sws-bare-percent",
    "n3-bare-percent",
    "n3-percent-no-space",
    "n3-bracketed-percent",
    "slow-wave-sleep-bare-percent",
    "route",
    "route-of-administration",
    "route-of-administration-snake",
    "route-of-administration-note",
]


@pytest.mark.parametrize(("column", "field", "factor"), CLINIC_HEADERS, ids=CLINIC_IDS)
def test_clinic_header_matches_its_field_and_unit(column, field, factor):
    match = match_columns((column,))
    assert matched(match) == [(field, factor)]
    assert (match.unknown, match.problems, match.resembling) == ((), (), ())


@pytest.mark.parametrize(("column", "field", "factor"), CLINIC_HEADERS, ids=CLINIC_IDS)
def test_fullwidth_clinic_header_matches_as_its_ascii_spelling(column, field, factor):
    # NFKC turns fullwidth letters, digits, brackets and the ideographic space into ASCII
    match = match_columns((fullwidth(column),))
    assert matched(match) == [(field, factor)]
    assert match.problems == ()


@pytest.mark.parametrize(
    ("column", "value", "field", "expected"),
    [
        ("hsCRP (mg/dL)", "0.25", "crp_mg_l", 2.5),
        ("hsCRP (mg/L)", "2.5", "crp_mg_l", 2.5),
        ("Gender", "F", "sex", "female"),
        ("MADRS score", "31", "baseline_madrs", 31.0),
        ("MADRS total", 31, "baseline_madrs", 31.0),
        ("SWS (%)", "9.5", "slow_wave_sleep_pct", 9.5),
        ("N3 %", "9.5", "slow_wave_sleep_pct", 9.5),
        ("Route of administration", "IV", "route", "iv_ketamine"),
        (fullwidth("CRP (mg/dL)"), "0.25", "crp_mg_l", 2.5),
        (fullwidth("Route"), "intranasal", "route", "intranasal_esketamine"),
    ],
    ids=[
        "hscrp-mg-dl",
        "hscrp-mg-l",
        "gender",
        "madrs-score",
        "madrs-total-number",
        "sws-percent",
        "n3-bare-percent",
        "route-of-administration",
        "fullwidth-crp-mg-dl",
        "fullwidth-route",
    ],
)
@pytest.mark.parametrize("check", ["validate", "validate_record"])
def test_clinic_header_values_are_read_in_the_canonical_unit(check, column, value, field, expected):
    if check == "validate":
        clean, problems = validate({"patient_id": "P1", column: value})
        assert problems.empty
        got = clean.loc[0, field]
    else:
        got = validate_record({"patient_id": "P1", column: value})[field]
    assert got == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_fullwidth_level_reads_as_its_ascii_spelling():
    clean = validate_record({"route": fullwidth("IV"), "sex": fullwidth("F")})
    assert (clean["route"], clean["sex"]) == ("iv_ketamine", "female")


@pytest.mark.parametrize(
    ("column", "field", "expected"),
    [
        ("hsCRP", "crp_mg_l", "does not say its unit"),
        ("hsCRP (nmol/L)", "crp_mg_l", "'nmol/L', which is none of the schema's units"),
        ("hscrp_mg_l (mg/dL)", "crp_mg_l", "gives the unit 'mg/dL', but its name says mg/L"),
        ("hsCRP mg/dL (mg/L)", "crp_mg_l", "gives the unit 'mg/L', but its name says mg/dL"),
        ("SWS", "slow_wave_sleep_pct", "does not say its unit"),
        ("SWS (min)", "slow_wave_sleep_pct", "'min', which is none of the schema's units"),
        ("sws_pct (min)", "slow_wave_sleep_pct", "gives the unit 'min', but its name says %"),
        ("N3 (min)", "slow_wave_sleep_pct", "'min', which is none of the schema's units"),
        ("CRP %", "crp_mg_l", "gives the unit '%', which is none of the schema's units"),
        ("Age %", "age_years", "gives the unit '%'"),
        ("MADRS total (%)", "baseline_madrs", "gives the unit '%', but its name says MADRS"),
        ("crp_mg_l (%)", "crp_mg_l", "gives the unit '%', but its name says mg/L"),
        ("age_years %", "age_years", "gives the unit '%', but its name says years"),
        (fullwidth("CRP"), "crp_mg_l", "does not say its unit"),
        (fullwidth("CRP (nmol/L)"), "crp_mg_l", "'nmol/L', which is none of the schema's units"),
    ],
    ids=[
        "hscrp-bare",
        "hscrp-foreign-unit",
        "hscrp-contradicting-unit",
        "hscrp-two-units",
        "sws-bare",
        "sws-minutes",
        "sws-pct-minutes",
        "n3-minutes",
        "crp-percent",
        "age-percent",
        "madrs-percent",
        "crp-mg-l-bracketed-percent",
        "age-years-bare-percent",
        "fullwidth-crp-bare",
        "fullwidth-crp-foreign-unit",
    ],
)
def test_clinic_header_with_unclear_unit_is_still_refused(column, field, expected):
    match = match_columns(("patient_id", column))
    (problem,) = match.problems
    assert (problem.column, problem.field, problem.reason) == (column, field, Reason.UNIT_UNCLEAR)
    assert repr(column) in problem.message  # the column as written, fullwidth included
    assert expected in problem.message
    assert (match.unknown, match.resembling) == ((), ())
    with pytest.raises(SchemaError, match="unit"):
        validate_record({"patient_id": "P1", column: "1.0"})


# --------------------------------------------------------------------------- look-alike letters

LOOKALIKES = [
    # (column, field it resembles, letters named in the reason); all new with issue 12
    ("\u0421RP (mg/L)", "crp_mg_l", "Cyrillic '\u0421'"),
    ("CR\u0420 (mg/dL)", "crp_mg_l", "Cyrillic '\u0420'"),
    ("hs\u0421RP (mg/L)", "crp_mg_l", "Cyrillic '\u0421'"),
    ("\u0421RP", "crp_mg_l", "Cyrillic '\u0421'"),  # unit unclear once read as Latin: resembles
    ("\u0392\u039c\u0399 (kg/m2)", "bmi_kg_m2", "Greek '\u0392', Greek '\u039c', Greek '\u0399'"),
    ("\u0391ge (years)", "age_years", "Greek '\u0391'"),
    ("\u0405\u0435\u0445", "sex", "Cyrillic '\u0405', Cyrillic '\u0435', Cyrillic '\u0445'"),
    ("R\u043eute", "route", "Cyrillic '\u043e'"),
    ("\u03a1atient ID", "patient_id", "Greek '\u03a1'"),
    ("M\u0410DRS", "baseline_madrs", "Cyrillic '\u0410'"),
    ("\uff23\uff32\u0420 (mg/L)", "crp_mg_l", "Cyrillic '\u0420'"),  # fullwidth C, R; Cyrillic P
]
LOOKALIKE_IDS = [
    "cyrillic-es-crp",
    "cyrillic-er-crp-mg-dl",
    "cyrillic-es-hscrp",
    "cyrillic-es-crp-no-unit",
    "greek-bmi",
    "greek-alpha-age",
    "cyrillic-sex",
    "cyrillic-o-route",
    "greek-rho-patient-id",
    "cyrillic-a-madrs",
    "fullwidth-and-cyrillic",
]


@pytest.mark.parametrize(("column", "field", "letters"), LOOKALIKES, ids=LOOKALIKE_IDS)
def test_lookalike_letter_never_matches_but_is_reported(column, field, letters):
    match = match_columns(("Site", column))
    assert (match.sources, match.problems, match.unknown) == ((), (), (0, 1))
    (resemblance,) = match.resembling
    assert resemblance.position == 1
    assert resemblance.column == column
    assert resemblance.field == field
    assert resemblance.why.endswith(letters)
    assert "look-alike letter" in resemblance.why


@pytest.mark.parametrize(("column", "field", "letters"), LOOKALIKES, ids=LOOKALIKE_IDS)
def test_lookalike_column_is_passed_through_unread(column, field, letters):
    clean, problems = validate({"Site": "Leeds", column: "0.9"})
    assert problems.empty
    assert pd.isna(clean.loc[0, field])
    assert clean.loc[0, column] == "0.9"


def test_lookalike_table_maps_cyrillic_and_greek_letters_to_latin_ones():
    for letter, latin in _LOOKALIKES.items():
        assert unicodedata.name(chr(letter)).split()[0] in ("CYRILLIC", "GREEK")
        assert latin.isascii() and latin.isalpha()
        assert unicodedata.normalize("NFKC", chr(letter)).casefold() != latin.casefold()


# --------------------------------------------------------------------------- name inside, edits

RESEMBLING = [
    # (column, field, why); all new with issue 12
    ("Baseline CRP", "crp_mg_l", "contains the name 'crp'"),
    ("CRP value mg L", "crp_mg_l", "contains the name 'crp'"),
    ("hsCRP result", "crp_mg_l", "contains the name 'hscrp'"),
    ("Baseline CRP (mg/L)", "crp_mg_l", "contains the name 'crp_mg_l'"),
    ("BDNF serum level", "bdnf_ng_ml", "contains the name 'bdnf'"),
    ("MADRS week 0", "baseline_madrs", "contains the name 'madrs'"),
    ("Age group", "age_years", "contains the name 'age'"),
    ("BMI category", "bmi_kg_m2", "contains the name 'bmi'"),
    ("Gender identity", "sex", "contains the name 'gender'"),
    ("Patient ID number", "patient_id", "contains the name 'patient_id'"),
    ("PatientID", "patient_id", "is 'patient_id' without separators"),
    ("CRPmgL", "crp_mg_l", "is 'crp_mg_l' without separators"),
    ("Rout", "route", "is one edit away from 'route'"),
    ("Patient_ld", "patient_id", "is one edit away from 'patient_id'"),
    ("hscpr (mg/L)", "crp_mg_l", "is one edit away from 'hs_crp'"),
    ("Slow wave slep (%)", "slow_wave_sleep_pct", "is one edit away from 'slow_wave_sleep'"),
    ("histroy of psychosis", "history_of_psychosis", "is one edit away from"),
    ("curent naltrexon", "current_naltrexone", "is two edits away from 'current_naltrexone'"),
    ("R\u043eute of admin", "route", "contains the name 'route', and a look-alike letter"),
]
RESEMBLING_IDS = [
    "baseline-crp",
    "crp-unit-in-words",
    "hscrp-result",
    "baseline-crp-with-unit",
    "bdnf-inside",
    "madrs-week-0",
    "age-group",
    "bmi-category",
    "gender-identity",
    "patient-id-number",
    "patient-id-run-together",
    "crp-run-together",
    "route-one-deletion",
    "patient-id-l-for-i",
    "hscrp-swapped-letters",
    "slow-wave-sleep-typo",
    "history-swapped-letters",
    "naltrexone-two-deletions",
    "route-inside-with-cyrillic-o",
]


@pytest.mark.parametrize(("column", "field", "why"), RESEMBLING, ids=RESEMBLING_IDS)
def test_column_resembling_a_field_is_reported_never_matched(column, field, why):
    match = match_columns((column, "Site"))
    assert (match.sources, match.problems, match.unknown) == ((), (), (0, 1))
    assert match.resembling == (Resemblance(0, column, field, match.resembling[0].why),)
    assert why in match.resembling[0].why


NOT_RESEMBLING = [
    "Site",
    "Notes",
    "Comments",
    "visit_date",
    "responded_at",  # outcome fields are never resembled: scoring does not read them
    "Responder",
    "true_prob",
    "weight_kg",
    "height_cm",
    "Weight (kg)",
    "Clinic",
    "MRN",
    "ID",
    "Study ID",
    "Date of birth",
    "Sexual orientation",
    "Race",
    "Rate",
    "Page",
    "Set",
    "Cr (mg/dL)",  # creatinine: one letter from crp, but "cr" is not "crp"
    "IL-6 (pg/mL)",
    "N2 pct",  # another sleep stage: digits differ
    "N1 (%)",
    "REM (%)",
    "SWA (%)",
    "Route2",
    "Dose (mg/kg)",
    "HAM-D",
    "PHQ-9",
    "Psychiatrist",
    "Years",
    "",
]


@pytest.mark.parametrize("column", NOT_RESEMBLING, ids=[c or "empty" for c in NOT_RESEMBLING])
def test_unknown_column_resembling_nothing_is_not_reported(column):
    match = match_columns(("patient_id", column))
    assert match.unknown == (1,)
    assert match.resembling == ()
    assert match.resemblance_problems() == ()


@pytest.mark.parametrize(
    ("given", "column"),
    [
        ("crp_mg_l", "CRP date"),
        ("hsCRP (mg/dL)", "\u0421RP (mg/L)"),
        ("Age (years)", "Age at onset"),
        ("MADRS", "MADRS week 4"),
        ("CRP", "Baseline CRP"),  # refused (unit unclear), so not unnoticed either
    ],
    ids=["crp-given", "crp-given-and-cyrillic", "age-given", "madrs-given", "crp-refused"],
)
def test_column_resembling_a_field_another_column_gives_is_not_reported(given, column):
    match = match_columns((given, column))
    assert match.unknown == (1,)
    assert match.resembling == ()


# --------------------------------------------------------------------------- strict columns


def test_resemblance_problems_name_column_field_and_fix():
    match = match_columns(("patient_id", "\u0421RP (mg/L)", "Gendr", "notes"))
    problems = match.resemblance_problems()
    assert [(p.row, p.column, p.field, p.reason) for p in problems] == [
        (None, "\u0421RP (mg/L)", "crp_mg_l", Reason.RESEMBLES_FIELD),
        (None, "Gendr", "sex", Reason.RESEMBLES_FIELD),
    ]
    assert problems[0].message == (
        "column '\u0421RP (mg/L)' matches no field but resembles crp_mg_l (it contains a "
        "look-alike letter: Cyrillic '\u0421'); rename it to crp_mg_l for mg/L or crp_mg_dl for "
        "mg/dL, or "
        "rename it so that it does not resemble a field"
    )
    assert problems[1].message == (
        "column 'Gendr' matches no field but resembles sex (it is one edit away from "
        "'gender'); rename it to sex, or rename it so that it does not resemble a field"
    )
    assert all(isinstance(p, Problem) for p in problems)
    with pytest.raises(SchemaError, match=r"2 problems with the input:\n.*\u0421RP.*\n.*Gendr"):
        raise SchemaError(problems)


def test_resemblance_problem_never_carries_a_value():
    record = {"patient_id": "SECRET-ID", "Baseline CRP": "123.456", "Rout": "secret-route"}
    problems = match_columns(tuple(record)).resemblance_problems()
    assert len(problems) == 2
    for problem in problems:
        for value in record.values():
            assert value not in problem.message
        assert problem.value == problem.column


def test_reason_resembles_field_is_stable():
    assert Reason.RESEMBLES_FIELD.value == "resembles_field"


def test_resemblance_does_not_change_what_validate_reads():
    record = {"patient_id": "P1", "Baseline CRP": "5", "crp (mg/L)": "0.9"}
    assert validate_record(record)["crp_mg_l"] == 0.9
    assert validate_record(record)["Baseline CRP"] == "5"


def test_match_columns_is_cached_with_its_resemblances():
    columns = ("patient_id", "\u0421RP (mg/L)")
    assert match_columns(columns) is match_columns(columns)


# --------------------------------------------------------------------------- edit distance


@pytest.mark.parametrize(
    ("a", "b", "limit", "expected"),
    [
        ("route", "route", 1, 0),
        ("rout", "route", 1, 1),
        ("roue", "route", 1, 1),
        ("rotue", "route", 1, 1),  # neighbours swapped: one edit
        ("madrs", "mards", 1, 1),
        ("abc", "xyz", 1, 2),  # capped at limit + 1
        ("abcdefgh", "a", 2, 3),
        ("", "ab", 2, 2),
    ],
    ids=["same", "deletion", "substitution", "swap", "swap-madrs", "capped", "lengths", "empty"],
)
def test_edits_counts_insertions_deletions_substitutions_and_swaps(a, b, limit, expected):
    assert _edits(a, b, limit) == expected
    assert _edits(b, a, limit) == expected


# --------------------------------------------------------------------------- properties

_NAMES = [f.name for f in FIELDS] + [a.name for f in FIELDS for a in f.aliases]


def _summary(match: ColumnMatch) -> tuple:
    return (
        [(s.field.name, s.alias) for s in match.sources],
        match.unknown,
        [(p.field, p.reason) for p in match.problems],
        [(r.position, r.field, r.why) for r in match.resembling],
    )


@given(name=st.sampled_from(_NAMES), data=st.data())
def test_nfkc_equivalent_names_match_alike(name, data):
    spaced = name.replace("_", data.draw(st.sampled_from(["_", " ", "-"])))
    flips = data.draw(st.lists(st.booleans(), min_size=len(spaced), max_size=len(spaced)))
    wide = "".join(fullwidth(c) if flip else c for c, flip in zip(spaced, flips, strict=True))
    assert _summary(match_columns((wide,))) == _summary(match_columns((spaced,)))
    assert match_columns((wide,)).sources  # every field name and alias matches


@given(column=st.text(max_size=40))
def test_any_text_and_its_nfkc_form_match_alike(column):
    nfkc = unicodedata.normalize("NFKC", column)
    assert _summary(match_columns((column,))) == _summary(match_columns((nfkc,)))


@given(
    columns=st.lists(
        st.one_of(
            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
            st.text(max_size=30),
            st.sampled_from(_NAMES),
            st.sampled_from(["\u0421RP (mg/L)", "Baseline CRP", "N3 %", "Gendr", fullwidth("CRP")]),
        ),
        max_size=8,
    )
)
def test_match_columns_accounts_for_every_column_and_never_raises(columns):
    match = match_columns(tuple(columns))
    matched_positions = {s.position for s in match.sources}
    assert matched_positions.isdisjoint(match.unknown)
    assert len(matched_positions) + len(match.unknown) <= len(columns)  # the rest: problems
    assert {r.position for r in match.resembling} <= set(match.unknown)
    given_fields = {s.field.name for s in match.sources} | {p.field for p in match.problems}
    for resemblance in match.resembling:
        assert resemblance.column == str(columns[resemblance.position])
        assert resemblance.field not in given_fields
        field = next(f for f in FIELDS if f.name == resemblance.field)
        assert field.role in (Role.ID, Role.PREDICTOR, Role.SAFETY)
    for problem in match.resemblance_problems():
        assert problem.reason is Reason.RESEMBLES_FIELD
        assert problem.column in problem.message


@given(column=st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=1))
def test_any_lower_case_ascii_word_gives_a_record_or_a_clear_error(column):
    try:
        clean = validate_record({column: "1"})
    except SchemaError as exc:  # "crp" (unit unclear), "sex" (1 is not a level), "age" (12)...
        (problem,) = exc.problems
        assert problem.column == column and column in problem.message
        return
    assert column in clean or match_columns((column,)).sources
