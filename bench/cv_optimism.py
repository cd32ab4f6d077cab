"""How optimistic train's cross-validated AUC is on a small cohort, in one run.

    python bench/cv_optimism.py [--seeds 10] [--sizes 300 1000]

``train`` cross-validates its model by refitting it in each fold with the smoothing parameters
chosen once, on all the rows (``cross_validate``): cheaper than choosing them again in every
fold, at the price of some optimism. For each size and seed this fits the model as ``train``
does (``fit_additive_model``, the smoothing structure chosen by its check on small cohorts),
cross-validates it, and compares the cross-validated AUC with the model's AUC on a fresh cohort
of 20,000 (seed 1000) that no fit saw: their difference is the optimism. Prints its mean and
range per size, and the structure each fit chose.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from predictor.evaluation import cross_validate
from predictor.model import fit_additive_model
from predictor.simulation import simulate_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="cohorts per size (default 10)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000])
    args = parser.parse_args()
    fresh = simulate_cohort(20_000, seed=1000)
    for n in args.sizes:
        gaps, structures = [], []
        for seed in range(args.seeds):
            cohort = simulate_cohort(n, seed=seed)
            y = cohort["responded"].to_numpy()
            model, _ = fit_additive_model(cohort, y)
            folds = cross_validate(cohort, model=model, seed=0, comparisons=())
            cv_auc = roc_auc_score(y, folds.probability[model.summary().name])
            fresh_p = model.score(model.features.design(fresh)).probability
            gaps.append(cv_auc - roc_auc_score(fresh["responded"], fresh_p))
            structures.append(model.structure)
        g = np.array(gaps)
        print(
            f"n = {n:,}: cross-validated AUC minus fresh-cohort AUC, mean {g.mean():+.3f} "
            f"(range {g.min():+.3f} to {g.max():+.3f}, {args.seeds} seeds); structures: "
            + ", ".join(f"{s} {structures.count(s)}" for s in sorted(set(structures)))
        )


if __name__ == "__main__":
    main()
