"""Explanations in words: reasons from the largest contributions, and warnings.

Texts are built field by field over arrays of patients, never row by row, so that one patient
and a million take the same code. A :class:`Notes` is one kind of text for ``n`` patients: the
patients it applies to, the distinct texts (an Arrow array) and which of them each patient has;
:func:`join_notes` and :func:`notes_for` turn a list of them into one Arrow string per patient
or the texts of one patient. Each distinct text is made once as a Python string; the texts of
the patients are only ever copied by Arrow.

* Reasons: the fields with the largest absolute contributions, most important first, each as
  "Low inflammation (CRP 0.9 mg/L) raises the chance of response". A value is described as low,
  typical or high against clinical cut points where there are some (CRP), else against the
  training data's tertiles. The words are the schema's: each field's ``label`` and
  ``wording`` in ``data_schemas/fields.py``.
* Warnings: a model field not measured (and what the model did instead), a value outside the
  range seen in training (its term is held at the edge), a category level that no training
  patient had, and each safety-screen flag that is set (its text is the schema's ``caution``).
  A level no training patient had is either one the model has a column of zeros for (its term
  is the training average: contribution 0) or one of the schema's levels that the model does
  not have at all (the schema gained it after the model was fitted, as ``route`` gained
  intramuscular, oral and sublingual ketamine): that one gets the term's missing-value row,
  which is the training average too (contribution 0) unless the model learned a "not
  measured" term for the field, and the warning says which. Either way the level is never
  given as a reason: its contribution says nothing about that level.

One clean record (``predict(dict)``) gets the same texts from Python values, without arrays:
:func:`record_reasons` and :func:`record_warnings`, which put each text together from the same
words and rules (the phrase tables, :func:`_bucket`, the ``..._text`` functions) as the array
path; a test holds the two to the same texts.

A scored table joins each patient's reasons, and warnings, into one cell with
:data:`NOTE_SEPARATOR`, which no text contains (a test builds every text to check it), so a
cell splits back into the list that ``predict(dict)`` gives.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pac

from data_schemas import FIELDS, FIELDS_BY_NAME, Role
from predictor.model import NOT_IN_MODEL, Encoded, FeatureMap, Model, Term

TOP_REASONS = 3
MIN_REASON_LOG_ODDS = 0.01
"""A contribution smaller than this (in absolute log-odds) is not given as a reason."""
SAFETY_FIELDS = tuple(f.name for f in FIELDS if f.role is Role.SAFETY)
RAISES, LOWERS = " raises the chance of response", " lowers the chance of response"
HIGHER, LOWER = " goes with a higher chance of response", " goes with a lower chance of response"
"""A field not measured is an association learned from the training data (who gets a test),
not a cause, and is worded so."""
NOTE_SEPARATOR = " | "
"""Joins a patient's reasons, or warnings, in one cell of a scored table: no text contains it
(safety cautions contain "; "), so ``cell.split(NOTE_SEPARATOR)`` gives the list back."""
TEXT = pa.large_string()
"""The Arrow type of the texts: 64-bit offsets, so that the cells of any number of patients fit
in one array."""


class Notes(NamedTuple):
    """One kind of text for ``n`` patients: patient ``i`` has the text ``texts[which[i]]`` where
    ``mask[i]``, none elsewhere.

    Attributes
    ----------
    mask : numpy.ndarray, shape (n,), bool
        The patients the note applies to.
    texts : pyarrow.Array of :data:`TEXT`
        The distinct texts (notes may share one array: :func:`join_notes` takes it once).
    which : numpy.ndarray, shape (n,), int, or None
        Each patient's text in ``texts`` (any value where ``mask`` is False); None when the
        note is one text for every patient, ``texts[0]``.
    """

    mask: np.ndarray
    texts: pa.Array
    which: np.ndarray | None = None


def _number(value: float) -> str:
    """A number as short text: "0.9", "27", "1.35"."""
    return f"{value:.6g}"


def _format_numbers(values: np.ndarray) -> np.ndarray:
    """Numbers as short text (:func:`_number`), an object array."""
    return np.array([_number(v) for v in values.tolist()], dtype=object)


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a 1-d array of numbers (none NaN), in no set order, and where
    each value is among them (so that each is put into words once: values are mostly rounded,
    far fewer than patients)."""
    if values.size <= 16:  # too few to be worth finding the distinct ones
        return values, np.arange(values.size)
    inverse, distinct = pd.factorize(values)  # by hashing: a third of np.unique's sort
    return distinct, inverse


