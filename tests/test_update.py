"""Updating a model to a new site: the recalibrated kind, revision, and the choice between the
five candidates (``predictor._updating``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from predictor import ModelFileError, load_model, predict
from predictor._cli import main
from predictor._updating import (
    BASE,
    EVENTS_PER_PARAMETER,
    IN_THE_LARGE,
    LOGISTIC,
    REFIT,
    REVISION,
    _closed_test,
    choose_update,
)
from predictor.evaluation._card import _average_text, _missing_contributions
from predictor.evaluation._metrics import calibration_intercept, calibration_slope
from predictor.model import (
    RecalibratedModel,
    read_manifest,
    recalibrate,
    revise_additive_model,
    save_model,
    stratified_folds,
)
from predictor.model._artifact import model_from_json, model_to_json
from predictor.simulation import SECOND_SITE, simulate_cohort

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base():
    return load_model()


def _site(base, n: int, *, slope: float, shift: float, seed: int) -> pd.DataFrame:
    """Patients whose outcomes follow the base model's log-odds, scaled and moved: a site where
    logistic recalibration is the true model."""
    cohort = simulate_cohort(n, seed=seed).drop(columns=["true_probability"])
    logit = base.score(base.features.design(cohort)).logit
    truth = expit(shift + slope * logit)
    rng = np.random.default_rng([seed, 1])  # not the simulator's stream: its first draws
    return cohort.assign(responded=(rng.random(n) < truth).astype(float))


@pytest.mark.parametrize("method", ["logistic", "in the large"])
def test_recalibrate_matches_the_calibration_measures(base, method):
    site = _site(base, 3000, slope=0.6, shift=0.3, seed=4)
    y = site["responded"].to_numpy()
    model = recalibrate(base, site, y, method=method)
    p = base.score(base.features.design(site)).probability
    if method == "logistic":  # an independent fit: scikit-learn's
        assert model.slope == pytest.approx(calibration_slope(y, p), abs=1e-6)
        assert model.slope == pytest.approx(0.6, abs=0.15)
    else:
        assert model.slope == 1.0
        assert model.shift == pytest.approx(calibration_intercept(y, p), abs=1e-6)


def test_recalibrated_model_is_exactly_additive_and_widens_the_interval(base):
    site = _site(base, 2000, slope=0.7, shift=-0.2, seed=5)
    model = recalibrate(base, site, site["responded"].to_numpy())
    design = base.features.design(site.head(200))
    scores, base_scores = model.score(design), base.score(design)
    np.testing.assert_allclose(
        scores.logit, model.baseline + scores.contributions.sum(axis=1), atol=1e-12
    )
    np.testing.assert_allclose(scores.contributions, model.slope * base_scores.contributions)
    np.testing.assert_allclose(scores.logit, model.shift + model.slope * base_scores.logit)
    # The interval carries the base's uncertainty (scaled) and the recalibration's own.
    width = np.log(scores.high / (1 - scores.high)) - scores.logit
    base_width = np.log(base_scores.high / (1 - base_scores.high)) - base_scores.logit
    assert np.all(width > abs(model.slope) * base_width)
    bare = RecalibratedModel(base, model.method, model.shift, model.slope, np.zeros((2, 2)))
    bare_scores = bare.score(design)
    bare_width = np.log(bare_scores.high / (1 - bare_scores.high)) - bare_scores.logit
    np.testing.assert_allclose(bare_width, abs(model.slope) * base_width, rtol=1e-9)


def _log_likelihood(y: np.ndarray, logit: np.ndarray) -> float:
    p = expit(logit)
    return float(np.sum(y * np.log(p) + (1 - y) * np.log1p(-p)))


@pytest.mark.parametrize(("method", "df"), [("logistic", 2), ("in the large", 1)])
@pytest.mark.parametrize("n", [150, 3000])
def test_shrunk_recalibration_moves_the_base_by_van_houwelingens_factor(base, method, df, n):
    site = _site(base, n, slope=0.7, shift=0.25, seed=9)
    y = site["responded"].to_numpy()
    fitted = recalibrate(base, site, y, method=method)
    shrunk = recalibrate(base, site, y, method=method, shrink=True)
    base_logit = base.score(base.features.design(site)).logit
    statistic = 2 * (
        _log_likelihood(y, fitted.shift + fitted.slope * base_logit)
        - _log_likelihood(y, base_logit)
    )
    factor = max(0.0, (statistic - df) / statistic)
    assert fitted.shrinkage == 1.0
    assert shrunk.shrinkage == pytest.approx(factor, abs=1e-6)
    assert shrunk.shift == pytest.approx(factor * fitted.shift, abs=1e-6)
    assert shrunk.slope == pytest.approx(1 + factor * (fitted.slope - 1), abs=1e-6)
    np.testing.assert_array_equal(shrunk.covariance, fitted.covariance)
    if n == 3000:  # a change the data clearly support is kept almost whole
        assert shrunk.shrinkage > 0.9
    refitted = shrunk.refit(site, y, seed=0)  # cross-validation repeats the shrinkage
    assert refitted.shrinkage == pytest.approx(shrunk.shrinkage, abs=1e-9)
    assert "shrunk toward the base" in shrunk.summary().details


def test_a_recalibration_the_data_do_not_support_is_shrunk_to_the_base(base):
    site = _site(base, 400, slope=1.0, shift=0.0, seed=10)  # the base is the truth
    y = site["responded"].to_numpy()
    fitted = recalibrate(base, site, y)
    shrunk = recalibrate(base, site, y, shrink=True)
    design = base.features.design(site)
    statistic = 2 * (
        _log_likelihood(y, fitted.score(design).logit)
        - _log_likelihood(y, base.score(design).logit)
    )
    assert statistic <= 2.0, "this seed's site was meant to need no recalibration"
    assert shrunk.shrinkage == 0.0
    np.testing.assert_allclose(shrunk.score(design).logit, base.score(design).logit, atol=1e-12)


def test_recalibrated_model_round_trips_through_its_files(base, tmp_path):
    site = _site(base, 1000, slope=0.8, shift=0.1, seed=6)
    model = recalibrate(base, site, site["responded"].to_numpy())
    save_model(model, tmp_path, {})
    loaded = load_model(tmp_path)
    assert isinstance(loaded, RecalibratedModel)
    records = site.head(20)
    pd.testing.assert_frame_equal(predict(records, model=tmp_path), predict(records, model=model))
    refitted = loaded.refit(site, site["responded"].to_numpy(), seed=0)
    assert refitted.slope == pytest.approx(model.slope, abs=1e-9)
    shrunk = recalibrate(base, site, site["responded"].to_numpy(), shrink=True)
    assert 0.0 < shrunk.shrinkage < 1.0
    save_model(shrunk, tmp_path / "shrunk", {})
    assert load_model(tmp_path / "shrunk").shrinkage == shrunk.shrinkage


def test_a_recalibrated_model_file_without_shrinkage_loads_unshrunk(base):
    """Files written before shrinkage existed have no ``shrinkage``: they were not shrunk."""
    site = _site(base, 800, slope=0.8, shift=0.1, seed=7)
    document = json.loads(model_to_json(recalibrate(base, site, site["responded"].to_numpy())))
    del document["shrinkage"]
    assert model_from_json(json.dumps(document)).shrinkage == 1.0


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda d: d.update(slope=float("nan")), "slope"),
        (lambda d: d.update(slope=0.0), "slope"),
        (lambda d: d.update(method="isotonic"), "method"),
        (lambda d: d.update(method="in the large"), "in the large"),
        (lambda d: d.update(covariance=[[1.0, 2.0], [2.0, 1.0]]), "covariance"),
        (lambda d: d.update(covariance=[[1.0, 0.0], [0.1, 1.0]]), "covariance"),
        (lambda d: d.update(threshold=0.3), "threshold"),
        (lambda d: d.update(shrinkage=1.5), "shrinkage"),
        (lambda d: d.update(shrinkage=-0.1), "shrinkage"),
        (lambda d: d["base"].update(kind="recalibrated"), "additive"),
        (lambda d: d.pop("base"), "base"),
    ],
    ids=[
        "nan-slope",
        "zero-slope",
        "unknown-method",
        "in-the-large-with-a-slope",
        "covariance-not-psd",
        "covariance-not-symmetric",
        "threshold-differs-from-base",
        "shrinkage-above-1",
        "shrinkage-below-0",
        "base-not-additive",
        "no-base",
    ],
)
def test_tampered_recalibrated_model_is_refused(base, change, rule):
    site = _site(base, 800, slope=0.8, shift=0.1, seed=7)
    document = json.loads(model_to_json(recalibrate(base, site, site["responded"].to_numpy())))
    model_from_json(json.dumps(document))  # as written, it loads
    change(document)
    with pytest.raises(ModelFileError, match=rule):
        model_from_json(json.dumps(document), source="changed")


def test_revision_of_a_site_like_the_base_stays_at_the_base(base):
    """On patients drawn like the base's training cohort, revision finds (almost) nothing to
    change: each penalty holds its terms at the base's, scaled by the slope."""
    site = simulate_cohort(1500, seed=21)
    y = site["responded"].to_numpy()
    revised, report = revise_additive_model(base, site, y, slope=0.9, structure="pooled")
    assert sum(report.edf) < 3.0
    np.testing.assert_allclose(revised.coef, 0.9 * base.coef, atol=0.15)
    assert revised.features is base.features


