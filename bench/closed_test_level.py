"""Which level should update's closed test use, and should its choice be shrunk? Brier score
and calibration slope of the recalibration it chooses, on a simulated site.

``python bench/closed_test_level.py [--samples 40] [--first-seed 101] [--site second]``
(about two minutes)

For cohorts of 150, 300 and 600 patients of the site (``--site second``: the second simulated
site, where the shipped model's slope is 0.80; ``--site house``: the training population,
where the base is right), it fits recalibration in the large and logistic recalibration, runs
Vergouwe's closed test (``predictor._updating._closed_test``) at levels 0.05, 0.157 and 0.5,
and prints for each level the mean Brier score and calibration slope on 20,000 fresh patients
of the site (seed 999) of the recalibration chosen, as fitted and shrunk toward the base by
``(LR - df) / LR`` (``recalibrate(..., shrink=True)``, what ``update`` uses, at 0.5), with the
base as it is and logistic recalibration always (as fitted) for reference.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import brier_score_loss

import predictor._updating as updating
from predictor import load_model
from predictor._updating import BASE, IN_THE_LARGE, LOGISTIC, _closed_test
from predictor.evaluation import metrics
from predictor.model import log_likelihood, recalibrate
from predictor.simulation import HOUSE_SITE, SECOND_SITE, simulate_cohort

LEVELS = (0.05, 0.157, 0.5)
METHODS = {IN_THE_LARGE: "in the large", LOGISTIC: "logistic"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40, help="cohorts per size")
    parser.add_argument("--first-seed", type=int, default=101, help="seed of the first cohort")
    parser.add_argument("--site", choices=("second", "house"), default="second")
    args = parser.parse_args()
    site = SECOND_SITE if args.site == "second" else HOUSE_SITE
    base = load_model()
    test = simulate_cohort(20_000, seed=999, site=site)
    outcome = test["responded"].to_numpy()
    test_design = base.features.design(test)
    rules = ("base", "always logistic")
    rules += tuple(f"{level:g}{shrunk}" for level in LEVELS for shrunk in ("", " shrunk"))
    print(f"{args.site} site, {args.samples} cohorts per size (seeds {args.first_seed} on)")
    print("mean Brier score (mean calibration slope) on 20,000 new patients of the site")
    print(f"{'n':>5}  " + "  ".join(f"{rule:>19}" for rule in rules))
    for n in (150, 300, 600):
        results: dict[str, list[tuple[float, float]]] = {rule: [] for rule in rules}
        for seed in range(args.first_seed, args.first_seed + args.samples):
            cohort = simulate_cohort(n, seed=seed, site=site)
            y = cohort["responded"].to_numpy()
            design = base.features.design(cohort)
            fitted = {BASE: base}
            shrunk = {BASE: base}
            for name, method in METHODS.items():
                fitted[name] = recalibrate(base, cohort, y, method=method)
                shrunk[name] = recalibrate(base, cohort, y, method=method, shrink=True)
            ll = {k: log_likelihood(m.score(design).logit, y) for k, m in fitted.items()}
            models = {"base": base, "always logistic": fitted[LOGISTIC]}
            for level in LEVELS:
                saved = updating.ALPHA
                updating.ALPHA = level
                try:
                    chosen = _closed_test(ll)[0]
                finally:
                    updating.ALPHA = saved
                models[f"{level:g}"] = fitted[chosen]
                models[f"{level:g} shrunk"] = shrunk[chosen]
            for rule in rules:
                p = models[rule].score(test_design).probability
                results[rule].append(
                    (brier_score_loss(outcome, p), metrics(outcome, p).calibration_slope)
                )
        print(
            f"{n:>5}  "
            + "  ".join(
                f"{np.mean([b for b, _ in v]):.4f} ({np.mean([s for _, s in v]):.2f})".rjust(19)
                for v in results.values()
            )
        )


if __name__ == "__main__":
    main()
