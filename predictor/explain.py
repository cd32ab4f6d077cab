"""Explanations in words: reasons from the largest contributions, and warnings.

Texts are built field by field over arrays of patients, never row by row, so that one patient
and a million take the same code. A :class:`Notes` is one kind of text for ``n`` patients: the
patients it applies to and their texts; :func:`join_notes` and :func:`notes_for` turn a list of
them into one string per patient or the texts of one patient.

* Reasons: the fields with the largest absolute contributions, most important first, each as
  "Low inflammation (CRP 0.9 mg/L) raises the chance of response". A value is described as low,
  typical or high against clinical cut points where there are some (CRP), else against the
  training data's tertiles.
* Warnings: a model field not measured (and what the model did instead), a value outside the
  range seen in training (its term is held at the edge), and each safety-screen flag that is set
  (its text is the schema's ``caution``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from data_schemas import FIELDS, FIELDS_BY_NAME, Role
from predictor.features import Term
from predictor.model import AdditiveModel

TOP_REASONS = 3
MIN_REASON_LOG_ODDS = 0.01
"""A contribution smaller than this (in absolute log-odds) is not given as a reason."""
SAFETY_FIELDS = tuple(f.name for f in FIELDS if f.role is Role.SAFETY)


@dataclass(frozen=True)
class Wording:
    """How a model field is put into words.

    Attributes
    ----------
    label : str
        Short name ("CRP", "delta sleep ratio").
    shown : str
        A number's value as text; ``{value}`` and ``{unit}`` (the schema's unit) are filled in.
    low, typical, high : str
        A number's value in words, below / between / above ``cuts``.
    cuts : tuple of float, optional
        Fixed cut points in the schema's unit (clinical categories); default: the training
        data's tertiles.
    levels : mapping of str to str
        A category's levels in words.
    """

    label: str
    shown: str = ""
    low: str = ""
    typical: str = ""
    high: str = ""
    cuts: tuple[float, float] | None = None
    levels: Mapping[str, str] | None = None


WORDING: Mapping[str, Wording] = {
    "age_years": Wording("age", "{value} {unit}", "Younger age", "Middle age", "Older age"),
    "sex": Wording("sex", levels={"female": "Female sex", "male": "Male sex"}),
    "bmi_kg_m2": Wording(
        "BMI",
        "BMI {value} {unit}",
        "Lower body-mass index",
        "Mid-range body-mass index",
        "Higher body-mass index",
    ),
    "baseline_madrs": Wording(
        "baseline MADRS",
        "MADRS {value}",
        "Less severe depression",
        "Typical severity",
        "More severe depression",
    ),
    "failed_antidepressant_trials": Wording(
        "failed antidepressant trials",
        "{value} failed trials",
        "Few failed antidepressants",
        "Several failed antidepressants",
        "Many failed antidepressants",
    ),
    "route": Wording(
        "route",
        levels={"iv_ketamine": "IV ketamine", "intranasal_esketamine": "Intranasal esketamine"},
    ),
    "crp_mg_l": Wording(
        "CRP",
        "CRP {value} {unit}",
        "Low inflammation",
        "Average inflammation",
        "High inflammation",
        cuts=(1.0, 3.0),  # the usual hs-CRP risk categories: < 1, 1 to 3, > 3 mg/L
    ),
    "bdnf_ng_ml": Wording("BDNF", "BDNF {value} {unit}", "Low BDNF", "Mid-range BDNF", "High BDNF"),
    "delta_sleep_ratio": Wording(
        "delta sleep ratio",
        "delta sleep ratio {value}",
        "Little early slow-wave sleep",
        "Typical early slow-wave sleep",
        "Much early slow-wave sleep",
    ),
    "slow_wave_sleep_pct": Wording(
        "slow-wave sleep",
        "N3 {value}% of sleep",
        "Little slow-wave sleep",
        "Typical slow-wave sleep",
        "Much slow-wave sleep",
    ),
    "rhythm_relative_amplitude": Wording(
        "rest-activity amplitude",
        "relative amplitude {value}",
        "Weak daily rhythm",
        "Typical daily rhythm",
        "Strong daily rhythm",
    ),
    "rhythm_interdaily_stability": Wording(
        "rest-activity stability",
        "interdaily stability {value}",
        "Irregular daily rhythm",
        "Typically regular daily rhythm",
        "Very regular daily rhythm",
    ),
    "substance_use_disorder": Wording(
        "substance-use disorder",
        levels={
            "none": "No substance-use disorder",
            "past": "A past substance-use disorder",
            "current": "A current substance-use disorder",
        },
    ),
    "family_history_alcohol_use_disorder": Wording(
        "family history of alcohol use disorder",
        levels={
            "yes": "A family history of alcohol use disorder",
            "no": "No family history of alcohol use disorder",
        },
    ),
}
"""Words for every model field (a test checks that none is missing)."""


class Notes(NamedTuple):
    """One kind of text for ``n`` patients: ``text[i]`` applies to patient ``i`` where
    ``mask[i]``."""

    mask: np.ndarray
    text: np.ndarray


def _format_numbers(values: np.ndarray) -> np.ndarray:
    """Numbers as short text ("0.9", "27", "1.35"), each distinct value formatted once."""
    unique, inverse = np.unique(values, return_inverse=True)
    return np.array([f"{v:.6g}" for v in unique.tolist()], dtype=object)[inverse]


def _describe(term: Term, values: np.ndarray) -> np.ndarray:
    """Each value of one field in words, e.g. "Low inflammation (CRP 0.9 mg/L)"."""
    wording = WORDING[term.field]
    out = np.full(
        values.shape, f"{wording.label[0].upper()}{wording.label[1:]} not measured", dtype=object
    )
    if term.is_spline:
        numbers = np.asarray(values, dtype=np.float64)
        present = ~np.isnan(numbers)
        measured = numbers[present]
        words = np.array([wording.low, wording.typical, wording.high], dtype=object)
        cuts = np.asarray(wording.cuts or term.tertiles)
        bucket = (measured >= cuts[0]).astype(np.intp) + (measured > cuts[1])
        before, after = wording.shown.split("{value}")
        after = after.format(unit=FIELDS_BY_NAME[term.field].unit)
        out[present] = words[bucket] + " (" + before + _format_numbers(measured) + after + ")"
    else:
        codes = term.codes(values)
        names = np.array([wording.levels[level] for level in term.levels], dtype=object)
        out[codes >= 0] = names[codes[codes >= 0]]
    return out


def reason_notes(
    model: AdditiveModel, values: Mapping[str, Any], contributions: np.ndarray
) -> list[Notes]:
    """The top reasons of each patient, most important first (one :class:`Notes` per rank).

    Parameters
    ----------
    model : AdditiveModel
    values : mapping of field -> array of shape (n,)
        Clean values of the model fields.
    contributions : numpy.ndarray, shape (n, number of terms)
    """
    n, n_terms = contributions.shape
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :TOP_REASONS]
    notes = []
    for rank in range(min(TOP_REASONS, n_terms)):
        term_index = order[:, rank]
        size = contributions[np.arange(n), term_index]
        mask = np.abs(size) >= MIN_REASON_LOG_ODDS
        text = np.full(n, "", dtype=object)
        for j in np.unique(term_index[mask]).tolist():
            rows = mask & (term_index == j)
            term = model.features.terms[j]
            effect = np.where(
                size[rows] > 0, " raises the chance of response", " lowers the chance of response"
            ).astype(object)
            text[rows] = _describe(term, np.asarray(values[term.field])[rows]) + effect
        notes.append(Notes(mask, text))
    return notes


def _constant(mask: np.ndarray, text: str) -> Notes:
    return Notes(mask, np.full(mask.shape, text, dtype=object))


def _missing(term: Term, column: Any) -> np.ndarray:
    if term.is_spline:
        return np.isnan(np.asarray(column, dtype=np.float64))
    return term.codes(column) < 0


def _instead(term: Term) -> str:
    if term.learned_missing:
        return "the model used what it learned from patients without it"
    return "the training average was assumed"


def _not_measured_notes(model: AdditiveModel, values: Mapping[str, Any]) -> list[Notes]:
    """One note per missing field; fields of one test (polysomnography...) missing together,
    and handled alike, make one note."""
    groups: dict[str, list[Term]] = {}
    for term in model.features.terms:
        test = FIELDS_BY_NAME[term.field].measured_by
        groups.setdefault(f"{test}/{_instead(term)}" if test else term.field, []).append(term)
    notes = []
    for terms in groups.values():
        missing = [_missing(term, values[term.field]) for term in terms]
        together = np.logical_and.reduce(missing) if len(terms) > 1 else np.zeros_like(missing[0])
        test = FIELDS_BY_NAME[terms[0].field].measured_by
        if len(terms) > 1:
            labels = " and ".join(WORDING[term.field].label for term in terms)
            text = f"{test} not recorded ({labels} not measured): {_instead(terms[0])}"
            notes.append(_constant(together, text))
        for term, alone in zip(terms, missing, strict=True):
            what = f"{WORDING[term.field].label} not measured" + (f" ({test})" if test else "")
            notes.append(_constant(alone & ~together, f"{what}: {_instead(term)}"))
    return notes


def _outside_range_notes(model: AdditiveModel, values: Mapping[str, Any]) -> list[Notes]:
    notes = []
    for term in model.features.terms:
        if not term.is_spline:
            continue
        low, high = term.value_range
        numbers = np.asarray(values[term.field], dtype=np.float64)
        for outside, side, edge in ((numbers < low, "below", low), (numbers > high, "above", high)):
            text = np.full(len(numbers), "", dtype=object)
            text[outside] = (
                f"{WORDING[term.field].label} "
                + _format_numbers(numbers[outside])
                + f" is {side} the range seen in training ({low:.6g} to {high:.6g}): its "
                f"effect is held at {edge:.6g}"
            )
            notes.append(Notes(outside, text))
    return notes


def warning_notes(model: AdditiveModel, values: Mapping[str, Any]) -> list[Notes]:
    """Warnings for each patient, in this order: safety-screen flags set, fields not measured,
    values outside the training range.

    Parameters
    ----------
    model : AdditiveModel
    values : mapping of field -> array of shape (n,)
        Clean values of the model fields and the safety-screen fields.
    """
    safety = [
        _constant(
            np.asarray(values[name], dtype=np.float64) == 1.0,
            f"safety screen: {FIELDS_BY_NAME[name].caution}",
        )
        for name in SAFETY_FIELDS
    ]
    return safety + _not_measured_notes(model, values) + _outside_range_notes(model, values)


def notes_for(notes: list[Notes], i: int) -> tuple[str, ...]:
    """The texts that apply to patient ``i``, in order."""
    return tuple(note.text[i] for note in notes if note.mask[i])


def join_notes(notes: list[Notes], n: int, separator: str = "; ") -> np.ndarray:
    """One string per patient: the texts that apply, joined ("" when none)."""
    out = np.full(n, "", dtype=object)
    started = np.zeros(n, dtype=bool)
    for note in notes:
        lead = np.where(started[note.mask], separator, "").astype(object)
        out[note.mask] = out[note.mask] + lead + note.text[note.mask]
        started |= note.mask
    return out
