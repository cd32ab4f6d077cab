"""The additive model's quality against issue 14's targets, in one run.

    python bench/model_quality.py            # 20 cohorts of 50,000; 10 seeds per small size
    python bench/model_quality.py --quick    # 4 and 2: about two minutes

Every fit is evaluated on one fresh cohort, ``simulate_cohort(20_000, seed=1000)``, which no
training cohort uses. Models are fitted as ``train.py`` fits them (``fit_additive_model``: one
smoothing parameter per penalty block by LAML, on every row).

1. Coverage: ``--seeds`` training cohorts ``simulate_cohort(50_000, seed=s)``. Prints the
   coverage of ``true_probability`` by the 90% intervals the model gives (from ``Vc``, the
   posterior covariance corrected for the smoothing parameters' uncertainty) and, for
   comparison, by intervals from the uncorrected ``Vp``; the AUC gap to the oracle
   (``AUC(true_probability) - AUC(p)``) and the calibration slope; and the same for the shipped
   model in ``models/``. Targets: coverage mean 0.88-0.92, none below 0.85, the shipped model at
   least 0.87; AUC gap at most 0.003; slope 0.95-1.05. For reference, what exact intervals
   would give (``_posterior_coverage``): each fit's coverage when the truth is drawn from its
   own posterior, 500 draws per fit: the 5% and 95% points, the share of draws below 0.85,
   and so how often none of ``--seeds`` fits would be below 0.85 with intervals that are right.
2. Small n: cohorts of 150, 300 and 600 patients, ``--seeds / 2`` seeds each. Prints the mean
   Brier score on the fresh cohort of the additive model and of two ridge logistic regressions
   with ``C`` chosen by 5-fold cross-validated log-loss (scikit-learn's ``LogisticRegressionCV``,
   17 values of ``C`` from 1e-4 to 1e4): one on the additive model's design ("ridge, design"),
   one on the raw fields prepared as the report's comparison model ("ridge, raw"); and how many
   fits are flat (the SD of their predicted probabilities on the fresh cohort below 0.01).
   Target: the additive model no worse than the ridge, no flat model.

A progress line per training cohort goes to stderr; the tables to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from predictor.evaluation._comparison import Comparison, _categories_as_objects, logistic_regression
from predictor.evaluation._metrics import calibration_slope
from predictor.model import AdditiveModel, fit_additive_model, load_model
from predictor.model._additive import _Z
from predictor.model._fitter import fit_penalised_logistic, term_penalties
from predictor.simulation import simulate_cohort

EVALUATION_SEED = 1000
EVALUATION_N = 20_000
LARGE_N = 50_000
SMALL_NS = (150, 300, 600)
RIDGE_CS = np.logspace(-4, 4, 17)
FLAT_SD = 0.01
POSTERIOR_DRAWS = 500
COVERAGE_TARGET = (0.88, 0.92)
COVERAGE_FLOOR = 0.85
SHIPPED_COVERAGE = 0.87
AUC_GAP_TARGET = 0.003
SLOPE_TARGET = (0.95, 1.05)


def _quality(model: Any, evaluation: pd.DataFrame) -> dict[str, float]:
    y = evaluation["responded"].to_numpy()
    truth = evaluation["true_probability"].to_numpy()
    scores = model.score(model.features.design(evaluation))
    return {
        "auc_gap": float(roc_auc_score(y, truth) - roc_auc_score(y, scores.probability)),
        "slope": calibration_slope(y, scores.probability),
        "coverage": float(np.mean((truth >= scores.low) & (truth <= scores.high))),
    }


def _posterior_coverage(model: AdditiveModel, evaluation: pd.DataFrame, seed: int) -> np.ndarray:
    """What exact intervals would give: the coverage of the fresh cohort by the model's own
    90% intervals when the truth is one draw of (intercept, coef) from the model's posterior
    (``N(estimate, covariance)``, the covariance behind its intervals), for
    :data:`POSTERIOR_DRAWS` draws (seeded by ``seed``). Each patient's interval then covers the
    truth with probability 0.90 exactly; the spread over draws is how far one fit's coverage of
    one cohort strays from 0.90 when every interval is right, because all the cohort's
    patients share the fit's error."""
    design = model.features.design(evaluation)
    x = np.hstack([np.ones((len(design), 1)), design])
    half = _Z * np.sqrt(np.maximum(((x @ model.covariance) * x).sum(axis=1), 0.0))
    values, vectors = np.linalg.eigh(model.covariance)
    root = vectors * np.sqrt(np.maximum(values, 0.0))
    draws = np.random.default_rng(seed).standard_normal((len(values), POSTERIOR_DRAWS))
    error = x @ (root @ draws)  # each draw's truth minus the estimate, on the logit scale
    return (np.abs(error) <= half[:, None]).mean(axis=0)


