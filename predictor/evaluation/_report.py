"""The evaluation report's numbers: how well a model does on data it did not see, in the spirit
of TRIPOD+AI (2024): discrimination, calibration and clinical usefulness, with uncertainty, by
subgroup, against simpler models, and the shape of what the model learned.

:func:`build_report` computes every number into a :class:`Report` (frozen dataclasses, one per
part); :meth:`Report.to_json` is the content of ``metrics.json``. Nothing here writes a file,
renders text or draws: :mod:`~predictor.evaluation._markdown` renders ``report.md``,
:mod:`~predictor.evaluation._figures` draws the figures, :mod:`~predictor.evaluation._card`
builds the model card's sections and :mod:`~predictor.evaluation._files` writes the files,
all from a :class:`Report`. No number in the report is typed by hand.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from data_schemas import FIELDS, FIELDS_BY_NAME, Field, Kind, Role
from predictor.evaluation._bootstrap import BootstrapValidation, Optimism
from predictor.evaluation._metrics import (
    Metrics,
    auc_interval,
    calibration_bins,
    metrics,
    net_benefit,
    smoothed_calibration,
    threshold_table,
)
from predictor.model import INTERVAL_LEVEL, Model, Scores, from_model_scale, model_scale

REPORT_NAME = "report.md"
METRICS_NAME = "metrics.json"
FIGURES_DIR = "figures"
FIGURE_NAMES = {
    "roc": "roc.png",
    "calibration": "calibration.png",
    "decision_curve": "decision_curve.png",
    "subgroups": "subgroups.png",
    "terms": "terms.png",
    "contributions": "contributions.png",
}
"""Figure key -> file name in ``figures/`` of the figures every report has (here, not with the
figures, so that the report's files are known without matplotlib)."""
BOOTSTRAP_FIGURE_NAMES = {"instability": "instability.png"}
"""The same for the figures only a report with a bootstrap validation has
(:attr:`Report.bootstrap`)."""
FORMAT = "ketamine-predictor evaluation report"
FORMAT_VERSION = 2

CONFIDENCE_LEVEL = 0.95
CALIBRATION_BINS = 10
"""Bins of the calibration plot (deciles of predicted probability) and of the ECE (equal
width)."""
DECISION_THRESHOLDS: tuple[float, ...] = tuple(k / 100 for k in range(10, 91))
"""Threshold probabilities of the decision curve: 0.10 to 0.90 in steps of 0.01."""
TABLE_THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
"""Thresholds of the threshold table (the model's own threshold is added)."""
MIN_PER_OUTCOME = 10
"""A subgroup needs this many responders and non-responders for its metrics."""
GRID_POINTS = 101
"""Points of each curve stored in ``metrics.json`` (ROC, smoothed calibration, term shapes)."""
HISTOGRAM_BINS = 50
"""Bins of the predicted-probability histogram under the calibration plot."""
TRAINING_BINS = 24
"""Bins of each number field's training histogram (stored in the model's manifest)."""
CURVE_DECIMALS = 5
LEVEL = f"{CONFIDENCE_LEVEL:.0%}"
WIDE_AUC_INTERVAL = 0.1
"""An AUC whose confidence interval is wider than this is reported as imprecise, near the top
of ``report.md``. It is the precision the sample-size literature for validating a prediction
model aims at: a standard error of the C-statistic below 0.025 (Pavlou et al., Statistical
Methods in Medical Research 2021), which is a 95% interval about 0.1 wide, the width Riley et
al. target (Minimum sample size for external validation of a clinical prediction model with a
binary outcome, Statistics in Medicine 2021; BMJ 2024;384:e074821). Stricter than the 0.15
first proposed: at 0.15 a cohort of 300 with an AUC near 0.7 (an interval about 0.11 wide)
would pass without a word."""
INSTABILITY_POINTS = 4000
"""Most (patient, bootstrap model) pairs stored for the instability figure, drawn at random
(seeded) when there are more; the percentile curves use every pair."""
INSTABILITY_GROUPS = 25
"""The instability figure's percentile curves: patients sorted by the final model's probability
in at most this many equal groups (at least :data:`INSTABILITY_GROUP_SIZE` patients each), each
group's mean of the patients' 2.5th and 97.5th percentiles at its mean probability (Riley and
Collins smooth the patients' percentiles with a lowess; group means are the simpler smoother)."""
INSTABILITY_GROUP_SIZE = 15

FLATTEN = {"flatten": True}
"""Field metadata: the field's JSON keys are merged into its parent's (absent when None)."""
OMIT_NONE = {"omit_none": True}
"""Field metadata: the key is left out of the JSON when the value is None."""


# ---------------------------------------------------------------------------------------------
# The report's parts


@dataclass(frozen=True)
class DataSummary:
    """The data evaluated: what it is, patients, rows refused by the schema, responders."""

    source: str
    n: int
    n_refused: int | None
    responders: int
    has_true_probability: bool


@dataclass(frozen=True)
class ModelSummary:
    """The model evaluated, from its manifest: training data, artifact hash, threshold."""

    trained_on: str | None
    n_training: int | None
    artifact_sha256: str | None
    threshold: float
    interval_level: float


@dataclass(frozen=True)
class Settings:
    """How the report's uncertainty and subgroups were computed."""

    confidence_level: float
    calibration_bins: int
    min_per_outcome: int


@dataclass(frozen=True, kw_only=True)
class CoreMetrics(Metrics):
    """:class:`~predictor.evaluation._metrics.Metrics` with the mean prediction and the AUC's
    DeLong interval (:data:`CONFIDENCE_LEVEL`)."""

    mean_predicted: float
    auc_low: float
    auc_high: float


@dataclass(frozen=True)
class RocCurve:
    """The ROC curve on a grid of false-positive rates (:data:`GRID_POINTS`)."""

    false_positive_rate: tuple[float, ...]
    true_positive_rate: tuple[float, ...]


@dataclass(frozen=True)
class Roc:
    """ROC curves of the model and, when the data carries it, of the true probability."""

    model: RocCurve
    oracle: RocCurve | None


@dataclass(frozen=True)
class CalibrationBin:
    """One group of patients by predicted probability, with a Wilson interval for its
    observed response rate."""

    low: float
    high: float
    n: int
    mean_predicted: float
    observed: float
    observed_low: float
    observed_high: float


@dataclass(frozen=True)
class SmoothedCalibration:
    """Observed against predicted response rate, smoothed (on a grid of predictions)."""

    predicted: tuple[float, ...]
    observed: tuple[float, ...]


@dataclass(frozen=True)
class PredictionHistogram:
    """Counts of responders and non-responders in bins of predicted probability."""

    edges: tuple[float, ...]
    responders: tuple[int, ...]
    non_responders: tuple[int, ...]


@dataclass(frozen=True)
class Calibration:
    """Calibration bins, the smoothed curve and the distribution of predictions."""

    bins: tuple[CalibrationBin, ...]
    smoothed: SmoothedCalibration
    histogram: PredictionHistogram


@dataclass(frozen=True)
class DecisionCurve:
    """Net benefit of the model and of treating everyone, by threshold probability."""

    threshold: tuple[float, ...]
    model: tuple[float, ...]
    treat_all: tuple[float, ...]


@dataclass(frozen=True)
class ThresholdRow:
    """What flagging at one threshold does (NaN where a rate is undefined)."""

    threshold: float
    flagged: float
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    net_benefit: float
    treat_all: float


@dataclass(frozen=True)
class SubgroupRow:
    """One subgroup: its size and, with at least :data:`MIN_PER_OUTCOME` of each outcome, its
    metrics."""

    subgrouping: str
    group: str
    n: int
    responders: int
    metrics: CoreMetrics | None = field(default=None, metadata=FLATTEN)


@dataclass(frozen=True)
class FoldSummary:
    """One metric over the folds of a cross-validation."""

    mean: float
    sd: float
    folds: tuple[float, ...]


@dataclass(frozen=True)
class ComparisonSummary:
    """The cross-validated comparison: model name -> metric name -> :class:`FoldSummary`;
    ``model`` is the name of the model evaluated (its row), refitted in each fold with its
    ``settings`` (:meth:`~predictor.model.Model.summary`)."""

    source: str
    folds: int
    model: str
    settings: dict[str, float]
    models: dict[str, dict[str, FoldSummary]]


@dataclass(frozen=True)
class HeldOutComparison:
    """The model and the comparison models on the data of the report, which none of them saw:
    the comparison models fitted once on ``source`` (the model's training patients, on its
    fields); model name -> :class:`CoreMetrics`. ``model`` names the model evaluated (its
    row, the report's own :attr:`Report.metrics`)."""

    source: str
    model: str
    models: dict[str, CoreMetrics]


@dataclass(frozen=True)
class TrainingDistribution:
    """One field's distribution in the training data (as the manifest stores it): a
    histogram (``edges``, ``counts``) for a number, ``levels`` and ``counts`` for a
    category; only the count of missing values when the field had no shape."""

    n_missing: int
    levels: tuple[str, ...] | None = field(default=None, metadata=OMIT_NONE)
    edges: tuple[float, ...] | None = field(default=None, metadata=OMIT_NONE)
    counts: tuple[int, ...] | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class TermShape:
    """One field's learned term: its contribution (log-odds, centred on the training mean)
    against the field's ``values`` (a number, over its training range) or ``levels`` (a
    category), and the contribution of "not measured". A term without a shape (no training
    values) has neither. The last three are filled by :func:`build_report` from the data."""

    field: str
    unit: str | None
    log_scale: bool
    not_measured: float
    learned_missing: bool
    # dataclasses.field: the name ``field`` is the attribute above
    values: tuple[float, ...] | None = dataclasses.field(default=None, metadata=OMIT_NONE)
    levels: tuple[str, ...] | None = dataclasses.field(default=None, metadata=OMIT_NONE)
    contribution: tuple[float, ...] | None = dataclasses.field(default=None, metadata=OMIT_NONE)
    mean_abs_contribution: float | None = None
    share_not_measured: float | None = None
    training: TrainingDistribution | None = None


@dataclass(frozen=True)
class PredictionInstability:
    """How much each patient's prediction depends on the sample the model was fitted on
    (Riley and Collins 2023): the bootstrap models' probabilities for the original patients,
    against the final model's.

    Attributes
    ----------
    threshold : float
        The model's threshold, for the labels.
    mape : float
        Mean absolute prediction error: mean over patients and models of ``|p_b - p_final|``.
    max_patient_mape : float
        The largest of one patient's mean absolute prediction error.
    classification_instability : float
        Mean over patients of the classification instability index (the share of bootstrap
        models whose label differs from the final model's).
    max_classification_instability : float
        The largest of one patient's classification instability index.
    final, low, high : tuple of float
        The percentile curves (:data:`INSTABILITY_GROUPS`): each group's mean final
        probability and mean 2.5th and 97.5th percentile of the bootstrap probabilities.
    point_final, point_bootstrap : tuple of float
        The (patient, model) pairs drawn (:data:`INSTABILITY_POINTS`): the final model's
        probability and the bootstrap model's.
    patient_final, patient_instability : tuple of float
        The patients drawn (at most :data:`INSTABILITY_POINTS`): the final model's
        probability and the patient's classification instability index, which Riley and
        Collins plot against each other (their classification instability plot).
    """

    threshold: float
    mape: float
    max_patient_mape: float
    classification_instability: float
    max_classification_instability: float
    final: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    point_final: tuple[float, ...]
    point_bootstrap: tuple[float, ...]
    patient_final: tuple[float, ...]
    patient_instability: tuple[float, ...]


@dataclass(frozen=True)
class BootstrapSummary:
    """Harrell's bootstrap optimism correction on the patients the model was fitted on
    (:func:`~predictor.evaluation._bootstrap.bootstrap_validation`).

    Attributes
    ----------
    n, responders : int
        The patients resampled (rows, where a patient may have several: see ``patients``).
    repeats, failed, redrawn, seed : int
        Resamples drawn, refits that failed (skipped), resamples drawn again for holding one
        outcome only, and the seed.
    metrics : dict of str to Optimism
        Metric -> apparent, optimism, corrected.
    instability : PredictionInstability
    """

    n: int
    responders: int
    repeats: int
    failed: int
    redrawn: int
    seed: int
    metrics: dict[str, Optimism]
    instability: PredictionInstability
    patients: int | None = field(default=None, metadata=OMIT_NONE)
    """Patients drawn in each resample, each with all of their rows, when rows that share a
    ``patient_id`` were drawn together; None (left out of the JSON) when each row was drawn
    alone."""


def metric_text(value: float | None, spec: str, missing: str = "n/a") -> str:
    """A metric formatted with ``spec`` for a reader, or ``missing`` where it has no value
    (None, as a manifest or ``metrics.json`` keeps it, or NaN: a calibration slope of
    outcomes the model separates).

    >>> metric_text(0.71234, ".3f"), metric_text(float("nan"), ".2f"), metric_text(None, "+.3f")
    ('0.712', 'n/a', 'n/a')
    """
    return missing if value is None or math.isnan(value) else format(value, spec)


def mean_abs_contribution(term: TermShape) -> float:
    """A report term's mean absolute contribution, which :func:`build_report` fills."""
    assert term.mean_abs_contribution is not None  # filled in every Report's terms
    return term.mean_abs_contribution


@dataclass(frozen=True)
class Report:
    """Every number of the evaluation report (:func:`build_report`)."""

    format: str
    format_version: int
    data: DataSummary
    model: ModelSummary
    settings: Settings
    metrics: CoreMetrics
    roc: Roc
    calibration: Calibration
    decision_curve: DecisionCurve
    thresholds: tuple[ThresholdRow, ...]
    subgroups: tuple[SubgroupRow, ...]
    comparison: ComparisonSummary | None
    terms: tuple[TermShape, ...]
    software: dict[str, str | None]
    """Package -> version (None: not installed), and the Python version."""
    bootstrap: BootstrapSummary | None = field(default=None, metadata=OMIT_NONE)
    """Bootstrap optimism correction and prediction instability on the training patients;
    absent from ``metrics.json`` when not computed."""
    held_out_comparison: HeldOutComparison | None = field(default=None, metadata=OMIT_NONE)
    """The comparison models, fitted on the training patients, on the data of the report
    (train's fresh cohort); absent from ``metrics.json`` when not computed."""

    def to_json(self) -> dict[str, Any]:
        """The content of ``metrics.json``: strict JSON (NaN -> None), in field order."""
        return _to_json(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        """The report a ``metrics.json`` holds (None -> NaN where a number is expected)."""
        return _from_json(cls, data)

    def own_threshold(self) -> ThresholdRow:
        """The threshold table's row at the model's own threshold."""
        return next(r for r in self.thresholds if r.threshold == self.model.threshold)

    def auc_is_imprecise(self) -> bool:
        """Whether the AUC's interval is wider than :data:`WIDE_AUC_INTERVAL`."""
        return bool(self.metrics.auc_high - self.metrics.auc_low > WIDE_AUC_INTERVAL)


def _to_json(value: Any) -> Any:
    """A report part as strict JSON: dataclasses as objects in field order (``to_dict`` where
    the class has one), tuples as lists, NaN as None, numpy scalars as Python numbers."""
    if hasattr(value, "to_dict"):
        return _to_json(value.to_dict())
    if is_dataclass(value):
        out: dict[str, Any] = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if item is None and (f.metadata.get("omit_none") or f.metadata.get("flatten")):
                continue
            if f.metadata.get("flatten"):
                out.update(_to_json(item))
            else:
                out[f.name] = _to_json(item)
        return out
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _from_json(hint: Any, value: Any) -> Any:
    """The inverse of :func:`_to_json`, driven by the type hints of the report's parts."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        return None if value is None else _from_json(inner, value)
    if origin is tuple:
        return tuple(_from_json(args[0], v) for v in value)
    if origin is dict:
        return {k: _from_json(args[1], v) for k, v in value.items()}
    if isinstance(hint, type) and is_dataclass(hint):  # a class, never an instance
        hints = typing.get_type_hints(hint)
        kwargs = {}
        for f in fields(hint):
            if f.metadata.get("flatten"):
                part = next(a for a in typing.get_args(hints[f.name]) if is_dataclass(a))
                required = [
                    g.name
                    for g in fields(part)
                    if g.default is MISSING and g.default_factory is MISSING
                ]
                if all(name in value for name in required):
                    kwargs[f.name] = _from_json(part, value)
            elif f.name in value:
                kwargs[f.name] = _from_json(hints[f.name], value[f.name])
        return hint(**kwargs)
    if hint is float:
        return float("nan") if value is None else float(value)
    return value


# ---------------------------------------------------------------------------------------------
# The model's terms (the only functions here that read the model's terms and coefficients)


def training_distribution(model: Model, clean: pd.DataFrame) -> dict[str, Any]:
    """Each model field's distribution in the training data, for the report's term figure.

    Train stores it in the model's manifest, so that a report on any data can show what the
    model learned from.

    Parameters
    ----------
    model : Model
    clean : pandas.DataFrame
        The rows the model was fitted on.

    Returns
    -------
    dict
        Field -> ``{"n_missing", "edges", "counts"}`` for a number (a histogram over the
        training range, on the model's scale: CRP's bins are equal on the log scale) or
        ``{"n_missing", "levels", "counts"}`` for a category (JSON, as the manifest stores
        it; :class:`TrainingDistribution` reads it back).
    """
    out: dict[str, Any] = {}
    for term in model.features.terms:
        column = clean[term.field]
        if term.levels:
            codes = term.codes(column)
            counts = np.bincount(codes[codes >= 0], minlength=len(term.levels))
            out[term.field] = {
                "n_missing": int((codes < 0).sum()),
                "levels": list(term.levels),
                "counts": counts.tolist(),
            }
            continue
        values = np.asarray(column, dtype=np.float64)
        measured = values[~np.isnan(values)]
        entry: dict[str, Any] = {"n_missing": int(values.size - measured.size)}
        if term.is_spline and measured.size:
            low, high = model_scale(term.field, np.asarray(term.value_range))
            edges = np.linspace(low, high, TRAINING_BINS + 1)
            counts, _ = np.histogram(model_scale(term.field, measured), bins=edges)
            entry["edges"] = list(_rounded(from_model_scale(term.field, edges)))
            entry["counts"] = counts.tolist()
        out[term.field] = entry
    return out


def _rounded(values: Any, decimals: int = CURVE_DECIMALS) -> tuple[float, ...]:
    return tuple(np.round(np.asarray(values, dtype=np.float64), decimals).tolist())


def term_shapes(model: Model) -> list[TermShape]:
    """The learned shape of each field's term: its contribution (log-odds, centred on the
    training mean) against the field's value, and the contribution of "not measured".

    Returns
    -------
    list of TermShape
        One per term, in the model's order, without the data-dependent fields.
    """
    shapes = []
    for j, term in enumerate(model.features.terms):
        values = levels = contribution = None
        if term.is_spline and np.isfinite(term.value_range).all():
            low, high = model_scale(term.field, np.asarray(term.value_range))
            grid = from_model_scale(term.field, np.linspace(low, high, GRID_POINTS))
            grid[[0, -1]] = term.value_range  # exactly the training range, not exp(log(.))
            values = _rounded(grid)
            contribution = _rounded(model.term_contribution(j, term.block(np.array(values))))
        elif term.levels:
            levels = tuple(term.levels)
            design = term.block(np.array(term.levels, dtype=object))
            contribution = _rounded(model.term_contribution(j, design))
        shapes.append(
            TermShape(
                field=term.field,
                unit=FIELDS_BY_NAME[term.field].unit,
                log_scale=FIELDS_BY_NAME[term.field].log_floor is not None,
                not_measured=float(model.term_contribution(j, term.missing_row[None, :])[0]),
                learned_missing=term.learned_missing,
                values=values,
                levels=levels,
                contribution=contribution,
            )
        )
    return shapes


# ---------------------------------------------------------------------------------------------
# Subgroups


SUBGROUPINGS: tuple[Field, ...] = tuple(
    f for f in FIELDS if f.subgroups is not None and f.role is Role.PREDICTOR
)
"""The fields that split the patients into subgroups (``Field.subgroups``), in schema order."""


def _groups(clean: pd.DataFrame, field: Field) -> pd.Series:
    """Each patient's subgroup (text), "not recorded" where the field is missing: a number's
    band, a category's level, a boolean's "yes" or "no"."""
    values = clean[field.name]
    assert field.subgroups is not None
    edges, labels = field.subgroups.edges, field.subgroups.band_labels
    if edges:
        bands = pd.cut(values, [*edges, np.inf], right=False, labels=list(labels[1:]))
        groups = bands.astype(object).where(~(values < edges[0]), labels[0])
    elif field.kind is Kind.BOOLEAN:
        groups = values.map({1.0: "yes", 0.0: "no"}).astype(object)
    else:
        groups = values.astype(object)
    return groups.where(values.notna(), "not recorded")


def _subgroup_order(field: Field, present: set[str]) -> list[str]:
    assert field.subgroups is not None
    order = field.levels or field.subgroups.band_labels or ("yes", "no")
    return [g for g in [*order, "not recorded"] if g in present]


def subgroup_metrics(clean: pd.DataFrame, probability: np.ndarray) -> list[SubgroupRow]:
    """:func:`~predictor.evaluation._metrics.metrics` (with an AUC interval) in each subgroup
    of the fields that define subgroups (``Field.subgroups``: age band, sex, route and
    substance use today).

    Parameters
    ----------
    clean : pandas.DataFrame
        Records with ``responded``.
    probability : numpy.ndarray, shape (n,)
        The model's probabilities for those records.

    Returns
    -------
    list of SubgroupRow
        One per subgroup; its metrics only when the subgroup has at least
        :data:`MIN_PER_OUTCOME` of each outcome.
    """
    y = clean["responded"].to_numpy(dtype=np.float64)
    rows = []
    for by in SUBGROUPINGS:
        assert by.subgroups is not None
        name = by.subgroups.name
        groups = _groups(clean, by).to_numpy()
        for group in _subgroup_order(by, set(groups.tolist())):
            member = groups == group
            n, responders = int(member.sum()), int(y[member].sum())
            enough = min(responders, n - responders) >= MIN_PER_OUTCOME
            rows.append(
                SubgroupRow(
                    subgrouping=name,
                    group=group,
                    n=n,
                    responders=responders,
                    metrics=(
                        _metrics_with_interval(y[member], probability[member]) if enough else None
                    ),
                )
            )
    return rows


# ---------------------------------------------------------------------------------------------
# The report


def _metrics_with_interval(
    y: np.ndarray,
    p: np.ndarray,
    *,
    true_probability: np.ndarray | None = None,
    interval: tuple[np.ndarray, np.ndarray] | None = None,
) -> CoreMetrics:
    """:func:`~predictor.evaluation._metrics.metrics`, the mean prediction and the AUC's
    bootstrap interval."""
    measured = metrics(y, p, true_probability=true_probability, interval=interval)
    low, high = auc_interval(y, p, confidence_level=CONFIDENCE_LEVEL)
    return CoreMetrics(
        **{f.name: getattr(measured, f.name) for f in fields(Metrics)},
        mean_predicted=float(np.mean(p)),
        auc_low=low,
        auc_high=high,
    )


def _roc(y: np.ndarray, score: np.ndarray) -> RocCurve:
    """The ROC curve on a grid of false-positive rates: the highest true-positive rate reached
    at or below each."""
    fpr, tpr, _ = roc_curve(y, score)
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    at = np.searchsorted(fpr, grid, side="right") - 1
    return RocCurve(_rounded(grid), _rounded(tpr[at]))


def _calibration(y: np.ndarray, p: np.ndarray) -> Calibration:
    low, high = np.percentile(p, [1, 99])
    grid = np.linspace(low, high, GRID_POINTS)
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    bins = calibration_bins(y, p, n_bins=CALIBRATION_BINS, strategy="quantile")
    return Calibration(
        bins=tuple(
            CalibrationBin(**row)  # type: ignore[arg-type]  # pandas-stubs: keys Hashable, here str
            for row in bins.to_dict(orient="records")
        ),
        smoothed=SmoothedCalibration(
            predicted=_rounded(grid), observed=_rounded(smoothed_calibration(y, p, grid))
        ),
        histogram=PredictionHistogram(
            edges=_rounded(edges),
            responders=tuple(np.histogram(p[y == 1], edges)[0].tolist()),
            non_responders=tuple(np.histogram(p[y == 0], edges)[0].tolist()),
        ),
    )


def _decision_curve(y: np.ndarray, p: np.ndarray) -> DecisionCurve:
    thresholds = np.asarray(DECISION_THRESHOLDS)
    return DecisionCurve(
        threshold=DECISION_THRESHOLDS,
        model=_rounded(net_benefit(y, p, thresholds), 6),
        treat_all=_rounded(net_benefit(y, np.ones_like(p), thresholds), 6),
    )


def _summarise_folds(folds: Mapping[str, list[Metrics]]) -> dict[str, dict[str, FoldSummary]]:
    keys = ("auc", "brier", "log_loss", "calibration_slope", "calibration_intercept", "auc_gap")
    summary = {}
    for name, per_fold in folds.items():
        # a fold without a value (a calibration slope of outcomes the model separated there)
        # is left out of the mean and SD; the folds keep it (NaN, None in JSON)
        summary[name] = {
            key: FoldSummary(
                mean=float(np.mean(finite)) if len(finite) else float("nan"),
                sd=float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan"),
                folds=tuple(values),
            )
            for key in keys
            if all(getattr(m, key) is not None for m in per_fold)
            for values in [[getattr(m, key) for m in per_fold]]
            for finite in [[v for v in values if math.isfinite(v)]]
        }
    return summary


def _instability(bootstrap: BootstrapValidation) -> PredictionInstability:
    """The instability numbers, percentile curves and the points drawn, from every bootstrap
    model's probabilities."""
    final, probability = bootstrap.final, bootstrap.probability
    n = len(final)
    groups = np.array_split(
        np.argsort(final, kind="stable"),
        min(INSTABILITY_GROUPS, max(n // INSTABILITY_GROUP_SIZE, 1)),
    )
    rng = np.random.default_rng(bootstrap.seed)

    def drawn(total: int) -> np.ndarray:
        if total <= INSTABILITY_POINTS:
            return np.arange(total)
        return np.sort(rng.choice(total, size=INSTABILITY_POINTS, replace=False))

    chosen = drawn(probability.size)
    patient = chosen % n  # probability is (models, n), flattened row by row
    patients = drawn(n)
    return PredictionInstability(
        threshold=bootstrap.threshold,
        mape=bootstrap.mape,
        max_patient_mape=float(bootstrap.patient_mape.max()),
        classification_instability=bootstrap.classification_instability,
        max_classification_instability=float(bootstrap.patient_instability.max()),
        final=_rounded([final[g].mean() for g in groups]),
        low=_rounded([bootstrap.low[g].mean() for g in groups]),
        high=_rounded([bootstrap.high[g].mean() for g in groups]),
        point_final=_rounded(final[patient], 4),
        point_bootstrap=_rounded(probability.ravel()[chosen], 4),
        patient_final=_rounded(final[patients], 4),
        patient_instability=_rounded(bootstrap.patient_instability[patients], 4),
    )


def _bootstrap_summary(bootstrap: BootstrapValidation) -> BootstrapSummary:
    return BootstrapSummary(
        n=len(bootstrap.final),
        responders=bootstrap.responders,
        repeats=bootstrap.repeats,
        failed=bootstrap.failed,
        redrawn=bootstrap.redrawn,
        seed=bootstrap.seed,
        metrics=dict(bootstrap.metrics),
        instability=_instability(bootstrap),
        patients=bootstrap.patients,
    )


def _software() -> dict[str, str | None]:
    names = ("ketamine-predictor", "numpy", "pandas", "scipy", "scikit-learn", "matplotlib")
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def build_report(
    model: Model,
    clean: pd.DataFrame,
    *,
    manifest: Mapping[str, Any],
    source: str,
    n_refused: int | None = None,
    comparison: Mapping[str, list[Metrics]] | None = None,
    comparison_source: str = "",
    scores: Scores | None = None,
    bootstrap: BootstrapValidation | None = None,
    held_out: Mapping[str, np.ndarray] | None = None,
    held_out_source: str = "",
) -> Report:
    """Every number of the evaluation report.

    Parameters
    ----------
    model : Model
    clean : pandas.DataFrame
        Records the model did not see, with ``responded`` (0/1) and, when simulated,
        ``true_probability``; at least :data:`MIN_PER_OUTCOME` of each outcome.
    manifest : mapping
        The model's manifest: what it was trained on (and the training distribution, when the
        manifest has it).
    source : str
        What the data is, in words, for the report.
    n_refused : int, optional
        Rows of the input left out because they broke the schema.
    comparison : mapping, optional
        Per-fold metrics from :func:`predictor.evaluation._comparison.cross_validate`.
    comparison_source : str
        What the comparison was cross-validated on, in words.
    scores : Scores, optional
        The scores of ``clean`` to report, when they are not the model's own: the out-of-fold
        scores of cross-validation (:class:`~predictor.evaluation.CrossValidation`), each row
        predicted by a fit that did not see it. Default: ``model.score`` of ``clean``.
    bootstrap : BootstrapValidation, optional
        Harrell's bootstrap optimism correction and the prediction instability, from
        :func:`~predictor.evaluation._bootstrap.bootstrap_validation` on the patients the
        model was fitted on (which need not be ``clean``): adds :attr:`Report.bootstrap`, its
        section of ``report.md`` and the instability figure.
    held_out : mapping, optional
        Comparison model name -> its probabilities for ``clean``, from a fit on other patients
        (train's comparison models, fitted on the training patients, on its fresh cohort):
        adds :attr:`Report.held_out_comparison`.
    held_out_source : str
        What the comparison models were fitted on, in words.

    Returns
    -------
    Report
    """
    threshold, summary = model.threshold, model.summary()  # read once
    y = clean["responded"].to_numpy(dtype=np.float64)
    encoded = model.features.encode(clean)
    missing = encoded.missing
    if scores is None:  # the only place the report scores with the model
        scores = model.score(encoded.design)
    elif len(scores.probability) != len(clean):
        raise ValueError(f"scores has {len(scores.probability)} rows for {len(clean)} records")
    p = scores.probability
    truth_column = clean["true_probability"]
    truth = truth_column.to_numpy() if truth_column.notna().all() else None
    training = manifest.get("training_distribution") or {}
    terms = tuple(
        replace(
            shape,
            mean_abs_contribution=float(np.mean(np.abs(scores.contributions[:, j]))),
            share_not_measured=float(missing[:, j].mean()),
            training=(
                _from_json(TrainingDistribution, training[shape.field])
                if training.get(shape.field) is not None
                else None
            ),
        )
        for j, shape in enumerate(term_shapes(model))
    )
    trained_on = dict(manifest.get("training_data", {}))
    update = manifest.get("update")
    if update and trained_on.get("source"):  # what the model's terms were learned from
        base_data = update.get("base_training_data") or "its base model's cohort"
        trained_on["source"] = (
            f"{trained_on['source']} (a refit from scratch, which `update` chose)"
            if update["chosen"] == "refit from scratch"
            else f"{base_data}; `update` on {trained_on['source']} kept it as it is"
            if update["chosen"] == "base model as it is"
            else f"{base_data}, then updated on {trained_on['source']} ({update['chosen']})"
        )
    table_thresholds = tuple(sorted({*TABLE_THRESHOLDS, threshold}))
    measured = _metrics_with_interval(
        y, p, true_probability=truth, interval=(scores.low, scores.high)
    )
    return Report(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        data=DataSummary(
            source=source,
            n=len(y),
            n_refused=n_refused,
            responders=int(y.sum()),
            has_true_probability=truth is not None,
        ),
        model=ModelSummary(
            trained_on=trained_on.get("source"),
            n_training=trained_on.get("n"),
            artifact_sha256=manifest.get("artifact_sha256"),
            threshold=threshold,
            interval_level=INTERVAL_LEVEL,
        ),
        settings=Settings(
            confidence_level=CONFIDENCE_LEVEL,
            calibration_bins=CALIBRATION_BINS,
            min_per_outcome=MIN_PER_OUTCOME,
        ),
        metrics=measured,
        roc=Roc(model=_roc(y, p), oracle=_roc(y, truth) if truth is not None else None),
        calibration=_calibration(y, p),
        decision_curve=_decision_curve(y, p),
        thresholds=tuple(
            ThresholdRow(**row)  # type: ignore[arg-type]  # pandas-stubs: keys Hashable, here str
            for row in threshold_table(y, p, table_thresholds).to_dict(orient="records")
        ),
        subgroups=tuple(subgroup_metrics(clean, p)),
        comparison=(
            ComparisonSummary(
                source=comparison_source,
                folds=len(next(iter(comparison.values()))),
                model=summary.name,
                settings=dict(summary.settings),
                models=_summarise_folds(comparison),
            )
            if comparison
            else None
        ),
        terms=terms,
        software=_software(),
        bootstrap=_bootstrap_summary(bootstrap) if bootstrap is not None else None,
        held_out_comparison=(
            HeldOutComparison(
                source=held_out_source,
                model=summary.name,
                models={
                    summary.name: measured,
                    **{
                        name: _metrics_with_interval(
                            y, np.asarray(q, dtype=np.float64), true_probability=truth
                        )
                        for name, q in held_out.items()
                    },
                },
            )
            if held_out
            else None
        ),
    )
