"""The synthetic cohort: patients and responses simulated from published effect sizes, and the
literature targets the simulator is held to; the house site (the shipped model's) and a second
site it never saw, for testing the update of a model to a clinic's own data.

Reads the schema (and the parameter checks) only; training, the command line and the
benchmarks use the names below.
"""

from predictor.simulation._sites import SECOND_SITE, SITES
from predictor.simulation._synthetic import (
    DEFAULT_SEED,
    HOUSE_SITE,
    RESPONSE_MODEL,
    CaseMix,
    Missingness,
    ResponseModel,
    Site,
    draw_patients,
    response_logit,
    simulate_cohort,
)

__all__ = [
    "DEFAULT_SEED",
    "HOUSE_SITE",
    "RESPONSE_MODEL",
    "SECOND_SITE",
    "SITES",
    "CaseMix",
    "Missingness",
    "ResponseModel",
    "Site",
    "draw_patients",
    "response_logit",
    "simulate_cohort",
]
