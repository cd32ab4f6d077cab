"""How the shipped model transports to the second simulated site, next to the house site.

    python bench/second_site.py [--n 20000] [--seed 123]

Simulates ``--n`` patients of each site (``simulate_cohort(n, seed=seed, site=...)``), scores
them with the shipped model (``predictor.predict``) and prints, per site, the metrics as the
project computes them (``predictor.evaluation.metrics``): the oracle AUC (of
``true_probability``), the model's AUC and its ratio to the oracle, calibration slope,
calibration-in-the-large (observed minus mean predicted), Brier score, and the share of patients
whose 90% interval contains ``true_probability``. The second site is meant to be one the model
transports to imperfectly (slope about 0.75-0.9, AUC ratio about 0.93-0.97), so that
``python -m predictor update`` has something to fix.
"""

from __future__ import annotations

import argparse

import predictor
from predictor.evaluation import Metrics, metrics
from predictor.simulation import HOUSE_SITE, SECOND_SITE, Site, simulate_cohort


def site_metrics(site: Site, *, n: int, seed: int, model: object) -> Metrics:
    """The shipped model's metrics on ``n`` patients of ``site``."""
    cohort = simulate_cohort(n, seed=seed, site=site)
    scored = predictor.predict(cohort, model=model)
    return metrics(
        cohort["responded"].to_numpy(),
        scored["response_probability"].to_numpy(),
        true_probability=cohort["true_probability"].to_numpy(),
        interval=(scored["probability_low"].to_numpy(), scored["probability_high"].to_numpy()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()

    model = predictor.load_model()
    rows = {
        s.name: site_metrics(s, n=args.n, seed=args.seed, model=model)
        for s in (HOUSE_SITE, SECOND_SITE)
    }
    print(f"The shipped model on {args.n:,} patients of each site (seed {args.seed})\n")
    print(f"| metric | {' | '.join(rows)} |")
    print("|---|" + "---|" * len(rows))
    lines = {
        "response rate": lambda m: f"{m.response_rate:.3f}",
        "oracle AUC": lambda m: f"{m.oracle_auc:.3f}",
        "model AUC": lambda m: f"{m.auc:.3f}",
        "AUC / oracle AUC": lambda m: f"{m.auc / m.oracle_auc:.3f}",
        "calibration slope": lambda m: f"{m.calibration_slope:.3f}",
        "calibration-in-the-large": lambda m: f"{m.calibration_in_the_large:+.3f}",
        "Brier score": lambda m: f"{m.brier:.4f}",
        "90% interval coverage of true_probability": lambda m: f"{m.interval_coverage:.3f}",
    }
    for label, show in lines.items():
        print(f"| {label} | {' | '.join(show(m) for m in rows.values())} |")


if __name__ == "__main__":
    main()
