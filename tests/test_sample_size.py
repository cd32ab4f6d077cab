"""Riley et al.'s minimum sample size for a binary-outcome model, and the Cox-Snell and
Nagelkerke R-squared, against published numbers, arithmetic done by hand and direct
computations.

Published numbers: the binary worked example of Riley et al. (Stat Med 2019;38:1276, a
diagnostic model for Chagas disease; reused by the BMJ 2020 paper and the pmsampsize manuals):
24 candidate parameters, outcome proportion 0.174, Cox-Snell R-squared 0.288; the abstract
publishes its EPP, 4.8. Its per-criterion sample sizes (623, 662, 221; minimum 662) are those
the authors' own package records in its test suite (pmsampsize, tests/testthat/test_bin.R,
"Test 4.1", with three more cases, used below). The full text of the papers was not at hand, so
the Nagelkerke-default case is checked against arithmetic written out in the test.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit
from sklearn.metrics import log_loss

from predictor._params import InvalidParameterError
from predictor.evaluation import SampleSize, cox_snell_r2, minimum_sample_size, nagelkerke_r2
from predictor.evaluation._sample_size import max_cox_snell_r2

CHAGAS = {"outcome_rate": 0.174, "parameters": 24, "r2_cs": 0.288}


def test_minimum_sample_size_reproduces_the_published_binary_example() -> None:
    size = minimum_sample_size(**CHAGAS)
    # max R2_CS: lnL_null / n = 0.174 ln 0.174 + 0.826 ln 0.826 = -0.304274 - 0.157899
    # = -0.462172; 1 - exp(2 * -0.462172) = 1 - exp(-0.924345) = 0.603209
    assert size.max_r2_cs == pytest.approx(0.603209, abs=1e-6)
    # (ii)'s shrinkage: 0.288 / (0.288 + 0.05 * 0.603209) = 0.288 / 0.318160 = 0.905204
    assert size.optimism_shrinkage == pytest.approx(0.905204, abs=1e-6)
    assert (size.n_shrinkage, size.n_optimism, size.n_outcome_rate) == (623, 662, 221)
    assert size.n == 662
    assert size.binding == "optimism"
    assert size.events == pytest.approx(662 * 0.174)  # 115.2
    assert round(size.events_per_parameter, 1) == 4.8  # the abstract's EPP
    assert size.r2_nagelkerke == pytest.approx(0.288 / 0.603209, abs=1e-6)


def test_minimum_sample_size_criteria_by_hand_for_the_published_example() -> None:
    """The same example, each criterion's unrounded value worked out by hand."""
    size = minimum_sample_size(**CHAGAS)
    # (i): ln(1 - 0.288 / 0.9) = ln(0.68) = -0.385662; 24 / (0.1 * 0.385662) = 622.31 -> 623
    # (ii): ln(1 - 0.288 / 0.905204) = ln(0.681840) = -0.382961;
    #       24 / (0.094796 * 0.382961) = 661.10 -> 662
    # (iii): (1.96 / 0.05)^2 * 0.174 * 0.826 = 1536.64 * 0.143724 = 220.85 -> 221
    assert (size.n_shrinkage, size.n_optimism, size.n_outcome_rate) == (623, 662, 221)


@pytest.mark.parametrize(
    ("inputs", "needs"),
    [
        ({"outcome_rate": 0.174, "parameters": 24, "r2_cs": 0.55}, (255, 532, 221, 532)),
        ({"outcome_rate": 0.174, "parameters": 36, "r2_cs": 0.288}, (934, 992, 221, 992)),
        ({"outcome_rate": 0.25, "parameters": 24, "r2_cs": 0.288}, (623, 590, 289, 623)),
    ],
    ids=["r2-0.55", "36-parameters", "rate-0.25"],
)
def test_minimum_sample_size_matches_the_authors_other_cases(
    inputs: dict[str, float], needs: tuple[int, int, int, int]
) -> None:
    size = minimum_sample_size(**inputs)
    assert (size.n_shrinkage, size.n_optimism, size.n_outcome_rate, size.n) == needs


