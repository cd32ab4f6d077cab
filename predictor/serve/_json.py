"""The JSON API's shapes: the request body read strictly, the responses as pydantic models
(which also write the OpenAPI document), and the record's JSON Schema generated from the field
table.

A request body is parsed here, not by the web framework, so that what is not JSON is refused
with a problem and not silently read: ``NaN`` and ``Infinity`` (not JSON numbers, which Python's
``json`` would accept and the schema would then read as "not measured"), a key given twice in
one object, nesting too deep to parse, text that is not UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from data_schemas import FIELDS, SCHEMA_VERSION, Kind, PredictorError, Problem, Role
from data_schemas import Field as SchemaField
from data_schemas.errors import SHOWN_VALUE_CHARS, shortened

INPUT_ROLES = (Role.ID, Role.PREDICTOR, Role.SAFETY)
"""The fields a record of the API carries (others are accepted and ignored, as by predict)."""

MAX_KEYS = 200
"""A record with more keys is refused (the schema has a few dozen names; matching each unknown
key against them costs ~0.15 ms, so a record of 50,000 keys would hold the server for seconds)."""
MAX_KEY_CHARS = 200
"""A record with a longer key is refused (no field's name, alias or header is that long)."""


class RequestProblem(PredictorError, ValueError):
    """A request body that is not a record or a list of records; ``problems`` says why."""

    def __init__(self, problems: list[ProblemOut]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) with the request")


class ProblemOut(BaseModel):
    """One problem with one record: which record, field and value, which rule it breaks."""

    model_config = ConfigDict(extra="forbid")

    record: int | None = Field(
        description="0-based position of the record in a list; 0 for a single record; null "
        "for a problem with the body as a whole"
    )
    field: str = Field(description="the schema field (empty when the key matches none)")
    column: str = Field(description="the key as the record gave it")
    value: str = Field(description=f"the offending value as text (cut to {SHOWN_VALUE_CHARS})")
    rule: str = Field(
        description="stable reason code: not_a_number, not_finite, not_an_integer, "
        "out_of_range, unknown_level, not_a_boolean, duplicate_field, unit_unclear, "
        "not_an_object, too_many_keys, key_too_long, invalid_json"
    )
    message: str = Field(description="what is wrong and how to fix it")

    @classmethod
    def of(cls, record: int | None, problem: Problem) -> ProblemOut:
        """The response shape of a schema problem of record number ``record``."""
        return cls(
            record=record,
            field=problem.field,
            column=problem.column,
            value=shortened(problem.value),
            rule=str(problem.reason),
            message=problem.message,
        )


class ProblemsOut(BaseModel):
    """Response 422: every problem of every record (no record is scored then)."""

    model_config = ConfigDict(extra="forbid")

    detail: str
    problems: list[ProblemOut]


class ErrorOut(BaseModel):
    """Response 413 and other refusals: one sentence that says what and how to fix it."""

    detail: str


class PredictionOut(BaseModel):
    """One record's prediction: the numbers of ``predict(dict)``, to the last digit."""

    model_config = ConfigDict(extra="forbid")

    patient_id: str | None = Field(
        None, description="the record's patient_id, as text, when it has one"
    )
    probability: float = Field(description="probability of response (>= 50% MADRS reduction)")
    interval: tuple[float, float] = Field(description="90% interval for the probability")
    label: str = Field(description="likely responder or unlikely responder")
    contributions: dict[str, float] = Field(
        description="each model field's contribution, log-odds. Route was not randomised in "
        "the training data: comparing routes gives an association, not the effect of switching"
    )
    baseline: float = Field(
        description="log-odds of the average training patient; baseline + "
        "sum(contributions) is the logit of probability"
    )
    reasons: list[str]
    warnings: list[str]
    ignored_keys: list[str] = Field(
        description="keys of the record that match no field (passed over, as predict does)"
    )


class FieldOut(BaseModel):
    """One input field, as the field table defines it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    role: str
    description: str
    label: str
    unit: str
    low: float | None
    high: float | None
    levels: list[str]
    level_aliases: dict[str, str]
    aliases: list[AliasOut]
    measured_by: str


class AliasOut(BaseModel):
    """Another key for a field; a value under it is multiplied by ``factor`` (unit conversion)."""

    name: str
    unit: str
    factor: float


class SchemaOut(BaseModel):
    """The record format of ``POST /predict``: every input field, from the field table."""

    schema_version: str
    used_by_model: list[str] = Field(description="the fields the served model uses")
    fields: list[FieldOut]


class HealthOut(BaseModel):
    """Response of ``GET /health``."""

    status: str
    model: str
    schema_version: str
    version: str


FieldOut.model_rebuild()


def field_out(field: SchemaField) -> FieldOut:
    """One field of the table in the shape of ``GET /schema``."""
    return FieldOut(
        name=field.name,
        kind=str(field.kind),
        role=str(field.role),
        description=field.description,
        label=field.label,
        unit=field.unit,
        low=field.low,
        high=field.high,
        levels=list(field.levels),
        level_aliases=dict(field.level_aliases),
        aliases=[
            AliasOut(name=a.name, unit=a.unit or field.unit, factor=a.factor) for a in field.aliases
        ],
        measured_by=field.measured_by,
    )


def schema_out(model_fields: tuple[str, ...]) -> SchemaOut:
    """``GET /schema``: the input fields of the field table, in its order."""
    return SchemaOut(
        schema_version=SCHEMA_VERSION,
        used_by_model=list(model_fields),
        fields=[field_out(f) for f in FIELDS if f.role in INPUT_ROLES],
    )


def _property(field: SchemaField) -> dict[str, Any]:
    """A field's JSON Schema, for the OpenAPI document."""
    described = field.description + (f" Unit: {field.unit}." if field.unit else "")
    if field.is_number:
        schema: dict[str, Any] = {"type": ["number", "string", "null"]}
        if field.low is not None:
            schema["minimum"] = field.low
        if field.high is not None:
            schema["maximum"] = field.high
    elif field.kind is Kind.CATEGORY:
        spellings = [*field.levels, *field.level_aliases]
        schema = {"type": ["string", "null"], "examples": list(field.levels)}
        described += f" One of {', '.join(spellings)} (any case)."
    elif field.kind is Kind.BOOLEAN:
        schema = {"type": ["boolean", "integer", "string", "null"]}
        described += " yes/no, true/false, 1/0, y/n."
    else:
        schema = {"type": ["string", "integer", "null"]}
    return {**schema, "description": described}


def record_json_schema() -> dict[str, Any]:
    """One record's JSON Schema (canonical names; aliases and other units are accepted too,
    as ``GET /schema`` lists them), generated from the field table."""
    properties: dict[str, Any] = {}
    for field in FIELDS:
        if field.role not in INPUT_ROLES:
            continue
        properties[field.name] = _property(field)
        for alias in field.aliases:
            if alias.unit and alias.unit != field.unit:
                properties[alias.name] = {
                    **_property(field),
                    "description": f"{field.name} in {alias.unit} (x{alias.factor:g}).",
                }
                properties[alias.name].pop("minimum", None)
                properties[alias.name].pop("maximum", None)
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": True,
        "description": "One patient. Every field is optional: a missing or null field is "
        "'not measured'. Keys match as the schema matches column names (any case, spaces or "
        "hyphens for underscores).",
    }


