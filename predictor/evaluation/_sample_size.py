"""The minimum number of patients needed to develop a prediction model for a binary outcome:
the three criteria of Riley et al. (2020), and the Cox-Snell and Nagelkerke R-squared that
anticipate a new model's fit from an earlier model's validation.

Riley RD, Ensor J, Snell KIE, et al. Calculating the sample size required for developing a
clinical prediction model. BMJ 2020;368:m441; the formulas are those of Riley RD, Snell KIE,
Ensor J, et al. Minimum sample size for developing a multivariable prediction model: PART II,
binary and time-to-event outcomes. Stat Med 2019;38:1276-1296. With ``p`` candidate predictor
parameters, outcome proportion ``phi`` and anticipated Cox-Snell R-squared ``R``:

(i) expected uniform shrinkage of the predictor effects at least ``S`` (0.9)::

    n = p / ((S - 1) ln(1 - R / S))

(ii) optimism of at most ``delta`` (0.05) in Nagelkerke's R-squared: (i) with
``S = R / (R + delta max(R))``, where ``max(R) = 1 - (phi^phi (1 - phi)^(1 - phi))^2`` is the
largest Cox-Snell R-squared an outcome proportion ``phi`` allows;

(iii) the overall outcome proportion estimated within ``margin`` (0.05), from the 95% Wald
interval of a proportion::

    n = (1.96 / margin)^2 phi (1 - phi)

Each is rounded up; the minimum sample size is the largest of the three. Written from the
papers' formulas (the R package pmsampsize, which computes the same, is GPL).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import xlogy

from predictor._params import (
    INF,
    NONE,
    TEXT,
    BadParameter,
    Interval,
    InvalidParameterError,
    check,
)

DEFAULT_NAGELKERKE = 0.15
"""Nagelkerke's R-squared anticipated when no earlier model gives one: Riley et al.'s
conservative default (BMJ 2020), a Cox-Snell R-squared of 15% of its maximum."""
Z_95 = 1.96
"""The standard normal quantile of criterion (iii)'s 95% interval, as the papers round it."""
CRITERIA = ("shrinkage", "optimism", "outcome rate")
"""The three criteria's short names, in the papers' order (i), (ii), (iii)."""
_NUMERALS = ("i", "ii", "iii")

_UNIT = Interval(float, 0, 1, closed="neither")


def _ceil(value: float) -> int:
    """Round up, as the papers do, after dropping floating-point noise below 1e-9 (so that an
    exact integer computed as 384.00000000000006 stays 384)."""
    return math.ceil(round(value, 9))


def max_cox_snell_r2(outcome_rate: float) -> float:
    """The largest Cox-Snell R-squared a binary outcome with this proportion allows (a model
    that predicts every outcome perfectly): ``1 - exp(2 lnL_null / n)``, with
    ``lnL_null / n = phi ln(phi) + (1 - phi) ln(1 - phi)``.

    Parameters
    ----------
    outcome_rate : float
        Outcome proportion ``phi``, in (0, 1).

    Returns
    -------
    float
        In (0, 0.75]; 0.75 at ``phi = 0.5``.

    Examples
    --------
    >>> round(max_cox_snell_r2(0.5), 6)
    0.75
    """
    null_per_patient = xlogy(outcome_rate, outcome_rate) + xlogy(1 - outcome_rate, 1 - outcome_rate)
    return float(-math.expm1(2.0 * null_per_patient))


def _n_for_shrinkage(parameters: float, r2_cs: float, shrinkage: float) -> float:
    """Criterion (i)'s sample size, unrounded: Riley et al. 2019's equation for ``n`` given
    the expected shrinkage ``S``, ``p / ((S - 1) ln(1 - R / S))``."""
    return parameters / ((shrinkage - 1.0) * math.log1p(-r2_cs / shrinkage))


