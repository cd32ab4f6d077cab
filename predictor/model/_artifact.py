"""Model files: the fitted model as plain JSON numbers, a manifest, and the checks on loading.

A model is a directory holding ``model.json`` (the artifact: every fitted number, as JSON arrays)
and ``manifest.json`` (what produced it: schema, package and library versions, the training
data's sha256, seed, size, metrics, and the artifact's own sha256). Loading never executes code
from a file -- nothing is unpickled, only ``json`` parses text -- and it refuses, with a
message saying what is wrong, a file that:

* is missing, or has no manifest beside it;
* is not a regular file (a FIFO, a device, a directory), or is larger than
  :data:`MAX_ARTIFACT_BYTES` / :data:`MAX_MANIFEST_BYTES`: refused before anything is read;
* does not match the manifest's sha256 (corrupted, truncated, or replaced by another file,
  a pickle for instance);
* is not JSON, is another kind of file, or comes from another format or schema version;
* has numbers of the wrong shape or that are not finite, or terms that do not fit the schema
  (levels, kinds), or a covariance that is not a covariance.

Each category term lists the levels its training patients had (``seen_levels``); a file
written before that was recorded has no such list, and loads as if every level was seen.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import tomllib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from data_schemas import FIELDS_BY_NAME, SCHEMA_VERSION, Kind
from predictor._atomic import atomic_text_output
from predictor.model._additive import AdditiveModel
from predictor.model._features import (
    LEVEL_NAMES_BOOLEAN,
    MODEL_FIELDS,
    SPLINE_DEGREE,
    FeatureMap,
    Term,
)

ARTIFACT_NAME = "model.json"
MANIFEST_NAME = "manifest.json"
FORMAT = "ketamine-predictor additive model"
FORMAT_VERSION = 1
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


class ModelFileError(ValueError):
    """A model file that cannot be used: missing, corrupted, foreign or from another version."""


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


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _term_to_json(term: Term) -> dict[str, Any]:
    spline = term.is_spline
    return {
        "field": term.field,
        "columns": list(term.columns),
        "levels": list(term.levels),
        "knots": term.knots.tolist(),
        "transform": term.transform.tolist(),
        "missing_row": term.missing_row.tolist(),
        "learned_missing": term.learned_missing,
        "value_range": list(term.value_range) if spline else None,
        "tertiles": list(term.tertiles) if spline else None,
        "unused": term.unused,
        "seen_levels": list(term.seen_levels),
    }


def model_to_json(model: AdditiveModel) -> str:
    """The model as JSON text (floats written exactly; the same model gives the same text)."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "threshold": model.threshold,
        "penalty_c": model.penalty_c,
        "intercept": model.intercept,
        "coef": model.coef.tolist(),
        "term_means": model.term_means.tolist(),
        "covariance": model.covariance.tolist(),
        "terms": [_term_to_json(term) for term in model.features.terms],
    }
    return json.dumps(document, allow_nan=False, indent=1) + "\n"


