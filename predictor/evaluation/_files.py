"""Writing the evaluation report: ``metrics.json``, the figures and ``report.md``.

The last step of the report's one-way flow: numbers (:mod:`~predictor.evaluation._report`) ->
Markdown (:mod:`~predictor.evaluation._markdown`) and figures
(:mod:`~predictor.evaluation._figures`, when matplotlib is installed) -> files.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from predictor._atomic import atomic_outputs
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


def write_report(
    report: Report,
    out: str | os.PathLike[str],
    *,
    beside: Sequence[tuple[str | os.PathLike[str], bytes]] = (),
) -> ReportFiles:
    """Write ``metrics.json``, the figures and ``report.md`` into ``out`` (created), all
    together: every file is drawn and written under a hidden name first and none is put in
    place until all are complete (:func:`~predictor._atomic.atomic_outputs`), so an error or
    an interrupt leaves the folder's earlier report as it was, not half old and half new.
    A symbolic link in the folder where one of these files goes is replaced, not followed, so
    no link can make the report overwrite another file (the input, say).

    A figure this report does not have (the instability figure without a bootstrap) is
    removed, once the report is in place, if an earlier report left it. Without matplotlib,
    no figure is drawn, figures left from an earlier report are removed, and ``report.md``
    says why it has no figures.

    Parameters
    ----------
    report : Report
        As :func:`~predictor.evaluation._report.build_report` returns it.
    out : path
        The directory.
    beside : sequence of (path, bytes)
        Other files that belong with the report (the rejects file the user named), written
        in the same step; their paths are followed through links as the user gave them.
    """
    directory = Path(out)
    figures_code = figures_module()
    figure_dir = directory / FIGURES_DIR
    files: dict[Path, bytes] = {}
    figures: dict[str, str] | None = None
    if figures_code is not None:
        drawn = figures_code.draw_figures(report)  # all drawn before any is written
        figures = {key: f"{FIGURES_DIR}/{EVERY_FIGURE[key]}" for key in drawn}
        files.update({figure_dir / EVERY_FIGURE[key]: png for key, png in drawn.items()})
        left = [name for key, name in EVERY_FIGURE.items() if key not in drawn]
    else:
        left = list(EVERY_FIGURE.values())
    metrics_path, report_path = directory / METRICS_NAME, directory / REPORT_NAME
    files[metrics_path] = metrics_text(report).encode("utf-8")
    files[report_path] = report_markdown(report, figures).encode("utf-8")
    directory.mkdir(parents=True, exist_ok=True)
    if figures is not None:
        figure_dir.mkdir(exist_ok=True)
    others = [(Path(path) if path != "-" else path, data) for path, data in beside]
    with atomic_outputs(
        [*files, *(path for path, _ in others)], binary=True, replace_links=list(files)
    ) as handles:
        for handle, data in zip(handles, [*files.values(), *(d for _, d in others)], strict=True):
            handle.write(data)
    if figure_dir.is_dir():
        for name in left:  # one an earlier report drew, this one has not
            (figure_dir / name).unlink(missing_ok=True)
    return ReportFiles(report_path, metrics_path, figures)
