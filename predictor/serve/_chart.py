"""The contribution chart: a waterfall from the average patient to this patient, drawn as SVG on
the server (no script, no external font), with every value and its unit written on it.

Each bar is one field's contribution in log-odds (the model's own additive term, so the bars
add up exactly from the baseline to the prediction); the axis is labelled in probability, the
scale a clinician reads. Horizontal positions are percentages of the chart's width and text
sizes are pixels, so the same drawing is legible on a laptop and on a phone.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from data_schemas import FIELDS_BY_NAME, Field, Kind

RAISES_COLOUR, LOWERS_COLOUR = "#1d6fa5", "#c0571b"
"""Blue for a field that raises the chance of response, orange for one that lowers it (told
apart without colour too: the sign is written next to each bar)."""

ROW_HEIGHT, TOP, BAR_HEIGHT = 38, 26, 13
PROBABILITY_TICKS = (
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.98,
    0.99,
)
MIN_TICK_GAP = 11.0
"""Percent of the chart's width between two probability labels on the axis, at least."""


def expit(x: float) -> float:
    """The logistic function: log-odds -> probability."""
    return 1.0 / (1.0 + math.exp(-x))


def logit(p: float) -> float:
    """Probability -> log-odds."""
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Step:
    """One bar: a field, its value as shown, and where its contribution starts and ends
    (log-odds)."""

    field: str
    label: str
    shown: str
    start: float
    end: float

    @property
    def contribution(self) -> float:
        """The field's contribution, in log-odds."""
        return self.end - self.start


@dataclass(frozen=True)
class Waterfall:
    """The chart's content: the baseline, one step per model field (largest first), the end."""

    baseline: float
    steps: tuple[Step, ...]

    @property
    def end(self) -> float:
        """Where the last bar ends: the prediction's log-odds."""
        return self.steps[-1].end if self.steps else self.baseline


def shown_value(field: str, value: object) -> str:
    """A clean value as the chart shows it: ``"0.9 mg/L"``, ``"IV ketamine"``, ``"yes"``, or
    ``"not measured"``.

    >>> shown_value("crp_mg_l", 0.9), shown_value("route", "iv_ketamine")
    ('0.9 mg/L', 'IV ketamine')
    >>> shown_value("bdnf_ng_ml", float("nan"))
    'not measured'
    """
    definition = FIELDS_BY_NAME[field]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    if definition.kind is Kind.BOOLEAN:
        return "yes" if value == 1.0 else "no"
    if definition.kind is Kind.CATEGORY:
        return level_text(definition, str(value))
    if isinstance(value, float):
        unit = f" {definition.unit}" if definition.unit and definition.kind is Kind.NUMBER else ""
        return f"{value:g}{unit}"
    return str(value)


def level_text(field: Field, level: str) -> str:
    """A category's level in words: the schema's wording ("IV ketamine") unless that repeats
    the field's label ("Female sex" for sex), else the level itself ("female").

    >>> from data_schemas import FIELDS_BY_NAME
    >>> route, sex = FIELDS_BY_NAME["route"], FIELDS_BY_NAME["sex"]
    >>> level_text(route, "iv_ketamine"), level_text(sex, "male")
    ('IV ketamine', 'male')
    """
    words = field.wording.levels if field.wording is not None and field.wording.levels else {}
    text = words.get(level, "")
    if not text or field.label.casefold() in text.casefold():
        return level.replace("_", " ")
    return text


def waterfall(
    baseline: float, contributions: Mapping[str, float], clean: Mapping[str, object]
) -> Waterfall:
    """The waterfall of one prediction: fields ordered by the size of their contribution.

    Parameters
    ----------
    baseline : float
        Log-odds of the average training patient (``Prediction.baseline``).
    contributions : mapping of str to float
        Each model field's contribution in log-odds (``Prediction.contributions``).
    clean : mapping
        The record as ``validate_record`` returns it, for the values shown.
    """
    steps = []
    at = baseline
    for field in sorted(contributions, key=lambda f: -abs(contributions[f])):
        definition = FIELDS_BY_NAME[field]
        label = definition.label[:1].upper() + definition.label[1:]
        steps.append(
            Step(field, label, shown_value(field, clean.get(field)), at, at + contributions[field])
        )
        at += contributions[field]
    return Waterfall(baseline, tuple(steps))


