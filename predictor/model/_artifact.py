"""Model files: the fitted model as plain JSON numbers, a manifest, and the checks on loading.

A model is a directory holding ``model.json`` (the artifact: every fitted number, as JSON arrays)
and ``manifest.json`` (what produced it: schema, package and library versions, the training
data's sha256, seed, size, metrics, and the artifact's own sha256).

A model file describes itself (format 2): its ``kind`` (``"additive"``; :data:`MODEL_KINDS`
says which class reads each kind), the ``fields`` it was fitted with, each as the schema
defined it then (name, kind, unit, levels, scale), and its terms and numbers. On loading, each
of its fields is checked against the schema's definition of that field (:func:`check_fields`),
not against the schema's full list: a field added to the schema leaves every model loading, and
a model may use only some of the predictor fields. Files of format 1 (no kind, no field
definitions, every predictor field of schema version 1) still load.

``SCHEMA_VERSION`` changes when an existing field changes meaning (what it measures, beyond
what its kind, unit and scale say); a model file written for another schema version is refused.
Adding a field, a level, an alias or a unit spelling is no new version: the per-field check
(same kind, unit and scale, levels still the schema's) is what protects a model.

Loading never executes code from a file -- nothing is unpickled, only ``json`` parses text --
and it refuses, with a message saying what is wrong, a file that:

* is missing, or has no manifest beside it;
* is not a regular file (a FIFO, a device, a directory), or is larger than
  :data:`MAX_ARTIFACT_BYTES` / :data:`MAX_MANIFEST_BYTES`: refused before anything is read;
* does not match the manifest's sha256 (corrupted, truncated, or replaced by another file,
  a pickle for instance);
* is not JSON, is another kind of file, or comes from another format or schema version;
* is of a kind of model this package does not know;
* has a field that the schema no longer has as a predictor, or whose kind or unit changed, or
  with a level the schema's field does not have;
* has a number that is not finite or is larger than
  :data:`~predictor.model._document.MAX_MAGNITUDE`, or an array of the wrong shape;
* has a term that does not fit its field (levels, kind, column names that do not match the
  levels and basis), a spline whose knots are not as training makes them (each end four
  times, increasing in between) or whose training range (on the model
  scale) is not inside its knots, tertiles outside that range;
* has a threshold outside (0, 1), a penalty that is not positive, or a covariance that is not
  symmetric positive definite.

So any file that loads gives finite probabilities and intervals for any clean record.

Each category term lists the levels its training patients had (``seen_levels``); a file
written before that was recorded has no such list, and loads as if every level was seen.

A model file knows the levels of its day, which may be fewer than today's schema has (the
shipped model's ``route`` has IV and intranasal; the schema has since gained intramuscular,
oral and sublingual ketamine). It loads and scores its own levels exactly as before; a level
it does not have gets the term's missing-value row without counting as missing
(``Term.schema_only_levels``), which is the training average (contribution 0) unless the model
learned a "not measured" term for the field, and the prediction warns that the level was not
seen when the model was trained (:mod:`predictor._explain`).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import MappingProxyType
from typing import Any

from data_schemas import FIELDS_BY_NAME, SCHEMA_VERSION, Field, Role
from predictor._atomic import atomic_text_output
from predictor._params import NONE, PATH, ParameterTable, check
from predictor.model._additive import AdditiveModel
from predictor.model._document import FieldDefinition, ModelFileError, read_document
from predictor.model._protocol import Model
from predictor.model._recalibrated import RecalibratedModel

ARTIFACT_NAME = "model.json"
MANIFEST_NAME = "manifest.json"
FORMAT = "ketamine-predictor model"
FORMAT_1 = "ketamine-predictor additive model"
"""What format 1's model files and manifests say they are (still read)."""
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, FORMAT_VERSION)
ENVELOPE: Mapping[str, Any] = MappingProxyType(
    {"format": FORMAT, "format_version": FORMAT_VERSION, "schema_version": SCHEMA_VERSION}
)
"""What ``model.json`` and ``manifest.json`` both begin with: this package's file format and
the schema version they were written for."""
MODEL_KINDS: Mapping[str, type[Model]] = MappingProxyType(
    {AdditiveModel.kind: AdditiveModel, RecalibratedModel.kind: RecalibratedModel}
)
"""The registry of model kinds: a model file's ``kind`` -> the class that reads it. A new kind
of model is added here."""
PROJECT_NAME = "ketamine-predictor"
PACKAGED_MODEL_DIR = Path(__file__).resolve().parent / "shipped"
"""Where a wheel carries the shipped model: ``setup.py``'s build step copies ``models/`` here."""


