"""Harrell's bootstrap optimism correction, the prediction instability, and their part of the
evaluation report."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from predictor._params import InvalidParameterError
from predictor.evaluation import (
    BootstrapValidation,
    Report,
    bootstrap_validation,
    build_report,
    write_report,
)
from predictor.evaluation._bootstrap import BOOTSTRAP_METRICS, _resamples
from predictor.evaluation._card import _bootstrap_line
from predictor.evaluation._markdown import precision_note, report_markdown
from predictor.evaluation._metrics import metrics
from predictor.evaluation._report import (
    BOOTSTRAP_FIGURE_NAMES,
    INSTABILITY_POINTS,
    WIDE_AUC_INTERVAL,
)
from predictor.model import fit_additive_model
from predictor.simulation import simulate_cohort

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Predict = Callable[[pd.DataFrame], np.ndarray]


def _noise(n: int, columns: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, columns)), columns=[f"x{j}" for j in range(columns)])
    return frame, (rng.random(n) < 0.4).astype(np.float64)


def _logistic(rows: pd.DataFrame, y: np.ndarray) -> Predict:
    """Nearly unpenalised logistic regression on every column: overfits noise."""
    fit = LogisticRegression(C=1e4, max_iter=5000).fit(rows.to_numpy(), y)
    return lambda frame: fit.predict_proba(frame.to_numpy())[:, 1]


def _fixed(final: np.ndarray, clean: pd.DataFrame) -> Callable[[pd.DataFrame, np.ndarray], Predict]:
    """A refit that ignores its data: always the final model (a patient's probability found by
    the frame's index)."""
    by_row = pd.Series(final, index=clean.index)

    def refit(rows: pd.DataFrame, y: np.ndarray) -> Predict:
        return lambda frame: by_row.loc[frame.index].to_numpy()

    return refit


@pytest.fixture(scope="module")
def noise() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame, y = _noise(150, 25, seed=5)
    return frame, y, _logistic(frame, y)(frame)


def test_bootstrap_validation_fixed_model_has_no_optimism_or_instability(noise) -> None:
    frame, y, _ = noise
    final = np.random.default_rng(1).random(len(y))
    result = bootstrap_validation(
        frame, y, refit=_fixed(final, frame), final=final, repeats=60, seed=2, threshold=0.5
    )
    apparent = metrics(y, final)
    for key in BOOTSTRAP_METRICS:
        m = result.metrics[key]
        assert m.apparent == pytest.approx(getattr(apparent, key), rel=1e-12), key
        # the model scored on the original patients is the final model, every time
        np.testing.assert_array_equal(result.resample[key][:, 1], m.apparent)
        assert m.corrected == pytest.approx(m.apparent - m.optimism, abs=1e-15)
    # What is left is the resampling noise of the apparent metric itself, mean zero: a few
    # standard errors of a mean of 60.
    assert abs(result.metrics["auc"].optimism) < 0.015
    assert abs(result.metrics["brier"].optimism) < 0.01
    assert result.mape == 0.0 and result.classification_instability == 0.0
    np.testing.assert_array_equal(result.low, final)
    np.testing.assert_array_equal(result.high, final)
    assert result.failed == 0 and result.models == 60 and result.probability.shape == (60, 150)


def test_bootstrap_validation_corrects_an_overfit_model_on_noise(noise) -> None:
    frame, y, final = noise
    result = bootstrap_validation(
        frame, y, refit=_logistic, final=final, repeats=40, seed=3, threshold=0.4
    )
    auc = result.metrics["auc"]
    assert auc.apparent == pytest.approx(roc_auc_score(y, final))
    assert auc.apparent > 0.7  # 25 noise columns, 150 patients
    assert auc.corrected == pytest.approx(0.5, abs=0.07)
    assert auc.optimism > 0.12
    slope = result.metrics["calibration_slope"]
    assert slope.apparent == pytest.approx(1.0, abs=0.01)  # the MLE on its own data
    assert slope.corrected < 0.6  # predictions far too extreme for new patients
    assert result.metrics["brier"].corrected > result.metrics["brier"].apparent
    assert result.mape > 0.1 and result.classification_instability > 0.1


@pytest.mark.parametrize("n_jobs", [1, 2], ids=["one-thread", "two-threads"])
def test_bootstrap_validation_same_seed_same_numbers_whatever_n_jobs(noise, n_jobs) -> None:
    frame, y, final = noise

    def run(seed: int, jobs: int) -> BootstrapValidation:
        return bootstrap_validation(
            frame,
            y,
            refit=_logistic,
            final=final,
            repeats=8,
            seed=seed,
            threshold=0.4,
            n_jobs=jobs,
        )

    first, again = run(7, 1), run(7, n_jobs)
    np.testing.assert_array_equal(first.probability, again.probability)
    assert first.metrics == again.metrics
    other = run(8, n_jobs)
    assert not np.array_equal(first.probability, other.probability)


def test_bootstrap_validation_draws_a_one_outcome_resample_again() -> None:
    frame, _ = _noise(20, 2, seed=1)
    y = np.zeros(20)
    y[3] = 1.0  # one responder: about a third of the resamples leave it out
    seen: list[float] = []

    final = np.linspace(0.05, 0.6, 20)

    def refit(rows: pd.DataFrame, y_rows: np.ndarray) -> Predict:
        seen.append(float(y_rows.sum()))
        return _fixed(final, frame)(rows, y_rows)

    result = bootstrap_validation(
        frame, y, refit=refit, final=final, repeats=30, seed=4, threshold=0.5
    )
    assert result.redrawn > 0 and result.repeats == 30 and len(seen) == 30
    assert min(seen) >= 1.0  # every resample fitted holds the responder


def test_bootstrap_validation_counts_failed_refits_and_skips_them(noise) -> None:
    frame, y, final = noise

    def refit(rows: pd.DataFrame, y_rows: np.ndarray) -> Predict:
        if y_rows.sum() % 2:
            raise ValueError("cannot fit this one")
        return _logistic(rows, y_rows)

    result = bootstrap_validation(
        frame, y, refit=refit, final=final, repeats=12, seed=5, threshold=0.4
    )
    drawn, _ = _resamples(y, 12, 5)
    expected = sum(int(y[index].sum()) % 2 for index in drawn)
    assert 0 < expected < 12  # the seed gives both kinds
    assert result.failed == expected and result.models == 12 - expected
    assert result.probability.shape == (12 - expected, len(y))


def test_bootstrap_validation_every_refit_failing_is_an_error(noise) -> None:
    frame, y, final = noise

    def refit(rows: pd.DataFrame, y_rows: np.ndarray) -> Predict:
        raise ValueError("never")

    with pytest.raises(ValueError, match="every one of the 3 bootstrap refits failed"):
        bootstrap_validation(frame, y, refit=refit, final=final, repeats=3, seed=1, threshold=0.5)


def test_bootstrap_validation_classification_instability_counts_label_flips() -> None:
    frame, _ = _noise(4, 1, seed=1)
    y = np.array([0.0, 1.0, 0.0, 1.0])
    final = np.array([0.2, 0.45, 0.55, 0.9])
    shifted = final + 0.1  # every bootstrap model: patient 2 crosses 0.5, the others do not

    result = bootstrap_validation(
        frame,
        y,
        refit=lambda rows, y_rows: (
            lambda f: shifted[: len(f)] if len(f) == 4 else np.full(len(f), 0.5)
        ),
        final=final,
        repeats=5,
        seed=1,
        threshold=0.5,
    )
    np.testing.assert_array_equal(result.patient_instability, [0.0, 1.0, 0.0, 0.0])
    assert result.classification_instability == pytest.approx(0.25)
    assert result.mape == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"repeats": 0}, r"repeats = 0 must be an int in \[1, inf\)"),
        ({"threshold": 1.5}, r"threshold = 1.5 must be a float in \(0, 1\)"),
        ({"n_jobs": 0}, "n_jobs = 0"),
        ({"refit": "logistic"}, "refit = 'logistic' must be a callable"),
    ],
    ids=["repeats", "threshold", "n_jobs", "refit"],
)
def test_bootstrap_validation_refuses_bad_parameters(noise, change, match) -> None:
    frame, y, final = noise
    arguments = {"refit": _logistic, "final": final, "seed": 1, "threshold": 0.5, **change}
    with pytest.raises(InvalidParameterError, match=match):
        bootstrap_validation(frame, y, **arguments)


