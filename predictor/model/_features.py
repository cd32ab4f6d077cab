"""Feature map: clean schema records -> the additive model's design matrix, one block per field.

Every predictor field of the schema becomes one *term* of the model, a block of design columns:

* a number: a cubic B-spline basis on the scale its schema entry gives (log where it has a
  ``log_floor``, as CRP does), with knots at quantiles of the training values, reparametrised
  as level, slope and "wiggles" so that the model's ridge penalty is a P-spline smoothness
  penalty; a value outside the training range is held at the nearest edge;
* a category or boolean: one column per level (one-hot); the levels that training patients had
  are recorded (``Term.seen_levels``): a level no training patient had has a column of zeros,
  about which the data say nothing, and a prediction for it is warned about; a level the schema
  gained after the model was fitted (``Term.schema_only_levels``: a model file knows the levels
  of its day) has no column at all, and is given the term's "not measured" row without being
  counted as missing (see :meth:`Term.codes`); a prediction for it is warned about too;
* a missing value: its own "not measured" column when the training data had enough patients
  without the field (whether the test was done can carry information, as a marker of the kind
  of patient or clinic, not as a cause), so the model learns the term of a patient without it;
  otherwise the training average of the term's columns, so that a missing value contributes
  exactly 0 (the average patient's term);
* a number no training patient had, or that had one value only: no columns at all (the term is
  0 for everyone, and ``Term.unused`` says why), since the data say nothing about its effect.

The same :meth:`FeatureMap.design` builds the rows for training and for prediction, for one
patient or a million (``predict(dict)`` encodes its one record from Python values with
:meth:`FeatureMap.encode_record`, into the same arrays).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import pandas as pd

from data_schemas import FIELDS, FIELDS_BY_NAME, Kind, Role
from predictor.model._document import FieldDefinition, finite_array

if TYPE_CHECKING:
    from scipy.interpolate import BSpline

MODEL_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.role is Role.PREDICTOR)
"""The schema's predictor fields, in schema order: one model term each."""


SPLINE_DEGREE = 3
SPLINE_KNOTS = 7
"""Knots per numeric field, at evenly spaced quantiles of the training values (fewer when the
field has few distinct values): 5 interior knots, a basis of 9 cubic B-splines."""
NULL_SPACE_SCALE = 1.0
"""Scale of the level and slope columns of a spline term: scaling a column by ``s`` divides its
coefficient by ``s``, so the column's effect is penalised as if by an inverse penalty
``C * s^2``."""

MIN_MISSING_TO_LEARN = 20
"""A field needs this many training patients without it for its own "not measured" column."""

LEVEL_NAMES_BOOLEAN = ("no", "yes")
NOT_MEASURED = -1
""":meth:`Term.codes` of a missing value."""
NOT_IN_MODEL = -2
""":meth:`Term.codes` of a level of the schema's field that the term does not have (the schema
gained it after the model was fitted)."""


