"""Validation: match column names to fields, parse every cell, report every problem.

Two entry points share the header matching, the parsers and the message wording:

* :func:`validate` takes a dict, a list of dicts or a DataFrame and returns the clean rows and a
  problems table (vectorised: no per-row Python);
* :func:`validate_record` takes one dict and returns one clean dict or raises ``SchemaError``
  listing every problem (no DataFrame is built: this is the fast single-patient path).
"""

from __future__ import annotations

import re
import unicodedata
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
    resembles_field,
    unit_unclear,
)
from data_schemas.fields import FIELDS, FIELDS_BY_NAME, Alias, Field, Kind, Role
from data_schemas.parse import categorical, header_key, parse_column, parse_value

PROBLEM_COLUMNS = ("row", "column", "field", "value", "reason", "message")


def unit_key(unit: str) -> str:
    """Normalise a unit as written in a header: ``"kg/m²"``, ``"kg/m^2"`` -> ``"kg/m2"``."""
    folded = unit.casefold().replace("²", "2").replace("^", "").replace("µ", "u")
    return re.sub(r"\s+", "", folded.replace("μ", "u"))


_TRAILING_UNIT = re.compile(r"\s*(?:[\(\[]([^\(\)\[\]]*)[\)\]]|(%))\s*$")
"""A unit at the end of a header: in round or square brackets, or a bare ``%`` (``N3 %``)."""


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


def _nfkc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def _match_one(column: Any, named: str | None = None) -> _Spelling | Problem | None:
    """The spelling a column name gives, a header Problem, or None for an unknown column.

    The name is read after NFKC normalisation (fullwidth letters and brackets are the ASCII
    ones). A trailing unit must be one the matched name carries; a name that means a measured
    field but gives no unit it carries is a problem: never a guess in either direction.
    ``named`` is the column as messages name it (default: ``str(column)``).
    """
    named = str(column) if named is None else named
    text = _nfkc(str(column))
    key = header_key(text)
    bracket = _TRAILING_UNIT.search(text)
    said = ("%" if bracket.group(2) else bracket.group(1)).strip() if bracket else ""
    if key in _LOOKUP and (not said or header_key(said)):
        return _LOOKUP[key]  # a unit of symbols only ("%") has vanished from the key: check it
    if bracket is None:
        return unit_unclear(named, _STEMS[key], "", "") if key in _STEMS else None
    bare = header_key(text[: bracket.start()])
    if bare in _LOOKUP:
        spelling = _LOOKUP[bare]
        if not spelling.unit or unit_key(said) in spelling.units:
            return spelling  # a note on a unitless field, or the name's own unit
        return unit_unclear(named, spelling.field, said, spelling.unit)
    if bare in _STEMS:
        field = _STEMS[bare]
        fits = [s for s in _SPELLINGS[field.name] if unit_key(said) in s.units]
        return fits[0] if fits else unit_unclear(named, field, said, "")
    return None


# --------------------------------------------------------------------------- resemblance


@dataclass(frozen=True)
class Resemblance:
    """A column that matches no field but resembles one (a name the header matching refused
    to guess at); its values are passed through, unread.

    Parameters
    ----------
    position : int
        The column's position in the input.
    column : str
        The column as the input named it.
    field : str
        The canonical name of the field it resembles.
    why : str
        Why, worded to follow "it": ``"contains a look-alike letter: Cyrillic '\u0421'"``,
        ``"contains the name 'crp'"``, ``"is one edit away from 'route'"``.
    """

    position: int
    column: str
    field: str
    why: str

    def problem(self) -> Problem:
        """This resemblance as a header Problem (reason ``resembles_field``)."""
        return resembles_field(self.column, FIELDS_BY_NAME[self.field], self.why)


