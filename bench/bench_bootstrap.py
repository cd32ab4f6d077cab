"""How long Harrell's bootstrap optimism correction takes, and what it finds, on a small cohort.

    python bench/bench_bootstrap.py [--n 300] [--repeats 200] [--n-jobs -1]

Simulates ``--n`` patients (seed 1), fits the additive model with the pooled smoothing
structure (fixed, so that each refit does not choose it again: choosing it costs about 2.7 s per
fit at n = 300), and runs :func:`bootstrap_validation` with that refit. Prints the wall time,
the apparent, optimism and corrected metrics, and the instability numbers.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from predictor.evaluation._bootstrap import BOOTSTRAP_METRICS, bootstrap_validation
from predictor.model import fit_additive_model
from predictor.simulation import simulate_cohort


def refit(rows: pd.DataFrame, y: np.ndarray) -> Callable[[pd.DataFrame], np.ndarray]:
    model, _ = fit_additive_model(rows, y, structure="pooled")
    return lambda frame: model.score(model.features.design(frame)).probability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--n-jobs", type=int, default=-1)
    args = parser.parse_args()

    cohort = simulate_cohort(args.n, seed=1)
    y = cohort["responded"].to_numpy()
    started = time.perf_counter()
    model, _ = fit_additive_model(cohort, y, structure="pooled")
    final = model.score(model.features.design(cohort)).probability
    fit_seconds = time.perf_counter() - started
    ticks = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - ticks[0] >= 5.0 or done == total:
            print(f"  {done}/{total} resamples, {now - started - fit_seconds:.1f} s", flush=True)
            ticks[0] = now

    started_boot = time.perf_counter()
    result = bootstrap_validation(
        cohort,
        y,
        refit=refit,
        final=final,
        repeats=args.repeats,
        seed=1,
        threshold=model.threshold,
        progress=progress,
        n_jobs=args.n_jobs,
    )
    seconds = time.perf_counter() - started_boot
    print(
        f"n = {args.n}, {int(y.sum())} responders; final fit {fit_seconds:.2f} s; "
        f"bootstrap_validation, B = {args.repeats}, n_jobs = {args.n_jobs} "
        f"({os.cpu_count()} cores): {seconds:.1f} s ({seconds / args.repeats:.3f} s per "
        f"resample); {result.failed} failed, {result.redrawn} redrawn"
    )
    print(f"{'metric':<24}{'apparent':>10}{'optimism':>10}{'corrected':>10}")
    for key in BOOTSTRAP_METRICS:
        m = result.metrics[key]
        print(f"{key:<24}{m.apparent:>10.4f}{m.optimism:>+10.4f}{m.corrected:>10.4f}")
    print(
        f"MAPE {result.mape:.4f} (largest per patient {result.patient_mape.max():.4f}); "
        f"classification instability at {result.threshold:g}: mean "
        f"{result.classification_instability:.4f}, largest "
        f"{result.patient_instability.max():.3f}; mean 95% range of a patient's bootstrap "
        f"predictions {np.mean(result.high - result.low):.3f}"
    )


if __name__ == "__main__":
    main()
