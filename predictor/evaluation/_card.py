"""``models/MODEL_CARD.md``: generated from the model, its manifest, the schema and the
evaluation report (:class:`~predictor.evaluation._report.Report`, whose key numbers it repeats);
no number in it is typed by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from data_schemas import FIELDS, FIELDS_BY_NAME, Role
from predictor.evaluation._markdown import (
    NO_FIGURES_NOTE,
    auc_text,
    comparison_parts,
    core_metrics_table,
    decision_summary,
    figure_link,
    resampled,
    subgroup_extremes,
    subgroup_markdown,
    threshold_markdown,
)
from predictor.evaluation._report import METRICS_NAME, REPORT_NAME, Report, metric_text
from predictor.model import (
    CV_FOLDS,
    INTERVAL_LEVEL,
    MIN_MISSING_TO_LEARN,
    MODEL_FIELDS,
    Model,
)

SAFETY_FIELDS = ", ".join(f.name.replace("_", " ") for f in FIELDS if f.role is Role.SAFETY)
"""The safety-screen fields in words, for the card."""

METRIC_COLUMNS = (
    ("auc", "AUC", ".3f"),
    ("oracle_auc", "oracle AUC", ".3f"),
    ("auc_gap", "gap to oracle", "+.3f"),
    ("calibration_slope", "calibration slope", ".2f"),
    ("calibration_in_the_large", "calibration-in-the-large", "+.3f"),
    ("brier", "Brier", ".4f"),
    ("log_loss", "log-loss", ".4f"),
    ("interval_coverage", f"{INTERVAL_LEVEL:.0%} interval coverage", ".1%"),
)


def performance_table(metrics: dict[str, dict[str, dict[str, float | None]]]) -> str:
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
            cells = [metric_text(m[key], spec) if key in m else "" for key, _, spec in present]
            rows.append(f"| {data} | {name} | {m['n']:,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _missing_contributions(model: Model) -> dict[str, float]:
    """The contribution of a missing value of each term without a "not measured" term of its
    own, by field, where it is not 0: it is 0 for a model fitted from scratch (the missing row
    is its training average), not for one whose terms were refitted on other patients (a
    revision, or a model built on one: the row is then the first cohort's average)."""
    out = {}
    for j, term in enumerate(model.features.terms):
        if term.unused or term.learned_missing:
            continue
        contribution = float(model.term_contribution(j, term.missing_row[None, :])[0])
        if abs(contribution) >= 1e-9:
            out[term.field] = contribution
    return out


def _average_text(contribution: float | None) -> str:
    """The Predictors table's "when not measured" for a term without a "not measured" term of
    its own, whose missing value contributes ``contribution`` (None: 0)."""
    if contribution is None:
        return "training average (contribution 0)"
    return f"the first training cohort's average (contribution {contribution:+.3f})"


def _predictors_table(model: Model) -> str:
    rows = ["| field | unit / levels | term | when not measured |", "|---|---|---|---|"]
    nonzero = _missing_contributions(model)
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
                else _average_text(nonzero.get(term.field))
            )
        rows.append(f"| `{term.field}` | {unit} | {shape} | {missing} |")
    return "\n".join(rows)


def is_simulated(manifest: Mapping[str, Any]) -> bool:
    """Whether the model was trained on a simulated cohort: the manifest's
    ``training_data.simulated``; a manifest written before it had one says so by its external
    validation on a fresh simulated cohort."""
    data = manifest["training_data"]
    if "simulated" in data:
        return bool(data["simulated"])
    external = (manifest.get("validation") or {}).get("external") or ""
    return "fresh simulated cohort" in external


def _missing_shares(manifest: Mapping[str, Any], model: Model) -> dict[str, float] | None:
    """Each model field's share of training rows without a value: the manifest's
    ``training_data.missing``, else (an older manifest) from its training distribution."""
    data = manifest["training_data"]
    if data.get("missing") is not None:
        return dict(data["missing"])
    distribution = manifest.get("training_distribution") or {}
    if not data.get("n") or not all(field in distribution for field in model.fields):
        return None
    return {field: distribution[field]["n_missing"] / data["n"] for field in model.fields}


