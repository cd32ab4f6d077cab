"""Input schema v1: one declarative table of field definitions.

Everything that knows about input columns reads :data:`FIELDS`: validation, column-name
matching and aliases, unit conversion, the README's table of input fields and (later) the
warnings and the model card. A field is described once, here, and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

SCHEMA_VERSION = "1"


class Kind(StrEnum):
    """How a field's cells are parsed."""

    TEXT = "text"  # passed through untouched
    NUMBER = "number"  # float64 in the canonical unit
    INTEGER = "integer"  # a whole number, stored as float64
    CATEGORY = "category"  # one of a fixed set of levels
    BOOLEAN = "boolean"  # 1.0 / 0.0, stored as float64


class Role(StrEnum):
    """What a field is for."""

    ID = "id"  # identifies the patient; never a model input
    PREDICTOR = "predictor"  # a candidate model input
    SAFETY = "safety"  # a safety-screen flag: raises warnings, never a model input
    OUTCOME = "outcome"  # the training label
    SIMULATION = "simulation"  # written by the simulator only


@dataclass(frozen=True)
class Alias:
    """Another column name for a field, in another unit.

    Parameters
    ----------
    name : str
        The alias column name (canonical spelling, e.g. ``"crp_mg_dl"``).
    unit : str
        The unit values in that column are given in.
    factor : float
        Multiply a value in the alias unit by this to get the canonical unit.
    """

    name: str
    unit: str = ""
    factor: float = 1.0


@dataclass(frozen=True)
class Field:
    """One input column: its name, type, unit, accepted spellings and plausible range.

    Parameters
    ----------
    name : str
        Canonical column name.
    kind : Kind
        How cells are parsed.
    role : Role
        What the field is for.
    description : str
        One line for humans (README, model card, messages).
    unit : str
        Canonical unit of a number; empty for dimensionless numbers and other kinds.
    low, high : float or None
        Hard range, inclusive, in the canonical unit; a value outside is an error.
    levels : tuple of str
        Canonical levels of a category, in display order.
    level_aliases : mapping of str to str
        Other spellings of a level (matched case-insensitively) -> canonical level.
    aliases : tuple of Alias
        Other column names carrying the same field, possibly in another unit.
    unit_synonyms : tuple of str
        Other ways a header may write the canonical unit in brackets (``"yrs"`` for years).
    measured_by : str
        The test or instrument that produces the value (``"polysomnography"``...); fields
        measured by the same test go missing together.
    caution : str
        For a safety-screen flag: the warning shown when it is set.
    """

    name: str
    kind: Kind
    role: Role
    description: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    levels: tuple[str, ...] = ()
    level_aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    aliases: tuple[Alias, ...] = ()
    unit_synonyms: tuple[str, ...] = ()
    measured_by: str = ""
    caution: str = ""

    def __post_init__(self) -> None:
        if (self.kind is Kind.CATEGORY) != bool(self.levels):
            raise ValueError(f"{self.name}: levels are given for categories and only for them")
        if not set(self.level_aliases.values()) <= set(self.levels):
            raise ValueError(f"{self.name}: a level alias points to an unknown level")
        if (self.role is Role.SAFETY) != bool(self.caution):
            raise ValueError(f"{self.name}: a caution is given for safety flags and only for them")
        object.__setattr__(self, "level_aliases", MappingProxyType(dict(self.level_aliases)))

    def columns_by_unit(self) -> dict[str, str]:
        """Unit -> the first column name that carries it, canonical name first
        (``{"mg/L": "crp_mg_l", "mg/dL": "crp_mg_dl"}``); for messages that say which column to
        use for which unit."""
        columns: dict[str, str] = {}
        for name, unit in [(self.name, self.unit), *((a.name, a.unit) for a in self.aliases)]:
            columns.setdefault(unit or self.unit, name)
        return columns

    @property
    def bounds(self) -> tuple[float, float]:
        """The hard range as (low, high), infinite where the field has no bound."""
        return (
            -math.inf if self.low is None else self.low,
            math.inf if self.high is None else self.high,
        )

    @property
    def range_text(self) -> str:
        """The hard range as ``"0 to 500 mg/L"``, or ``""`` when there is none."""
        if self.low is None and self.high is None:
            return ""
        unit = f" {self.unit}" if self.unit and self.kind is Kind.NUMBER else ""
        return f"{self.low:g} to {self.high:g}{unit}"