@dataclass(frozen=True, eq=False)
class Term:
    """One field's block of design columns and what is needed to build it.

    Attributes
    ----------
    field : str
        The schema field.
    columns : tuple of str
        Names of the term's design columns (``"crp_mg_l:slope"``, ``"route=iv_ketamine"``,
        ``"crp_mg_l=missing"``).
    levels : tuple of str
        Levels of a category or boolean (empty for a number).
    knots : numpy.ndarray
        Full B-spline knot vector on the model scale (empty for a category).
    transform : numpy.ndarray, shape (n_basis, n_basis)
        Maps the term's coefficients to B-spline coefficients (see
        :func:`smoothness_transform`).
    missing_row : numpy.ndarray, shape (len(columns),)
        The term's design row for a patient without the field.
    learned_missing : bool
        Whether ``missing_row`` is the term's own "not measured" column (True) or the training
        average of the term's columns (False).
    spline : scipy.interpolate.BSpline
        (Built from the above, for a number, when first used.) The term's measured-value
        columns as one vector-valued spline of the model-scale value.
    value_range : tuple of float
        Lowest and highest training value of a number, in the schema's unit.
    tertiles : tuple of float
        The training values' tertile cut points of a number, in the schema's unit.
    unused : str
        Why the field has no columns (its term is 0 for every patient), e.g. "no training
        patient had a value"; empty for a field the model uses.
    seen_levels : tuple of str
        The levels of a category or boolean that training patients had, in ``levels`` order
        (default: all of them, as for a model file written before they were recorded).
    """

    field: str
    columns: tuple[str, ...]
    levels: tuple[str, ...] = ()
    # dataclasses.field: the name ``field`` is the attribute above
    knots: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    transform: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, 0)))
    missing_row: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    learned_missing: bool = False
    value_range: tuple[float, float] = (np.nan, np.nan)
    tertiles: tuple[float, float] = (np.nan, np.nan)
    unused: str = ""
    seen_levels: tuple[str, ...] | None = None
    # set by __post_init__
    _level_index: dict[str, int] = dataclasses.field(init=False, repr=False)

    @property
    def is_spline(self) -> bool:
        return self.knots.size > 0

    @functools.cached_property
    def unseen_levels(self) -> tuple[str, ...]:
        """The levels no training patient had (empty for a number)."""
        assert self.seen_levels is not None  # __post_init__ sets it
        return tuple(level for level in self.levels if level not in self.seen_levels)

    @functools.cached_property
    def schema_only_levels(self) -> tuple[str, ...]:
        """The levels of the schema's field that the term does not have, in the schema's order:
        levels added to the schema after the model was fitted (empty for a number or a
        boolean). :meth:`codes` gives them :data:`NOT_IN_MODEL`."""
        field = FIELDS_BY_NAME.get(self.field)
        if field is None or self.unused or field.kind is not Kind.CATEGORY:
            return ()
        return tuple(level for level in field.levels if level not in self.levels)

    @functools.cached_property
    def spline(self) -> BSpline:
        """The term's measured-value columns as one vector-valued spline (a number only):
        :meth:`FeatureMap.encode`'s dense design evaluates it; the sparse one, which scoring
        uses, does not (:func:`_pieces`), so scoring never imports scipy."""
        from scipy.interpolate import BSpline

        if not self.is_spline:
            raise TypeError(f"{self.field} is not a number")
        return BSpline(self.knots, self.transform, SPLINE_DEGREE, extrapolate=False)

    @property
    def n_basis(self) -> int:
        """Columns for a measured value (without the "not measured" column)."""
        return len(self.columns) - self.learned_missing

    def __post_init__(self) -> None:
        width = self.n_basis + self.learned_missing
        if self.is_spline:
            n_basis = self.knots.size - SPLINE_DEGREE - 1
            if self.transform.shape != (n_basis, n_basis) or len(self.columns) != width:
                raise ValueError(f"{self.field}: knots, transform and columns do not agree")
        elif self.unused and (self.columns or self.levels or self.learned_missing):
            raise ValueError(f"{self.field}: an unused field has no columns")
        elif len(self.columns) != len(self.levels) + self.learned_missing:
            raise ValueError(f"{self.field}: levels and columns do not agree")
        if not (self.unused or self.columns):
            raise ValueError(f"{self.field}: a term without columns must say why it is unused")
        index = dict.fromkeys(self.schema_only_levels, NOT_IN_MODEL)
        index.update({v: i for i, v in enumerate(self.levels)})
        object.__setattr__(self, "_level_index", index)
        seen = self.levels if self.seen_levels is None else tuple(self.seen_levels)
        if seen != tuple(level for level in self.levels if level in seen):
            raise ValueError(f"{self.field}: the levels seen in training are not its levels")
        object.__setattr__(self, "seen_levels", seen)
        if self.missing_row.shape != (width,):
            raise ValueError(f"{self.field}: the missing-value row has the wrong length")

    def codes(self, values: Any) -> np.ndarray:
        """Level index of each value: categories as schema levels (Categorical or text),
        booleans as 1.0 / 0.0 / NaN; :data:`NOT_MEASURED` (-1) for a missing value (or text
        that is no level of the schema's field), :data:`NOT_IN_MODEL` (-2) for a level of the
        schema's field that the term does not have (:attr:`schema_only_levels`)."""
        if not self.levels:
            raise TypeError(f"{self.field} is a number, not a category")
        if isinstance(values, pd.Series):
            values = values.array
        if isinstance(values, pd.Categorical):
            if tuple(values.categories) == self.levels:
                return values.codes.astype(np.intp)
            # the categories' codes, then each value's (-1, missing, stays -1)
            index = self._level_index
            lookup = [index.get(level, NOT_MEASURED) for level in values.categories.tolist()]
            return np.array([*lookup, NOT_MEASURED], dtype=np.intp)[values.codes]
        array = np.asarray(values)
        if self.levels == LEVEL_NAMES_BOOLEAN and array.dtype.kind == "f":
            if ((array != 0.0) & (array != 1.0) & ~np.isnan(array)).any():
                raise ValueError(f"{self.field}: a boolean is coded 0 or 1 (or NaN for missing)")
            return np.where(np.isnan(array), -1, array).astype(np.intp)
        index = self._level_index
        return np.array([index.get(v, NOT_MEASURED) for v in array.tolist()], dtype=np.intp)

    def code(self, value: Any) -> int:
        """:meth:`codes` of one clean value (a level or None; a boolean's 1.0, 0.0 or NaN)."""
        if not self.levels:
            raise TypeError(f"{self.field} is a number, not a category")
        if self.levels == LEVEL_NAMES_BOOLEAN and isinstance(value, float):
            if math.isnan(value):
                return NOT_MEASURED
            if value not in (0.0, 1.0):
                raise ValueError(f"{self.field}: a boolean is coded 0 or 1 (or NaN for missing)")
            return int(value)
        return self._level_index.get(value, NOT_MEASURED)

    def block(self, values: Any) -> np.ndarray:
        """The term's design columns for clean ``values``, shape (n, len(columns))."""
        return FeatureMap((self,)).design({self.field: values})


def model_scale(name: str, values: np.ndarray) -> np.ndarray:
    """Values of field ``name`` (schema unit) on the scale its spline is built on: the log of
    the values raised to the field's ``log_floor`` when it has one, else the values."""
    floor = FIELDS_BY_NAME[name].log_floor
    return np.log(np.maximum(values, floor)) if floor is not None else values


def from_model_scale(name: str, values: np.ndarray) -> np.ndarray:
    """The inverse of :func:`model_scale` (above the floor): model-scale values of field
    ``name`` back in the schema's unit."""
    return np.exp(values) if FIELDS_BY_NAME[name].log_floor is not None else values


def _knots(values: np.ndarray) -> np.ndarray:
    """Clamped cubic knot vector with interior knots at quantiles of ``values`` (model scale)."""
    breaks = np.unique(np.quantile(values, np.linspace(0.0, 1.0, SPLINE_KNOTS)))
    return np.concatenate(
        [np.repeat(breaks[0], SPLINE_DEGREE), breaks, np.repeat(breaks[-1], SPLINE_DEGREE)]
    )


