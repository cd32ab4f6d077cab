"""Sparse scoring: each value touches at most four basis functions, so contributions and the
interval's ``x' V x`` come from each row's nonzero basis columns; they must equal the dense
design's arithmetic (kept here as the reference) to 1e-12, on random and edge inputs."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import BSpline, PPoly
from scipy.special import expit, ndtri

from data_schemas import FIELDS_BY_NAME, Kind
from predictor import load_model
from predictor.model import INTERVAL_LEVEL, AdditiveModel, Scores
from predictor.model._additive import _Z, _probabilities, fit_additive_model
from predictor.model._features import MODEL_FIELDS, SparseDesign, _pieces, from_model_scale
from predictor.simulation._synthetic import simulate_cohort

TOLERANCE = 1e-12


def dense_scores(model: AdditiveModel, design: np.ndarray) -> Scores:
    """The dense arithmetic scoring used before sparse scoring: every design column of every
    row, ``(design * coef) @ membership`` and ``x' V x`` with the full covariance."""
    terms = (design * model.coef) @ model.features.membership
    contributions = terms - model.term_means
    logit = model.baseline + contributions.sum(axis=1)
    covariance = model.covariance
    variance = (
        covariance[0, 0]
        + 2.0 * (design @ covariance[0, 1:])
        + np.einsum("ij,ij->i", design @ covariance[1:, 1:], design)
    )
    half_width = ndtri(0.5 + INTERVAL_LEVEL / 2) * np.sqrt(np.maximum(variance, 0.0))
    return Scores(
        logit, expit(logit), expit(logit - half_width), expit(logit + half_width), contributions
    )


def _fitted(cohort: pd.DataFrame, fields: tuple[str, ...] | None = None) -> AdditiveModel:
    model, _ = fit_additive_model(
        cohort, cohort["responded"].to_numpy(), smoothing=10.0, fields=fields
    )
    return model


def _few_missing() -> AdditiveModel:
    """Fields missing for fewer than 20 training patients: their missing value is the term's
    training average (a dense row), not a column of its own."""
    cohort = simulate_cohort(1500, seed=5)
    for name in ("crp_mg_l", "bdnf_ng_ml", "sex", "family_history_alcohol_use_disorder"):
        values = cohort[name].copy()
        values[values.isna()] = values.dropna().iloc[0]
        values.iloc[:5] = np.nan
        cohort[name] = values
    return _fitted(cohort)


def _unused_fields() -> AdditiveModel:
    """A field no training patient had and one with a single value: terms without columns."""
    cohort = simulate_cohort(1500, seed=6)
    cohort["delta_sleep_ratio"] = np.nan
    cohort["slow_wave_sleep_pct"] = np.where(cohort["slow_wave_sleep_pct"].isna(), np.nan, 9.0)
    return _fitted(cohort)


def _chosen_smoothing() -> AdditiveModel:
    """Smoothing chosen by LAML on a small cohort (its structure too), with the corrected
    covariance behind the intervals."""
    cohort = simulate_cohort(800, seed=8)
    model, _ = fit_additive_model(cohort, cohort["responded"].to_numpy())
    return model


MODELS: dict[str, Callable[[], AdditiveModel]] = {
    "shipped": load_model,
    "few-missing": _few_missing,
    "unused-fields": _unused_fields,
    "some-fields": lambda: _fitted(simulate_cohort(1500, seed=7), ("route", "crp_mg_l")),
    "chosen-smoothing": _chosen_smoothing,
}


@pytest.fixture(scope="module", params=list(MODELS), ids=list(MODELS))
def model(request: pytest.FixtureRequest) -> AdditiveModel:
    return MODELS[request.param]()


def _random_records(model: AdditiveModel, n: int, seed: int) -> dict[str, Any]:
    """Clean values of the model's fields: numbers anywhere in and beyond the training range,
    levels (booleans as 0.0/1.0), and a random share of every field missing."""
    rng = np.random.default_rng(seed)
    records: dict[str, Any] = {}
    for term in model.features.terms:
        kind = FIELDS_BY_NAME[term.field].kind
        if kind in (Kind.NUMBER, Kind.INTEGER):
            low, high = term.value_range if term.is_spline else (0.0, 10.0)
            span = high - low if high > low else 1.0
            values = rng.uniform(max(low - 0.2 * span, 0.0), high + 0.2 * span, n)
        elif kind is Kind.BOOLEAN:
            values = rng.integers(0, 2, n).astype(np.float64)
        else:
            levels = np.array(FIELDS_BY_NAME[term.field].levels, dtype=object)
            values = levels[rng.integers(0, len(levels), n)]
        values = values.astype(object) if values.dtype == object else values
        gone = rng.random(n) < 0.3
        if values.dtype == object:
            values[gone] = None
        else:
            values[gone] = np.nan
        records[term.field] = values
    return records