BOOLEAN_PAIRS: tuple[tuple[str, str], ...] = (
    ("yes", "no"),
    ("true", "false"),
    ("1", "0"),
    ("y", "n"),
)
"""How a boolean may be spelled (any case): (true, false) pairs."""

BOOLEAN_SPELLINGS = ", ".join(f"{yes}/{no}" for yes, no in BOOLEAN_PAIRS)

FIELDS: tuple[Field, ...] = (
    Field(
        "patient_id",
        Kind.TEXT,
        Role.ID,
        "Patient identifier; passed through to the output untouched.",
    ),
    Field(
        "age_years",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Age at the first dose.",
        unit="years",
        low=18,
        high=100,
        unit_synonyms=("y", "yr", "yrs", "year"),
    ),
    Field(
        "sex",
        Kind.CATEGORY,
        Role.PREDICTOR,
        "Sex.",
        levels=("female", "male"),
        level_aliases={"f": "female", "m": "male"},
        aliases=(Alias("gender"),),
    ),
    Field(
        "bmi_kg_m2",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Body-mass index.",
        unit="kg/m2",
        low=12,
        high=80,
    ),
    Field(
        "baseline_madrs",
        Kind.NUMBER,
        Role.PREDICTOR,
        "MADRS total score before the first dose.",
        unit="MADRS points",
        low=0,
        high=60,
        aliases=(
            Alias("madrs"),
            Alias("madrs_baseline"),
            Alias("baseline_madrs_score"),
            Alias("madrs_score"),
            Alias("madrs_total"),
            Alias("madrs_total_score"),
        ),
        unit_synonyms=("points", "score"),
    ),
    Field(
        "failed_antidepressant_trials",
        Kind.INTEGER,
        Role.PREDICTOR,
        "Adequate antidepressant trials that failed in this episode.",
        unit="count in this episode",
        low=0,
        high=30,
        unit_synonyms=("count", "n"),
    ),
    Field(
        "route",
        Kind.CATEGORY,
        Role.PREDICTOR,
        "Treatment: IV racemic ketamine or intranasal esketamine.",
        levels=("iv_ketamine", "intranasal_esketamine"),
        level_aliases={
            "iv": "iv_ketamine",
            "intranasal": "intranasal_esketamine",
            "esketamine": "intranasal_esketamine",
        },
        aliases=(Alias("route_of_administration"),),
    ),
    Field(
        "crp_mg_l",
        Kind.NUMBER,
        Role.PREDICTOR,
        "High-sensitivity C-reactive protein (inflammation).",
        unit="mg/L",
        low=0,
        high=500,
        aliases=(
            Alias("crp_mg_dl", unit="mg/dL", factor=10.0),
            Alias("hs_crp_mg_l", unit="mg/L"),
            Alias("hs_crp_mg_dl", unit="mg/dL", factor=10.0),
            Alias("hscrp_mg_l", unit="mg/L"),
            Alias("hscrp_mg_dl", unit="mg/dL", factor=10.0),
        ),
        measured_by="hs-CRP blood test",
    ),
    Field(
        "bdnf_ng_ml",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Serum brain-derived neurotrophic factor (not plasma).",
        unit="ng/mL",
        low=0,
        high=200,
        aliases=(
            Alias("bdnf_pg_ml", unit="pg/mL", factor=0.001),
            Alias("serum_bdnf_ng_ml", unit="ng/mL"),
            Alias("serum_bdnf_pg_ml", unit="pg/mL", factor=0.001),
        ),
        measured_by="serum BDNF blood test",
    ),
    Field(
        "delta_sleep_ratio",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Delta sleep ratio: slow-wave activity in the first NREM period / in the second.",
        low=0,
        high=10,
        measured_by="polysomnography",
    ),
    Field(
        "slow_wave_sleep_pct",
        Kind.NUMBER,
        Role.PREDICTOR,
        "N3 (slow-wave) sleep as a share of total sleep time.",
        unit="% of total sleep time",
        low=0,
        high=60,
        aliases=(
            Alias("n3_pct", unit="% of total sleep time"),
            Alias("sws_pct", unit="% of total sleep time"),
        ),
        unit_synonyms=("%", "pct", "percent", "% tst"),
        measured_by="polysomnography",
    ),
    Field(
        "rhythm_relative_amplitude",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Rest-activity rhythm relative amplitude (RA).",
        low=0,
        high=1,
        measured_by="actigraphy",
    ),
    Field(
        "rhythm_interdaily_stability",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Rest-activity rhythm interdaily stability (IS).",
        low=0,
        high=1,
        measured_by="actigraphy",
    ),
    Field(
        "substance_use_disorder",
        Kind.CATEGORY,
        Role.PREDICTOR,
        "Personal substance-use disorder: never, in the past, or current.",
        levels=("none", "past", "current"),
    ),
    Field(
        "family_history_alcohol_use_disorder",
        Kind.BOOLEAN,
        Role.PREDICTOR,
        "Alcohol use disorder in a first-degree relative.",
        aliases=(Alias("family_history_of_alcohol_use_disorder"), Alias("family_history_aud")),
    ),
    Field(
        "history_of_psychosis",
        Kind.BOOLEAN,
        Role.SAFETY,
        "Any history of psychosis (safety screen).",
        caution=(
            "history of psychosis: ketamine can bring on or worsen psychotic symptoms; a "
            "psychiatrist should weigh this before treatment"
        ),
    ),
    Field(
        "uncontrolled_hypertension",
        Kind.BOOLEAN,
        Role.SAFETY,
        "Uncontrolled hypertension (safety screen).",
        caution=(
            "uncontrolled hypertension: ketamine raises blood pressure during dosing; bring "
            "it under control first"
        ),
    ),
    Field(
        "cardiovascular_disease",
        Kind.BOOLEAN,
        Role.SAFETY,
        "Cardiovascular disease (safety screen).",
        caution=(
            "cardiovascular disease: ketamine raises heart rate and blood pressure; assess "
            "cardiac risk before treatment"
        ),
    ),
    Field(
        "current_naltrexone",
        Kind.BOOLEAN,
        Role.SAFETY,
        "Currently taking naltrexone, which may blunt ketamine's effect (safety screen).",
        caution=(
            "current naltrexone: an opioid antagonist reported to block ketamine's "
            "antidepressant effect (Williams et al. 2018); the model does not account for it"
        ),
    ),
    Field(
        "responded",
        Kind.BOOLEAN,
        Role.OUTCOME,
        "Training label: at least 50% MADRS reduction at the end of the induction course.",
    ),
    Field(
        "true_probability",
        Kind.NUMBER,
        Role.SIMULATION,
        "Simulated cohorts only: the probability `responded` was drawn from.",
        low=0,
        high=1,
    ),
)

