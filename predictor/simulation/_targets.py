"""The literature targets a simulated cohort is held to, and how each is measured.

This is the "Simulator targets" table of the project's literature review (literature.md, kept
with the design documents), as data, with each source's figure and tolerance. The tests assert
every row on n = 50,000; ``bench/simulator_targets.py`` prints them, and
``bench/calibrate_simulator.py`` solves the response model's effects against them. Contrasts are
marginal (a crude comparison of the simulated population, confounding included); tertiles are
among patients with the value measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class Target:
    """One row of the targets table: measure(cohort, outcome) must land in [low, high]."""

    id: str
    quantity: str
    target: float
    tolerance: float
    measure: Callable[[pd.DataFrame, str], float]

    @property
    def low(self) -> float:
        return self.target - self.tolerance

    @property
    def high(self) -> float:
        return self.target + self.tolerance


def _rate(cohort: pd.DataFrame, outcome: str, mask: pd.Series | np.ndarray) -> float:
    return float(cohort.loc[np.asarray(mask), outcome].mean())


def _difference(
    first: Callable[[pd.DataFrame], pd.Series], second: Callable[[pd.DataFrame], pd.Series]
) -> Callable[[pd.DataFrame, str], float]:
    """Response rate where ``first`` holds minus where ``second`` holds."""
    return lambda c, y: _rate(c, y, first(c)) - _rate(c, y, second(c))


def _levels(column: str, first: object, second: object) -> Callable[[pd.DataFrame, str], float]:
    """Response rate where ``column == first`` minus where ``column == second``."""
    return _difference(lambda c: c[column] == first, lambda c: c[column] == second)


def _tertiles(column: str) -> Callable[[pd.DataFrame, str], float]:
    """Response rate in the top tertile of ``column`` minus the bottom one (measured only)."""

    def measure(cohort: pd.DataFrame, outcome: str) -> float:
        measured = cohort[cohort[column].notna()]
        rank = measured[column].rank(method="first").to_numpy()
        n = len(measured)
        return _rate(measured, outcome, rank > 2 * n / 3) - _rate(measured, outcome, rank <= n / 3)

    return measure


def _missing(column: str) -> Callable[[pd.DataFrame, str], float]:
    return lambda c, y: float(c[column].isna().mean())


def _oracle_auc(cohort: pd.DataFrame, outcome: str) -> float:
    return float(roc_auc_score(cohort["responded"], cohort["true_probability"]))


def _crp(c: pd.DataFrame) -> pd.Series:
    return c["crp_mg_l"].dropna()


TARGETS: tuple[Target, ...] = (
    Target("T1", "overall response rate", 0.52, 0.02, lambda c, y: float(c[y].mean())),
    Target(
        "T2",
        "response rate, IV ketamine minus intranasal esketamine",
        0.07,
        0.03,
        _levels("route", "iv_ketamine", "intranasal_esketamine"),
    ),
    Target(
        "T3",
        "response rate, CRP < 1 mg/L minus CRP > 3 mg/L",
        0.15,
        0.03,
        _difference(lambda c: c.crp_mg_l < 1.0, lambda c: c.crp_mg_l > 3.0),
    ),
    Target(
        "T4", "response rate, BDNF top minus bottom tertile", 0.12, 0.03, _tertiles("bdnf_ng_ml")
    ),
    Target(
        "T5",
        "response rate, delta sleep ratio top minus bottom tertile",
        0.12,
        0.03,
        _tertiles("delta_sleep_ratio"),
    ),
    Target(
        "T6",
        "response rate, slow-wave sleep % top minus bottom tertile",
        0.04,
        0.03,
        _tertiles("slow_wave_sleep_pct"),
    ),
    Target(
        "T7",
        "response rate, relative amplitude top minus bottom tertile",
        0.08,
        0.03,
        _tertiles("rhythm_relative_amplitude"),
    ),
    Target(
        "T8",
        "response rate, interdaily stability top minus bottom tertile",
        0.05,
        0.03,
        _tertiles("rhythm_interdaily_stability"),
    ),
    Target(
        "T9",
        "response rate, no SUD minus current SUD",
        0.20,
        0.04,
        _levels("substance_use_disorder", "none", "current"),
    ),
    Target(
        "T10",
        "response rate, no SUD minus past SUD",
        0.08,
        0.03,
        _levels("substance_use_disorder", "none", "past"),
    ),
    Target(
        "T11",
        "response rate, family history of AUD yes minus no",
        0.15,
        0.03,
        _levels("family_history_alcohol_use_disorder", 1.0, 0.0),
    ),
    Target(
        "T12",
        "response rate, BMI >= 30 minus BMI < 25",
        0.05,
        0.03,
        _difference(lambda c: c.bmi_kg_m2 >= 30.0, lambda c: c.bmi_kg_m2 < 25.0),
    ),
    Target(
        "T13",
        "response rate, >= 5 failed trials minus <= 2 failed trials",
        -0.08,
        0.03,
        _difference(
            lambda c: c.failed_antidepressant_trials >= 5,
            lambda c: c.failed_antidepressant_trials <= 2,
        ),
    ),
    Target(
        "T14",
        "share with CRP > 3 mg/L (of measured)",
        0.28,
        0.03,
        lambda c, y: float((_crp(c) > 3.0).mean()),
    ),
    Target("T15", "median CRP, mg/L (of measured)", 1.4, 0.3, lambda c, y: float(_crp(c).median())),
    Target("T16", "mean serum BDNF, ng/mL", 22.0, 2.0, lambda c, y: float(c.bdnf_ng_ml.mean())),
    Target(
        "T17", "mean delta sleep ratio", 1.2, 0.1, lambda c, y: float(c.delta_sleep_ratio.mean())
    ),
    Target(
        "T18",
        "share missing: delta sleep ratio / slow-wave sleep (polysomnography)",
        0.70,
        0.03,
        _missing("delta_sleep_ratio"),
    ),
    Target(
        "T19",
        "share missing: relative amplitude / interdaily stability (actigraphy)",
        0.50,
        0.03,
        _missing("rhythm_relative_amplitude"),
    ),
    Target("T20", "share missing: BDNF", 0.30, 0.03, _missing("bdnf_ng_ml")),
    Target("T21", "share missing: CRP", 0.10, 0.02, _missing("crp_mg_l")),
    Target(
        "T22",
        "oracle AUC (AUC of true_probability for responded)",
        0.70,
        0.04,
        _oracle_auc,
    ),
)


def measure_targets(cohort: pd.DataFrame, outcome: str = "responded") -> pd.DataFrame:
    """Measure every target on ``cohort``.

    Parameters
    ----------
    cohort : pandas.DataFrame
        A canonical cohort with ``responded`` and ``true_probability``.
    outcome : str
        The column response rates are computed from: ``"responded"`` (what a study would see) or
        ``"true_probability"`` (its expectation, free of sampling noise in the outcome).

    Returns
    -------
    pandas.DataFrame
        One row per target: id, quantity, target, low, high, value, ok.
    """
    rows = []
    for t in TARGETS:
        value = t.measure(cohort, outcome)
        rows.append((t.id, t.quantity, t.target, t.low, t.high, value, t.low <= value <= t.high))
    return pd.DataFrame(rows, columns=["id", "quantity", "target", "low", "high", "value", "ok"])


def targets_markdown(cohort: pd.DataFrame, *, label: str = "") -> str:
    """The targets table in Markdown (as the README shows it), measured on ``cohort``.

    Parameters
    ----------
    cohort : pandas.DataFrame
        A simulated cohort.
    label : str
        Says which cohort, in the header of the "reached" column.
    """
    lines = [f"| id | quantity | target | reached{label} |", "|---|---|---|---|"]
    for row in measure_targets(cohort).itertuples():
        band = f"{row.low:.2f} to {row.high:.2f}"
        lines.append(f"| {row.id} | {row.quantity} | {band} | {row.value:.3f} |")
    return "\n".join(lines) + "\n"