@dataclass(frozen=True)
class SampleSize:
    """The minimum sample size to develop a model for a binary outcome by Riley et al.'s three
    criteria (:func:`minimum_sample_size`), with what it was computed from.

    Attributes
    ----------
    outcome_rate : float
        Anticipated outcome proportion (here, the share of responders), in (0, 1).
    parameters : float
        Candidate predictor parameters: every coefficient the model may estimate, not
        counting the intercept (a spline term counts each of its basis functions).
    r2_cs : float
        Anticipated Cox-Snell R-squared of the new model.
    r2_source : str
        How ``r2_cs`` was anticipated, for the log and the manifest.
    shrinkage : float
        Criterion (i)'s target: the expected shrinkage of the predictor effects (0.9).
    optimism : float
        Criterion (ii)'s target: the largest tolerated difference between apparent and
        adjusted Nagelkerke R-squared (0.05).
    margin : float
        Criterion (iii)'s target: the half-width of the 95% interval of the outcome
        proportion (0.05).
    max_r2_cs : float
        Largest Cox-Snell R-squared the outcome proportion allows.
    optimism_shrinkage : float
        The expected shrinkage that criterion (ii) amounts to,
        ``r2_cs / (r2_cs + optimism * max_r2_cs)``.
    n_shrinkage, n_optimism, n_outcome_rate : int
        Patients each criterion needs, (i), (ii) and (iii).
    n : int
        The minimum sample size: the largest of the three.
    events : float
        Outcome events (responders) expected among ``n`` patients, ``n * outcome_rate``.
    events_per_parameter : float
        ``events / parameters``.
    """

    outcome_rate: float
    parameters: float
    r2_cs: float
    r2_source: str
    shrinkage: float
    optimism: float
    margin: float
    max_r2_cs: float
    optimism_shrinkage: float
    n_shrinkage: int
    n_optimism: int
    n_outcome_rate: int
    n: int
    events: float
    events_per_parameter: float

    @property
    def r2_nagelkerke(self) -> float:
        """The anticipated Nagelkerke R-squared, ``r2_cs / max_r2_cs``."""
        return self.r2_cs / self.max_r2_cs

    @property
    def binding(self) -> str:
        """The criterion that sets :attr:`n` (one of :data:`CRITERIA`; the first on a tie)."""
        needs = (self.n_shrinkage, self.n_optimism, self.n_outcome_rate)
        return CRITERIA[needs.index(self.n)]

    def shortfall(self, n_available: int) -> int:
        """Patients missing from a cohort of ``n_available``: ``n - n_available``, or 0 when
        the cohort is large enough."""
        check("SampleSize.shortfall", {"n_available": [Interval(int, 0, INF)]}, locals())
        return max(self.n - n_available, 0)

    def lines(self, n_available: int) -> list[str]:
        """A short summary for the training log: what was assumed, each criterion's sample
        size (the one that sets the minimum marked), and whether a cohort of ``n_available``
        patients reaches it.

        Parameters
        ----------
        n_available : int
            Patients in the cohort the model would be trained on.

        Returns
        -------
        list of str
            Lines without trailing newlines.

        Examples
        --------
        >>> size = minimum_sample_size(outcome_rate=0.174, parameters=24, r2_cs=0.288,
        ...                            r2_source="an existing model")
        >>> print("\\n".join(size.lines(500)))  # doctest: +NORMALIZE_WHITESPACE
        Minimum sample size (Riley et al. 2020): 662 patients, 115.2 responders (4.8 per parameter)
          for 24 parameters, response rate 0.174, Cox-Snell R2 0.288 (Nagelkerke 0.477;
          an existing model)
          (i) shrinkage of predictor effects >= 0.9: 623
          (ii) optimism in Nagelkerke R2 <= 0.05 (shrinkage 0.905): 662 <- sets the minimum
          (iii) response rate within +/- 0.05: 221
        The cohort has 500 patients: 162 short of 662 (76% of it).
        """
        short = self.shortfall(n_available)
        targets = (
            f"shrinkage of predictor effects >= {self.shrinkage:g}",
            f"optimism in Nagelkerke R2 <= {self.optimism:g} "
            f"(shrinkage {self.optimism_shrinkage:.3f})",
            f"response rate within +/- {self.margin:g}",
        )
        needs = (self.n_shrinkage, self.n_optimism, self.n_outcome_rate)
        lines = [
            f"Minimum sample size (Riley et al. 2020): {self.n} patients, {self.events:.1f} "
            f"responders ({self.events_per_parameter:.1f} per parameter)",
            f"  for {self.parameters:g} parameters, response rate {self.outcome_rate:.3g}, "
            f"Cox-Snell R2 {self.r2_cs:.3g} (Nagelkerke {self.r2_nagelkerke:.3f}; "
            f"{self.r2_source})",
        ]
        for numeral, name, target, need in zip(_NUMERALS, CRITERIA, targets, needs, strict=True):
            sets = " <- sets the minimum" if name == self.binding else ""
            lines.append(f"  ({numeral}) {target}: {need}{sets}")
        if short:
            lines.append(
                f"The cohort has {n_available} patients: {short} short of {self.n} "
                f"({n_available / self.n:.0%} of it)."
            )
        else:
            lines.append(f"The cohort has {n_available} patients: enough ({self.n} needed).")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """Every field, and ``r2_nagelkerke`` and ``binding``, as plain JSON values (for the
        model's manifest)."""
        return {
            **asdict(self),
            "r2_nagelkerke": self.r2_nagelkerke,
            "binding": self.binding,
        }