def _array(value: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has a value that is not a finite number")
    return array


def _expected_levels(field: str) -> tuple[str, ...]:
    kind = FIELDS_BY_NAME[field].kind
    if kind is Kind.BOOLEAN:
        return LEVEL_NAMES_BOOLEAN
    return FIELDS_BY_NAME[field].levels if kind is Kind.CATEGORY else ()


def _term_from_json(entry: dict[str, Any]) -> Term:
    field = entry["field"]
    if field not in FIELDS_BY_NAME:
        raise ValueError(f"it has a term for {field!r}, which is not a schema field")
    columns = tuple(str(c) for c in entry["columns"])
    knots = _array(entry["knots"], "knots")
    unused = entry.get("unused", "")
    levels = tuple(str(level) for level in entry["levels"])
    if not isinstance(unused, str) or not isinstance(entry["learned_missing"], bool):
        raise ValueError(f"{field}: 'unused' must be text and 'learned_missing' true or false")
    expected = () if unused else _expected_levels(field)
    if levels != expected:
        raise ValueError(f"{field}: its levels are {levels}, the schema's are {expected}")
    seen = entry.get("seen_levels")  # absent from files written before it was recorded: all
    if seen is not None and not (
        isinstance(seen, list) and all(isinstance(level, str) for level in seen)
    ):
        raise ValueError(f"{field}: 'seen_levels' must be a list of levels")
    is_number = FIELDS_BY_NAME[field].kind in (Kind.NUMBER, Kind.INTEGER)
    if bool(knots.size) != (is_number and not unused):
        raise ValueError(f"{field}: a spline term must be exactly the schema's used number fields")
    transform = np.empty((0, 0))
    if knots.size:
        n_basis = knots.size - SPLINE_DEGREE - 1
        transform = _array(entry["transform"], "transform", (n_basis, n_basis))
    ranges = {
        key: tuple(_array(entry[key], key, (2,)).tolist())
        for key in ("value_range", "tertiles")
        if entry[key] is not None
    }
    if any(low > high for low, high in ranges.values()):
        raise ValueError(f"{field}: a range has its low end above its high end")
    return Term(
        field,
        columns,
        levels=levels,
        knots=knots,
        transform=transform,
        missing_row=_array(entry["missing_row"], "missing_row", (len(columns),)),
        learned_missing=entry["learned_missing"],
        unused=unused,
        seen_levels=None if seen is None else tuple(seen),
        **ranges,
    )


def _check_parameters(model: AdditiveModel) -> None:
    """Raise ValueError unless the threshold, penalty and covariance can be what a fit gives."""
    if not 0.0 < model.threshold < 1.0:
        raise ValueError(f"its threshold {model.threshold!r} is not between 0 and 1")
    if not model.penalty_c > 0.0:
        raise ValueError(f"its penalty C {model.penalty_c!r} is not positive")
    covariance = model.covariance
    if not np.array_equal(covariance, covariance.T):
        raise ValueError("its covariance is not symmetric")
    try:
        np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        raise ValueError("its covariance is not positive definite") from None


def _our_document(data: str | bytes, source: str, what: str) -> dict[str, Any]:
    """Parse JSON text and check that it is this package's ``what`` (model file or manifest)."""
    try:
        document = json.loads(data)
    except RecursionError as exc:
        raise ModelFileError(f"{source} is not a {what}: it is nested too deeply") from exc
    except ValueError as exc:  # also bytes that are not UTF-8 text
        raise ModelFileError(f"{source} is not a {what}: it is not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFileError(f"{source} is not a ketamine-predictor {what}")
    return document


def model_from_json(text: str, *, source: str = ARTIFACT_NAME) -> AdditiveModel:
    """Rebuild a model from :func:`model_to_json` text, checking every part of it.

    Raises
    ------
    ModelFileError
        If the text is not this format, is from another format or schema version, or has
        missing, misshapen or non-finite numbers.
    """
    document = _our_document(text, source, "model file")
    for key, expected in (("format_version", FORMAT_VERSION), ("schema_version", SCHEMA_VERSION)):
        if document.get(key) != expected:
            raise ModelFileError(
                f"{source} was written for {key.replace('_', ' ')} {document.get(key)!r}; this "
                f"version of the package reads {expected!r}: retrain it with `python train.py`"
            )
    try:
        terms = tuple(_term_from_json(entry) for entry in document["terms"])
        fields = tuple(term.field for term in terms)
        if fields != MODEL_FIELDS:
            raise ValueError(f"its terms are {fields}, expected {MODEL_FIELDS}")
        p = sum(len(term.columns) for term in terms)
        model = AdditiveModel(
            features=FeatureMap(terms),
            intercept=float(_array(document["intercept"], "intercept", ())),
            coef=_array(document["coef"], "coef", (p,)),
            covariance=_array(document["covariance"], "covariance", (p + 1, p + 1)),
            term_means=_array(document["term_means"], "term_means", (len(terms),)),
            penalty_c=float(_array(document["penalty_c"], "penalty_c", ())),
            threshold=float(_array(document["threshold"], "threshold", ())),
        )
        _check_parameters(model)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        detail = f"{exc.args[0]!r} is missing" if isinstance(exc, KeyError) else str(exc)
        raise ModelFileError(f"{source} is not a valid model: {detail}") from exc
    return model


def save_model(
    model: AdditiveModel, directory: str | os.PathLike[str], manifest: dict[str, Any]
) -> ModelFiles:
    """Write ``model.json`` and ``manifest.json`` (each atomically) into ``directory``.

    Parameters
    ----------
    model : AdditiveModel
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
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
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
    return _manifest_at(ModelFiles.at(path).manifest)


def _manifest_at(path: Path) -> dict[str, Any]:
    return _our_document(
        _read(path, "model manifest", MAX_MANIFEST_BYTES), str(path), "model manifest"
    )


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
def _load(files: ModelFiles, stamp: tuple[int, ...]) -> AdditiveModel:
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


def load_model(path: str | os.PathLike[str] | None = None) -> AdditiveModel:
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

    Examples
    --------
    >>> model = load_model()
    >>> model.fields[:3]
    ('age_years', 'sex', 'bmi_kg_m2')
    """
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
