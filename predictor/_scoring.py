"""``predict``: validated records -> probability, 90% interval, label, contributions, reasons and
warnings. The numbers take one code path for one patient and for a whole table (the feature
map's sparse encoding, then the model's ``score``): a table is encoded as arrays
(``encode``), one patient from its Python values (``encode_record``, the same arrays to the last
bit, without numpy's per-call cost on one-row arrays). A table's words are built as Arrow arrays
of texts (:func:`score_clean`), one patient's from its Python values (:func:`score_record`),
from the same words and rules in :mod:`predictor._explain`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, NamedTuple, cast, overload

import numpy as np
import pandas as pd
import pyarrow as pa

from data_schemas import (
    FIELDS_BY_NAME,
    Problem,
    Reason,
    SchemaError,
    match_columns,
    validate,
    validate_record,
)
from data_schemas.validate import escape_surrogates
from predictor._explain import (
    NOTE_SEPARATOR,
    Notes,
    join_notes,
    reason_notes,
    record_reasons,
    record_warnings,
    warning_notes,
)
from predictor._params import (
    BOOL,
    NONE,
    PATH,
    BadParameter,
    InstanceOf,
    InvalidParameterError,
    Options,
    ParameterTable,
    check,
)
from predictor.model import MODEL_KINDS, Model, Scores, load_model

CARRIED_FIELDS = ("responded",)
"""Schema fields that are no model input but are carried to a scored table when the input has
them (after the scores, before the unknown columns): the outcome, so that scores can be checked
against it."""

ModelLike = Model | str | os.PathLike[str] | None
# The project's own model classes first: isinstance of a runtime_checkable Protocol looks up
# its members each time (~20 us on Python 3.11, a tenth of predict(dict)); another object
# still gets the protocol check, so the same values are accepted.
MODEL_CONSTRAINTS = (NONE, PATH, InstanceOf((*MODEL_KINDS.values(), Model), "a Model"))
"""What a ``model=`` parameter accepts (:data:`ModelLike`), for :func:`predictor._params.check`."""

_PREDICT_PARAMETERS: ParameterTable = {
    "patients": [InstanceOf((Mapping, pd.DataFrame), "a mapping (one patient) or a DataFrame")],
    "model": MODEL_CONSTRAINTS,
    "explain": [BOOL],
    "invalid": [Options("raise", "collect")],
}


@dataclass(frozen=True)
class Prediction:
    """One patient's prediction.

    Attributes
    ----------
    probability : float
        Predicted probability of response (at least 50% MADRS reduction after induction).
    interval : tuple of float
        90% interval for the probability, from the model's parameter uncertainty.
    label : str
        ``"likely responder"`` when ``probability`` is at or above the model's threshold, else
        ``"unlikely responder"``.
    contributions : mapping of str to float
        Each model field's contribution, in log-odds: its term minus the term's training mean.
    baseline : float
        Log-odds of the average training patient; ``baseline + sum(contributions)`` is the
        logit of ``probability``.
    reasons : tuple of str
        The largest contributions in words, most important first.
    warnings : tuple of str
        Fields not measured, values outside the training range, safety-screen flags.
    """

    probability: float
    interval: tuple[float, float]
    label: str
    contributions: Mapping[str, float]
    baseline: float
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The prediction as plain JSON-serialisable types."""
        return {
            "probability": self.probability,
            "interval": list(self.interval),
            "label": self.label,
            "contributions": dict(self.contributions),
            "baseline": self.baseline,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
        }


class ScoredRecords(NamedTuple):
    """Everything the model says about ``n`` clean records."""

    scores: Scores
    labels: np.ndarray
    reasons: list[Notes]
    warnings: list[Notes]


class OutputColumn(NamedTuple):
    """A column of a scored table after ``patient_id``: its name, what it holds (for the
    command line's help) and how it is computed from the scored records."""

    name: str
    description: str
    values: Callable[[ScoredRecords], Any]


