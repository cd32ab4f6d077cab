"""The project as a whole: README sections generated from their sources, CI = README, lint.

``python tests/test_project.py --write`` regenerates the README's generated sections.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

import predictor.simulation._synthetic
from data_schemas import markdown_table
from predictor._explain import NOTE_SEPARATOR
from predictor.evaluation._card import performance_table
from predictor.evaluation._markdown import (
    comparison_parts,
    core_metrics_table,
    decision_summary,
    threshold_markdown,
)
from predictor.evaluation._report import METRICS_NAME, Report
from predictor.io._batch import score_csv
from predictor.model._artifact import read_manifest
from predictor.simulation._synthetic import DEFAULT_SEED, simulate_cohort
from predictor.simulation._targets import targets_markdown

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _literature_targets() -> str:
    cohort = simulate_cohort(50_000, seed=DEFAULT_SEED)
    return targets_markdown(cohort, label=f" (n = 50,000, seed {DEFAULT_SEED})")


def _data_generating_process() -> str:
    doc = predictor.simulation._synthetic.__doc__
    return doc[doc.index("Data-generating process") :].strip() + "\n"


def _model_quality() -> str:
    metrics = read_manifest()["metrics"]
    coverage = ", ".join(
        f"{m['additive model']['interval_coverage']:.1%} on the {name} data"
        for name, m in metrics.items()
        if "interval_coverage" in m["additive model"]
    )
    return (
        performance_table(metrics) + f"\n\nThe shipped model's 90% interval coverage: {coverage}.\n"
    )


def _evaluation_report() -> str:
    report = Report.from_json(json.loads((ROOT / "models" / METRICS_NAME).read_text()))
    return (
        f"On {report.data.source} ({report.data.n:,} patients):\n\n"
        f"{core_metrics_table(report.metrics)}\n\n{decision_summary(report.decision_curve)}\n\n"
        f"{threshold_markdown(report)}\n"
        + "".join(f"\n{intro}\n\n{table}\n" for _, intro, table in comparison_parts(report))
    )


def _markdown(frame: pd.DataFrame) -> str:
    rows = [
        "| " + " | ".join(frame.columns) + " |",
        "|" + "---|" * frame.shape[1],
        *("| " + " | ".join(row) + " |" for row in frame.astype(str).to_numpy().tolist()),
    ]
    return "\n".join(rows) + "\n"


def _scoring_example() -> str:
    """The README's scoring example: its output and rejects files, shortened into tables."""
    with tempfile.TemporaryDirectory() as folder:
        out, rejects = Path(folder) / "scored.csv", Path(folder) / "rejects.csv"
        score_csv(ROOT / "examples" / "clinic_export_eu.csv", out, rejects=rejects)
        scored = pd.read_csv(out, dtype=str, keep_default_na=False)
        bad = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    shown = pd.DataFrame(
        {
            "patient_id": scored["patient_id"],
            "response_probability": scored["response_probability"]
            .astype(float)
            .map("{:.3f}".format),
            "probability_low": scored["probability_low"].astype(float).map("{:.3f}".format),
            "probability_high": scored["probability_high"].astype(float).map("{:.3f}".format),
            "predicted_label": scored["predicted_label"],
            "top_reasons (the first of three)": scored["top_reasons"]
            .str.split(NOTE_SEPARATOR)
            .str[0],
            "Site": scored["Site"],
        }
    )
    return (
        "`scored.csv` (probabilities rounded here; the file also has every reason and the "
        "warnings):\n\n"
        + _markdown(shown)
        + "\n`rejects.csv`:\n\n"
        + _markdown(bad.drop(columns=["field"]))
    )


SECTIONS = {
    "scoring example": _scoring_example,
    "schema table": markdown_table,
    "model quality": _model_quality,
    "evaluation report": _evaluation_report,
    "data-generating process": _data_generating_process,
    "literature targets": _literature_targets,
}


def _pattern(name: str) -> re.Pattern[str]:
    begin, end = (re.escape(f"<!-- {edge} GENERATED: {name} -->") for edge in ("BEGIN", "END"))
    return re.compile(rf"({begin}\n)(.*?)({end})", re.DOTALL)


def _section(text: str, name: str) -> str:
    match = _pattern(name).search(text)
    assert match, f"README has no generated section {name!r}"
    return match.group(2)


@pytest.mark.parametrize("name", list(SECTIONS), ids=list(SECTIONS))
def test_readme_generated_section_matches_its_source(name: str) -> None:
    assert _section(README.read_text(), name) == SECTIONS[name](), (
        f"README section {name!r} is stale: run `python tests/test_project.py --write`"
    )


def _quick_start_commands() -> list[str]:
    text = README.read_text()
    start = text.index("## Quick start")
    quick_start = text[start : text.index("\n## ", start)]
    return re.findall(r"```bash\n(.*?)\n```", quick_start, re.DOTALL)


def test_readme_quick_start_is_two_commands_and_ci_runs_both() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci


def test_readme_doctest_examples_run() -> None:
    import doctest

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    examples = [block for block in blocks if ">>> " in block]
    assert examples, "the README has no doctest example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for k, example in enumerate(examples):
        test = doctest.DocTestParser().get_doctest(example, {}, f"README[{k}]", str(README), 0)
        runner.run(test)
    assert runner.failures == 0
    assert runner.tries >= 3


@pytest.mark.parametrize(
    "args", [["check"], ["format", "--check"]], ids=["ruff-check", "ruff-format"]
)
def test_code_is_ruff_clean(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args, str(ROOT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # a cold cache (a fresh checkout) costs 11 s; `python -m mypy` runs it alone
def test_code_is_mypy_clean() -> None:
    # the files and settings are pyproject.toml's [tool.mypy]; the cache is ROOT/.mypy_cache
    # (a warm run takes well under a second, a cold one about 11 s)
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _write() -> None:
    text = README.read_text()
    for name, source in SECTIONS.items():
        text = _pattern(name).sub(lambda m, s=source: m.group(1) + s() + m.group(3), text)
    README.write_text(text)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    _write()
