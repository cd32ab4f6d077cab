"""Reading numbers from a model document (the parsed ``model.json``), and what a model file
records of each of its input fields.

Every number a model document holds is read with :func:`finite_array`: finite, of the
expected shape, and at most :data:`MAX_MAGNITUDE` in size, so that no sum or product the
scorer forms of them can overflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from data_schemas import Field, Kind, PredictorError

T = TypeVar("T")

MAX_MAGNITUDE = 1e6
"""Largest size of any number in a model file. A fitted model's numbers are log-odds of a few
units, variances below 1 and measurements in the schema's units (CRP up to 500 mg/L); a million
is far beyond all of them, and small enough that the scorer's sums of a few hundred products of
them stay finite."""


class ModelFileError(PredictorError, ValueError):
    """A model file that cannot be used: missing, corrupted, foreign or from another version."""


def read_document(build: Callable[[], T], source: str) -> T:
    """``build()``, with the errors that reading a malformed document raises (a key missing, a
    list where a number belongs, a bad value) as one :class:`ModelFileError` naming ``source``.
    """
    try:
        return build()
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        detail = f"{exc.args[0]!r} is missing" if isinstance(exc, KeyError) else str(exc)
        raise ModelFileError(f"{source} is not a valid model: {detail}") from exc


def finite_array(value: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a float64 array, checked.

    Raises
    ------
    ValueError
        If it is not numbers, has another shape than ``shape``, or has a number that is not
        finite or is larger than :data:`MAX_MAGNITUDE`.
    """
    try:
        raw = np.asarray(value)
    except ValueError as exc:  # lists of different lengths
        raise ValueError(f"{name} is not an array of numbers") from exc
    if raw.dtype.kind not in "iuf":  # text, true/false, null or a mapping: not a fitted number
        raise ValueError(f"{name} is not numbers")
    array = raw.astype(np.float64)
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has a value that is not a finite number")
    if array.size and np.abs(array).max() > MAX_MAGNITUDE:
        raise ValueError(f"{name} has a value larger than {MAX_MAGNITUDE:g}: not a fitted number")
    return array


def finite_number(value: Any, name: str) -> float:
    """A scalar read with :func:`finite_array`."""
    return float(finite_array(value, name, ()))


@dataclass(frozen=True)
class FieldDefinition:
    """What a model file records of one of its input fields, as the schema defined it when the
    model was fitted: enough to check that today's schema still means the same by it.

    Attributes
    ----------
    name : str
        The schema field.
    kind : str
        Its kind (``data_schemas.Kind`` value: "number", "integer", "category", "boolean").
    unit : str
        Its canonical unit ("" for none).
    levels : tuple of str
        A category's levels the model knows (empty for other kinds).
    log_floor : float or None
        The scale the model saw it on (``Field.log_floor``: the log of the value raised to
        this floor; None: the value itself): the model's knots are on that scale.
    """

    name: str
    kind: str
    unit: str
    levels: tuple[str, ...] = ()
    log_floor: float | None = None

    @classmethod
    def of(cls, field: Field, levels: tuple[str, ...] | None = None) -> FieldDefinition:
        """The definition of a schema field (with ``levels`` instead of the schema's, for a
        model that knows only some of them)."""
        known = field.levels if levels is None or field.kind is not Kind.CATEGORY else levels
        return cls(field.name, field.kind.value, field.unit, tuple(known), field.log_floor)

    def to_document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "unit": self.unit,
            "levels": [*self.levels],
            "log_floor": self.log_floor,
        }

    @classmethod
    def from_document(cls, entry: Mapping[str, Any]) -> FieldDefinition:
        """Read a definition, checking its types (not its meaning: see
        :func:`predictor.model._artifact.check_fields`)."""
        name, kind, unit, levels = (entry[key] for key in ("name", "kind", "unit", "levels"))
        if not all(isinstance(text, str) for text in (name, kind, unit)):
            raise ValueError(f"field definition {name!r}: name, kind and unit must be text")
        if not (isinstance(levels, list) and all(isinstance(level, str) for level in levels)):
            raise ValueError(f"field definition {name!r}: levels must be a list of text")
        if len(set(levels)) != len(levels):
            raise ValueError(f"field definition {name!r}: a level is given twice")
        if (kind == Kind.CATEGORY.value) != bool(levels):
            raise ValueError(f"field definition {name!r}: levels are given for a category only")
        floor = entry["log_floor"]
        if floor is not None and (
            isinstance(floor, bool) or not isinstance(floor, int | float) or not floor > 0
        ):
            raise ValueError(f"field definition {name!r}: log_floor must be a positive number")
        return cls(name, kind, unit, tuple(levels), None if floor is None else float(floor))