def test_minimum_sample_size_default_is_nagelkerke_0_15() -> None:
    default = minimum_sample_size(outcome_rate=0.174, parameters=24)
    # R2_CS = 0.15 * 0.603209 = 0.0904813
    assert default.r2_cs == pytest.approx(0.0904813, abs=1e-7)
    assert default.r2_nagelkerke == pytest.approx(0.15)
    # (i): ln(1 - 0.0904813 / 0.9) = ln(0.899465) = -0.105955; 24 / (0.1 * 0.105955)
    #      = 2265.11 -> 2266
    assert default.n_shrinkage == 2266
    # (ii): S = 0.15 / (0.15 + 0.05) = 0.75 (max R2_CS cancels);
    #       ln(1 - 0.0904813 / 0.75) = ln(0.879358) = -0.128563; 24 / (0.25 * 0.128563)
    #       = 746.72 -> 747
    assert default.optimism_shrinkage == pytest.approx(0.75)
    assert default.n_optimism == 747
    assert default.n_outcome_rate == 221
    assert (default.n, default.binding) == (2266, "shrinkage")
    assert default.events == pytest.approx(2266 * 0.174)  # 394.3
    assert default.events_per_parameter == pytest.approx(2266 * 0.174 / 24)  # 16.4
    assert "conservative" in default.r2_source
    given_nagelkerke = minimum_sample_size(outcome_rate=0.174, parameters=24, r2_nagelkerke=0.15)
    assert given_nagelkerke.n == default.n
    assert given_nagelkerke.r2_cs == pytest.approx(default.r2_cs)


def test_minimum_sample_size_outcome_rate_criterion_by_hand() -> None:
    # (1.96 / 0.1)^2 * 0.5 * 0.5 = 384.16 * 0.25 = 96.04 -> 97
    size = minimum_sample_size(outcome_rate=0.5, parameters=1, r2_cs=0.3, margin=0.1)
    assert size.n_outcome_rate == 97
    # (1.96 / 0.05)^2 * 0.5 * 0.5 = 1536.64 * 0.25 = 384.16 -> 385
    assert minimum_sample_size(outcome_rate=0.5, parameters=1, r2_cs=0.3).n_outcome_rate == 385


def test_max_cox_snell_r2_is_three_quarters_at_one_half_and_symmetric() -> None:
    assert max_cox_snell_r2(0.5) == pytest.approx(0.75)  # 1 - (0.5^0.5 * 0.5^0.5)^2
    assert max_cox_snell_r2(0.174) == pytest.approx(max_cox_snell_r2(0.826))


rates = st.floats(0.02, 0.98)
nagelkerke = st.floats(0.02, 0.95)
counts = st.floats(1.0, 200.0)


@given(rate=rates, r2=nagelkerke, fewer=counts, extra=st.floats(0.0, 100.0))
def test_minimum_sample_size_more_parameters_never_need_fewer_patients(
    rate: float, r2: float, fewer: float, extra: float
) -> None:
    small = minimum_sample_size(outcome_rate=rate, parameters=fewer, r2_nagelkerke=r2)
    large = minimum_sample_size(outcome_rate=rate, parameters=fewer + extra, r2_nagelkerke=r2)
    assert large.n_shrinkage >= small.n_shrinkage
    assert large.n_optimism >= small.n_optimism
    assert large.n_outcome_rate == small.n_outcome_rate
    assert large.n >= small.n


@given(rate=rates, low=nagelkerke, high=nagelkerke, parameters=counts)
def test_minimum_sample_size_larger_r2_never_needs_more_for_overfitting(
    rate: float, low: float, high: float, parameters: float
) -> None:
    low, high = sorted((low, high))
    weak = minimum_sample_size(outcome_rate=rate, parameters=parameters, r2_nagelkerke=low)
    strong = minimum_sample_size(outcome_rate=rate, parameters=parameters, r2_nagelkerke=high)
    assert strong.n_shrinkage <= weak.n_shrinkage
    # (ii) too: its n is p x / (delta max (-ln(1 - x))) with x = R + delta max, which falls
    # as x rises
    assert strong.n_optimism <= weak.n_optimism


