"""Parsing cells of one field: a scalar path for single records, a vectorised one for columns.

Both paths read the same token tables below and accept the same language (a property test
holds them to it): decimal numbers with an optional exponent, ``inf``/``infinity`` (rejected as
not finite), the missing tokens (:data:`MISSING_TOKENS`), and the boolean spellings.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_schemas.errors import Reason
from data_schemas.fields import BOOLEAN_PAIRS, FIELDS, Field, Kind

MISSING_TOKENS = frozenset({"", "na", "n/a", "#n/a", "nan", "null", "unknown", ".", "-"})
"""Cell texts meaning "not recorded", compared after stripping and case-folding only (never
:func:`header_key`): an empty cell, ``NA``, ``N/A``, ``#N/A`` (a spreadsheet's "no value"),
``NaN``, ``null``, ``unknown``, ``.`` and ``-``, in any case."""

BOOLEAN_TOKENS = {
    **{yes: 1.0 for yes, _ in BOOLEAN_PAIRS},
    **{no: 0.0 for _, no in BOOLEAN_PAIRS},
    "1.0": 1.0,
    "0.0": 0.0,
    "-0.0": 0.0,
}
"""Boolean spellings (compared after stripping and case-folding) -> 1.0 / 0.0.

``"1.0"``, ``"0.0"`` and ``"-0.0"`` are how the floats 1.0, 0.0 and -0.0 read as text, which is
how the vector path sees a number in a column of mixed objects.
"""

_BOOLEAN_TOKENS_BY_DECIMAL = {
    ".": BOOLEAN_TOKENS,
    ",": {**BOOLEAN_TOKENS, "1,0": 1.0, "0,0": 0.0, "-0,0": 0.0},
}
"""The boolean spellings for each decimal mark: with a decimal comma, ``1,0`` is 1.0 (as R's
``write.csv2`` writes a 0/1 column of floats)."""

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INFINITY = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)
_SEPARATORS = re.compile(r"[^0-9a-z]+")


def fold(text: str) -> str:
    """Unicode NFKC normalisation and case folding: fullwidth ``"\uff23\uff32\uff30"`` and
    ``"CRP"`` both give ``"crp"``, the micro sign gives Greek mu. Look-alike letters of other
    scripts (Cyrillic ``"\u0421"``) are left as they are: they are other letters.

    >>> fold("\uff23\uff32\uff30 \uff08mg/L\uff09")  # fullwidth "CRP (mg/L)"
    'crp (mg/l)'
    """
    if text.isascii():
        return text.casefold()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def header_key(name: object) -> str:
    """Normalise a name: NFKC-normalised and case-folded (:func:`fold`), with runs of spaces,
    hyphens, underscores and other punctuation turned into one underscore (``"CRP (mg/L)"``,
    and fullwidth ``"\uff23\uff32\uff30 (mg/L)"``, -> ``"crp_mg_l"``). Column names and
    category levels are both matched by it (``"IV ketamine"`` -> ``"iv_ketamine"``)."""
    return _SEPARATORS.sub("_", fold(str(name).strip())).strip("_")


def _level_lookup(field: Field) -> dict[str, str]:
    lookup = {header_key(level): level for level in field.levels}
    lookup.update({header_key(alias): level for alias, level in field.level_aliases.items()})
    return lookup


_LEVEL_LOOKUPS = {id(f): _level_lookup(f) for f in FIELDS if f.kind is Kind.CATEGORY}


def _category_dtype(field: Field) -> pd.CategoricalDtype:
    return pd.Categorical([], categories=field.levels).dtype  # levels' dtype as pandas infers it


_CATEGORY_DTYPES = {id(f): _category_dtype(f) for f in FIELDS if f.kind is Kind.CATEGORY}
"""The dtype of each of the schema's category fields, made once."""


def categorical(field: Field, codes: np.ndarray) -> pd.Categorical:
    """A category field's values from level positions (``field.levels[k]``, -1 for missing),
    with no inference of levels or of their dtype per call (the schema's fields' dtypes are
    built once).

    >>> from data_schemas.fields import FIELDS_BY_NAME
    >>> categorical(FIELDS_BY_NAME["sex"], np.array([1, -1])).tolist()
    ['male', nan]
    """
    dtype = _CATEGORY_DTYPES.get(id(field))
    return pd.Categorical.from_codes(codes, dtype=dtype or _category_dtype(field))


