"""The evaluation report: its numbers, files, figures, and the tables-only path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from predictor._cli import main
from predictor.evaluation._metrics import cross_validate, metrics
from predictor.evaluation._report import (
    FIGURE_NAMES,
    METRICS_NAME,
    NO_FIGURES_NOTE,
    REPORT_NAME,
    build_report,
    card_sections,
    decision_summary,
    subgroup_metrics,
    term_shapes,
    training_distribution,
    write_report,
)
from predictor.model._additive import fit_additive_model
from predictor.model._artifact import read_manifest
from predictor.simulation._synthetic import simulate_cohort

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fitted():
    training = simulate_cohort(1500, seed=21)
    model, _ = fit_additive_model(
        training, training["responded"].to_numpy(), seed=21, penalty_grid=(0.1,)
    )
    manifest = {
        "training_data": {"source": "a small test cohort", "n": len(training)},
        "artifact_sha256": "0" * 64,
        "training_distribution": training_distribution(model, training),
    }
    return model, manifest, training


@pytest.fixture(scope="module")
def held_out() -> pd.DataFrame:
    return simulate_cohort(800, seed=22)


@pytest.fixture(scope="module")
def report(fitted, held_out) -> dict:
    model, manifest, training = fitted
    return build_report(
        model,
        held_out,
        manifest=manifest,
        seed=3,
        source="a held-out test cohort",
        comparison=cross_validate(training, seed=3, penalty_c=model.penalty_c),
        comparison_source="the test training cohort",
    )


@pytest.fixture(scope="module")
def written(report, tmp_path_factory) -> list[Path]:
    """The same report written twice, into two directories."""
    outs = [tmp_path_factory.mktemp(f"report{k}") for k in range(2)]
    for out in outs:
        write_report(report, out)
    return outs


def test_build_report_core_metrics_are_those_of_the_model(fitted, held_out, report) -> None:
    model, _, _ = fitted
    p = model.score(model.features.design(held_out)).probability
    y = held_out["responded"].to_numpy()
    m = report["metrics"]
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["auc_low"] < m["auc"] < m["auc_high"]
    for key, value in metrics(y, p, true_probability=held_out["true_probability"]).items():
        assert m[key] == pytest.approx(value), key
    assert 0.0 <= m["interval_coverage"] <= 1.0


def test_build_report_curves_are_well_formed(report) -> None:
    roc = report["roc"]["model"]
    assert roc["false_positive_rate"][0] == 0.0 and roc["true_positive_rate"][-1] == 1.0
    assert np.all(np.diff(roc["true_positive_rate"]) >= 0)
    bins = report["calibration"]["bins"]
    assert sum(b["n"] for b in bins) == report["data"]["n"]
    histogram = report["calibration"]["histogram"]
    assert sum(histogram["responders"]) == report["data"]["responders"]
    curve = report["decision_curve"]
    assert curve["threshold"][0] == 0.1 and curve["threshold"][-1] == 0.9
    own = [r for r in report["thresholds"] if r["threshold"] == report["model"]["threshold"]]
    assert len(own) == 1


def test_build_report_is_strict_json_and_deterministic(fitted, held_out, report) -> None:
    model, manifest, _ = fitted
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    again = build_report(model, held_out, manifest=manifest, seed=3, source="x")
    assert again["metrics"] == report["metrics"]
    assert again["subgroups"] == report["subgroups"]


def test_build_report_comparison_has_every_model_with_mean_and_sd(report) -> None:
    comparison = report["comparison"]
    assert set(comparison["models"]) == {
        "additive model",
        "logistic regression",
        "gradient boosting",
    }
    for summary in comparison["models"].values():
        auc = summary["auc"]
        assert len(auc["folds"]) == comparison["folds"] == 5
        assert auc["mean"] == pytest.approx(np.mean(auc["folds"]))


def test_subgroup_metrics_cover_every_patient_once_per_subgrouping(held_out, report) -> None:
    rows = pd.DataFrame(report["subgroups"])
    assert set(rows["subgrouping"]) == {"sex", "age band", "route", "substance use"}
    for _, group in rows.groupby("subgrouping"):
        assert group["n"].sum() == len(held_out)
        assert group["responders"].sum() == held_out["responded"].sum()
    ages = rows.loc[rows["subgrouping"] == "age band", "group"].tolist()
    assert ages == ["18-34", "35-49", "50-64", "65+"]


def test_subgroup_metrics_name_missing_values_and_skip_tiny_groups(fitted, held_out) -> None:
    model, _, _ = fitted
    data = held_out.copy()
    data.loc[data.index[:30], "sex"] = np.nan
    data.loc[data.index[:3], "age_years"] = np.nan
    p = model.score(model.features.design(data)).probability
    rows = {(r["subgrouping"], r["group"]): r for r in subgroup_metrics(data, p, seed=0)}
    assert rows[("sex", "not recorded")]["n"] == 30
    assert "auc" in rows[("sex", "female")]
    tiny = rows[("age band", "not recorded")]
    assert tiny["n"] == 3 and "auc" not in tiny  # too few of each outcome for metrics


def test_term_shapes_are_the_model_contributions(fitted) -> None:
    model, _, training = fitted
    for j, shape in enumerate(term_shapes(model)):
        field = shape["field"]
        if "values" in shape:
            values = np.array(shape["values"])
        elif shape["levels"] == ["no", "yes"]:  # a boolean: 0.0 / 1.0 in clean records
            values = np.array([0.0, 1.0])
        else:
            values = pd.Categorical(shape["levels"], categories=training[field].cat.categories)
        frame = pd.DataFrame(
            {f: training[f].iloc[:1].repeat(len(values)).to_numpy() for f in model.fields}
        )
        frame[field] = values
        contributions = model.score(model.features.design(frame)).contributions[:, j]
        assert contributions == pytest.approx(shape["contribution"], abs=1e-5), field


def test_training_distribution_counts_every_training_patient(fitted) -> None:
    _, manifest, training = fitted
    for field, entry in manifest["training_distribution"].items():
        assert sum(entry["counts"]) + entry["n_missing"] == len(training), field
        if "edges" in entry:
            assert len(entry["edges"]) == len(entry["counts"]) + 1


@pytest.mark.parametrize(
    ("model_nb", "treat_all", "expected"),
    [
        ([0.3, 0.2, 0.1], [0.4, 0.1, -0.2], "at thresholds 0.11 to 0.12 "),
        ([0.3, 0.0, 0.1], [0.2, 0.1, -0.2], "at thresholds 0.10 and 0.12 "),
        ([0.1, 0.0, -0.1], [0.2, 0.1, 0.0], "At no threshold from 0.10 to 0.12"),
    ],
    ids=["one-run", "two-runs", "never"],
)
def test_decision_summary_names_the_thresholds_where_the_model_helps(
    model_nb, treat_all, expected
) -> None:
    report = {
        "decision_curve": {
            "threshold": [0.1, 0.11, 0.12],
            "model": model_nb,
            "treat_all": treat_all,
        }
    }
    assert expected in decision_summary(report)


@pytest.mark.slow
def test_write_report_writes_every_figure_as_a_non_empty_png(report, written) -> None:
    out = written[0]
    for name in FIGURE_NAMES.values():
        data = (out / "figures" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, name
    text = (out / REPORT_NAME).read_text()
    for name in FIGURE_NAMES.values():
        assert f"](figures/{name})" in text
    assert json.loads((out / METRICS_NAME).read_text()) == report


@pytest.mark.slow
def test_write_report_same_report_gives_identical_files(written) -> None:
    files = sorted(p.relative_to(written[0]) for p in written[0].rglob("*") if p.is_file())
    assert len(files) == 2 + len(FIGURE_NAMES)
    for name in files:
        assert (written[0] / name).read_bytes() == (written[1] / name).read_bytes(), name


@pytest.mark.slow
def test_report_markdown_states_the_key_numbers(report, written) -> None:
    text = (written[0] / REPORT_NAME).read_text()
    m = report["metrics"]
    assert f"AUC {m['auc']:.3f} (95% CI {m['auc_low']:.3f} to {m['auc_high']:.3f})" in text
    assert f"| calibration slope (ideal 1) | {m['calibration_slope']:.2f} |" in text
    assert f"Oracle AUC (AUC of the true probability): {m['oracle_auc']:.3f}" in text
    assert "| 0.50 (model's) |" in text
    for heading in ("## Discrimination", "## Calibration", "## Clinical usefulness"):
        assert f"\n{heading}\n" in text
    assert "## Subgroups" in text and "### Against simpler models" in text


def test_build_report_without_a_training_distribution_still_draws_the_terms(
    fitted, held_out
) -> None:
    from predictor.evaluation._figures import terms_figure

    model, _, _ = fitted
    report = build_report(model, held_out.iloc[:300], manifest={}, seed=0, source="older model")
    assert all(term["training"] is None for term in report["terms"])
    assert report["model"]["artifact_sha256"] is None
    assert len(terms_figure(report).axes) >= len(report["terms"])


def test_card_sections_without_figures_say_why_and_link_none(report) -> None:
    sections = card_sections(report, None)
    assert NO_FIGURES_NOTE in sections["performance"]
    assert "![" not in "".join(sections.values())
    assert "figures/" not in sections["predictors"]


def test_write_report_without_matplotlib_writes_tables_and_says_why(
    report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "figures" / FIGURE_NAMES["roc"]
    stale.parent.mkdir()
    stale.write_bytes(b"an old figure")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.delitem(sys.modules, "predictor.evaluation._figures", raising=False)
    files = write_report(report, tmp_path)
    assert files.figures is None
    text = files.report.read_text()
    assert NO_FIGURES_NOTE in text and "![" not in text
    assert "| calibration slope (ideal 1) |" in text
    assert not stale.exists()
    assert json.loads(files.metrics.read_text()) == report


def _cohort_csv(path: Path, n: int, **cells) -> Path:
    cohort = simulate_cohort(n, seed=31).astype(object)
    for column, value in cells.items():
        if value is None:
            cohort = cohort.drop(columns=[column])
        else:
            cohort.loc[cohort.index[0], column] = value
    cohort.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_cli_evaluate_writes_the_report_for_the_shipped_model(tmp_path, capsys) -> None:
    data = _cohort_csv(tmp_path / "cohort.csv", 600, crp_mg_l="high")
    out = tmp_path / "report"
    assert main(["evaluate", "--data", str(data), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "599 valid records, 1 refused" in err and f"-> {out / REPORT_NAME}" in err
    report = json.loads((out / METRICS_NAME).read_text())
    assert report["data"]["n"] == 599 and report["data"]["n_refused"] == 1
    assert report["model"]["artifact_sha256"] == read_manifest()["artifact_sha256"]
    assert report["comparison"] is None
    assert "(1 more row was left out for breaking the schema)" in (out / REPORT_NAME).read_text()
    assert all((out / "figures" / name).stat().st_size > 0 for name in FIGURE_NAMES.values())


@pytest.mark.slow
def test_cli_evaluate_compare_cross_validates_on_the_data(tmp_path) -> None:
    data = _cohort_csv(tmp_path / "cohort.csv", 500)
    out = tmp_path / "report"
    assert main(["evaluate", "--data", str(data), "--out", str(out), "--compare"]) == 0
    comparison = json.loads((out / METRICS_NAME).read_text())["comparison"]
    assert comparison["folds"] == 5 and len(comparison["models"]) == 3
    assert (
        "### Against simpler models\n\nCross-validated on the 500 patients of cohort.csv"
        in (out / REPORT_NAME).read_text()
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-file", "no such file"),
        ("no-outcome", "has no `responded` column: to evaluate"),
        ("too-few-rows", "too few usable rows to evaluate: 150 valid"),
        ("bad-model", "no model at"),
        ("out-is-a-file", "cannot write the report to"),
    ],
    ids=["no-file", "no-outcome", "too-few-rows", "bad-model", "out-is-a-file"],
)
def test_cli_evaluate_unusable_input_exits_2_in_one_line(
    tmp_path, capsys, case: str, message: str
) -> None:
    data = tmp_path / "cohort.csv"
    out = tmp_path / "report"
    args = ["evaluate", "--data", str(data), "--out", str(out)]
    if case == "no-outcome":
        _cohort_csv(data, 300, responded=None)
    elif case == "too-few-rows":
        _cohort_csv(data, 150)
    elif case != "no-file":
        _cohort_csv(data, 300)
    if case == "bad-model":
        args += ["--model", str(tmp_path / "no-model")]
    if case == "out-is-a-file":
        out.write_text("not a directory")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    assert case == "out-is-a-file" or not out.exists()
