"""Input schema v1: one declarative table of field definitions.

Everything that knows about input columns reads :data:`FIELDS`: validation, column-name
matching and aliases, unit conversion, the README's table of input fields, the model's scale
for each number, the reasons and warnings in words, the evaluation report's subgroups and the
model card. A field is described once, here, and nowhere else.

A :class:`Field` entry holds:

* what the column is: name, kind, role, a one-line description, unit, hard range, levels;
* how it may be spelled: column aliases (possibly in another unit), level aliases, unit
  synonyms;
* how it goes missing: the test that measures it (``measured_by``);
* for a predictor, how it is put into words: a short ``label`` ("CRP") and a :class:`Wording`
  (a number's value as text and as low / typical / high; a category's levels);
* for a number the model should see on the log scale, the ``log_floor`` values are raised to
  first;
* how it splits patients into subgroups in the evaluation report, if it does
  (:class:`Subgroups`);
* for a safety-screen flag, the warning shown when it is set (``caution``).

:meth:`Field.__post_init__` checks that an entry has what the code relies on (a predictor's
wording fits its kind, a log floor is for a number...), so that a forgotten or mistyped part
fails when the schema is imported, with a message that says what to add. Adding a predictor is
one entry here (plus, for a simulated cohort, its effect in the simulator).
"""

from __future__ import annotations

import itertools
import math
import string
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
class Wording:
    """How a predictor's reasons put it into words.

    A number's reason reads ``"{low|typical|high} ({shown}) raises the chance of response"``,
    e.g. "Low inflammation (CRP 0.9 mg/L) raises the chance of response"; a category's reads
    ``"{levels[level]} raises the chance of response"``.

    Parameters
    ----------
    shown : str
        A number's value as text; ``{value}`` (once) and ``{unit}`` (the field's unit) are filled
        in: ``"CRP {value} {unit}"``.
    low, typical, high : str
        A number's value in words, below / between / above ``cuts``.
    cuts : tuple of float, optional
        Fixed cut points in the field's unit (clinical categories); default: the training
        data's tertiles.
    levels : mapping of str to str
        A category's or boolean's levels (``"yes"`` and ``"no"`` for a boolean) in words.
    """

    shown: str = ""
    low: str = ""
    typical: str = ""
    high: str = ""
    cuts: tuple[float, float] | None = None
    levels: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.levels is not None:
            object.__setattr__(self, "levels", MappingProxyType(dict(self.levels)))