_LOOKALIKE_LETTERS: dict[str, str] = {
    "A": "CYRILLIC CAPITAL LETTER A, GREEK CAPITAL LETTER ALPHA",
    "B": "CYRILLIC CAPITAL LETTER VE, GREEK CAPITAL LETTER BETA",
    "C": "CYRILLIC CAPITAL LETTER ES",
    "E": "CYRILLIC CAPITAL LETTER IE, GREEK CAPITAL LETTER EPSILON",
    "H": "CYRILLIC CAPITAL LETTER EN, GREEK CAPITAL LETTER ETA",
    "I": "CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I, GREEK CAPITAL LETTER IOTA",
    "J": "CYRILLIC CAPITAL LETTER JE",
    "K": "CYRILLIC CAPITAL LETTER KA, GREEK CAPITAL LETTER KAPPA",
    "M": "CYRILLIC CAPITAL LETTER EM, GREEK CAPITAL LETTER MU",
    "N": "GREEK CAPITAL LETTER NU",
    "O": "CYRILLIC CAPITAL LETTER O, GREEK CAPITAL LETTER OMICRON",
    "P": "CYRILLIC CAPITAL LETTER ER, GREEK CAPITAL LETTER RHO",
    "Q": "CYRILLIC CAPITAL LETTER QA",
    "S": "CYRILLIC CAPITAL LETTER DZE",
    "T": "CYRILLIC CAPITAL LETTER TE, GREEK CAPITAL LETTER TAU",
    "W": "CYRILLIC CAPITAL LETTER WE",
    "X": "CYRILLIC CAPITAL LETTER HA, GREEK CAPITAL LETTER CHI",
    "Y": "CYRILLIC CAPITAL LETTER U, GREEK CAPITAL LETTER UPSILON",
    "Z": "GREEK CAPITAL LETTER ZETA",
    "a": "CYRILLIC SMALL LETTER A, GREEK SMALL LETTER ALPHA",
    "c": "CYRILLIC SMALL LETTER ES",
    "d": "CYRILLIC SMALL LETTER KOMI DE",
    "e": "CYRILLIC SMALL LETTER IE",
    "h": "CYRILLIC SMALL LETTER SHHA",
    "i": "CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I, GREEK SMALL LETTER IOTA",
    "j": "CYRILLIC SMALL LETTER JE",
    "k": "GREEK SMALL LETTER KAPPA",
    "l": "CYRILLIC LETTER PALOCHKA",
    "o": "CYRILLIC SMALL LETTER O, GREEK SMALL LETTER OMICRON",
    "p": "CYRILLIC SMALL LETTER ER, GREEK SMALL LETTER RHO",
    "q": "CYRILLIC SMALL LETTER QA",
    "s": "CYRILLIC SMALL LETTER DZE",
    "u": "GREEK SMALL LETTER UPSILON",
    "v": "GREEK SMALL LETTER NU",
    "w": "CYRILLIC SMALL LETTER WE",
    "x": "CYRILLIC SMALL LETTER HA, GREEK SMALL LETTER CHI",
    "y": "CYRILLIC SMALL LETTER U, GREEK SMALL LETTER GAMMA",
}
"""Latin letter -> the Cyrillic and Greek letters (by Unicode name) that look like it."""

_LOOKALIKES = str.maketrans(
    {
        unicodedata.lookup(name): latin
        for latin, names in _LOOKALIKE_LETTERS.items()
        for name in names.split(", ")
    }
)
"""Look-alike letter -> the Latin letter. Never used to match a column (a look-alike is another
letter: never a guess), only to say what a column resembles."""

_RESEMBLED = (Role.ID, Role.PREDICTOR, Role.SAFETY)
"""Roles whose fields a column is checked against. A missed outcome column makes training fail
loudly, and scoring never reads it (a column ``responded_at`` resembles nothing)."""

_NAMES: tuple[tuple[str, Field], ...] = tuple(
    sorted(
        {
            **{key: s.field for key, s in _LOOKUP.items()},
            **_STEMS,
        }.items(),
        key=lambda item: (-len(item[0]), item[0]),
    )
)
"""Every name, alias and stem (its key) of a field, longest first."""

_UNIT_WORDS: tuple[str, ...] = tuple(
    sorted(
        {
            header_key(form)
            for spellings in _SPELLINGS.values()
            for s in spellings
            for form in s.forms
            if header_key(form)
        },
        key=len,
        reverse=True,
    )
)
"""Units as a header may end with them (``mg_l``, ``years``, ``pct``), longest first."""

_SPELLED_OUT = ("no", "one", "two")