def _checkout_models_dir(root: Path) -> Path | None:
    """``root/models`` when ``root`` is this project's source checkout (a clone, an editable
    install), else None: only beside this project's own ``pyproject.toml``, never an unrelated
    ``models/`` folder that happens to sit next to the installed package (``site-packages``)."""
    try:
        with open(root / "pyproject.toml", "rb") as file:
            name = tomllib.load(file).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root / "models" if name == PROJECT_NAME else None


SHIPPED_MODEL_DIR = _checkout_models_dir(Path(__file__).resolve().parents[2]) or PACKAGED_MODEL_DIR
"""The model trained by ``python train.py``: ``models/`` in a source checkout (its one source),
the copy inside the package (:data:`PACKAGED_MODEL_DIR`) in an installed wheel."""
MAX_ARTIFACT_BYTES = 64 * 2**20
"""Largest ``model.json`` read (64 MiB): the shipped one is about 0.3 MB, and one with ten
times as many coefficients (a covariance a hundred times as big) would still fit."""
MAX_MANIFEST_BYTES = 16 * 2**20
"""Largest ``manifest.json`` read (16 MiB): the shipped one is about 14 kB."""


_PATH_PARAMETERS: ParameterTable = {"path": [NONE, PATH]}
"""What :func:`load_model` and :func:`read_manifest` accept."""


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's two files are."""

    artifact: Path
    manifest: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str] | None) -> ModelFiles:
        """The files of the model at ``path``: a model directory or its ``model.json``
        (``None``: the shipped model)."""
        where = SHIPPED_MODEL_DIR if path is None else Path(path)
        if where.is_dir():
            where = where / ARTIFACT_NAME
        return cls(where, where.with_name(MANIFEST_NAME))

    def among(
        self, outputs: Iterable[tuple[str, str | os.PathLike[str] | None]]
    ) -> tuple[str, str, Path] | None:
        """The first output that is one of these two files (through any link), as (option,
        output path, model file); None when no output is. ``outputs`` are (option, path)
        pairs; a path that is None, ``"-"`` or not there yet is never one of them."""
        own = [file for file in (self.artifact, self.manifest) if file.exists()]
        for option, path in outputs:
            if path is None or str(path) in ("", "-") or not os.path.exists(path):
                continue
            for file in own:
                if os.path.samefile(path, file):
                    return option, str(path), file
        return None


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def model_to_json(model: Model) -> str:
    """The model as JSON text of format :data:`FORMAT_VERSION` (floats written exactly; the
    same model gives the same text)."""
    document = {
        **ENVELOPE,
        **model.to_document(),
    }
    return json.dumps(document, allow_nan=False, indent=1) + "\n"


def check_fields(
    definitions: Iterable[FieldDefinition], schema: Mapping[str, Field] | None = None
) -> None:
    """Check a model's field definitions against the schema's definitions of those fields.

    A field the model uses must still exist, be a predictor, have the same kind, unit and scale
    (``log_floor``: the model's knots are on that scale), and each level the model knows must
    still be one of the field's levels. The schema's other
    fields do not matter: a field added to the schema leaves every model loading.

    Parameters
    ----------
    definitions : iterable of FieldDefinition
        What the model file records of its fields.
    schema : mapping of str to data_schemas.Field, optional
        The schema's fields by name (default: today's, ``FIELDS_BY_NAME``).

    Raises
    ------
    ValueError
        Listing every field that does not match.
    """
    schema = FIELDS_BY_NAME if schema is None else schema
    problems = []
    for definition in definitions:
        field = schema.get(definition.name)
        if field is None or field.role is not Role.PREDICTOR:
            problems.append(f"{definition.name!r} is not a predictor field of the schema")
            continue
        for what, theirs, ours in (
            ("kind", definition.kind, field.kind.value),
            ("unit", definition.unit, field.unit),
            ("log_floor (scale)", definition.log_floor, field.log_floor),
        ):
            if theirs != ours:
                problems.append(
                    f"{definition.name} has {what} {theirs!r}, the schema's is {ours!r}"
                )
        foreign = [level for level in definition.levels if level not in field.levels]
        if foreign:
            problems.append(f"{definition.name}'s levels {foreign} are not the schema's levels")
    if problems:
        raise ValueError(
            "its fields do not match the schema: " + "; ".join(problems) + ": retrain it with "
            "`python train.py`"
        )