def test_bootstrap_validation_needs_one_probability_per_row(noise) -> None:
    frame, y, final = noise
    with pytest.raises(ValueError, match="one outcome and one probability per row"):
        bootstrap_validation(frame, y, refit=_logistic, final=final[:-1], seed=1, threshold=0.5)


# ---------------------------------------------------------------------------------------------
# The report's section


@pytest.fixture(scope="module")
def small() -> tuple[object, pd.DataFrame, BootstrapValidation]:
    """An additive model on 200 patients and its bootstrap validation (12 resamples)."""
    cohort = simulate_cohort(200, seed=9)
    y = cohort["responded"].to_numpy()

    def refit(rows: pd.DataFrame, y_rows: np.ndarray) -> Predict:
        model, _ = fit_additive_model(rows, y_rows, structure="pooled")
        return lambda frame: model.score(model.features.design(frame)).probability

    model, _ = fit_additive_model(cohort, y, structure="pooled")
    final = model.score(model.features.design(cohort)).probability
    result = bootstrap_validation(
        cohort, y, refit=refit, final=final, repeats=12, seed=1, threshold=model.threshold
    )
    return model, cohort, result


@pytest.fixture(scope="module")
def boot_report(small) -> Report:
    model, cohort, result = small
    return build_report(
        model, cohort, manifest={}, source="the training patients", bootstrap=result
    )