SCORE_COLUMNS: tuple[OutputColumn, ...] = (
    OutputColumn(
        "response_probability",
        "probability of response",
        lambda s: s.scores.probability,
    ),
    OutputColumn("probability_low", "90% interval, low end", lambda s: s.scores.low),
    OutputColumn("probability_high", "90% interval, high end", lambda s: s.scores.high),
    OutputColumn("predicted_label", "likely or unlikely responder", lambda s: s.labels),
    OutputColumn(
        "top_reasons",
        f"the largest contributions in words, joined by {NOTE_SEPARATOR.strip()!r}",
        lambda s: join_notes(s.reasons, len(s.labels)),
    ),
    OutputColumn(
        "warnings",
        f"not measured, out of range, safety screen; joined by {NOTE_SEPARATOR.strip()!r}",
        lambda s: join_notes(s.warnings, len(s.labels)),
    ),
)
"""The scores of a scored table, in order: adding an output column is one entry here."""

OUTPUT_COLUMNS = ("patient_id", *(column.name for column in SCORE_COLUMNS))
"""Columns of a scored table, before the optional ``contribution_<field>`` columns."""


def score_clean(model: Model, clean: Mapping[str, Any] | pd.DataFrame) -> ScoredRecords:
    """Score clean records (a frame from ``validate``, or field -> array of shape (n,)).

    The path of :func:`predict` for a table (and of batch scoring).
    """
    encoded = model.features.encode(clean, sparse=True)
    scores = model.score(encoded.design)
    return ScoredRecords(
        scores,
        model.labels(scores.probability),
        reason_notes(model, clean, scores.contributions),
        warning_notes(model, clean, encoded),
    )


