"""train.py / ``python -m predictor train``: model files, determinism, the user-data checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import predictor.evaluation
from predictor import load_model, predict, read_manifest
from predictor._cli import main
from predictor._training import MODEL_FOLDER_ENTRIES, train
from predictor.evaluation import FIGURE_NAMES, FIGURES_DIR, METRICS_NAME, REPORT_NAME
from predictor.model import _artifact
from predictor.simulation._synthetic import simulate_cohort

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


USER_FILE = "notes on this model.txt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> list[Path]:
    """The same small training run twice, in two directories: a new one, and a model folder
    holding another model (a copy of the shipped one), a stale figure and a user's own file."""
    outs = [tmp_path_factory.mktemp("run0"), tmp_path_factory.mktemp("runs") / "run1"]
    shutil.copytree(ROOT / "models", outs[1])
    (outs[1] / "figures" / "stale.png").write_bytes(b"from an older version")
    (outs[1] / USER_FILE).write_text("the user's own\n")
    for out in outs:
        assert main(["train", "--n", "1500", "--seed", "4", "--out", str(out)]) == 0
    return outs


@pytest.mark.slow
def test_train_writes_model_manifest_and_card(trained: list[Path]) -> None:
    out = trained[0]
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == {*MODEL_FILES, *REPORT_FILES}
    manifest = read_manifest(out)
    assert manifest["training_data"]["n"] == 1500
    assert manifest["training_data"]["seed"] == 4
    assert set(manifest["metrics"]) == {"cross-validated", "fresh cohort"}
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


@pytest.mark.slow
def test_train_same_seed_gives_identical_files(trained: list[Path]) -> None:
    # On one machine, byte for byte (another CPU may move a float's last digits: see below).
    for name in (*MODEL_FILES, *REPORT_FILES):
        assert (trained[0] / name).read_bytes() == (trained[1] / name).read_bytes(), name


@pytest.mark.slow
def test_train_in_forked_processes_and_on_threads_writes_the_same_files(
    trained: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh process with two cores fits the model, the folds and the terms figure in
    # processes forked from it; one running another thread (a pytest-xdist worker, say) does
    # not fork (predictor._processes.can_fork), and does that work on threads and here.
    command = [sys.executable, "-m", "predictor", "train", "--n", "1500", "--seed", "4"]
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "fresh")], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert main(["train", "--n", "1500", "--seed", "4", "--out", str(tmp_path / "threads")]) == 0
    for name in (*MODEL_FILES, *REPORT_FILES):
        fresh = (tmp_path / "fresh" / name).read_bytes()
        assert (
            fresh == (tmp_path / "threads" / name).read_bytes() == (trained[0] / name).read_bytes()
        ), name


@pytest.mark.slow
def test_train_into_a_model_folder_replaces_the_set_and_keeps_the_users_files(
    trained: list[Path],
) -> None:
    out = trained[1]  # held the shipped model, a stale figure and the user's file
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == {*MODEL_FILES, *REPORT_FILES, USER_FILE}
    assert (out / USER_FILE).read_text() == "the user's own\n"
    assert read_manifest(out)["training_data"]["n"] == 1500
    assert sorted(p.name for p in out.parent.iterdir()) == ["run1"]  # no staging folder left


def test_model_folder_entries_are_what_training_writes() -> None:
    assert set(MODEL_FOLDER_ENTRIES) == {*MODEL_FILES, REPORT_NAME, METRICS_NAME, FIGURES_DIR}


