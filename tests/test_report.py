"""The evaluation report: its numbers, files, figures, and the tables-only path."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from predictor._cli import main
from predictor.evaluation import _figures, _files
from predictor.evaluation._card import card_sections
from predictor.evaluation._comparison import cross_validate
from predictor.evaluation._files import write_report
from predictor.evaluation._markdown import NO_FIGURES_NOTE, decision_summary, report_markdown
from predictor.evaluation._metrics import metrics
from predictor.evaluation._report import (
    BOOTSTRAP_FIGURE_NAMES,
    FIGURE_NAMES,
    METRICS_NAME,
    REPORT_NAME,
    DecisionCurve,
    Report,
    build_report,
    subgroup_metrics,
    term_shapes,
    training_distribution,
)
from predictor.model._additive import fit_additive_model
from predictor.model._artifact import SHIPPED_MODEL_DIR, read_manifest
from predictor.simulation._synthetic import simulate_cohort

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fitted():
    training = simulate_cohort(1500, seed=21)
    model, _ = fit_additive_model(training, training["responded"].to_numpy(), smoothing=10.0)
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
def report(fitted, held_out) -> Report:
    model, manifest, training = fitted
    return build_report(
        model,
        held_out,
        manifest=manifest,
        source="a held-out test cohort",
        comparison=cross_validate(training, model=model, seed=3).folds,
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
    m = report.metrics
    assert m.auc == pytest.approx(roc_auc_score(y, p))
    assert m.auc_low < m.auc < m.auc_high
    expected = metrics(y, p, true_probability=held_out["true_probability"])
    for key, value in expected.to_dict().items():
        assert getattr(m, key) == pytest.approx(value), key
    assert 0.0 <= m.interval_coverage <= 1.0


def test_build_report_curves_are_well_formed(report) -> None:
    roc = report.roc.model
    assert roc.false_positive_rate[0] == 0.0 and roc.true_positive_rate[-1] == 1.0
    assert np.all(np.diff(roc.true_positive_rate) >= 0)
    bins = report.calibration.bins
    assert sum(b.n for b in bins) == report.data.n
    histogram = report.calibration.histogram
    assert sum(histogram.responders) == report.data.responders
    curve = report.decision_curve
    assert curve.threshold[0] == 0.1 and curve.threshold[-1] == 0.9
    own = [r for r in report.thresholds if r.threshold == report.model.threshold]
    assert len(own) == 1


def test_build_report_is_strict_json_and_deterministic(fitted, held_out, report) -> None:
    model, manifest, _ = fitted
    text = json.dumps(report.to_json(), allow_nan=False)
    assert json.loads(text) == report.to_json()
    again = build_report(model, held_out, manifest=manifest, source="x")
    assert again.metrics == report.metrics
    assert again.subgroups == report.subgroups


def test_report_from_json_reads_back_what_to_json_wrote(report) -> None:
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    again = Report.from_json(data)
    assert again.to_json() == data
    assert again.metrics == report.metrics and again.terms == report.terms
    assert again.subgroups == report.subgroups and again.comparison == report.comparison


def test_report_json_keeps_the_metrics_json_layout(report) -> None:
    """metrics.json's keys and their order, as before the report was typed."""
    data = report.to_json()
    assert list(data) == [
        "format",
        "format_version",
        "data",
        "model",
        "settings",
        "metrics",
        "roc",
        "calibration",
        "decision_curve",
        "thresholds",
        "subgroups",
        "comparison",
        "terms",
        "software",
    ]
    assert list(data["metrics"])[-3:] == ["mean_predicted", "auc_low", "auc_high"]
    assert list(data["subgroups"][0])[:5] == [
        "subgrouping",
        "group",
        "n",
        "responders",
        "response_rate",
    ]
    number = next(t for t in data["terms"] if "values" in t)
    assert list(number) == [
        "field",
        "unit",
        "log_scale",
        "not_measured",
        "learned_missing",
        "values",
        "contribution",
        "mean_abs_contribution",
        "share_not_measured",
        "training",
    ]
    assert list(data["comparison"]["models"]["additive model"]["auc"]) == ["mean", "sd", "folds"]


def test_build_report_comparison_has_every_model_with_mean_and_sd(report) -> None:
    comparison = report.comparison
    assert set(comparison.models) == {
        "additive model",
        "logistic regression",
        "gradient boosting",
    }
    for summary in comparison.models.values():
        auc = summary["auc"]
        assert len(auc.folds) == comparison.folds == 5
        assert auc.mean == pytest.approx(np.mean(auc.folds))


