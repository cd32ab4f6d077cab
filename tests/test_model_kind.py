"""A second kind of model touches the model layer only: a class with the ``Model`` protocol's
members and an entry in the model files' registry (``MODEL_KINDS``).

This test adds one without editing any module of the package: a recalibrated additive model
(each field's contribution scaled by a slope, the baseline moved: logistic recalibration, which
stays exactly additive), and sends it through everything that uses a model: ``predict`` for a
record and a table, batch scoring of a file, model files (save, load, refuse), the evaluation
report and the model card.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from predictor import Model, ModelFileError, load_model, predict, score_csv
from predictor.evaluation import build_report, evaluate_model, model_card, write_report
from predictor.model import AdditiveModel, FeatureMap, ModelSummary, Scores, save_model
from predictor.model import _artifact as artifact
from predictor.simulation import simulate_cohort

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, eq=False)
class Recalibrated:
    """``logit = shift + slope * (base's logit)``, term by term: every contribution is the
    base's times ``slope`` and the baseline is ``shift + slope * base.baseline``."""

    kind: ClassVar[str] = "recalibrated (test)"
    base: AdditiveModel
    slope: float
    shift: float

    @property
    def features(self) -> FeatureMap:
        return self.base.features

    @property
    def threshold(self) -> float:
        return self.base.threshold

    @property
    def fields(self) -> tuple[str, ...]:
        return self.base.fields

    @property
    def baseline(self) -> float:
        return self.shift + self.slope * self.base.baseline

    def score(self, design: np.ndarray) -> Scores:
        base = self.base.score(design)
        contributions = self.slope * base.contributions
        lp = self.baseline + contributions.sum(axis=1)
        half_width = abs(self.slope) * (logit(base.high) - base.logit)
        return Scores(lp, expit(lp), expit(lp - half_width), expit(lp + half_width), contributions)

    def labels(self, probability: np.ndarray) -> np.ndarray:
        return self.base.labels(probability)

    def term_contribution(self, j: int, block: np.ndarray) -> np.ndarray:
        return self.slope * self.base.term_contribution(j, block)

    def summary(self) -> ModelSummary:
        base = self.base.summary()
        return ModelSummary(
            "recalibrated model",
            f"{base.description}, recalibrated",
            base.coefficients + 2,
            {**base.settings, "slope": self.slope, "shift": self.shift},
            f"{base.details}\nThen recalibrated: slope {self.slope:g}, shift {self.shift:+g}.",
        )

    def refit(self, clean: Any, responded: np.ndarray, *, seed: int) -> Recalibrated:
        return Recalibrated(self.base.refit(clean, responded, seed=seed), self.slope, self.shift)

    def to_document(self) -> dict[str, Any]:
        base = self.base.to_document()
        return {
            "kind": self.kind,
            "fields": base["fields"],
            "slope": self.slope,
            "shift": self.shift,
            "base": base,
        }

    @classmethod
    def from_document(
        cls, document: Mapping[str, Any], *, source: str = "model document"
    ) -> Recalibrated:
        slope, shift = float(document["slope"]), float(document["shift"])
        if not (np.isfinite(slope) and np.isfinite(shift)):
            raise ModelFileError(f"{source}: slope and shift must be finite numbers")
        return cls(AdditiveModel.from_document(document["base"], source=source), slope, shift)


SLOPE, SHIFT = 0.8, -0.1


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new kind in the registry, as one line in ``_artifact.py`` would put it."""
    kinds = {**artifact.MODEL_KINDS, Recalibrated.kind: Recalibrated}
    monkeypatch.setattr(artifact, "MODEL_KINDS", MappingProxyType(kinds))


@pytest.fixture(scope="module")
def recalibrated() -> Recalibrated:
    return Recalibrated(load_model(), SLOPE, SHIFT)


def test_model_kind_is_a_model(recalibrated: Recalibrated) -> None:
    assert isinstance(recalibrated, Model)


def test_model_kind_predicts_exactly_additive_recalibrated_scores(
    recalibrated: Recalibrated,
) -> None:
    record = {"crp_mg_l": 0.9, "bdnf_ng_ml": 27.0, "route": "iv", "substance_use_disorder": "none"}
    base, new = predict(record), predict(record, model=recalibrated)
    base_logit = np.log(base.probability / (1 - base.probability))
    new_logit = np.log(new.probability / (1 - new.probability))
    assert new_logit == pytest.approx(SHIFT + SLOPE * base_logit, abs=1e-12)
    assert new.baseline + sum(new.contributions.values()) == pytest.approx(new_logit, abs=1e-12)
    for field, value in base.contributions.items():
        assert new.contributions[field] == pytest.approx(SLOPE * value, abs=1e-12)
    assert new.reasons and new.warnings == base.warnings
    assert new.interval[0] < new.probability < new.interval[1]


def test_model_kind_scores_a_file_and_a_table_alike(
    recalibrated: Recalibrated, tmp_path: Path
) -> None:
    table = pd.read_csv(ROOT / "examples" / "patients.csv", dtype=str, keep_default_na=False)
    expected = predict(table, model=recalibrated, invalid="collect").scored
    out = tmp_path / "scored.csv"
    score_csv(ROOT / "examples" / "patients.csv", out, model=recalibrated)
    written = pd.read_csv(out)
    assert list(written["response_probability"]) == pytest.approx(
        list(expected["response_probability"]), abs=1e-12
    )


def test_model_kind_saves_and_loads_through_the_registry(
    recalibrated: Recalibrated, registered: None, tmp_path: Path
) -> None:
    save_model(recalibrated, tmp_path, {"note": "test"})
    loaded = load_model(tmp_path)
    assert isinstance(loaded, Recalibrated)
    cohort = simulate_cohort(300, seed=4)
    design = recalibrated.features.design(cohort)
    np.testing.assert_array_equal(loaded.score(design).logit, recalibrated.score(design).logit)


def test_model_kind_malformed_file_is_a_model_file_error(
    recalibrated: Recalibrated, registered: None, tmp_path: Path
) -> None:
    """A kind's own errors on a malformed document (a key missing) are a ModelFileError."""
    save_model(recalibrated, tmp_path, {"note": "test"})
    document = json.loads((tmp_path / "model.json").read_text())
    del document["slope"]
    text = json.dumps(document)
    (tmp_path / "model.json").write_text(text)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["artifact_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="'slope' is missing"):
        load_model(tmp_path)


def test_model_kind_unknown_to_the_registry_is_refused(
    recalibrated: Recalibrated, tmp_path: Path
) -> None:
    save_model(recalibrated, tmp_path, {"note": "test"})
    with pytest.raises(ModelFileError, match="kind 'recalibrated \\(test\\)' is not one of"):
        load_model(tmp_path)


@pytest.mark.slow
def test_model_kind_gets_a_report_and_a_card(recalibrated: Recalibrated, tmp_path: Path) -> None:
    held_out = simulate_cohort(1500, seed=9)
    metrics = evaluate_model(recalibrated, held_out)
    manifest = {
        "training_data": {
            "source": "test",
            "sha256": "0" * 64,
            "seed": 0,
            "n": 1,
            "n_fit": 1,
            "n_held_out": 1500,
            "response_rate": 0.5,
        },
        "evaluation_cohort": None,
        "metrics": {"held-out": {"recalibrated model": metrics.to_dict()}},
        "package_version": "0",
        "schema_version": "1",
        "python": "3",
        "libraries": {},
    }
    report = build_report(recalibrated, held_out, manifest=manifest, source="a cohort")
    base_report = build_report(load_model(), held_out, manifest=manifest, source="a cohort")
    assert report.metrics.auc == pytest.approx(base_report.metrics.auc, abs=1e-12)  # monotone
    for shape, base_shape in zip(report.terms, base_report.terms, strict=True):
        if shape.contribution is not None:
            assert shape.contribution == pytest.approx(
                [SLOPE * c for c in base_shape.contribution], abs=2e-5
            )
    written = write_report(report, tmp_path)
    card = model_card(recalibrated, manifest, report=report, figures=written.figures)
    assert "Then recalibrated: slope 0.8, shift -0.1." in card
    assert "recalibrated model" in card