def _edge_records(model: AdditiveModel) -> dict[str, Any]:
    """One row per edge value of each number: every knot (the boundary knots included, in the
    schema's unit), the ends of the training range, just inside and outside them; each level
    of each category and nothing at all. Other fields are missing."""
    columns: dict[str, list[Any]] = {term.field: [] for term in model.features.terms}

    def row(field: str | None = None, value: Any = None) -> None:
        for name, values in columns.items():
            values.append(value if name == field else None)

    row()  # every field missing
    for term in model.features.terms:
        if term.is_spline:
            low, high = term.value_range
            knots = from_model_scale(term.field, term.knots).tolist()
            for value in [*knots, low, high, np.nextafter(low, -np.inf), np.nextafter(high, np.inf),
                          np.nextafter(low, np.inf), np.nextafter(high, -np.inf)]:  # fmt: skip
                row(term.field, value)
        for level in term.levels:
            row(term.field, 1.0 if level == "yes" else 0.0 if level == "no" else level)
    out: dict[str, Any] = {}
    for term in model.features.terms:
        values = columns[term.field]
        if FIELDS_BY_NAME[term.field].kind is Kind.CATEGORY:
            out[term.field] = np.array(values, dtype=object)
        else:
            out[term.field] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return out


def _assert_scores_match(model: AdditiveModel, records: dict[str, Any]) -> None:
    sparse = model.features.encode(records, sparse=True)
    dense = model.features.encode(records)
    assert isinstance(sparse.design, SparseDesign)
    np.testing.assert_array_equal(sparse.missing, dense.missing)
    np.testing.assert_array_equal(sparse.outside, dense.outside)
    assert isinstance(dense.design, np.ndarray)
    np.testing.assert_allclose(
        model.features.dense(sparse.design), dense.design, rtol=0, atol=TOLERANCE
    )
    ours, reference = model.score(sparse.design), dense_scores(model, dense.design)
    for name in Scores._fields:
        np.testing.assert_allclose(
            getattr(ours, name), getattr(reference, name), rtol=0, atol=TOLERANCE, err_msg=name
        )
    # and the dense path of score() itself is the reference arithmetic
    for name in Scores._fields:
        np.testing.assert_allclose(
            getattr(model.score(dense.design), name),
            getattr(reference, name),
            rtol=0,
            atol=TOLERANCE,
            err_msg=name,
        )


@pytest.mark.parametrize("seed", [0, 1, 2], ids=["seed0", "seed1", "seed2"])
def test_sparse_scores_equal_the_dense_arithmetic_on_random_records(
    model: AdditiveModel, seed: int
) -> None:
    # 2,500 rows: more than two blocks of SCORE_BLOCK_ROWS, the last one partial
    _assert_scores_match(model, _random_records(model, 2_500, seed))


def test_sparse_scores_equal_the_dense_arithmetic_at_knots_and_range_ends(
    model: AdditiveModel,
) -> None:
    _assert_scores_match(model, _edge_records(model))


@pytest.mark.parametrize("n", [0, 1, 2], ids=["none", "one", "two"])
def test_sparse_scores_of_a_few_rows(model: AdditiveModel, n: int) -> None:
    _assert_scores_match(model, _random_records(model, n, seed=9))


def test_the_models_scoring_numbers_do_not_depend_on_the_blas_threads() -> None:
    # They are made once and kept: made under score's one thread or predict's default ones,
    # they must be the same, or every later score would carry that moment's thread count.
    from threadpoolctl import threadpool_limits

    shipped = load_model()
    made = dataclasses.replace(shipped)._basis_numbers  # a copy has none made yet
    with threadpool_limits(1):
        made_on_one = dataclasses.replace(shipped)._basis_numbers
    assert np.array_equal(made, made_on_one)