def _missing_table(shares: Mapping[str, float]) -> str:
    rows = ["| field | training patients without a value |", "|---|---|"]
    rows += [f"| `{field}` | {share:.1%} |" for field, share in shares.items()]
    return "\n".join(rows)


def _validation_text(manifest: Mapping[str, Any]) -> str:
    """How the model was validated, from the manifest's ``validation``."""
    validation = manifest.get("validation") or {}
    if manifest.get("update"):  # the update's own sentence: what its report was made from
        return str(validation["internal"])
    internal = validation.get(
        "internal", f"{CV_FOLDS}-fold cross-validation (seed {manifest['training_data']['seed']})"
    )
    external = validation.get("external")
    return f"internal, by {internal}: each patient predicted by a model fitted without them" + (
        f"; external, on {external} that no part of training saw"
        if external
        else "; no external validation (no other patients were evaluated)"
    )


FLAT_SD = 0.01
"""A model whose probabilities for its own training patients have a smaller standard deviation
than this gives every patient about the same answer (a flat model): training says so."""


def flat_model_text(n: int, spread: float, mean: float) -> str:
    """Why a flat model is flat and what to do instead, for ``train``'s warning and the card:
    ``n`` training patients, the SD of their predicted probabilities and its mean."""
    return (
        f"the data support no predictor: the probabilities this model gives its {n:,} "
        f"training patients have a standard deviation of {spread:.4f}, so it gives every "
        f"patient about the same probability ({mean:.0%}); the fit found no effect it could "
        "tell from noise in a cohort this size. Updating the shipped model with the cohort "
        "(`python -m predictor "
        "update --data FILE`) uses it without learning every effect from it alone"
    )


def repeated_patients_text(rows: int, labels: Sequence[Any] = (), *, bootstrap: bool = True) -> str:
    """What ``rows`` training rows that share a ``patient_id`` with another row mean, for
    ``train``'s and ``update``'s warning (with the first of their ``labels``, file lines) and
    the card; ``bootstrap``: whether the command runs one (``update`` does not)."""
    where = (
        f" (lines {', '.join(map(str, list(labels)[:5]))}{', ...' if len(labels) > 5 else ''})"
        if len(labels)
        else ""
    )
    return (
        f"{rows:,} training rows share their patient_id with another row{where}: "
        "cross-validation and the choice of the smoothing structure keep each patient's rows "
        "in one fold"
        + (", and the bootstrap draws each patient with all of their rows" if bootstrap else "")
        + ", but the fit counts each row as a patient (one with two rows weighs twice); give "
        "each patient once (their first treatment course, say)"
    )


def _repeated_limitation(manifest: Mapping[str, Any]) -> str:
    """The card's limitation for a cohort with repeated patients (nothing for another)."""
    rows = manifest["training_data"].get("repeated_patient_rows")
    if not rows:
        return ""
    text = repeated_patients_text(rows, bootstrap=bool(manifest.get("bootstrap")))
    return f"- **Repeated patients**: {text}.\n"


def _flat_limitation(manifest: Mapping[str, Any]) -> str:
    """The card's limitation for a flat model (nothing for another; a manifest of before the
    check has no ``prediction_sd``)."""
    model = manifest.get("model", {})
    spread = model.get("prediction_sd")
    if spread is None or spread >= FLAT_SD:
        return ""
    text = flat_model_text(manifest["training_data"]["n"], spread, model["prediction_mean"])
    return f"- **A flat model**: {text}.\n"


def _fields_paragraph(model: Model) -> str:
    """Which predictor fields the model leaves out (chosen when it was trained), as against
    those the fit shrank to zero; nothing when it uses every one."""
    left_out = [name for name in MODEL_FIELDS if name not in model.fields]
    if not left_out:
        return ""
    shrunk = model.shrunk_fields if hasattr(model, "shrunk_fields") else []
    kept = (
        "kept as the revised model's by the revision (no support in the data for a change)"
        if getattr(model, "toward_base", False)
        else "shrunk to zero by the fit (no support in the data)"
    )
    return (
        f"\nThe model uses {len(model.fields)} of the schema's {len(MODEL_FIELDS)} predictor "
        f"fields. Left out when it was trained (`--fields` / `--exclude`), so not inputs of "
        f"this model: {', '.join(f'`{name}`' for name in left_out)}; a value given for them "
        "is ignored."
        + (
            f" In the model but {kept}: {', '.join(f'`{name}`' for name in shrunk)}."
            if shrunk
            else ""
        )
        + "\n"
    )