FORMAT_1_FIELDS: Mapping[str, FieldDefinition] = MappingProxyType(
    {
        definition.name: definition
        for definition in (
            FieldDefinition("age_years", "number", "years"),
            FieldDefinition("sex", "category", "", ("female", "male")),
            FieldDefinition("bmi_kg_m2", "number", "kg/m2"),
            FieldDefinition("baseline_madrs", "number", "MADRS points"),
            FieldDefinition("failed_antidepressant_trials", "integer", "count in this episode"),
            FieldDefinition("route", "category", "", ("iv_ketamine", "intranasal_esketamine")),
            FieldDefinition("crp_mg_l", "number", "mg/L", log_floor=0.05),
            FieldDefinition("bdnf_ng_ml", "number", "ng/mL"),
            FieldDefinition("delta_sleep_ratio", "number", ""),
            FieldDefinition("slow_wave_sleep_pct", "number", "% of total sleep time"),
            FieldDefinition("rhythm_relative_amplitude", "number", ""),
            FieldDefinition("rhythm_interdaily_stability", "number", ""),
            FieldDefinition("substance_use_disorder", "category", "", ("none", "past", "current")),
            FieldDefinition("family_history_alcohol_use_disorder", "boolean", ""),
        )
    }
)
"""The predictor fields of schema version 1 as format 1 files were written for them (such a
file records no definitions): a record of the past, so that a format 1 file is checked against
today's schema like any other, not assumed to match it."""


def _upgraded(document: dict[str, Any]) -> dict[str, Any]:
    """A format 1 document as format 2: kind ``additive``, and its fields' definitions those
    of schema version 1 (:data:`FORMAT_1_FIELDS`), which :func:`check_fields` then checks
    against today's schema."""
    terms = document.get("terms")
    if not isinstance(terms, list) or not all(isinstance(term, dict) for term in terms):
        return document  # the model's own checks say what is wrong
    fields = [term.get("field") for term in terms]
    unknown = [name for name in fields if name not in FORMAT_1_FIELDS]
    if unknown:
        raise ValueError(f"it has a term for {unknown[0]!r}, which is not a schema field")
    return {
        **document,
        "kind": "additive",
        "fields": [FORMAT_1_FIELDS[name].to_document() for name in fields],
    }


def _our_document(data: str | bytes, source: str, what: str) -> dict[str, Any]:
    """Parse JSON text and check that it is this package's ``what`` (model file or manifest)."""
    try:
        document = json.loads(data)
    except RecursionError as exc:
        raise ModelFileError(f"{source} is not a {what}: it is nested too deeply") from exc
    except ValueError as exc:  # also bytes that are not UTF-8 text
        raise ModelFileError(f"{source} is not a {what}: it is not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") not in (FORMAT, FORMAT_1):
        raise ModelFileError(f"{source} is not a ketamine-predictor {what}")
    return document


def model_from_json(text: str, *, source: str = ARTIFACT_NAME) -> Model:
    """Rebuild a model from :func:`model_to_json` text (or a format 1 file), checking every
    part of it.

    Raises
    ------
    ModelFileError
        If the text is not this format, is from another format or schema version, is of an
        unknown kind, its fields do not match the schema's, or its numbers are missing,
        misshapen or not what a fitted model has.
    """
    document = _our_document(text, source, "model file")
    for key, readable in (
        ("format_version", READABLE_FORMAT_VERSIONS),
        ("schema_version", (SCHEMA_VERSION,)),
    ):
        if document.get(key) not in readable:
            older = f" (and {', '.join(map(repr, readable[:-1]))})" if len(readable) > 1 else ""
            raise ModelFileError(
                f"{source} was written for {key.replace('_', ' ')} {document.get(key)!r}; this "
                f"version of the package reads {readable[-1]!r}{older}: retrain it with "
                f"`python train.py`"
            )

    def checked() -> tuple[type[Model], dict[str, Any]]:
        """The class of the model's kind, and the document as format 2."""
        upgraded = _upgraded(document) if document["format_version"] == 1 else document
        kind = upgraded["kind"]
        if not isinstance(kind, str) or kind not in MODEL_KINDS:
            raise ValueError(f"its kind {kind!r} is not one of {sorted(MODEL_KINDS)}")
        if not isinstance(upgraded["fields"], list):
            raise ValueError("its fields must be a list of field definitions")
        check_fields(FieldDefinition.from_document(entry) for entry in upgraded["fields"])
        return MODEL_KINDS[kind], upgraded

    model_class, upgraded = read_document(checked, source)
    # Any kind's errors on a malformed document are a ModelFileError, not an internal error.
    return read_document(lambda: model_class.from_document(upgraded, source=source), source)


