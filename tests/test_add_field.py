"""Adding a predictor is one entry in the schema's field table plus its effect in the simulator.

A copy of the package gets one new ``Field`` entry (interleukin-6, a number on the log scale),
by a text edit of its ``data_schemas/fields.py`` and nothing else. In a subprocess that imports
the copy, a simulated cohort gets an IL-6 column with a real effect on response (``responded``
redrawn from a logit that includes it: the simulator's part), the copy trains a model on it, and
the test checks that the field went everywhere a field goes: a model term, reasons and warnings
that name its label, the model card, the evaluation report and its metrics.

Slow (a training run, about a minute): ``python -m pytest -m slow tests/test_add_field.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

NEW_FIELD = """
    Field(
        "il6_pg_ml",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Plasma interleukin-6 (inflammation).",
        unit="pg/mL",
        low=0,
        high=1000,
        measured_by="IL-6 blood test",
        label="IL-6",
        wording=Wording("IL-6 {value} {unit}", "Low IL-6", "Mid-range IL-6", "High IL-6"),
        log_floor=0.1,
        subgroups=Subgroups("IL-6 band", edges=(2, 7)),
    ),"""
"""The whole edit: one entry appended to ``FIELDS``."""

TABLE_END = "\n)\n\nFIELDS_BY_NAME"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import numpy as np
    from scipy.special import expit, logit

    import predictor
    from predictor import predict
    from predictor._training import train
    from predictor.model import MODEL_FIELDS, load_model
    from predictor.simulation._synthetic import simulate_cohort

    out = Path(sys.argv[1])
    assert Path(predictor.__file__).is_relative_to(out.parent), predictor.__file__
    assert MODEL_FIELDS[-1] == "il6_pg_ml", MODEL_FIELDS

    # The simulator's part: IL-6 log-normal (median 2.5 pg/mL, log-SD 0.8), missing for 10%,
    # and lower response with higher IL-6 (odds ratio 0.37 per SD of log IL-6).
    cohort = simulate_cohort(4000, seed=5)
    rng = np.random.default_rng(5)
    z = rng.standard_normal(len(cohort))
    il6 = np.round(np.clip(2.5 * np.exp(0.8 * z), 0.1, 1000.0), 1)
    measured = rng.random(len(cohort)) >= 0.10
    probability = expit(logit(cohort["true_probability"].to_numpy()) - 1.0 * z * measured)
    cohort["il6_pg_ml"] = np.where(measured, il6, np.nan)
    cohort["true_probability"] = probability
    cohort["responded"] = (rng.random(len(cohort)) < probability).astype(float)

    train(cohort, seed=5, out=out, source="test_add_field", simulated=False, progress=print)
    model = load_model(out)
    term = model.features.terms[model.fields.index("il6_pg_ml")]
    high = predict({"il6_pg_ml": 25.0, "crp_mg_l": 1.7, "route": "iv_ketamine"}, model=out)
    without = predict({"crp_mg_l": 1.7, "route": "iv_ketamine"}, model=out)
    print(json.dumps({
        "columns": list(term.columns),
        "unused": term.unused,
        "knots_low": float(term.knots[0]),
        "high_reasons": list(high.reasons),
        "high_contribution": high.contributions["il6_pg_ml"],
        "without_warnings": list(without.warnings),
    }))
    """
)


def _copy_with_new_field(root: Path) -> None:
    """The package and schema, copied, with ``NEW_FIELD`` appended to the field table."""
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("predictor", "data_schemas"):
        shutil.copytree(ROOT / package, root / package, ignore=ignore)
    fields = root / "data_schemas" / "fields.py"
    text = fields.read_text(encoding="utf-8")
    assert text.count(TABLE_END) == 1, "the end of FIELDS moved: update TABLE_END"
    fields.write_text(text.replace(TABLE_END, NEW_FIELD + TABLE_END), encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("with_il6")
    _copy_with_new_field(root)
    env = {**os.environ, "PYTHONPATH": str(root), "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root / "model")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1]), root / "model"


@pytest.mark.slow
def test_added_field_is_a_model_term_on_its_log_scale(trained) -> None:
    result, _ = trained
    assert not result["unused"]
    assert result["columns"][:2] == ["il6_pg_ml:level", "il6_pg_ml:slope"]
    assert result["knots_low"] < 0.0  # log of the lowest value (about 0.2 pg/mL): log scale


@pytest.mark.slow
def test_added_field_reasons_and_warnings_use_its_label_and_wording(trained) -> None:
    result, _ = trained
    assert result["high_contribution"] < -0.5
    assert result["high_reasons"][0] == ("High IL-6 (IL-6 25 pg/mL) lowers the chance of response")
    assert any(
        w.startswith("IL-6 not measured (IL-6 blood test): ") for w in result["without_warnings"]
    )


@pytest.mark.slow
def test_added_field_is_in_the_model_card_report_and_metrics(trained) -> None:
    _, out = trained
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "| `il6_pg_ml` | pg/mL | cubic spline" in card
    assert "`il6_pg_ml`" in (out / "report.md").read_text(encoding="utf-8")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    (shape,) = [term for term in metrics["terms"] if term["field"] == "il6_pg_ml"]
    assert shape["log_scale"] is True
    assert shape["unit"] == "pg/mL"


@pytest.mark.slow
def test_added_field_log_scale_is_in_the_model_card(trained) -> None:
    _, out = trained
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    predictors = card.split("## Predictors")[1]  # the Data section has a missingness table
    (row,) = [line for line in predictors.splitlines() if line.startswith("| `il6_pg_ml` |")]
    assert "on log scale" in row


@pytest.mark.slow
def test_added_field_subgroups_are_in_the_report(trained) -> None:
    _, out = trained
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    groups = {(row["subgrouping"], row["group"]) for row in metrics["subgroups"]}
    assert {("IL-6 band", "under 2"), ("IL-6 band", "2-6"), ("IL-6 band", "7+")} <= groups
