"""Validation: match column names to fields, parse every cell, report every problem.

Two entry points share the header matching, the parsers and the message wording:

* :func:`validate` takes a dict, a list of dicts or a DataFrame and returns the clean rows and a
  problems table (vectorised: no per-row Python);
* :func:`validate_record` takes one dict and returns one clean dict or raises ``SchemaError``
  listing every problem (no DataFrame is built: this is the fast single-patient path).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from data_schemas.errors import (
    Problem,
    Reason,
    SchemaError,
    describe,
    duplicate_field,
    unit_unclear,
)
from data_schemas.fields import FIELDS, Alias, Field, Kind
from data_schemas.parse import header_key, parse_column, parse_value

PROBLEM_COLUMNS = ("row", "column", "field", "value", "reason", "message")


def unit_key(unit: str) -> str:
    """Normalise a unit as written in a header: ``"kg/m²"``, ``"kg/m^2"`` -> ``"kg/m2"``."""
    folded = unit.casefold().replace("²", "2").replace("^", "").replace("µ", "u")
    return re.sub(r"\s+", "", folded.replace("μ", "u"))


_TRAILING_UNIT = re.compile(r"\s*[\(\[]([^\(\)\[\]]*)[\)\]]\s*$")


@dataclass(frozen=True)
class ColumnSource:
    """Where one field's values come from: the input column, its position and its alias."""

    field: Field
    column: Any
    position: int
    alias: Alias | None

    @property
    def factor(self) -> float:
        """Multiply a value in this column by this to get the field's canonical unit."""
        return 1.0 if self.alias is None else self.alias.factor

    def problem(
        self, row: Any, raw: Any, reason: Reason, value: Any, *, decimal: str = "."
    ) -> Problem:
        """The Problem for one bad cell of this column (``value``: the parsed value, if any)."""
        text = raw if isinstance(raw, str) else str(raw)
        converted = value if reason is Reason.OUT_OF_RANGE and self.alias is not None else None
        message = describe(
            self.field,
            str(self.column),
            text,
            reason,
            alias=self.alias,
            converted=converted,
            decimal=decimal,
        )
        return Problem(row, str(self.column), self.field.name, text, reason, message)


@dataclass(frozen=True)
class _Spelling:
    """One column name of a field, the unit values under it are in, and how a header may write
    that unit in brackets."""

    field: Field
    name: str
    alias: Alias | None
    unit: str
    forms: tuple[str, ...]  # the unit as written, and its synonyms when it is the field's own

    @cached_property
    def units(self) -> frozenset[str]:
        """The forms a bracketed unit may take after :func:`unit_key`."""
        return frozenset(map(unit_key, self.forms))


def _spellings(field: Field) -> tuple[_Spelling, ...]:
    spellings = []
    for name, alias in [(field.name, None), *((a.name, a) for a in field.aliases)]:
        unit = (alias.unit if alias else "") or field.unit
        forms = (unit, *field.unit_synonyms) if unit == field.unit else (unit,)
        spellings.append(_Spelling(field, name, alias, unit, forms if unit else ()))
    return tuple(spellings)


_SPELLINGS = {f.name: _spellings(f) for f in FIELDS}
"""Field name -> its spellings: the canonical name first, then the aliases."""

_LOOKUP: dict[str, _Spelling] = {
    header_key(s.name): s for spellings in _SPELLINGS.values() for s in spellings
}
"""Normalised column name -> its spelling, for every canonical name and alias."""

_STEMS: dict[str, Field] = {
    header_key(s.name)[: -len(header_key(form)) - 1]: s.field
    for spellings in _SPELLINGS.values()
    for s in spellings
    for form in s.forms
    if header_key(form) and header_key(s.name).endswith("_" + header_key(form))
}
"""A column name without its unit (``crp``, ``bdnf``, ``age``, ``slow_wave_sleep``) -> field."""


def _match_one(column: Any) -> _Spelling | Problem | None:
    """The spelling a column name gives, a header Problem, or None for an unknown column.

    A bracketed unit must be one the matched name carries; a name that means a measured field
    but gives no unit it carries is a problem: never a guess in either direction.
    """
    text = str(column)
    key = header_key(text)
    if key in _LOOKUP:
        return _LOOKUP[key]
    bracket = _TRAILING_UNIT.search(text)
    if bracket is None:
        return unit_unclear(text, _STEMS[key], "", "") if key in _STEMS else None
    bare, said = header_key(text[: bracket.start()]), bracket.group(1).strip()
    if bare in _LOOKUP:
        spelling = _LOOKUP[bare]
        if not spelling.unit or unit_key(said) in spelling.units:
            return spelling  # a note on a unitless field, or the name's own unit
        return unit_unclear(text, spelling.field, said, spelling.unit)
    if bare in _STEMS:
        field = _STEMS[bare]
        fits = [s for s in _SPELLINGS[field.name] if unit_key(said) in s.units]
        return fits[0] if fits else unit_unclear(text, field, said, "")
    return None


