"""Validation problems: stable reason codes, a structured record of each problem, the exception;
and :class:`PredictorError`, the base of every exception this project raises.

Every message says what is wrong, why, and how to fix it, and is worded here only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from data_schemas.fields import BOOLEAN_SPELLINGS, Alias, Field


class Reason(StrEnum):
    """Stable reason codes; the same codes fill the ``reason`` column of a rejects file."""

    NOT_A_NUMBER = "not_a_number"
    NOT_FINITE = "not_finite"
    NOT_AN_INTEGER = "not_an_integer"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_LEVEL = "unknown_level"
    NOT_A_BOOLEAN = "not_a_boolean"
    DUPLICATE_FIELD = "duplicate_field"
    UNIT_UNCLEAR = "unit_unclear"
    WRONG_FIELD_COUNT = "wrong_field_count"
    RESEMBLES_FIELD = "resembles_field"
    UNCLOSED_QUOTE = "unclosed_quote"
    RECORD_TOO_LONG = "record_too_long"


@dataclass(frozen=True)
class Problem:
    """One problem with one cell (or, for ``row=None``, with the columns themselves).

    Parameters
    ----------
    row : object
        The row's index label in the input (``None`` for a problem with the header).
    column : str
        The column as the input named it.
    field : str
        The canonical field the column maps to.
    value : str
        The offending value, as text.
    reason : Reason
        Stable reason code.
    message : str
        What is wrong and how to fix it.
    """

    row: Any
    column: str
    field: str
    value: str
    reason: Reason
    message: str


class PredictorError(Exception):
    """Base of every exception this project raises (``data_schemas`` and ``predictor``), so that
    ``except PredictorError`` catches anything either refuses. Each subclass also subclasses the
    built-in a caller would expect (most are a ``ValueError``).

    Every subclass pickles with its structured data, whatever its ``__init__`` takes, so that an
    error raised in a process pool's worker reaches the parent intact (as pandera's
    ``ReducedPickleExceptionBase``): the copy is rebuilt from the attributes and ``args``, without
    calling ``__init__`` again. An attribute must therefore be picklable itself.

    >>> import pickle
    >>> error = SchemaError([Problem(3, "crp", "crp_mg_l", "high", Reason.NOT_A_NUMBER, "...")])
    >>> again = pickle.loads(pickle.dumps(error))
    >>> again.problems == error.problems, str(again) == str(error)
    (True, True)
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException's own __reduce__ calls type(self)(*self.args), which breaks for an
        # __init__ that takes structured data (SchemaError's problems, InputError's reason).
        state = {**self.__dict__, "args": self.args}
        return type(self).__new__, (type(self),), state