def _with_patient_ids(problems: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """The problems table with a ``patient_id`` column after ``row`` (empty where the frame
    has no ``patient_id``)."""
    ids = [
        s.position
        for s in match_columns(tuple(frame.columns)).sources
        if s.field.name == "patient_id"
    ]
    patient_id = pd.Series("", index=problems.index, dtype=object)
    if ids and len(problems):
        by_row = dict(zip(frame.index, frame.iloc[:, ids[0]], strict=True))
        ids_text = [escape_surrogates(str(by_row.get(row, ""))) for row in problems["row"]]
        patient_id[:] = ids_text  # type: ignore[call-overload]  # pandas-stubs: no list for a slice
    return problems.assign(patient_id=patient_id)[
        ["row", "patient_id", "column", "field", "value", "reason", "message"]
    ]


def _resolve(model: ModelLike) -> Model:
    """A loaded model as it is; a path (or None: the shipped model) loaded."""
    return load_model(model) if model is None or isinstance(model, str | os.PathLike) else model


def score_record(model: Model, record: Mapping[str, Any]) -> Prediction:
    """Score one clean record (as ``validate_record`` returns it): the numbers as
    :func:`score_clean` computes them for a table of one row (the record encoded by
    ``encode_record``, which gives ``encode``'s arrays), the reasons and warnings from the
    record's Python values (:func:`~predictor._explain.record_reasons` and
    :func:`~predictor._explain.record_warnings`: the texts the table's notes give, without
    arrays of texts for one patient). The path of :func:`predict` for a dict."""
    encoded = model.features.encode_record(record)
    scores = model.score(encoded.design)
    contributions = scores.contributions[0].tolist()
    return Prediction(
        probability=float(scores.probability[0]),
        interval=(float(scores.low[0]), float(scores.high[0])),
        label=str(model.labels(scores.probability)[0]),
        contributions=MappingProxyType(dict(zip(model.fields, contributions, strict=True))),
        baseline=model.baseline,
        reasons=record_reasons(model, record, contributions),
        warnings=record_warnings(
            model, record, encoded.missing[0].tolist(), encoded.outside[0].tolist()
        ),
    )


class ScoredColumns(NamedTuple):
    """The columns of a scored table, before they are put into one (:func:`scored_columns`).

    Attributes
    ----------
    scores : dict of str to array of shape (n,)
        :data:`OUTPUT_COLUMNS` (``patient_id`` as the input gives it, else the row numbers),
        then the ``contribution_<field>`` columns with ``explain``; numpy arrays or Series,
        and pyarrow arrays for ``top_reasons`` and ``warnings``.
    carried : pandas.DataFrame, shape (n, ...)
        The input columns the table carries (:data:`CARRIED_FIELDS` given, then the unknown
        columns, untouched), renamed by :func:`carried_names`; the records' index.
    """

    scores: dict[str, Any]
    carried: pd.DataFrame


def scored_columns(
    model: Model,
    clean: pd.DataFrame,
    *,
    columns: tuple[Any, ...],
    row_numbers: np.ndarray,
    explain: bool = False,
) -> ScoredColumns:
    """Score clean records into the columns of a scored table: :func:`scored_table` puts them
    in a DataFrame, batch scoring (:mod:`predictor.io._batch`) straight into its output.

    Parameters are those of :func:`scored_table`.
    """
    given = {source.field.name for source in match_columns(tuple(columns)).sources}
    carried = [
        position
        for position, name in enumerate(clean.columns)
        if name not in FIELDS_BY_NAME or (name in CARRIED_FIELDS and name in given)
    ]
    scored = score_clean(model, clean)
    table: dict[str, Any] = {
        "patient_id": clean["patient_id"] if "patient_id" in given else row_numbers,
        **{column.name: column.values(scored) for column in SCORE_COLUMNS},
    }
    if explain:
        for j, field in enumerate(model.fields):
            table[f"contribution_{field}"] = scored.scores.contributions[:, j]
    input_columns = clean.iloc[:, carried]
    input_columns.columns = carried_names(list(table), list(input_columns.columns))
    return ScoredColumns(table, input_columns)


def scored_table(
    model: Model,
    clean: pd.DataFrame,
    *,
    columns: tuple[Any, ...],
    row_numbers: np.ndarray,
    explain: bool = False,
) -> pd.DataFrame:
    """Score clean records into a scored table: the one path of ``predict(DataFrame)`` and of
    batch scoring (:mod:`predictor.io._batch`, through :func:`scored_columns`).

    Parameters
    ----------
    model : Model
    clean : pandas.DataFrame, shape (n, ...)
        Valid records as ``data_schemas.validate`` returns them; the table keeps their index.
    columns : tuple
        The input's column names, which say whether it has a ``patient_id`` and a
        :data:`CARRIED_FIELDS` column.
    row_numbers : numpy.ndarray, shape (n,)
        A number for each record, given as its ``patient_id`` when the input has none.
    explain : bool
        Add one ``contribution_<field>`` column per model field.

    Returns
    -------
    pandas.DataFrame
        :data:`OUTPUT_COLUMNS`, the contributions with ``explain``, the carried fields, then the
        input's unknown columns, untouched.
    """
    scores, carried = scored_columns(
        model, clean, columns=columns, row_numbers=row_numbers, explain=explain
    )
    cells = {  # the texts as Python strings, as pandas takes them from any other input
        name: values.to_numpy(zero_copy_only=False) if isinstance(values, pa.Array) else values
        for name, values in scores.items()
    }
    return pd.concat([pd.DataFrame(cells, index=clean.index), carried], axis=1)


def carried_names(taken: list[Any], names: list[Any]) -> list[Any]:
    """Names for the input columns carried into a scored table, so that every column name of
    the table is unique: a name that an output column (or an earlier input column) already has
    gets ``_input`` appended (then ``_input_2``, ``_input_3``...).

    >>> carried_names(["patient_id", "response_probability"], ["Site", "response_probability"])
    ['Site', 'response_probability_input']
    """
    seen = set(taken)
    result = []
    for name in names:
        new, k = name, 1
        while new in seen:
            new = f"{name}_input" if k == 1 else f"{name}_input_{k}"
            k += 1
        seen.add(new)
        result.append(new)
    return result


class PredictedTable(NamedTuple):
    """What ``predict(frame, invalid="collect")`` returns.

    Attributes
    ----------
    scored : pandas.DataFrame
        The valid rows scored, as ``predict(frame)`` gives them.
    problems : pandas.DataFrame
        One row per problem of the other rows: ``row`` (the frame's index label),
        ``patient_id``, ``column``, ``field``, ``value``, ``reason`` and ``message``, as the
        rejects file of ``score`` has them.
    """

    scored: pd.DataFrame
    problems: pd.DataFrame


@overload
def predict(
    patients: Mapping[str, Any],
    *,
    model: ModelLike = None,
    explain: bool = False,
    invalid: str = "raise",
) -> Prediction: ...
@overload
def predict(
    patients: pd.DataFrame,
    *,
    model: ModelLike = None,
    explain: bool = False,
    invalid: str = "raise",
) -> pd.DataFrame | PredictedTable: ...
def predict(
    patients: Mapping[str, Any] | pd.DataFrame,
    *,
    model: ModelLike = None,
    explain: bool = False,
    invalid: str = "raise",
) -> Prediction | pd.DataFrame | PredictedTable:
    """Predict response to ketamine, with a 90% interval and an exact explanation.

    Parameters
    ----------
    patients : dict or pandas.DataFrame
        One patient as field -> value, or a table with one patient per row. Field names,
        aliases, units and missing values as the input schema accepts them (``python -m
        predictor schema``); every field is optional.
    model : Model or path, optional
        A loaded model, or a model directory / ``model.json``; default: the shipped model.
    explain : bool
        For a table: add one ``contribution_<field>`` column per model field.
    invalid : {"raise", "collect"}
        For a table: ``"raise"`` a ``SchemaError`` if any row is invalid, or ``"collect"``:
        score the valid rows and return them with the problems of the others, as
        :class:`PredictedTable` (as ``score`` does with a file; its problems name rows by
        index label, so the table's labels must be unique).

    Returns
    -------
    Prediction or pandas.DataFrame
        A :class:`Prediction` for a dict; for a table, one row per patient with the input's
        index and the columns ``patient_id`` (the row's 1-based position when the table has no
        ``patient_id`` column), ``response_probability``, ``probability_low``,
        ``probability_high``, ``predicted_label``, ``top_reasons``, ``warnings``, then the
        contributions with ``explain``, then ``responded`` if the table has it, then the
        table's unknown columns, untouched.

    Raises
    ------
    SchemaError
        If a value or column breaks the schema (every problem is listed; for a table each
        names its row by index label and ``patient_id``).
    ModelFileError
        If the model file is missing or fails its checks.
    InvalidParameterError
        If a parameter has a value it does not accept (before any work).

    Examples
    --------
    >>> p = predict({"crp_mg_l": 0.9, "route": "iv_ketamine", "substance_use_disorder": "none"})
    >>> 0 < p.interval[0] < p.probability < p.interval[1] < 1
    True
    >>> import math
    >>> math.isclose(p.baseline + sum(p.contributions.values()),
    ...              math.log(p.probability / (1 - p.probability)))
    True
    >>> p.reasons[0]
    'Low inflammation (CRP 0.9 mg/L) raises the chance of response'
    """
    check("predict", _PREDICT_PARAMETERS, locals())
    resolved = _resolve(model)
    if isinstance(patients, pd.DataFrame):
        labels = patients.index
        if not labels.is_unique and invalid == "collect":
            shown = "a DataFrame whose index has repeated labels"
            raise InvalidParameterError(
                "predict",
                [
                    BadParameter(
                        "patients",
                        shown,
                        "a table with unique index labels, for "
                        "invalid='collect' (problems name rows by their labels)",
                    )
                ],
            )
        for text in _resembling(tuple(patients.columns)):
            warnings.warn(text, UserWarning, stacklevel=2)
        # Rows by position where labels repeat (one label, two patients): labels again after.
        frame = patients if labels.is_unique else patients.reset_index(drop=True)
        clean, problems = validate(frame)
        problems = _with_patient_ids(problems, frame)
        if frame is not patients:
            problems["row"] = labels[problems["row"].to_numpy(dtype=np.intp)].tolist()
            clean.index = labels[clean.index.to_numpy()]
        if not problems.empty and invalid == "raise":
            raise SchemaError(
                [
                    Problem(  # the problems table's text columns (pandas-stubs: any scalar)
                        row.row,
                        cast(str, row.column),
                        cast(str, row.field),
                        cast(str, row.value),
                        Reason(cast(str, row.reason)),
                        f"row {row.row!r} (patient_id {row.patient_id!r}): {row.message}",
                    )
                    for row in problems.itertuples(index=False)
                ]
            )
        # (with problems: collect, whose labels are unique)
        positions = np.arange(len(clean)) if problems.empty else labels.get_indexer(clean.index)
        scored = scored_table(
            resolved,
            clean,
            columns=tuple(patients.columns),
            row_numbers=positions + 1,
            explain=explain,
        )
        return PredictedTable(scored, problems) if invalid == "collect" else scored
    prediction = score_record(resolved, validate_record(patients))  # a Mapping: checked above
    unread = _resembling(tuple(patients))
    return replace(prediction, warnings=(*prediction.warnings, *unread)) if unread else prediction


def _resembling(columns: tuple[Any, ...]) -> list[str]:
    """A warning for each column (or key) that matches no field but resembles one (a
    look-alike letter, a near miss): its values were not read, as ``score`` warns of it."""
    return [
        f"not used: {problem.message}" for problem in match_columns(columns).resemblance_problems()
    ]
