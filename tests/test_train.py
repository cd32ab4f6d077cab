"""train.py / ``python -m predictor train``: model files, determinism, the user-data checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from predictor import load_model, predict, read_manifest
from predictor.cli import main
from predictor.report import FIGURE_NAMES, METRICS_NAME, REPORT_NAME
from predictor.synthetic import simulate_cohort

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = ("model.json", "manifest.json", "MODEL_CARD.md")
REPORT_FILES = (REPORT_NAME, METRICS_NAME, *(f"figures/{name}" for name in FIGURE_NAMES.values()))
CARD_HEADINGS = [
    "## Intended use and users",
    "## Not for clinical decisions",
    "## Data",
    "## Predictors",
    "## Missing data",
    "## Model",
    "## Performance",
    "## Calibration",
    "## Limitations and known biases",
    "## How to retrain on real data",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> list[Path]:
    """The same small training run twice, in two directories."""
    outs = [tmp_path_factory.mktemp(f"run{k}") for k in range(2)]
    for out in outs:
        assert main(["train", "--n", "1500", "--seed", "4", "--out", str(out)]) == 0
    return outs


def test_train_writes_model_manifest_and_card(trained: list[Path]) -> None:
    out = trained[0]
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == {*MODEL_FILES, *REPORT_FILES}
    manifest = read_manifest(out)
    assert manifest["training_data"]["n"] == 1500
    assert manifest["training_data"]["seed"] == 4
    assert set(manifest["metrics"]) == {"held-out", "fresh cohort"}
    assert set(manifest["metrics"]["fresh cohort"]) == {
        "additive model",
        "logistic regression",
        "gradient boosting",
    }
    card = (out / "MODEL_CARD.md").read_text()
    for heading in CARD_HEADINGS:
        assert f"\n{heading}\n" in card
    assert "not for clinical decisions" in card.lower()
    assert 0.0 < predict({"crp_mg_l": 1.0}, model=out).probability < 1.0


def test_train_same_seed_gives_identical_files(trained: list[Path]) -> None:
    for name in (*MODEL_FILES, *REPORT_FILES):
        assert (trained[0] / name).read_bytes() == (trained[1] / name).read_bytes(), name


def test_train_report_is_on_the_held_out_rows_and_the_card_repeats_it(
    trained: list[Path],
) -> None:
    out = trained[0]
    manifest = read_manifest(out)
    report = json.loads((out / METRICS_NAME).read_text())
    held_out = manifest["metrics"]["held-out"]["additive model"]
    assert report["data"]["n"] == manifest["training_data"]["n_held_out"]
    for key in ("auc", "brier", "calibration_slope", "interval_coverage"):
        assert report["metrics"][key] == pytest.approx(held_out[key]), key
    assert report["comparison"]["folds"] == 5
    card = (out / "MODEL_CARD.md").read_text()
    m = report["metrics"]
    assert f"AUC {m['auc']:.3f} (95% CI {m['auc_low']:.3f} to {m['auc_high']:.3f})" in card
    assert f"| expected calibration error (10 equal-width bins) | {m['ece']:.3f} |" in card
    assert "### Cross-validated comparison" in card and "### Subgroups" in card
    for link in re.findall(r"\]\(([^)]+)\)", card):
        assert (out / link).is_file(), link  # every figure and file the card links to exists


def test_train_other_seed_gives_another_model(trained: list[Path], tmp_path: Path) -> None:
    assert main(["train", "--n", "1500", "--seed", "5", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "model.json").read_bytes() != (trained[0] / "model.json").read_bytes()


def test_train_py_reproduces_the_shipped_model(tmp_path: Path) -> None:
    """`python train.py` (defaults) gives the shipped model's metrics; with the same library
    versions, the same files byte for byte (other versions may move the last digits of a
    float, and the comparison models more)."""
    assert main(["train", "--out", str(tmp_path)]) == 0
    shipped, again = read_manifest(), read_manifest(tmp_path)
    assert again["training_data"] == shipped["training_data"]
    for data, sets in shipped["metrics"].items():
        additive = sets["additive model"]
        assert again["metrics"][data]["additive model"] == pytest.approx(additive, abs=1e-6)
    if (again["libraries"], again["python"]) == (shipped["libraries"], shipped["python"]):
        for name in MODEL_FILES:
            assert (tmp_path / name).read_bytes() == (ROOT / "models" / name).read_bytes(), name
    # The report and its figures also depend on matplotlib's version, which metrics.json
    # records with the others.
    shipped_report = json.loads((ROOT / "models" / METRICS_NAME).read_text())
    again_report = json.loads((tmp_path / METRICS_NAME).read_text())
    shipped_m, again_m = shipped_report["metrics"], again_report["metrics"]
    interval = ("auc_low", "auc_high")  # bootstrap: another scipy may resample differently
    strict = {k: v for k, v in shipped_m.items() if k not in interval}
    assert {k: again_m[k] for k in strict} == pytest.approx(strict, abs=1e-6)
    for key in interval:
        assert again_m[key] == pytest.approx(shipped_m[key], abs=0.01)
    if again_report["software"] == shipped_report["software"]:
        for name in REPORT_FILES:
            assert (tmp_path / name).read_bytes() == (ROOT / "models" / name).read_bytes(), name


def test_shipped_model_card_and_manifest_agree() -> None:
    manifest = read_manifest()
    card = (ROOT / "models" / "MODEL_CARD.md").read_text()
    fresh = manifest["metrics"]["fresh cohort"]["additive model"]
    assert f"{fresh['auc']:.3f}" in card
    assert manifest["training_data"]["sha256"] in card
    assert load_model().penalty_c == manifest["model"]["penalty_c"]
    m = json.loads((ROOT / "models" / METRICS_NAME).read_text())["metrics"]
    assert f"AUC {m['auc']:.3f} (95% CI {m['auc_low']:.3f} to {m['auc_high']:.3f})" in card
    for link in re.findall(r"\]\(([^)]+)\)", card):
        assert (ROOT / "models" / link).is_file(), link


def _write_cohort(path: Path, n: int = 400, **changes) -> Path:
    cohort = simulate_cohort(n, seed=8).drop(columns=["true_probability"]).astype(object)
    for column, value in changes.items():
        if value is None:
            cohort = cohort.drop(columns=[column])
        else:
            cohort.loc[cohort.index[: len(value)], column] = value
    cohort.to_csv(path, index=False)
    return path


def test_train_on_user_data_refuses_bad_rows_and_trains_on_the_rest(tmp_path, capsys) -> None:
    data = _write_cohort(tmp_path / "mine.csv", responded=["maybe"], crp_mg_l=["", "high"])
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert "398 valid records, 2 left out" in err
    manifest = read_manifest(tmp_path / "m")
    assert manifest["training_data"]["n"] == 398
    assert manifest["training_data"]["n_refused"] == 2
    assert "2 further rows were left out" in (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert manifest["training_data"]["source"].startswith("mine.csv")
    assert set(manifest["metrics"]) == {"held-out"}  # no simulated truth for user data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"responded": None}, "has no `responded` column"),
        ({"responded": [""] * 3}, "`responded` is empty on 3 rows"),
        ({"crp_mg_l (nmol/L)": ["1"]}, "unit"),
    ],
    ids=["no-outcome", "missing-outcome", "unclear-unit"],
)
def test_train_on_unusable_user_data_exits_2_with_one_line(
    tmp_path, capsys, changes, message
) -> None:
    data = _write_cohort(tmp_path / "bad.csv", **changes)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_train_with_too_few_rows_says_how_many_are_needed(tmp_path, capsys) -> None:
    data = _write_cohort(tmp_path / "tiny.csv", n=150)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 2
    assert "too few usable rows to train: 150 valid" in capsys.readouterr().err


def test_train_refuses_n_with_data(tmp_path, capsys) -> None:
    data = _write_cohort(tmp_path / "c.csv")
    assert main(["train", "--data", str(data), "--n", "500"]) == 2
    assert "--n" in capsys.readouterr().err


def test_train_script_help_runs() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--data" in result.stdout and "example:" in result.stdout


def test_train_all_rows_refused_says_so_with_the_first_problems(tmp_path, capsys) -> None:
    data = _write_cohort(tmp_path / "bad.csv", n=5, age_years=["old"] * 5)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "no usable row: all 5 rows break the schema" in err
    assert "row 1: age_years is not a number" in err
    assert "old" not in err  # no patient value in a summary


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("bdnf_ng_ml", "", "no training patient had a value"),
        ("slow_wave_sleep_pct", "12", "every training patient with a value had 12"),
        ("family_history_alcohol_use_disorder", "", None),  # a category: a learned missing term
    ],
    ids=["number-all-missing", "number-constant", "boolean-all-missing"],
)
def test_train_with_an_empty_or_constant_field_still_trains(
    tmp_path, capsys, column: str, value: str, why: str | None
) -> None:
    data = _write_cohort(tmp_path / "c.csv", n=400, **{column: [value] * 400})
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    manifest = read_manifest(tmp_path / "m")
    model = load_model(tmp_path / "m")
    term = model.features.terms[model.fields.index(column)]
    assert term.unused == (why or "")
    assert manifest["model"]["unused_fields"] == ({column: why} if why else {})
    if why:
        assert f"warning: {column} is not used by the model: {why}" in err
        assert why in (tmp_path / "m" / "MODEL_CARD.md").read_text()
        p = predict({column: 20.0, "crp_mg_l": 1.0}, model=model)
        assert p.contributions[column] == 0.0
        assert any("is not used by this model" in w for w in p.warnings)
        assert not any("not measured" in w and column in w for w in p.warnings)
