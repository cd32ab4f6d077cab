"""The evaluation report's figures, drawn with matplotlib from a
:class:`~predictor.evaluation._report.Report` alone, as PNG bytes (writing them is
:mod:`~predictor.evaluation._files`' job).

Needs matplotlib (the ``plots`` extra): importing this module without it raises
``ModuleNotFoundError`` for matplotlib, which :mod:`~predictor.evaluation._files` takes to mean
"tables only". Figures are drawn on matplotlib's Agg canvas without
pyplot, so nothing here touches a user's plotting state, and with matplotlib's default style
(whatever a local ``matplotlibrc`` says), so the same numbers and versions give the same PNG
bytes (the PNG carries no software or date metadata).
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
from collections.abc import Callable, Iterator
from typing import Any

import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from predictor._processes import can_fork, forked_pool, signals_held, usable_cores
from predictor.evaluation._report import (
    LEVEL,
    Report,
    TermShape,
    mean_abs_contribution,
    metric_text,
)

STYLE = {
    "font.size": 8.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 8.0,
    "legend.fontsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 100,
}
MODEL_COLOUR, REFERENCE_COLOUR, SHADE_COLOUR = "C0", "0.45", "0.86"
LEVEL_LABEL_CHARACTERS = 36
"""A category panel whose level names have more characters than this in all shows each on two
lines (split at its first ``_``), in a smaller font."""


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def roc_figure(report: Report) -> Figure:
    """ROC curve of the model (and of the simulator's true probability, when known)."""
    figure = Figure(figsize=(4.6, 4.4), layout="constrained")
    ax = figure.add_subplot()
    m, roc = report.metrics, report.roc
    ax.plot(
        roc.model.false_positive_rate,
        roc.model.true_positive_rate,
        color=MODEL_COLOUR,
        label=f"model: AUC {m.auc:.3f} ({m.auc_low:.3f} to {m.auc_high:.3f})",
    )
    if roc.oracle:
        ax.plot(
            roc.oracle.false_positive_rate,
            roc.oracle.true_positive_rate,
            color=REFERENCE_COLOUR,
            linestyle="--",
            label=f"true probability (oracle): AUC {m.oracle_auc:.3f}",
        )
    ax.plot([0, 1], [0, 1], color=REFERENCE_COLOUR, linestyle=":", linewidth=1, label="chance")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        aspect="equal",
        xlabel="1 - specificity (false-positive rate)",
        ylabel="sensitivity (true-positive rate)",
        title=f"ROC curve ({report.data.n:,} patients)",
    )
    ax.legend(loc="lower right")
    return figure


