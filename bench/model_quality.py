"""How the additive model's quality figures vary with the training sample.

Fits the model on ``--seeds`` independent simulated training cohorts (``--n`` patients each,
seeds 0, 1, ...) and evaluates every fit on one fresh cohort (``--eval-n`` patients, a seed no
training cohort uses). Prints, per training seed and summarised: AUC gap to the oracle,
calibration slope, calibration-in-the-large and 90% interval coverage of ``true_probability``,
and how many fits meet each quality target.

    python bench/model_quality.py --seeds 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from joblib import Parallel, delayed

from predictor.evaluation import evaluate_model
from predictor.model._additive import fit_additive_model
from predictor.simulation._synthetic import simulate_cohort

EVALUATION_SEED = 10_000
TARGETS = {
    "auc_gap": (-np.inf, 0.01),
    "calibration_slope": (0.9, 1.1),
    "calibration_in_the_large": (-0.02, 0.02),
    "interval_coverage": (0.85, 0.95),
}


def _fit_and_evaluate(seed: int, n: int, eval_n: int) -> dict[str, float]:
    cohort = simulate_cohort(n, seed=seed)
    model, report = fit_additive_model(cohort, cohort["responded"].to_numpy(), seed=seed)
    metrics = evaluate_model(model, simulate_cohort(eval_n, seed=EVALUATION_SEED))
    return {"seed": seed, "penalty_c": report.penalty_c, **metrics.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="training seeds (default: 10)")
    parser.add_argument("--n", type=int, default=40_000, help="training patients per seed")
    parser.add_argument("--eval-n", type=int, default=20_000, help="evaluation patients")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = Parallel(n_jobs=2)(
        delayed(_fit_and_evaluate)(seed, args.n, args.eval_n) for seed in range(args.seeds)
    )
    print(
        f"{args.seeds} training cohorts of {args.n:,}; evaluated on {args.eval_n:,} (seed "
        f"{EVALUATION_SEED})"
    )
    print("seed  C        AUC gap  slope  CITL    coverage")
    for row in rows:
        print(
            f"{row['seed']:4d}  {row['penalty_c']:<7.3g}  {row['auc_gap']:+.4f}  "
            f"{row['calibration_slope']:.3f}  {row['calibration_in_the_large']:+.4f}  "
            f"{row['interval_coverage']:.3f}"
        )
    for key, (low, high) in TARGETS.items():
        values = np.array([row[key] for row in rows])
        met = int(((values >= low) & (values <= high)).sum())
        print(
            f"{key}: mean {values.mean():.4f}, sd {values.std(ddof=1):.4f}, range "
            f"{values.min():.4f} to {values.max():.4f}; target met by {met}/{len(rows)}"
        )
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