SIMULATED_TEXTS = (
    """\
> **Demonstration only: not for clinical decisions.** This model was trained on
> {source}. It shows how the system works; it has not been validated on real
> patients and must not guide anyone's treatment.""",
    """\
The shipped model learned from simulated data whose effects were set from published effect
sizes, several of them small or uncertain. Its probabilities say what the simulation implies,
not what will happen to a patient.""",
    """\
- Synthetic data: the effects are assumptions taken from small studies. The evidence for CRP
  is weak and mixed, for the circadian rhythm weak, and the size of the substance-use effect is
  an assumption (no study gives one). Real cohorts will differ.
- Real clinic data will bring biases the simulation does not: who gets polysomnography or
  actigraphy, how response is measured, and who is referred for ketamine at all.""",
)
"""The card's banner, caution and cohort limitations for a model of a simulated cohort."""
COHORT_TEXTS = (
    """\
> **Not for clinical decisions.** This model was trained on {source}, and validated
> only on those patients (cross-validation); it has not been validated on other patients and
> must not guide anyone's treatment.""",
    """\
This model learned from the {n:,} patients of its training data: its probabilities describe
that cohort (who was referred, which tests were done, how response was measured), and its
validation says how it does on patients like them, each predicted by a fit that did not see
them. How it does on other patients is unknown until it is evaluated on them (`python -m
predictor evaluate`).""",
    """\
- Internal validation only: cross-validation on the patients the model was fitted on (the
  smoothing parameters chosen once on all of them, a small optimism). Another clinic's
  patients, or this clinic's next ones, may differ: evaluate the model on them
  (`python -m predictor evaluate --data new.csv --model <this folder> --out report`).
- The cohort's own biases are in the model: who gets polysomnography or actigraphy, how
  response is measured, and who is referred for ketamine at all.""",
)
"""The same for a model of a user's own cohort: nothing about a simulation."""


def _cohort_texts(data: Mapping[str, Any], *, simulated: bool) -> tuple[str, str, str]:
    """The banner, the caution and the limitations that depend on the training cohort."""
    texts = SIMULATED_TEXTS if simulated else COHORT_TEXTS
    banner, caution, limitations = (
        text.format(source=data["source"], n=data["n"]) for text in texts
    )
    return banner, caution, limitations


def update_and_sample_size_sections(manifest: Mapping[str, Any]) -> str:
    """The card's sections on how the model was updated (``manifest["update"]``, written by
    ``python -m predictor update``) and on its sample size (``manifest["sample_size"]``,
    Riley et al.'s criteria, written by training), placed after the data section; ``""`` when
    the manifest has neither."""
    return _update_section(manifest.get("update")) + _sample_size_section(
        manifest.get("sample_size"), manifest["training_data"]["n"]
    )


UPDATE_FITTED = {
    "base model as it is": "Nothing was fitted on them: the base model is kept as it is.",
    "recalibration in the large": "One number (the intercept) was fitted on all {n:,} of them "
    "and shrunk toward the base model's; the terms are the base model's.",
    "logistic recalibration": "Two numbers (the intercept and a slope that scales every "
    "term) were fitted on all {n:,} of them and shrunk toward the base model's; the terms are "
    "the base model's.",
    "revision": "Every term was refitted on all {n:,} of them, pulled toward the "
    "recalibrated base model's.",
    "refit from scratch": "The model was fitted from scratch on all {n:,} of them; none was "
    "held back.",
}
"""What each update fitted on the site's patients, for the card's data section."""