class _Phrases(NamedTuple):
    """A term's words, ready to be joined to values: a number's reason is
    ``prefixes[bucket] + value + suffix``; a category's is ``levels[code]`` (the last entry is
    the "not measured" text, for code -1)."""

    missing: str
    prefixes: np.ndarray | None = None  # low, typical, high: "Low inflammation (CRP "
    suffix: str = ""  # " mg/L)"
    cuts: tuple[float, float] = (np.nan, np.nan)
    low_includes_cut: bool = False  # the first cut is the lowest training value: it is "low"
    levels: np.ndarray | None = None


@functools.lru_cache(maxsize=8)
def _phrases(features: FeatureMap) -> tuple[_Phrases, ...]:
    """The words of each term (cached per feature map, which every kind of model has and
    which hashes by identity; a model need not be hashable)."""
    out = []
    for term in features.terms:
        field = FIELDS_BY_NAME[term.field]
        wording, label = field.wording, field.label
        assert wording is not None  # the schema requires one of every predictor
        missing = f"{label[0].upper()}{label[1:]} not measured"
        if term.unused:  # contributes 0, so never a reason
            out.append(_Phrases(missing))
        elif term.is_spline:
            before, after = wording.shown.split("{value}")
            before = before.format(unit=field.unit)
            cuts = wording.cuts or term.tertiles
            prefixes = [
                f"{word} ({before}" for word in (wording.low, wording.typical, wording.high)
            ]
            out.append(
                _Phrases(
                    missing,
                    prefixes=np.array(prefixes, dtype=object),
                    suffix=after.format(unit=field.unit) + ")",
                    cuts=cuts,
                    low_includes_cut=cuts[0] <= term.value_range[0],
                )
            )
        else:
            assert wording.levels is not None  # the schema requires them of a category
            names = [wording.levels[level] for level in term.levels] + [missing]
            out.append(_Phrases(missing, levels=np.array(names, dtype=object)))
    return tuple(out)


def _bucket(phrases: _Phrases, values: Any) -> Any:
    """Which of a number's words (0 low, 1 typical, 2 high) describes each value: an array of
    values gives an array of buckets, one float gives one int."""
    low, high = phrases.cuts
    above_low = values > low if phrases.low_includes_cut else values >= low
    return 1 * above_low + 1 * (values > high)


