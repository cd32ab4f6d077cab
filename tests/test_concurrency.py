"""Thread and process safety of the shared, cached model."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading

import numpy as np
import pandas as pd
import pytest

from predictor import load_model, predict
from predictor.simulation._synthetic import simulate_cohort

THREADS = 8


def _records(n: int, seed: int) -> list[dict]:
    cohort = simulate_cohort(n, seed=seed).drop(columns=["responded", "true_probability"])
    return [{k: v for k, v in row.items() if not pd.isna(v)} for row in cohort.to_dict("records")]


@pytest.mark.slow
def test_predict_from_8_threads_at_once_equals_single_threaded() -> None:
    records = _records(400, seed=21)
    expected = [predict(r).to_dict() for r in records]
    start = threading.Barrier(THREADS)

    def work(offset: int) -> list[tuple[int, dict]]:
        start.wait()  # all threads call predict at the same moment
        order = np.roll(np.arange(len(records)), offset * 50)  # each in a different order
        return [(int(i), predict(records[i]).to_dict()) for i in order]

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))
    for result in results:
        assert len(result) == len(records)
        for i, got in result:
            assert got == expected[i]


@pytest.mark.slow
def test_predict_tables_from_8_threads_equal_single_threaded() -> None:
    table = simulate_cohort(2000, seed=22).drop(columns=["responded", "true_probability"])
    expected = predict(table, explain=True)
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda _: predict(table, explain=True), range(THREADS)))
    for result in results:
        pd.testing.assert_frame_equal(result, expected, check_exact=True)


def _probability_in_fresh_process(record: dict) -> float:
    return predict(record).probability


@pytest.mark.slow
def test_model_loads_and_predicts_in_parallel_processes() -> None:
    records = _records(8, seed=23)
    expected = [predict(r).probability for r in records]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: loads the model itself
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=context) as pool:
        got = list(pool.map(_probability_in_fresh_process, records))
    assert got == expected
    assert load_model() is load_model()
