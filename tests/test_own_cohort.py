"""A clinic's own cohort (150 to 5,000 patients): no size refusal beyond 10 of each outcome,
``train --fields`` / ``--exclude``, a card and report that describe that cohort, and the
warning of ``evaluate`` on the training data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from predictor import load_model, predict, read_manifest
from predictor._cli import main
from predictor._params import InvalidParameterError
from predictor._training import MIN_PER_OUTCOME, MIN_SIMULATED_N, train
from predictor.evaluation import METRICS_NAME, REPORT_NAME, _comparison, model_card
from predictor.evaluation._card import is_simulated
from predictor.evaluation._comparison import Comparison
from predictor.io import score_csv
from predictor.model import MODEL_FIELDS
from predictor.simulation._synthetic import simulate_cohort

SLEEP = ("delta_sleep_ratio", "slow_wave_sleep_pct")
SYNTHETIC_PHRASES = (
    "The shipped model learned from simulated data",
    "simulat",  # the simulator, simulated data, a fresh simulated cohort
    "oracle",
    "bench/model_quality.py",
    "true probability",
    "Synthetic data",
    "It shows how the system works",
)
"""Sentences written for the synthetic cohort: none may appear in a user model's card."""


def _cohort(n: int, seed: int) -> pd.DataFrame:
    """A clinic's file: a simulated cohort without the simulator's ``true_probability``."""
    return simulate_cohort(n, seed=seed).drop(columns=["true_probability"])


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def no_sleep(tmp_path_factory) -> dict[str, Any]:
    """A clinic without sleep studies: 300 patients (one with a bad CRP), trained with
    ``--exclude delta_sleep_ratio,slow_wave_sleep_pct``; the comparison models' fields
    recorded."""
    where = tmp_path_factory.mktemp("no_sleep")
    cohort = _cohort(300, seed=5).astype(object)
    cohort.loc[cohort.index[0], "crp_mg_l"] = "high"
    data = _write(cohort, where / "clinic.csv")
    out = where / "model"
    compared: list[tuple[str, ...]] = []
    fit = Comparison.fit

    def recording(self, clean, responded, *, seed, fields):
        compared.append(tuple(fields))
        return fit(self, clean, responded, seed=seed, fields=fields)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Comparison, "fit", recording)
        # the folds on threads, so that this process sees the calls: forked processes, which
        # cross-validation uses where no other thread runs, record them in their own memory
        patch.setattr(_comparison, "can_fork", lambda: False)
        code = main(["train", "--data", str(data), "--out", str(out), "--exclude", ",".join(SLEEP)])
    assert code == 1  # the bad CRP's record refused, the model written from the rest
    return {"data": data, "out": out, "cohort": cohort, "compared": compared}


@pytest.mark.slow
def test_train_exclude_leaves_the_fields_out_of_the_model_and_its_comparisons(no_sleep) -> None:
    model = load_model(no_sleep["out"])
    expected = tuple(name for name in MODEL_FIELDS if name not in SLEEP)
    assert model.fields == expected
    # 5 folds x 2 comparison models, all on the model's fields
    assert no_sleep["compared"] == [expected] * 10
    manifest = read_manifest(no_sleep["out"])
    assert manifest["model"]["fields"] == list(expected)
    assert manifest["model"]["left_out_fields"] == list(SLEEP)
    assert set(manifest["model"]["shrunk_fields"]) <= set(expected)


@pytest.mark.slow
def test_train_manifest_records_the_cohort(no_sleep) -> None:
    data = read_manifest(no_sleep["out"])["training_data"]
    clean = no_sleep["cohort"].iloc[1:]  # the row with CRP "high" is refused
    assert data["n"] == 299 and data["n_refused"] == 1
    assert data["simulated"] is False
    assert data["source"].startswith("clinic.csv")
    assert list(data["missing"]) == [f for f in MODEL_FIELDS if f not in SLEEP]
    for field, share in data["missing"].items():
        assert share == pytest.approx(clean[field].isna().mean(), abs=1e-4), field
    assert data["missing"]["bdnf_ng_ml"] > 0  # the simulator leaves some out