@dataclass(frozen=True)
class Subgroups:
    """How a field splits patients into subgroups in the evaluation report.

    Parameters
    ----------
    name : str
        The subgrouping's name in the report ("age band").
    edges : tuple of float
        For a number: the lower edges of its bands, increasing, in the field's unit; the last
        band is open, and values below the first edge form a band of their own. Empty for a
        category or boolean, whose subgroups are its levels.

    Examples
    --------
    >>> Subgroups("age band", edges=(18, 35, 50, 65)).band_labels
    ('under 18', '18-34', '35-49', '50-64', '65+')
    """

    name: str
    edges: tuple[float, ...] = ()

    @property
    def band_labels(self) -> tuple[str, ...]:
        """A number's bands in order, each as text: ``"18-34"`` between whole-number edges
        (the upper edge is not in the band), ``"1 to <3"`` otherwise, and the bands below the
        first edge and from the last one on."""
        if not self.edges:
            return ()
        whole = all(float(edge).is_integer() for edge in self.edges)
        between = [
            f"{a:g}-{b - 1:g}" if whole else f"{a:g} to <{b:g}"
            for a, b in itertools.pairwise(self.edges)
        ]
        return (f"under {self.edges[0]:g}", *between, f"{self.edges[-1]:g}+")


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
    label : str
        For a predictor: its short name in reasons and warnings ("CRP", "delta sleep ratio").
    wording : Wording or None
        For a predictor: how its reasons put it into words (required for a predictor, and only
        for one).
    log_floor : float or None
        For a number: model it on the log scale, raising values to this floor (in the field's
        unit, > 0) first; None models it as it is.
    subgroups : Subgroups or None
        How the evaluation report splits patients by this field; None: it does not.

    Raises
    ------
    ValueError
        If the entry lacks something the code relies on for its kind and role, or has
        something that does not apply to it (every problem is listed).
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
    label: str = ""
    wording: Wording | None = None
    log_floor: float | None = None
    subgroups: Subgroups | None = None

    def __post_init__(self) -> None:
        problems = []
        if (self.kind is Kind.CATEGORY) != bool(self.levels):
            problems.append("levels are given for categories and only for them")
        if not set(self.level_aliases.values()) <= set(self.levels):
            problems.append("a level alias points to an unknown level")
        if (self.role is Role.SAFETY) != bool(self.caution):
            problems.append("a caution is given for safety flags and only for them")
        problems += self._wording_problems() + self._scale_problems()
        if problems:
            raise ValueError(
                f"field {self.name!r} in data_schemas/fields.py: " + "; ".join(problems)
            )
        object.__setattr__(self, "level_aliases", MappingProxyType(dict(self.level_aliases)))

    @property
    def is_number(self) -> bool:
        """Whether the field is a number (an integer is one too)."""
        return self.kind in (Kind.NUMBER, Kind.INTEGER)

    @property
    def level_names(self) -> tuple[str, ...]:
        """The levels a category's or boolean's wording names: its levels, or yes and no."""
        return ("yes", "no") if self.kind is Kind.BOOLEAN else self.levels

    def _wording_problems(self) -> list[str]:
        """What the reasons and warnings need of a predictor (and that only it has)."""
        wording = self.wording
        if self.role is not Role.PREDICTOR:
            return ["a wording is given for predictors only"] if wording is not None else []
        problems = [] if self.label else ["a predictor needs a label (its short name, 'CRP')"]
        if wording is None:
            return [*problems, "a predictor needs a wording (Wording(...): its reasons in words)"]
        if self.is_number:
            if not (wording.low and wording.typical and wording.high):
                problems.append("a number's wording needs low, typical and high words")
            problems += _shown_problems(wording.shown, self.unit)
            if wording.cuts is not None and not (
                len(wording.cuts) == 2 and wording.cuts[0] < wording.cuts[1]
            ):
                problems.append("a number's wording cuts are two increasing numbers")
            if wording.levels is not None:
                problems.append("a number's wording has no levels")
        elif self.kind is not Kind.TEXT:
            named = set(wording.levels or {})
            if named != set(self.level_names):
                problems.append(
                    f"the wording's levels are {sorted(named)}; give words for each of "
                    f"{list(self.level_names)} and nothing else"
                )
            if wording.shown or wording.low or wording.typical or wording.high or wording.cuts:
                problems.append("a category's or boolean's wording has levels only")
        return problems

    def _scale_problems(self) -> list[str]:
        """What the model's scale and the report's subgroups need."""
        problems = []
        if self.log_floor is not None and not (self.is_number and self.log_floor > 0):
            problems.append("a log floor is a positive number, given for number fields only")
        if self.subgroups is not None:
            edges = self.subgroups.edges
            if self.is_number and not (edges and all(a < b for a, b in itertools.pairwise(edges))):
                problems.append("a number's subgroups need increasing band edges")
            elif self.kind is Kind.TEXT:
                problems.append("a text field forms no subgroups")
            elif not self.is_number and edges:
                problems.append(
                    "only a number's subgroups have band edges (a category's are its levels)"
                )
        return problems

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


