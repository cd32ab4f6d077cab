"""Which level should update's closed test use? Brier score and calibration slope of the
recalibration it chooses, at several levels, on the second simulated site.

``python bench/closed_test_level.py [--samples 20]`` (about a minute)

For cohorts of 150, 300, 600 and 1,200 patients of the second site (seeds 1, 2, ...), it fits
the base model as it is, recalibration in the large and logistic recalibration, runs
Vergouwe's closed test (``predictor._updating._closed_test``) at levels 0.05, 0.157 (Akaike's
for one parameter, what ``update`` uses) and 0.2, and also "always logistic" and "always in
the large", and prints for each rule the mean Brier score and calibration slope of the chosen
model on 20,000 fresh patients of the site (seed 999).
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import brier_score_loss

import predictor._updating as updating
from predictor import load_model
from predictor._updating import BASE, IN_THE_LARGE, LOGISTIC, _closed_test, _log_likelihood
from predictor.evaluation import metrics
from predictor.model import recalibrate
from predictor.simulation import SECOND_SITE, simulate_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="cohorts per size")
    args = parser.parse_args()
    base = load_model()
    test = simulate_cohort(20_000, seed=999, site=SECOND_SITE)
    outcome = test["responded"].to_numpy()
    test_design = base.features.design(test)
    rules = ("closed test 0.05", "closed test 0.157", "closed test 0.2", "always logistic")
    rules += ("always in the large",)
    print(f"{'n':>6}  " + "  ".join(f"{rule:>22}" for rule in rules))
    for n in (150, 300, 600, 1200):
        results: dict[str, list[tuple[float, float]]] = {rule: [] for rule in rules}
        for seed in range(1, args.samples + 1):
            cohort = simulate_cohort(n, seed=seed, site=SECOND_SITE)
            y = cohort["responded"].to_numpy()
            design = base.features.design(cohort)
            models = {
                BASE: base,
                IN_THE_LARGE: recalibrate(base, cohort, y, method="in the large"),
                LOGISTIC: recalibrate(base, cohort, y),
            }
            ll = {k: _log_likelihood(y, m.score(design).logit) for k, m in models.items()}
            chosen = {
                "always logistic": LOGISTIC,
                "always in the large": IN_THE_LARGE,
            }
            for level in (0.05, 0.157, 0.20):
                saved = updating.ALPHA
                updating.ALPHA = level
                try:
                    chosen[f"closed test {level:g}"] = _closed_test(ll)[0]
                finally:
                    updating.ALPHA = saved
            for rule in rules:
                p = models[chosen[rule]].score(test_design).probability
                results[rule].append(
                    (brier_score_loss(outcome, p), metrics(outcome, p).calibration_slope)
                )
        print(
            f"{n:>6}  "
            + "  ".join(
                f"{np.mean([b for b, _ in v]):.4f} (slope {np.mean([s for _, s in v]):.2f})"
                for v in results.values()
            )
        )


if __name__ == "__main__":
    main()