def _reasons(model: Model, j: int, values: Any, raises: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Reasons from the model's term ``j``, e.g. "Low inflammation (CRP 0.9 mg/L) raises the
    chance of response", for its ``values`` and whether their contributions are positive.

    Returns
    -------
    (list of str, numpy.ndarray)
        The distinct texts, and each value's text among them (an index, shape of ``values``).
        Each distinct (value, direction) is put into words once, whoever has it.
    """
    phrases = _phrases(model.features)[j]
    direction = raises.astype(np.intp)
    # Not measured: an association (HIGHER / LOWER), not an effect; the last two texts.
    missing = [phrases.missing + LOWER, phrases.missing + HIGHER]
    if phrases.levels is not None:
        levels = phrases.levels[:-1].tolist()
        texts = [text for level in levels for text in (level + LOWERS, level + RAISES)]
        # -1 (not measured) takes the last pair; -2 (a level the model does not have) never
        # comes here: reason_notes gives it no contribution
        codes = model.features.terms[j].codes(values)
        return [*texts, *missing], 2 * np.where(codes < 0, len(levels), codes) + direction
    assert phrases.prefixes is not None  # a number's phrases
    numbers = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(numbers)
    distinct, inverse = _distinct(numbers[present])
    described = phrases.prefixes[_bucket(phrases, distinct)] + _format_numbers(distinct)
    described += phrases.suffix
    texts = [text for value in described.tolist() for text in (value + LOWERS, value + RAISES)]
    where = np.full(numbers.shape, len(distinct), dtype=np.intp)  # not measured: the last pair
    where[present] = inverse
    return [*texts, *missing], 2 * where + direction


def _top_order(contributions: np.ndarray, top: int) -> np.ndarray:
    """Indices of each row's ``top`` largest absolute contributions, largest first (ties: the
    lower index first, as a stable sort would give); shape (n, top)."""
    magnitude = np.abs(contributions)
    rows = np.arange(len(magnitude))
    order = np.empty((len(magnitude), top), dtype=np.intp)
    for rank in range(top):
        order[:, rank] = largest = magnitude.argmax(axis=1)
        magnitude[rows, largest] = -1.0  # below every magnitude: not taken again
    return order


def reason_notes(
    model: Model, values: Mapping[str, Any] | pd.DataFrame, contributions: np.ndarray
) -> list[Notes]:
    """The top reasons of each patient, most important first (one :class:`Notes` per rank).

    Parameters
    ----------
    model : Model
    values : mapping of field -> array of shape (n,)
        Clean values of the model fields.
    contributions : numpy.ndarray, shape (n, number of terms)
    """
    n, n_terms = contributions.shape
    top = min(TOP_REASONS, n_terms)
    not_in_model = _not_in_model(model, values)
    if not_in_model:  # never a reason: the contribution says nothing about that level
        contributions = contributions.copy()
        for j, mask in not_in_model.items():
            contributions[mask, j] = 0.0
    order = _top_order(contributions, top)
    size = np.take_along_axis(contributions, order, axis=1)
    shown = np.abs(size) >= MIN_REASON_LOG_ODDS
    # The shown (patient, rank) places, as flat indices, grouped by field.
    places = np.flatnonzero(shown)
    fields = order.reshape(-1)[places]
    # (as the narrowest integers: numpy's stable sort of 8- or 16-bit ones is a radix sort)
    by_field = places[np.argsort(fields.astype(np.min_scalar_type(n_terms)), kind="stable")]
    counts = np.bincount(fields, minlength=n_terms)
    flat_size = size.reshape(-1)
    # One table of texts for every rank: each field's distinct texts, one field after another.
    texts: list[str] = []
    index = np.zeros(n * top, dtype=np.intp)
    for j, where in enumerate(np.split(by_field, np.cumsum(counts)[:-1])):
        if where.size == 0:
            continue
        column = values[model.features.terms[j].field]
        rows = where // top
        taken = column.array[rows] if isinstance(column, pd.Series) else np.asarray(column)[rows]
        field_texts, field_index = _reasons(model, j, taken, flat_size[where] > 0)
        index[where] = len(texts) + field_index
        texts += field_texts
    table = pa.array(texts, type=TEXT)
    by_rank = index.reshape(n, top)
    return [Notes(shown[:, rank], table, by_rank[:, rank]) for rank in range(top)]


def _reason(model: Model, j: int, value: Any, raises: bool) -> str:
    """:func:`_reasons` for one clean value (a float, a level or None)."""
    phrases = _phrases(model.features)[j]
    if phrases.levels is not None:
        code = model.features.terms[j].code(value)
        if code >= 0:  # -2 (a level the model does not have) never comes here, as above
            return str(phrases.levels[code]) + (RAISES if raises else LOWERS)
    elif not math.isnan(value):
        assert phrases.prefixes is not None  # a number's phrases
        described = phrases.prefixes[_bucket(phrases, value)] + _number(value) + phrases.suffix
        return str(described) + (RAISES if raises else LOWERS)
    return phrases.missing + (HIGHER if raises else LOWER)


def record_reasons(
    model: Model, record: Mapping[str, Any], contributions: Sequence[float]
) -> tuple[str, ...]:
    """The texts :func:`reason_notes` gives one patient, from the patient's clean values.

    Parameters
    ----------
    model : Model
    record : mapping of str to object
        One clean record, as ``data_schemas.validate_record`` returns it.
    contributions : sequence of float, length number of terms
        The record's contributions, log-odds.
    """
    terms = model.features.terms
    sizes = [
        0.0  # a level the term does not have: never a reason, as in reason_notes
        if term.schema_only_levels and term.code(record[term.field]) == NOT_IN_MODEL
        else size
        for term, size in zip(terms, contributions, strict=True)
    ]
    order = sorted(range(len(sizes)), key=lambda j: -abs(sizes[j]))[:TOP_REASONS]  # stable
    return tuple(
        _reason(model, j, record[terms[j].field], sizes[j] > 0)
        for j in order
        if abs(sizes[j]) >= MIN_REASON_LOG_ODDS
    )


def _constant(mask: np.ndarray, text: str) -> list[Notes]:
    """A text for the patients in ``mask`` (no note at all when there are none)."""
    return [Notes(mask, pa.array([text], type=TEXT))] if mask.any() else []


def _label(term: Term) -> str:
    """The term's field's short name in the schema ("CRP")."""
    return FIELDS_BY_NAME[term.field].label


def _instead(term: Term) -> str:
    if term.learned_missing:
        return "the model used what it learned from patients without it"
    return "the training average was assumed"


class _MissingGroup(NamedTuple):
    """Fields measured by one test and handled alike when missing, with their warning texts."""

    terms: list[int]  # indices of the model's terms
    together: str  # when all of them are missing (fields of one test only)
    alone: tuple[str, ...]  # when only that field is missing


@functools.lru_cache(maxsize=8)
def _missing_groups(features: FeatureMap) -> tuple[_MissingGroup, ...]:
    groups: dict[str, list[int]] = {}
    for j, term in enumerate(features.terms):
        if term.unused:  # never reported missing: the model ignores it either way
            continue
        test = FIELDS_BY_NAME[term.field].measured_by
        groups.setdefault(f"{test}/{_instead(term)}" if test else term.field, []).append(j)
    out = []
    for indices in groups.values():
        terms = [features.terms[j] for j in indices]
        test = FIELDS_BY_NAME[terms[0].field].measured_by
        labels = " and ".join(_label(term) for term in terms)
        alone = tuple(
            f"{_label(term)} not measured{f' ({test})' if test else ''}: {_instead(term)}"
            for term in terms
        )
        together = f"{test} not recorded ({labels} not measured): {_instead(terms[0])}"
        out.append(_MissingGroup(indices, together if len(terms) > 1 else "", alone))
    return tuple(out)


def _not_measured_notes(model: Model, missing: np.ndarray) -> list[Notes]:
    """One note per missing field; fields of one test (polysomnography...) missing together,
    and handled alike, make one note."""
    notes = []
    # a 2-d array reduced over one axis is an array (numpy's stubs allow a scalar)
    any_missing = cast(list[bool], missing.any(axis=0).tolist())
    for group in _missing_groups(model.features):
        if not any(any_missing[j] for j in group.terms):
            continue
        columns = missing[:, group.terms]
        if group.together:
            together = cast(np.ndarray, columns.all(axis=1))  # as any_missing
            notes += _constant(together, group.together)
            columns = columns & ~together[:, None]
        alone = cast(list[bool], columns.any(axis=0).tolist())
        for k, text in enumerate(group.alone):
            if alone[k]:  # as _constant, with one reduction for the group
                notes.append(Notes(columns[:, k], pa.array([text], type=TEXT)))
    return notes


def _not_measured_texts(model: Model, missing: Sequence[bool]) -> list[str]:
    """:func:`_not_measured_notes` of one patient, whose missing fields are ``missing``."""
    texts: list[str] = []
    if not any(missing):  # a full record: no group to look at
        return texts
    for group in _missing_groups(model.features):
        flags = [missing[j] for j in group.terms]
        if not any(flags):
            continue
        if group.together and all(flags):
            texts.append(group.together)
        else:
            texts += itertools.compress(group.alone, flags)
    return texts


def _outside_words(term: Term, side: int) -> tuple[str, str]:
    """The words before and after a value of ``term`` below (``side`` -1) or above (+1) the
    training range."""
    low, high = term.value_range
    where, edge = ("below", low) if side < 0 else ("above", high)
    return f"{_label(term)} ", (
        f" is {where} the range seen in training ({low:.6g} to {high:.6g}): its effect is "
        f"held at {edge:.6g}"
    )


def _outside_range_notes(
    model: Model, values: Mapping[str, Any] | pd.DataFrame, outside
) -> list[Notes]:
    notes = []
    for j in np.flatnonzero(outside.any(axis=0)).tolist():
        term = model.features.terms[j]
        numbers = np.asarray(values[term.field], dtype=np.float64)
        for side in (-1, 1):
            mask = outside[:, j] == side
            if not mask.any():
                continue
            before, after = _outside_words(term, side)
            distinct, inverse = _distinct(numbers[mask])
            texts = (before + _format_numbers(distinct) + after).tolist()
            index = np.zeros(len(numbers), dtype=np.intp)
            index[mask] = inverse
            notes.append(Notes(mask, pa.array(texts, type=TEXT), index))
    return notes


def _unseen_text(term: Term, level: str) -> str:
    """The warning for a level of ``term`` that no training patient had: one the term has a
    column of zeros for, or one of the schema's levels that the term does not have."""
    label = _label(term)
    average = f"its {label} term is that of an average training patient (contribution 0)"
    if level in term.levels or not term.learned_missing:  # the missing row is the average
        scored = average
    else:
        scored = f"it is scored as {label} not measured ({_instead(term)})"
    return (
        f"{label} = {level} was not seen when this model was trained: {scored}, and the "
        f"interval does not cover what this {label} changes"
    )