def test_build_report_bootstrap_section_round_trips_through_json(small, boot_report) -> None:
    _, cohort, result = small
    section = boot_report.bootstrap
    assert section is not None
    assert (section.n, section.repeats, section.failed) == (200, 12, 0)
    assert section.responders == int(cohort["responded"].sum())
    assert section.metrics == result.metrics
    assert section.instability.mape == pytest.approx(result.mape)
    assert len(section.instability.point_final) == 12 * 200  # fewer than INSTABILITY_POINTS
    assert INSTABILITY_POINTS < 12 * 200 * 2
    data = json.loads(json.dumps(boot_report.to_json(), allow_nan=False))
    assert list(data)[-1] == "bootstrap"
    auc = dataclasses.asdict(result.metrics["auc"])
    assert auc.pop("models") is None  # every model had an AUC: left out of the JSON
    assert data["bootstrap"]["metrics"]["auc"] == auc
    again = Report.from_json(data)
    assert again.bootstrap == section
    assert again.to_json() == data


def test_build_report_without_bootstrap_has_no_section(small) -> None:
    model, cohort, _ = small
    report = build_report(model, cohort, manifest={}, source="x")
    assert report.bootstrap is None and "bootstrap" not in report.to_json()
    assert Report.from_json(report.to_json()).bootstrap is None


def test_build_report_instability_points_are_subsampled_not_the_curves(small) -> None:
    model, cohort, result = small
    many = dataclasses.replace(
        result, probability=np.tile(result.probability, (2, 1))
    )  # 24 models x 200 patients: more pairs than are drawn
    section = build_report(model, cohort, manifest={}, source="x", bootstrap=many).bootstrap
    assert section is not None
    s = section.instability
    assert len(s.point_final) == len(s.point_bootstrap) == INSTABILITY_POINTS
    assert len(s.patient_final) == len(s.patient_instability) == 200  # every patient
    np.testing.assert_allclose(s.patient_instability, many.patient_instability, atol=5e-5)
    assert len(s.final) == len(s.low) == len(s.high) >= 10
    assert all(lo <= hi for lo, hi in zip(s.low, s.high, strict=True))
    assert np.all(np.diff(s.final) >= 0)