def test_a_revision_says_its_terms_are_pulled_to_the_base_and_its_file_keeps_that(base):
    """A revision's term with no effective degrees of freedom is the base's, not zero: its
    summary (the card's Model section) says so, its model file keeps what it was pulled
    toward, and a refit (cross-validation's) revises again instead of fitting from scratch."""
    site = simulate_cohort(1500, seed=21)
    y = site["responded"].to_numpy()
    revised, _ = revise_additive_model(base, site, y, slope=0.9, structure="per term")
    assert revised.toward_base and not base.toward_base
    np.testing.assert_array_equal(revised.prior, 0.9 * base.coef)
    assert revised.shrunk_fields  # a site like the base's: terms it does not change
    details = " ".join(revised.summary().details.split())
    assert "pulling the term toward the model it revised" in details
    assert f"stays that model's (here: {', '.join(revised.shrunk_fields)})" in details
    assert "shrinks to zero" not in details
    assert "shrinks to zero" in " ".join(base.summary().details.split())
    # a field with no "not measured" term takes the first cohort's average, which is not the
    # site's: the card gives the contribution predict gives, not 0
    other = simulate_cohort(1500, seed=21, site=SECOND_SITE)  # older patients than the base's
    elsewhere, _ = revise_additive_model(base, other, other["responded"].to_numpy(), slope=0.9)
    term = elsewhere.features.terms[elsewhere.fields.index("age_years")]
    assert not term.learned_missing
    given = predict({"crp_mg_l": 0.9, "route": "iv_ketamine"}, model=elsewhere)
    contribution = given.contributions["age_years"]
    assert abs(contribution) > 0.005
    assert _average_text(_missing_contributions(elsewhere).get(term.field)) == (
        f"the first training cohort's average (contribution {contribution:+.3f})"
    )
    assert _average_text(_missing_contributions(base).get(term.field)) == (
        "training average (contribution 0)"
    )
    # a refit on the same rows, with the same smoothing, is the same revision
    again = revised.refit(site, y, seed=0)
    assert again.features is revised.features and again.toward_base
    np.testing.assert_allclose(again.coef, revised.coef, rtol=0, atol=1e-6)
    # the file keeps the prior; one of a fit from scratch has none
    document = json.loads(model_to_json(revised))
    np.testing.assert_array_equal(model_from_json(json.dumps(document)).prior, revised.prior)
    assert "prior" not in json.loads(model_to_json(base))
    for tampered in ([1.0, 2.0], [float("nan")] * len(base.coef), "yes"):
        document["prior"] = tampered
        with pytest.raises(ModelFileError, match="prior"):
            model_from_json(json.dumps(document), source="changed")