def test_a_patients_numbers_do_not_depend_on_who_is_scored_with_them() -> None:
    # BLAS sums the last row of an odd number of rows otherwise: scored alone, among 2 to
    # 1,100 others, as predict(dict) or with another number of BLAS threads, each patient's
    # numbers are the same to the last bit (so score's --chunk-rows changes no byte)
    from threadpoolctl import threadpool_limits

    from data_schemas import validate
    from predictor import predict

    shipped = load_model()
    assert isinstance(shipped, AdditiveModel)
    cohort = simulate_cohort(1100, seed=11).drop(columns="responded")
    records = validate(cohort).clean
    whole = shipped.score(shipped.features.encode(records, sparse=True).design)
    for n in (1, 2, 3, 7, 15, 16, 17, 33, 1023, 1025):
        with threadpool_limits(1 if n % 2 else None):
            part = shipped.score(shipped.features.encode(records.iloc[:n], sparse=True).design)
        for got, expected in zip(part, whole, strict=True):
            assert np.array_equal(got, expected[:n])
    for i in (0, 6, 1024):
        alone = predict(cohort.iloc[i].dropna().to_dict())
        assert alone.probability == whole.probability[i]
        assert alone.interval == (whole.low[i], whole.high[i])


def test_sparse_rows_touch_at_most_four_basis_functions_per_number() -> None:
    model = load_model()
    records = _random_records(model, 500, seed=4)
    design = model.features.encode(records, sparse=True).design
    assert isinstance(design, SparseDesign)
    basis = model.features.basis
    columns, values = model.features.nonzero(design, 0, design.n)
    assert columns.shape == values.shape == (500, basis.width)
    assert basis.width == 4 * len(basis.splines) + len(basis.categories)
    # each row's columns are distinct, and a spline term's four lie inside its own basis
    assert all(len(set(row)) == basis.width for row in columns.tolist())
    for k, j in enumerate(basis.splines.tolist()):
        own = columns[:, 4 * k : 4 * k + 4]
        start = basis.starts[k]
        assert ((own >= start) & (own <= start + model.features.terms[j].n_basis)).all()
    # B-splines sum to one where the value is measured
    present = ~design.absent
    sums = values[:, : 4 * len(basis.splines)].reshape(500, -1, 4).sum(axis=2)
    np.testing.assert_allclose(sums[present], 1.0, rtol=0, atol=1e-12)


def test_interval_z_is_scipys_normal_quantile() -> None:
    assert float(ndtri(0.5 + INTERVAL_LEVEL / 2)) == _Z


def test_probabilities_are_scipys_expit_for_any_float() -> None:
    """Scoring's logistic function: scipy's values (exact 0 and 1 in the tails, NaN for NaN),
    without an overflow warning however large the logit."""
    rng = np.random.default_rng(0)
    edges = [0.0, -0.0, 1e-300, 36.0, 37.0, 40.0, 708.0, 709.0, 709.8, 710.0, 745.0, 746.0, 1e308]
    logits = np.r_[
        edges, np.negative(edges), np.inf, -np.inf, np.nan, rng.normal(0, 5, 10_000),
        rng.uniform(-800, 800, 10_000),
    ]  # fmt: skip
    half_width = np.abs(rng.normal(0, 3, logits.size))
    half_width[:3] = [0.0, np.inf, np.nan]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = _probabilities(logits, half_width)
    ends = (logits, logits - half_width, logits + half_width)
    for got, logit in zip(ours, ends, strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(logit))
        np.testing.assert_allclose(got, expit(logit), rtol=1e-15, atol=0)
    probability, low, high = _probabilities(np.array([-746.0, -np.inf, 37.0, np.inf]), np.zeros(4))
    assert probability.tolist() == low.tolist() == high.tolist() == [0.0, 0.0, 1.0, 1.0]


def _scipy_pieces(knots: np.ndarray) -> np.ndarray:
    """:func:`_pieces` as scipy gives it: each basis function's ``PPoly.from_spline``."""
    n_basis = knots.size - 4
    pieces = np.zeros((knots.size - 1, 4, 4))
    for i in range(n_basis):
        c = PPoly.from_spline(BSpline(knots, np.eye(n_basis)[i], 3)).c
        for m in range(max(i, 3), min(i + 3, n_basis - 1) + 1):
            pieces[m, :, i - m + 3] = c[:, m]
    return pieces


def _shipped_knots() -> list[np.ndarray]:
    return [term.knots for term in load_model().features.terms if term.is_spline]