def level_lookup(field: Field) -> dict[str, str]:
    """Normalised spelling (:func:`header_key`) -> canonical level, for a category field
    (built once for the schema's own fields)."""
    lookup = _LEVEL_LOOKUPS.get(id(field))
    return lookup if lookup is not None else _level_lookup(field)


# --------------------------------------------------------------------------- scalar path


def is_missing(value: Any) -> bool:
    """True for ``None``, ``pd.NA``, a float NaN, or a missing token such as ``"NA"``."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)  # ~20x faster than np.isnan on one number
    if isinstance(value, str):
        return value.strip().casefold() in MISSING_TOKENS
    return False


CONTAINERS = (list, tuple, set, frozenset, dict, bytes, bytearray, memoryview, np.ndarray)
"""Values that are no cell: a list, a set, a mapping, an array (a Parquet list column's
cell) or bytes is refused by every number, category and boolean field (its text,
``"['iv']"``, would otherwise match a level once its brackets and quotes are read as
separators), on both paths."""

_NOT_A_CELL = {
    Kind.CATEGORY: Reason.UNKNOWN_LEVEL,
    Kind.BOOLEAN: Reason.NOT_A_BOOLEAN,
    Kind.NUMBER: Reason.NOT_A_NUMBER,
    Kind.INTEGER: Reason.NOT_A_NUMBER,
}
"""The reason a field of each kind gives a value of :data:`CONTAINERS`."""


def _as_number_or_text(value: Any) -> float | str:
    """A cell as a Python float (numeric types) or as stripped text (everything else)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        try:
            return float(value)
        except OverflowError:  # an int beyond any float: infinite, as the vector path sees it
            return math.inf if value > 0 else -math.inf
    return (value if isinstance(value, str) else str(value)).strip()


def parse_value(
    field: Field, value: Any, factor: float = 1.0, *, decimal: str = "."
) -> tuple[Any, Reason | None]:
    """Parse one cell of ``field``.

    Parameters
    ----------
    field : Field
        The field the cell belongs to.
    value : object
        The cell as given (str, int, float, bool, None, numpy scalar...).
    factor : float
        Unit conversion to the canonical unit (from the column's alias).
    decimal : str
        The decimal mark of a number given as text, ``"."`` or ``","`` (as for
        :func:`parse_column`).

    Returns
    -------
    (parsed, reason)
        ``reason`` is None on success; ``parsed`` is then a float (numbers, booleans; NaN when
        missing), a canonical level or None (categories), or the value untouched (text).
        On ``OUT_OF_RANGE``, ``parsed`` is the value in the canonical unit; on any other
        reason it is None.

    Examples
    --------
    >>> from data_schemas.fields import FIELDS_BY_NAME
    >>> parse_value(FIELDS_BY_NAME["crp_mg_l"], " 0.25 ", factor=10.0)
    (2.5, None)
    >>> parse_value(FIELDS_BY_NAME["sex"], "F")
    ('female', None)
    >>> parse_value(FIELDS_BY_NAME["bmi_kg_m2"], "high")
    (None, <Reason.NOT_A_NUMBER: 'not_a_number'>)
    """
    if field.kind is Kind.TEXT:
        return value, None
    if is_missing(value):
        return (None if field.kind is Kind.CATEGORY else math.nan), None
    if isinstance(value, CONTAINERS):
        return None, _NOT_A_CELL[field.kind]
    cell = _as_number_or_text(value)
    if field.kind is Kind.CATEGORY:
        lookup = level_lookup(field)
        # a cell already normalised (as the schema spells its levels) is its own header_key
        level = lookup.get(cell) if isinstance(cell, str) else None
        level = level or lookup.get(header_key(cell))
        return (level, None) if level is not None else (None, Reason.UNKNOWN_LEVEL)
    if field.kind is Kind.BOOLEAN:
        tokens = _BOOLEAN_TOKENS_BY_DECIMAL[decimal]
        flag = tokens.get(cell.casefold()) if isinstance(cell, str) else None
        if isinstance(cell, float) and cell in (0.0, 1.0):
            flag = cell + 0.0  # -0.0 is 0.0, as on the vector path
        return (flag, None) if flag is not None else (None, Reason.NOT_A_BOOLEAN)
    if isinstance(cell, str):
        if decimal == ",":  # "1,5" is 1.5; "1.5" is refused (a thousands separator, perhaps)
            if "." in cell:
                return None, Reason.NOT_A_NUMBER
            cell = cell.replace(",", ".")
        if _INFINITY.fullmatch(cell):
            return None, Reason.NOT_FINITE
        if not _NUMBER.fullmatch(cell):
            return None, Reason.NOT_A_NUMBER
        cell = float(cell)
    if not math.isfinite(cell):
        return None, Reason.NOT_FINITE
    if field.kind is Kind.INTEGER and not cell.is_integer():
        return None, Reason.NOT_AN_INTEGER
    number = cell * factor + 0.0  # "-0" is 0.0, as on the vector path
    low, high = field.bounds
    if number < low or number > high:
        return number, Reason.OUT_OF_RANGE
    return number, None