def test_a_revision_toward_a_zero_slope_is_a_fit_toward_zero(base):
    # logistic recalibration's slope can be 0 (no signal): the prior is then zero, and the
    # terms with no effective degrees of freedom are zero, as the summary says
    site = simulate_cohort(1500, seed=21)
    revised, _ = revise_additive_model(
        base, site, site["responded"].to_numpy(), slope=0.0, structure="per term"
    )
    assert not revised.toward_base
    assert "shrinks to zero" in " ".join(revised.summary().details.split())


def test_revision_learns_a_term_the_site_changes(base):
    """A site where CRP has the opposite effect: the revised CRP term follows the site."""
    site = simulate_cohort(3000, seed=22).drop(columns=["true_probability"])
    j = base.fields.index("crp_mg_l")
    scores = base.score(base.features.design(site))
    crp = scores.contributions[:, j]
    truth = expit(scores.logit - 2.0 * crp)  # the CRP term reversed
    y = (np.random.default_rng(3).random(len(site)) < truth).astype(float)
    revised, _ = revise_additive_model(base, site, y, structure="per term")
    revised_crp = revised.score(revised.features.design(site)).contributions[:, j]
    measured = site["crp_mg_l"].notna().to_numpy()
    assert np.corrcoef(revised_crp[measured], crp[measured])[0, 1] < -0.5