EDGE_KNOTS = {
    "few knots": np.r_[[0.0] * 4, [1.0] * 4],
    "one interior": np.r_[[0.0] * 4, 0.3, [2.0] * 4],
    "repeated interior": np.r_[[-1.0] * 4, 0.0, 0.5, 0.5, 0.5, 2.0, [3.0] * 4],
    "interior at the ends": np.r_[[1.0] * 4, 1.0, 2.0, 5.0, 5.0, [5.0] * 4],
    "uneven, off zero": np.r_[[1e3] * 4, 1e3 + 1e-3, 1e3 + 0.5, 1.2e3, [2e3] * 4],
}


@pytest.mark.parametrize(
    "knots",
    [*_shipped_knots(), *EDGE_KNOTS.values()],
    ids=[*(f"shipped-{k}" for k in range(len(_shipped_knots()))), *EDGE_KNOTS],
)
def test_pieces_equal_scipys_power_form(knots: np.ndarray) -> None:
    """The numpy Cox-de Boor pieces are scipy's ``PPoly.from_spline`` on every interval a value
    can fall in (not empty, inside the fourth knot from each end), and zero elsewhere."""
    ours, scipys = _pieces(knots), _scipy_pieces(knots)
    used = [m for m in range(3, knots.size - 4) if knots[m] < knots[m + 1]]
    assert used, "a knot vector with no interval"
    scale = np.abs(scipys[used]).max(axis=(1, 2), keepdims=True)
    assert (np.abs(ours[used] - scipys[used]) <= 1e-12 * scale).all()
    assert not np.delete(ours, used, axis=0).any()
    # each piece's basis functions add up to 1
    np.testing.assert_allclose(ours[used, 3].sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_model_fields_cover_the_schema_predictors() -> None:
    # the random records above draw every model field
    assert set(MODEL_FIELDS) == {term.field for term in load_model().features.terms}


def test_sparse_and_dense_agree_on_routes_the_shipped_model_never_saw() -> None:
    # The schema's route has levels no patient of the shipped model's had (IV and intranasal
    # only): both paths give them the average training patient's term, without counting them
    # as missing.
    model = load_model()
    routes = FIELDS_BY_NAME["route"].levels
    j = model.fields.index("route")
    term = model.features.terms[j]
    assert set(term.schema_only_levels) | set(term.unseen_levels) == set(routes[2:])
    records = _edge_records(model)  # every field missing, then edge values
    n = len(records["route"])
    rows = [*routes, None]
    for name, values in records.items():
        if name == "route":
            records[name] = np.array([*values, *rows], dtype=object)
        else:
            records[name] = np.concatenate([values, values[:1].repeat(len(rows))])
    _assert_scores_match(model, records)
    sparse = model.features.encode(records, sparse=True)
    dense = model.features.encode(records)
    assert sparse.missing[n:, j].tolist() == [False] * len(routes) + [True]
    for scores in (model.score(sparse.design), dense_scores(model, dense.design)):
        route = scores.contributions[n:, j]
        assert route[2:].tolist() == [0.0] * (len(routes) - 2) + [0.0]  # new ones, missing
        assert route[0] > 0.0 > route[1]  # IV, intranasal: their own terms
        # a new route scores as a patient without one (to the last bits: the terms may be
        # summed in another order)
        np.testing.assert_allclose(
            scores.logit[n + 2 : n + len(routes)], scores.logit[-1], rtol=0, atol=1e-12
        )


def _assert_record_encoding_matches(model: AdditiveModel, records: dict[str, Any]) -> None:
    """``encode_record`` of each row (its Python values, as ``validate_record`` gives them)
    equals ``encode`` of a table of that one row, to the last bit."""
    for record in pd.DataFrame(records).to_dict("records"):
        ours = model.features.encode_record(record)
        table = model.features.encode({k: [v] for k, v in record.items()}, sparse=True)
        assert isinstance(ours.design, SparseDesign) and isinstance(table.design, SparseDesign)
        pairs = [*zip(ours.design, table.design, strict=True)]
        pairs += [(ours.missing, table.missing), (ours.outside, table.outside)]
        for got, expected in pairs:
            assert got.dtype == expected.dtype and got.shape == expected.shape
            assert got.tobytes() == expected.tobytes(), (record, got, expected)


def test_one_record_encodes_as_a_table_of_one_row(model: AdditiveModel) -> None:
    # predict(dict) encodes a record from its Python values (FeatureMap.encode_record), not
    # through the table path; every edge value and random records, missing values included
    _assert_record_encoding_matches(model, _edge_records(model))
    _assert_record_encoding_matches(model, _random_records(model, 300, seed=11))
