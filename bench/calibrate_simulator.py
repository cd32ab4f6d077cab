"""Solve the simulator's response-model effects so the cohort reproduces the literature targets.

Each free effect is paired with the target it mainly drives (the intercept with T1, the route
effect with T2, ...); all are solved together, because the contrasts are marginal and confounded
(BMI raises CRP; a family history of AUD raises the risk of a SUD). Response rates are computed
from ``true_probability`` on one large draw of patients, so the problem is smooth and free of
outcome noise. Prints the solved effects as the Python to paste into
``predictor/simulation/_synthetic.py``.

    python bench/calibrate_simulator.py [--n 400000] [--seed 12345]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from predictor.simulation._synthetic import RESPONSE_MODEL, draw_patients, response_logit
from predictor.simulation._targets import TARGETS

FREE = {  # effect -> the target it mainly drives
    "intercept": "T1",
    "iv_route": "T2",
    "crp": "T3",
    "bdnf": "T4",
    "delta_sleep_ratio": "T5",
    "relative_amplitude": "T7",
    "interdaily_stability": "T8",
    "sud_past": "T10",
    "sud_current": "T9",
    "family_history_aud": "T11",
    "bmi": "T12",
    "failed_trials": "T13",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()

    patients = draw_patients(args.n, np.random.default_rng(args.seed))
    targets = {t.id: t for t in TARGETS}

    def model_from(x: np.ndarray):
        return dataclasses.replace(RESPONSE_MODEL, **dict(zip(FREE, x, strict=True)))

    def residuals(x: np.ndarray) -> np.ndarray:
        cohort = patients.assign(true_probability=expit(response_logit(patients, model_from(x))))
        return np.array(
            [
                targets[t].measure(cohort, "true_probability") - targets[t].target
                for t in FREE.values()
            ]
        )

    start = np.array([getattr(RESPONSE_MODEL, name) for name in FREE])
    fit = least_squares(residuals, start, diff_step=1e-3, xtol=1e-10, ftol=1e-12)
    solved = np.round(fit.x, 3)
    remaining = residuals(solved)
    print("Largest remaining |residual|:", f"{np.abs(remaining).max():.5f}")
    for (name, target), value in zip(FREE.items(), remaining, strict=True):
        print(f"  {target:>4} ({name}): {value + targets[target].target:+.4f}")
    print("\nRESPONSE_MODEL = ResponseModel(")
    for name, value in zip(FREE, solved, strict=True):
        print(f"    {name}={value},")
    print(")")


if __name__ == "__main__":
    main()
