"""``report.md`` and the report's Markdown tables, rendered from a
:class:`~predictor.evaluation._report.Report` (the model card reuses the tables)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np

from predictor.evaluation._report import (
    CALIBRATION_BINS,
    LEVEL,
    METRICS_NAME,
    WIDE_AUC_INTERVAL,
    BootstrapSummary,
    CoreMetrics,
    DecisionCurve,
    FoldSummary,
    Report,
    SubgroupRow,
    mean_abs_contribution,
    metric_text,
)

NO_FIGURES_NOTE = (
    "> **Figures were not drawn:** matplotlib is not installed. Install it with `pip install "
    '"ketamine-predictor[plots]"` and run the report again; the tables below carry the same '
    "numbers."
)


def auc_text(m: CoreMetrics) -> str:
    """The AUC with its interval, in words."""
    return f"{m.auc:.3f} ({LEVEL} CI {m.auc_low:.3f} to {m.auc_high:.3f})"


def _runs(thresholds: tuple[float, ...], better: list[bool]) -> list[tuple[float, float]]:
    """Contiguous ranges of thresholds where ``better`` holds."""
    runs = []
    for keep, group in itertools.groupby(zip(thresholds, better, strict=True), key=lambda x: x[1]):
        if keep:
            values = [t for t, _ in group]
            runs.append((values[0], values[-1]))
    return runs


def decision_summary(curve: DecisionCurve) -> str:
    """In words: over which thresholds the model's net benefit beats treating everyone and
    treating no one."""
    better = [m > max(a, 0.0) for m, a in zip(curve.model, curve.treat_all, strict=True)]
    runs = _runs(curve.threshold, better)
    first, last = curve.threshold[0], curve.threshold[-1]
    if not runs:
        return (
            f"At no threshold from {first:.2f} to {last:.2f} is the model's net benefit above "
            "both treating everyone and treating no one."
        )
    spans = [f"{a:.2f}" if a == b else f"{a:.2f} to {b:.2f}" for a, b in runs]
    listed = spans[0] if len(spans) == 1 else ", ".join(spans[:-1]) + " and " + spans[-1]
    gains = [m - max(a, 0.0) for m, a in zip(curve.model, curve.treat_all, strict=True)]
    best = int(np.argmax(gains))
    return (
        f"The model's net benefit is above both treating everyone and treating no one at "
        f"thresholds {listed} (of {first:.2f} to {last:.2f}, in steps of "
        f"{curve.threshold[1] - first:.2f}); the largest gain, {gains[best]:.3f} (net "
        f"benefit {curve.model[best]:.3f} against {max(curve.treat_all[best], 0.0):.3f}), "
        f"is at {curve.threshold[best]:.2f}."
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def core_metrics_table(m: CoreMetrics, *, auc: bool = True) -> str:
    """The headline metrics as a two-column Markdown table (``auc=False``: calibration
    only)."""
    rows = [[f"AUC ({LEVEL} DeLong CI)", auc_text(m)]] if auc else []
    rows += [
        ["calibration slope (ideal 1)", metric_text(m.calibration_slope, ".2f")],
        ["calibration intercept (ideal 0)", f"{m.calibration_intercept:+.3f}"],
        [
            "calibration-in-the-large (observed - mean predicted)",
            f"{m.calibration_in_the_large:+.3f}",
        ],
        ["Brier score", f"{m.brier:.4f}"],
        [f"expected calibration error ({CALIBRATION_BINS} equal-width bins)", f"{m.ece:.3f}"],
        ["log-loss", f"{m.log_loss:.4f}"],
    ]
    return _table(["metric", "value"], rows)


def threshold_markdown(report: Report) -> str:
    """The threshold table in Markdown (the model's own threshold marked)."""
    own = report.model.threshold
    rows = [
        [
            f"{r.threshold:.2f}" + (" (model's)" if r.threshold == own else ""),
            f"{r.flagged:.1%}",
            metric_text(r.sensitivity, ".3f"),
            metric_text(r.specificity, ".3f"),
            metric_text(r.ppv, ".3f"),
            metric_text(r.npv, ".3f"),
            f"{r.net_benefit:.3f}",
            f"{r.treat_all:.3f}",
        ]
        for r in report.thresholds
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


def subgroup_markdown(report: Report) -> str:
    """The subgroup table in Markdown."""
    rows = []
    for r in report.subgroups:
        cells = [r.subgrouping, r.group, f"{r.n:,}", f"{r.responders:,}"]
        if r.metrics is not None:
            m = r.metrics
            cells += [
                f"{m.response_rate:.3f}",
                f"{m.mean_predicted:.3f}",
                auc_text(m),
                metric_text(m.calibration_slope, ".2f"),
                f"{m.calibration_intercept:+.3f}",
                f"{m.brier:.4f}",
            ]
        else:
            cells += (
                [f"{r.responders / r.n:.3f}" if r.n else "n/a"]
                + [f"too few (< {report.settings.min_per_outcome} of an outcome)"]
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


def subgroup_extremes(report: Report) -> str:
    """The subgroups with the lowest and highest AUC, in words."""
    scored = [r for r in report.subgroups if r.metrics is not None]
    if len(scored) < 2:
        return ""

    def auc(r: SubgroupRow) -> float:
        assert r.metrics is not None  # a scored row
        return r.metrics.auc

    low, high = min(scored, key=auc), max(scored, key=auc)

    def described(r: SubgroupRow) -> str:
        m = r.metrics
        assert m is not None
        return (
            f"{m.auc:.3f} ({r.subgrouping}: {r.group}; n = {r.n:,}; {LEVEL} CI "
            f"{m.auc_low:.3f} to {m.auc_high:.3f})"
        )

    return f"AUC by subgroup ranges from {described(low)} to {described(high)}."


def _fold_cell(summary: FoldSummary, spec: str) -> str:
    """``mean (SD)`` over the folds, and over how many where a fold had no value (a
    calibration slope of a fold whose outcomes the model separated)."""
    finite = sum(math.isfinite(value) for value in summary.folds)
    cell = f"{metric_text(summary.mean, spec)} ({metric_text(summary.sd, f'.{spec[-2]}f')})"
    folds = len(summary.folds)
    return cell if finite == folds else f"{cell}, {finite} of {folds} folds"


def comparison_markdown(report: Report) -> str:
    """The cross-validated comparison in Markdown: mean (SD) over folds."""
    assert report.comparison is not None  # called for a report with a comparison only
    models = report.comparison.models
    columns = [
        ("auc", "AUC", ".3f"),
        ("auc_gap", "gap to oracle", "+.3f"),
        ("brier", "Brier", ".4f"),
        ("log_loss", "log-loss", ".4f"),
        ("calibration_slope", "calibration slope", ".2f"),
        ("calibration_intercept", "calibration intercept", "+.3f"),
    ]
    present = [c for c in columns if all(c[0] in m for m in models.values())]
    rows = [
        [name] + [_fold_cell(m[key], spec) for key, _, spec in present]
        for name, m in models.items()
    ]
    return _table(["model", *(label for _, label, _ in present)], rows)


def comparison_intro(report: Report) -> str:
    """How the comparison was made, in words."""
    c = report.comparison
    assert c is not None  # called for a report with a comparison only
    settings = ", ".join(f"{name} = {value:g}" for name, value in c.settings.items()) or "none"
    return (
        f"Cross-validated on {c.source}: {c.folds} folds (stratified by outcome), the "
        f"same for all {len(c.models)} models; mean (SD) over the folds. The {c.model} is "
        f"refitted in each fold with the settings chosen on all the rows ({settings}); plain "
        "logistic regression (median imputation with missing indicators, one-hot categories) "
        "and histogram gradient boosting (native missing values, early stopping) are fitted "
        "in each fold as they are."
    )


def held_out_markdown(report: Report) -> str:
    """The comparison on the report's data (:attr:`Report.held_out_comparison`) in Markdown:
    each model's metrics, the AUC with its interval."""
    assert report.held_out_comparison is not None  # called for a report with one only
    models = report.held_out_comparison.models
    rows = [
        [
            name,
            auc_text(m),
            *([metric_text(m.auc_gap, "+.3f")] if report.data.has_true_probability else []),
            f"{m.brier:.4f}",
            f"{m.log_loss:.4f}",
            metric_text(m.calibration_slope, ".2f"),
            metric_text(m.calibration_intercept, "+.3f"),
        ]
        for name, m in models.items()
    ]
    gap = ["gap to oracle"] if report.data.has_true_probability else []
    header = ["model", "AUC", *gap, "Brier", "log-loss", "calibration slope"]
    return _table([*header, "calibration intercept"], rows)


def held_out_intro(report: Report) -> str:
    """How the comparison on the report's data was made, in words."""
    c = report.held_out_comparison
    assert c is not None  # called for a report with one only
    return (
        f"On the {report.data.n:,} patients evaluated here, whom none of the {len(c.models)} "
        f"models saw: the {c.model}, and plain logistic regression (median "
        "imputation with missing indicators, one-hot categories) and histogram gradient "
        f"boosting (native missing values, early stopping), each fitted once on {c.source}, "
        f"with the {c.model}'s fields. AUC with its {LEVEL} DeLong interval."
    )


def comparison_parts(report: Report) -> list[tuple[str, str, str]]:
    """The report's comparisons with the simpler models, each as (title, intro, table): the
    cross-validated one, then the one on the report's data."""
    parts = []
    if report.comparison:
        parts.append(
            ("Cross-validated comparison", comparison_intro(report), comparison_markdown(report))
        )
    if report.held_out_comparison:
        title = "Comparison on patients no model saw"
        parts.append((title, held_out_intro(report), held_out_markdown(report)))
    return parts


def terms_markdown(report: Report) -> str:
    """Mean |contribution| and share not measured per field, largest first."""
    terms = sorted(report.terms, key=lambda t: -mean_abs_contribution(t))
    rows = [
        [
            f"`{t.field}`",
            f"{t.mean_abs_contribution:.3f}",
            f"{t.share_not_measured:.1%}",
            (
                metric_text(t.not_measured, "+.3f")
                if t.share_not_measured or t.learned_missing
                else ""
            ),
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


def figure_link(figures: Mapping[str, str] | None, key: str, caption: str) -> str:
    """A figure's Markdown image on a line of its own, or nothing when it was not drawn."""
    if not figures or key not in figures:
        return ""
    return f"\n![{caption}]({figures[key]})\n"


BOOTSTRAP_LABELS = {
    "auc": ("AUC", ".3f", "+.3f"),
    "calibration_slope": ("calibration slope (ideal 1)", ".2f", "+.2f"),
    "calibration_intercept": ("calibration intercept (ideal 0)", "+.3f", "+.3f"),
    "brier": ("Brier score", ".4f", "+.4f"),
}
"""Bootstrap metric -> its label, and the formats of its value and of its optimism."""


def precision_note(report: Report) -> str:
    """A plain warning when the AUC's interval is wider than
    :data:`~predictor.evaluation._report.WIDE_AUC_INTERVAL`, or when every patient got the
    same probability (the interval has no width); else nothing."""
    m = report.metrics
    if m.auc_low == m.auc_high:
        return (
            "\n> **Every patient got the same probability.** The model found nothing in these "
            "data to tell patients apart (no field it uses was given, or every patient had the "
            "same values), so the AUC (0.5), its interval and the calibration slope say "
            "nothing about how it ranks patients; only calibration-in-the-large and the Brier "
            "score do.\n"
        )
    if not report.auc_is_imprecise():
        return ""
    data, m = report.data, report.metrics
    return (
        f"\n> **Imprecise estimates.** With {data.n:,} patients ({data.responders:,} "
        f"responders) these estimates are imprecise: the AUC's {LEVEL} interval runs from "
        f"{m.auc_low:.2f} to {m.auc_high:.2f}, wider than the {WIDE_AUC_INTERVAL:.2f} a "
        "validation should aim for (Riley et al. 2021; Pavlou et al. 2021). Read every "
        "number below with its interval; more patients narrow them.\n"
    )


def resampled(b: BootstrapSummary) -> tuple[int, str]:
    """The patients the bootstrap drew, and where their rows were drawn together, the words
    for it: ``(300, "320 rows, a patient's rows drawn together")``; ``(n, "")`` where each
    row is a patient."""
    if b.patients is None:
        return b.n, ""
    return b.patients, f"{b.n:,} rows, a patient's rows drawn together"


def bootstrap_markdown(report: Report, figures: Mapping[str, str] | None) -> str:
    """The section on Harrell's bootstrap optimism correction and the prediction instability,
    or nothing when the report has no bootstrap."""
    b = report.bootstrap
    if b is None:
        return ""
    rows = [
        [
            label,
            metric_text(b.metrics[key].apparent, value),
            metric_text(b.metrics[key].optimism, change),
            f"**{metric_text(b.metrics[key].corrected, value)}**",
        ]
        for key, (label, value, change) in BOOTSTRAP_LABELS.items()
        if key in b.metrics
    ]
    used = b.repeats - b.failed
    fewer = [
        f"{label}: {b.metrics[key].models:,} of {used:,}"
        for key, (label, _, _) in BOOTSTRAP_LABELS.items()
        if key in b.metrics and b.metrics[key].models is not None
    ]
    left_out = (
        "\n\nSome bootstrap models had no finite value of a metric on their own resample or on "
        "the original patients, and are left out of that metric's optimism ("
        + "; ".join(fewer)
        + "): a refitted model that separates every responder from every non-responder of its "
        "resample, or gives every patient the same probability, has no finite calibration "
        "slope. Those left out are the most overfitted refits (or the flattest), so the "
        "optimism of what remains is understated and the corrected figure flatters the model; "
        "many such refits mean the cohort is too small for the model: read its corrected "
        "figures as rough at best."
        if fewer
        else ""
    )
    plural = b.failed > 1
    failed = (
        f"{b.failed:,} refit{'s' if plural else ''} failed and {'were' if plural else 'was'} "
        f"skipped, so {used:,} models are averaged"
        if b.failed
        else "none failed"
    )
    redrawn = (
        f"; {b.redrawn:,} resample{'s' if b.redrawn > 1 else ''} with one outcome only "
        f"{'were' if b.redrawn > 1 else 'was'} drawn again"
        if b.redrawn
        else ""
    )
    patients, grouped = resampled(b)
    grouped = f"{grouped}; " if grouped else ""
    s = b.instability
    flips = f"{s.classification_instability:.1%}"
    figure = figure_link(
        figures, "instability", "Prediction instability: bootstrap models against the final model"
    )
    shown = (
        "\nThe figure shows each bootstrap model's probability for a patient against the final "
        "model's (left), and each patient's share of flipped labels (right)."
        if figure
        else ""
    )
    return f"""
## Internal validation: bootstrap optimism correction

The whole fit was repeated on {b.repeats:,} bootstrap resamples of the {patients:,} patients the
model was fitted on ({grouped}{b.responders:,} responders; drawn with replacement, seed {b.seed}):
{failed}{redrawn}. Each refitted model does better on its own resample than on the original
patients; the mean of that difference is the optimism, and the apparent performance (the final
model on the patients it was fitted on) less the optimism is the corrected figure (Harrell,
Regression Modeling Strategies, section 5.3). **Quote the corrected column**: the apparent one
flatters the model.

{_table(["metric", "apparent", "optimism", "corrected"], rows)}{left_out}

### Prediction instability

The same {used:,} bootstrap models' probabilities for the original patients, against the final
model's (Riley and Collins, Biometrical Journal 2023): the mean absolute prediction error
(MAPE) is {s.mape:.3f} (the largest for one patient, {s.max_patient_mape:.3f}), and at the
threshold {s.threshold:g} a patient's label differs from the final model's in {flips} of the
bootstrap models on average (the classification instability index; at most
{s.max_classification_instability:.0%} for one patient). They say how much a patient's
probability and label depend on which patients happened to be in the training data: another
sample of the same size would have moved a probability by about the MAPE, and flipped about
that share of labels.{shown}
{figure}"""


def report_markdown(report: Report, figures: Mapping[str, str] | None) -> str:
    """``report.md``: the report's numbers in words, tables and figures.

    Parameters
    ----------
    report : Report
        As :func:`~predictor.evaluation._report.build_report` returns it.
    figures : mapping or None
        Figure key -> path relative to the report (``None``: figures were not drawn).
    """
    data, m, model = report.data, report.metrics, report.model
    refused = (
        f" ({data.n_refused:,} more row{'s were' if data.n_refused > 1 else ' was'} left "
        "out for breaking the schema)"
        if data.n_refused
        else ""
    )
    truth = ""
    if data.has_true_probability:
        truth = f"""
## Against the simulator's truth

The data carries `true_probability`, the probability the simulator drew each outcome from.

- Oracle AUC (AUC of the true probability): {m.oracle_auc:.3f}; the model's gap to it:
  {m.auc_gap:+.3f}.
- {model.interval_level:.0%} interval coverage of the true probability:
  {m.interval_coverage:.1%} (the share of patients whose interval contains it).
"""
    comparison = (
        "\n### Against simpler models\n"
        + "".join(f"\n{intro}\n\n{table}\n" for _, intro, table in comparison_parts(report))
        if report.comparison or report.held_out_comparison
        else """
### Against simpler models

Not computed for this report: `python train.py` compares the model with plain logistic
regression and gradient boosting (on its fresh simulated cohort, or cross-validated on a
user's training data), and `python -m predictor evaluate --compare` cross-validates all three
on the data evaluated.
"""
    )
    note = "" if figures is not None else f"\n{NO_FIGURES_NOTE}\n"
    bins = report.calibration.bins
    bin_rows = [
        [
            f"{b.low:.3f} to {b.high:.3f}",
            f"{b.n:,}",
            f"{b.mean_predicted:.3f}",
            f"{b.observed:.3f} ({b.observed_low:.3f} to {b.observed_high:.3f})",
        ]
        for b in bins
    ]
    own = report.own_threshold()
    sensitivity, specificity, ppv, npv = (
        metric_text(value, ".3f") for value in (own.sensitivity, own.specificity, own.ppv, own.npv)
    )
    contributions_figure = figure_link(
        figures, "contributions", "Mean absolute contribution per field"
    )
    return f"""# Evaluation report

> **Demonstration only: not for clinical decisions.** The model was trained on
> {model.trained_on}. These figures say how it does on the data below, nothing more.

_Generated from the model and the data; no number is typed by hand. Every number is also in
`{METRICS_NAME}`._
{precision_note(report)}{note}
## Data

- Data: {data.source}; {data.n:,} patients, {data.responders:,} responders (response
  rate {m.response_rate:.3f}){refused}.
- Model: `model.json` sha256 `{model.artifact_sha256}`; "likely responder" at a probability
  of {model.threshold:g} or more.
- Intervals: {LEVEL} DeLong intervals for each AUC (DeLong et al. 1988; the default of R's
  pROC).
{bootstrap_markdown(report, figures)}
## Discrimination

AUC {auc_text(m)}: the chance that a random responder gets a higher probability than a random
non-responder.
{figure_link(figures, "roc", "ROC curve")}
## Calibration

{core_metrics_table(m, auc=False)}

The slope and intercept are those of logistic recalibration: the slope of `logit P(response) = a
+ b logit(p)`, and the intercept with the slope held at 1. The calibration plot shows the
observed response rate in each of {len(bins)} equal-sized groups by predicted probability (with
its {LEVEL} Wilson interval) and a smoothed curve (a logistic regression on a spline of
logit(p)), above the distribution of the predictions.
{figure_link(figures, "calibration", "Calibration plot")}
{_table(["predicted probability", "n", "mean predicted", f"observed ({LEVEL} CI)"], bin_rows)}

## Clinical usefulness

Net benefit weighs true positives (responders flagged) against false positives (non-responders
flagged) at the odds of a threshold probability: `TP/n - FP/n * t / (1 - t)`. "Treat all"
flags everyone, "treat none" no one (net benefit 0). {decision_summary(report.decision_curve)}
{figure_link(figures, "decision_curve", "Decision curve")}
{threshold_markdown(report)}

At the model's own threshold ({model.threshold:g}) it flags {own.flagged:.1%} of patients,
with sensitivity {sensitivity}, specificity {specificity}, PPV
{ppv} and NPV {npv}.

## Subgroups

{subgroup_extremes(report)}
{figure_link(figures, "subgroups", "AUC by subgroup")}
{subgroup_markdown(report)}

## The model
{comparison}
### What it learned

Each field's term (its contribution to the log-odds, centred on the training average) against
the field's value, over the training range, with the training data's distribution shaded
underneath; "not measured" is the contribution of a missing value.
{figure_link(figures, "terms", "Learned term shapes")}{contributions_figure}
{terms_markdown(report)}
{truth}"""
