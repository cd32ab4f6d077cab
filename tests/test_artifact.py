"""Model files: the round trip, the load cache, and refusing every file that fails its checks --
without running anything from the file first (skops' tampered-model test)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_schemas import FIELDS_BY_NAME, SCHEMA_VERSION, Field, Kind, Role, Wording
from predictor._scoring import predict
from predictor.model import _artifact as artifact
from predictor.model._additive import AdditiveModel, fit_additive_model
from predictor.model._artifact import (
    ARTIFACT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MAX_ARTIFACT_BYTES,
    MAX_MANIFEST_BYTES,
    SHIPPED_MODEL_DIR,
    ModelFileError,
    check_fields,
    load_model,
    model_to_json,
    read_manifest,
    save_model,
    sha256_hex,
)
from predictor.model._document import FieldDefinition
from predictor.model._features import MODEL_FIELDS
from predictor.simulation._synthetic import simulate_cohort

RECORD = {"crp_mg_l": 0.9, "route": "iv_ketamine", "substance_use_disorder": "none"}


@pytest.fixture(scope="module")
def model() -> AdditiveModel:
    cohort = simulate_cohort(3000, seed=5)
    fitted, _ = fit_additive_model(cohort, cohort["responded"].to_numpy(), smoothing=10.0)
    return fitted


@pytest.fixture
def saved(model: AdditiveModel, tmp_path: Path) -> Path:
    save_model(model, tmp_path / "model", {"note": "test"})
    return tmp_path / "model"


def _write(directory: Path, data: bytes, *, name: str = ARTIFACT_NAME, forge: bool = True) -> None:
    """Write ``data`` as file ``name``; with ``forge``, make the manifest vouch for the model."""
    (directory / name).write_bytes(data)
    if forge:
        manifest = json.loads((directory / MANIFEST_NAME).read_bytes())
        manifest["artifact_sha256"] = sha256_hex((directory / ARTIFACT_NAME).read_bytes())
        (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


def _edit(change: Callable[[dict], object]) -> Callable[[str], str]:
    """A text edit that applies ``change`` to the parsed model document."""

    def edit(text: str) -> str:
        document = json.loads(text)
        change(document)
        return json.dumps(document)

    return edit


def _flip_digit(data: bytes) -> bytes:
    """``data`` with the first digit of the first coefficient changed (same length)."""
    i = re.search(rb'"coef": \[\s*-?\d', data).end() - 1
    return data[:i] + (b"7" if data[i : i + 1] != b"7" else b"3") + data[i + 1 :]


@dataclasses.dataclass
class _Payload:
    """Unpickling this creates ``marker``: the proof that code from a file ran."""

    marker: Path

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


def _joblib_dumps(obj: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


PICKLERS = {  # id: (dump to bytes, load from bytes)
    "pickle-protocol-0": (lambda obj: pickle.dumps(obj, protocol=0), pickle.loads),
    "pickle-highest": (lambda obj: pickle.dumps(obj, protocol=5), pickle.loads),
    "joblib": (_joblib_dumps, lambda data: joblib.load(io.BytesIO(data))),
}


def test_save_model_round_trip_gives_identical_predictions(
    model: AdditiveModel, saved: Path
) -> None:
    assert predict(RECORD, model=saved).to_dict() == predict(RECORD, model=model).to_dict()
    table = simulate_cohort(20, seed=9).drop(columns=["responded", "true_probability"])
    pd.testing.assert_frame_equal(
        predict(table, model=saved, explain=True),
        predict(table, model=model, explain=True),
        check_exact=True,
    )


@pytest.mark.parametrize("distinct", [2, 3])
def test_a_number_with_a_few_distinct_values_trains_into_a_model_that_loads(
    distinct: int, tmp_path: Path
) -> None:
    # Two or three distinct values give the term fewer knots than the loader once required:
    # train wrote a model that could not be loaded.
    cohort = simulate_cohort(2000, seed=5)
    cohort["bmi_kg_m2"] = np.random.default_rng(0).choice([20.0, 25.0, 30.0][:distinct], 2000)
    fitted, _ = fit_additive_model(cohort, cohort["responded"].to_numpy())  # as train fits
    term = fitted.features.terms[fitted.fields.index("bmi_kg_m2")]
    assert not term.unused and term.knots.size == 2 * 3 + distinct
    save_model(fitted, tmp_path / "model", {})
    table = cohort.head(30).drop(columns=["responded", "true_probability"])
    table.loc[table.index[:3], "bmi_kg_m2"] = [np.nan, 17.0, 45.0]  # missing, outside the range
    pd.testing.assert_frame_equal(
        predict(table, model=tmp_path / "model", explain=True),
        predict(table, model=fitted, explain=True),
        check_exact=True,
    )


def test_save_model_round_trip_gives_the_saved_text_byte_for_byte(saved: Path) -> None:
    text = model_to_json(load_model(saved))
    assert text.encode() == (saved / ARTIFACT_NAME).read_bytes()


def test_save_model_same_model_twice_gives_identical_bytes(
    model: AdditiveModel, saved: Path, tmp_path: Path
) -> None:
    save_model(model, tmp_path / "again", {"note": "test"})
    for name in (ARTIFACT_NAME, MANIFEST_NAME):
        assert (tmp_path / "again" / name).read_bytes() == (saved / name).read_bytes()


def test_load_model_accepts_the_directory_or_its_model_json(saved: Path) -> None:
    loaded = load_model(saved)
    assert load_model(str(saved / ARTIFACT_NAME)) is loaded
    assert load_model(saved / ARTIFACT_NAME) is loaded


def test_load_model_shipped_model_loads_and_is_cached() -> None:
    shipped = load_model()
    assert shipped.fields == MODEL_FIELDS
    assert load_model() is shipped
    assert load_model(SHIPPED_MODEL_DIR) is shipped


def test_load_model_rereads_a_changed_file(model: AdditiveModel, saved: Path) -> None:
    first = load_model(saved)
    save_model(dataclasses.replace(model, threshold=0.6), saved, {"note": "test"})
    second = load_model(saved)
    assert second is not first
    assert (first.threshold, second.threshold) == (0.5, 0.6)
    artifact = saved / ARTIFACT_NAME
    artifact.write_bytes(_flip_digit(artifact.read_bytes()))
    with pytest.raises(ModelFileError, match="does not match its manifest"):
        load_model(saved)


def test_load_model_cache_sees_an_edit_that_keeps_size_and_mtime(
    model: AdditiveModel, saved: Path
) -> None:
    load_model(saved)
    artifact = saved / ARTIFACT_NAME
    before = artifact.stat()
    artifact.write_bytes(_flip_digit(artifact.read_bytes()))
    os.utime(artifact, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert artifact.stat().st_size == before.st_size
    with pytest.raises(ModelFileError, match="does not match its manifest"):
        load_model(saved)


@pytest.mark.parametrize(
    "corrupt",
    [_flip_digit, lambda data: data[: len(data) // 2], lambda data: b"", lambda data: data + b" "],
    ids=["flipped-digit", "truncated", "empty", "trailing-space"],
)
def test_load_model_refuses_a_file_that_does_not_match_its_manifest(
    saved: Path, corrupt: Callable[[bytes], bytes]
) -> None:
    _write(saved, corrupt((saved / ARTIFACT_NAME).read_bytes()), forge=False)
    with pytest.raises(ModelFileError, match="does not match its manifest"):
        load_model(saved)


@pytest.mark.parametrize("pickler", PICKLERS, ids=PICKLERS)
def test_payload_runs_when_unpickled(pickler: str, tmp_path: Path) -> None:
    """The payload is live: the marker's absence in the tests below means nothing ran."""
    dump, load = PICKLERS[pickler]
    load(dump(_Payload(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


PICKLE_PLACES = {  # id: (file the pickle replaces, forge the manifest's sha256, message)
    "model-original-manifest": (ARTIFACT_NAME, False, "does not match its manifest"),
    "model-forged-manifest": (ARTIFACT_NAME, True, "is not a model file: it is not (text|JSON)"),
    "manifest": (MANIFEST_NAME, False, "is not a model manifest: it is not JSON"),
}


@pytest.mark.parametrize(("name", "forge", "message"), PICKLE_PLACES.values(), ids=PICKLE_PLACES)
@pytest.mark.parametrize("pickler", PICKLERS, ids=PICKLERS)
def test_load_model_refuses_a_pickle_without_running_it(
    saved: Path, tmp_path: Path, pickler: str, name: str, forge: bool, message: str
) -> None:
    marker = tmp_path / "ran"
    _write(saved, PICKLERS[pickler][0](_Payload(marker)), name=name, forge=forge)
    with pytest.raises(ModelFileError, match=message):
        load_model(saved)
    assert not marker.exists()


@pytest.mark.parametrize(
    "document",
    [{"hello": 1}, [1, 2], "a model", {"format": "sklearn pipeline", "coef": []}],
    ids=["object", "list", "string", "other-format"],
)
def test_load_model_refuses_a_foreign_json_file(saved: Path, document: object) -> None:
    _write(saved, json.dumps(document).encode())
    with pytest.raises(ModelFileError, match="is not a ketamine-predictor model file"):
        load_model(saved)


VERSIONS = {  # id: (key, value found in the file, value this package reads)
    "newer-format": ("format_version", FORMAT_VERSION + 1, FORMAT_VERSION),
    "no-format-version": ("format_version", None, FORMAT_VERSION),
    "older-schema": ("schema_version", "0", SCHEMA_VERSION),
    "schema-as-number": ("schema_version", int(SCHEMA_VERSION), SCHEMA_VERSION),
}


@pytest.mark.parametrize(("key", "found", "expected"), VERSIONS.values(), ids=VERSIONS)
def test_load_model_refuses_another_version_naming_both(
    saved: Path, key: str, found: object, expected: object
) -> None:
    text = _edit(lambda d: d.update({key: found}))((saved / ARTIFACT_NAME).read_text())
    _write(saved, text.encode())
    words = key.replace("_", " ")
    with pytest.raises(ModelFileError, match=rf"{words} {found!r}; .* reads {expected!r}"):
        load_model(saved)


@pytest.mark.parametrize("found", ["1.0.0", "10.2", None], ids=["major-1", "major-10", "none"])
def test_load_model_refuses_another_package_major_version_naming_both(
    saved: Path, found: object
) -> None:
    manifest = json.loads((saved / MANIFEST_NAME).read_text())
    manifest["package_version"] = found
    (saved / MANIFEST_NAME).write_text(json.dumps(manifest))
    ours = importlib.metadata.version("ketamine-predictor")
    with pytest.raises(ModelFileError, match=rf"ketamine-predictor {found!r}; this is version"):
        load_model(saved)
    assert ours.split(".")[0] != str(found).split(".")[0]


SHIPPED_DISTRIBUTION = read_manifest()["training_distribution"]
MANIFEST_EDITS = {
    "training-data-a-text": (lambda m: m.update(training_data="x"), "training_data is not"),
    "source-two-lines": (
        lambda m: m.update(training_data={"source": "a.csv\n# Injected heading", "n": 3}),
        "training_data.source is not one line",
    ),
    "n-negative": (lambda m: m.update(training_data={"n": -1}), "training_data.n is not"),
    "counts-one-short": (
        lambda m: m.update(
            training_distribution={
                "age_years": {**SHIPPED_DISTRIBUTION["age_years"], "counts": [1, 2]}
            }
        ),
        "training_distribution.age_years has edges",
    ),
    "levels-not-texts": (
        lambda m: m.update(training_distribution={"sex": {"levels": [1, 2], "counts": [3, 4]}}),
        "training_distribution.sex has neither",
    ),
}


@pytest.mark.parametrize(("edit", "message"), MANIFEST_EDITS.values(), ids=MANIFEST_EDITS)
def test_an_edited_manifest_is_refused_naming_the_key(
    saved: Path, edit: Callable[[dict], object], message: str
) -> None:
    # None of the manifest is under a hash; the report and card read these parts, and an
    # edited one failed inside them (exit 3) or pasted a heading into report.md.
    manifest = json.loads((saved / MANIFEST_NAME).read_text())
    edit(manifest)
    (saved / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=re.escape(message)):
        read_manifest(saved)
    with pytest.raises(ModelFileError, match=re.escape(message)):
        load_model(saved)


def test_a_manifest_whose_field_had_no_shape_or_a_narrow_one_is_read(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST_NAME).read_text())
    shapes = {
        "bdnf_ng_ml": {"n_missing": 400},  # no value at all
        "crp_mg_l": {"n_missing": 0, "edges": [0.5, 0.5, 0.50001], "counts": [3, 4]},  # rounded
    }
    manifest["training_distribution"] = shapes
    (saved / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert read_manifest(saved)["training_distribution"] == shapes


def test_load_model_accepts_another_minor_version(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST_NAME).read_text())
    major = importlib.metadata.version("ketamine-predictor").split(".")[0]
    manifest["package_version"] = f"{major}.99.7"
    (saved / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert load_model(saved).fields


def _first_spline(document: dict) -> dict:
    return next(term for term in document["terms"] if term["knots"])


def _term(document: dict, field: str) -> dict:
    return next(term for term in document["terms"] if term["field"] == field)


def _field(document: dict, name: str) -> dict:
    return next(entry for entry in document["fields"] if entry["name"] == name)


def _rename_first_field(document: dict) -> None:
    document["fields"][0]["name"] = document["terms"][0]["field"] = "shoe_size"


def _swap_route_levels(document: dict) -> None:
    _term(document, "route")["levels"].reverse()


def _spline_to_category(document: dict) -> None:
    _first_spline(document).update(knots=[], transform=[], levels=["a"] * 8)


def _set_knot(document: dict, position: int, to: int) -> None:
    """The first spline's knot at ``position`` made equal to its knot at ``to``."""
    knots = _first_spline(document)["knots"]
    knots[position] = knots[to]


def _asymmetric(document: dict) -> None:
    document["covariance"][0][1] += 1e-3


def _not_positive_definite(document: dict) -> None:
    document["covariance"][1][1] = -1.0


MISSHAPEN = {  # id: (edit of the model text, detail in the message)
    "coef-short": (_edit(lambda d: d["coef"].pop()), "coef has shape"),
    "covariance-not-square": (_edit(lambda d: d["covariance"].pop()), "covariance has shape"),
    "covariance-ragged": (
        _edit(lambda d: d["covariance"][0].pop()),
        "covariance is not an array of numbers",
    ),
    "coef-text": (_edit(lambda d: d["coef"].__setitem__(0, "high")), "coef is not numbers"),
    "intercept-1e999": (
        lambda text: re.sub(r'"intercept": [^,]+', '"intercept": 1e999', text),
        "intercept has a value that is not a finite number",
    ),
    "term-mean-nan": (_edit(lambda d: d["term_means"].__setitem__(0, float("nan"))), "term_m"),
    "threshold-null": (_edit(lambda d: d.update(threshold=None)), "threshold is not numbers"),
    "transform-short": (_edit(lambda d: _first_spline(d)["transform"].pop()), "transform has"),
    "knots-missing": (_edit(lambda d: _first_spline(d).pop("knots")), "'knots' is missing"),
    "terms-missing": (_edit(lambda d: d.pop("terms")), "'terms' is missing"),
    "terms-reordered": (_edit(lambda d: d["terms"].reverse()), "its terms are"),
    "term-not-object": (_edit(lambda d: d["terms"].__setitem__(0, 1)), "not subscriptable"),
    "levels-reordered": (_edit(_swap_route_levels), "route: its levels are"),
    "levels-on-a-number": (_edit(_spline_to_category), "age_years: its levels are"),
    "learned-missing-text": (
        _edit(lambda d: _first_spline(d).update(learned_missing="yes")),
        "'learned_missing' true or false",
    ),
    "range-reversed": (
        _edit(lambda d: _first_spline(d)["value_range"].reverse()),
        "low end above its high end",
    ),
    "unknown-field": (_edit(_rename_first_field), "'shoe_size' is not a predictor field"),
    "term-not-its-field": (_edit(lambda d: d["terms"][0].update(field="sex")), "its terms are"),
    "kind-unknown": (_edit(lambda d: d.update(kind="forest")), "its kind 'forest' is not one"),
    "field-unit-changed": (
        _edit(lambda d: _field(d, "crp_mg_l").update(unit="mg/dL")),
        "crp_mg_l has unit 'mg/dL', the schema's is 'mg/L'",
    ),
    "field-scale-changed": (
        _edit(lambda d: _field(d, "crp_mg_l").update(log_floor=None)),
        r"crp_mg_l has log_floor \(scale\) None, the schema's is 0.05",
    ),
    "field-scale-not-a-number": (
        _edit(lambda d: _field(d, "crp_mg_l").update(log_floor="log")),
        "log_floor must be a positive number",
    ),
    "category-without-levels": (
        _edit(lambda d: _field(d, "sex").update(levels=[])),
        "levels are given for a category only",
    ),
    "field-kind-changed": (
        _edit(lambda d: _field(d, "age_years").update(kind="integer")),
        "age_years has kind 'integer'",
    ),
    "field-level-foreign": (
        _edit(lambda d: _field(d, "route").update(levels=["iv_ketamine", "oral"])),
        r"route's levels \['oral'\] are not the schema's",
    ),
    "knots-decreasing": (
        _edit(lambda d: _first_spline(d)["knots"].reverse()),
        "knots must be a clamped cubic knot vector",
    ),
    "knot-repeated-at-the-end": (  # scored differently by the sparse and the dense basis
        _edit(lambda d: _set_knot(d, -5, -1)),
        "knots must be a clamped cubic knot vector",
    ),
    "knot-repeated-inside": (
        _edit(lambda d: _set_knot(d, 5, 4)),
        "knots must be a clamped cubic knot vector",
    ),
    "knots-not-clamped": (
        _edit(lambda d: _first_spline(d)["knots"].__setitem__(0, -1e3)),
        "knots must be a clamped cubic knot vector",
    ),
    "range-beyond-knots": (
        _edit(lambda d: _first_spline(d)["value_range"].__setitem__(1, 1e5)),
        "is not an interval inside its knots",
    ),
    "tertiles-outside-range": (
        _edit(lambda d: _first_spline(d)["tertiles"].__setitem__(1, 1e5)),
        "tertiles are not inside its value range",
    ),
    "columns-renamed": (
        _edit(lambda d: _term(d, "route")["columns"].reverse()),
        "route: its columns are",
    ),
    "coef-huge": (_edit(lambda d: d["coef"].__setitem__(0, 1e300)), "coef has a value larger"),
    "covariance-asymmetric": (_edit(_asymmetric), "covariance is not symmetric"),
    "covariance-not-positive": (_edit(_not_positive_definite), "not positive definite"),
    "threshold-1": (_edit(lambda d: d.update(threshold=1.0)), "threshold 1.0 is not between"),
    "penalty-0": (_edit(lambda d: d.update(penalty_c=0.0)), "penalty C 0.0 is not positive"),
    "seen-level-foreign": (
        _edit(lambda d: _term(d, "route").update(seen_levels=["oral"])),
        "route: the levels seen in training are not its levels",
    ),
    "seen-level-on-a-number": (
        _edit(lambda d: _first_spline(d).update(seen_levels=["a"])),
        "age_years: the levels seen in training are not its levels",
    ),
    "seen-levels-text": (
        _edit(lambda d: _term(d, "route").update(seen_levels="iv_ketamine")),
        "'seen_levels' must be a list of levels",
    ),
    "huge-integer": (
        lambda text: re.sub(r'"intercept": [^,]+', '"intercept": ' + "9" * 400, text),
        "intercept is not numbers",  # an integer too large for any float
    ),
    "coef-numeric-text": (_edit(lambda d: d["coef"].__setitem__(0, "1.5")), "coef is not numbers"),
}


@pytest.mark.parametrize(("edit", "detail"), MISSHAPEN.values(), ids=MISSHAPEN)
def test_load_model_refuses_misshapen_or_non_finite_numbers(
    saved: Path, edit: Callable[[str], str], detail: str
) -> None:
    text = edit((saved / ARTIFACT_NAME).read_text())
    _write(saved, text.encode())
    with pytest.raises(ModelFileError, match=rf"is not a valid model: .*{detail}"):
        load_model(saved)


@pytest.mark.parametrize(
    ("name", "message"),
    [(ARTIFACT_NAME, "no model file at"), (MANIFEST_NAME, "no model manifest at")],
    ids=["model", "manifest"],
)
def test_load_model_refuses_a_missing_file(saved: Path, name: str, message: str) -> None:
    (saved / name).unlink()
    with pytest.raises(ModelFileError, match=message):
        load_model(saved)


@pytest.mark.parametrize("where", ["nowhere", "nowhere/model.json"], ids=["dir", "file"])
def test_load_model_mistyped_path_says_there_is_no_model(tmp_path: Path, where: str) -> None:
    with pytest.raises(ModelFileError, match=r"^no model at .*nowhere: give a model directory"):
        load_model(tmp_path / where)


def test_load_model_refuses_deeply_nested_json_as_not_a_model(saved: Path) -> None:
    _write(saved, b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ModelFileError, match="nested too deeply"):
        load_model(saved)


BAD_MANIFESTS = {  # id: (manifest bytes, message)
    "empty": (b"", "is not a model manifest: it is not JSON"),
    "binary": (b"\x80\x05not json", "is not a model manifest: it is not JSON"),
    "foreign": (b'{"hello": 1}', "is not a ketamine-predictor model manifest"),
    "list": (b"[]", "is not a ketamine-predictor model manifest"),
    "no-sha256": (b'{"format": "ketamine-predictor additive model"}', "does not match its"),
}


@pytest.mark.parametrize(("manifest", "message"), BAD_MANIFESTS.values(), ids=BAD_MANIFESTS)
def test_load_model_refuses_a_bad_manifest(saved: Path, manifest: bytes, message: str) -> None:
    (saved / MANIFEST_NAME).write_bytes(manifest)
    with pytest.raises(ModelFileError, match=message):
        load_model(saved)


@pytest.mark.parametrize("patients", [RECORD, pd.DataFrame([RECORD])], ids=["record", "table"])
def test_predict_with_a_bad_model_raises_model_file_error(tmp_path: Path, patients: object) -> None:
    shutil.copytree(SHIPPED_MODEL_DIR, tmp_path / "shipped")
    artifact = tmp_path / "shipped" / ARTIFACT_NAME
    artifact.write_bytes(artifact.read_bytes()[:100])
    for bad in (tmp_path / "shipped", tmp_path / "nowhere"):
        with pytest.raises(ModelFileError):
            predict(patients, model=bad)


def test_load_model_without_seen_levels_treats_every_level_as_seen(
    model: AdditiveModel, saved: Path
) -> None:
    """A model file written before the levels seen in training were recorded still loads."""
    text = (saved / ARTIFACT_NAME).read_text()
    assert '"seen_levels"' in text
    _write(saved, _edit(lambda d: [t.pop("seen_levels") for t in d["terms"]])(text).encode())
    loaded = load_model(saved)
    for old, new in zip(loaded.features.terms, model.features.terms, strict=True):
        assert old.seen_levels == old.levels == new.levels
        assert old.unseen_levels == ()
    assert predict(RECORD, model=loaded).to_dict() == predict(RECORD, model=model).to_dict()


def test_save_model_round_trip_keeps_the_levels_seen_in_training(
    model: AdditiveModel, tmp_path: Path
) -> None:
    route = model.fields.index("route")
    terms = list(model.features.terms)
    terms[route] = dataclasses.replace(terms[route], seen_levels=("iv_ketamine",))
    narrowed = dataclasses.replace(
        model, features=dataclasses.replace(model.features, terms=tuple(terms))
    )
    save_model(narrowed, tmp_path / "m", {"note": "test"})
    loaded = load_model(tmp_path / "m")
    assert loaded.features.terms[route].seen_levels == ("iv_ketamine",)
    assert loaded.features.terms[route].unseen_levels == FIELDS_BY_NAME["route"].levels[1:]


# A model file or manifest that is not a regular file: refused before a byte is read, and
# without blocking (a FIFO with no writer hangs a plain open). Loaded in a child process with a
# timeout and a memory limit, so that a regression cannot hang the suite or read /dev/zero
# until memory runs out.
_LOAD_EACH = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
from predictor.model._artifact import ModelFileError, load_model
out = {}
for case, path in json.loads(sys.argv[1]).items():
    try:
        load_model(path)
        out[case] = "loaded"
    except ModelFileError as exc:
        out[case] = str(exc)
print(json.dumps(out))
"""
NOT_FILES = {  # id: (file replaced, how, what the message calls it)
    "model-fifo": (ARTIFACT_NAME, "fifo", "a FIFO (named pipe)"),
    "manifest-fifo": (MANIFEST_NAME, "fifo", "a FIFO (named pipe)"),
    "model-dev-zero": (ARTIFACT_NAME, "/dev/zero", "a character device"),
    "manifest-dev-zero": (MANIFEST_NAME, "/dev/zero", "a character device"),
    "model-directory": (ARTIFACT_NAME, "directory", "a directory"),
}


@pytest.fixture(scope="module")
def not_files_refused(model: AdditiveModel, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What loading each case of NOT_FILES said (in one child process, for speed)."""
    paths = {}
    for case, (name, how, _) in NOT_FILES.items():
        folder = tmp_path_factory.mktemp(case)
        save_model(model, folder, {"note": "test"})
        (folder / name).unlink()
        if how == "fifo":
            os.mkfifo(folder / name)
        elif how == "directory":
            (folder / name).mkdir()
        else:
            (folder / name).symlink_to(how)
        paths[case] = str(folder)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_EACH, json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("case", NOT_FILES, ids=NOT_FILES)
def test_load_model_refuses_a_file_that_is_not_a_regular_file(
    not_files_refused: dict, case: str
) -> None:
    name, _, kind = NOT_FILES[case]
    what = "model file" if name == ARTIFACT_NAME else "model manifest"
    message = not_files_refused[case]  # names the link's target, for /dev/zero
    assert message.endswith(f" is {kind}, not a regular file: a {what} must be a file"), message


@pytest.mark.parametrize(
    ("name", "cap"),
    [(ARTIFACT_NAME, MAX_ARTIFACT_BYTES), (MANIFEST_NAME, MAX_MANIFEST_BYTES)],
    ids=["model", "manifest"],
)
def test_load_model_refuses_an_oversized_file_before_reading_it(
    saved: Path, name: str, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.truncate(saved / name, cap + 1)  # sparse: nothing is written, nothing need be read
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    with pytest.raises(ModelFileError, match=f"is larger than the {cap:,} bytes a model"):
        load_model(saved)
    assert sum(reads) <= (MAX_MANIFEST_BYTES + 1 if name == ARTIFACT_NAME else 0)


def test_load_model_reads_a_file_of_exactly_the_cap(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = (saved / MANIFEST_NAME).stat().st_size
    monkeypatch.setattr(artifact, "MAX_MANIFEST_BYTES", size)
    assert load_model(saved).fields == MODEL_FIELDS
    monkeypatch.setattr(artifact, "MAX_MANIFEST_BYTES", size - 1)
    artifact._load.cache_clear()
    with pytest.raises(ModelFileError, match=f"larger than the {size - 1:,} bytes"):
        load_model(saved)


def test_shipped_model_files_are_far_below_the_caps() -> None:
    assert (SHIPPED_MODEL_DIR / ARTIFACT_NAME).stat().st_size < MAX_ARTIFACT_BYTES / 50
    assert (SHIPPED_MODEL_DIR / MANIFEST_NAME).stat().st_size < MAX_MANIFEST_BYTES / 50


# Format 1 (the files shipped before models described themselves) and a schema that grows.

FORMAT_1_DIR = Path(__file__).parent / "data" / "model_format_1"
"""``models/`` as it was shipped in format 1, and ``patients_scored.csv``: what
``python -m predictor score examples/patients.csv --explain`` gave with it."""
EXAMPLES = Path(__file__).parents[1] / "examples" / "patients.csv"


def test_load_model_format_1_scores_exactly_as_before(tmp_path: Path) -> None:
    from predictor.io import score_csv

    score_csv(EXAMPLES, tmp_path / "scored.csv", model=FORMAT_1_DIR, explain=True)
    read = {"keep_default_na": False}
    got = pd.read_csv(tmp_path / "scored.csv", **read)
    expected = pd.read_csv(FORMAT_1_DIR / "patients_scored.csv", **read)
    # the same texts and columns; the same numbers to rounding (scoring sums each row's
    # nonzero basis columns since issue 17, in another order than the dense design did)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=0, atol=1e-12)


TWO_ROUTES_DIR = Path(__file__).parent / "data" / "model_two_routes"
"""``models/`` as shipped (format 2) before the schema gained intramuscular, oral and
sublingual ketamine: a model of two routes, as every model trained before then is."""


@pytest.mark.parametrize("which", ["format-2", "format-1"])
def test_load_model_of_two_routes_scores_the_schemas_other_routes_as_an_average_patient(
    tmp_path: Path, which: str
) -> None:
    # Both files know route's levels of their day (IV, intranasal), a subset of today's: they
    # load, keep their two levels when saved again, and score the new ones as unseen.
    model = load_model(TWO_ROUTES_DIR if which == "format-2" else FORMAT_1_DIR)
    route = model.features.terms[model.fields.index("route")]
    schema = FIELDS_BY_NAME["route"].levels
    assert route.levels == schema[:2] and route.schema_only_levels == schema[2:]
    save_model(model, tmp_path / "again", {"note": "test"})
    document = json.loads((tmp_path / "again" / ARTIFACT_NAME).read_text())
    assert _field(document, "route")["levels"] == list(schema[:2])
    assert _term(document, "route")["levels"] == list(schema[:2])
    for level in schema[2:]:
        p = predict({**RECORD, "route": level}, model=model)
        assert p.contributions["route"] == 0.0
        assert [w for w in p.warnings if w.startswith("route")] == [
            f"route = {level} was not seen when this model was trained: its route term is that "
            "of an average training patient (contribution 0), and the interval does not cover "
            "what this route changes"
        ]


def test_save_model_format_1_model_saved_again_is_format_2_with_the_same_numbers(
    tmp_path: Path,
) -> None:
    old = load_model(FORMAT_1_DIR)
    save_model(old, tmp_path / "again", {"note": "test"})
    new_document = json.loads((tmp_path / "again" / ARTIFACT_NAME).read_text())
    old_document = json.loads((FORMAT_1_DIR / ARTIFACT_NAME).read_text())
    assert (new_document["format_version"], new_document["kind"]) == (FORMAT_VERSION, "additive")
    assert [f["name"] for f in new_document["fields"]] == list(old.fields)
    for key, value in old_document.items():
        if key not in ("format", "format_version"):
            assert new_document[key] == value, key
    table = simulate_cohort(50, seed=9).drop(columns=["responded", "true_probability"])
    pd.testing.assert_frame_equal(
        predict(table, model=tmp_path / "again", explain=True),
        predict(table, model=old, explain=True),
        check_exact=True,
    )


def _schema_with_a_new_field() -> MappingProxyType:
    new = Field(
        "hair_cortisol_pg_mg",
        Kind.NUMBER,
        Role.PREDICTOR,
        "Hair cortisol",
        unit="pg/mg",
        label="hair cortisol",
        wording=Wording("hair cortisol {value} {unit}", "Low", "Typical", "High"),
    )
    return MappingProxyType({**FIELDS_BY_NAME, new.name: new})


@pytest.mark.parametrize("which", ["format-2", "format-1"])
def test_load_model_keeps_loading_after_a_field_is_added_to_the_schema(
    saved: Path, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = saved if which == "format-2" else FORMAT_1_DIR
    before = predict(RECORD, model=load_model(where)).to_dict()
    monkeypatch.setattr(artifact, "FIELDS_BY_NAME", _schema_with_a_new_field())
    artifact._load.cache_clear()
    assert predict(RECORD, model=load_model(where)).to_dict() == before


@pytest.mark.parametrize("which", ["format-2", "format-1"])
def test_load_model_refuses_a_model_whose_field_changed_unit_or_scale_in_the_schema(
    saved: Path, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A format 1 file records no definitions: it is held to schema version 1's, not assumed
    to match today's schema."""
    where = saved if which == "format-2" else FORMAT_1_DIR
    changed = {
        **FIELDS_BY_NAME,
        "bdnf_ng_ml": dataclasses.replace(FIELDS_BY_NAME["bdnf_ng_ml"], unit="pg/mL"),
        "crp_mg_l": dataclasses.replace(FIELDS_BY_NAME["crp_mg_l"], log_floor=0.01),
    }
    monkeypatch.setattr(artifact, "FIELDS_BY_NAME", MappingProxyType(changed))
    artifact._load.cache_clear()
    changes = r"crp_mg_l has log_floor \(scale\) 0.05.*bdnf_ng_ml has unit 'ng/mL'"
    with pytest.raises(ModelFileError, match=changes):
        load_model(where)


def test_check_fields_takes_the_schema_and_lists_every_mismatch() -> None:
    schema = _schema_with_a_new_field()
    definitions = [FieldDefinition.of(schema[name]) for name in ("crp_mg_l", "route")]
    check_fields(definitions, schema)  # the new field is not the model's business
    wrong = [
        dataclasses.replace(definitions[0], unit="mg/dL"),
        dataclasses.replace(definitions[1], levels=("iv_ketamine", "oral")),
        FieldDefinition("history_of_psychosis", "boolean", ""),
    ]
    with pytest.raises(ValueError, match=r"unit 'mg/dL'.*'oral'.*'history_of_psychosis' is not"):
        check_fields(wrong, schema)


def test_save_model_model_of_some_fields_round_trips(tmp_path: Path) -> None:
    cohort = simulate_cohort(2000, seed=4)
    fields = ("crp_mg_l", "route", "family_history_alcohol_use_disorder")
    model, _ = fit_additive_model(
        cohort, cohort["responded"].to_numpy(), smoothing=10.0, fields=fields
    )
    save_model(model, tmp_path / "m", {"note": "test"})
    loaded = load_model(tmp_path / "m")
    assert loaded.fields == fields
    document = json.loads((tmp_path / "m" / ARTIFACT_NAME).read_text())
    assert [f["name"] for f in document["fields"]] == list(fields)
    prediction = predict(RECORD, model=loaded)
    assert prediction.to_dict() == predict(RECORD, model=model).to_dict()
    assert set(prediction.contributions) == set(fields)


# Any file that loads scores finite probabilities: change one number or list of a valid
# document and it is refused, or its scores are finite probabilities with finite intervals.


@pytest.fixture(scope="module")
def valid_document(model: AdditiveModel) -> dict:
    return json.loads(model_to_json(model))


@pytest.fixture(scope="module")
def scored_cohort() -> pd.DataFrame:
    from data_schemas import validate

    cohort = simulate_cohort(500, seed=1)
    return validate(cohort.drop(columns=["responded", "true_probability"])).clean


def _numeric_places(document: object, path: tuple = ()) -> list[tuple]:
    """Paths (keys and indices) to every number and every list of numbers in a document."""
    if isinstance(document, dict):
        return [p for k, v in document.items() for p in _numeric_places(v, (*path, k))]
    if isinstance(document, list):
        here = (
            [path] if document and all(isinstance(v, int | float | list) for v in document) else []
        )
        return here + [p for i, v in enumerate(document) for p in _numeric_places(v, (*path, i))]
    if isinstance(document, int | float) and not isinstance(document, bool):
        return [path]
    return []


def _places_by_kind(document: dict) -> dict[tuple, list[tuple]]:
    """:func:`_numeric_places` grouped by their path with the list indices left out."""
    kinds: dict[tuple, list[tuple]] = {}
    for path in _numeric_places(document):
        kinds.setdefault(tuple("#" if isinstance(k, int) else k for k in path), []).append(path)
    return kinds


_NUMBERS = st.one_of(
    st.sampled_from([0.0, -1.0, 1e-300, 1e6, -1e6, 1e7, 1e300, -1e300, 2.0**53]),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _changed(value: object, how: str, number: float, index: int) -> object:
    """``value`` (a number or a list) with one change: set, negate, reverse, drop, repeat."""
    if not isinstance(value, list):
        return -value if how == "negate" else number
    if not value:
        return [number]
    i = index % len(value)
    flat = not isinstance(value[0], list)
    changes = {
        "set": [*value[:i], number, *value[i + 1 :]] if flat else value,
        "negate": [-v for v in value] if flat else value,
        "reverse": value[::-1],
        "drop": value[:i] + value[i + 1 :],
        "repeat": [*value, value[i]],
    }
    return changes[how]


@given(
    place=st.integers(min_value=0),
    how=st.sampled_from(["set", "negate", "reverse", "drop", "repeat"]),
    number=_NUMBERS,
    index=st.integers(min_value=0, max_value=200),
)
@settings(deadline=None)  # the profile's number of examples: 25 by default, 200 in CI
def test_model_from_json_any_changed_number_is_refused_or_scores_finite_probabilities(
    valid_document: dict,
    scored_cohort: pd.DataFrame,
    place: int,
    how: str,
    number: float,
    index: int,
) -> None:
    document = json.loads(json.dumps(valid_document))
    kinds = _places_by_kind(document)  # each kind of place (a term's knots...) equally likely
    paths = kinds[sorted(kinds)[place % len(kinds)]]
    path = paths[index % len(paths)]
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = _changed(parent[path[-1]], how, number, index)
    try:
        loaded = artifact.model_from_json(json.dumps(document), source="changed")
    except ModelFileError:
        return
    scores = loaded.score(loaded.features.design(scored_cohort))
    for values in (scores.probability, scores.low, scores.high):
        assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    assert np.isfinite(scores.contributions).all() and np.isfinite(scores.logit).all()