def test_write_report_with_bootstrap_draws_the_instability_figure(
    boot_report, small, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    from predictor.evaluation import _figures

    # this figure only: the others are tested in test_report.py, and cost seconds
    drawers = {"instability": _figures.DRAWERS["instability"]}
    monkeypatch.setattr(_figures, "DRAWERS", drawers)
    files = write_report(boot_report, tmp_path)
    figure = tmp_path / "figures" / BOOTSTRAP_FIGURE_NAMES["instability"]
    assert figure.read_bytes().startswith(PNG_MAGIC) and figure.stat().st_size > 5000
    assert files.figures is not None and files.figures["instability"] == "figures/instability.png"
    text = files.report.read_text()
    assert "## Internal validation: bootstrap optimism correction" in text
    auc = boot_report.bootstrap.metrics["auc"]
    assert f"| AUC | {auc.apparent:.3f} | {auc.optimism:+.3f} | **{auc.corrected:.3f}** |" in text
    assert "(figures/instability.png)" in text and "12 bootstrap resamples" in text
    assert json.loads(files.metrics.read_text())["bootstrap"]["repeats"] == 12
    # the same folder, a report without the bootstrap: the old figure goes
    model, cohort, _ = small
    write_report(build_report(model, cohort, manifest={}, source="x"), tmp_path)
    assert not figure.exists()
    assert "bootstrap optimism" not in (tmp_path / "report.md").read_text()


def test_report_markdown_says_plainly_when_the_auc_interval_is_wide(boot_report) -> None:
    m = boot_report.metrics
    wide = dataclasses.replace(
        boot_report, metrics=dataclasses.replace(m, auc_low=0.52, auc_high=0.71)
    )
    note = precision_note(wide)
    data = boot_report.data
    assert (
        f"With {data.n} patients ({data.responders} responders) these estimates are imprecise: "
        "the AUC's 95% interval runs from 0.52 to 0.71" in note
    )
    narrow = dataclasses.replace(
        boot_report,
        metrics=dataclasses.replace(m, auc_low=0.70, auc_high=0.70 + WIDE_AUC_INTERVAL - 0.01),
    )
    assert precision_note(narrow) == ""


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=2, max_size=30),
    seed=st.integers(0, 2**32 - 1),
    shuffle=st.randoms(use_true_random=False),
)
def test_resamples_with_groups_draw_whole_patients(sizes, seed, shuffle) -> None:
    groups = np.repeat(np.arange(len(sizes)), sizes)
    shuffle.shuffle(groups)  # a patient's rows need not be next to each other
    y = np.arange(len(groups)) % 2.0  # both outcomes in any resample of 2+ rows
    drawn, _ = _resamples(y, 5, seed, groups)
    members = {g: np.flatnonzero(groups == g).tolist() for g in range(len(sizes))}
    for index in drawn:
        position = 0
        patients = 0
        while position < len(index):  # the resample is whole patients, one after another
            rows = members[int(groups[index[position]])]
            assert index[position : position + len(rows)].tolist() == rows
            position += len(rows)
            patients += 1
        assert patients == len(sizes)  # as many patients drawn as there are


def test_resamples_without_groups_are_the_row_draws_of_before() -> None:
    y = np.arange(50) % 2.0
    rng = np.random.default_rng(7)
    expected = [rng.integers(0, 50, size=50) for _ in range(3)]
    for index, wanted in zip(_resamples(y, 3, 7)[0], expected, strict=True):
        np.testing.assert_array_equal(index, wanted)


def _memorising(rows: pd.DataFrame, y: np.ndarray) -> Predict:
    """A refit that remembers each row it saw (0 or 1) and knows nothing else (0.5)."""
    seen = dict(zip(map(tuple, rows.to_numpy()), y, strict=True))
    return lambda frame: np.array([seen.get(tuple(r), 0.5) for r in frame.to_numpy()])


def test_bootstrap_with_patients_exported_twice_draws_patients_and_finds_the_optimism() -> None:
    # Every patient twice (two courses, the same values): drawn row by row, a resample holds at
    # least one of a patient's two rows 86% of the time, so a model that memorises its rows is
    # "tested" on patients it has seen and the optimism is understated; drawn by patient, 63%.
    frame, y = _noise(120, 3, seed=4)
    twice, y2 = pd.concat([frame, frame], ignore_index=True), np.concatenate([y, y])
    groups = np.tile(np.arange(120), 2)
    final = np.asarray(y2, dtype=np.float64)
    common = dict(refit=_memorising, final=final, repeats=40, seed=3, threshold=0.5)
    by_row = bootstrap_validation(twice, y2, **common)
    by_patient = bootstrap_validation(twice, y2, groups=groups, **common)
    assert by_row.patients is None and by_patient.patients == 120
    row_auc = by_row.metrics["auc"].optimism
    patient_auc = by_patient.metrics["auc"].optimism
    # Seen patients get their own outcome (0 or 1), unseen ones 0.5: the test AUC is
    # 1 - (1 - seen)^2 / 2 (unseen responder against unseen non-responder: a tie), the
    # apparent 1, so the optimism is (1 - seen)^2 / 2, seen 1 - e^-1 or 1 - e^-2.
    assert patient_auc == pytest.approx(0.5 * np.exp(-2.0), abs=0.02)
    assert row_auc == pytest.approx(0.5 * np.exp(-4.0), abs=0.02)
    assert patient_auc > 3 * row_auc
    with pytest.raises(ValueError, match="groups has 3 labels for 240 rows"):
        bootstrap_validation(twice, y2, groups=np.arange(3), **common)