def minimum_sample_size(
    *,
    outcome_rate: float,
    parameters: float,
    r2_cs: float | None = None,
    r2_nagelkerke: float | None = None,
    shrinkage: float = 0.9,
    optimism: float = 0.05,
    margin: float = 0.05,
    r2_source: str | None = None,
) -> SampleSize:
    """The minimum number of patients to develop a prediction model for a binary outcome,
    by Riley et al.'s three criteria (BMJ 2020;368:m441; see the module's description).

    Parameters
    ----------
    outcome_rate : float
        Anticipated outcome proportion (share of responders), in (0, 1).
    parameters : float
        Candidate predictor parameters, > 0.
    r2_cs : float, optional
        Anticipated Cox-Snell R-squared of the new model, in (0, max), where max is
        :func:`max_cox_snell_r2` of ``outcome_rate``; for instance :func:`cox_snell_r2` of an
        earlier model on data it was not developed on (an external validation).
    r2_nagelkerke : float, optional
        Or its anticipated Nagelkerke R-squared, in (0, 1): ``r2_cs`` is this times max.
        At most one of the two; with neither, Riley et al.'s conservative default, a
        Nagelkerke R-squared of 0.15.
    shrinkage : float
        Criterion (i): the expected shrinkage of the predictor effects, in (0, 1), above
        ``r2_cs``.
    optimism : float
        Criterion (ii): the largest difference between apparent and adjusted Nagelkerke
        R-squared, in (0, 1).
    margin : float
        Criterion (iii): the half-width of the 95% interval of the outcome proportion, in
        (0, 1).
    r2_source : str, optional
        How the R-squared was anticipated, in a few words (default: what was given).

    Returns
    -------
    SampleSize

    Raises
    ------
    InvalidParameterError
        Naming every parameter out of range, at once.

    Examples
    --------
    Riley et al.'s binary example (Stat Med 2019), a diagnostic model for Chagas disease:

    >>> size = minimum_sample_size(outcome_rate=0.174, parameters=24, r2_cs=0.288)
    >>> size.n_shrinkage, size.n_optimism, size.n_outcome_rate, size.n
    (623, 662, 221, 662)
    >>> round(size.events, 1), round(size.events_per_parameter, 1)
    (115.2, 4.8)
    """
    check(
        "minimum_sample_size",
        {
            "outcome_rate": [_UNIT],
            "parameters": [Interval(float, 0, INF, closed="neither")],
            "r2_cs": [NONE, _UNIT],
            "r2_nagelkerke": [NONE, _UNIT],
            "shrinkage": [_UNIT],
            "optimism": [_UNIT],
            "margin": [_UNIT],
            "r2_source": [NONE, TEXT],
        },
        locals(),
    )
    largest = max_cox_snell_r2(outcome_rate)
    bad = []
    if r2_cs is not None and r2_nagelkerke is not None:
        bad.append(
            BadParameter(
                "r2_nagelkerke",
                repr(r2_nagelkerke),
                "None when r2_cs is given (give one R-squared, not both)",
            )
        )
    elif r2_cs is not None and r2_cs >= largest:
        bad.append(
            BadParameter(
                "r2_cs",
                repr(r2_cs),
                f"below {largest:.4g}, the largest Cox-Snell R-squared an outcome rate of "
                f"{outcome_rate:g} allows",
            )
        )
    if r2_cs is None:
        nagelkerke = DEFAULT_NAGELKERKE if r2_nagelkerke is None else r2_nagelkerke
        r2_cs = nagelkerke * largest
        default_source = (
            f"Nagelkerke R2 {nagelkerke:g} given"
            if r2_nagelkerke is not None
            else f"no R2 given: Riley et al.'s conservative Nagelkerke R2 {DEFAULT_NAGELKERKE:g}"
        )
    else:
        default_source = "Cox-Snell R2 given"
    if not bad and r2_cs >= shrinkage:
        bad.append(
            BadParameter(
                "shrinkage",
                repr(shrinkage),
                f"above the anticipated Cox-Snell R-squared {r2_cs:.4g} (criterion (i) is "
                "undefined at or below it)",
            )
        )
    optimism_shrinkage = r2_cs / (r2_cs + optimism * largest)
    if not bad and optimism_shrinkage <= r2_cs:
        bad.append(
            BadParameter(
                "optimism",
                repr(optimism),
                f"below {1 / largest - r2_cs / largest:.4g} (1 / max R2 - Nagelkerke R2; "
                "criterion (ii) is undefined at or above it)",
            )
        )
    if bad:
        raise InvalidParameterError("minimum_sample_size", bad)
    needs = (
        _ceil(_n_for_shrinkage(parameters, r2_cs, shrinkage)),
        _ceil(_n_for_shrinkage(parameters, r2_cs, optimism_shrinkage)),
        _ceil((Z_95 / margin) ** 2 * outcome_rate * (1.0 - outcome_rate)),
    )
    n = max(needs)
    return SampleSize(
        outcome_rate=float(outcome_rate),
        parameters=float(parameters),
        r2_cs=float(r2_cs),
        r2_source=default_source if r2_source is None else r2_source,
        shrinkage=float(shrinkage),
        optimism=float(optimism),
        margin=float(margin),
        max_r2_cs=largest,
        optimism_shrinkage=optimism_shrinkage,
        n_shrinkage=needs[0],
        n_optimism=needs[1],
        n_outcome_rate=needs[2],
        n=n,
        events=n * float(outcome_rate),
        events_per_parameter=n * float(outcome_rate) / float(parameters),
    )