@given(rate=rates, r2=nagelkerke, parameters=counts)
def test_minimum_sample_size_is_the_largest_criterion_and_matches_closed_forms(
    rate: float, r2: float, parameters: float
) -> None:
    size = minimum_sample_size(outcome_rate=rate, parameters=parameters, r2_nagelkerke=r2)
    assert size.n == max(size.n_shrinkage, size.n_optimism, size.n_outcome_rate)
    assert size.events == pytest.approx(size.n * rate)
    assert size.events_per_parameter == pytest.approx(size.n * rate / parameters)
    # (ii) in closed form: S = R / (R + delta max), so 1 - R / S = 1 - R - delta max and
    # 1 - S = delta max / (R + delta max)
    x = size.r2_cs + 0.05 * size.max_r2_cs
    closed = parameters * x / (0.05 * size.max_r2_cs * -math.log(1 - x))
    assert closed - 1e-6 <= size.n_optimism < closed + 1 + 1e-6


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"outcome_rate": 0.0}, r"outcome_rate = 0.0 must be a float in \(0, 1\)"),
        ({"outcome_rate": 1.2}, r"outcome_rate = 1.2 must be a float in \(0, 1\)"),
        ({"parameters": 0}, r"parameters = 0 must be a float in \(0, inf\)"),
        ({"parameters": "24"}, r"parameters = '24' must be a float"),
        ({"r2_cs": 0.0}, r"r2_cs = 0.0 must be None or a float in \(0, 1\)"),
        ({"r2_cs": 0.7}, r"r2_cs = 0.7 must be below 0.6032, the largest Cox-Snell"),
        (
            {"r2_cs": 0.2, "r2_nagelkerke": 0.3},
            r"r2_nagelkerke = 0.3 must be None when r2_cs is given",
        ),
        ({"r2_nagelkerke": 1.0}, r"r2_nagelkerke = 1.0 must be None or a float in \(0, 1\)"),
        (
            {"r2_cs": 0.288, "shrinkage": 0.2},
            r"shrinkage = 0.2 must be above the anticipated Cox-Snell R-squared 0.288",
        ),
        ({"shrinkage": 1.0}, r"shrinkage = 1.0 must be a float in \(0, 1\)"),
        (
            {"outcome_rate": 0.5, "r2_nagelkerke": 0.5, "optimism": 0.9},
            r"optimism = 0.9 must be below 0.8333",
        ),
        ({"margin": 0.0}, r"margin = 0.0 must be a float in \(0, 1\)"),
        ({"r2_source": 3}, r"r2_source = 3 must be None or a str"),
        (
            {"outcome_rate": -1.0, "parameters": -2},
            r"outcome_rate = -1.0 must be .*; parameters = -2 must be",
        ),
    ],
    ids=[
        "rate-0",
        "rate-above-1",
        "no-parameters",
        "parameters-text",
        "r2-0",
        "r2-above-max",
        "both-r2",
        "nagelkerke-1",
        "shrinkage-below-r2",
        "shrinkage-1",
        "optimism-too-large",
        "margin-0",
        "source-not-text",
        "every-problem",
    ],
)
def test_minimum_sample_size_rejects_bad_inputs(arguments: dict[str, object], message: str) -> None:
    given_arguments = {"outcome_rate": 0.174, "parameters": 24, **arguments}
    with pytest.raises(InvalidParameterError, match=message) as caught:
        minimum_sample_size(**given_arguments)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith("minimum_sample_size(): ")


def test_sample_size_lines_say_what_binds_and_how_far_short() -> None:
    size = minimum_sample_size(**CHAGAS, r2_source="an existing model")
    lines = size.lines(500)
    assert lines[0].startswith("Minimum sample size (Riley et al. 2020): 662 patients, 115.2")
    assert "(4.8 per parameter)" in lines[0]
    assert "an existing model" in lines[1]
    criteria = [line for line in lines if line.lstrip().startswith("(")]
    assert [line.split(": ")[-1].split()[0] for line in criteria] == ["623", "662", "221"]
    assert [("sets the minimum" in line) for line in criteria] == [False, True, False]
    assert lines[-1] == "The cohort has 500 patients: 162 short of 662 (76% of it)."
    assert size.shortfall(500) == 162
    assert size.lines(662)[-1] == "The cohort has 662 patients: enough (662 needed)."
    assert size.shortfall(5000) == 0
    with pytest.raises(InvalidParameterError, match=r"n_available = -1 must be an int"):
        size.lines(-1)