def test_build_report_held_out_comparison_measures_each_model_on_the_data(fitted, held_out) -> None:
    """train's comparison on its fresh cohort: the comparison models' probabilities on the
    report's data, measured as the model is; read back from metrics.json; in report.md and
    the card, with no cross-validated comparison."""
    model, manifest, _ = fitted
    y = held_out["responded"].to_numpy()
    noise = np.random.default_rng(0).uniform(0.2, 0.8, len(y))
    others = {"flat": np.full(len(y), y.mean()), "noisy": noise}
    report = build_report(
        model,
        held_out,
        manifest=manifest,
        source="a held-out test cohort",
        held_out=others,
        held_out_source="the test training cohort",
    )
    compared = report.held_out_comparison
    assert report.comparison is None and compared is not None
    assert list(compared.models) == ["additive model", "flat", "noisy"]
    assert compared.models["additive model"] == report.metrics
    for name, p in others.items():
        expected = metrics(y, p, true_probability=held_out["true_probability"])
        for key, value in dataclasses.asdict(expected).items():
            if value is not None:  # a metric of the truth, which held-out data lack
                assert getattr(compared.models[name], key) == pytest.approx(value, nan_ok=True)
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert list(data)[-1] == "held_out_comparison"
    assert Report.from_json(data).to_json()["held_out_comparison"] == data["held_out_comparison"]
    markdown = report_markdown(report, None)
    assert "fitted once on the test training cohort" in markdown
    assert "| flat | 0.500 (95% CI 0.500 to 0.500) |" in markdown
    performance = card_sections(report, None)["performance"]
    assert "### Comparison on patients no model saw" in performance
    assert "### Cross-validated comparison" not in performance


def test_subgroup_metrics_cover_every_patient_once_per_subgrouping(held_out, report) -> None:
    rows = pd.DataFrame([dataclasses.asdict(r) for r in report.subgroups])
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
    rows = {(r.subgrouping, r.group): r for r in subgroup_metrics(data, p)}
    assert rows[("sex", "not recorded")].n == 30
    assert rows[("sex", "female")].metrics is not None
    tiny = rows[("age band", "not recorded")]
    assert tiny.n == 3 and tiny.metrics is None  # too few of each outcome for metrics


def test_term_shapes_are_the_model_contributions(fitted) -> None:
    model, _, training = fitted
    for j, shape in enumerate(term_shapes(model)):
        field = shape.field
        if shape.values is not None:
            values = np.array(shape.values)
        elif shape.levels == ("no", "yes"):  # a boolean: 0.0 / 1.0 in clean records
            values = np.array([0.0, 1.0])
        else:
            values = pd.Categorical(shape.levels, categories=training[field].cat.categories)
        frame = pd.DataFrame(
            {f: training[f].iloc[:1].repeat(len(values)).to_numpy() for f in model.fields}
        )
        frame[field] = values
        contributions = model.score(model.features.design(frame)).contributions[:, j]
        assert contributions == pytest.approx(shape.contribution, abs=1e-5), field


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
    curve = DecisionCurve(threshold=(0.1, 0.11, 0.12), model=model_nb, treat_all=treat_all)
    assert expected in decision_summary(curve)