class ColumnMatch(NamedTuple):
    """The result of matching input column names to schema fields.

    Attributes
    ----------
    sources : tuple of ColumnSource
        One per field given exactly once, in schema order.
    unknown : tuple of int
        Positions of the columns that match no field (passed through untouched).
    problems : tuple of Problem
        Header problems (``row`` None): a field given twice, a unit that is unclear.
    """

    sources: tuple[ColumnSource, ...]
    unknown: tuple[int, ...]
    problems: tuple[Problem, ...]


@lru_cache(maxsize=256)
def match_columns(columns: tuple[Any, ...]) -> ColumnMatch:
    """Match input column names to schema fields, collecting every header problem.

    A name matches a field's canonical name or alias after :func:`header_key`
    (``"CRP (mg/L)"`` is ``crp_mg_l``); failing that, a trailing bracketed unit is checked
    against the units the rest of the name carries (``"Age (yrs)"`` is ``age_years``,
    ``"Delta sleep ratio (ratio)"`` is ``delta_sleep_ratio``). A field given under two names
    is a problem, and so is a name that means a measured field but leaves its unit unclear or
    contradicts it (``"CRP"``, ``"crp_mg_l (mg/dL)"``, ``"crp_mg_l (nmol/L)"``): never a guess.

    Parameters
    ----------
    columns : tuple
        The input's column names, in order.
    """
    by_field: dict[str, list[ColumnSource]] = {}
    unknown = []
    problems = []
    for position, column in enumerate(columns):
        hit = _match_one(column)
        if hit is None:
            unknown.append(position)
        elif isinstance(hit, Problem):
            problems.append(hit)
        else:
            source = ColumnSource(hit.field, column, position, hit.alias)
            by_field.setdefault(hit.field.name, []).append(source)
    problems += [
        duplicate_field(sources[0].field, [str(s.column) for s in sources])
        for sources in by_field.values()
        if len(sources) > 1
    ]
    sources = tuple(by_field[f.name][0] for f in FIELDS if len(by_field.get(f.name, ())) == 1)
    return ColumnMatch(sources, tuple(unknown), tuple(problems))


class ValidationResult(NamedTuple):
    """What :func:`validate` returns.

    Attributes
    ----------
    clean : pandas.DataFrame
        The valid rows, with the input's index: every schema field in schema order (numbers and
        booleans as float64 in canonical units, categories as Categorical, missing as NaN), then
        the unknown input columns untouched.
    problems : pandas.DataFrame
        One row per bad cell: ``row`` (the input's index label), ``column`` (as the input named
        it), ``field``, ``value`` (as text), ``reason`` (a stable code) and ``message``.
    """

    clean: pd.DataFrame
    problems: pd.DataFrame