@pytest.mark.slow
def test_user_model_card_describes_the_cohort_and_nothing_simulated(no_sleep) -> None:
    card = (no_sleep["out"] / "MODEL_CARD.md").read_text()
    # The sample-size section says where its anticipated R-squared came from: the shipped
    # (demonstration) model's validation, on simulated patients; nothing else may.
    head, _, rest = card.partition("\n## Sample size\n")
    sample_size, _, tail = rest.partition("\n## ")
    assert "the shipped model's external validation" in sample_size
    for phrase in SYNTHETIC_PHRASES:
        assert phrase.lower() not in (head + tail).lower(), phrase
    manifest = read_manifest(no_sleep["out"])
    assert "- Source: clinic.csv (a user-supplied cohort); 299 patients" in card
    assert "1 further record of the file was left out" in card
    assert "fitted on all 299 of them; none was held back" in card
    assert f"internal, by {manifest['validation']['internal']}" in card
    assert "no external validation" in card
    assert f"(response rate {manifest['training_data']['response_rate']:.3f})" in card
    assert "| field | training patients without a value |" in card
    for field, share in manifest["training_data"]["missing"].items():
        assert f"| `{field}` | {share:.1%} |" in card
    assert "Left out when it was trained" in card
    assert "`delta_sleep_ratio`, `slow_wave_sleep_pct`" in card
    for field in SLEEP:
        assert f"| `{field}` |" not in card  # in neither the predictors nor the missing table
    report = (no_sleep["out"] / REPORT_NAME).read_text()
    for phrase in SYNTHETIC_PHRASES[1:]:
        assert phrase.lower() not in report.lower(), phrase


@pytest.mark.slow
def test_model_without_sleep_fields_scores_a_file_without_them(no_sleep, tmp_path) -> None:
    patients = no_sleep["cohort"].drop(columns=[*SLEEP, "responded"]).iloc[1:21]
    source = _write(patients, tmp_path / "patients.csv")
    summary = score_csv(source, tmp_path / "scored.csv", model=no_sleep["out"])
    assert summary.rows_scored == 20 and summary.rows_rejected == 0
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert scored["response_probability"].between(0, 1).all()


@pytest.mark.slow
def test_model_without_sleep_fields_ignores_them_when_given(no_sleep) -> None:
    record = {"crp_mg_l": 0.5, "bdnf_ng_ml": 30.0, "delta_sleep_ratio": 9.5}
    record["slow_wave_sleep_pct"] = 55.0
    without = predict({"crp_mg_l": 0.5, "bdnf_ng_ml": 30.0}, model=no_sleep["out"])
    given = predict(record, model=no_sleep["out"])
    assert given.probability == without.probability
    assert set(given.contributions) == set(load_model(no_sleep["out"]).fields)
    shown = " ".join([*given.reasons, *given.warnings]).lower()
    assert "sleep" not in shown and "delta" not in shown


@pytest.mark.slow
def test_evaluate_on_the_training_data_warns_that_it_is_apparent_performance(
    no_sleep, tmp_path, capsys
) -> None:
    out = tmp_path / "report"
    args = ["evaluate", "--data", str(no_sleep["data"]), "--model", str(no_sleep["out"])]
    assert main([*args, "--out", str(out)]) == 1  # its bad CRP refused again
    err = capsys.readouterr().err
    assert "warning: these are the patients the model was fitted on" in err
    report = (out / REPORT_NAME).read_text()
    top = report.split("## Discrimination")[0]
    assert "these are the patients the model was fitted on" in top
    assert "apparent performance, optimistic" in top
    # The same patients in another order, without the sleep columns the model does not use
    # and with a column of its own: still its training patients.
    again = no_sleep["cohort"].drop(columns=list(SLEEP)).sample(frac=1.0, random_state=1)
    again.insert(3, "site", "Leeds")
    shuffled = _write(again, tmp_path / "shuffled.csv")
    args = ["evaluate", "--data", str(shuffled), "--model", str(no_sleep["out"])]
    assert main([*args, "--out", str(tmp_path / "shuffled")]) == 1
    assert "warning: these are the patients the model was fitted on" in capsys.readouterr().err
    # Other patients: no warning.
    other = _write(_cohort(150, seed=6), tmp_path / "other.csv")
    args = ["evaluate", "--data", str(other), "--model", str(no_sleep["out"])]
    assert main([*args, "--out", str(tmp_path / "other")]) == 0
    assert "fitted on" not in capsys.readouterr().err
    assert "fitted on" not in (tmp_path / "other" / REPORT_NAME).read_text()


