"""Parameters checked at the boundary: each public function declares what every parameter
accepts, as a table, and checks its arguments against it before it does any work.

scikit-learn's ``_parameter_constraints`` and ``validate_params`` are the model; theirs is
private API, and importing scikit-learn costs about 1 s of start-up that scoring avoids, so this
is a small copy of the idea. A parameter accepts a value when any of its constraints does; a
value none accepts is an :class:`InvalidParameterError` in one message form::

    score_csv(): chunk_rows = 0 must be an int in [1, inf)

Every bad parameter is named at once, not only the first.

>>> check("f", {"n": [Interval(int, 1, INF, closed="left")], "how": [Options("a", "b")]},
...       {"n": 0, "how": "c"})
Traceback (most recent call last):
...
predictor._params.InvalidParameterError: f(): n = 0 must be an int in [1, inf); how = 'c' ...
"""

from __future__ import annotations

import math
import numbers
import os
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

import numpy as np

from data_schemas import PredictorError

INF = math.inf


class Constraint(Protocol):
    """What one constraint is: a test, and its description for the message ("an int in
    [1, inf)"), worded to follow "must be"."""

    def accepts(self, value: Any) -> bool: ...

    def __str__(self) -> str: ...


ParameterTable = Mapping[str, Sequence[Constraint]]
"""A function's parameter constraints: parameter name -> the constraints it accepts."""


@dataclass(frozen=True)
class BadParameter:
    """One parameter given a value it does not accept.

    Parameters
    ----------
    name : str
        The parameter's name.
    value : str
        The value given, as its ``repr`` (shortened), so that the error pickles whatever it is.
    expected : str
        What the parameter accepts, worded to follow "must be".
    """

    name: str
    value: str
    expected: str

    def __str__(self) -> str:
        return f"{self.name} = {self.value} must be {self.expected}"


class InvalidParameterError(PredictorError, ValueError, TypeError):
    """A public function called with a parameter value it does not accept (a value of the wrong
    type, or out of range): a ``TypeError`` and a ``ValueError`` both, as scikit-learn's.

    Parameters
    ----------
    function : str
        The function called, as the user calls it.
    parameters : sequence of BadParameter
        Every parameter given a value it does not accept.
    """

    def __init__(self, function: str, parameters: Sequence[BadParameter]) -> None:
        self.function = function
        self.parameters: tuple[BadParameter, ...] = tuple(parameters)
        super().__init__(f"{function}(): " + "; ".join(str(p) for p in self.parameters))


@dataclass(frozen=True)
class Interval:
    """A number between ``low`` and ``high`` (``INF``: unbounded); ``closed`` says which ends
    belong to it. ``int``: integers only (not ``bool``); ``float``: any real number but NaN.

    >>> probability = Interval(float, 0, 1, closed="neither")
    >>> str(probability), probability.accepts(0.5), probability.accepts(1)
    ('a float in (0, 1)', True, False)
    """

    kind: type[int] | type[float]
    low: float
    high: float
    closed: Literal["both", "left", "right", "neither"] = "both"

    def accepts(self, value: Any) -> bool:
        wanted = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, wanted):
            return False
        # a real number; typeshed's numbers.Real declares no comparison operators
        number = cast(float, value)
        low_ok = number >= self.low if self.closed in ("both", "left") else number > self.low
        high_ok = number <= self.high if self.closed in ("both", "right") else number < self.high
        return bool(low_ok and high_ok)

    def __str__(self) -> str:
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        ends = f"{left}{_bound(self.low)}, {_bound(self.high)}{right}"
        return f"{_article(self.kind.__name__)} in {ends}"


@dataclass(frozen=True, init=False)
class Options:
    """One of a fixed set of values: an instance of its type that compares equal (so ``1`` is
    not ``"1"``, and a numpy string is its ``str``)."""

    values: tuple[Any, ...]
    types: tuple[type, ...] = field(repr=False, compare=False)

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "types", tuple({type(v) for v in values}))

    def accepts(self, value: Any) -> bool:
        # the type first, so that nothing is compared with a value of another kind
        return isinstance(value, self.types) and value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class InstanceOf:
    """An instance of one of ``types`` (``bool`` is not taken for an ``int``); ``name`` says
    what it is in the message ("a bool", "a pandas DataFrame")."""

    types: type | tuple[type, ...]
    name: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Where:
    """Any value ``test`` accepts; ``name`` says what that is in the message."""

    test: Callable[[Any], bool]
    name: str

    def accepts(self, value: Any) -> bool:
        return bool(self.test(value))

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class NonEmptySequenceOf:
    """A list, tuple or one-dimensional array of at least one item, each of which ``item``
    accepts."""

    item: Constraint

    def accepts(self, value: Any) -> bool:
        is_sequence = isinstance(value, list | tuple) or (
            isinstance(value, np.ndarray) and value.ndim == 1
        )
        return is_sequence and len(value) > 0 and all(self.item.accepts(v) for v in value)

    def __str__(self) -> str:
        article, noun, rest = f"{self.item} ".split(" ", 2)  # "a float in (0, inf)"
        plural = f"{noun}s {rest}" if article in ("a", "an") else str(self.item)
        return f"a non-empty list, tuple or 1-d array of {plural.strip()}"


BOOL = InstanceOf((bool, np.bool_), "a bool")
"""``True`` or ``False`` (numpy's ``bool_`` too)."""
NONE = Where(lambda value: value is None, "None")
PATH = InstanceOf((str, os.PathLike), "a path (str or os.PathLike)")
CALLABLE = Where(callable, "a callable")
TEXT = InstanceOf(str, "a str")
SEED = Interval(int, 0, 2**32 - 1)
"""A seed scikit-learn's ``random_state`` (and numpy's legacy ``RandomState``) accepts."""


def _article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _bound(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}" if isinstance(value, float) else str(value)


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60


def _shown(value: Any) -> str:
    """A value as the message shows it: its ``repr``, shortened, on one line."""
    return " ".join(_SHOWN.repr(value).split())


def check(
    function: str,
    constraints: ParameterTable,
    arguments: Mapping[str, Any],
) -> None:
    """Raise :class:`InvalidParameterError` naming every argument its constraints refuse.

    Parameters
    ----------
    function : str
        The function's name, for the message.
    constraints : mapping
        Parameter name -> the constraints it accepts (any one suffices). Parameters not named
        are not checked.
    arguments : mapping
        Parameter name -> value, in the order of the signature (the function's ``locals()`` as
        its first statement); the message names bad ones in this order.
    """
    bad, checked = [], 0
    for name, value in arguments.items():  # plain loops: predict(dict) pays for this per call
        accepted = constraints.get(name)
        if accepted is None:
            continue
        checked += 1
        for constraint in accepted:
            if constraint.accepts(value):
                break
        else:
            expected = " or ".join(str(c) for c in accepted)
            bad.append(BadParameter(name, _shown(value), expected))
    if checked != len(constraints):  # a typo in a constraints table would check nothing
        unknown = ", ".join(sorted(constraints.keys() - arguments.keys()))
        raise RuntimeError(f"{function}() has no parameter {unknown}")
    if bad:
        raise InvalidParameterError(function, bad)