@pytest.mark.parametrize(
    ("ll", "expected"),
    [
        ({BASE: -100.0, IN_THE_LARGE: -99.7, LOGISTIC: -99.5}, BASE),  # LR 1.0 on 2 df
        ({BASE: -100.0, IN_THE_LARGE: -96.0, LOGISTIC: -95.9}, IN_THE_LARGE),
        ({BASE: -100.0, IN_THE_LARGE: -99.0, LOGISTIC: -95.0}, LOGISTIC),
        # At level 0.5, the shrinkage deciding how far: LR 1.6 on 2 df has p = 0.449, 1.2 0.549.
        ({BASE: -100.0, IN_THE_LARGE: -100.0, LOGISTIC: -99.2}, LOGISTIC),
        ({BASE: -100.0, IN_THE_LARGE: -100.0, LOGISTIC: -99.4}, BASE),
    ],
    ids=[
        "nothing-to-fix",
        "the-intercept-only",
        "intercept-and-slope",
        "p-0.449-updates",
        "p-0.549-keeps-the-base",
    ],
)
def test_closed_test_follows_vergouwe(ll, expected):
    chosen, tests = _closed_test(ll)
    assert chosen == expected
    assert tests[0].larger == LOGISTIC and tests[0].smaller == BASE and tests[0].df == 2
    assert len(tests) == (1 if expected == BASE else 2)


@pytest.mark.slow
def test_choose_update_recalibrates_a_miscalibrated_site(base):
    site = _site(base, 1200, slope=0.5, shift=0.4, seed=8)
    lines: list[str] = []
    choice = choose_update(base, site, progress=lines.append)
    assert choice.closed_test_choice == LOGISTIC
    assert choice.chosen in (LOGISTIC, REVISION)
    assert [c.name for c in choice.candidates] == [BASE, IN_THE_LARGE, LOGISTIC, REVISION, REFIT]
    assert any("fold 5 of 5" in line for line in lines)
    assert len(choice.scores.probability) == len(site)
    assert choice.chosen in "\n".join(choice.lines())


@pytest.mark.slow
def test_a_revision_the_sites_size_does_not_support_is_not_chosen(base):
    """On this second-site cohort of 150, cross-validation prefers a revision of about 14
    effective parameters, with 4 patients of the rarer outcome each, which did worse on 20,000
    new patients of the site (module docstring of ``predictor._updating``)."""
    cohort = simulate_cohort(150, seed=5, site=SECOND_SITE).drop(columns=["true_probability"])
    choice = choose_update(base, cohort)
    cv = {c.name: c for c in choice.candidates}
    assert cv[REVISION].cv_log_loss < cv[choice.closed_test_choice].cv_log_loss
    y = cohort["responded"].to_numpy()
    assert min(y.sum(), len(y) - y.sum()) / cv[REVISION].parameters < EVENTS_PER_PARAMETER
    assert choice.chosen == choice.closed_test_choice
    assert "revision: " in choice.why and "left out: " in choice.why


@pytest.mark.slow
def test_a_refit_that_uses_no_predictor_is_not_chosen(base):
    """On this second-site cohort of 150, the refit shrinks to its intercept alone (the same
    probability for everyone) and wins in cross-validated log-loss: 0.021 worse in Brier score
    on 20,000 new patients of the site than the recalibration the closed test chose."""
    cohort = simulate_cohort(150, seed=230, site=SECOND_SITE).drop(columns=["true_probability"])
    choice = choose_update(base, cohort)
    cv = {c.name: c for c in choice.candidates}
    assert cv[REFIT].parameters < 2.0
    assert cv[REFIT].cv_log_loss < cv[choice.closed_test_choice].cv_log_loss
    assert choice.chosen == choice.closed_test_choice == LOGISTIC
    assert "uses no predictor" in choice.why
    assert np.ptp(choice.scores.probability) > 0.1


@pytest.mark.slow
def test_choose_update_keeps_the_base_on_its_own_population(base):
    choice = choose_update(base, simulate_cohort(600, seed=23))
    assert choice.chosen in (BASE, IN_THE_LARGE, LOGISTIC)