@pytest.mark.slow
def test_train_and_evaluate_on_150_patients(tmp_path, capsys) -> None:
    data = _write(_cohort(150, seed=7), tmp_path / "small.csv")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 0
    assert read_manifest(tmp_path / "m")["training_data"]["n"] == 150
    assert main(["evaluate", "--data", str(data), "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / METRICS_NAME).read_text())["data"]["n"] == 150


def _few(n_responders: int, n_non_responders: int) -> pd.DataFrame:
    cohort = _cohort(400, seed=9)
    responders = cohort[cohort["responded"] == 1].head(n_responders)
    return pd.concat([responders, cohort[cohort["responded"] == 0].head(n_non_responders)])


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize(
    ("responders", "non_responders"),
    [(MIN_PER_OUTCOME - 1, 40), (40, MIN_PER_OUTCOME - 1), (0, 30)],
    ids=["few-responders", "few-non-responders", "one-outcome"],
)
def test_fewer_than_10_of_an_outcome_is_refused_with_the_counts(
    tmp_path, capsys, command: str, responders: int, non_responders: int
) -> None:
    data = _write(_few(responders, non_responders), tmp_path / "few.csv")
    out = tmp_path / "out"
    assert main([command, "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (
        f"too few of an outcome to {command}: {responders + non_responders} usable rows, "
        f"{responders} responders and {non_responders} non-responders; at least "
        f"{MIN_PER_OUTCOME} of each outcome are needed"
    ) in err
    assert not out.exists()


def test_train_function_refuses_too_few_of_an_outcome_before_fitting(tmp_path) -> None:
    cohort = simulate_cohort(400, seed=9)
    few = pd.concat([cohort[cohort["responded"] == 1].head(3), cohort[cohort["responded"] == 0]])
    with pytest.raises(ValueError, match=r"3 responders and \d+ non-responders; at least 10"):
        train(few, seed=0, out=tmp_path / "m", source="t", simulated=False, progress=print)
    assert not (tmp_path / "m").exists()


def test_train_n_has_a_minimum_tied_to_the_outcome_floor(capsys) -> None:
    assert MIN_SIMULATED_N >= 4 * MIN_PER_OUTCOME
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--n", str(MIN_SIMULATED_N - 1), "--out", "unused"])
    assert exit_.value.code == 2
    assert f"below the minimum, {MIN_SIMULATED_N}" in capsys.readouterr().err


ALL = ", ".join(MODEL_FIELDS)


NOT_A_PREDICTOR = "is not a predictor field of the schema;"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--fields", "crp_mg_l", "--exclude", "age_years"],
            "give --fields or --exclude, not both",
        ),
        (["--fields", "crp"], f"--fields: 'crp' {NOT_A_PREDICTOR} did you mean crp_mg_l?"),
        (["--exclude", "crp_mg_dl"], f"'crp_mg_dl' {NOT_A_PREDICTOR} did you mean crp_mg_l?"),
        (["--exclude", "delta_sleep"], f"{NOT_A_PREDICTOR} the predictor fields are {ALL}"),
        (
            ["--fields", "age_years,histroy_of_psychosis"],
            f"'histroy_of_psychosis' {NOT_A_PREDICTOR} it resembles history_of_psychosis, a "
            "safety field, not a model input",
        ),
        (["--exclude", "responded"], f"{NOT_A_PREDICTOR} it is an outcome field, not a model"),
        (["--fields", " , "], "--fields needs field names, separated by commas"),
        (["--exclude", ALL.replace(" ", "")], "--exclude leaves the model no field"),
    ],
    ids=["both", "alias-stem", "alias", "unknown", "safety-near-miss", "outcome", "empty", "all"],
)
def test_train_fields_and_exclude_usage_errors(
    tmp_path, capsys, options: list[str], message: str
) -> None:
    assert main(["train", "--n", "300", "--out", str(tmp_path / "m"), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert "simulating" not in err  # refused before the work
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "fields",
    [[], ["crp_mg_l", "crp_mg_l"], ["crp_mg_l", "history_of_psychosis"], "crp_mg_l"],
    ids=["empty", "repeated", "not-a-predictor", "a-string"],
)
def test_train_function_refuses_bad_fields_before_the_work(tmp_path, fields) -> None:
    cohort = simulate_cohort(200, seed=1)
    with pytest.raises(InvalidParameterError, match=r"train\(\): fields = .* must be None or"):
        train(cohort, seed=0, out=tmp_path / "m", source="t", simulated=True, fields=fields)
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_train_fields_with_a_simulated_cohort(tmp_path, capsys) -> None:
    out = tmp_path / "m"
    assert (
        main(
            [
                "train",
                *("--n", "300", "--fields", "route,crp_mg_l,age_years"),
                *("--out", str(out), "--bootstrap", "0"),
            ]
        )
        == 0
    )
    assert load_model(out).fields == ("age_years", "route", "crp_mg_l")  # in schema order
    manifest = read_manifest(out)
    assert manifest["training_data"]["simulated"] is True
    assert list(manifest["training_data"]["missing"]) == ["age_years", "route", "crp_mg_l"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "The model uses 3 of the schema's 14 predictor fields" in card
    for phrase in ("The shipped model learned from simulated data", "bench/model_quality.py"):
        assert phrase in card  # the simulated model keeps its sentences
    # The simulated training cohort, written by `simulate`, is its training data too.
    cohort = tmp_path / "cohort.csv"
    assert main(["simulate", "--n", "300", "--seed", "0", "--out", str(cohort)]) == 0
    capsys.readouterr()
    args = ["evaluate", "--data", str(cohort), "--model", str(out), "--out", str(tmp_path / "r")]
    assert main(args) == 0
    assert "warning: these are the patients the model was fitted on" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("training_data", "validation", "simulated"),
    [
        ({"simulated": True}, {"external": None}, True),
        ({"simulated": False}, {"external": "a fresh simulated cohort of 20,000 (seed 1)"}, False),
        ({}, {"external": "a fresh simulated cohort of 20,000 (seed 1)"}, True),
        ({}, {"external": None}, False),
        ({}, None, False),
    ],
    ids=["flag-true", "flag-false", "old-simulated", "old-user", "old-no-validation"],
)
def test_is_simulated_reads_the_flag_or_an_old_manifests_validation(
    training_data, validation, simulated
) -> None:
    manifest = {"training_data": training_data, "validation": validation}
    assert is_simulated(manifest) is simulated


def test_shipped_model_card_renders_from_its_manifest() -> None:
    """The shipped manifest predates ``simulated`` and ``missing``: its card still renders,
    keeps the simulated cohort's sentences, and takes the missingness from the training
    distribution."""
    manifest = read_manifest()
    card = model_card(load_model(), manifest)
    assert "The shipped model learned from simulated data" in card
    assert "bench/model_quality.py" in card
    n = manifest["training_data"]["n"]
    share = manifest["training_distribution"]["crp_mg_l"]["n_missing"] / n
    assert f"| `crp_mg_l` | {share:.1%} |" in card
    assert not re.search(r"\b1 further records\b|\bfurther rows were\b", card)