def _axis(chart: Waterfall) -> tuple[float, float]:
    """The log-odds range the chart spans: every bar, padded, at least 25% to 75%."""
    points = [chart.baseline, *(s.end for s in chart.steps)]
    low, high = min(*points, logit(0.25)), max(*points, logit(0.75))
    pad = 0.06 * (high - low)
    return low - pad, high + pad


def _percent(value: float) -> str:
    return f"{value:.2f}%"


def render_svg(chart: Waterfall) -> str:
    """The chart as an inline ``<svg>`` element (UTF-8 text, no XML declaration)."""
    low, high = _axis(chart)

    def x(value: float) -> float:  # log-odds -> percent of the width
        return 1.0 + 98.0 * (value - low) / (high - low)

    rows = len(chart.steps) + 2
    height = TOP + rows * ROW_HEIGHT + 4
    start, end = expit(chart.baseline), expit(chart.end)
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "class": "waterfall",
            "width": "100%",
            "height": str(height),
            "role": "img",
            "aria-labelledby": "waterfall-title",
        },
    )
    ET.SubElement(svg, "title", {"id": "waterfall-title"}).text = (
        f"Contribution of each field, from the average patient ({start:.1%}) to this patient "
        f"({end:.1%})"
    )
    last = -math.inf
    for p in PROBABILITY_TICKS:
        at = x(logit(p))
        if not 0.5 <= at <= 99.5 or at - last < MIN_TICK_GAP:
            continue
        last = at
        ET.SubElement(
            svg,
            "line",
            {"x1": _percent(at), "x2": _percent(at), "y1": "18", "y2": str(height),
             "class": "grid"},
        )  # fmt: skip
        ET.SubElement(
            svg, "text", {"x": _percent(at), "y": "12", "text-anchor": "middle", "class": "tick"}
        ).text = f"{p:.0%}"

    def marker(row: int, value: float, text: str) -> None:
        top = TOP + row * ROW_HEIGHT
        ET.SubElement(
            svg,
            "rect",
            {"x": _percent(x(value)), "y": str(top + 14), "width": "3",
             "height": str(BAR_HEIGHT + 4), "class": "marker"},
        )  # fmt: skip
        ET.SubElement(svg, "text", {"x": "0", "y": str(top + 10), "class": "row-label"}).text = text

    marker(0, chart.baseline, f"Average patient: {start:.1%}")
    for row, step in enumerate(chart.steps, start=1):
        top = TOP + row * ROW_HEIGHT
        label = ET.SubElement(svg, "text", {"x": "0", "y": str(top + 10), "class": "row-label"})
        label.text = step.label + ": "
        ET.SubElement(label, "tspan", {"class": "row-value"}).text = step.shown
        a, b = sorted((x(step.start), x(step.end)))
        raises = step.contribution >= 0
        ET.SubElement(
            svg,
            "rect",
            {
                "x": _percent(a),
                "y": str(top + 16),
                "width": _percent(max(b - a, 0.3)),
                "height": str(BAR_HEIGHT),
                "fill": RAISES_COLOUR if raises else LOWERS_COLOUR,
                "data-field": step.field,
                "data-contribution": repr(step.contribution),
            },
        )
        right = b < 84.0
        ET.SubElement(
            svg,
            "text",
            {
                "x": _percent(b + 0.8 if right else a - 0.8),
                "y": str(top + 16 + BAR_HEIGHT - 2),
                "text-anchor": "start" if right else "end",
                "class": "amount",
            },
        ).text = f"{step.contribution:+.2f}"
    marker(rows - 1, chart.end, f"This patient: {end:.1%}")
    return ET.tostring(svg, encoding="unicode")