class SchemaError(PredictorError, ValueError):
    """Input that does not fit the schema. ``problems`` lists every problem found, not just one."""

    shown = 20
    """Problems listed in the message; ``problems`` has them all."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} with the input:"
        lines = [head, *(p.message for p in self.problems[: self.shown])]
        if count > self.shown:
            lines.append(f"... and {count - self.shown} more (all are in .problems)")
        super().__init__("\n  ".join(lines))

    @classmethod
    def from_table(cls, problems: Any) -> SchemaError:
        """The error for a problems table as ``validate`` returns it (a DataFrame)."""
        return cls(
            [
                Problem(**{**record, "reason": Reason(record["reason"])})
                for record in problems.to_dict("records")
            ]
        )


SHOWN_VALUE_CHARS = 200
"""A value is cut to this many characters where a message or a response shows it."""


def shortened(text: str) -> str:
    """``text`` cut to :data:`SHOWN_VALUE_CHARS` characters (ending in "...") if longer."""
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


def _shown(value: str) -> str:
    """A value as it appears in a message (cut by :func:`shortened`): bare when it is a plain
    number, quoted otherwise."""
    value = shortened(value)
    return value if re.fullmatch(r"[+-]?[0-9][0-9.eE+-]*", value) else repr(value)


def _unit_hint(field: Field, alias: Alias | None) -> str:
    if alias is not None:
        return f"give the value in {alias.unit}"
    hint = f"give the value in {field.unit}" if field.unit else "give a number"
    for unit, name in field.columns_by_unit().items():
        if unit != field.unit:
            hint += f", or use the column {name} for {unit}"
    return hint


def describe(
    field: Field,
    column: str,
    value: str,
    reason: Reason,
    *,
    alias: Alias | None = None,
    converted: float | None = None,
    decimal: str = ".",
) -> str:
    """Word the message for one problem: what is wrong, why, and how to fix it.

    Parameters
    ----------
    field : Field
        The field the column maps to.
    column : str
        The column as the input named it.
    value : str
        The offending value, as text.
    reason : Reason
        What is wrong.
    alias : Alias, optional
        The alias the column matched, if it was not the canonical name.
    converted : float, optional
        For ``OUT_OF_RANGE`` from an alias column: the value in the canonical unit.
    decimal : str
        The decimal mark numbers were read with; a message about a number names it when it is
        not ``"."``.
    """
    said = f"{column} = {_shown(value)}"
    if reason is Reason.NOT_A_NUMBER:
        mark = (
            "" if decimal == "." else f" (with {decimal!r} as the decimal mark, as in 1{decimal}5)"
        )
        return (
            f"{said} is not a number{mark}; {_unit_hint(field, alias)}, or leave it empty if not "
            f"measured"
        )
    if reason is Reason.NOT_FINITE:
        return f"{said} is not a finite number; leave the cell empty if it was not measured"
    if reason is Reason.NOT_AN_INTEGER:
        return f"{said} is not a whole number; give a count ({field.unit})"
    if reason is Reason.OUT_OF_RANGE:
        after = "" if converted is None else f" (= {converted:g} {field.unit})"
        return (
            f"{said}{after} is outside the plausible range {field.range_text}; "
            f"check the value and its unit"
        )
    if reason is Reason.UNKNOWN_LEVEL:
        accepted = ", ".join(field.levels)
        if field.level_aliases:
            accepted += f" (also {', '.join(field.level_aliases)})"
        return f"{said} is not a known {field.name}; use one of {accepted}, in any case"
    if reason is Reason.NOT_A_BOOLEAN:
        return f"{said} is not yes or no; use {BOOLEAN_SPELLINGS}, or leave it empty if unknown"
    raise ValueError(f"describe() has no wording for {reason!r}")


def without_value(message: str, column: str, value: str, reason: str = "") -> str:
    """A row problem's message with the offending value left out, for summaries and logs
    that must not carry patient values ("age_years is not a number; ...").

    A message not worded as "column = value ..." (a ragged row's, say) is replaced by the
    column and the reason code, so that no value can slip through.

    >>> without_value("age_years = 'old' is not a number; give a number", "age_years", "old")
    'age_years is not a number; give a number'
    >>> without_value("line 4 has 5 fields, 'a' more than...", "", "a", "record_too_long")
    'record_too_long: a line too long for a record (is the file CSV?)'
    >>> without_value("1,'a' ...", "", "a", "some_reason")
    'some_reason'
    """
    said = f"{column} = {_shown(value)}"
    if not message.startswith(said):
        rule = f"{reason}: {LINE_RULES[reason]}" if reason in LINE_RULES else reason
        return f"{column}: {rule}" if column else rule
    return column + re.sub(r"^ \(= [^)]*\)", "", message[len(said) :])


LINE_RULES = {
    Reason.WRONG_FIELD_COUNT.value: "more or fewer fields than the header (check the line for "
    "a missing or extra separator, and quote any value that contains one)",
    Reason.UNCLOSED_QUOTE.value: "a quoted field that does not close (check the line's quotes)",
    Reason.RECORD_TOO_LONG.value: "a line too long for a record (is the file CSV?)",
}
"""What the rules of a whole line say, for a summary that shows no value (the rejects file
has each line's full message)."""


def summary_lines(problems: Any, limit: int, *, place: str = "record") -> list[str]:
    """The first ``limit`` problems of a problems table, for a summary on stderr: where (the
    ``place`` and its number, from the table's first column) and which rule, never the value.

    Parameters
    ----------
    problems : pandas.DataFrame
        A problems or rejects table: its first column numbers the row (or file line); it has
        ``column``, ``value``, ``reason`` and ``message`` columns.
    limit : int
        How many to give.
    place : str
        What the number counts ("record", "row", "line").
    """
    return [
        f"{place} {row[1]}: "
        f"{without_value(row.message, str(row.column), str(row.value), str(row.reason))}"
        for row in problems.head(limit).itertuples()
    ]


def duplicate_field(field: Field, columns: list[str]) -> Problem:
    """The header problem of one field given under several column names."""
    named = ", ".join(repr(c) for c in columns[:-1]) + f" and {columns[-1]!r}"
    both = "both" if len(columns) == 2 else "all"
    message = (
        f"columns {named} {both} give {field.name}; keep one of them "
        f"(the predictor never guesses which is right)"
    )
    return Problem(
        None, columns[-1], field.name, ", ".join(columns), Reason.DUPLICATE_FIELD, message
    )


def unit_unclear(column: str, field: Field, said: str, named: str) -> Problem:
    """The header problem of a column that means a measured field without a usable unit.

    Parameters
    ----------
    column : str
        The column as the input named it.
    field : Field
        The field the column seems to mean; the message names its column for each unit.
    said : str
        The unit the header gives in brackets (``""``: none).
    named : str
        The unit the rest of the name carries (``""``: none).
    """
    options = " or ".join(f"{name} for {unit}" for unit, name in field.columns_by_unit().items())
    if not said:
        what = "does not say its unit"
    elif named:
        what = f"gives the unit {said!r}, but its name says {named}"
    else:
        what = f"gives the unit {said!r}, which is none of the schema's units for {field.name}"
    message = (
        f"column {column!r} {what}; name it {options}, so that no value is read in the wrong unit"
    )
    return Problem(None, column, field.name, column, Reason.UNIT_UNCLEAR, message)


def resembles_field(column: str, field: Field, why: str) -> Problem:
    """The header problem of a column that matches no field but resembles one, for callers that
    refuse such columns (``--strict-columns``); the message names columns only, never a value.

    Parameters
    ----------
    column : str
        The column as the input named it.
    field : Field
        The field it resembles; the message names its column for each unit.
    why : str
        Why it resembles the field, worded to follow "it" ("contains the name 'crp'").
    """
    columns = field.columns_by_unit()
    if len(columns) == 1:
        names = next(iter(columns.values()))
    else:
        names = " or ".join(f"{name} for {unit}" for unit, name in columns.items())
    message = (
        f"column {column!r} matches no field but resembles {field.name} (it {why}); rename it "
        f"to {names}, or rename it so that it does not resemble a field"
    )
    return Problem(None, column, field.name, column, Reason.RESEMBLES_FIELD, message)


def wrong_field_count(line: int, fields: int, expected: int, text: str, separator: str) -> Problem:
    """The problem of a line of a CSV file with more or fewer fields than its header.

    Parameters
    ----------
    line : int
        The line number in the file (the header is line 1).
    fields, expected : int
        The fields on the line and in the header.
    text : str
        The line as read (cut by :func:`shortened`).
    separator : str
        The field separator the file was read with.
    """
    shown = shortened(text)
    more = "more" if fields > expected else "fewer"
    message = (
        f"line {line} has {fields} field{'s' if fields != 1 else ''}, {more} than the header's "
        f"{expected}; check it for a missing or extra {separator!r}, and quote any value that "
        f"contains one"
    )
    return Problem(line, "", "", shown, Reason.WRONG_FIELD_COUNT, message)
