"""``models/MODEL_CARD.md``: generated from the model, its manifest, the schema and the
evaluation report (:class:`~predictor.evaluation._report.Report`, whose key numbers it repeats);
no number in it is typed by hand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data_schemas import FIELDS, FIELDS_BY_NAME, Role
from predictor.evaluation._markdown import (
    NO_FIGURES_NOTE,
    auc_text,
    comparison_intro,
    comparison_markdown,
    core_metrics_table,
    decision_summary,
    figure_link,
    subgroup_extremes,
    subgroup_markdown,
    threshold_markdown,
)
from predictor.evaluation._report import METRICS_NAME, REPORT_NAME, Report
from predictor.model import CV_FOLDS, INTERVAL_LEVEL, MIN_MISSING_TO_LEARN, Model

SAFETY_FIELDS = ", ".join(f.name.replace("_", " ") for f in FIELDS if f.role is Role.SAFETY)
"""The safety-screen fields in words, for the card."""

METRIC_COLUMNS = (
    ("auc", "AUC", "{:.3f}"),
    ("oracle_auc", "oracle AUC", "{:.3f}"),
    ("auc_gap", "gap to oracle", "{:+.3f}"),
    ("calibration_slope", "calibration slope", "{:.2f}"),
    ("calibration_in_the_large", "calibration-in-the-large", "{:+.3f}"),
    ("brier", "Brier", "{:.4f}"),
    ("log_loss", "log-loss", "{:.4f}"),
    ("interval_coverage", f"{INTERVAL_LEVEL:.0%} interval coverage", "{:.1%}"),
)


def performance_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    """The metrics of a manifest as a Markdown table: one row per (data, model)."""
    present = [
        column
        for column in METRIC_COLUMNS
        if any(column[0] in m for sets in metrics.values() for m in sets.values())
    ]
    rows = [
        "| data | model | n | " + " | ".join(label for _, label, _ in present) + " |",
        "|---|---|---|" + "---|" * len(present),
    ]
    for data, models in metrics.items():
        for name, m in models.items():
            cells = [fmt.format(m[key]) if key in m else "" for key, _, fmt in present]
            rows.append(f"| {data} | {name} | {m['n']:,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _predictors_table(model: Model) -> str:
    rows = ["| field | unit / levels | term | when not measured |", "|---|---|---|---|"]
    for term in model.features.terms:
        field = FIELDS_BY_NAME[term.field]
        unit = ", ".join(term.levels) if term.levels else (field.unit or "(ratio)")
        if term.unused:
            shape, missing = f"none: not used ({term.unused})", "(not used)"
        else:
            shape = (
                f"cubic spline, {term.n_basis} basis functions"
                + (" on log scale" if FIELDS_BY_NAME[term.field].log_floor is not None else "")
                if term.is_spline
                else "one coefficient per level"
            )
            missing = (
                "its own learned term"
                if term.learned_missing
                else "training average (contribution 0)"
            )
        rows.append(f"| `{term.field}` | {unit} | {shape} | {missing} |")
    return "\n".join(rows)


def card_sections(report: Report, figures: Mapping[str, str] | None) -> dict[str, str]:
    """The report's key numbers as Markdown for the model card's sections.

    Returns
    -------
    dict
        ``"predictors"``, ``"performance"``, ``"calibration"``, ``"limitations"``: text to add
        to those sections (figure links are relative to the model directory).
    """
    m, data = report.metrics, report.data
    own = report.own_threshold()
    comparison = (
        f"\n### Cross-validated comparison\n\n{comparison_intro(report)}\n\n"
        f"{comparison_markdown(report)}\n"
        if report.comparison
        else ""
    )
    figure_note = "" if figures is not None else f"\n{NO_FIGURES_NOTE}\n"
    performance = f"""
### In the evaluation report, with uncertainty

From the full evaluation report ([{REPORT_NAME}]({REPORT_NAME}), numbers in
[{METRICS_NAME}]({METRICS_NAME})), on {data.source.lower()} ({data.n:,} patients):
{figure_note}
- Discrimination: AUC {auc_text(m)}.
- At the model's threshold ({report.model.threshold:g}): flags {own.flagged:.1%},
  sensitivity {own.sensitivity:.3f}, specificity {own.specificity:.3f}, PPV
  {own.ppv:.3f}, NPV {own.npv:.3f}.
- Clinical usefulness: {decision_summary(report.decision_curve)}
{figure_link(figures, "roc", "ROC curve")}{figure_link(figures, "decision_curve", "Decision curve")}
{threshold_markdown(report)}
{comparison}
### Subgroups

{subgroup_extremes(report)}

{subgroup_markdown(report)}
"""
    calibration = f"""
On {data.source.lower()} ({data.n:,} patients), with the calibration intercept and the
expected calibration error:

{core_metrics_table(m, auc=False)}
{figure_link(figures, "calibration", "Calibration plot")}"""
    predictors = (
        "The learned shape of each term, with the training distribution, is drawn in "
        f"[{figures['terms']}]({figures['terms']}); "
        f"[{REPORT_NAME}]({REPORT_NAME}) lists each field's mean absolute contribution."
        if figures and "terms" in figures
        else f"[{REPORT_NAME}]({REPORT_NAME}) lists each field's mean absolute contribution."
    )
    extremes = subgroup_extremes(report)
    limitations = (
        f"- Performance differs between subgroups of the evaluation data. {extremes} Small "
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


def model_card(
    model: Model,
    manifest: dict[str, Any],
    *,
    report: Report | None = None,
    figures: Mapping[str, str] | None = None,
) -> str:
    """The model card as Markdown.

    Parameters
    ----------
    model : Model
    manifest : dict
        The model's manifest (as ``read_manifest`` returns it), with its metrics.
    report : Report, optional
        The evaluation report (:func:`build_report`): its key
        numbers are added to the predictors, performance, calibration and limitations.
    figures : mapping, optional
        The report's figures, key -> path relative to the model directory (None: not drawn).
    """
    extra = (
        card_sections(report, figures)
        if report is not None
        else dict.fromkeys(("predictors", "performance", "calibration", "limitations"), "")
    )
    data = manifest["training_data"]
    fresh = manifest.get("evaluation_cohort")
    summary = model.summary()
    additive = {name: sets[summary.name] for name, sets in manifest["metrics"].items()}
    calibration = "\n".join(
        f"- {name}: slope {m['calibration_slope']:.2f}, calibration-in-the-large "
        f"{m['calibration_in_the_large']:+.3f} (observed minus mean predicted response rate), "
        f"Brier {m['brier']:.4f}."
        for name, m in additive.items()
    )
    refused = (
        f"; {data['n_refused']:,} further rows were left out for schema problems"
        if data.get("n_refused")
        else ""
    )
    evaluated_on = (
        f"{CV_FOLDS}-fold cross-validation on the training cohort (internal validation: each "
        "patient predicted by a model fitted without them, the smoothing parameters chosen once "
        "on all patients)"
        + (
            f", and a fresh simulated cohort of {fresh['n']:,} patients (seed {fresh['seed']}) "
            "that no part of training saw (external validation)"
            if fresh
            else ""
        )
    )
    return f"""# Model card: ketamine treatment-response predictor

> **Demonstration only: not for clinical decisions.** This model was trained on
> {data["source"]}. It shows how the system works; it has not been validated on real
> patients and must not guide anyone's treatment.

_Generated by `python train.py` from the model and its manifest; do not edit by hand._

## Intended use and users

Data teams of ketamine clinics and research groups, to see how a pre-treatment prediction of
response to ketamine for treatment-resistant depression (IV racemic ketamine or intranasal
esketamine) could be made, explained and evaluated, and to retrain the same model on their own
cohort. It is not meant for patients, nor for deciding anyone's care.

## Not for clinical decisions

The shipped model learned from simulated data whose effects were set from published effect
sizes, several of them small or uncertain. Its probabilities say what the simulation implies,
not what will happen to a patient.

## Data

- Source: {data["source"]}; {data["n"]:,} patients
  (response rate {data["response_rate"]:.3f}){refused}. The model was fitted on all of them;
  its internal validation is {CV_FOLDS}-fold cross-validation (seed {data["seed"]}).
- Training data sha256: `{data["sha256"]}`.
- Outcome (`responded`): at least 50% reduction in MADRS from baseline at the end of the
  induction course (six IV infusions over 2-3 weeks, or eight intranasal sessions over 4 weeks).

## Predictors

{_predictors_table(model)}

{extra["predictors"]}

Safety-screen fields ({SAFETY_FIELDS}) are not model inputs; when set they add a warning.

## Missing data

A missing value is never imputed silently and never rejected. A field that at least
{MIN_MISSING_TO_LEARN} training patients lacked has its own learned "not measured" term, since
whether a test was done can carry information (about the kind of patient or clinic: it is an
association, not an effect of testing); a field that fewer training patients lacked takes the
training average of its term, so it contributes 0, and the prediction says so in its warnings.
A number field that no training patient had, or that had a single value, is not used at all
(see the table above).

## Model

{summary.details}
{summary.coefficients} coefficients in all.

- Explanations are exact: each field's contribution is its term minus the term's training mean,
  and baseline + sum of contributions = logit of the probability.
- Label: "likely responder" when the probability is at least {model.threshold:g}.

## Performance

Measured by {evaluated_on}, for the {summary.name} and, fitted on the same rows, plain
logistic regression and gradient boosting. The oracle AUC is that of the simulator's true
probability: the best any model of these fields can do.

{performance_table(manifest["metrics"])}

Interval coverage (of the simulator's true probability) is one draw per fitted model: all test
patients share the same fitted coefficients, so it varies with the training sample more than
the other figures do. `python bench/model_quality.py` fits the model on 20 training
cohorts and prints the spread.
{extra["performance"]}
## Calibration

{calibration}
{extra["calibration"]}

## Limitations and known biases

{extra["limitations"]}
- Synthetic data: the effects are assumptions taken from small studies. The evidence for CRP
  is weak and mixed, for the circadian rhythm weak, and the size of the substance-use effect is
  an assumption (no study gives one). Real cohorts will differ.
- Real clinic data will bring biases the simulation does not: who gets polysomnography or
  actigraphy, how response is measured, and who is referred for ketamine at all.
- Baseline-only prediction of antidepressant response is modest at best (AUC about 0.65-0.75 in
  the literature); a probability near 0.5 says little about one patient.
- Beyond the range of its training data, each term is held at its edge value (and a warning
  says so).

## How to retrain on real data

```
python train.py --data my_cohort.csv --out my_model
```

The CSV needs a 0/1 `responded` column and any of the schema's fields (`python -m predictor
schema`). Rows that break the schema are left out and counted; the model is fitted on all
usable rows and validated by {CV_FOLDS}-fold cross-validation, and its files (model.json,
manifest.json, MODEL_CARD.md, and the evaluation report: report.md, metrics.json, figures/) are
written to `--out`. Score with
`predict(..., model="my_model")`; evaluate on other data with `python -m predictor evaluate
--data other.csv --model my_model --out other_report`.

Package {manifest["package_version"]}, schema {manifest["schema_version"]}, Python
{manifest["python"]}; {", ".join(f"{k} {v}" for k, v in manifest["libraries"].items())}.
"""