def _vp(model: AdditiveModel, cohort: pd.DataFrame) -> np.ndarray:
    """The uncorrected posterior covariance of the same fit (the fitter at the model's own
    smoothing parameters)."""
    design = model.features.design(cohort)
    names, penalties = term_penalties(model.features)
    fit = fit_penalised_logistic(
        design,
        cohort["responded"].to_numpy(np.float64),
        penalties,
        lambdas=[model.smoothing[name] for name in names],
        select=False,
    )
    return fit.covariance


def _large(seed: int, evaluation: pd.DataFrame) -> dict[str, Any]:
    """Part 1 for one training cohort of ``LARGE_N``."""
    with threadpool_limits(1, user_api="blas"):
        cohort = simulate_cohort(LARGE_N, seed=seed)
        start = time.perf_counter()
        model, report = fit_additive_model(cohort, cohort["responded"].to_numpy())
        seconds = time.perf_counter() - start
        vp = replace(model, covariance=_vp(model, cohort))
        return {
            "seed": seed,
            "posterior": _posterior_coverage(model, evaluation, seed),
            "seconds": seconds,
            "converged": report.converged,
            "model": _quality(model, evaluation),
            "vp_coverage": _quality(vp, evaluation)["coverage"],
        }


def _ridge(seed: int) -> LogisticRegressionCV:
    """Ridge logistic regression, ``C`` by 5-fold cross-validated log-loss."""
    return LogisticRegressionCV(
        Cs=RIDGE_CS,
        cv=StratifiedKFold(5, shuffle=True, random_state=seed),
        l1_ratios=(0.0,),  # ridge
        scoring="neg_log_loss",
        use_legacy_attributes=False,
        solver="newton-cholesky",
        max_iter=1000,
    )


def _raw_ridge(seed: int, fields: tuple[str, ...]) -> Any:
    """The report's comparison logistic regression with ``C`` chosen by cross-validation."""
    pipeline = logistic_regression(seed, fields)
    return pipeline.set_params(logisticregression=_ridge(seed))


def _small(n: int, seed: int, evaluation: pd.DataFrame) -> dict[str, Any]:
    """Part 2 for one training cohort of ``n``: Brier score and prediction SD of each model."""
    with threadpool_limits(1, user_api="blas"):
        cohort = simulate_cohort(n, seed=seed)
        y = cohort["responded"].to_numpy()
        model, report = fit_additive_model(cohort, y)
        design = model.features.design(cohort)
        evaluation_design = model.features.design(evaluation)
        ridge_design = _ridge(seed).fit(design, y)
        raw = Comparison("ridge, raw", _raw_ridge, _categories_as_objects)
        ridge_raw = raw.fit(cohort, y, seed=seed, fields=model.fields)
        probabilities = {
            "additive": model.score(evaluation_design).probability,
            "ridge, design": ridge_design.predict_proba(evaluation_design)[:, 1],
            "ridge, raw": raw.probability(ridge_raw, evaluation),
        }
        outcome = evaluation["responded"].to_numpy()
        return {
            "n": n,
            "seed": seed,
            "converged": report.converged,
            "brier": {k: brier_score_loss(outcome, p) for k, p in probabilities.items()},
            "sd": {k: float(np.std(p)) for k, p in probabilities.items()},
        }


