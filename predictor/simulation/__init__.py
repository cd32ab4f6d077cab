"""The synthetic cohort: patients and responses simulated from published effect sizes, and the
literature targets the simulator is held to.

Reads the schema (and the parameter checks) only; training, the command line and the
benchmarks use the names below.
"""

from predictor.simulation._synthetic import (
    DEFAULT_SEED,
    RESPONSE_MODEL,
    ResponseModel,
    draw_patients,
    response_logit,
    simulate_cohort,
)

__all__ = [
    "DEFAULT_SEED",
    "RESPONSE_MODEL",
    "ResponseModel",
    "draw_patients",
    "response_logit",
    "simulate_cohort",
]