def _is_clamped(knots: np.ndarray) -> bool:
    """Whether ``knots`` is of the form :func:`_knots` makes: each end repeated
    ``SPLINE_DEGREE + 1`` times, strictly increasing between them."""
    ends = knots[: SPLINE_DEGREE + 1], knots[-SPLINE_DEGREE - 1 :]
    breaks = knots[SPLINE_DEGREE : knots.size - SPLINE_DEGREE]
    return bool((ends[0] == ends[0][0]).all() and (ends[1] == ends[1][0]).all()) and bool(
        (np.diff(breaks) > 0).all()
    )


def smoothness_transform(n_basis: int) -> np.ndarray:
    """Columns turning B-spline coefficients into (level, slope, wiggles): ``beta = T @ theta``.

    The first two columns span the second-difference penalty's null space (a constant and a
    straight line across the basis); the others are ``D'(DD')^-1`` for the second-difference
    matrix ``D``, so that ``||D beta||^2 = ||wiggles||^2``. A plain ridge penalty on ``theta``
    is then the P-spline smoothness penalty on the wiggles (and a ridge on level and slope).

    One ``C`` serves all columns, so it also shrinks each term's level and slope a little
    (towards a flat term); with tens of thousands of patients that shrinkage is negligible. The
    level columns sum to a constant over a term's basis, so they are collinear with the
    intercept; the ridge makes the fit unique.
    """
    if n_basis < 3:
        return np.eye(n_basis)
    difference = np.diff(np.eye(n_basis), n=2, axis=0)
    wiggles = difference.T @ np.linalg.inv(difference @ difference.T)
    line = np.column_stack([np.ones(n_basis), np.linspace(-1.0, 1.0, n_basis)]) * NULL_SPACE_SCALE
    return np.hstack([line, wiggles])


def _fit_term(name: str, values: Any) -> Term:
    """Fit one field's term on its training column (a clean frame's column)."""
    kind = FIELDS_BY_NAME[name].kind
    if kind in (Kind.NUMBER, Kind.INTEGER):
        numbers = np.asarray(values, dtype=np.float64)
        present = ~np.isnan(numbers)
        measured = numbers[present]
        if measured.size == 0:
            return Term(name, (), unused="no training patient had a value")
        if measured.min() == measured.max():
            # not the value: it is every one of these patients' (the warning goes to stderr)
            return Term(name, (), unused="every training patient with a value had the same one")
        scaled = model_scale(name, measured)
        if scaled.min() == scaled.max():  # all at or below the floor of a log scale
            field = FIELDS_BY_NAME[name]
            return Term(
                name,
                (),
                unused=f"every training patient with a value had at most {field.log_floor:g} "
                f"{field.unit}, the lowest value its scale tells apart",
            )
        knots = _knots(scaled)
        n_basis = knots.size - SPLINE_DEGREE - 1
        columns = (
            f"{name}:level",
            f"{name}:slope",
            *(f"{name}:wiggle{k}" for k in range(n_basis - 2)),
        )
        term = Term(
            name,
            columns,
            missing_row=np.zeros(n_basis),
            knots=knots,
            transform=smoothness_transform(n_basis),
            value_range=(float(measured.min()), float(measured.max())),
            tertiles=tuple(np.quantile(measured, [1 / 3, 2 / 3]).tolist()),
        )
    else:
        levels = LEVEL_NAMES_BOOLEAN if kind is Kind.BOOLEAN else FIELDS_BY_NAME[name].levels
        columns = tuple(f"{name}={level}" for level in levels)
        term = Term(name, columns, levels=levels, missing_row=np.zeros(len(levels)))
        codes = term.codes(values)
        present = codes >= 0
        counts = np.bincount(codes[present], minlength=len(levels))
        seen = tuple(level for level, count in zip(levels, counts, strict=True) if count)
        term = replace(term, seen_levels=seen)
    if (~present).sum() >= MIN_MISSING_TO_LEARN:
        return replace(
            term,
            columns=(*term.columns, f"{name}=missing"),
            missing_row=np.eye(len(term.columns) + 1)[-1],
            learned_missing=True,
        )
    # Too few patients without the field: a missing value takes the term's training average.
    return replace(term, missing_row=term.block(values)[present].mean(axis=0))


def expected_columns(term: Term) -> tuple[str, ...]:
    """The names the term's design columns have, from its kind, levels and basis."""
    name = term.field
    if term.unused:
        return ()
    if term.is_spline:
        wiggles = (f"{name}:wiggle{k}" for k in range(term.knots.size - SPLINE_DEGREE - 3))
        own = (f"{name}:level", f"{name}:slope", *wiggles)
    else:
        own = tuple(f"{name}={level}" for level in term.levels)
    return (*own, f"{name}=missing") if term.learned_missing else own


def _term_to_document(term: Term) -> dict[str, Any]:
    assert term.seen_levels is not None  # Term.__post_init__ sets it
    spline = term.is_spline
    return {
        "field": term.field,
        "columns": list(term.columns),
        "levels": list(term.levels),
        "knots": term.knots.tolist(),
        "transform": term.transform.tolist(),
        "missing_row": term.missing_row.tolist(),
        "learned_missing": term.learned_missing,
        "value_range": list(term.value_range) if spline else None,
        "tertiles": list(term.tertiles) if spline else None,
        "unused": term.unused,
        "seen_levels": list(term.seen_levels),
    }


def _term_levels(definition: FieldDefinition) -> tuple[str, ...]:
    """The levels of a term for the field: a boolean's "no" and "yes", a category's own."""
    return LEVEL_NAMES_BOOLEAN if definition.kind == Kind.BOOLEAN else definition.levels