# --------------------------------------------------------------------------- vector path


REASONS: tuple[Reason, ...] = tuple(Reason)
"""Reason codes of the vector path: code ``k > 0`` stands for ``REASONS[k - 1]``; 0 is fine."""
_CODE = {reason: code for code, reason in enumerate(REASONS, start=1)}


@dataclass(frozen=True)
class ParsedColumn:
    """One column parsed: canonical values plus a reason code for each cell.

    ``values`` is float64 (numbers, booleans) or a Categorical (categories), NaN where missing
    or bad; ``codes`` is 0 where a cell is fine and ``k`` for ``REASONS[k - 1]`` where it is
    bad; ``converted`` is the value in the canonical unit, for out-of-range messages.
    """

    values: np.ndarray | pd.Categorical
    codes: np.ndarray
    converted: np.ndarray

    @property
    def bad(self) -> np.ndarray:
        return self.codes > 0

    def reason(self, i: int) -> Reason:
        return REASONS[self.codes[i] - 1]

    def take(self, indices: np.ndarray) -> ParsedColumn:
        """The parsed values at ``indices``; index -1 gives a missing cell."""
        if isinstance(self.values, pd.Categorical):
            values = self.values.take(indices, allow_fill=True)
        else:
            values = np.append(self.values, np.nan)[indices]
        if self.codes.any():
            codes = np.append(self.codes, np.int8(0))[indices]
            converted = np.append(self.converted, np.nan)[indices]
            return ParsedColumn(values, codes, converted)
        # Every value is fine (the usual case): no code to spread, and the converted values are
        # the values themselves (numbers) or all NaN (booleans, categories).
        codes = np.zeros(len(indices), dtype=np.int8)
        if isinstance(values, pd.Categorical) or np.isnan(self.converted).all():
            return ParsedColumn(values, codes, np.full(len(indices), np.nan))
        return ParsedColumn(values, codes, values)


_ONLY_SCALARS = frozenset(
    {"string", "floating", "integer", "boolean", "empty", "mixed-integer-float", "decimal"}
)
"""What ``pandas.api.types.infer_dtype`` says of an object column that holds no
:data:`CONTAINERS` value."""
_NO_CELL = "\ufffc"
"""The text a :data:`CONTAINERS` value is read as on the vector path: U+FFFC, OBJECT
REPLACEMENT CHARACTER, which is no number, boolean spelling, missing token or level (its
:func:`header_key` is empty)."""