FIELDS_BY_NAME: Mapping[str, Field] = MappingProxyType({f.name: f for f in FIELDS})


def markdown_table(fields: tuple[Field, ...] = FIELDS) -> str:
    """The table of input fields, in Markdown, as the README shows it (generated, never typed).

    Examples
    --------
    >>> print(markdown_table().splitlines()[0])
    | column | type | unit / levels | also accepted | hard range | description |
    """
    rows = [
        "| column | type | unit / levels | also accepted | hard range | description |",
        "|---|---|---|---|---|---|",
    ]
    for f in fields:
        levels = ", ".join(f.levels)
        accepted = [
            f"{a.name} ({a.unit}, x{a.factor:g})" if a.factor != 1.0 else a.name for a in f.aliases
        ]
        accepted += [f"{spelling} -> {level}" for spelling, level in f.level_aliases.items()]
        if f.kind is Kind.BOOLEAN:
            levels, accepted = "yes / no", [BOOLEAN_SPELLINGS]
        unit = levels or f.unit
        role = "" if f.role is Role.PREDICTOR else f" ({f.role.value})"
        rows.append(
            f"| `{f.name}` | {f.kind.value}{role} | {unit} | {'; '.join(accepted)} | "
            f"{f.range_text} | {f.description} |"
        )
    return "\n".join(rows) + "\n"