def _shown_problems(shown: str, unit: str) -> list[str]:
    """What is wrong with a number's ``shown`` text (``"CRP {value} {unit}"``)."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(shown) if name is not None]
    except ValueError as exc:
        return [f"the wording's shown text {shown!r} is not a format string ({exc})"]
    if shown.count("{value}") != 1 or names.count("value") != 1 or set(names) - {"value", "unit"}:
        return [f"the wording's shown text {shown!r} needs {{value}} once (and maybe {{unit}})"]
    if "unit" in names and not unit:
        return [f"the wording's shown text {shown!r} has {{unit}}, but the field has no unit"]
    return []


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
        label="age",
        wording=Wording("{value} {unit}", "Younger age", "Middle age", "Older age"),
        subgroups=Subgroups("age band", edges=(18, 35, 50, 65)),
    ),
    Field(
        "sex",
        Kind.CATEGORY,
        Role.PREDICTOR,
        "Sex.",
        levels=("female", "male"),
        level_aliases={"f": "female", "m": "male"},
        aliases=(Alias("gender"),),
        label="sex",
        wording=Wording(levels={"female": "Female sex", "male": "Male sex"}),
        subgroups=Subgroups("sex"),
    ),
    Field(
        "bmi_kg_m2",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Body-mass index.",
        unit="kg/m2",
        low=12,
        high=80,
        label="BMI",
        wording=Wording(
            "BMI {value} {unit}",
            "Lower body-mass index",
            "Mid-range body-mass index",
            "Higher body-mass index",
        ),
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
        label="baseline MADRS",
        wording=Wording(
            "MADRS {value}", "Less severe depression", "Typical severity", "More severe depression"
        ),
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
        label="failed antidepressant trials",
        wording=Wording(
            "{value} failed trials",
            "Few failed antidepressants",
            "Several failed antidepressants",
            "Many failed antidepressants",
        ),
    ),
    Field(
        "route",
        Kind.CATEGORY,
        Role.PREDICTOR,
        "Treatment: IV racemic ketamine, intranasal esketamine, or intramuscular, oral or "
        "sublingual (troche, lozenge) racemic ketamine.",
        levels=(
            "iv_ketamine",
            "intranasal_esketamine",
            "intramuscular_ketamine",
            "oral_ketamine",
            "sublingual_ketamine",
        ),
        # Only spellings that name one route: not "ketamine", "tablet" (oral or sublingual),
        # "nasal spray" or "IN" (a word too), nor "buccal" (a route of its own).
        level_aliases={
            "iv": "iv_ketamine",
            "intranasal": "intranasal_esketamine",
            "esketamine": "intranasal_esketamine",
            "im": "intramuscular_ketamine",
            "i.m.": "intramuscular_ketamine",
            "im_ketamine": "intramuscular_ketamine",
            "intramuscular": "intramuscular_ketamine",
            "po": "oral_ketamine",
            "p.o.": "oral_ketamine",
            "po_ketamine": "oral_ketamine",
            "oral": "oral_ketamine",
            "sl": "sublingual_ketamine",
            "s.l.": "sublingual_ketamine",
            "sl_ketamine": "sublingual_ketamine",
            "sublingual": "sublingual_ketamine",
            "troche": "sublingual_ketamine",
            "ketamine_troche": "sublingual_ketamine",
            "lozenge": "sublingual_ketamine",
            "ketamine_lozenge": "sublingual_ketamine",
        },
        aliases=(Alias("route_of_administration"),),
        label="route",
        wording=Wording(
            levels={
                "iv_ketamine": "IV ketamine",
                "intranasal_esketamine": "Intranasal esketamine",
                "intramuscular_ketamine": "Intramuscular ketamine",
                "oral_ketamine": "Oral ketamine",
                "sublingual_ketamine": "Sublingual ketamine",
            }
        ),
        subgroups=Subgroups("route"),
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
        label="CRP",
        wording=Wording(
            "CRP {value} {unit}",
            "Low inflammation",
            "Average inflammation",
            "High inflammation",
            cuts=(1.0, 3.0),  # the usual hs-CRP risk categories: < 1, 1 to 3, > 3 mg/L
        ),
        log_floor=0.05,  # below the high-sensitivity assay's usual detection limit
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
        label="BDNF",
        wording=Wording("BDNF {value} {unit}", "Low BDNF", "Mid-range BDNF", "High BDNF"),
    ),
    Field(
        "delta_sleep_ratio",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Delta sleep ratio: slow-wave activity in the first NREM period / in the second.",
        low=0,
        high=10,
        measured_by="polysomnography",
        label="delta sleep ratio",
        wording=Wording(
            "delta sleep ratio {value}",
            "Little early slow-wave sleep",
            "Typical early slow-wave sleep",
            "Much early slow-wave sleep",
        ),
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
        label="slow-wave sleep",
        wording=Wording(
            "N3 {value}% of sleep",
            "Little slow-wave sleep",
            "Typical slow-wave sleep",
            "Much slow-wave sleep",
        ),
    ),
    Field(
        "rhythm_relative_amplitude",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Rest-activity rhythm relative amplitude (RA).",
        low=0,
        high=1,
        measured_by="actigraphy",
        label="rest-activity amplitude",
        wording=Wording(
            "relative amplitude {value}",
            "Weak daily rhythm",
            "Typical daily rhythm",
            "Strong daily rhythm",
        ),
    ),
    Field(
        "rhythm_interdaily_stability",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Rest-activity rhythm interdaily stability (IS).",
        low=0,
        high=1,
        measured_by="actigraphy",
        label="rest-activity stability",
        wording=Wording(
            "interdaily stability {value}",
            "Irregular daily rhythm",
            "Typically regular daily rhythm",
            "Very regular daily rhythm",
        ),
    ),
    Field(
        "substance_use_disorder",
        Kind.CATEGORY,
        Role.PREDICTOR,
        "Personal substance-use disorder: never, in the past, or current.",
        levels=("none", "past", "current"),
        label="substance-use disorder",
        wording=Wording(
            levels={
                "none": "No substance-use disorder",
                "past": "A past substance-use disorder",
                "current": "A current substance-use disorder",
            }
        ),
        subgroups=Subgroups("substance use"),
    ),
    Field(
        "family_history_alcohol_use_disorder",
        Kind.BOOLEAN,
        Role.PREDICTOR,
        "Alcohol use disorder in a first-degree relative.",
        aliases=(Alias("family_history_of_alcohol_use_disorder"), Alias("family_history_aud")),
        label="family history of alcohol use disorder",
        wording=Wording(
            levels={
                "yes": "A family history of alcohol use disorder",
                "no": "No family history of alcohol use disorder",
            }
        ),
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