def test_sample_size_to_dict_is_plain_json_and_the_value_is_frozen() -> None:
    size = minimum_sample_size(**CHAGAS)
    record = json.loads(json.dumps(size.to_dict()))
    assert record["n"] == 662 and record["binding"] == "optimism"
    assert record["r2_source"] == "Cox-Snell R2 given"
    assert {f.name for f in dataclasses.fields(SampleSize)} <= record.keys()
    assert record["max_r2_cs"] == pytest.approx(size.max_r2_cs, rel=1e-15)
    with pytest.raises(dataclasses.FrozenInstanceError):
        size.n = 1  # type: ignore[misc]


def _draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lp = rng.normal(-0.5, 1.2, n)
    y = (rng.random(n) < expit(lp)).astype(np.float64)
    return y, expit(0.8 * lp + 0.1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cox_snell_and_nagelkerke_r2_match_a_direct_computation(seed: int) -> None:
    y, p = _draw(2000, seed)
    n = len(y)
    model = -n * log_loss(y, p)  # scikit-learn's log-likelihoods, not ours
    null = -n * log_loss(y, np.full(n, y.mean()))
    direct = 1.0 - math.exp(2.0 * (null - model) / n)  # (L0 / L1)^(2/n), in logs
    assert cox_snell_r2(y, p) == pytest.approx(direct, rel=1e-10)
    largest = 1.0 - math.exp(2.0 * null / n)
    assert nagelkerke_r2(y, p) == pytest.approx(direct / largest, rel=1e-10)
    assert largest == pytest.approx(max_cox_snell_r2(float(y.mean())), rel=1e-12)


def test_cox_snell_r2_of_the_outcome_rate_is_zero() -> None:
    y, _ = _draw(500, 3)
    flat = np.full(len(y), y.mean())
    assert cox_snell_r2(y, flat) == pytest.approx(0.0, abs=1e-12)
    assert nagelkerke_r2(y, flat) == pytest.approx(0.0, abs=1e-12)


def test_nagelkerke_r2_of_near_perfect_predictions_is_near_one() -> None:
    y, _ = _draw(500, 4)
    sharp = np.where(y == 1.0, 1.0 - 1e-9, 1e-9)
    assert nagelkerke_r2(y, sharp) == pytest.approx(1.0, abs=1e-6)
    assert cox_snell_r2(y, sharp) == pytest.approx(max_cox_snell_r2(float(y.mean())), abs=1e-6)
    assert nagelkerke_r2(y, y) == pytest.approx(1.0, abs=1e-12)  # exactly 0 and 1


def test_cox_snell_r2_is_negative_for_predictions_worse_than_the_rate() -> None:
    y, p = _draw(1000, 5)
    assert cox_snell_r2(y, 1.0 - p) < 0.0


def test_cox_snell_r2_of_an_external_validation_feeds_minimum_sample_size() -> None:
    y, p = _draw(2000, 6)
    size = minimum_sample_size(
        outcome_rate=float(y.mean()), parameters=30, r2_cs=cox_snell_r2(y, p)
    )
    assert size.r2_nagelkerke == pytest.approx(nagelkerke_r2(y, p))


@pytest.mark.parametrize(
    ("y", "probability", "message"),
    [
        ([0, 1, 2], [0.1, 0.5, 0.9], r"y = an array holding 2 must be a 1-d array of 0/1"),
        ([1, 1, 1], [0.1, 0.5, 0.9], r"y = an array of one outcome must be 0/1 with both"),
        ([0, 1], [0.1, 0.5, 0.9], r"probability = an array of shape \(3,\) must be an array"),
        ([0, 1, 1], [0.1, 0.5, 1.5], r"probabilities in \[0, 1\]"),
    ],
    ids=["not-binary", "one-outcome", "lengths-differ", "not-probabilities"],
)
@pytest.mark.parametrize("function", [cox_snell_r2, nagelkerke_r2], ids=["cox-snell", "nagelkerke"])
def test_r2_rejects_bad_arrays(
    function: object, y: list[float], probability: list[float], message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        function(y, probability)  # type: ignore[operator]