def _log_likelihoods(function: str, y: Any, probability: Any) -> tuple[float, float, int]:
    """The model's and the null (outcome-rate) model's log-likelihood, and ``n``, after
    checking the arrays (every problem at once)."""
    outcomes = np.asarray(y, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    bad = []
    binary = np.isin(outcomes, (0.0, 1.0))
    if outcomes.ndim != 1 or outcomes.size == 0:
        bad.append(BadParameter("y", f"an array of shape {outcomes.shape}", "a 1-d array of 0/1"))
    elif not binary.all():
        shown = f"an array holding {outcomes[~binary][0]:g}"
        bad.append(BadParameter("y", shown, "a 1-d array of 0/1"))
    elif outcomes.min() == outcomes.max():
        bad.append(BadParameter("y", "an array of one outcome", "0/1 with both outcomes"))
    if p.shape != outcomes.shape or not ((p >= 0.0) & (p <= 1.0)).all():
        bad.append(
            BadParameter(
                "probability",
                f"an array of shape {p.shape}",
                f"an array of probabilities in [0, 1], of y's shape {outcomes.shape}",
            )
        )
    if bad:
        raise InvalidParameterError(function, bad)
    n = outcomes.size
    rate = outcomes.mean()
    model = float(np.sum(xlogy(outcomes, p) + xlogy(1.0 - outcomes, 1.0 - p)))
    null = float(n * (xlogy(rate, rate) + xlogy(1.0 - rate, 1.0 - rate)))
    return model, null, n


def cox_snell_r2(y: Any, probability: Any) -> float:
    """Cox-Snell R-squared of predicted probabilities on observed outcomes:
    ``1 - exp(2 (lnL_null - lnL_model) / n)``, the null model predicting the observed outcome
    rate for everyone.

    On data a model was not developed on (an external validation), this is what Riley et al.
    anticipate a new model's R-squared from (:func:`minimum_sample_size`). It is below 0 when
    the predictions fit worse than the outcome rate alone.

    Parameters
    ----------
    y : array-like, shape (n,)
        0/1 outcomes, both present.
    probability : array-like, shape (n,)
        Predicted probabilities, in [0, 1].

    Returns
    -------
    float
        At most :func:`max_cox_snell_r2` of the outcome rate; 0 for predictions equal to the
        outcome rate; ``-inf`` when an observed outcome was given probability 0.

    Examples
    --------
    >>> round(cox_snell_r2([0, 0, 1, 1], [0.2, 0.4, 0.6, 0.8]), 4)  # 1 - (0.8 * 0.6 / 0.5**2)**-1
    0.4792
    """
    model, null, n = _log_likelihoods("cox_snell_r2", y, probability)
    return float(-math.expm1(2.0 * (null - model) / n))


def nagelkerke_r2(y: Any, probability: Any) -> float:
    """Nagelkerke's R-squared: the Cox-Snell R-squared divided by the largest the outcome
    rate allows, ``1 - exp(2 lnL_null / n)``, so that perfect predictions give 1.

    Parameters
    ----------
    y : array-like, shape (n,)
        0/1 outcomes, both present.
    probability : array-like, shape (n,)
        Predicted probabilities, in [0, 1].

    Returns
    -------
    float
        At most 1.

    Examples
    --------
    >>> round(nagelkerke_r2([0, 0, 1, 1], [0.2, 0.4, 0.6, 0.8]), 4)  # 0.4792 / 0.75
    0.6389
    """
    model, null, n = _log_likelihoods("nagelkerke_r2", y, probability)
    return float(math.expm1(2.0 * (null - model) / n) / math.expm1(2.0 * null / n))