def _run(jobs: list[Any], label: Any) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` on two processes, a progress line on stderr as each finishes."""
    started = time.perf_counter()
    results = Parallel(n_jobs=2, return_as="generator_unordered")(jobs)
    for done, result in enumerate(results, 1):
        print(
            f"[{time.perf_counter() - started:5.0f} s] {done}/{len(jobs)} {label(result)}",
            file=sys.stderr,
            flush=True,
        )
        yield result


def _range(values: np.ndarray) -> str:
    return f"{values.mean():8.4f}{values.min():8.4f}{values.max():8.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds",
        type=int,
        default=20,
        help="training cohorts of 50,000 (default 20); half as many per small size",
    )
    parser.add_argument("--quick", action="store_true", help="4 cohorts of 50,000, 2 per size")
    args = parser.parse_args()
    seeds = 4 if args.quick else args.seeds
    small_seeds = max(seeds // 2, 1)
    started = time.perf_counter()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", file=sys.stderr)
    evaluation = simulate_cohort(EVALUATION_N, seed=EVALUATION_SEED)
    large = sorted(
        _run(
            [delayed(_large)(seed, evaluation) for seed in range(seeds)],
            lambda r: f"n = {LARGE_N:,} seed {r['seed']}: fit {r['seconds']:.1f} s",
        ),
        key=lambda r: r["seed"],
    )
    small = sorted(
        _run(
            [delayed(_small)(n, seed, evaluation) for n in SMALL_NS for seed in range(small_seeds)],
            lambda r: f"n = {r['n']} seed {r['seed']}",
        ),
        key=lambda r: (r["n"], r["seed"]),
    )
    _print_large(large, _quality(load_model(), evaluation))
    _print_small(small, evaluation)
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)


def _print_large(large: list[dict[str, Any]], shipped: dict[str, float]) -> None:
    seeds = len(large)
    c_low, c_high = COVERAGE_TARGET
    s_low, s_high = SLOPE_TARGET
    converged = sum(r["converged"] for r in large)
    print(
        f"1. {seeds} cohorts of {LARGE_N:,} (seeds 0-{seeds - 1}), fitted on all rows; "
        f"evaluated on {EVALUATION_N:,}\n"
        f"   (seed {EVALUATION_SEED}). Converged {converged}/{seeds}, median fit "
        f"{np.median([r['seconds'] for r in large]):.1f} s (two at a time).\n"
        f"   Targets: coverage mean {c_low}-{c_high}, none below {COVERAGE_FLOOR}, the shipped "
        f"model at least {SHIPPED_COVERAGE};\n   AUC gap at most {AUC_GAP_TARGET}; calibration "
        f"slope {s_low}-{s_high}.\n"
    )
    print(f"   {'':36s}{'mean':>8s}{'min':>8s}{'max':>8s}  off target")
    rows = {
        "coverage, model's intervals (Vc)": np.array([r["model"]["coverage"] for r in large]),
        "coverage, uncorrected (Vp)": np.array([r["vp_coverage"] for r in large]),
    }
    for label, values in rows.items():
        below = int((values < COVERAGE_FLOOR).sum())
        print(f"   {label:36s}{_range(values)}  {below}/{seeds} below {COVERAGE_FLOOR}")
    exact = np.concatenate([r["posterior"] for r in large])
    low, high = np.quantile(exact, [0.05, 0.95])
    below = float((exact < COVERAGE_FLOOR).mean())
    print(
        f"   {'coverage, exact intervals (draws)':36s}{exact.mean():8.4f}{low:8.4f}{high:8.4f}"
        f"  {below:.1%} of fits below {COVERAGE_FLOOR}\n"
        f"     (all draws of all fits; min and max are its 5% and 95% points: with intervals "
        f"that are right,\n     none of {seeds} fits below {COVERAGE_FLOOR} in "
        f"{(1 - below) ** seeds:.0%} of such experiments)"
    )
    gap = np.array([r["model"]["auc_gap"] for r in large])
    slope = np.array([r["model"]["slope"] for r in large])
    print(f"   {'AUC gap':36s}{_range(gap)}  {int((gap > AUC_GAP_TARGET).sum())}/{seeds}")
    off_slope = int(((slope < s_low) | (slope > s_high)).sum())
    print(f"   {'calibration slope':36s}{_range(slope)}  {off_slope}/{seeds}")
    print(
        f"   shipped model (models/): coverage {shipped['coverage']:.4f}, AUC gap "
        f"{shipped['auc_gap']:+.4f}, calibration slope {shipped['slope']:.3f}"
    )
    print(f"\n   {'seed':>4s}{'coverage: Vc':>14s}{'Vp':>7s}{'AUC gap':>10s}{'slope':>8s}")
    for r in large:
        m = r["model"]
        print(
            f"   {r['seed']:4d}{m['coverage']:14.3f}{r['vp_coverage']:7.3f}"
            f"{m['auc_gap']:+10.4f}{m['slope']:8.3f}"
        )


def _print_small(small: list[dict[str, Any]], evaluation: pd.DataFrame) -> None:
    models = list(small[0]["brier"])  # additive, ridge design, ridge raw
    seeds = len(small) // len(SMALL_NS)
    oracle = brier_score_loss(evaluation["responded"], evaluation["true_probability"])
    print(
        f"\n2. Small cohorts, {seeds} seeds each (0-{seeds - 1}): mean Brier on {EVALUATION_N:,}"
        f" (seed {EVALUATION_SEED};\n   oracle {oracle:.4f}), and fits whose predictions have "
        f"an SD below {FLAT_SD} (flat).\n"
    )
    header = (
        ("", "", "ridge,", "ridge,", "add. -", "add. -", "flat:", "flat:", "flat:"),
        ("n", "additive", "design", "raw", "ridge d", "ridge r", "additive", "ridge d", "ridge r"),
    )
    for words in header:
        print("   " + "".join(f"{w:>9s}" for w in words))
    for n in SMALL_NS:
        rows = [r for r in small if r["n"] == n]
        brier = {f: np.mean([r["brier"][f] for r in rows]) for f in models}
        flat = {f: f"{sum(r['sd'][f] < FLAT_SD for r in rows)}/{len(rows)}" for f in models}
        print(
            f"   {n:9d}"
            + "".join(f"{brier[f]:9.4f}" for f in models)
            + f"{brier['additive'] - brier['ridge, design']:+9.4f}"
            + f"{brier['additive'] - brier['ridge, raw']:+9.4f}"
            + "".join(f"{flat[f]:>9s}" for f in models)
        )
    converged = sum(r["converged"] for r in small)
    print(f"   the additive model converged {converged}/{len(small)}")


if __name__ == "__main__":
    main()