def test_bootstrap_report_says_patients_were_drawn_with_their_rows(small) -> None:
    model, cohort, result = small
    grouped = dataclasses.replace(result, patients=150)
    report = build_report(model, cohort, manifest={}, source="x", bootstrap=grouped)
    assert report.bootstrap is not None and report.bootstrap.patients == 150
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["bootstrap"]["patients"] == 150
    assert Report.from_json(data).bootstrap == report.bootstrap
    text = " ".join(report_markdown(report, None).split())
    assert (
        "resamples of the 150 patients the model was fitted on (200 rows, a patient's rows "
        "drawn together;" in text
    )
    plain = build_report(model, cohort, manifest={}, source="x", bootstrap=result)
    assert "patients" not in plain.to_json()["bootstrap"]  # as before, for rows drawn alone
    assert "resamples of the 200 patients the model" in " ".join(
        report_markdown(plain, None).split()
    )


def test_bootstrap_leaves_out_models_with_no_finite_slope_and_says_so(small) -> None:
    model, cohort, _ = small
    y = cohort["responded"].to_numpy()
    final = model.score(model.features.design(cohort)).probability
    rng = np.random.default_rng(0)  # refits run one at a time (n_jobs=1): the same draws

    def refit(rows: pd.DataFrame, y_rows: np.ndarray) -> Predict:
        # every other refit separates its resample perfectly (no finite slope there)
        if rng.random() < 0.5:
            seen = pd.Series(y_rows, index=rows.index).groupby(level=0).first()
            return lambda frame: (
                np.where(frame.index.isin(seen.index), seen.reindex(frame.index).fillna(0.5), 0.5)
                * 0.98
                + 0.01
            )
        return lambda frame: model.score(model.features.design(frame)).probability

    result = bootstrap_validation(
        cohort, y, refit=refit, final=final, repeats=20, seed=3, threshold=0.5, n_jobs=1
    )
    slope = result.metrics["calibration_slope"]
    assert slope.models is not None and 0 < slope.models < 20
    assert np.isfinite(slope.optimism) and np.isfinite(slope.corrected)
    assert result.metrics["auc"].models is None  # every model has an AUC
    report = build_report(model, cohort, manifest={}, source="x", bootstrap=result)
    text = " ".join(report_markdown(report, None).split())
    assert f"calibration slope (ideal 1): {slope.models} of 20" in text
    line = _bootstrap_line(report)
    assert f"the calibration slope from {slope.models} of the 20 refits (the others" in line
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["bootstrap"]["metrics"]["calibration_slope"]["models"] == slope.models
    assert "models" not in data["bootstrap"]["metrics"]["auc"]
    assert Report.from_json(data).bootstrap == report.bootstrap


def test_bootstrap_with_no_finite_slope_at_all_reports_it_as_not_available(small) -> None:
    model, cohort, _ = small
    y = cohort["responded"].to_numpy()
    final = model.score(model.features.design(cohort)).probability
    result = bootstrap_validation(  # every refit gives everyone one probability
        cohort,
        y,
        refit=lambda rows, y_rows: lambda f: np.full(len(f), y_rows.mean()),
        final=final,
        repeats=5,
        seed=1,
        threshold=0.5,
    )
    slope = result.metrics["calibration_slope"]
    assert slope.models == 0 and np.isnan(slope.optimism) and np.isnan(slope.corrected)
    report = build_report(model, cohort, manifest={}, source="x", bootstrap=result)
    text = report_markdown(report, None)
    assert f"| calibration slope (ideal 1) | {slope.apparent:.2f} | n/a | **n/a** |" in text