def _edits(a: str, b: str, limit: int) -> int:
    """The optimal-string-alignment distance (insertions, deletions, substitutions and swaps of
    neighbours) between ``a`` and ``b``, or ``limit + 1`` once it is larger than ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                best = min(best, before[j - 2] + 1)
            current.append(best)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return min(previous[-1], limit + 1)


def _allowed_edits(name: str) -> int:
    """Edits a name may be away from a column and still resemble it: none for names of three
    letters or fewer (``sex`` and ``set``, ``age`` and ``page`` are other words), one up to
    eight letters, two beyond."""
    return 0 if len(name) <= 3 else 1 if len(name) <= 8 else 2


def _name_part(text: str) -> str:
    """A header's key without its trailing unit, bracketed (``"Cr (mg/dL)"``) or spelled out
    (``"Cr mg/dL"``): ``"cr"``."""
    bracket = _TRAILING_UNIT.search(text)
    key = header_key(text[: bracket.start()] if bracket else text)
    for unit in _UNIT_WORDS:
        if key.endswith("_" + unit):
            return key[: -len(unit) - 1]
    return key


def _digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)


def _resemblance(position: int, column: Any, skip: frozenset[str]) -> Resemblance | None:
    """What an unknown column resembles, if anything: the first of (a) a name that matches
    once its look-alike letters are read as Latin ones, (b) a field's name, alias or stem as
    whole words inside it, (c) a field's name, alias or stem a few edits away, with separators
    left out and the same digits (``N2 pct`` does not resemble ``n3_pct``). Fields in ``skip``
    (given by another column) and outcome fields are never resembled."""
    named = str(column)
    text = _nfkc(named)
    latin = text.translate(_LOOKALIKES)
    alike = ""
    if latin != text:
        letters = dict.fromkeys(c for c, d in zip(text, latin, strict=True) if c != d)
        scripts = [f"{unicodedata.name(c).split()[0].title()} {c!r}" for c in letters]
        alike = f"{'look-alike letters' if len(scripts) > 1 else 'a look-alike letter'}: "
        alike += ", ".join(scripts)
        hit = _match_one(latin, named)  # a spelling, or a unit problem that names its field
        if hit is not None:
            meant = hit.field if isinstance(hit, _Spelling) else FIELDS_BY_NAME[hit.field]
            if meant.role in _RESEMBLED and meant.name not in skip:
                return Resemblance(position, named, meant.name, f"contains {alike}")
    also = f", and {alike}" if alike else ""
    fields = [(name, f) for name, f in _NAMES if f.role in _RESEMBLED and f.name not in skip]
    words = f"_{header_key(latin)}_"
    for name, field in fields:
        if f"_{name}_" in words:
            return Resemblance(position, named, field.name, f"contains the name {name!r}{also}")
    part = _name_part(latin)
    squashed, digits = part.replace("_", ""), _digits(part)
    best: tuple[int, str, Field] | None = None
    for name, field in fields:
        limit = _allowed_edits(name.replace("_", ""))
        if limit == 0 or _digits(name) != digits:
            continue
        edits = _edits(squashed, name.replace("_", ""), limit)
        if edits <= limit and (best is None or edits < best[0]):
            best = (edits, name, field)
    if best is None:
        return None
    edits, name, field = best
    why = (
        f"is {name!r} without separators"
        if edits == 0
        else f"is {_SPELLED_OUT[edits]} edit{'s' if edits > 1 else ''} away from {name!r}"
    )
    return Resemblance(position, named, field.name, why + also)


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
    resembling : tuple of Resemblance
        The unknown columns that resemble a field no other column gives (a look-alike letter,
        the field's name inside, a few edits away), in column order; they are passed through
        unread like any unknown column. :meth:`resemblance_problems` turns them into problems.
    """

    sources: tuple[ColumnSource, ...]
    unknown: tuple[int, ...]
    problems: tuple[Problem, ...]
    resembling: tuple[Resemblance, ...] = ()

    def resemblance_problems(self) -> tuple[Problem, ...]:
        """The resembling columns as header problems (reason ``resembles_field``), for callers
        that refuse them (``--strict-columns``): raise ``SchemaError(problems)`` with them.

        Examples
        --------
        >>> (problem,) = match_columns(("patient_id", "Baseline CRP")).resemblance_problems()
        >>> print(problem.message)  # doctest: +NORMALIZE_WHITESPACE
        column 'Baseline CRP' matches no field but resembles crp_mg_l (it contains the name
        'crp'); rename it to crp_mg_l for mg/L or crp_mg_dl for mg/dL, or rename it so that it
        does not resemble a field
        """
        return tuple(r.problem() for r in self.resembling)


