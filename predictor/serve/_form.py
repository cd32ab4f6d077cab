"""The page's form, generated from the field table: which inputs, in which sections, with which
units and choices; and the way back, from submitted form data to a record for ``predict``.

An empty input means "not measured" (the field is left out of the record); a field with several
units (CRP in mg/L or mg/dL, BDNF in ng/mL or pg/mL) has a unit choice, and its value goes into
the record under the column name of the chosen unit, so the schema converts it as it converts a
CSV column of that name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from data_schemas import FIELDS, FIELDS_BY_NAME, Field, Kind, Problem, Reason, Role
from predictor.serve._chart import level_text

UNIT_SUFFIX = "__unit"
"""A unit choice's input name is the field's name with this suffix."""


@dataclass(frozen=True)
class Choice:
    """One option of a select: the value sent and the words shown."""

    value: str
    text: str


@dataclass(frozen=True)
class FormField:
    """One input of the form.

    Attributes
    ----------
    name : str
        The field's canonical name (the input's name).
    label : str
        What the input is called on the page.
    hint : str
        The field's description and its plausible range.
    kind : str
        ``"number"`` (a text box), or ``"choice"`` (a select).
    units : tuple of str
        A number's units, its own first; more than one gives a unit choice.
    choices : tuple of Choice
        A select's options after "not recorded".
    """

    name: str
    label: str
    hint: str
    kind: str
    units: tuple[str, ...] = ()
    choices: tuple[Choice, ...] = ()

    @property
    def unit_name(self) -> str:
        """The name of this field's unit choice."""
        return self.name + UNIT_SUFFIX


@dataclass(frozen=True)
class Section:
    """A group of inputs measured together (by one test), or the safety screen."""

    title: str
    note: str
    fields: tuple[FormField, ...]


def _label(field: Field) -> str:
    if field.label:
        return field.label[:1].upper() + field.label[1:]
    return field.description.removesuffix(" (safety screen).").removesuffix(".")


def _form_field(field: Field) -> FormField:
    said = field.description.removesuffix(" (safety screen).").removesuffix(".")
    hint = "" if said.casefold() == _label(field).casefold() else field.description
    if field.range_text:
        hint = f"{hint} Plausible range {field.range_text}.".strip()
    if field.is_number:
        units = tuple(field.columns_by_unit()) if field.unit else ()
        return FormField(field.name, _label(field), hint, "number", units=units)
    if field.kind is Kind.CATEGORY:
        choices = tuple(Choice(level, level_text(field, level)) for level in field.levels)
    else:
        choices = (Choice("yes", "yes"), Choice("no", "no"))
    return FormField(field.name, _label(field), hint, "choice", choices=choices)


def _title(test: str) -> str:
    """A section's title: the test's name, capitalised unless its first word has capitals of
    its own ("hs-CRP blood test")."""
    if not test:
        return "Clinical"
    first = test.split()[0]
    return test if first != first.lower() else test[:1].upper() + test[1:]


def form_sections(model_fields: Sequence[str]) -> tuple[Section, ...]:
    """The form's sections for a model: its fields grouped by the test that measures them
    (clinical fields first), then the safety-screen questions, all in schema order."""
    groups: dict[str, list[FormField]] = {}
    for field in FIELDS:
        if field.role is Role.PREDICTOR and field.name in model_fields:
            groups.setdefault(field.measured_by, []).append(_form_field(field))
    sections = [
        Section(
            _title(test),
            "Leave a field empty if it is not known." if not test else "Leave empty if not done.",
            tuple(fields),
        )
        for test, fields in groups.items()
    ]
    safety = tuple(_form_field(f) for f in FIELDS if f.role is Role.SAFETY)
    sections.append(
        Section(
            "Safety screen",
            "Not model inputs: a yes raises a warning for the treating team.",
            safety,
        )
    )
    return tuple(sections)


def form_record(
    form: Mapping[str, str], sections: Sequence[Section]
) -> tuple[dict[str, str], list[Problem]]:
    """The record a submitted form gives: each non-empty input under its column name (the
    chosen unit's column for a field with a unit choice); unknown inputs are ignored. A unit
    that is none of the field's is a problem (the value is never read in a guessed unit)."""
    record: dict[str, str] = {}
    problems: list[Problem] = []
    for section in sections:
        for field in section.fields:
            value = form.get(field.name, "").strip()
            if not value:
                continue
            column = field.name
            if len(field.units) > 1:
                unit = form.get(field.unit_name, field.units[0])
                by_unit = FIELDS_BY_NAME[field.name].columns_by_unit()
                if unit not in by_unit:
                    shown = unit if len(unit) <= 40 else unit[:37] + "..."
                    message = (
                        f"{field.unit_name} = {shown!r} is not a unit of {field.name}; "
                        f"choose one of {', '.join(by_unit)}"
                    )
                    problems.append(
                        Problem(
                            None, field.unit_name, field.name, shown, Reason.UNIT_UNCLEAR, message
                        )
                    )
                    continue
                column = by_unit[unit]
            record[column] = value
    return record, problems


def problems_by_field(problems: Sequence[Problem]) -> dict[str, str]:
    """Each field's problem messages, joined, for the message next to its input."""
    messages: dict[str, list[str]] = {}
    for problem in problems:
        messages.setdefault(problem.field, []).append(problem.message)
    return {field: " ".join(texts) for field, texts in messages.items()}