def _term_from_document(entry: Mapping[str, Any], definition: FieldDefinition) -> Term:
    """Read one term, checking it against its field's definition and that the scorer gets
    finite numbers from it: a spline's knots clamped and increasing between its ends (as
    training makes them) with at least one basis interval,
    at least four basis functions, its training range (on the model scale) inside the basis
    interval, its tertiles inside the range; column names that match the levels and basis."""
    field = definition.name
    columns = tuple(str(c) for c in entry["columns"])
    knots = finite_array(entry["knots"], "knots")
    unused = entry.get("unused", "")
    levels = tuple(str(level) for level in entry["levels"])
    if not isinstance(unused, str) or not isinstance(entry["learned_missing"], bool):
        raise ValueError(f"{field}: 'unused' must be text and 'learned_missing' true or false")
    expected = () if unused else _term_levels(definition)
    if levels != expected:
        raise ValueError(f"{field}: its levels are {levels}, the field's are {expected}")
    seen = entry.get("seen_levels")  # absent from files written before it was recorded: all
    if seen is not None and not (
        isinstance(seen, list) and all(isinstance(level, str) for level in seen)
    ):
        raise ValueError(f"{field}: 'seen_levels' must be a list of levels")
    is_number = definition.kind in (Kind.NUMBER, Kind.INTEGER)
    if bool(knots.size) != (is_number and not unused):
        raise ValueError(f"{field}: a spline term must be exactly the schema's used number fields")
    transform = np.empty((0, 0))
    if knots.size:
        # two distinct values give the fewest knots training makes for a used number
        # as training makes them (_knots): the scorer's table of pieces and the dense basis
        # disagree on a knot vector with a repeated break (up to 0.15 in a logit)
        if knots.size < 2 * SPLINE_DEGREE + 2 or not _is_clamped(knots):
            raise ValueError(
                f"{field}: its knots must be a clamped cubic knot vector, as training makes "
                f"them: the first {SPLINE_DEGREE + 1} equal, the last {SPLINE_DEGREE + 1} "
                f"equal, increasing in between; at least {2 * SPLINE_DEGREE + 2}"
            )
        n_basis = knots.size - SPLINE_DEGREE - 1
        transform = finite_array(entry["transform"], "transform", (n_basis, n_basis))
    ranges = {
        key: tuple(finite_array(entry[key], key, (2,)).tolist())
        for key in ("value_range", "tertiles")
        if entry[key] is not None
    }
    if any(low > high for low, high in ranges.values()):
        raise ValueError(f"{field}: a range has its low end above its high end")
    if knots.size:
        if set(ranges) != {"value_range", "tertiles"}:
            raise ValueError(f"{field}: a spline term needs its value range and tertiles")
        low, high = ranges["value_range"]
        scaled = model_scale(field, np.array([low, high]))
        if not knots[SPLINE_DEGREE] <= scaled[0] < scaled[1] <= knots[-SPLINE_DEGREE - 1]:
            raise ValueError(
                f"{field}: its value range ({low:g} to {high:g}) is not an interval inside its "
                f"knots"
            )
        if not low <= ranges["tertiles"][0] <= ranges["tertiles"][1] <= high:
            raise ValueError(f"{field}: its tertiles are not inside its value range")
    term = Term(
        field,
        columns,
        levels=levels,
        knots=knots,
        transform=transform,
        missing_row=finite_array(entry["missing_row"], "missing_row", (len(columns),)),
        learned_missing=entry["learned_missing"],
        unused=unused,
        seen_levels=None if seen is None else tuple(seen),
        **ranges,
    )
    if columns != expected_columns(term):
        raise ValueError(f"{field}: its columns are {columns}, expected {expected_columns(term)}")
    return term


class SparseDesign(NamedTuple):
    """Rows of the design matrix by the few columns of each term's basis that are not zero,
    as :meth:`FeatureMap.encode` gives them with ``sparse=True``.

    A number's cubic B-spline basis has at most four functions that are not zero at any value
    (those of the knot interval the value lies in), and a category has one column per level:
    each row has at most four nonzero basis values per number and one per category, out of
    about a hundred design columns. :meth:`FeatureMap.nonzero` gives them, and
    :meth:`FeatureMap.dense` the dense design they stand for.
    """

    interval: np.ndarray
    """shape (n, number of spline terms), intp: the knot interval ``m`` of each value on the
    model scale (``knots[m] <= value < knots[m + 1]``, the last interval for the highest knot);
    that of the lowest value of the range where the value is missing"""
    offset: np.ndarray
    """shape (n, number of spline terms): the value minus ``knots[m]``, model scale"""
    absent: np.ndarray
    """shape (n, number of spline terms), bool: the value is missing"""
    codes: np.ndarray
    """shape (n, number of category terms), intp: level index, -1 when missing, -2 for a level
    the term does not have (:data:`NOT_IN_MODEL`; its row is the missing value's)"""

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.interval)


class Encoded(NamedTuple):
    """Clean records as the model sees them."""

    design: np.ndarray | SparseDesign
    """shape (n, number of design columns), or the same rows as a :class:`SparseDesign`"""
    missing: np.ndarray
    """shape (n, number of terms), bool: the field was not measured"""
    outside: np.ndarray
    """shape (n, number of terms), int8: -1 below / +1 above the training range, else 0"""