@lru_cache(maxsize=256)
def match_columns(columns: tuple[Any, ...]) -> ColumnMatch:
    """Match input column names to schema fields, collecting every header problem.

    A name matches a field's canonical name or alias after :func:`header_key`, which
    NFKC-normalises it (``"CRP (mg/L)"`` and fullwidth ``"\uff23\uff32\uff30 (mg/L)"`` are
    ``crp_mg_l``); failing that, a trailing unit in brackets (or a bare ``%``) is checked
    against the units the rest of the name carries (``"Age (yrs)"`` is ``age_years``,
    ``"N3 %"`` is ``slow_wave_sleep_pct``, ``"Delta sleep ratio (ratio)"`` is
    ``delta_sleep_ratio``). A field given under two names is a problem, and so is a name that
    means a measured field but leaves its unit unclear or contradicts it (``"CRP"``,
    ``"crp_mg_l (mg/dL)"``, ``"crp_mg_l (nmol/L)"``, ``"crp_mg_l (%)"``): never a guess.

    A column that matches nothing is passed through; when it resembles a field that no other
    column gives, it is also listed in ``resembling`` (``"\u0421RP (mg/L)"`` with a Cyrillic
    ``\u0421``, ``"Baseline CRP"``, ``"Rout"``), never matched.

    Parameters
    ----------
    columns : tuple
        The input's column names, in order.

    Examples
    --------
    >>> match = match_columns(("hsCRP (mg/dL)", "Gender", "\u0412MI (kg/m2)", "Site"))
    >>> [(s.field.name, s.factor) for s in match.sources]
    [('sex', 1.0), ('crp_mg_l', 10.0)]
    >>> match.unknown
    (2, 3)
    >>> match.resembling  # doctest: +NORMALIZE_WHITESPACE
    (Resemblance(position=2, column='\u0412MI (kg/m2)', field='bmi_kg_m2',
                 why="contains a look-alike letter: Cyrillic '\u0412'"),)
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
    given = frozenset(by_field) | {p.field for p in problems}
    resembling = (_resemblance(i, columns[i], given) for i in unknown)
    return ColumnMatch(
        sources, tuple(unknown), tuple(problems), tuple(r for r in resembling if r is not None)
    )


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


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(value: Any) -> Any:
    r"""A string holding lone surrogates with each written as its backslash escape
    (``"\ud800"``); any other value as it is.

    A lone surrogate is no character: Python makes one from a JSON ``"\ud800"`` or from bytes
    read with ``errors="surrogateescape"``, and no UTF-8 file, Arrow array or pandas ``str``
    column can hold it. :func:`validate` reads such text escaped, so that the cell is refused
    by a number, category or boolean field and carried, visibly, in a text or unknown column.

    >>> escape_surrogates("A\udc80"), escape_surrogates(3)
    ('A\\udc80', 3)
    """
    if isinstance(value, str) and _LONE_SURROGATE.search(value):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _holds_python_strings(dtype: Any) -> bool:
    """Whether a column of this dtype holds Python strings, which may hold a lone surrogate
    (object, and pandas' ``string`` dtype stored as Python objects; Arrow's cannot)."""
    return dtype == np.dtype(object) or (
        isinstance(dtype, pd.StringDtype) and getattr(dtype, "storage", "") == "python"
    )


def _escaped(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with lone surrogates escaped (:func:`escape_surrogates`) in its column names and
    in the strings of its columns of Python strings (written back as object columns): a
    shallow copy where it has any, else itself. (Arrow's strings cannot hold one.)"""
    names = [escape_surrogates(name) for name in frame.columns]
    escaped = {
        position: series.map(escape_surrogates).to_numpy(dtype=object)
        for position, (_, series) in enumerate(frame.items())
        if _holds_python_strings(series.dtype)
        and _LONE_SURROGATE.search("".join(v for v in series.tolist() if isinstance(v, str)))
    }
    if not escaped and names == list(frame.columns):
        return frame
    frame = frame.copy(deep=False)
    for position, values in escaped.items():
        frame.isetitem(position, values)
    frame.columns = names
    return frame