@pytest.mark.slow
def test_write_report_writes_every_figure_as_a_non_empty_png(report, written) -> None:
    out = written[0]
    for name in FIGURE_NAMES.values():
        data = (out / "figures" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, name
    text = (out / REPORT_NAME).read_text()
    for name in FIGURE_NAMES.values():
        assert f"](figures/{name})" in text
    assert not (out / "figures" / BOOTSTRAP_FIGURE_NAMES["instability"]).exists()
    assert json.loads((out / METRICS_NAME).read_text()) == report.to_json()


@pytest.mark.slow
def test_write_report_same_report_gives_identical_files(written) -> None:
    files = sorted(p.relative_to(written[0]) for p in written[0].rglob("*") if p.is_file())
    assert len(files) == 2 + len(FIGURE_NAMES)
    for name in files:
        assert (written[0] / name).read_bytes() == (written[1] / name).read_bytes(), name


@pytest.mark.slow
def test_figures_drawn_in_two_processes_are_those_drawn_in_one(
    report, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (_figures.can_fork() and _figures.usable_cores() > 1):
        pytest.skip("the terms figure is drawn in a forked process only with two cores")
    split = _figures.draw_figures(report)
    monkeypatch.setattr(_figures, "can_fork", lambda: False)
    alone = _figures.draw_figures(report)
    assert list(split) == list(alone) == list(FIGURE_NAMES)  # the same figures, in order
    assert split == alone  # byte for byte


@pytest.mark.slow
def test_report_markdown_states_the_key_numbers(report, written) -> None:
    text = (written[0] / REPORT_NAME).read_text()
    m = report.metrics
    assert f"AUC {m.auc:.3f} (95% CI {m.auc_low:.3f} to {m.auc_high:.3f})" in text
    assert f"| calibration slope (ideal 1) | {m.calibration_slope:.2f} |" in text
    assert f"Oracle AUC (AUC of the true probability): {m.oracle_auc:.3f}" in text
    assert "| 0.50 (model's) |" in text
    for heading in ("## Discrimination", "## Calibration", "## Clinical usefulness"):
        assert f"\n{heading}\n" in text
    assert "## Subgroups" in text and "### Against simpler models" in text


@pytest.mark.slow
def test_build_report_without_a_training_distribution_still_draws_the_terms(
    fitted, held_out
) -> None:
    model, _, _ = fitted
    report = build_report(model, held_out.iloc[:300], manifest={}, source="older model")
    assert all(term.training is None for term in report.terms)
    assert report.model.artifact_sha256 is None
    assert len(_figures.terms_figure(report).axes) >= len(report.terms)


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
    # import matplotlib -> ModuleNotFoundError naming matplotlib; _figures must be imported anew
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "predictor.evaluation._figures")
    files = write_report(report, tmp_path)
    assert files.figures is None
    text = files.report.read_text()
    assert NO_FIGURES_NOTE in text and "![" not in text
    assert "| calibration slope (ideal 1) |" in text
    assert not stale.exists()
    assert json.loads(files.metrics.read_text()) == report.to_json()


@pytest.mark.slow
def test_write_report_raises_a_bug_in_a_figure_and_leaves_the_figures_alone(
    report, written, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = (written[0] / "figures" / FIGURE_NAMES["roc"]).read_bytes()
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / FIGURE_NAMES["roc"]).write_bytes(old)

    def broken(report: Report) -> None:
        raise KeyError("a bug in our figure code")

    monkeypatch.setitem(_figures.DRAWERS, "calibration", broken)
    with pytest.raises(KeyError, match="a bug in our figure code"):
        write_report(report, tmp_path)
    assert (tmp_path / "figures" / FIGURE_NAMES["roc"]).read_bytes() == old
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["figures", FIGURE_NAMES["roc"]]


@pytest.mark.parametrize(
    ("missing", "no_figures"),
    [("matplotlib", True), ("matplotlib.backends.backend_agg", True), ("scipy.special", False)],
    ids=["matplotlib", "a-matplotlib-module", "another-module"],
)
def test_figures_module_is_none_only_when_matplotlib_is_missing(
    monkeypatch: pytest.MonkeyPatch, missing: str, no_figures: bool
) -> None:
    def import_module(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    monkeypatch.setattr(_files.importlib, "import_module", import_module)
    if no_figures:
        assert _files.figures_module() is None
    else:
        with pytest.raises(ModuleNotFoundError):
            _files.figures_module()


def test_figures_draw_every_figure_the_report_names() -> None:
    assert set(_figures.DRAWERS) == set(FIGURE_NAMES) | set(BOOTSTRAP_FIGURE_NAMES)


EVALUATION_ORDER = (
    "_metrics",
    "_comparison",
    "_bootstrap",
    "_sample_size",
    "_report",
    "_markdown",
    "_figures",
    "_card",
    "_files",
)
"""The evaluation modules in the order data flows through them."""


def _imports(name: str) -> set[str]:
    """What a module of predictor.evaluation imports (``from``/``import`` anywhere in it),
    besides the ``importlib`` import of the figures by name."""
    path = Path(importlib.import_module(f"predictor.evaluation.{name}").__file__)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_evaluation_modules_import_one_way_without_a_cycle() -> None:
    """numbers -> Markdown and figures -> card -> files: a module imports only modules before
    it, so there is no cycle, and the figures import neither the Markdown nor file code."""
    assert set(EVALUATION_ORDER) == {
        p.stem for p in Path(_files.__file__).parent.glob("_*.py") if p.stem != "__init__"
    }
    for k, name in enumerate(EVALUATION_ORDER):
        ours = {
            m.rsplit(".", 1)[1] for m in _imports(name) if m.startswith("predictor.evaluation.")
        }
        assert ours <= set(EVALUATION_ORDER[:k]), (name, ours)
    assert _files.FIGURES_MODULE == "predictor.evaluation._figures"  # imported by name, after
    figures_imports = _imports("_figures")
    assert figures_imports & {"predictor.evaluation._markdown", "predictor._atomic"} == set()


@pytest.mark.slow
def test_evaluation_package_imports_in_a_fresh_interpreter() -> None:
    code = "import predictor.evaluation._files, predictor.evaluation._card"
    subprocess.run([sys.executable, "-c", code], check=True)


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
    assert main(["evaluate", "--data", str(data), "--out", str(out)]) == 1  # 1 row refused
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


def test_cli_evaluate_replaces_links_in_its_folder_and_a_failure_keeps_the_old_report(
    tmp_path, capsys
) -> None:
    data = _cohort_csv(tmp_path / "cohort.csv", 200)
    other = tmp_path / "other.csv"
    other.write_text("keep\n")
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / FIGURE_NAMES["roc"]).symlink_to(data)  # links where the report writes
    (out / METRICS_NAME).symlink_to(other)
    before = data.read_bytes()
    assert main(["evaluate", "--data", str(data), "--out", str(out)]) == 0
    assert data.read_bytes() == before and other.read_text() == "keep\n"
    roc = out / "figures" / FIGURE_NAMES["roc"]
    assert not roc.is_symlink() and roc.read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / METRICS_NAME).read_text())["data"]["n"] == 200
    # A failure while writing (metrics.json cannot be replaced): every file stays as it was.
    (out / METRICS_NAME).unlink()
    (out / METRICS_NAME).mkdir()
    kept = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    smaller = _cohort_csv(tmp_path / "smaller.csv", 150)
    assert main(["evaluate", "--data", str(smaller), "--out", str(out)]) == 2
    assert "cannot write the report to" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == kept