def _unseen_level_notes(model: Model, values: Mapping[str, Any] | pd.DataFrame) -> list[Notes]:
    """A note for each value that is a category level no training patient had: a level the
    model has a column of zeros for (whose coefficient is the term's training mean), or a level
    of the schema that the model does not have (the schema gained it after the model was
    fitted: it gets the term's missing-value row, see :func:`_not_in_model`)."""
    notes = []
    for term in model.features.terms:
        if not (term.unseen_levels or term.schema_only_levels):
            continue
        codes = term.codes(values[term.field])
        for level in term.unseen_levels:
            notes += _constant(codes == term.levels.index(level), _unseen_text(term, level))
        not_in_model = codes == NOT_IN_MODEL
        if not not_in_model.any():
            continue
        given = np.asarray(values[term.field], dtype=object)
        for level in term.schema_only_levels:
            notes += _constant(not_in_model & (given == level), _unseen_text(term, level))
    return notes


def _not_in_model(model: Model, values: Mapping[str, Any] | pd.DataFrame) -> dict[int, np.ndarray]:
    """Term index -> which patients have a level of the schema that the term does not have
    (for the terms where some patient has one)."""
    out = {}
    for j, term in enumerate(model.features.terms):
        if term.schema_only_levels:
            mask = term.codes(values[term.field]) == NOT_IN_MODEL
            if mask.any():
                out[j] = mask
    return out