def _as_frame(
    records: Mapping[str, Any] | Iterable[Mapping[str, Any]] | pd.DataFrame,
) -> pd.DataFrame:
    if isinstance(records, pd.DataFrame):
        return _escaped(records)
    if isinstance(records, Mapping):
        rows: list[Mapping[str, Any]] = [records]
    elif isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
        raise TypeError(
            f"validate() takes a dict, a list of dicts or a DataFrame, not {type(records).__name__}"
        )
    else:
        rows = list(records)
    bad = next((r for r in rows if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise TypeError(f"validate() takes a list of dicts; one item is a {type(bad).__name__}")
    try:
        return _escaped(pd.DataFrame(rows))
    except UnicodeEncodeError:  # a lone surrogate in a column pandas reads as str
        return pd.DataFrame(
            [{escape_surrogates(k): escape_surrogates(v) for k, v in row.items()} for row in rows]
        )


def _empty_column(field: Field, n: int) -> Any:
    if field.kind is Kind.CATEGORY:
        return categorical(field, np.full(n, -1))
    if field.kind is Kind.TEXT:
        return np.full(n, None, dtype=object)
    return np.full(n, np.nan)


def _text_column(series: pd.Series) -> Any:
    """A text field's cells for the clean frame: as an object array, which the DataFrame
    constructor reads as ``str`` when it holds a string and only strings or missing cells.

    A column already of that ``str`` dtype, with a string, is passed as it is: the same
    column without a round trip through a Python object per cell.
    """
    if series.dtype == pd.StringDtype(na_value=np.nan) and series.count() > 0:
        return series.array
    return series.to_numpy(dtype=object)


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
    given = [series for _, series in frame.items()]  # by position: a third of iloc's cost
    for field in FIELDS:
        source = sources.get(field.name)
        if source is None:
            columns[field.name] = _empty_column(field, n)
            continue
        series = given[source.position]
        if field.kind is Kind.TEXT:
            columns[field.name] = _text_column(series)
            continue
        parsed = parse_column(field, series, source.factor, decimal=decimal)
        columns[field.name] = parsed.values
        if not parsed.codes.any():
            continue  # the usual column: an empty take per column costs more than the check
        bad = np.flatnonzero(parsed.bad)
        bad_rows[bad] = True
        # The bad cells taken at once: iterating their array gives what series.iloc[i] gives
        # (numpy scalars stay numpy scalars), without pandas' indexing per cell. A Categorical
        # array gives Python scalars (a float32 0.1 would show as 0.10000000149011612): there
        # series.iloc[i] per cell.
        if isinstance(series.dtype, pd.CategoricalDtype):
            cells = [series.iloc[i] for i in bad.tolist()]
        else:
            cells = series.iloc[bad].array
        for i, raw in zip(bad.tolist(), cells, strict=True):
            row = frame.index[i]
            row = row.item() if isinstance(row, np.generic) else row
            problem = source.problem(
                row, raw, parsed.reason(i), parsed.converted[i], decimal=decimal
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


_NOTHING_GIVEN: dict[str, Any] = {
    field.name: None if field.kind in (Kind.CATEGORY, Kind.TEXT) else np.nan for field in FIELDS
}
"""A clean record of no values, every schema field in schema order: where
:func:`validate_record` starts (copying it costs less than building it per record)."""


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
    clean = dict(_NOTHING_GIVEN)
    problems = list(match.problems)
    for source in match.sources:  # in schema order
        raw = record[source.column]
        value, reason = parse_value(source.field, raw, source.factor)
        if reason is None:
            clean[source.field.name] = value
            continue
        problems.append(source.problem(None, raw, reason, value))
    if problems:
        raise SchemaError(problems)
    for position in match.unknown:
        clean[keys[position]] = record[keys[position]]
    return clean
