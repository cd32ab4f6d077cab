"""Issue 15's targets: does `update` choose well at every size of a clinic's cohort?

``python bench/update_quality.py [--samples 3] [--first-seed 1] [--sizes 150,300,600,1200,5000]``

On the second simulated site (:data:`predictor.simulation.SECOND_SITE`: another case mix,
effects moved within the literature's uncertainty, other missingness, data the shipped model
never saw), for each development size n and each of ``--samples`` development cohorts (seeds
``--first-seed``, the next, ...; the procedure's rules were chosen on seeds 1 to 12, so other
seeds judge it on cohorts it was not tuned on), it fits on the cohort and scores a test
cohort of 20,000 from the same site (seed 999):

* the shipped model as it is;
* logistic recalibration of the shipped model;
* a ridge logistic regression refitted from scratch (the report's comparison model, ``C``
  chosen by 5-fold cross-validated log-loss);
* ``train.py --data`` (the additive model fitted from scratch, as training fits it);
* the model ``update`` chooses (:func:`predictor._updating.choose_update`).

It prints each one's mean Brier score, the update's mean calibration slope and the coverage of
the true probability by its 90% intervals, what the update chose for each cohort, and the
time of one ``update`` at n = 1,200. Targets: the update's mean
Brier at most the best of the other four + 0.0005 at every n; its mean calibration slope
0.85-1.15 from n = 300 up; one update on 1,200 patients within 30 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_quality import _raw_ridge

from predictor import load_model
from predictor._updating import choose_update
from predictor.evaluation import metrics
from predictor.evaluation._comparison import Comparison, _categories_as_objects
from predictor.model import fit_additive_model, recalibrate
from predictor.simulation import SECOND_SITE, simulate_cohort

TEST_N = 20_000
TEST_SEED = 999
MARGIN = 0.0005


def _one(n: int, seed: int, test: Any, base: Any) -> dict[str, Any]:
    with threadpool_limits(1, user_api="blas"):
        cohort = simulate_cohort(n, seed=seed, site=SECOND_SITE).drop(columns="true_probability")
        y = cohort["responded"].to_numpy()
        started = time.perf_counter()
        choice = choose_update(base, cohort)
        seconds = time.perf_counter() - started
        refit, _ = fit_additive_model(cohort, y)
        raw = Comparison("ridge", _raw_ridge, _categories_as_objects)
        ridge = raw.fit(cohort, y, seed=seed, fields=base.fields)
        models = {
            "base": base,
            "recalibrated": recalibrate(base, cohort, y),
            "train --data": refit,
            "update": choice.model,
        }
        scores = {name: model.score(model.features.design(test)) for name, model in models.items()}
        probability = {name: s.probability for name, s in scores.items()}
        truth = test["true_probability"].to_numpy()
        covered = (scores["update"].low <= truth) & (truth <= scores["update"].high)
        probability["ridge"] = raw.probability(ridge, test)
    outcome = test["responded"].to_numpy()
    return {
        "n": n,
        "seed": seed,
        "chosen": choice.chosen,
        "seconds": seconds,
        "brier": {k: brier_score_loss(outcome, p) for k, p in probability.items()},
        "slope": metrics(outcome, probability["update"]).calibration_slope,
        "coverage": float(covered.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="development cohorts per size")
    parser.add_argument("--first-seed", type=int, default=1, help="seed of the first cohort")
    parser.add_argument("--sizes", default="150,300,600,1200,5000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    base = load_model()
    test = simulate_cohort(TEST_N, seed=TEST_SEED, site=SECOND_SITE)
    started = time.perf_counter()
    results = []
    for n in sizes:
        for seed in range(args.first_seed, args.first_seed + args.samples):
            result = _one(n, seed, test, base)
            results.append(result)
            print(
                f"[{time.perf_counter() - started:5.0f} s] n={n} seed={seed}: chose "
                f"{result['chosen']} (update {result['seconds']:.1f} s); Brier "
                + ", ".join(f"{k} {v:.4f}" for k, v in result["brier"].items()),
                file=sys.stderr,
                flush=True,
            )
    names = ["base", "recalibrated", "ridge", "train --data", "update"]
    print(
        f"\nMean Brier on {TEST_N:,} second-site patients ({args.samples} cohorts per size, "
        f"seeds {args.first_seed} to {args.first_seed + args.samples - 1})"
    )
    print(
        f"{'n':>6}"
        + "".join(f"{name:>14}" for name in names)
        + "  best other  slope  coverage  verdict"
    )
    for n in sizes:
        rows = [r for r in results if r["n"] == n]
        brier = {name: float(np.mean([r["brier"][name] for r in rows])) for name in names}
        best = min(brier[name] for name in names if name != "update")
        slope = float(np.mean([r["slope"] for r in rows]))
        coverage = float(np.mean([r["coverage"] for r in rows]))
        ok = brier["update"] <= best + MARGIN and (n < 300 or 0.85 <= slope <= 1.15)
        print(
            f"{n:>6}"
            + "".join(f"{brier[name]:14.4f}" for name in names)
            + f"{best:12.4f}{slope:7.2f}{coverage:10.3f}  {'met' if ok else 'MISSED'}"
        )
        chosen = Counter(r["chosen"] for r in rows)
        print(f"{'':>6}  chosen: " + ", ".join(f"{k} x{v}" for k, v in chosen.items()))
    timed = [r["seconds"] for r in results if r["n"] == 1200]
    if timed:
        print(f"\nupdate on 1,200 patients: {max(timed):.1f} s at most (target 30 s)")


if __name__ == "__main__":
    main()