def calibration_figure(report: Report) -> Figure:
    """Observed against predicted response rate (groups by predicted probability with their
    intervals, and a smoothed curve), with the distribution of the predictions underneath."""
    figure = Figure(figsize=(5.2, 5.6), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    calibration, m = report.calibration, report.metrics
    bins = calibration.bins
    top.plot([0, 1], [0, 1], color=REFERENCE_COLOUR, linestyle=":", linewidth=1, label="ideal")
    top.plot(
        calibration.smoothed.predicted,
        calibration.smoothed.observed,
        color=MODEL_COLOUR,
        label="smoothed (logistic regression on a spline of logit p)",
    )
    top.errorbar(
        [b.mean_predicted for b in bins],
        [b.observed for b in bins],
        yerr=[
            [b.observed - b.observed_low for b in bins],
            [b.observed_high - b.observed for b in bins],
        ],
        fmt="o",
        markersize=3.5,
        color="black",
        capsize=2,
        linewidth=1,
        label=f"{len(bins)} equal-sized groups ({LEVEL} CI)",
    )
    top.set(
        xlim=(0, 1),
        ylim=(0, 1),
        ylabel="observed response rate",
        title=(
            f"Calibration: slope {metric_text(m.calibration_slope, '.2f')}, intercept "
            f"{metric_text(m.calibration_intercept, '+.3f')}, ECE {metric_text(m.ece, '.3f')}"
        ),
    )
    top.legend(loc="upper left")
    histogram = calibration.histogram
    edges = histogram.edges
    bottom.stairs(histogram.responders, edges, fill=True, color=MODEL_COLOUR, alpha=0.6)
    bottom.stairs([-c for c in histogram.non_responders], edges, fill=True, color=REFERENCE_COLOUR)
    bottom.axhline(0, color="black", linewidth=0.5)
    bottom.set(xlabel="predicted probability of response", ylabel="patients")
    bottom.text(0.01, 0.95, "responders", transform=bottom.transAxes, va="top", fontsize=7)
    bottom.text(0.01, 0.05, "non-responders", transform=bottom.transAxes, va="bottom", fontsize=7)
    bottom.yaxis.set_major_formatter(lambda value, _: f"{abs(value):g}")
    return figure


def decision_curve_figure(report: Report) -> Figure:
    """Net benefit of the model, of treating everyone and of treating no one, by threshold."""
    figure = Figure(figsize=(5.6, 3.8), layout="constrained")
    ax = figure.add_subplot()
    curve = report.decision_curve
    t = curve.threshold
    ax.plot(t, curve.model, color=MODEL_COLOUR, label="model")
    ax.plot(t, curve.treat_all, color=REFERENCE_COLOUR, linestyle="--", label="treat all")
    ax.plot(t, [0.0] * len(t), color="black", linewidth=1, label="treat none")
    ax.axvline(
        report.model.threshold,
        color=REFERENCE_COLOUR,
        linestyle=":",
        linewidth=1,
        label="model's threshold",
    )
    top = max(max(curve.model), max(curve.treat_all))
    ax.set(
        xlim=(t[0], t[-1]),
        ylim=(-0.05, top + 0.05),
        xlabel="threshold probability of response",
        ylabel="net benefit",
        title="Decision curve",
    )
    ax.legend(loc="upper right")
    return figure


def subgroup_figure(report: Report) -> Figure:
    """AUC with its DeLong interval in each subgroup, against the AUC overall."""
    rows = [r for r in report.subgroups if r.metrics is not None]
    metrics = [r.metrics for r in rows if r.metrics is not None]  # the same rows, narrowed
    figure = Figure(figsize=(5.6, 1.0 + 0.26 * max(len(rows), 1)), layout="constrained")
    ax = figure.add_subplot()
    positions = list(range(len(rows)))[::-1]
    ax.errorbar(
        [m.auc for m in metrics],
        positions,
        xerr=[  # never below 0: the interval's AUC and the metric's may differ in the last bit
            [max(m.auc - m.auc_low, 0.0) for m in metrics],
            [max(m.auc_high - m.auc, 0.0) for m in metrics],
        ],
        fmt="o",
        markersize=3.5,
        color=MODEL_COLOUR,
        capsize=2,
        linewidth=1,
    )
    ax.axvline(report.metrics.auc, color=REFERENCE_COLOUR, linestyle="--", linewidth=1)
    ax.set_yticks(positions, [f"{r.subgrouping}: {r.group} (n = {r.n:,})" for r in rows])
    ax.set(xlabel=f"AUC ({LEVEL} DeLong CI); dashed: all patients", title="AUC by subgroup")
    return figure


def _term_panel(ax: Any, term: TermShape) -> None:
    training = term.training
    # The training distribution as a shade in the lower quarter of the panel, in axes height
    # (x in data, y in axes coordinates): no second y axis, which cost the figure half its
    # drawing time.
    behind = {"transform": ax.get_xaxis_transform(), "color": SHADE_COLOUR, "zorder": 0}
    if term.values is not None:
        ax.plot(term.values, term.contribution, color=MODEL_COLOUR)
        if term.log_scale:
            ax.set_xscale("log")
        if training is not None and training.counts:
            peak = 4 * max(training.counts)
            ax.stairs([c / peak for c in training.counts], training.edges, fill=True, **behind)
            total = sum(training.counts) + training.n_missing
            if training.n_missing:
                ax.text(
                    0.02,
                    0.97,
                    f"not measured in training: {training.n_missing / total:.0%}",
                    transform=ax.transAxes,
                    va="top",
                    fontsize=6.5,
                    color=REFERENCE_COLOUR,
                )
        if term.learned_missing:
            ax.axhline(term.not_measured, color=REFERENCE_COLOUR, linestyle="--", linewidth=1)
            ax.text(
                0.98,
                term.not_measured,
                "not measured",
                transform=ax.get_yaxis_transform(),
                ha="right",
                va="bottom",
                fontsize=6.5,
                color=REFERENCE_COLOUR,
            )
        unit = f" ({term.unit})" if term.unit else ""
        ax.set_xlabel(f"{term.field}{unit}" + (", log scale" if term.log_scale else ""))
    elif term.levels is not None:
        assert term.contribution is not None  # a term with levels has their contributions
        labels = list(term.levels)
        values = list(term.contribution)
        if term.learned_missing:
            labels.append("not measured")
            values.append(term.not_measured)
        positions = list(range(len(labels)))
        ax.plot(positions, values, "o", color=MODEL_COLOUR)
        # long level names (route's five) side by side run into each other: on two lines
        if sum(map(len, labels)) > LEVEL_LABEL_CHARACTERS:
            ax.set_xticks(positions, [label.replace("_", "\n", 1) for label in labels])
            ax.tick_params(axis="x", labelsize=5.5)
        else:
            ax.set_xticks(positions, labels)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        counts = (
            [*training.counts, training.n_missing][: len(labels)]
            if training is not None and training.counts
            else []
        )
        if counts and max(counts) > 0:  # no bars when no patient had a value
            peak = 4 * max(counts)
            ax.bar(positions[: len(counts)], [c / peak for c in counts], width=0.6, **behind)
        ax.set_xlabel(term.field)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("contribution (log-odds)")


def terms_figure(report: Report) -> Figure:
    """Each field's learned term against its value, over the training distribution."""
    terms = report.terms
    columns = 4
    rows = math.ceil(len(terms) / columns)
    height = 2.5 * rows
    figure = Figure(figsize=(12, height))
    # Fixed margins (in inches, whatever the number of rows), not the constrained layout,
    # which took half the time of the report's figures for this one.
    figure.subplots_adjust(
        left=0.055,
        right=0.99,
        top=1 - 0.4 / height,
        bottom=0.5 / height,
        wspace=0.08,
        hspace=0.55 / 2.0,
    )
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    for k, (ax, term) in enumerate(zip(axes, terms, strict=False)):
        _term_panel(ax, term)
        if k % columns:
            ax.set_ylabel("")
    for ax in axes[len(terms) :]:
        ax.set_visible(False)
    figure.suptitle(
        "Learned terms (contribution to the log-odds, centred; one scale for all); "
        "grey: training distribution"
    )
    return figure


def contributions_figure(report: Report) -> Figure:
    """Mean absolute contribution of each field on the data evaluated."""
    terms = sorted(report.terms, key=mean_abs_contribution)
    figure = Figure(figsize=(5.6, 0.8 + 0.24 * len(terms)), layout="constrained")
    ax = figure.add_subplot()
    ax.barh([t.field for t in terms], [mean_abs_contribution(t) for t in terms])
    ax.set(xlabel="mean |contribution| (log-odds)", title="How much each field moves predictions")
    return figure


def instability_figure(report: Report) -> Figure | None:
    """Riley and Collins' (2023) instability plots. Left, prediction instability: each
    bootstrap model's probability for a patient against the final model's, with the 2.5th and
    97.5th percentile curves, the diagonal and the threshold. Right, classification
    instability: each patient's share of bootstrap models whose label differs from the final
    model's, against the final model's probability. None for a report without a bootstrap."""
    if report.bootstrap is None:
        return None
    b = report.bootstrap
    s = b.instability
    figure = Figure(figsize=(9.6, 5.4), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=(1.25, 1))
    shown = len(s.point_final)
    left.scatter(
        s.point_final,
        s.point_bootstrap,
        s=5,
        color=MODEL_COLOUR,
        alpha=0.2 if shown > 1000 else 0.4,
        linewidths=0,
        rasterized=True,
        label=f"a bootstrap model's probability for a patient ({shown:,} shown)",
    )
    left.plot(
        [0, 1], [0, 1], color=REFERENCE_COLOUR, linestyle=":", linewidth=1, label="same as final"
    )
    left.plot(
        s.final,
        s.low,
        color="black",
        linestyle="--",
        linewidth=1.2,
        label="2.5th and 97.5th percentiles",
    )
    left.plot(s.final, s.high, color="black", linestyle="--", linewidth=1.2)
    left.axhline(s.threshold, color=REFERENCE_COLOUR, linewidth=0.8)
    for ax in (left, right):
        ax.axvline(
            s.threshold,
            color=REFERENCE_COLOUR,
            linewidth=0.8,
            label=f"threshold {s.threshold:g}" if ax is left else None,
        )
    left.set(
        xlim=(0, 1),
        ylim=(0, 1),
        aspect="equal",
        xlabel="final model's probability of response",
        ylabel="bootstrap model's probability of response",
        title=f"Prediction instability: MAPE {s.mape:.3f}",
    )
    right.scatter(
        s.patient_final,
        s.patient_instability,
        s=7,
        color=MODEL_COLOUR,
        alpha=0.5,
        linewidths=0,
        rasterized=True,
    )
    right.set(
        xlim=(0, 1),
        ylim=(0, max(0.5, max(s.patient_instability, default=0.0) + 0.05)),
        xlabel="final model's probability of response",
        ylabel="share of bootstrap models with the other label",
        title=(
            f"Classification instability at {s.threshold:g}: mean "
            f"{s.classification_instability:.1%}"
        ),
    )
    figure.suptitle(
        f"{b.repeats - b.failed:,} bootstrap models refitted on resamples of the {b.n:,} "
        "training patients, scored on those patients"
    )
    legend = figure.legend(loc="outside lower center", ncols=4, markerscale=2.5)
    for handle in legend.legend_handles:  # the points' marker, opaque in the legend
        if handle is not None:
            handle.set_alpha(1.0)
    return figure


DRAWERS: dict[str, Callable[[Report], Figure | None]] = {
    "roc": roc_figure,
    "calibration": calibration_figure,
    "decision_curve": decision_curve_figure,
    "subgroups": subgroup_figure,
    "terms": terms_figure,
    "contributions": contributions_figure,
    "instability": instability_figure,
}
"""Figure key -> its drawer; a drawer returns None for a figure the report has no numbers for."""
ELSEWHERE = ("terms",)
"""The figures :func:`draw_figures` leaves to a process of its own, when there is a second
core: the terms figure (14 panels) takes about as long to draw as the others together."""


def draw_figures(report: Report) -> dict[str, bytes]:
    """Draw every figure of the report as PNG bytes.

    Parameters
    ----------
    report : Report
        As :func:`~predictor.evaluation._report.build_report` returns it.

    Returns
    -------
    dict
        Figure key (those of :data:`~predictor.evaluation._report.FIGURE_NAMES`, and of
        :data:`~predictor.evaluation._report.BOOTSTRAP_FIGURE_NAMES` for a report with a
        bootstrap) -> PNG bytes, in the order of :data:`DRAWERS`.

    With a second core and a process that can fork (:func:`predictor._processes.can_fork`), a
    forked process draws the figures of :data:`ELSEWHERE` while this one draws the others:
    the same PNG bytes, in about half the time.
    """
    elsewhere = [key for key in ELSEWHERE if key in DRAWERS]
    here = [key for key in DRAWERS if key not in elsewhere]
    if not (elsewhere and here and usable_cores() > 1 and can_fork()):
        return _draw(report, list(DRAWERS))
    with forked_pool(1) as pool:
        with signals_held():  # the submit forks the process
            there = pool.submit(_draw, report, elsewhere)
        drawn = {**_draw(report, here), **there.result()}
    return {key: drawn[key] for key in DRAWERS if key in drawn}


def _draw(report: Report, keys: list[str]) -> dict[str, bytes]:
    """The figures ``keys`` of the report (those it has numbers for) as PNG bytes."""
    with matplotlib.style.context(["default", STYLE]), _without_cyclic_gc():
        drawn = {key: DRAWERS[key](report) for key in keys}
        return {key: _png(figure) for key, figure in drawn.items() if figure is not None}


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Python's cyclic garbage collector paused (as it was before, afterwards): matplotlib
    makes hundreds of thousands of small objects for these figures, and the collector's
    passes, which walk every object of the process, took a fifth of their drawing time. What
    the figures leave behind is collected once the collector runs again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