def _unused_text(term: Term) -> str:
    return f"{_label(term)} is not used by this model ({term.unused})"


def _unused_notes(model: Model, values: Mapping[str, Any] | pd.DataFrame) -> list[Notes]:
    """A note for each value given for a field the model does not use."""
    return [
        note
        for term in model.features.terms
        if term.unused
        for note in _constant(
            ~pd.isna(np.asarray(values[term.field], dtype=object)), _unused_text(term)
        )
    ]


_SAFETY = {name: f"safety screen: {FIELDS_BY_NAME[name].caution}" for name in SAFETY_FIELDS}
"""Safety-screen field -> its warning when the flag is set."""


def record_warnings(
    model: Model, record: Mapping[str, Any], missing: Sequence[bool], outside: Sequence[int]
) -> tuple[str, ...]:
    """The texts :func:`warning_notes` gives one patient, from the patient's clean values.

    Parameters
    ----------
    model : Model
    record : mapping of str to object
        One clean record, as ``data_schemas.validate_record`` returns it.
    missing, outside : sequence, length number of terms
        The record's row of ``Encoded.missing`` and ``Encoded.outside``.
    """
    texts = [_SAFETY[name] for name in SAFETY_FIELDS if record[name] == 1.0]
    texts += _not_measured_texts(model, missing)
    terms = model.features.terms
    texts += [_unused_text(t) for t in terms if t.unused and not pd.isna(record[t.field])]
    for j, side in enumerate(outside):
        if side:
            before, after = _outside_words(terms[j], side)
            texts.append(before + _number(record[terms[j].field]) + after)
    for term in terms:
        if term.unseen_levels or term.schema_only_levels:
            value = record[term.field]
            code = term.code(value)
            if code == NOT_IN_MODEL:
                texts.append(_unseen_text(term, value))
            elif code >= 0 and term.levels[code] in term.unseen_levels:
                texts.append(_unseen_text(term, term.levels[code]))
    return tuple(texts)