def save_model(
    model: Model, directory: str | os.PathLike[str], manifest: dict[str, Any]
) -> ModelFiles:
    """Write ``model.json`` and ``manifest.json`` (each atomically) into ``directory``.

    Parameters
    ----------
    model : Model
    directory : path
        Created if needed.
    manifest : dict
        What produced the model (versions, training data, metrics); the format, schema and
        package versions and the artifact's sha256 are added here.
    """
    files = ModelFiles.at(Path(directory) / ARTIFACT_NAME)
    files.artifact.parent.mkdir(parents=True, exist_ok=True)
    text = model_to_json(model)
    document = {
        **ENVELOPE,
        "artifact": ARTIFACT_NAME,
        "artifact_sha256": sha256_hex(text.encode()),
        "package_version": package_version(),
        **manifest,
    }
    with atomic_text_output(files.artifact) as handle:
        handle.write(text)
    with atomic_text_output(files.manifest) as handle:
        handle.write(json.dumps(document, allow_nan=False, indent=2) + "\n")
    return files


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _FILE_KINDS if test(mode)), "an unknown kind of file")


def _read(path: Path, what: str, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Opened without blocking (a FIFO with no writer would otherwise hang the open) and checked
    on the open descriptor (no race with a file replaced in between): anything but a regular
    file, or a file over ``limit`` bytes, is refused before a byte is read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError as exc:
        raise ModelFileError(f"no {what} at {path}") from exc
    except OSError as exc:
        raise ModelFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(
                f"{path} is {_kind(info.st_mode)}, not a regular file: a {what} must be a file"
            )
        size = info.st_size
        chunks, left = [], limit + 1  # one byte more: a file that grew is refused too
        while size <= limit and left > 0 and (chunk := os.read(descriptor, min(left, 2**20))):
            chunks.append(chunk)
            left -= len(chunk)
        if size > limit or left <= 0:
            raise ModelFileError(
                f"{path} is larger than the {limit:,} bytes a {what} may have: it is not "
                f"one (a model's files are far smaller)"
            )
        return b"".join(chunks)
    except OSError as exc:
        raise ModelFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(descriptor)


def read_manifest(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest of the model at ``path`` (a model directory or its ``model.json``; ``None``:
    the shipped model)."""
    check("read_manifest", _PATH_PARAMETERS, locals())
    return _manifest_at(ModelFiles.at(path).manifest)


def _manifest_at(path: Path) -> dict[str, Any]:
    document = _our_document(
        _read(path, "model manifest", MAX_MANIFEST_BYTES), str(path), "model manifest"
    )
    _check_manifest(document, str(path))
    return document


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_line(value: Any) -> bool:
    """A one-line text (a source, a version) as the report and card print it."""
    return isinstance(value, str) and len(value) <= 1000 and value.isprintable()


def _check_manifest(document: dict[str, Any], source: str) -> None:
    """Check the parts of a manifest that the report reads (none of it is covered by
    a hash: ``model.json``'s sha256 is in it), so that an edited or foreign one is refused
    with the key that is wrong rather than failing inside the report.

    Raises
    ------
    ModelFileError
    """

    def wrong(key: str, rule: str) -> ModelFileError:
        return ModelFileError(
            f"{source}: {key} {rule}: the manifest was edited or is not one this package "
            "wrote; restore it or retrain the model"
        )

    data = document.get("training_data", {})  # a model saved by save_model alone has none
    if not isinstance(data, dict):
        raise wrong("training_data", "is not an object")
    if "source" in data and not _is_line(data["source"]):
        raise wrong("training_data.source", "is not one line of text")
    for key in ("n", "seed"):
        value = data.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise wrong(f"training_data.{key}", "is not a whole number of at least 0")
    for key in ("schema_version", "python"):  # package_version: _check_package_version
        if key in document and not _is_line(document[key]):
            raise wrong(key, "is not one line of text")
    distribution = document.get("training_distribution") or {}
    if not isinstance(distribution, dict):
        raise wrong("training_distribution", "is not an object")
    for field, shape in distribution.items():
        key = f"training_distribution.{field}"
        if shape is None:
            continue
        if not isinstance(shape, dict):
            raise wrong(key, "is not an object")
        counts = shape.get("counts")
        if counts is None and shape.get("edges") is None and shape.get("levels") is None:
            continue  # a field the model had no shape for: only its count of missing values
        if not isinstance(counts, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts
        ):
            raise wrong(key, "has no counts (whole numbers of at least 0)")
        edges, levels = shape.get("edges"), shape.get("levels")
        if edges is not None:
            if not (
                isinstance(edges, list)
                and all(_is_number(e) for e in edges)
                and len(edges) == len(counts) + 1
                and all(a <= b for a, b in itertools.pairwise(edges))  # rounded: may repeat
            ):
                raise wrong(key, "has edges that are not one more than its counts, in order")
        elif not (
            isinstance(levels, list)
            and len(levels) == len(counts)
            and all(_is_line(level) for level in levels)
        ):
            raise wrong(key, "has neither edges nor one level per count")


def package_version() -> str | None:
    """This package's installed version (None when run from a source tree never installed)."""
    try:
        return version("ketamine-predictor")
    except PackageNotFoundError:
        return None


def _check_package_version(manifest: dict[str, Any], source: Path) -> None:
    """Refuse a model written by another major version of the package (when both are known)."""
    ours = package_version()
    if ours is None:
        return
    theirs = manifest.get("package_version")
    if not isinstance(theirs, str) or theirs.split(".")[0] != ours.split(".")[0]:
        raise ModelFileError(
            f"{source} was written by ketamine-predictor {theirs!r}; this is version {ours!r}, "
            f"which reads models of major version {ours.split('.')[0]}: retrain it with "
            f"`python train.py`"
        )


@functools.lru_cache(maxsize=8)
def _load(files: ModelFiles, stamp: tuple[int, ...]) -> Model:
    artifact = files.artifact
    if not (artifact.exists() or files.manifest.exists()):
        raise ModelFileError(
            f"no model at {artifact.parent if artifact.name == ARTIFACT_NAME else artifact}: "
            f"give a model directory (with {ARTIFACT_NAME} and {MANIFEST_NAME}) or its "
            f"{ARTIFACT_NAME}"
        )
    manifest = _manifest_at(files.manifest)  # not beside a link's target: beside the link
    data = _read(artifact, "model file", MAX_ARTIFACT_BYTES)
    if sha256_hex(data) != manifest.get("artifact_sha256"):
        raise ModelFileError(
            f"{artifact} does not match its manifest (sha256 differs): the file is corrupted, "
            f"truncated or was replaced; restore it or retrain with `python train.py`"
        )
    _check_package_version(manifest, files.manifest)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{artifact} is not a model file: it is not text") from exc
    return model_from_json(text, source=str(artifact))


def _resolved(path: str | os.PathLike[str] | None) -> ModelFiles:
    files = ModelFiles.at(path)
    return ModelFiles(files.artifact.resolve(), files.manifest.resolve())


_shipped_files = functools.cache(functools.partial(_resolved, None))


def load_model(path: str | os.PathLike[str] | None = None) -> Model:
    """Load and check a model; the result is cached until either file changes.

    Parameters
    ----------
    path : path, optional
        A model directory (with ``model.json`` and ``manifest.json``) or its ``model.json``;
        ``None`` loads the shipped model (``models/`` in a source checkout, the copy in the
        package when installed from a wheel).

    Raises
    ------
    ModelFileError
        If a file is missing, does not match the manifest, or is not a valid model.
    InvalidParameterError
        If ``path`` is neither a path nor None.

    Examples
    --------
    >>> model = load_model()
    >>> model.fields[:3]
    ('age_years', 'sex', 'bmi_kg_m2')
    """
    check("load_model", _PATH_PARAMETERS, locals())
    files = _shipped_files() if path is None else _resolved(path)
    stamp: list[int] = []
    for file in (files.artifact, files.manifest):
        try:
            stat = file.stat()
        except OSError:
            stamp += [-1, -1, -1, -1]  # _load reports the missing file
        else:  # ctime cannot be set back by hand, and a replaced file has a new inode
            stamp += [stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size]
    return _load(files, tuple(stamp))