@dataclass(frozen=True, eq=False)
class FeatureMap:
    """The fitted map from clean records to design rows: one :class:`Term` per model field.

    Examples
    --------
    >>> from predictor.simulation._synthetic import simulate_cohort
    >>> cohort = simulate_cohort(2000, seed=3)
    >>> features = FeatureMap.fit(cohort)
    >>> X = features.design(cohort)
    >>> X.shape == (2000, len(features.columns))
    True
    """

    terms: tuple[Term, ...]

    @classmethod
    def fit(cls, clean: pd.DataFrame, *, fields: Sequence[str] | None = None) -> FeatureMap:
        """Place knots, record ranges and decide each field's missing-value handling.

        Parameters
        ----------
        clean : pandas.DataFrame
            Training records as ``data_schemas.validate`` returns them (canonical columns).
        fields : sequence of str, optional
            The model's input fields, one term each, in this order: predictor fields of the
            schema, each once (default: every one, :data:`MODEL_FIELDS`).

        Raises
        ------
        ValueError
            If ``fields`` is empty, repeats a field or names one that is not a predictor field.
        """
        names = MODEL_FIELDS if fields is None else tuple(fields)
        wrong = [name for name in names if name not in MODEL_FIELDS]
        if not names or wrong or len(set(names)) != len(names):
            raise ValueError(
                f"fields {names} must be predictor fields of the schema, each once (not "
                f"{wrong}); the predictor fields are {MODEL_FIELDS}"
            )
        return cls(tuple(_fit_term(name, clean[name]) for name in names))

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> FeatureMap:
        """Rebuild the map from :meth:`to_document`'s ``fields`` and ``terms``, checking each
        term against its field's recorded definition and every invariant the scorer relies
        on (see :func:`_term_from_document`).

        Raises
        ------
        ValueError, KeyError, TypeError
            What is wrong, for the model file's message.
        """
        definitions = [FieldDefinition.from_document(entry) for entry in document["fields"]]
        names = [definition.name for definition in definitions]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"its fields {names} must be given, each once")
        entries = document["terms"]
        fields = [entry["field"] for entry in entries]
        if fields != names:
            raise ValueError(f"its terms are {tuple(fields)}, expected {tuple(names)}")
        return cls(
            tuple(
                _term_from_document(entry, definition)
                for entry, definition in zip(entries, definitions, strict=True)
            )
        )

    def to_document(self) -> dict[str, Any]:
        """``fields`` (each input field's definition) and ``terms``, as plain JSON values."""
        return {
            "fields": [definition.to_document() for definition in self.definitions],
            "terms": [_term_to_document(term) for term in self.terms],
        }

    @functools.cached_property
    def definitions(self) -> tuple[FieldDefinition, ...]:
        """The input fields as the schema defines them, with the category levels the terms
        know."""
        return tuple(
            FieldDefinition.of(FIELDS_BY_NAME[term.field], term.levels or None)
            for term in self.terms
        )

    @functools.cached_property
    def columns(self) -> tuple[str, ...]:
        """Names of the design columns, term by term."""
        return tuple(c for term in self.terms for c in term.columns)

    @functools.cached_property
    def slices(self) -> tuple[slice, ...]:
        """Each term's columns in the design matrix."""
        bounds = [0, *itertools.accumulate(len(term.columns) for term in self.terms)]
        return tuple(slice(a, b) for a, b in itertools.pairwise(bounds))

    @functools.cached_property
    def membership(self) -> np.ndarray:
        """shape (len(columns), number of terms): 1 where a design column belongs to a term;
        ``(design * coef) @ membership`` sums each term's columns (an unused term's to 0)."""
        out = np.zeros((len(self.columns), len(self.terms)))
        for j, columns in enumerate(self.slices):
            out[columns, j] = 1.0
        return out

    @functools.cached_property
    def _numbers(self) -> _Numbers:
        """The spline terms' fields, training ranges and log floors (built once per map)."""
        indices = [j for j, term in enumerate(self.terms) if term.is_spline]
        fields = tuple(self.terms[j].field for j in indices)
        ranges = np.array([self.terms[j].value_range for j in indices]).reshape(-1, 2)
        floors = [FIELDS_BY_NAME[field].log_floor for field in fields]
        logged = np.array([floor is not None for floor in floors], dtype=bool)
        floor_values = np.array([-np.inf if f is None else f for f in floors], dtype=np.float64)
        columns = np.array(indices, dtype=np.intp)
        return _Numbers(columns, fields, ranges[:, 0], ranges[:, 1], logged, floor_values)

    @functools.cached_property
    def basis(self) -> Basis:
        """The terms' bases, for :class:`SparseDesign` rows (built once per map)."""
        return _basis(self)

    def nonzero(self, design: SparseDesign, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The nonzero basis columns of rows ``start:stop`` of a sparse design.

        Returns
        -------
        (columns, values) : numpy.ndarray, shape (rows, Basis.width)
            Columns of the basis space (:attr:`Basis.to_design`'s rows; never the intercept's)
            and their values: four per spline term (a missing value: its "not measured" column,
            with three zeros), then one per category term, in the order of the terms.
        """
        basis = self.basis
        interval = design.interval[start:stop]
        rows, splines = interval.shape
        codes = design.codes[start:stop]
        columns = np.empty((rows, basis.width), dtype=np.intp)
        values = np.empty((rows, basis.width))
        if splines:
            u = design.offset[start:stop].reshape(-1)
            powers = np.empty((u.size, 4))
            powers[:, 3] = 1.0
            powers[:, 2] = u
            np.multiply(u, u, out=powers[:, 1])
            np.multiply(powers[:, 1], u, out=powers[:, 0])
            # each value's piece: its knot interval, or its term's "not measured" piece
            piece = np.where(design.absent[start:stop], basis.missing_piece, interval)
            piece += basis.piece_rows
            # on its piece each basis function is a cubic in u (a missing value's: 0 or 1)
            cubic = basis.polynomials.take(piece.reshape(-1), axis=0)
            spline_values = np.einsum("npk,np->nk", cubic, powers)
            columns[:, : 4 * splines] = basis.piece_columns.take(piece, axis=0).reshape(
                rows, 4 * splines
            )
            values[:, : 4 * splines] = spline_values.reshape(rows, 4 * splines)
        if codes.shape[1]:
            columns[:, 4 * splines :] = basis.category_starts + np.where(
                codes < 0, basis.category_levels, codes
            )
            values[:, 4 * splines :] = 1.0
        return columns, values

    def dense(self, design: SparseDesign) -> np.ndarray:
        """The dense design matrix a sparse one stands for, shape (n, len(columns))."""
        basis = self.basis
        columns, values = self.nonzero(design, 0, design.n)
        rows = np.zeros((design.n, basis.size))
        flat = np.arange(design.n)[:, None] * basis.size + columns
        rows.reshape(-1)[flat.reshape(-1)] = values.reshape(-1)
        return rows @ basis.to_design[:, 1:]

    def encode(self, clean: Mapping[str, Any] | pd.DataFrame, *, sparse: bool = False) -> Encoded:
        """Clean records (a frame, or a mapping of field -> array of values) as the model's
        design matrix, with which fields are missing or outside the training range.

        Number fields are prepared together, as one (n, fields) array: checked against the
        training range, clipped to it, and put on the model scale (log CRP); a missing value
        becomes the "not measured" row. With ``sparse``, the design is a
        :class:`SparseDesign`: each value's knot interval and place in it, and each level's
        index, from which the nonzero basis columns follow (:meth:`nonzero`).
        """
        n = len(clean[self.terms[0].field])
        missing = np.zeros((n, len(self.terms)), dtype=bool)
        outside = np.zeros((n, len(self.terms)), dtype=np.int8)
        if sparse:
            return self._encode_sparse(clean, n, missing, outside)
        design = np.zeros((n, len(self.columns)))
        numbers = self._numbers[0]
        if numbers.size:
            scaled, absent = self._scaled(clean, outside)
            missing[:, numbers] = absent
            # a 2-d array reduced over one axis is a 1-d array (numpy's stubs allow a scalar)
            all_absent = cast(list[bool], absent.all(axis=0).tolist())
            any_absent = cast(list[bool], absent.any(axis=0).tolist())
            spline_rows = zip(numbers.tolist(), all_absent, any_absent, strict=True)
            for k, (j, none_measured, some_missing) in enumerate(spline_rows):
                term, columns = self.terms[j], self.slices[j]
                if not none_measured:
                    design[:, columns.start : columns.start + term.n_basis] = term.spline(
                        scaled[:, k]
                    )
                if some_missing:
                    design[absent[:, k], columns] = term.missing_row
        for j, term in enumerate(self.terms):
            if term.is_spline or term.unused:
                continue
            codes = term.codes(clean[term.field])
            present = np.flatnonzero(codes >= 0)
            design[present, self.slices[j].start + codes[present]] = 1.0
            if present.size < n:  # missing, or a level the term does not have: its missing row
                missing[:, j] = codes == NOT_MEASURED
                design[codes < 0, self.slices[j]] = term.missing_row
        return Encoded(design, missing, outside)

    def _scaled(
        self, clean: Mapping[str, Any] | pd.DataFrame, outside: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The spline terms' values (n, spline terms) clipped to the training range and on the
        model scale (the range's low end where missing), and where they are missing; sets
        ``outside``."""
        numbers, fields, lows, highs, logged, floors = self._numbers
        values = np.array([clean[field] for field in fields], dtype=np.float64).T
        absent = np.isnan(values)
        outside[:, numbers] = (values > highs).astype(np.int8) - (values < lows)
        scaled = np.where(absent, lows, np.minimum(np.maximum(values, lows), highs))
        # model_scale, for the fields that have a log floor
        np.log(np.maximum(scaled, floors), out=scaled, where=logged)
        return scaled, absent

    def _encode_sparse(
        self,
        clean: Mapping[str, Any] | pd.DataFrame,
        n: int,
        missing: np.ndarray,
        outside: np.ndarray,
    ) -> Encoded:
        basis = self.basis
        numbers = self._numbers[0]
        if numbers.size:
            scaled, absent = self._scaled(clean, outside)
            missing[:, numbers] = absent
            # knots[m] <= value < knots[m + 1]: count the interior knots at or below the value
            # (one knot at a time: summing an (n, S, knots) array of bools is ~10x slower)
            interval = np.full(scaled.shape, SPLINE_DEGREE, dtype=np.intp)
            for knot in basis.interior.T:
                interval += scaled >= knot
            interval = np.minimum(interval, basis.last)
            offset = scaled - basis.knots[basis.spline_rows, interval]
        else:
            interval = np.zeros((n, 0), dtype=np.intp)
            offset, absent = np.zeros((n, 0)), np.zeros((n, 0), dtype=bool)
        codes = np.empty((n, len(basis.categories)), dtype=np.intp)
        for k, j in enumerate(basis.categories.tolist()):
            codes[:, k] = self.terms[j].codes(clean[self.terms[j].field])
        missing[:, basis.categories] = codes == NOT_MEASURED
        return Encoded(SparseDesign(interval, offset, absent, codes), missing, outside)

    @functools.cached_property
    def _record_splines(self) -> tuple[_RecordSpline, ...]:
        """The spline terms as :meth:`encode_record` reads them (built once per map)."""
        numbers, fields, lows, highs, logged, floors = self._numbers
        basis = self.basis
        log_floors = zip(floors.tolist(), logged.tolist(), strict=True)
        return tuple(
            _RecordSpline(*spline)
            for spline in zip(
                numbers.tolist(),
                fields,
                lows.tolist(),
                highs.tolist(),
                [floor if log else None for floor, log in log_floors],
                basis.interior.tolist(),
                basis.last.tolist(),
                basis.knots.tolist(),
                strict=True,
            )
        )

    def encode_record(self, record: Mapping[str, Any]) -> Encoded:
        """:meth:`encode` with ``sparse=True`` of one clean record (a dict as
        ``data_schemas.validate_record`` returns it): the same one-row arrays, to the last
        bit, from its Python values (numpy costs microseconds per call on one-row arrays, and
        ``encode`` makes dozens; ``predict(dict)`` takes this path, a test holds the two equal).
        """
        missing = [False] * len(self.terms)
        outside = [0] * len(self.terms)
        intervals, offsets, absent = [], [], []
        for j, field, low, high, floor, interior, last, knots in self._record_splines:
            value = record[field]
            if math.isnan(value):  # as _scaled: missing, at the range's low end
                missing[j] = True
                scaled = low
            else:
                outside[j] = (value > high) - (value < low)
                scaled = min(max(value, low), high)
            if floor is not None:  # model_scale: np.log, the very function encode uses
                scaled = float(np.log(max(scaled, floor)))
            # knots[m] <= value < knots[m + 1]: the interior knots at or below the value
            m = min(SPLINE_DEGREE + bisect.bisect_right(interior, scaled), last)
            intervals.append(m)
            offsets.append(scaled - knots[m])
            absent.append(missing[j])
        codes = []
        for j in self.basis.categories.tolist():  # the category terms encode reads
            term = self.terms[j]
            codes.append(term.code(record[term.field]))
            missing[j] = codes[-1] == NOT_MEASURED
        design = SparseDesign(
            np.array([intervals], dtype=np.intp),
            np.array([offsets], dtype=np.float64),
            np.array([absent], dtype=bool),
            np.array([codes], dtype=np.intp),
        )
        return Encoded(design, np.array([missing]), np.array([outside], dtype=np.int8))

    def design(self, clean: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """The design matrix alone, shape (n, len(columns))."""
        return cast(np.ndarray, self.encode(clean).design)


class _Numbers(NamedTuple):
    """A feature map's spline terms, as :meth:`FeatureMap.encode` prepares their values."""

    indices: np.ndarray
    """the spline terms' indices, shape (S,)"""
    fields: tuple[str, ...]
    lows: np.ndarray
    highs: np.ndarray
    """shape (S,): each term's training range, in the schema's unit"""
    logged: np.ndarray
    """shape (S,), bool: the term's field has a log floor (:func:`model_scale`)"""
    floors: np.ndarray
    """shape (S,): each term's log floor (-inf where it has none)"""


class _RecordSpline(NamedTuple):
    """A spline term as :meth:`FeatureMap.encode_record` reads it: Python numbers."""

    term: int
    field: str
    low: float
    high: float
    floor: float | None
    """the field's log floor; None: the spline is on the schema's scale"""
    interior: list[float]
    """:attr:`Basis.interior`'s row"""
    last: int
    knots: list[float]
    """:attr:`Basis.knots`'s row"""


_FOUR = np.arange(SPLINE_DEGREE + 1)


class Basis(NamedTuple):
    """A feature map's terms in their own bases, for sparse design rows.

    The *basis space* has one column for the intercept, then for each term the model uses its
    B-spline basis functions (a number) or its levels (a category), and one "not measured"
    column. :attr:`to_design` maps a row of it to the design row (with the intercept first)
    that :meth:`FeatureMap.encode` builds: a spline term's basis function to its row of the
    term's ``transform``, a level to its one-hot column, "not measured" to the term's
    ``missing_row``.
    """

    size: int
    """columns of the basis space"""
    to_design: np.ndarray
    """shape (size, 1 + len(columns))"""
    splines: np.ndarray
    """indices of the spline terms, shape (S,)"""
    categories: np.ndarray
    """indices of the category terms (those the model uses), shape (C,)"""
    starts: np.ndarray
    """basis-space column of each spline term's first basis function, shape (S,)"""
    category_starts: np.ndarray
    """basis-space column of each category term's first level, shape (C,)"""
    category_levels: np.ndarray
    """number of levels of each category term, shape (C,): its "not measured" column is
    ``start + levels``"""
    knots: np.ndarray
    """shape (S, K): each spline term's knots, padded with its last"""
    spline_rows: np.ndarray
    """``arange(S)``, to index :attr:`knots` row by row"""
    interior: np.ndarray
    """shape (S, K - 8): the knots after the first four, up to the last basis interval's
    start (padded with +inf)"""
    last: np.ndarray
    """shape (S,): each spline term's last knot interval that is not empty"""
    polynomials: np.ndarray
    """shape (S * (K + 1), 4, 4), one row per *piece* of a spline term: on knot interval m of
    term s (row ``s * (K + 1) + m``), basis function ``m - 3 + k`` is
    ``sum_p polynomials[row, p, k] * u ** (3 - p)`` with ``u = value - knots[s, m]``; row
    ``s * (K + 1) + K`` is a missing value's piece, the constants (0, 0, 0, 1)"""
    piece_columns: np.ndarray
    """shape (S * (K + 1), 4): the basis columns of each piece's four values (on interval m,
    the term's basis functions ``m - 3`` to ``m``; a missing value's: three of them, with
    zeros, and the term's "not measured" column)"""
    piece_rows: np.ndarray
    """shape (S,): ``s * (K + 1)``, the first piece of each spline term"""
    missing_piece: int
    """``K``: a missing value's piece, counted from its term's first"""
    width: int
    """nonzero columns per row: four per spline term, one per category term"""


def _basis(features: FeatureMap) -> Basis:
    """Build :class:`Basis` for a feature map."""
    terms, slices = features.terms, features.slices
    splines = [j for j, term in enumerate(terms) if term.is_spline]
    categories = [j for j, term in enumerate(terms) if not term.is_spline and not term.unused]
    starts: dict[int, int] = {}
    size = 1
    for j, term in enumerate(terms):
        if not term.unused:
            starts[j] = size
            size += (term.n_basis if term.is_spline else len(term.levels)) + 1
    to_design = np.zeros((size, 1 + len(features.columns)))
    to_design[0, 0] = 1.0
    for j, start in starts.items():
        term, columns = terms[j], slices[j]
        own = term.n_basis if term.is_spline else len(term.levels)
        block = term.transform if term.is_spline else np.eye(own)
        to_design[start : start + own, 1 + columns.start : 1 + columns.start + own] = block
        to_design[start + own, 1 + columns.start : 1 + columns.stop] = term.missing_row
    width = max([terms[j].knots.size for j in splines], default=2 * SPLINE_DEGREE + 2)
    knots = np.empty((len(splines), width))
    interior = np.full((len(splines), width - 2 * SPLINE_DEGREE - 2), np.inf)
    last = np.empty(len(splines), dtype=np.intp)
    # each spline term's pieces: its knot intervals, then a missing value's
    polynomials = np.zeros((len(splines), width + 1, 4, 4))
    polynomials[:, width, 3, 3] = 1.0  # "not measured" is 1 where the value is missing
    piece_columns = np.empty((len(splines), width + 1, 4), dtype=np.intp)
    for s, j in enumerate(splines):
        t, n_basis = terms[j].knots, terms[j].n_basis
        knots[s] = np.r_[t, np.full(width - t.size, t[-1])]
        interior[s, : n_basis - SPLINE_DEGREE - 1] = t[SPLINE_DEGREE + 1 : n_basis]
        last[s] = max(m for m in range(SPLINE_DEGREE, n_basis) if t[m] < t[m + 1])
        polynomials[s, : t.size - 1] = _pieces(t)
        first = starts[j]
        # intervals no value falls in (before the fourth knot, past the last) have zero
        # polynomials; their columns are the missing value's, inside the term's own
        piece_columns[s] = [first, first + 1, first + 2, first + n_basis]
        for m in range(SPLINE_DEGREE, n_basis):
            piece_columns[s, m] = first + m - SPLINE_DEGREE + _FOUR
    spline_starts = np.array([starts[j] for j in splines], dtype=np.intp)
    return Basis(
        size=size,
        to_design=to_design,
        splines=np.array(splines, dtype=np.intp),
        categories=np.array(categories, dtype=np.intp),
        starts=spline_starts,
        category_starts=np.array([starts[j] for j in categories], dtype=np.intp),
        category_levels=np.array([len(terms[j].levels) for j in categories], dtype=np.intp),
        knots=knots,
        spline_rows=np.arange(len(splines), dtype=np.intp),
        interior=interior,
        last=last,
        polynomials=polynomials.reshape(-1, 4, 4),
        piece_columns=piece_columns.reshape(-1, 4),
        piece_rows=np.arange(len(splines), dtype=np.intp) * (width + 1),
        missing_piece=width,
        width=(SPLINE_DEGREE + 1) * len(splines) + len(categories),
    )


def _pieces(knots: np.ndarray) -> np.ndarray:
    """The cubic B-spline basis of ``knots`` in power form, piece by piece.

    Returns
    -------
    numpy.ndarray, shape (len(knots) - 1, 4, 4)
        On knot interval ``m`` (``knots[m] <= x < knots[m + 1]``), basis function ``m - 3 + k``
        is ``sum_p pieces[m, p, k] * u ** (3 - p)`` with ``u = x - knots[m]``: the layout of
        :attr:`Basis.polynomials` (and of ``scipy.interpolate.PPoly.from_spline``'s
        coefficients, which a test holds equal). Zeros on an interval no value falls in: one
        that is empty (a repeated knot) or outside ``knots[3]`` to ``knots[-4]``.

    The Cox-de Boor recursion, carried out on each piece's polynomial coefficients:
    ``B[i, d] = (x - t[i]) / (t[i + d] - t[i]) B[i, d - 1]
    + (t[i + d + 1] - x) / (t[i + d + 1] - t[i + 1]) B[i + 1, d - 1]``, a term with a zero
    denominator being 0 (its ``B[., d - 1]`` is 0 everywhere). Built once per model, on Python
    floats: about 10 intervals of 4 small polynomials per number field.
    """
    t = knots.tolist()
    pieces = np.zeros((len(t) - 1, SPLINE_DEGREE + 1, SPLINE_DEGREE + 1))
    for m in range(SPLINE_DEGREE, len(t) - SPLINE_DEGREE - 1):
        if not t[m] < t[m + 1]:
            continue
        # the coefficients of u**0, u**1, ... of B[m - d + k, d], k = 0..d; first B[m, 0] = 1
        basis = [[1.0]]
        for d in range(1, SPLINE_DEGREE + 1):
            raised = []
            for k in range(d + 1):
                i = m - d + k
                poly = [0.0] * (d + 1)
                if k > 0 and t[i + d] > t[i]:  # (u + t[m] - t[i]) / width * B[i, d - 1]
                    width, shift = t[i + d] - t[i], t[m] - t[i]
                    for p, c in enumerate(basis[k - 1]):
                        poly[p] += shift * c / width
                        poly[p + 1] += c / width
                if k < d and t[i + d + 1] > t[i + 1]:  # (t[i+d+1] - t[m] - u) / width * B[i+1]
                    width, shift = t[i + d + 1] - t[i + 1], t[i + d + 1] - t[m]
                    for p, c in enumerate(basis[k]):
                        poly[p] += shift * c / width
                        poly[p + 1] -= c / width
                raised.append(poly)
            basis = raised
        # rows by falling power (u**3 first), columns by basis function
        pieces[m] = np.array(basis).T[::-1]
    return pieces
