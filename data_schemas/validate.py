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
from functools import lru_cache
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
from data_schemas.parse import parse_column, parse_value

PROBLEM_COLUMNS = ("row", "column", "field", "value", "reason", "message")


def header_key(name: object) -> str:
    """Normalise a column name: case-folded, with runs of spaces, hyphens, underscores and
    other punctuation turned into one underscore (``"CRP (mg/L)"`` -> ``"crp_mg_l"``)."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().casefold()).strip("_")


_TRAILING_UNIT = re.compile(r"\s*[\(\[]([^\(\)\[\]]*)[\)\]]\s*$")


@dataclass(frozen=True)
class _Source:
    """Where one field's values come from: the input column and its unit conversion."""

    field: Field
    column: Any
    position: int
    alias: Alias | None

    @property
    def factor(self) -> float:
        return 1.0 if self.alias is None else self.alias.factor

    def problem(self, row: Any, raw: Any, reason: Reason, value: Any) -> Problem:
        """The Problem for one bad cell of this column (``value``: the parsed value, if any)."""
        text = raw if isinstance(raw, str) else str(raw)
        converted = value if reason is Reason.OUT_OF_RANGE and self.alias is not None else None
        message = describe(
            self.field, str(self.column), text, reason, alias=self.alias, converted=converted
        )
        return Problem(row, str(self.column), self.field.name, text, reason, message)


def _spellings(field: Field) -> list[tuple[str, str, Alias | None]]:
    """Every column name of a field, with its unit and alias: ``(name, unit, alias)``."""
    return [(field.name, field.unit, None)] + [(a.name, a.unit, a) for a in field.aliases]


_LOOKUP: dict[str, tuple[Field, Alias | None]] = {
    header_key(name): (f, alias) for f in FIELDS for name, _, alias in _spellings(f)
}
"""Normalised column name -> (field, alias) for every canonical name and alias."""

_UNIT_KEYS: dict[str, dict[str, Alias | None]] = {
    f.name: {header_key(unit): alias for _, unit, alias in _spellings(f) if unit} for f in FIELDS
}
"""Field -> normalised unit -> the alias that carries it (None: the canonical name)."""

_STEMS: dict[str, Field] = {
    header_key(name)[: -len(header_key(unit)) - 1]: f
    for f in FIELDS
    for name, unit, _ in _spellings(f)
    if unit and header_key(name).endswith("_" + header_key(unit))
}
"""A field's name without its unit (``crp``, ``bdnf``, ``bmi``, ``age``) -> the field."""


def _match_one(column: Any) -> tuple[Field, Alias | None] | Problem | None:
    """The field (and alias) a column name gives, a header Problem, or None for unknown."""
    key = header_key(column)
    if key in _LOOKUP:
        return _LOOKUP[key]
    bracket = _TRAILING_UNIT.search(str(column))
    bare = header_key(str(column)[: bracket.start()]) if bracket else key
    field: Field | None = None
    if bare in _LOOKUP:
        field, alias = _LOOKUP[bare]
        said = header_key(bracket.group(1))
        units = _UNIT_KEYS[field.name]
        if said not in units or units[said] is alias:  # no unit, or the name's own: fine
            return field, alias
        said = bracket.group(1).strip()
    elif bare in _STEMS:
        field, said = _STEMS[bare], ""
    if field is None:
        return None
    spellings = [(name, unit) for name, unit, _ in _spellings(field)]
    return unit_unclear(str(column), field, spellings, said)


class ColumnMatch(NamedTuple):
    """The result of matching input column names to schema fields."""

    sources: tuple[_Source, ...]  # one per matched field, in schema order
    unknown: tuple[int, ...]  # positions of columns that match no field (passed through)


@lru_cache(maxsize=256)
def match_columns(columns: tuple[Any, ...]) -> ColumnMatch:
    """Match input column names to fields; raise ``SchemaError`` listing every header problem.

    A name matches a field's canonical name or alias after :func:`header_key`; failing that,
    the name with a trailing bracketed unit dropped is tried (``"Delta sleep ratio (ratio)"``).
    A field given under two names is an error, and so is a name that means a measured field but
    leaves its unit unclear (``"CRP"``; ``"crp_mg_l (mg/dL)"``): never a guess.

    Parameters
    ----------
    columns : tuple
        The input's column names, in order.
    """
    by_field: dict[str, list[_Source]] = {}
    unknown = []
    problems = []
    for position, column in enumerate(columns):
        hit = _match_one(column)
        if hit is None:
            unknown.append(position)
        elif isinstance(hit, Problem):
            problems.append(hit)
        else:
            field, alias = hit
            by_field.setdefault(field.name, []).append(_Source(field, column, position, alias))
    problems += [
        duplicate_field(sources[0].field, [str(s.column) for s in sources])
        for sources in by_field.values()
        if len(sources) > 1
    ]
    if problems:
        raise SchemaError(problems)
    ordered = tuple(by_field[f.name][0] for f in FIELDS if f.name in by_field)
    return ColumnMatch(ordered, tuple(unknown))


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
) -> ValidationResult:
    """Validate patient records against schema v1, collecting every problem.

    A row with any bad cell is left out of ``clean`` and described in ``problems``; every other
    row is kept. Missing values are normal and never a problem.

    Parameters
    ----------
    records : dict, list of dicts, or pandas.DataFrame
        Patient records with any of the schema's column names or aliases, in any order.

    Returns
    -------
    ValidationResult
        ``(clean, problems)``.

    Raises
    ------
    SchemaError
        If the columns themselves are unusable (one field given under two names).

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
        parsed = parse_column(field, series, source.factor)
        columns[field.name] = parsed.values
        bad = np.flatnonzero(parsed.bad)
        bad_rows[bad] = True
        for i in bad:
            row = frame.index[i]
            row = row.item() if isinstance(row, np.generic) else row
            problem = source.problem(row, series.iloc[i], parsed.reason(i), parsed.converted[i])
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
        With one ``Problem`` per bad value (``row`` is None).

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
    problems = []
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