@pytest.mark.slow
def test_train_failing_half_way_leaves_the_previous_model_folder_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """model.json and manifest.json are written, then the report fails: before, out had the
    new model with the old report and card; now it is as it was, and nothing is left over."""
    out = tmp_path / "model"
    shutil.copytree(ROOT / "models", out)
    before = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def report_fails(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the report failed")

    monkeypatch.setattr(predictor.evaluation, "build_report", report_fails)
    cohort = simulate_cohort(400, seed=8)
    with pytest.raises(RuntimeError, match="the report failed"):
        train(
            cohort,
            seed=1,
            out=out,
            source="test",
            simulated=False,
            bootstrap=0,  # not what this test is about: 200 refits of 400 patients
            progress=lambda _: None,
        )
    after = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_train_refuses_a_folder_of_other_files_before_the_work(tmp_path: Path, capsys) -> None:
    (tmp_path / "thesis.docx").write_text("a user's own file")
    assert main(["train", "--n", "300", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "it is a folder with other files (thesis.docx) and no model" in err
    assert "fitted" not in err  # refused before fitting
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.docx"]
    (tmp_path / "thesis.docx").unlink()
    (tmp_path / "file").write_text("x")
    assert main(["train", "--n", "300", "--out", str(tmp_path / "file")]) == 2
    assert "it is a file, not a folder" in capsys.readouterr().err
    # a path inside a file (the data file typed where a folder was meant): said at once, not
    # as "File exists" after the whole fit
    assert main(["train", "--n", "300", "--out", str(tmp_path / "file" / "model" / "x")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'file'} is a file, not a folder" in err and "fitted" not in err


def test_train_refuses_a_folder_it_cannot_write_before_the_work(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes anywhere: the answer a user would get, given instead
        monkeypatch.setattr(
            "predictor._training.os.access", lambda path, mode: Path(path) != locked
        )
    assert main(["train", "--n", "300", "--out", str(locked / "model")]) == 2
    err = capsys.readouterr().err
    assert f"the folder {locked} cannot be written" in err and "fitted" not in err
    # an existing model folder in it: the new folder is made beside it, in the locked one
    (locked / "old").mkdir() if os.geteuid() == 0 else None
    if (locked / "old").exists():
        assert main(["train", "--n", "300", "--out", str(locked / "old")]) == 2
        assert f"the folder {locked} cannot be written" in capsys.readouterr().err


def test_train_refuses_a_link_that_leads_nowhere_before_the_work(tmp_path: Path, capsys) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for out in ("loop", "loop/model"):
        assert main(["train", "--n", "300", "--out", str(tmp_path / out)]) == 2, out
        err = capsys.readouterr().err
        assert "is a symbolic link that leads nowhere" in err and "fitted" not in err, out


@pytest.mark.slow
def test_train_report_is_on_the_fresh_cohort_and_the_card_repeats_it(
    trained: list[Path],
) -> None:
    out = trained[0]
    manifest = read_manifest(out)
    report = json.loads((out / METRICS_NAME).read_text())
    fresh = manifest["metrics"]["fresh cohort"]["additive model"]
    assert report["data"]["n"] == manifest["evaluation_cohort"]["n"]
    assert "external validation" in report["data"]["source"]
    for key in ("auc", "brier", "calibration_slope", "interval_coverage"):
        assert report["metrics"][key] == pytest.approx(fresh[key]), key
    # The model is fitted on every row; the cross-validated metrics pool the out-of-fold ones.
    assert manifest["model"]["converged"]
    assert manifest["validation"]["internal"].startswith("5-fold cross-validation")
    cross = manifest["metrics"]["cross-validated"]["additive model"]
    assert cross["n"] == manifest["training_data"]["n"] == 1500
    # The comparison models: fitted once on every training row and compared with the model on
    # the fresh cohort (the report's data), not cross-validated as well.
    assert set(manifest["metrics"]["cross-validated"]) == {"additive model"}
    assert report["comparison"] is None
    compared = report["held_out_comparison"]["models"]
    assert set(compared) == {"additive model", "logistic regression", "gradient boosting"}
    assert compared["additive model"] == report["metrics"]
    for name, measured in compared.items():
        assert measured["auc"] == pytest.approx(manifest["metrics"]["fresh cohort"][name]["auc"])
    card = (out / "MODEL_CARD.md").read_text()
    m = report["metrics"]
    assert f"AUC {m['auc']:.3f} (95% CI {m['auc_low']:.3f} to {m['auc_high']:.3f})" in card
    assert f"| expected calibration error (10 equal-width bins) | {m['ece']:.3f} |" in card
    assert "### Comparison on patients no model saw" in card and "### Subgroups" in card
    assert "### Cross-validated comparison" not in card
    for link in re.findall(r"\]\(([^)]+)\)", card):
        assert (out / link).is_file(), link  # every figure and file the card links to exists


@pytest.mark.slow
def test_train_other_seed_gives_another_model(trained: list[Path], tmp_path: Path) -> None:
    assert main(["train", "--n", "1500", "--seed", "5", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "model.json").read_bytes() != (trained[0] / "model.json").read_bytes()


RTOL, ATOL = 1e-6, 1e-10
"""How close a retrained number must be to the shipped one: BLAS kernels (another CPU, the
same library versions) move the last digits of a float, never the sixth significant one."""
LOOSE_RTOL = 1e-3
"""For the comparison models: gradient boosting sums histograms over as many threads as the
machine has, and a tie between two splits may then go the other way."""
COMPARISON_MODELS = {"logistic regression", "gradient boosting"}
NOT_COMPARED = {"python", "libraries", "package_version", "software", "sha256", "artifact_sha256"}
"""What made a file (compared separately), and hashes of float data (which no tolerance fits)."""
SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _is_numbers(value: object) -> bool:
    """A (nested) non-empty list of numbers, of one shape: an array."""
    if not (isinstance(value, list) and value):
        return False
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return True
    return all(_is_numbers(v) and len(v) == len(value[0]) for v in value)


def _assert_numbers_close(
    shipped: object, again: object, where: str = "", rtol: float = RTOL
) -> None:
    """The same JSON document up to float noise: the same keys, texts, flags and lengths, and
    numbers within ``rtol`` / ATOL (lists of numbers compared as arrays)."""
    if isinstance(shipped, dict):
        assert isinstance(again, dict) and again.keys() == shipped.keys(), where
        for key, value in shipped.items():
            if key not in NOT_COMPARED:
                loose = LOOSE_RTOL if key in COMPARISON_MODELS else rtol
                _assert_numbers_close(value, again[key], f"{where}/{key}", loose)
    elif _is_numbers(shipped):
        assert _is_numbers(again), where
        np.testing.assert_allclose(
            np.asarray(again, dtype=float), np.asarray(shipped, dtype=float),
            rtol=rtol, atol=ATOL, err_msg=where,
        )  # fmt: skip
    elif isinstance(shipped, list):
        assert isinstance(again, list) and len(again) == len(shipped), where
        for k, (a, b) in enumerate(zip(shipped, again, strict=True)):
            _assert_numbers_close(a, b, f"{where}/{k}", rtol)
    elif isinstance(shipped, float) and not isinstance(again, bool):
        np.testing.assert_allclose(again, shipped, rtol=rtol, atol=ATOL, err_msg=where)
    else:
        assert again == shipped, where


def _assert_text_close(shipped: str, again: str) -> None:
    """The same text up to float noise: every number within one unit of its last printed
    digit (a rounding that tips over), hashes of float data aside."""
    shipped, again = SHA256.sub("<sha256>", shipped), SHA256.sub("<sha256>", again)
    words, numbers = NUMBER.split(shipped), NUMBER.findall(shipped)
    assert NUMBER.split(again) == words
    for a, b in zip(numbers, NUMBER.findall(again), strict=True):
        digits = len(a.split(".")[1]) if "." in a and "e" not in a else 0
        assert float(b) == pytest.approx(float(a), rel=RTOL, abs=10.0**-digits + ATOL), (a, b)


@pytest.mark.slow
def test_train_py_reproduces_the_shipped_model(tmp_path: Path) -> None:
    """`python train.py` (defaults) gives the shipped model: on any CPU, the same numbers up
    to float noise (RTOL); the additive model's metrics with other library versions too
    (those may move a float's last digits, and the comparison models more)."""
    assert main(["train", "--out", str(tmp_path)]) == 0
    shipped, again = read_manifest(), read_manifest(tmp_path)
    _assert_numbers_close(shipped["training_data"], again["training_data"], "training_data")
    for name, sets in shipped["metrics"].items():
        additive = sets["additive model"]
        assert again["metrics"][name]["additive model"] == pytest.approx(additive, abs=1e-6)
    shipped_report = json.loads((ROOT / "models" / METRICS_NAME).read_text())
    again_report = json.loads((tmp_path / METRICS_NAME).read_text())
    shipped_m, again_m = shipped_report["metrics"], again_report["metrics"]
    assert again_m == pytest.approx(shipped_m, abs=1e-6)
    if (again["libraries"], again["python"]) != (shipped["libraries"], shipped["python"]):
        return
    # The same library versions: every number of every file, within float noise.
    for name in ("model.json", "manifest.json"):
        _assert_numbers_close(json.loads((ROOT / "models" / name).read_text()),
                              json.loads((tmp_path / name).read_text()), name)  # fmt: skip
    _assert_text_close((ROOT / "models" / "MODEL_CARD.md").read_text(),
                       (tmp_path / "MODEL_CARD.md").read_text())  # fmt: skip
    # The report and its figures also depend on matplotlib's version, which metrics.json
    # records with the others. The figures are drawn from metrics.json: not compared.
    if again_report["software"] == shipped_report["software"]:
        _assert_numbers_close(shipped_report, again_report, METRICS_NAME)
        _assert_text_close((ROOT / "models" / REPORT_NAME).read_text(),
                           (tmp_path / REPORT_NAME).read_text())  # fmt: skip


def test_reproducibility_comparisons_tolerate_float_noise_only() -> None:
    document = {"coef": [0.1, -2.5e-7, 3.0], "fields": ["crp_mg_l"], "n": 5, "p": 0.25}
    noisy = {"coef": [0.1 + 1e-17, -2.5e-7 * (1 + 1e-9), 3.0 * (1 + 1e-12)], "fields":
             ["crp_mg_l"], "n": 5, "p": 0.25 + 1e-15}  # fmt: skip
    _assert_numbers_close(document, noisy)
    for changed in ({**noisy, "p": 0.2501}, {**noisy, "fields": ["age_years"]},
                    {**noisy, "coef": [0.1, -2.5e-7]}, {**noisy, "n": 6}):  # fmt: skip
        with pytest.raises(AssertionError):
            _assert_numbers_close(document, changed)
    _assert_text_close("AUC 0.667 (n 10,000), sha `" + "a" * 64 + "`",
                       "AUC 0.668 (n 10,000), sha `" + "b" * 64 + "`")  # fmt: skip
    with pytest.raises(AssertionError):
        _assert_text_close("AUC 0.667", "AUC 0.669")
    with pytest.raises(AssertionError):
        _assert_text_close("AUC 0.667 on held-out", "AUC 0.667 on fresh")


def test_shipped_model_card_and_manifest_agree() -> None:
    manifest = read_manifest()
    card = (ROOT / "models" / "MODEL_CARD.md").read_text()
    fresh = manifest["metrics"]["fresh cohort"]["additive model"]
    assert f"{fresh['auc']:.3f}" in card
    assert manifest["training_data"]["sha256"] in card
    smoothing = manifest["model"]["smoothing"]
    assert load_model().smoothing == {name: block["lambda"] for name, block in smoothing.items()}
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


def test_train_on_a_cohort_with_repeated_patients_says_so_and_keeps_them_in_one_fold(
    tmp_path, capsys
) -> None:
    data = _write_cohort(tmp_path / "mine.csv", n=300)
    text = data.read_text().splitlines(keepends=True)
    data.write_text("".join([*text, *text[1:21]]))  # 20 patients exported twice
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--out", str(out), "--bootstrap", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: 40 training rows share their patient_id with another row (lines 2, 3" in err
    manifest = read_manifest(out)
    assert manifest["training_data"]["repeated_patient_rows"] == 40
    assert "each patient's rows in one fold" in manifest["validation"]["internal"]
    assert "**Repeated patients**: 40 training rows" in (out / "MODEL_CARD.md").read_text()


@pytest.mark.slow
def test_train_on_user_data_refuses_bad_rows_and_trains_on_the_rest(tmp_path, capsys) -> None:
    data = _write_cohort(tmp_path / "mine.csv", responded=["maybe"], crp_mg_l=["", "high"])
    assert (  # the model written from the rest; exit 1 says records were refused
        main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--bootstrap", "0"]) == 1
    )
    err = capsys.readouterr().err
    assert "398 valid records, 2 refused" in err
    assert err.rstrip().endswith("exit code 1: 2 records of the file were refused (see above)")
    manifest = read_manifest(tmp_path / "m")
    assert manifest["training_data"]["n"] == 398
    assert manifest["training_data"]["n_refused"] == 2
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "2 further records of the file were left out for schema or CSV problems" in card
    assert manifest["training_data"]["source"].startswith("mine.csv")
    assert set(manifest["metrics"]) == {"cross-validated"}  # no fresh cohort for user data
    report = json.loads((tmp_path / "m" / METRICS_NAME).read_text())
    assert report["data"]["n"] == 398 and "cross-validation" in report["data"]["source"]


def test_train_on_a_cohort_without_signal_says_the_model_is_flat(tmp_path, capsys) -> None:
    # Outcomes shuffled: nothing predicts them, every term is shrunk to zero, and the model
    # gives everyone the base rate. That is the honest fit; the user must be told. (Some
    # shuffles leave a chance pattern the fit keeps: this one, as the test checks, does not.)
    cohort = simulate_cohort(300, seed=8).drop(columns=["true_probability"])
    cohort["responded"] = np.random.default_rng(3).permutation(cohort["responded"].to_numpy())
    cohort.to_csv(tmp_path / "noise.csv", index=False)
    out = tmp_path / "m"
    assert main(["train", "--data", str(tmp_path / "noise.csv"), "--out", str(out),
                 "--bootstrap", "0"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "warning: the data support no predictor" in err and "predictor update" in err
    manifest = read_manifest(out)
    assert manifest["model"]["prediction_sd"] < 0.01
    assert abs(manifest["model"]["prediction_mean"] - cohort["responded"].mean()) < 0.01
    card = (out / "MODEL_CARD.md").read_text()
    assert "**A flat model**: the data support no predictor" in card
    assert "A flat model" not in (ROOT / "models" / "MODEL_CARD.md").read_text()  # shipped
    assert read_manifest(ROOT / "models")["model"]["prediction_sd"] > 0.05


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


def test_train_with_too_few_of_an_outcome_says_how_many_are_needed(tmp_path, capsys) -> None:
    data = _write_cohort(tmp_path / "tiny.csv", n=15)  # 150 rows are enough: test_own_cohort.py
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "too few of an outcome to train: 15 usable rows" in err
    assert "at least 10 of each outcome are needed" in err


@pytest.mark.parametrize(
    ("command", "where"),
    [("train", ""), ("train", "sub"), ("train", ".."), ("update", ""), ("evaluate", "")],
)
def test_a_user_cohort_never_writes_into_the_shipped_model_folder(
    tmp_path, capsys, monkeypatch, command, where
) -> None:
    # The shipped folder stood in by a copy of it: the refusal must come before any write.
    shipped = tmp_path / "project" / "models"
    shutil.copytree(_artifact.SHIPPED_MODEL_DIR, shipped)
    before = {f.name: f.read_bytes() for f in shipped.iterdir() if f.is_file()}
    monkeypatch.setattr(_artifact, "SHIPPED_MODEL_DIR", shipped)
    data = _write_cohort(tmp_path / "c.csv")
    extra = ["--bootstrap", "0"] if command == "train" else []
    out = str(shipped / where) if where != ".." else str(shipped.parent)
    args = [command, "--data", str(data), "--out", out, *extra]
    other = shutil.copytree(shipped, tmp_path / "other")  # a base that is not the shipped one
    assert main([*args, "--model", str(other)] if command != "train" else args) == 2
    err = capsys.readouterr().err
    assert "the shipped model's folder" in err and err.count("\n") == 1
    assert {f.name: f.read_bytes() for f in shipped.iterdir() if f.is_file()} == before
    if command == "evaluate":  # which writes into --out: a folder that holds models/ will do
        args = [command, "--data", str(data), "--out", str(shipped.parent), "--model", str(other)]
        assert main(args) == 0
        assert (shipped.parent / "report.md").exists()
        assert {f.name: f.read_bytes() for f in shipped.iterdir() if f.is_file()} == before


def test_a_file_name_with_a_tab_or_bytes_that_are_not_utf8_makes_a_model_that_loads(
    tmp_path,
) -> None:
    # the name goes into the manifest as the source, which the manifest check holds to one
    # printable line: train checked its own manifest at the end and failed with exit 3
    cohort = simulate_cohort(300, seed=2)
    source = "clinic\tv2\udc80.csv (a user-supplied cohort)"
    train(cohort, seed=0, out=tmp_path / "m", source=source, simulated=False, bootstrap=0,
          progress=lambda _: None)  # fmt: skip
    assert read_manifest(tmp_path / "m")["training_data"]["source"] == (
        "clinic\\tv2\\udc80.csv (a user-supplied cohort)"
    )


def test_train_refuses_n_with_data(tmp_path, capsys) -> None:
    data = _write_cohort(tmp_path / "c.csv")
    assert main(["train", "--data", str(data), "--n", "500"]) == 2
    assert "--n" in capsys.readouterr().err


@pytest.mark.slow
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
    assert "line 2: age_years is not a number" in err
    assert "old" not in err  # no patient value in a summary


@pytest.mark.slow
@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("bdnf_ng_ml", "", "no training patient had a value"),
        ("slow_wave_sleep_pct", "17.25", "every training patient with a value had the same one"),
        (  # all distinct, all below the floor of its log scale: one value on that scale
            "crp_mg_l",
            [f"{0.0001 * (k + 1):.4f}" for k in range(400)],
            "every training patient with a value had at most 0.05 mg/L, the lowest value its "
            "scale tells apart",
        ),
        ("family_history_alcohol_use_disorder", "", None),  # a category: a learned missing term
    ],
    ids=["number-all-missing", "number-constant", "number-below-its-floor", "boolean-all-missing"],
)
def test_train_with_an_empty_or_constant_field_still_trains(
    tmp_path, capsys, column: str, value: str | list[str], why: str | None
) -> None:
    values = value if isinstance(value, list) else [value] * 400
    data = _write_cohort(tmp_path / "c.csv", n=400, **{column: values})
    assert (
        main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--bootstrap", "0"]) == 0
    )
    err = capsys.readouterr().err
    assert isinstance(value, list) or not value or value not in err  # no patient value
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


def test_train_on_outcomes_the_model_separates_writes_the_model_with_no_slope(
    tmp_path, capsys
) -> None:
    # the outcome leaked into a field (here: route alone decides it): the model separates the
    # responders from the others, no calibration slope exists, and JSON has no NaN; the files
    # were lost at the end with "internal error: ValueError" before
    cohort = simulate_cohort(300, seed=8).drop(columns=["true_probability"])
    cohort["responded"] = (cohort["route"] == "iv_ketamine").astype(int)
    data = tmp_path / "leaked.csv"
    cohort.to_csv(data, index=False)
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--out", str(out), "--bootstrap", "0"]) == 0
    err = capsys.readouterr().err
    assert "calibration slope n/a" in err and "nan" not in err
    metrics = read_manifest(out)["metrics"]["cross-validated"]["additive model"]
    assert metrics["calibration_slope"] is None and metrics["auc"] > 0.99
    card = (out / "MODEL_CARD.md").read_text()
    report = (out / "report.md").read_text()
    assert "nan" not in card and "nan" not in report and "n/a" in card