def _text(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Stripped, case-folded text of each cell (NaN where absent), and the missing mask."""
    absent = series.isna().to_numpy()  # before astype: pandas 2 turns None into "None"
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) not in (
        _ONLY_SCALARS
    ):
        series = series.map(lambda value: _NO_CELL if isinstance(value, CONTAINERS) else value)
    text = series.astype("str").str.strip().str.casefold().where(~absent)
    missing = absent | text.isin(MISSING_TOKENS).to_numpy()
    return text, missing


def _is_string_storage(series: pd.Series) -> bool:
    """True for a column stored as strings (pandas' ``str``/``string`` dtypes, Arrow strings),
    as a CSV reader gives them; False for numbers and for mixed Python objects."""
    return series.dtype != object and pd.api.types.is_string_dtype(series.dtype)


def parse_column(
    field: Field, series: pd.Series, factor: float = 1.0, *, decimal: str = "."
) -> ParsedColumn:
    """Parse a whole column of ``field``, vectorised; the same rules as :func:`parse_value`.

    A column stored as strings is parsed one distinct value at a time (factorized, the rules
    below applied to the distinct values, the results spread back), so a million cells that
    hold a few thousand distinct values cost a few thousand parses. The distinct values of a
    number field that are all plain numbers (or missing) are read in one Arrow cast; a
    category or boolean column spelled as the schema spells it skips the factorizing (one
    Arrow lookup per cell among those spellings, parsed once). Every path gives
    :func:`parse_value`'s verdicts, as property tests check.

    Parameters
    ----------
    field : Field
        The field (not TEXT: text columns are passed through untouched).
    series : pandas.Series, shape (n,)
        The column as given: numeric, boolean, string or mixed object.
    factor : float
        Unit conversion to the canonical unit.
    decimal : str
        The decimal mark of numbers given as text: ``"."`` (default) or ``","`` (European
        spreadsheets; a number written with ``"."`` is then not a number, since it may be a
        thousands separator).
    """
    if decimal not in (".", ","):
        raise ValueError(f"decimal must be '.' or ',', not {decimal!r}")
    if _is_string_storage(series) and len(series) > 1:
        known = _parse_known_spellings(field, series, decimal)
        if known is not None:
            return known
        codes, distinct = _factorize(series)
        parsed = _parse_plain_numbers(field, distinct, factor, decimal)
        if parsed is None and len(distinct) <= _FEW_DISTINCT:
            parsed = _parse_each(field, distinct.to_pylist(), factor, decimal)
        elif parsed is None:
            texts = pd.Series(distinct.to_pylist(), dtype=series.dtype)
            parsed = _parse_column(field, texts, factor, decimal)
        return parsed.take(codes)
    return _parse_column(field, series, factor, decimal)


def _factorize(series: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """The distinct values of a column stored as strings, in order of first appearance, and
    the position of each cell's value among them (-1 for a missing cell): ``pd.factorize``
    done by Arrow directly."""
    cells = pa.array(series.array)
    if isinstance(cells, pa.ChunkedArray):
        cells = cells.combine_chunks()
    encoded = cells.dictionary_encode()
    return pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), encoded.dictionary


_FEW_DISTINCT = 256
"""Up to this many distinct values, :func:`parse_value` on each is faster than the vector path
(whose fixed cost is a few milliseconds); a property test holds the two to the same verdicts."""


_PLAIN_NUMBER = {
    ".": r"^(?:[0-9]+\.?[0-9]*|\.[0-9]+)$",
    ",": r"^(?:[0-9]+,?[0-9]*|,[0-9]+)$",
}
"""A number as most files write it, for each decimal mark: digits and at most one decimal mark,
no sign, no exponent, no space."""

_PLAIN_LENGTH = 15
"""The longest plain number read by Arrow's cast: up to 15 digits are an integer below 2**53
over a power of ten up to 1e15, both exact, so any correctly rounded reader (Python's
``float``, Arrow's cast, pandas' ``to_numeric``) gives the same float for them."""

_MISSING_SPELLINGS = pa.array(
    sorted({"NaN"}.union(*((token, token.upper(), token.title()) for token in MISSING_TOKENS)))
)
"""Missing tokens as files commonly spell them, without spaces: each is a missing token once
stripped and case-folded."""


def _parse_plain_numbers(
    field: Field, distinct: pa.Array, factor: float, decimal: str
) -> ParsedColumn | None:
    """The distinct texts of a number field parsed in one Arrow cast, when every one is a plain
    number (:data:`_PLAIN_NUMBER`, at most :data:`_PLAIN_LENGTH` characters) or a missing
    token; None when any is not (those go through the general rules).

    On such texts the rules of :func:`parse_value` and :func:`_parse_column` reduce to: a
    missing token is NaN, a plain number is its correctly rounded float, then the integer and
    range checks (a property test holds the three to the same values and verdicts).
    """
    if field.kind not in (Kind.NUMBER, Kind.INTEGER) or len(distinct) == 0:
        return None
    plain = pc.and_(
        pc.match_substring_regex(distinct, _PLAIN_NUMBER[decimal]),
        pc.less_equal(pc.utf8_length(distinct), _PLAIN_LENGTH),
    )
    missing = pc.is_in(distinct, value_set=_MISSING_SPELLINGS)
    if not pc.all(pc.or_(plain, missing)).as_py():
        return None
    numbers = pc.if_else(plain, distinct, None)
    if decimal == ",":
        numbers = pc.replace_substring(numbers, ",", ".")
    number = pc.cast(numbers, pa.float64()).to_numpy(zero_copy_only=False)
    codes = np.zeros(len(number), dtype=np.int8)
    return _check_numbers(field, number, missing.to_numpy(zero_copy_only=False), codes, factor)


def _parse_each(field: Field, values: list[Any], factor: float, decimal: str) -> ParsedColumn:
    """:func:`parse_value` on each value, as a :class:`ParsedColumn`."""
    parsed = [parse_value(field, value, factor, decimal=decimal) for value in values]
    codes = np.array([0 if r is None else _CODE[r] for _, r in parsed], dtype=np.int8)
    if field.kind is Kind.CATEGORY:
        position = {level: k for k, level in enumerate(field.levels)}
        levels = np.array([position.get(level, -1) for level, _ in parsed], dtype=np.int64)
        return ParsedColumn(categorical(field, levels), codes, np.full(len(values), np.nan))
    numbers = np.array([np.nan if v is None else v for v, _ in parsed], dtype=np.float64)
    converted = numbers if field.kind is not Kind.BOOLEAN else np.full(len(values), np.nan)
    return ParsedColumn(np.where(codes > 0, np.nan, numbers), codes, converted)


@dataclass(frozen=True)
class _Spellings:
    """Cells spelled as a field's own words, and their parse."""

    cells: pa.Array
    parsed: ParsedColumn


def _spellings(field: Field, decimal: str) -> _Spellings:
    """A category's levels and aliases as :func:`header_key` spells them, or the boolean
    tokens for ``decimal``; then the missing tokens as files commonly spell them."""
    words = (
        level_lookup(field) if field.kind is Kind.CATEGORY else _BOOLEAN_TOKENS_BY_DECIMAL[decimal]
    )
    cells = list(dict.fromkeys([*words, *_MISSING_SPELLINGS.to_pylist()]))
    return _Spellings(pa.array(cells, type=pa.string()), _parse_each(field, cells, 1.0, decimal))


_KNOWN_SPELLINGS = {
    (id(f), decimal): _spellings(f, decimal)
    for f in FIELDS
    if f.kind in (Kind.CATEGORY, Kind.BOOLEAN)
    for decimal in (".", ",")
}


def _parse_known_spellings(field: Field, series: pd.Series, decimal: str) -> ParsedColumn | None:
    """A category or boolean column of strings parsed by looking each cell up among the
    spellings most files use (:func:`_spellings`: the field's own words as :func:`header_key`
    gives them, the boolean tokens, the missing tokens without spaces) and spreading their
    parse; None when a cell is spelled otherwise (it goes through the general rules).

    One Arrow lookup per cell costs about half of factorizing the column; the verdicts are
    :func:`parse_value`'s on each spelling, and a column of these spellings has far fewer than
    :data:`_FEW_DISTINCT` distinct values, which the general rules also give to
    :func:`parse_value`.
    """
    if field.kind not in (Kind.CATEGORY, Kind.BOOLEAN):
        return None
    known = _KNOWN_SPELLINGS.get((id(field), decimal)) or _spellings(field, decimal)
    cells = pa.array(series.array)
    found = pc.index_in(cells, value_set=known.cells)
    if found.null_count > cells.null_count:
        return None
    return known.parsed.take(pc.fill_null(found, -1).to_numpy(zero_copy_only=False))


def _parse_column(field: Field, series: pd.Series, factor: float, decimal: str) -> ParsedColumn:
    n = len(series)
    codes = np.zeros(n, dtype=np.int8)

    def flag(mask: np.ndarray, reason: Reason) -> None:
        codes[mask & (codes == 0)] = _CODE[reason]  # the first reason found wins

    nothing = np.full(n, np.nan)
    is_bool = pd.api.types.is_bool_dtype(series)
    text: pd.Series | None = None  # the cells as text, unless the column holds numbers
    number: np.ndarray | None = None
    if pd.api.types.is_numeric_dtype(series) and not is_bool and field.kind is not Kind.CATEGORY:
        number = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(number)
    else:
        text, missing = _text(series)

    if field.kind is Kind.CATEGORY:
        assert text is not None  # a category's cells are always read as text
        lookup = level_lookup(field)
        spelled = {value: lookup.get(header_key(value)) for value in text.dropna().unique()}
        mapped: Any = text.map(spelled)  # pandas-stubs reject na_value=None for object arrays
        levels = mapped.to_numpy(dtype=object, na_value=None, copy=True)
        levels[missing] = None
        known = pd.notna(levels)
        flag(~known & ~missing, Reason.UNKNOWN_LEVEL)
        return ParsedColumn(pd.Categorical(levels, categories=field.levels), codes, nothing)

    if field.kind is Kind.BOOLEAN:
        if text is not None:
            tokens = _BOOLEAN_TOKENS_BY_DECIMAL[decimal]
            flags = text.map(tokens).to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            assert number is not None
            flags = np.where((number == 0.0) | (number == 1.0), number + 0.0, np.nan)  # -0.0: 0
        flag(np.isnan(flags) & ~missing, Reason.NOT_A_BOOLEAN)
        return ParsedColumn(flags, codes, nothing)

    if text is not None:
        present = text.where(~missing)
        if decimal == ",":  # "1,5" is 1.5; "1.5" is refused (a thousands separator, perhaps)
            dotted = present.str.contains(".", regex=False).to_numpy(dtype=bool, na_value=False)
            present = present.str.replace(",", ".", regex=False).where(~dotted)
            flag(dotted, Reason.NOT_A_NUMBER)
        # pandas rounds "+1.87e180" differently from "1.87e180" (and from float()): drop the "+"
        unsigned = present.str.replace(r"^\+(?=[0-9.])", "", regex=True)
        number = pd.to_numeric(unsigned, errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        flag(np.isnan(number) & ~missing, Reason.NOT_A_NUMBER)
    assert number is not None
    return _check_numbers(field, number, missing, codes, factor)


def _check_numbers(
    field: Field, number: np.ndarray, missing: np.ndarray, codes: np.ndarray, factor: float
) -> ParsedColumn:
    """The checks of a number field on its cells read as floats (NaN where missing or not a
    number, as ``codes`` already says): finite, an integer if it must be, then the range in
    the canonical unit. The first reason found wins."""

    def flag(mask: np.ndarray, reason: Reason) -> None:
        codes[mask & (codes == 0)] = _CODE[reason]

    with np.errstate(invalid="ignore", over="ignore"):  # inf * factor; huge * factor -> inf
        infinite = np.isinf(number)
        flag(infinite, Reason.NOT_FINITE)
        if field.kind is Kind.INTEGER:
            flag(~infinite & ~missing & (number != np.floor(number)), Reason.NOT_AN_INTEGER)
        converted = number * factor + 0.0  # -0.0 + 0.0 is 0.0: "-0" and "0" read alike
        low, high = field.bounds
        flag(~infinite & ((converted < low) | (converted > high)), Reason.OUT_OF_RANGE)
    return ParsedColumn(np.where(codes > 0, np.nan, converted), codes, converted)