def _as_frame(
    records: Mapping[str, Any] | Iterable[Mapping[str, Any]] | pd.DataFrame,
) -> pd.DataFrame:
    if isinstance(records, pd.DataFrame):
        return records
    if isinstance(records, Mapping):
        return pd.DataFrame([records])
    if isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
        raise TypeError(
            f"validate() takes a dict, a list of dicts or a DataFrame, not {type(records).__name__}"
        )
    rows = list(records)
    bad = next((r for r in rows if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise TypeError(f"validate() takes a list of dicts; one item is a {type(bad).__name__}")
    return pd.DataFrame(rows)


def _empty_column(field: Field, n: int) -> Any:
    if field.kind is Kind.CATEGORY:
        return pd.Categorical([None] * n, categories=field.levels)
    if field.kind is Kind.TEXT:
        return np.full(n, None, dtype=object)
    return np.full(n, np.nan)


def validate(
    records: Mapping[str, Any] | Iterable[Mapping[str, Any]] | pd.DataFrame,
    *,
    decimal: str = ".",
) -> ValidationResult:
    """Validate patient records against schema v1, collecting every problem.

    A row with any bad cell is left out of ``clean`` and described in ``problems``; every other
    row is kept. Missing values are normal and never a problem.

    Parameters
    ----------
    records : dict, list of dicts, or pandas.DataFrame
        Patient records with any of the schema's column names or aliases, in any order.
    decimal : str
        The decimal mark of numbers given as text: ``"."`` or ``","`` (then ``"1,5"`` is 1.5
        and ``"1.5"`` is refused as not a number: the dot may be a thousands separator).

    Returns
    -------
    ValidationResult
        ``(clean, problems)``.

    Raises
    ------
    SchemaError
        If the columns themselves are unusable (a field given under two names, a column whose
        unit is unclear), listing every such problem.

    Examples
    --------
    >>> clean, problems = validate([{"CRP (mg/dL)": "0.25", "sex": "F"}, {"bmi_kg_m2": "high"}])
    >>> clean[["crp_mg_l", "sex"]]
       crp_mg_l     sex
    0       2.5  female
    >>> problems[["row", "column", "reason"]].to_dict("records")
    [{'row': 1, 'column': 'bmi_kg_m2', 'reason': 'not_a_number'}]
    """
    frame = _as_frame(records)
    match = match_columns(tuple(frame.columns))
    if match.problems:
        raise SchemaError(match.problems)
    n = len(frame)
    sources = {s.field.name: s for s in match.sources}
    columns: dict[str, Any] = {}
    found: list[tuple[int, int, Problem]] = []
    bad_rows = np.zeros(n, dtype=bool)
    for field in FIELDS:
        source = sources.get(field.name)
        if source is None:
            columns[field.name] = _empty_column(field, n)
            continue
        series = frame.iloc[:, source.position]
        if field.kind is Kind.TEXT:
            columns[field.name] = series.to_numpy(dtype=object)
            continue
        parsed = parse_column(field, series, source.factor, decimal=decimal)
        columns[field.name] = parsed.values
        bad = np.flatnonzero(parsed.bad)
        bad_rows[bad] = True
        for i in bad:
            row = frame.index[i]
            row = row.item() if isinstance(row, np.generic) else row
            problem = source.problem(
                row, series.iloc[i], parsed.reason(i), parsed.converted[i], decimal=decimal
            )
            found.append((i, source.position, problem))
    clean = pd.DataFrame(columns, index=frame.index)
    if match.unknown:
        clean = pd.concat([clean, frame.iloc[:, list(match.unknown)]], axis=1)
    found.sort(key=lambda item: item[:2])
    problems = pd.DataFrame(
        [[p.row, p.column, p.field, p.value, str(p.reason), p.message] for _, _, p in found],
        columns=list(PROBLEM_COLUMNS),
    )
    return ValidationResult(clean.loc[~bad_rows], problems)


def validate_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one patient record; raise ``SchemaError`` listing every problem at once.

    Parameters
    ----------
    record : mapping
        Field name (or alias, in any spelling ``validate`` accepts) -> value.

    Returns
    -------
    dict
        Every schema field in schema order -- numbers and booleans as float (NaN when missing),
        categories as their canonical level or None, text untouched or None -- then the
        record's unknown keys untouched.

    Raises
    ------
    SchemaError
        With one ``Problem`` per bad value and per header problem (``row`` is None); a field
        whose column is itself a problem (given twice, unclear unit) is not read at all.

    Examples
    --------
    >>> clean = validate_record({"crp_mg_dl": 0.25, "Route": "IV"})
    >>> clean["crp_mg_l"], clean["route"], clean["bdnf_ng_ml"]
    (2.5, 'iv_ketamine', nan)
    >>> validate_record({"age_years": 12})
    Traceback (most recent call last):
    ...
    data_schemas.errors.SchemaError: 1 problem with the input:
      age_years = 12 is outside the plausible range 18 to 100 years; check the value and its unit
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"validate_record() takes a dict, not {type(record).__name__}")
    keys = tuple(record)
    match = match_columns(keys)
    sources = {s.field.name: s for s in match.sources}
    clean: dict[str, Any] = {}
    problems = list(match.problems)
    for field in FIELDS:
        source = sources.get(field.name)
        if source is None:
            clean[field.name] = None if field.kind in (Kind.CATEGORY, Kind.TEXT) else np.nan
            continue
        raw = record[source.column]
        value, reason = parse_value(field, raw, source.factor)
        if reason is None:
            clean[field.name] = value
            continue
        problems.append(source.problem(None, raw, reason, value))
    if problems:
        raise SchemaError(problems)
    for position in match.unknown:
        clean[keys[position]] = record[keys[position]]
    return clean