def _site_file(tmp_path, n: int, seed: int):
    """A clinic's file from the second simulated site (no ``true_probability``)."""
    path = tmp_path / f"site{n}.csv"
    cohort = simulate_cohort(n, seed=seed, site=SECOND_SITE).drop(columns=["true_probability"])
    cohort.to_csv(path, index=False)
    return path, cohort


@pytest.mark.slow
def test_update_command_writes_a_model_that_predict_and_score_use(tmp_path, capsys):
    data, cohort = _site_file(tmp_path, 400, seed=3)
    out = tmp_path / "site_model"
    assert main(["update", "--data", str(data), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    manifest = read_manifest(out)
    update = manifest["update"]
    assert update["chosen"] in {BASE, IN_THE_LARGE, LOGISTIC, REVISION, REFIT}
    assert [c["name"] for c in update["candidates"]] == [
        BASE,
        IN_THE_LARGE,
        LOGISTIC,
        REVISION,
        REFIT,
    ]
    assert f"chosen: {update['chosen']}" in err and "closed test:" in err
    assert manifest["training_data"]["n"] == 400 and manifest["training_data"]["simulated"] is False
    card = (out / "MODEL_CARD.md").read_text()
    assert "## How the model was updated" in card and update["chosen"] in card
    assert "simulator" not in card and "oracle" not in card
    base_rules = "applied to the cohort the terms were first fitted on" in " ".join(card.split())
    assert base_rules == (update["chosen"] != REFIT)
    assert (out / "report.md").exists()
    records = cohort.drop(columns=["responded"]).head(30)
    scored = predict(records, model=out)
    assert scored["response_probability"].between(0, 1).all()
    records.to_csv(tmp_path / "patients.csv", index=False)
    args = ["score", str(tmp_path / "patients.csv"), "--out", str(tmp_path / "scored.csv")]
    assert main([*args, "--model", str(out), "--workers", "1"]) == 0
    written = pd.read_csv(tmp_path / "scored.csv")
    np.testing.assert_allclose(
        written["response_probability"], scored["response_probability"], atol=1e-6
    )


def test_update_command_refuses_its_data_inside_out_and_a_base_that_is_not_additive(
    tmp_path, capsys
):
    data, cohort = _site_file(tmp_path, 200, seed=4)
    inside = tmp_path / "out" / "site.csv"
    inside.parent.mkdir()
    inside.write_bytes(data.read_bytes())
    assert main(["update", "--data", str(inside), "--out", str(tmp_path / "out")]) == 2
    assert "inside --out" in capsys.readouterr().err
    y = cohort["responded"].to_numpy()
    base = load_model()
    save_model(recalibrate(base, cohort, y), tmp_path / "recalibrated", {})
    args = ["update", "--data", str(data), "--out", str(tmp_path / "again")]
    assert main([*args, "--model", str(tmp_path / "recalibrated")]) == 2
    err = capsys.readouterr().err
    assert "recalibrated model; update takes an additive model" in err
    assert not (tmp_path / "again").exists()


@pytest.mark.slow
def test_train_on_a_small_cohort_says_how_many_riley_asks_for_and_recommends_update(
    tmp_path, capsys
):
    data, _ = _site_file(tmp_path, 300, seed=5)
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--out", str(out), "--bootstrap", "20"]) == 0
    err = capsys.readouterr().err
    manifest = read_manifest(out)
    sample = manifest["sample_size"]
    assert sample["criteria"][0]["parameters"] > 90  # the candidate coefficients
    assert all(c["n"] > 1_000 for c in sample["criteria"]) and sample["enough"] is False
    assert "python -m predictor update" in sample["verdict"] and "predictor update" in err
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Sample size" in card and "Riley et al." in card
    boot = manifest["bootstrap"]
    assert boot["repeats"] == 20 and boot["corrected"]["auc"] < boot["apparent"]["auc"]
    assert "bootstrap optimism-corrected (20 resamples)" in err
    assert (
        "## Internal validation: bootstrap optimism correction" in (out / "report.md").read_text()
    )
    assert (out / "figures" / "instability.png").exists()


def _shipped_copy(tmp_path):
    """A copy of the shipped model's folder (its two files) to update and to attack."""
    folder = tmp_path / "base"
    folder.mkdir()
    for name in ("model.json", "manifest.json"):
        (folder / name).write_bytes((ROOT / "models" / name).read_bytes())
    return folder


@pytest.mark.parametrize("command", ["update", "evaluate", "score"])
def test_an_output_that_is_the_models_own_file_is_refused_before_anything_is_written(
    tmp_path, capsys, command
):
    data, _ = _site_file(tmp_path, 100, seed=6)
    base = _shipped_copy(tmp_path)
    before = (base / "model.json").read_bytes()
    target = str(base / "model.json")
    args = {
        "update": ["update", "--data", str(data), "--out", str(tmp_path / "o")],
        "evaluate": ["evaluate", "--data", str(data), "--out", str(tmp_path / "o")],
        "score": ["score", str(data), "--out", str(tmp_path / "o.csv")],
    }[command]
    assert main([*args, "--model", str(base), "--rejects", target]) == 2
    assert "the model's own model.json" in capsys.readouterr().err
    assert (base / "model.json").read_bytes() == before


def test_update_into_the_folder_of_its_base_is_refused(tmp_path, capsys):
    data, _ = _site_file(tmp_path, 100, seed=6)
    holder = tmp_path / "holder"
    holder.mkdir()
    base = _shipped_copy(holder)
    before = (base / "model.json").read_bytes()
    for out in (base, holder):  # the base's folder, or a folder holding it
        args = ["update", "--data", str(data), "--model", str(base), "--out", str(out)]
        assert main(args) == 2
        assert "holds the model to update" in capsys.readouterr().err
    assert (base / "model.json").read_bytes() == before


@pytest.mark.slow
def test_update_with_a_reversed_outcome_is_refused_with_the_likely_cause(tmp_path, capsys):
    data, cohort = _site_file(tmp_path, 400, seed=7)
    cohort.assign(responded=1 - cohort["responded"]).to_csv(data, index=False)
    assert main(["update", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "wrong way round" in err and "`responded` is 1 for a responder" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_update_on_a_file_of_few_fields_leaves_out_the_candidates_it_cannot_fit(tmp_path, capsys):
    """Age and MADRS only: the terms of every other field have no data, so revision cannot
    be fitted; it is said so, and the choice is made among the rest. No substance-use column:
    the report's figures draw a category no patient has."""
    data, cohort = _site_file(tmp_path, 300, seed=8)
    cohort[["patient_id", "age_years", "baseline_madrs", "responded"]].to_csv(data, index=False)
    out = tmp_path / "o"
    assert main(["update", "--data", str(data), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    update = read_manifest(out)["update"]
    failed = {c["name"]: c["failed"] for c in update["candidates"] if "failed" in c}
    assert update["chosen"] not in failed
    words = " ".join(err.split())
    assert failed and all(
        f"{name} could not be fitted: {' '.join(why.split())}" in words
        for name, why in failed.items()
    )
    card = (out / "MODEL_CARD.md").read_text()
    assert update["base_sha256"] == read_manifest(None)["artifact_sha256"]
    assert update["base_sha256"] in card
    fitted = {
        BASE: "Nothing was fitted on them",
        IN_THE_LARGE: "One number (the intercept)",
        LOGISTIC: "Two numbers",
        REVISION: "Every term was refitted",
        REFIT: "fitted from scratch",
    }[update["chosen"]]
    assert fitted in card and "none was held back" not in card.replace(
        "fitted from scratch on all 300 of them; none was held back", ""
    )


@pytest.mark.slow
def test_update_with_repeated_patients_says_so_and_keeps_them_in_one_fold(
    tmp_path, capsys, monkeypatch
):
    data, _ = _site_file(tmp_path, 300, seed=5)
    text = data.read_text().splitlines(keepends=True)
    data.write_text("".join([*text, *text[1:16]]))  # 15 patients exported twice
    seen = []

    def folds(y, k, seed, groups=None):
        seen.append(groups)
        return stratified_folds(y, k, seed, groups)

    monkeypatch.setattr("predictor._updating.stratified_folds", folds)
    out = tmp_path / "o"
    assert main(["update", "--data", str(data), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: 30 training rows share their patient_id with another row (lines 2, 3" in err
    (groups,) = seen  # the candidates' cross-validation
    assert groups is not None and (groups[:15] == groups[300:]).all()
    assert len(set(groups[:300])) == 300
    manifest = read_manifest(out)
    assert manifest["training_data"]["repeated_patient_rows"] == 30
    if manifest["update"]["chosen"] != BASE:
        assert "each patient's rows in one fold" in manifest["validation"]["internal"]
    assert "**Repeated patients**: 30 training rows" in (out / "MODEL_CARD.md").read_text()