def _update_texts(update: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[str, str, str]:
    """The banner, the caution and the "fitted" line of an updated model's card: what was
    learned where."""
    chosen, base = update["chosen"], update["base"]
    base_data = update.get("base_training_data") or "its own training cohort"
    fitted = UPDATE_FITTED[chosen].format(n=data["n"])
    if chosen == "refit from scratch":
        learned = (
            f"This model was fitted from scratch on the {data['n']:,} patients of "
            f"{data['source']}: `update` chose a refit over updating {base}."
        )
    else:
        learned = (
            f"This model's terms were learned by {base} from {base_data}; on the "
            f"{data['n']:,} patients of {data['source']}, `update` chose the {chosen}."
        )
    banner = (
        f"> **Not for clinical decisions.** {learned} It has been validated on those patients "
        "only; it must not guide anyone's treatment."
    )
    caution = (
        f"{learned} Its probabilities describe what it learned (who was referred, which tests "
        "were done, how response was measured, in the cohorts it learned from), and its "
        "validation says "
        "how it does on patients like this site's. How it does on other patients is unknown "
        "until it is evaluated on them (`python -m predictor evaluate`)."
    )
    return banner, caution, fitted


def _chosen_name(name: str, chosen: str) -> str:
    return f"**{name}** (chosen)" if name == chosen else name


def _update_section(update: Mapping[str, Any] | None) -> str:
    if not update:
        return ""
    rows = [
        "| candidate | parameters fitted | log-likelihood | CV log-loss | CV Brier |",
        "|---|---|---|---|---|",
        *(
            f"| {c['name']} | could not be fitted: {c['failed']} | | | |"
            if "failed" in c
            else f"| {_chosen_name(c['name'], update['chosen'])}"
            f" | {c['parameters']:g} | {c['log_likelihood']:.2f} | {c['cv_log_loss']:.4f} | "
            f"{c['cv_brier']:.4f} |"
            for c in update["candidates"]
        ),
    ]
    tests = "\n".join(
        f"- {t['larger']} against {t['smaller']}: likelihood ratio {t['statistic']:.2f} on "
        f"{t['df']} df, p = {t['p_value']:.3g}"
        for t in update["closed_test"]
    )
    return f"""
## How the model was updated

The base model is {update["base"]} (`model.json` sha256 `{update.get("base_sha256")}`); on the
patients above, `update` chose: {update["chosen"]}. Five
candidates were fitted on them: the base as it is, recalibration in the large (its intercept
moved), logistic recalibration (its log-odds scaled and moved), revision (every term refitted,
pulled toward the recalibrated base by penalties chosen by marginal likelihood) and a refit
from scratch. The procedure: {update["procedure"]}.

Closed test:

{tests}

{chr(10).join(rows)}

Why: {update["why"]}. Parameters fitted counts the numbers fitted on these patients (for a
revision or refit, effective degrees of freedom); the log-likelihood is on these patients as
fitted; CV figures are 5-fold cross-validated (each patient predicted by the candidate fitted
without them). The model's intervals include the uncertainty of what was fitted here (and, for
a recalibration, the base model's own), not what its form cannot express: where the base's
terms do not fit this site and are kept (the base as it is, or recalibrated), an interval can
miss a patient's true probability far more often than 1 time in 10 (on a simulated second
site, most of the time at a few hundred patients: `bench/update_quality.py`); a revision or
refit relearns the terms when there are enough patients. Nor do they cover a further change
of population.
"""


def _sample_size_section(sample: Mapping[str, Any] | None, n: int) -> str:
    if not sample:
        return ""
    lines = "\n".join(
        f"- With {entry['parameters']:g} {entry['what']}: {entry['n']:,} patients "
        f"({entry['events']:,.0f} responders): shrinkage {entry['n_shrinkage']:,}, optimism "
        f"{entry['n_optimism']:,}, outcome rate {entry['n_outcome_rate']:,}."
        for entry in sample["criteria"]
    )
    return f"""
## Sample size

Riley et al. (2020, BMJ 368:m441) give the patients a binary-outcome model needs for expected
shrinkage of at least 0.9, optimism in Nagelkerke's R-squared of at most 0.05 and the response
rate within 0.05, from the response rate ({sample["outcome_rate"]:.3f}), the model's number of
parameters and an anticipated R-squared (Nagelkerke {sample["r2_nagelkerke"]:.3f}:
{sample["r2_source"]}):

{lines}

This cohort has {n:,}: {sample["verdict"]}
"""


def _bootstrap_line(report: Report) -> str:
    """A bullet with the bootstrap's optimism-corrected figures, or nothing."""
    b = report.bootstrap
    if b is None:
        return ""
    c = {name: entry.corrected for name, entry in b.metrics.items()}
    patients, rows = resampled(b)
    rows = f"; {rows}" if rows else ""
    return (
        f"\n- Optimism-corrected by Harrell's bootstrap ({b.repeats} resamples of the "
        f"{patients:,} training patients{rows}; the figures to quote): AUC "
        f"{metric_text(c['auc'], '.3f')}, calibration slope "
        f"{metric_text(c['calibration_slope'], '.2f')}, calibration intercept "
        f"{metric_text(c['calibration_intercept'], '+.3f')}, Brier "
        f"{metric_text(c['brier'], '.4f')}"
        + "".join(
            f"; the {name.replace('_', ' ')} from {entry.models:,} of the "
            f"{b.repeats - b.failed:,} refits (the others had none: see the report)"
            for name, entry in b.metrics.items()
            if entry.models is not None
        )
        + "."
    )


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
    comparison = "".join(
        f"\n### {title}\n\n{intro}\n\n{table}\n" for title, intro, table in comparison_parts(report)
    )
    figure_note = "" if figures is not None else f"\n{NO_FIGURES_NOTE}\n"
    performance = f"""
### In the evaluation report, with uncertainty

From the full evaluation report ([{REPORT_NAME}]({REPORT_NAME}), numbers in
[{METRICS_NAME}]({METRICS_NAME})), on {data.source.lower()} ({data.n:,} patients):
{figure_note}
- Discrimination: AUC {auc_text(m)}.{_bootstrap_line(report)}
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
    simulated = is_simulated(manifest)
    fresh = manifest.get("evaluation_cohort")
    # Whether the comparison models were cross-validated too (train leaves them to the fresh
    # cohort when there is one; update's manifest has no comparison models).
    cross_validated_comparisons = len(manifest["metrics"].get("cross-validated", {})) > 1
    summary = model.summary()
    update = manifest.get("update")
    own = update["chosen"] if update else summary.name  # the model's row in the metrics
    additive = {name: sets[own] for name, sets in manifest["metrics"].items() if own in sets}
    calibration = "\n".join(
        f"- {name}: slope {metric_text(m['calibration_slope'], '.2f')}, "
        f"calibration-in-the-large {metric_text(m['calibration_in_the_large'], '+.3f')} "
        f"(observed minus mean predicted response rate), Brier {metric_text(m['brier'], '.4f')}."
        for name, m in additive.items()
    )
    refused = (
        f"; {data['n_refused']:,} further record{'s' if data['n_refused'] != 1 else ''} of the "
        f"file {'were' if data['n_refused'] != 1 else 'was'} left out for schema or CSV problems"
        if data.get("n_refused")
        else ""
    )
    shares = _missing_shares(manifest, model)
    missing = (
        "\nShare of the training patients without a value, for each model field:\n\n"
        + _missing_table(shares)
        + "\n"
        if shares is not None
        else ""
    )
    has = {key for sets in manifest["metrics"].values() for m in sets.values() for key in m}
    oracle = (
        " The oracle AUC is that of the simulator's true\nprobability: the best any model of "
        "these fields can do."
        if "oracle_auc" in has
        else ""
    )
    coverage = (
        """
Interval coverage (of the simulator's true probability) is one draw per fitted model: all test
patients share the same fitted coefficients, so it varies with the training sample more than
the other figures do. `python bench/model_quality.py` fits the model on 20 training
cohorts and prints the spread.
"""
        if "interval_coverage" in has
        else ""
    )
    banner, caution, cohort_limitations = _cohort_texts(data, simulated=simulated)
    fitted = f"The model was fitted on all {data['n']:,} of them; none was held back."
    if update:
        banner, caution, fitted = _update_texts(update, data)
    made_by = "python -m predictor update" if update else "python train.py"
    # An update other than a refit keeps the base model's terms, which were chosen (their
    # "not measured" terms included) on the base's training cohort, not on these patients.
    kept = update["chosen"] != "refit from scratch" if update else False
    at_least = (
        f"{MIN_MISSING_TO_LEARN} of the first cohort's" if kept else f"{MIN_MISSING_TO_LEARN}"
    )
    recentred = bool(_missing_contributions(model))
    so_zero = "" if recentred else ", so it contributes 0"
    kept_terms = (
        " These rules were applied to the cohort the terms were first fitted on (the\n"
        "shipped model's, or the one `train` was given), and the update kept the terms, so the "
        "table of\nmissing values above does not decide them."
        + (
            " A revision refitted the terms on other patients than those, so a missing\n"
            "value takes the first cohort's average, whose contribution here is not 0 (see the "
            "table above)."
            if recentred
            else ""
        )
        if kept
        else ""
    )
    slope = summary.settings.get("recalibration_slope")
    scaled = f" (times the recalibration slope, {slope:.3f})" if slope is not None else ""
    evaluated_on = (
        f"{CV_FOLDS}-fold cross-validation of every candidate of the update on these patients "
        "(each patient predicted by the candidate fitted without them), for the "
        f"{update['chosen']} and the other candidates"
        if update
        else f"{CV_FOLDS}-fold cross-validation on the training cohort (internal validation: each "
        "patient predicted by a model fitted without them, the smoothing parameters chosen once "
        "on all patients)"
        + (
            f", and a fresh simulated cohort of {fresh['n']:,} patients (seed {fresh['seed']}) "
            "that no part of training saw (external validation)"
            if fresh and cross_validated_comparisons
            else ""
        )
        + f", for the {summary.name} and, fitted on the same rows and fields, plain logistic "
        "regression and gradient boosting"
        if cross_validated_comparisons or not fresh
        else f"{CV_FOLDS}-fold cross-validation on the training cohort for the {summary.name} "
        "(internal validation: each patient predicted by a model fitted without them, the "
        "smoothing parameters chosen once on all patients), and a fresh simulated cohort of "
        f"{fresh['n']:,} patients (seed {fresh['seed']}) that no part of training saw "
        f"(external validation) for the {summary.name} and, fitted once on all the training "
        "patients and the same fields, plain logistic regression and gradient boosting"
    )
    return f"""# Model card: ketamine treatment-response predictor

{banner}

_Generated by `{made_by}` from the model and its manifest; do not edit by hand._

## Intended use and users

Data teams of ketamine clinics and research groups, to see how a pre-treatment prediction of
response to ketamine for treatment-resistant depression (IV racemic ketamine or intranasal
esketamine) could be made, explained and evaluated, and to retrain the same model on their own
cohort. It is not meant for patients, nor for deciding anyone's care.

## Not for clinical decisions

{caution}

## Data

- Source: {data["source"]}; {data["n"]:,} patients
  (response rate {data["response_rate"]:.3f}){refused}.
- {fitted}
- Validation: {_validation_text(manifest)}.
- Training data sha256: `{data["sha256"]}`.
- Outcome (`responded`): at least 50% reduction in MADRS from baseline at the end of the
  induction course (six IV infusions over 2-3 weeks, or eight intranasal sessions over 4 weeks).
{missing}{update_and_sample_size_sections(manifest)}
## Predictors

{_predictors_table(model)}
{_fields_paragraph(model)}
{extra["predictors"]}

Safety-screen fields ({SAFETY_FIELDS}) are not model inputs; when set they add a warning.

## Missing data

A missing value is never imputed silently and never rejected. A field that at least
{at_least} training patients lacked has its own learned "not measured" term, since
whether a test was done can carry information (about the kind of patient or clinic: it is an
association, not an effect of testing); a field that fewer training patients lacked takes the
training average of its term{so_zero}, and the prediction says so in its warnings.
A number field that no training patient had, or that had a single value, is not used at all
(see the table above).{kept_terms}

## Model

{summary.details}
{summary.coefficients} coefficients in all.

- Explanations are exact: each field's contribution is its term minus the term's training
  mean{scaled}, and baseline + sum of contributions = logit of the probability.
- Label: "likely responder" when the probability is at least {model.threshold:g}.

## Performance

Measured by {evaluated_on}.{oracle}

{performance_table(manifest["metrics"])}
{coverage}{extra["performance"]}
## Calibration

{calibration}
{extra["calibration"]}

## Limitations and known biases

{_flat_limitation(manifest)}{_repeated_limitation(manifest)}{extra["limitations"]}
{cohort_limitations}
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