def test_cli_evaluate_on_data_that_give_every_patient_one_probability_says_so(
    tmp_path, capsys
) -> None:
    cohort = simulate_cohort(200, seed=32)[["patient_id", "responded"]]  # no predictor at all
    cohort.to_csv(tmp_path / "outcomes.csv", index=False)
    out = tmp_path / "report"
    assert main(["evaluate", "--data", str(tmp_path / "outcomes.csv"), "--out", str(out)]) == 0
    assert "calibration slope n/a" in capsys.readouterr().err
    report = (out / REPORT_NAME).read_text()
    assert "**Every patient got the same probability.**" in report.split("## Discrimination")[0]
    assert not re.search(r"\bnan\b", report)  # no number printed as nan


def test_cli_evaluate_refuses_a_model_it_cannot_read_and_its_folder_before_writing(
    tmp_path, capsys
) -> None:
    data = _cohort_csv(tmp_path / "cohort.csv", 200, crp_mg_l="high")
    model = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL_DIR, model)
    rejects, out = tmp_path / "rejects.csv", tmp_path / "report"
    args = ["evaluate", "--data", str(data), "--rejects", str(rejects), "--model", str(model)]
    assert main([*args, "--out", str(model)]) == 2  # the model's own report is not replaced
    assert "is the model's own folder" in capsys.readouterr().err
    artifact = model / "model.json"
    artifact.write_bytes(artifact.read_bytes().replace(b"0", b"1", 1))
    assert main([*args, "--out", str(out)]) == 2
    assert "sha256 differs" in capsys.readouterr().err
    assert not rejects.exists() and not out.exists()  # nothing written, not even the rejects


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-file", "no such file"),
        ("no-outcome", "has no `responded` column: to evaluate"),
        ("too-few-of-an-outcome", "too few of an outcome to evaluate: 15 usable rows"),
        ("bad-model", "no model at"),
        ("out-is-a-file", "is a file: the report is written into a folder"),
        ("out-under-a-file", "is not a folder this process can write in"),
    ],
    ids=[
        "no-file",
        "no-outcome",
        "too-few-of-an-outcome",
        "bad-model",
        "out-is-a-file",
        "out-under-a-file",
    ],
)
def test_cli_evaluate_unusable_input_exits_2_in_one_line(
    tmp_path, capsys, case: str, message: str
) -> None:
    data = tmp_path / "cohort.csv"
    out = tmp_path / "report"
    args = ["evaluate", "--data", str(data), "--out", str(out)]
    if case == "no-outcome":
        _cohort_csv(data, 300, responded=None)
    elif case == "too-few-of-an-outcome":
        _cohort_csv(data, 15)
    elif case != "no-file":
        _cohort_csv(data, 300)
    if case == "bad-model":
        args += ["--model", str(tmp_path / "no-model")]
    if case == "out-is-a-file":
        out.write_text("not a directory")
    if case == "out-under-a-file":  # refused before the data are read
        (tmp_path / "file").write_text("not a directory")
        args[args.index(str(out))] = str(tmp_path / "file" / "report")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    assert case == "out-is-a-file" or not out.exists()


def test_evaluate_compare_on_data_without_predictors_compares_and_says_no_slope(
    tmp_path, capsys
) -> None:
    # only the outcome: every model gives everyone one probability. The comparison models'
    # imputer dropped each empty column with a warning per fold, then had no column left
    # ("Found array with 0 feature(s)", exit 2)
    data = tmp_path / "outcomes.csv"
    simulate_cohort(200, seed=5)[["patient_id", "responded"]].to_csv(data, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = ["evaluate", "--data", str(data), "--out", str(tmp_path / "r"), "--compare"]
        assert main(args) == 0
    assert not [w for w in caught if "without any observed values" in str(w.message)]
    assert "calibration slope n/a" in capsys.readouterr().err
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| logistic regression | 0.500 (0.000) |" in report and "nan" not in report
    assert "n/a (n/a), 0 of 5 folds" in report
