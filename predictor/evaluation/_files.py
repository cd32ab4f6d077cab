"""Writing the evaluation report: ``metrics.json``, the figures and ``report.md``.

The last step of the report's one-way flow: numbers (:mod:`~predictor.evaluation._report`) ->
Markdown (:mod:`~predictor.evaluation._markdown`) and figures
(:mod:`~predictor.evaluation._figures`, when matplotlib is installed) -> files.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from predictor._atomic import atomic_bytes_output, atomic_text_output
from predictor.evaluation._markdown import report_markdown
from predictor.evaluation._report import (
    BOOTSTRAP_FIGURE_NAMES,
    FIGURE_NAMES,
    FIGURES_DIR,
    METRICS_NAME,
    REPORT_NAME,
    Report,
)

FIGURES_MODULE = "predictor.evaluation._figures"
EVERY_FIGURE = {**FIGURE_NAMES, **BOOTSTRAP_FIGURE_NAMES}
"""Figure key -> file name, of every figure a report may have."""


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote: paths, and each figure's path relative to the report
    (``figures`` is None when matplotlib is absent)."""

    report: Path
    metrics: Path
    figures: dict[str, str] | None


def _is_matplotlib(name: str | None) -> bool:
    return name is not None and (name == "matplotlib" or name.startswith("matplotlib."))


def figures_module() -> ModuleType | None:
    """:mod:`predictor.evaluation._figures`, or None when matplotlib itself is not installed.

    Only the absence of matplotlib (a ``ModuleNotFoundError`` naming it or one of its
    modules) means "no figures"; any other error while importing our figure code is raised.
    """
    try:
        return importlib.import_module(FIGURES_MODULE)
    except ModuleNotFoundError as exc:
        if _is_matplotlib(exc.name):
            return None
        raise


def metrics_text(report: Report) -> str:
    """The text of ``metrics.json``."""
    return json.dumps(report.to_json(), allow_nan=False, indent=1) + "\n"


def write_report(report: Report, out: str | os.PathLike[str]) -> ReportFiles:
    """Write ``metrics.json``, the figures and ``report.md`` into ``out`` (created).

    Each file is written atomically (it appears complete or not at all); ``report.md`` comes
    last. A figure this report does not have (the instability figure without a bootstrap)
    is removed if an earlier report left it. Without matplotlib, no figure is drawn, figures
    left from an earlier report are removed, and ``report.md`` says why it has no figures.
    Any other error while drawing is raised before a file is written, and the figures already
    there are left alone.

    Parameters
    ----------
    report : Report
        As :func:`~predictor.evaluation._report.build_report` returns it.
    out : path
        The directory.
    """
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    figures_code = figures_module()
    figure_dir = directory / FIGURES_DIR
    figures: dict[str, str] | None = None
    if figures_code is not None:
        drawn = figures_code.draw_figures(report)  # all drawn before any is written
        figure_dir.mkdir(exist_ok=True)
        figures = {}
        for key, png in drawn.items():
            with atomic_bytes_output(figure_dir / EVERY_FIGURE[key]) as handle:
                handle.write(png)
            figures[key] = f"{FIGURES_DIR}/{EVERY_FIGURE[key]}"
        for key, name in EVERY_FIGURE.items():  # one an earlier report drew, this one has not
            if key not in drawn:
                (figure_dir / name).unlink(missing_ok=True)
    elif figure_dir.is_dir():
        for name in EVERY_FIGURE.values():
            (figure_dir / name).unlink(missing_ok=True)
    metrics_path = directory / METRICS_NAME
    with atomic_text_output(metrics_path) as handle:
        handle.write(metrics_text(report))
    report_path = directory / REPORT_NAME
    with atomic_text_output(report_path) as handle:
        handle.write(report_markdown(report, figures))
    return ReportFiles(report_path, metrics_path, figures)
