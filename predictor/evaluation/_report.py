"""The evaluation report: how well a model does on data it did not see, in the spirit of
TRIPOD+AI (2024): discrimination, calibration and clinical usefulness, with uncertainty, by
subgroup, against simpler models, and the shape of what the model learned.

:func:`build_report` computes every number (a JSON-ready dict, written as ``metrics.json``);
:func:`write_report` writes ``metrics.json``, ``report.md`` and the figures (``figures/*.png``,
drawn by :mod:`predictor.evaluation._figures` when matplotlib is installed; without it the
report has its tables and says why the figures are missing). ``python -m predictor evaluate``
runs both on a CSV file; ``python train.py`` runs them on the data it held out and puts the key
numbers in the model card (:func:`card_sections`). No number in the report is typed by hand.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from data_schemas import FIELDS_BY_NAME
from predictor._atomic import atomic_text_output
from predictor.evaluation._metrics import (
    auc_interval,
    calibration_bins,
    metrics,
    net_benefit,
    smoothed_calibration,
    threshold_table,
)
from predictor.model import INTERVAL_LEVEL, LOG_SCALE_FLOORS, AdditiveModel, model_scale

REPORT_NAME = "report.md"
METRICS_NAME = "metrics.json"
FIGURES_DIR = "figures"
FORMAT = "ketamine-predictor evaluation report"
FORMAT_VERSION = 1

CONFIDENCE_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 1000
"""Bootstrap resamples behind each AUC interval (percentile method)."""
CALIBRATION_BINS = 10
"""Bins of the calibration plot (deciles of predicted probability) and of the ECE (equal
width)."""
DECISION_THRESHOLDS: tuple[float, ...] = tuple(k / 100 for k in range(10, 91))
"""Threshold probabilities of the decision curve: 0.10 to 0.90 in steps of 0.01."""
TABLE_THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
"""Thresholds of the threshold table (the model's own threshold is added)."""
AGE_BANDS: tuple[int, ...] = (18, 35, 50, 65)
"""Lower edges of the age bands of the subgroup table, years (the last band is open)."""
SUBGROUPS: tuple[tuple[str, str], ...] = (
    ("sex", "sex"),
    ("age band", "age_years"),
    ("route", "route"),
    ("substance use", "substance_use_disorder"),
)
"""(name, field) of each subgrouping."""
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


# ---------------------------------------------------------------------------------------------
# Numbers


def training_distribution(model: AdditiveModel, clean: pd.DataFrame) -> dict[str, Any]:
    """Each model field's distribution in the training data, for the report's term figure.

    Train stores it in the model's manifest, so that a report on any data can show what the
    model learned from.

    Parameters
    ----------
    model : AdditiveModel
    clean : pandas.DataFrame
        The rows the model was fitted on.

    Returns
    -------
    dict
        Field -> ``{"n_missing", "edges", "counts"}`` for a number (a histogram over the
        training range, on the model's scale: CRP's bins are equal on the log scale) or
        ``{"n_missing", "levels", "counts"}`` for a category.
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
            entry["edges"] = _rounded(_from_model_scale(term.field, edges))
            entry["counts"] = counts.tolist()
        out[term.field] = entry
    return out


def _from_model_scale(name: str, values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`predictor.model._features.model_scale`."""
    return np.exp(values) if name in LOG_SCALE_FLOORS else values


def _rounded(values: Any, decimals: int = CURVE_DECIMALS) -> list[float]:
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def term_shapes(model: AdditiveModel) -> list[dict[str, Any]]:
    """The learned shape of each field's term: its contribution (log-odds, centred on the
    training mean) against the field's value, and the contribution of "not measured".

    Returns
    -------
    list of dict
        One per term: ``field``, ``unit``, ``log_scale``, ``not_measured`` and either
        ``values``/``contribution`` (a number, over its training range) or
        ``levels``/``contribution`` (a category). A term without a shape (no training values)
        has neither.
    """
    shapes = []
    for term, columns, mean in zip(
        model.features.terms, model.features.slices, model.term_means, strict=True
    ):
        coef = model.coef[columns]
        field = FIELDS_BY_NAME[term.field]
        entry: dict[str, Any] = {
            "field": term.field,
            "unit": field.unit,
            "log_scale": term.field in LOG_SCALE_FLOORS,
            "not_measured": float(term.missing_row @ coef - mean),
            "learned_missing": term.learned_missing,
        }
        if term.is_spline and np.isfinite(term.value_range).all():
            low, high = model_scale(term.field, np.asarray(term.value_range))
            values = _from_model_scale(term.field, np.linspace(low, high, GRID_POINTS))
            values[[0, -1]] = term.value_range  # exactly the training range, not exp(log(.))
            entry["values"] = _rounded(values)
            entry["contribution"] = _rounded(term.block(np.array(entry["values"])) @ coef - mean)
        elif term.levels:
            entry["levels"] = list(term.levels)
            design = term.block(np.array(term.levels, dtype=object))
            entry["contribution"] = _rounded(design @ coef - mean)
        shapes.append(entry)
    return shapes


def _json_ready(value: Any) -> Any:
    """NaN -> None, numpy scalars -> Python numbers, recursively (``metrics.json`` is strict
    JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _age_band_labels() -> list[str]:
    edges = list(AGE_BANDS)
    return [f"{a}-{b - 1}" for a, b in itertools.pairwise(edges)] + [f"{edges[-1]}+"]


def _groups(clean: pd.DataFrame, field: str) -> pd.Series:
    """Each patient's subgroup (text), "not recorded" where the field is missing."""
    values = clean[field]
    if field == "age_years":
        bands = pd.cut(values, [*AGE_BANDS, np.inf], right=False, labels=_age_band_labels()).astype(
            object
        )
        below = values < AGE_BANDS[0]
        groups = bands.where(~below, f"under {AGE_BANDS[0]}")
    else:
        groups = values.astype(object)
    return groups.where(values.notna(), "not recorded")


def _subgroup_order(clean: pd.DataFrame, field: str, present: set[str]) -> list[str]:
    levels = FIELDS_BY_NAME[field].levels or (
        [f"under {AGE_BANDS[0]}", *_age_band_labels()] if field == "age_years" else sorted(present)
    )
    return [g for g in [*levels, "not recorded"] if g in present]


def subgroup_metrics(
    clean: pd.DataFrame, probability: np.ndarray, *, seed: int
) -> list[dict[str, Any]]:
    """:func:`~predictor.evaluation._metrics.metrics` (with an AUC interval) by sex, age band, route
    and substance-use status.

    Parameters
    ----------
    clean : pandas.DataFrame
        Records with ``responded``.
    probability : numpy.ndarray, shape (n,)
        The model's probabilities for those records.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    list of dict
        One per subgroup: ``subgrouping``, ``group``, ``n``, ``responders`` and, when the
        subgroup has at least :data:`MIN_PER_OUTCOME` of each outcome, the metrics.
    """
    y = clean["responded"].to_numpy(dtype=np.float64)
    rows = []
    for name, field in SUBGROUPS:
        groups = _groups(clean, field).to_numpy()
        for group in _subgroup_order(clean, field, set(groups.tolist())):
            member = groups == group
            responders = int(y[member].sum())
            row: dict[str, Any] = {
                "subgrouping": name,
                "group": group,
                "n": int(member.sum()),
                "responders": responders,
            }
            if min(responders, row["n"] - responders) >= MIN_PER_OUTCOME:
                row.update(_metrics_with_interval(y[member], probability[member], seed=seed))
            rows.append(row)
    return rows


def _metrics_with_interval(
    y: np.ndarray,
    p: np.ndarray,
    *,
    seed: int,
    true_probability: np.ndarray | None = None,
    interval: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """:func:`~predictor.evaluation._metrics.metrics`, the mean prediction and the AUC's bootstrap
    interval."""
    out = metrics(y, p, true_probability=true_probability, interval=interval)
    out["mean_predicted"] = float(np.mean(p))
    out["auc_low"], out["auc_high"] = auc_interval(
        y, p, confidence_level=CONFIDENCE_LEVEL, n_resamples=BOOTSTRAP_RESAMPLES, seed=seed
    )
    return out


def _roc(y: np.ndarray, score: np.ndarray) -> dict[str, list[float]]:
    """The ROC curve on a grid of false-positive rates: the highest true-positive rate reached
    at or below each."""
    fpr, tpr, _ = roc_curve(y, score)
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    at = np.searchsorted(fpr, grid, side="right") - 1
    return {"false_positive_rate": _rounded(grid), "true_positive_rate": _rounded(tpr[at])}


def _summarise_folds(folds: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    keys = ("auc", "brier", "log_loss", "calibration_slope", "calibration_intercept", "auc_gap")
    summary = {}
    for name, per_fold in folds.items():
        summary[name] = {
            key: {
                "mean": float(np.mean([m[key] for m in per_fold])),
                "sd": float(np.std([m[key] for m in per_fold], ddof=1)),
                "folds": [m[key] for m in per_fold],
            }
            for key in keys
            if all(key in m for m in per_fold)
        }
    return summary


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
    model: AdditiveModel,
    clean: pd.DataFrame,
    *,
    manifest: Mapping[str, Any],
    seed: int,
    source: str,
    n_refused: int | None = None,
    comparison: dict[str, list[dict[str, float]]] | None = None,
    comparison_source: str = "",
) -> dict[str, Any]:
    """Every number of the evaluation report, as a JSON-ready dict (``metrics.json``).

    Parameters
    ----------
    model : AdditiveModel
    clean : pandas.DataFrame
        Records the model did not see, with ``responded`` (0/1) and, when simulated,
        ``true_probability``; at least :data:`MIN_PER_OUTCOME` of each outcome.
    manifest : mapping
        The model's manifest: what it was trained on (and the training distribution, when the
        manifest has it).
    seed : int
        Seed of the bootstraps; the same data, model and seed give the same report.
    source : str
        What the data is, in words, for the report.
    n_refused : int, optional
        Rows of the input left out because they broke the schema.
    comparison : dict, optional
        Per-fold metrics from :func:`predictor.evaluation._metrics.cross_validate`.
    comparison_source : str
        What the comparison was cross-validated on, in words.

    Returns
    -------
    dict
        Sections ``data``, ``model``, ``settings``, ``metrics`` (the core metrics with the AUC
        interval), ``roc``, ``calibration``, ``decision_curve``, ``thresholds``, ``subgroups``,
        ``comparison``, ``terms``, ``software``.
    """
    y = clean["responded"].to_numpy(dtype=np.float64)
    encoded = model.features.encode(clean)
    scores = model.score(encoded.design)
    p = scores.probability
    truth_column = clean["true_probability"]
    truth = truth_column.to_numpy() if truth_column.notna().all() else None
    core = _metrics_with_interval(
        y, p, seed=seed, true_probability=truth, interval=(scores.low, scores.high)
    )

    thresholds = np.asarray(DECISION_THRESHOLDS)
    grid = np.linspace(*np.percentile(p, [1, 99]), GRID_POINTS)
    histogram_edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    table_thresholds = tuple(sorted({*TABLE_THRESHOLDS, model.threshold}))
    bins = calibration_bins(y, p, n_bins=CALIBRATION_BINS, strategy="quantile")

    training = manifest.get("training_distribution") or {}
    terms = term_shapes(model)
    for j, entry in enumerate(terms):
        entry["mean_abs_contribution"] = float(np.mean(np.abs(scores.contributions[:, j])))
        entry["share_not_measured"] = float(encoded.missing[:, j].mean())
        entry["training"] = training.get(entry["field"])

    trained_on = manifest.get("training_data", {})
    report = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "data": {
            "source": source,
            "n": len(y),
            "n_refused": n_refused,
            "responders": int(y.sum()),
            "has_true_probability": truth is not None,
        },
        "model": {
            "trained_on": trained_on.get("source"),
            "n_training": trained_on.get("n"),
            "artifact_sha256": manifest.get("artifact_sha256"),
            "threshold": model.threshold,
            "interval_level": INTERVAL_LEVEL,
        },
        "settings": {
            "seed": seed,
            "confidence_level": CONFIDENCE_LEVEL,
            "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
            "calibration_bins": CALIBRATION_BINS,
            "min_per_outcome": MIN_PER_OUTCOME,
        },
        "metrics": core,
        "roc": {
            "model": _roc(y, p),
            "oracle": _roc(y, truth) if truth is not None else None,
        },
        "calibration": {
            "bins": bins.to_dict(orient="records"),
            "smoothed": {
                "predicted": _rounded(grid),
                "observed": _rounded(smoothed_calibration(y, p, grid)),
            },
            "histogram": {
                "edges": _rounded(histogram_edges),
                "responders": np.histogram(p[y == 1], histogram_edges)[0].tolist(),
                "non_responders": np.histogram(p[y == 0], histogram_edges)[0].tolist(),
            },
        },
        "decision_curve": {
            "threshold": list(DECISION_THRESHOLDS),
            "model": _rounded(net_benefit(y, p, thresholds), 6),
            "treat_all": _rounded(net_benefit(y, np.ones_like(p), thresholds), 6),
        },
        "thresholds": threshold_table(y, p, table_thresholds).to_dict(orient="records"),
        "subgroups": subgroup_metrics(clean, p, seed=seed),
        "comparison": (
            {
                "source": comparison_source,
                "folds": len(next(iter(comparison.values()))),
                "penalty_c": model.penalty_c,
                "models": _summarise_folds(comparison),
            }
            if comparison
            else None
        ),
        "terms": terms,
        "software": _software(),
    }
    return _json_ready(report)


# ---------------------------------------------------------------------------------------------
# Text


def _f(value: float | None, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def _auc_text(m: Mapping[str, Any]) -> str:
    return f"{m['auc']:.3f} ({LEVEL} CI {m['auc_low']:.3f} to {m['auc_high']:.3f})"


def _runs(thresholds: list[float], better: list[bool]) -> list[tuple[float, float]]:
    """Contiguous ranges of thresholds where ``better`` holds."""
    runs = []
    for keep, group in itertools.groupby(zip(thresholds, better, strict=True), key=lambda x: x[1]):
        if keep:
            values = [t for t, _ in group]
            runs.append((values[0], values[-1]))
    return runs


def decision_summary(report: Mapping[str, Any]) -> str:
    """In words: over which thresholds the model's net benefit beats treating everyone and
    treating no one."""
    curve = report["decision_curve"]
    better = [m > max(a, 0.0) for m, a in zip(curve["model"], curve["treat_all"], strict=True)]
    runs = _runs(curve["threshold"], better)
    first, last = curve["threshold"][0], curve["threshold"][-1]
    if not runs:
        return (
            f"At no threshold from {first:.2f} to {last:.2f} is the model's net benefit above "
            "both treating everyone and treating no one."
        )
    spans = [f"{a:.2f}" if a == b else f"{a:.2f} to {b:.2f}" for a, b in runs]
    listed = spans[0] if len(spans) == 1 else ", ".join(spans[:-1]) + " and " + spans[-1]
    gains = [m - max(a, 0.0) for m, a in zip(curve["model"], curve["treat_all"], strict=True)]
    best = int(np.argmax(gains))
    return (
        f"The model's net benefit is above both treating everyone and treating no one at "
        f"thresholds {listed} (of {first:.2f} to {last:.2f}, in steps of "
        f"{curve['threshold'][1] - first:.2f}); the largest gain, {gains[best]:.3f} (net "
        f"benefit {curve['model'][best]:.3f} against {max(curve['treat_all'][best], 0.0):.3f}), "
        f"is at {curve['threshold'][best]:.2f}."
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def core_metrics_table(m: Mapping[str, Any], *, auc: bool = True) -> str:
    """The headline metrics as a two-column Markdown table (``auc=False``: calibration
    only)."""
    rows = [[f"AUC ({LEVEL} bootstrap CI)", _auc_text(m)]] if auc else []
    rows += [
        ["calibration slope (ideal 1)", f"{m['calibration_slope']:.2f}"],
        ["calibration intercept (ideal 0)", f"{m['calibration_intercept']:+.3f}"],
        [
            "calibration-in-the-large (observed - mean predicted)",
            f"{m['calibration_in_the_large']:+.3f}",
        ],
        ["Brier score", f"{m['brier']:.4f}"],
        [f"expected calibration error ({CALIBRATION_BINS} equal-width bins)", f"{m['ece']:.3f}"],
        ["log-loss", f"{m['log_loss']:.4f}"],
    ]
    return _table(["metric", "value"], rows)


def threshold_markdown(report: Mapping[str, Any]) -> str:
    """The threshold table in Markdown (the model's own threshold marked)."""
    own = report["model"]["threshold"]
    rows = [
        [
            f"{r['threshold']:.2f}" + (" (model's)" if r["threshold"] == own else ""),
            f"{r['flagged']:.1%}",
            _f(r["sensitivity"], ".3f"),
            _f(r["specificity"], ".3f"),
            _f(r["ppv"], ".3f"),
            _f(r["npv"], ".3f"),
            f"{r['net_benefit']:.3f}",
            f"{r['treat_all']:.3f}",
        ]
        for r in report["thresholds"]
    ]
    header = [
        "threshold",
        "flagged",
        "sensitivity",
        "specificity",
        "PPV",
        "NPV",
        "net benefit",
        "net benefit, treat all",
    ]
    return _table(header, rows)


def subgroup_markdown(report: Mapping[str, Any]) -> str:
    """The subgroup table in Markdown."""
    rows = []
    for r in report["subgroups"]:
        cells = [r["subgrouping"], r["group"], f"{r['n']:,}", f"{r['responders']:,}"]
        if "auc" in r:
            cells += [
                f"{r['response_rate']:.3f}",
                f"{r['mean_predicted']:.3f}",
                _auc_text(r),
                f"{r['calibration_slope']:.2f}",
                f"{r['calibration_intercept']:+.3f}",
                f"{r['brier']:.4f}",
            ]
        else:
            cells += (
                [f"{r['responders'] / r['n']:.3f}" if r["n"] else "n/a"]
                + [f"too few (< {report['settings']['min_per_outcome']} of an outcome)"]
                + [""] * 4
            )
        rows.append(cells)
    header = [
        "subgroup",
        "group",
        "n",
        "responders",
        "observed rate",
        "mean predicted",
        f"AUC ({LEVEL} CI)",
        "calibration slope",
        "calibration intercept",
        "Brier",
    ]
    return _table(header, rows)


def subgroup_extremes(report: Mapping[str, Any]) -> str:
    """The subgroups with the lowest and highest AUC, in words."""
    scored = [r for r in report["subgroups"] if "auc" in r]
    if len(scored) < 2:
        return ""
    low = min(scored, key=lambda r: r["auc"])
    high = max(scored, key=lambda r: r["auc"])

    def described(r: Mapping[str, Any]) -> str:
        return (
            f"{r['auc']:.3f} ({r['subgrouping']}: {r['group']}; n = {r['n']:,}; {LEVEL} CI "
            f"{r['auc_low']:.3f} to {r['auc_high']:.3f})"
        )

    return f"AUC by subgroup ranges from {described(low)} to {described(high)}."


def comparison_markdown(report: Mapping[str, Any]) -> str:
    """The cross-validated comparison in Markdown: mean (SD) over folds."""
    comparison = report["comparison"]
    columns = [
        ("auc", "AUC", ".3f"),
        ("auc_gap", "gap to oracle", "+.3f"),
        ("brier", "Brier", ".4f"),
        ("log_loss", "log-loss", ".4f"),
        ("calibration_slope", "calibration slope", ".2f"),
        ("calibration_intercept", "calibration intercept", "+.3f"),
    ]
    present = [c for c in columns if all(c[0] in m for m in comparison["models"].values())]
    rows = [
        [name]
        + [f"{m[key]['mean']:{spec}} ({m[key]['sd']:.{spec[-2]}f})" for key, _, spec in present]
        for name, m in comparison["models"].items()
    ]
    return _table(["model", *(label for _, label, _ in present)], rows)


def comparison_intro(report: Mapping[str, Any]) -> str:
    """How the comparison was made, in words."""
    c = report["comparison"]
    return (
        f"Cross-validated on {c['source']}: {c['folds']} folds (stratified by outcome), the "
        f"same for all {len(c['models'])} models; mean (SD) over the folds. The additive "
        f"model is refitted in each fold with the penalty chosen on all the rows "
        f"(C = {c['penalty_c']:g}); plain logistic regression (median imputation with "
        "missing indicators, one-hot categories) and histogram gradient boosting (native "
        "missing values, early stopping) are fitted in each fold as they are."
    )


def terms_markdown(report: Mapping[str, Any]) -> str:
    """Mean |contribution| and share not measured per field, largest first."""
    terms = sorted(report["terms"], key=lambda t: -t["mean_abs_contribution"])
    rows = [
        [
            f"`{t['field']}`",
            f"{t['mean_abs_contribution']:.3f}",
            f"{t['share_not_measured']:.1%}",
            _f(t["not_measured"], "+.3f")
            if t["share_not_measured"] or t["learned_missing"]
            else "",
        ]
        for t in terms
    ]
    header = [
        "field",
        "mean abs contribution (log-odds)",
        "not measured",
        "contribution when not measured",
    ]
    return _table(header, rows)


def _figure(figures: Mapping[str, str] | None, key: str, caption: str) -> str:
    if not figures or key not in figures:
        return ""
    return f"\n![{caption}]({figures[key]})\n"


NO_FIGURES_NOTE = (
    "> **Figures were not drawn:** matplotlib is not installed. Install it with `pip install "
    '"ketamine-predictor[plots]"` and run the report again; the tables below carry the same '
    "numbers."
)


def report_markdown(report: Mapping[str, Any], figures: Mapping[str, str] | None) -> str:
    """``report.md``: the report's numbers in words, tables and figures.

    Parameters
    ----------
    report : mapping
        As :func:`build_report` returns it.
    figures : mapping or None
        Figure key -> path relative to the report (``None``: figures were not drawn).
    """
    data, m, model = report["data"], report["metrics"], report["model"]
    refused = (
        f" ({data['n_refused']:,} more row{'s were' if data['n_refused'] > 1 else ' was'} left "
        "out for breaking the schema)"
        if data["n_refused"]
        else ""
    )
    truth = ""
    if data["has_true_probability"]:
        truth = f"""
## Against the simulator's truth

The data carries `true_probability`, the probability the simulator drew each outcome from.

- Oracle AUC (AUC of the true probability): {m["oracle_auc"]:.3f}; the model's gap to it:
  {m["auc_gap"]:+.3f}.
- {model["interval_level"]:.0%} interval coverage of the true probability:
  {m["interval_coverage"]:.1%} (the share of patients whose interval contains it).
"""
    comparison = (
        f"""
### Against simpler models

{comparison_intro(report)}

{comparison_markdown(report)}
"""
        if report["comparison"]
        else """
### Against simpler models

Not computed for this report: `python train.py` cross-validates the additive model against
plain logistic regression and gradient boosting on its training data, and `python -m predictor
evaluate --compare` does it on the data evaluated.
"""
    )
    note = "" if figures is not None else f"\n{NO_FIGURES_NOTE}\n"
    bins = report["calibration"]["bins"]
    bin_rows = [
        [
            f"{b['low']:.3f} to {b['high']:.3f}",
            f"{b['n']:,}",
            f"{b['mean_predicted']:.3f}",
            f"{b['observed']:.3f} ({b['observed_low']:.3f} to {b['observed_high']:.3f})",
        ]
        for b in bins
    ]
    own = next(r for r in report["thresholds"] if r["threshold"] == model["threshold"])
    contributions_figure = _figure(figures, "contributions", "Mean absolute contribution per field")
    return f"""# Evaluation report

> **Demonstration only: not for clinical decisions.** The model was trained on
> {model["trained_on"]}. These figures say how it does on the data below, nothing more.

_Generated from the model and the data; no number is typed by hand. Every number is also in
`{METRICS_NAME}`._
{note}
## Data

- Data: {data["source"]}; {data["n"]:,} patients, {data["responders"]:,} responders (response
  rate {m["response_rate"]:.3f}){refused}.
- Model: `model.json` sha256 `{model["artifact_sha256"]}`; "likely responder" at a probability
  of {model["threshold"]:g} or more.
- Intervals: {LEVEL} percentile bootstrap over {report["settings"]["bootstrap_resamples"]:,}
  resamples of patients (seed {report["settings"]["seed"]}).

## Discrimination

AUC {_auc_text(m)}: the chance that a random responder gets a higher probability than a random
non-responder.
{_figure(figures, "roc", "ROC curve")}
## Calibration

{core_metrics_table(m, auc=False)}

The slope and intercept are those of logistic recalibration: the slope of `logit P(response) = a
+ b logit(p)`, and the intercept with the slope held at 1. The calibration plot shows the
observed response rate in each of {len(bins)} equal-sized groups by predicted probability (with
its {LEVEL} Wilson interval) and a smoothed curve (a logistic regression on a spline of
logit(p)), above the distribution of the predictions.
{_figure(figures, "calibration", "Calibration plot")}
{_table(["predicted probability", "n", "mean predicted", f"observed ({LEVEL} CI)"], bin_rows)}

## Clinical usefulness

Net benefit weighs true positives (responders flagged) against false positives (non-responders
flagged) at the odds of a threshold probability: `TP/n - FP/n * t / (1 - t)`. "Treat all"
flags everyone, "treat none" no one (net benefit 0). {decision_summary(report)}
{_figure(figures, "decision_curve", "Decision curve")}
{threshold_markdown(report)}

At the model's own threshold ({model["threshold"]:g}) it flags {own["flagged"]:.1%} of patients,
with sensitivity {own["sensitivity"]:.3f}, specificity {own["specificity"]:.3f}, PPV
{own["ppv"]:.3f} and NPV {own["npv"]:.3f}.

## Subgroups

{subgroup_extremes(report)}
{_figure(figures, "subgroups", "AUC by subgroup")}
{subgroup_markdown(report)}

## The model
{comparison}
### What it learned

Each field's term (its contribution to the log-odds, centred on the training average) against
the field's value, over the training range, with the training data's distribution shaded
underneath; "not measured" is the contribution of a missing value.
{_figure(figures, "terms", "Learned term shapes")}{contributions_figure}
{terms_markdown(report)}
{truth}"""


# ---------------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote: paths, and each figure's path relative to the report
    (``figures`` is None when matplotlib is absent)."""

    report: Path
    metrics: Path
    figures: dict[str, str] | None


def _figures_module() -> Any | None:
    """:mod:`predictor.evaluation._figures`, or None when matplotlib is not installed."""
    try:
        return importlib.import_module("predictor.evaluation._figures")
    except ImportError:
        return None


def write_report(report: Mapping[str, Any], out: str | os.PathLike[str]) -> ReportFiles:
    """Write ``metrics.json``, the figures and ``report.md`` into ``out`` (created).

    Each file is written atomically (it appears complete or not at all); ``report.md`` comes
    last. Without matplotlib, no figure is drawn, figures left from an earlier report are
    removed, and ``report.md`` says why it has no figures.

    Parameters
    ----------
    report : mapping
        As :func:`build_report` returns it.
    out : path
        The directory.
    """
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    figures_module = _figures_module()
    figure_dir = directory / FIGURES_DIR
    figures: dict[str, str] | None = None
    if figures_module is not None:
        figure_dir.mkdir(exist_ok=True)
        figures = {
            key: f"{FIGURES_DIR}/{path.name}"
            for key, path in figures_module.draw_figures(report, figure_dir).items()
        }
    elif figure_dir.is_dir():
        for name in FIGURE_NAMES.values():
            (figure_dir / name).unlink(missing_ok=True)
    metrics_path = directory / METRICS_NAME
    with atomic_text_output(metrics_path) as handle:
        handle.write(json.dumps(report, allow_nan=False, indent=1) + "\n")
    report_path = directory / REPORT_NAME
    with atomic_text_output(report_path) as handle:
        handle.write(report_markdown(report, figures))
    return ReportFiles(report_path, metrics_path, figures)


FIGURE_NAMES = {
    "roc": "roc.png",
    "calibration": "calibration.png",
    "decision_curve": "decision_curve.png",
    "subgroups": "subgroups.png",
    "terms": "terms.png",
    "contributions": "contributions.png",
}
"""Figure key -> file name in ``figures/``."""


# ---------------------------------------------------------------------------------------------
# Model card


def card_sections(report: Mapping[str, Any], figures: Mapping[str, str] | None) -> dict[str, str]:
    """The report's key numbers as Markdown for the model card's sections.

    Returns
    -------
    dict
        ``"predictors"``, ``"performance"``, ``"calibration"``, ``"limitations"``: text to add
        to those sections (figure links are relative to the model directory).
    """
    m, data = report["metrics"], report["data"]
    own = next(r for r in report["thresholds"] if r["threshold"] == report["model"]["threshold"])
    comparison = (
        f"\n### Cross-validated comparison\n\n{comparison_intro(report)}\n\n"
        f"{comparison_markdown(report)}\n"
        if report["comparison"]
        else ""
    )
    figure_note = "" if figures is not None else f"\n{NO_FIGURES_NOTE}\n"
    performance = f"""
### On the held-out data, with uncertainty

From the full evaluation report ([{REPORT_NAME}]({REPORT_NAME}), numbers in
[{METRICS_NAME}]({METRICS_NAME})), on {data["source"].lower()} ({data["n"]:,} patients):
{figure_note}
- Discrimination: AUC {_auc_text(m)}.
- At the model's threshold ({report["model"]["threshold"]:g}): flags {own["flagged"]:.1%},
  sensitivity {own["sensitivity"]:.3f}, specificity {own["specificity"]:.3f}, PPV
  {own["ppv"]:.3f}, NPV {own["npv"]:.3f}.
- Clinical usefulness: {decision_summary(report)}
{_figure(figures, "roc", "ROC curve")}{_figure(figures, "decision_curve", "Decision curve")}
{threshold_markdown(report)}
{comparison}
### Subgroups

{subgroup_extremes(report)}

{subgroup_markdown(report)}
"""
    calibration = f"""
On the held-out data ({data["n"]:,} patients), with the calibration intercept and the expected
calibration error:

{core_metrics_table(m, auc=False)}
{_figure(figures, "calibration", "Calibration plot")}"""
    predictors = (
        "The learned shape of each term, with the training distribution, is drawn in "
        f"[{FIGURES_DIR}/{FIGURE_NAMES['terms']}]({FIGURES_DIR}/{FIGURE_NAMES['terms']}); "
        f"[{REPORT_NAME}]({REPORT_NAME}) lists each field's mean absolute contribution."
        if figures
        else f"[{REPORT_NAME}]({REPORT_NAME}) lists each field's mean absolute contribution."
    )
    extremes = subgroup_extremes(report)
    limitations = (
        f"- Performance differs between subgroups of the held-out data. {extremes} Small "
        "subgroups have wide intervals; see the subgroup table under Performance."
        if extremes
        else ""
    )
    return {
        "predictors": predictors,
        "performance": performance,
        "calibration": calibration,
        "limitations": limitations,
    }