def warning_notes(
    model: Model, values: Mapping[str, Any] | pd.DataFrame, encoded: Encoded
) -> list[Notes]:
    """Warnings for each patient, in this order: safety-screen flags set, fields not measured,
    values given for a field the model does not use, values outside the training range,
    category levels that no training patient had (the model's own, and the schema's that the
    model does not have).

    Parameters
    ----------
    model : Model
    values : mapping of field -> array of shape (n,)
        Clean values of the model fields and the safety-screen fields.
    encoded : Encoded
        The same records as ``model.features.encode`` gives them.
    """
    safety = [
        note
        for name in SAFETY_FIELDS
        for note in _constant(np.asarray(values[name], dtype=np.float64) == 1.0, _SAFETY[name])
    ]
    return (
        safety
        + _not_measured_notes(model, encoded.missing)
        + _unused_notes(model, values)
        + _outside_range_notes(model, values, encoded.outside)
        + _unseen_level_notes(model, values)
    )


def notes_for(notes: list[Notes], i: int) -> tuple[str, ...]:
    """The texts that apply to patient ``i``, in order."""
    return tuple(
        note.texts[0 if note.which is None else note.which[i]].as_py()
        for note in notes
        if note.mask[i]
    )


def join_notes(notes: list[Notes], n: int, separator: str = NOTE_SEPARATOR) -> pa.Array:
    """One text per patient: the texts that apply, in order, joined with ``separator`` (""
    when none).

    Returns
    -------
    pyarrow.Array of :data:`TEXT`, length ``n``
        Joined by Arrow, without a Python string per patient: each patient's texts are taken
        from the notes' distinct texts as one list, and each list joined.
    """
    masks = np.zeros((len(notes), n), dtype=bool)
    where = np.empty((len(notes), n), dtype=np.intp)  # each note's texts in one table
    starts: dict[int, int] = {}  # id of a note's texts -> where they start in the table
    tables, size = [], 0
    for k, note in enumerate(notes):
        masks[k] = note.mask
        if id(note.texts) not in starts:
            starts[id(note.texts)], size = size, size + len(note.texts)
            tables.append(note.texts)
        start = starts[id(note.texts)]
        if note.which is None:
            where[k] = start
        else:
            np.add(note.which, start, out=where[k])
    table = pa.concat_arrays(tables) if tables else pa.array([], type=TEXT)
    texts = pac.take(table, where.T[masks.T])  # patient by patient, each one's notes in order
    lists = pa.LargeListArray.from_arrays(np.r_[0, np.cumsum(masks.sum(axis=0))], texts)
    return pac.binary_join(lists, pa.scalar(separator, type=TEXT))