def _body_problem(rule: str, value: str, message: str) -> RequestProblem:
    return RequestProblem(
        [
            ProblemOut(
                record=None, field="", column="", value=shortened(value), rule=rule, message=message
            )
        ]
    )


def _refuse_constant(name: str) -> float:
    raise _body_problem(
        "invalid_json",
        name,
        f"{name} is not a JSON number; give a finite number, or null (or leave the field out) "
        "if it was not measured",
    )


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise _body_problem(
                "invalid_json",
                key,
                f"the key {shortened(key)!r} is given twice in one object; give it once",
            )
        record[key] = value
    return record


def parse_body(body: bytes) -> tuple[list[Any], bool]:
    """The records of a request body and whether it was a list (else one record).

    Raises
    ------
    RequestProblem
        If the body is not UTF-8 JSON text of an object or a list, or breaks JSON's rules.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _body_problem(
            "invalid_json", "", f"the body is not UTF-8 text (byte {exc.start}); send JSON in UTF-8"
        ) from exc
    try:
        parsed = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_object)
    except RequestProblem:
        raise
    except RecursionError as exc:
        raise _body_problem(
            "invalid_json", "", "the body is nested too deeply; send a record or a list of records"
        ) from exc
    except json.JSONDecodeError as exc:
        raise _body_problem(
            "invalid_json",
            text[max(exc.pos - 20, 0) : exc.pos + 20],
            f"the body is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); send "
            "a record (an object) or a list of records",
        ) from exc
    except ValueError as exc:  # an integer with more digits than Python converts
        raise _body_problem(
            "invalid_json", "", f"the body has a number that cannot be read ({exc})"
        ) from exc
    try:  # one pass over every key and text, nested or not (the JSON is at most 2 MiB)
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _body_problem(
            "invalid_json",
            "",
            "the body has a text with a lone surrogate (a \\u escape from \\ud800 to \\udfff "
            "without its pair), which is no character; send the text as UTF-8",
        ) from exc
    if isinstance(parsed, dict):
        return [parsed], False
    if isinstance(parsed, list):
        return parsed, True
    raise _body_problem(
        "not_an_object",
        json.dumps(parsed),
        f"the body is a JSON {type(parsed).__name__}; send a record (an object of field: "
        "value) or a list of records",
    )


def not_an_object(position: int, value: Any) -> ProblemOut:
    """The problem of a list item that is not a record."""
    shown = json.dumps(value)
    return ProblemOut(
        record=position,
        field="",
        column="",
        value=shortened(shown),
        rule="not_an_object",
        message=f"record {position} is a JSON {_json_type(value)}, not an object of field: value",
    )


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def key_problems(position: int, record: dict[str, Any]) -> list[ProblemOut]:
    """The problems of a record whose keys are too many or too long to match (else none)."""
    if len(record) > MAX_KEYS:
        return [
            ProblemOut(
                record=position,
                field="",
                column="",
                value=f"{len(record)} keys",
                rule="too_many_keys",
                message=f"record {position} has {len(record):,} keys, more than the limit of "
                f"{MAX_KEYS}; send the schema's fields (GET /schema) and little else",
            )
        ]
    return [
        ProblemOut(
            record=position,
            field="",
            column=shortened(key),
            value="",
            rule="key_too_long",
            message=f"record {position} has a key of {len(key):,} characters, more than the "
            f"limit of {MAX_KEY_CHARS}; no field is named so",
        )
        for key in record
        if len(key) > MAX_KEY_CHARS
    ]
