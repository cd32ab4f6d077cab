"""Scoring with Dask: a Dask DataFrame partition by partition (:func:`score_dask`), or many CSV
files, one task per file (:func:`score_files_dask`).

Each partition or file is scored by the one path of ``predict(DataFrame)`` and ``score``
(:func:`predictor._scoring.scored_table`, :func:`predictor.io.score_csv`), so the numbers,
texts and rejects are theirs. Each worker process loads the model once: a model given as a path
(or the shipped one) travels as its path and the SHA-256 of its ``model.json``, and
:func:`_worker_model` keeps it per process, refusing a worker whose file differs from the one
the client checked.
"""

from __future__ import annotations

import functools
import glob
import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_schemas import PredictorError, validate
from predictor._params import BOOL, ParameterTable, check
from predictor._processes import freed_memory_kept
from predictor._scoring import MODEL_CONSTRAINTS, ModelLike, scored_table
from predictor.io import BatchError, problems_as_rejects, score_csv
from predictor.model import Model, ModelFileError, load_model, read_manifest

INSTALL_HINT = "pip install 'ketamine-predictor[dask]'"


class DaskUnavailableError(PredictorError, ImportError):
    """Dask (or its ``distributed`` scheduler) is not installed."""


def _import_dask() -> Any:
    try:
        import dask
        import dask.dataframe
    except ImportError as exc:
        raise DaskUnavailableError(
            f"scoring with Dask needs Dask, which is not installed: {INSTALL_HINT}"
        ) from exc
    return dask


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class _ModelRef:
    """A model as it travels to the workers: a path (None: the shipped model) with the SHA-256
    of its ``model.json``, or a loaded model itself (pickled with the tasks)."""

    path: str | None
    sha256: str
    model: Model | None = None

    @classmethod
    def of(cls, model: ModelLike) -> _ModelRef:
        if model is None or isinstance(model, str | os.PathLike):
            path = None if model is None else os.fspath(model)
            load_model(path)  # checked here first: a bad file is the client's error
            return cls(path, str(read_manifest(path)["artifact_sha256"]))
        return cls(None, "", model)

    def load(self) -> Model:
        return self.model if self.model is not None else _worker_model(self.path, self.sha256)


@functools.lru_cache(maxsize=4)
def _worker_model(path: str | None, sha256: str) -> Model:
    """The model at ``path`` in this process, loaded once (per path and SHA-256).

    Raises
    ------
    ModelFileError
        If this machine's model file is not the one the client loaded.
    """
    model = load_model(path)
    found = read_manifest(path)["artifact_sha256"]
    if found != sha256:
        where = "the shipped model" if path is None else path
        raise ModelFileError(
            f"{where} on this worker is not the model the client loaded (model.json SHA-256 "
            f"{found[:12]}..., expected {sha256[:12]}...); install the same model on every "
            f"worker, or put it on a shared file system"
        )
    return model


# --------------------------------------------------------------------------- DataFrames


def _score_partition(
    part: pd.DataFrame, offset: int, ref: _ModelRef, explain: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One partition as ``predict(frame, invalid="collect")`` scores it, its rows numbered
    from ``offset + 1`` (for a frame without ``patient_id``), and its problems as the rejects
    table of ``score`` (``line``: the row's index label)."""
    clean, problems = validate(part)
    positions = np.arange(len(clean)) if problems.empty else part.index.get_indexer(clean.index)
    scored = scored_table(
        ref.load(),
        clean,
        columns=tuple(part.columns),
        row_numbers=offset + positions + 1,
        explain=explain,
    )
    return scored, problems_as_rejects(problems, part)


_SCORE_DASK_PARAMETERS: ParameterTable = {"model": MODEL_CONSTRAINTS, "explain": [BOOL]}


def score_dask(frame: Any, *, model: ModelLike = None, explain: bool = False) -> tuple[Any, Any]:
    """Score a Dask DataFrame of patients, partition by partition, lazily.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        One patient per row, as ``predict(DataFrame)`` takes them (text cells, as read from a
        CSV file, or typed values); each partition's index labels must be unique within it.
    model : Model or path, optional
        A loaded model, or a model directory / ``model.json`` that every worker can read (the
        same file: a worker whose copy differs refuses to score); default: the shipped model.
    explain : bool
        Add one ``contribution_<field>`` column per model field.

    Returns
    -------
    (scored, rejects) : two dask.dataframe.DataFrame
        Computed, ``scored`` has the rows and columns of ``predict(frame.compute(),
        invalid="collect").scored`` (the valid rows, numbered from 1 across partitions when
        there is no ``patient_id`` column), and ``rejects`` one row per problem of the others,
        in order, with the columns of ``score``'s rejects file (``line`` is the row's index
        label). Computing both together (``dask.compute(scored, rejects)``) validates each
        partition once.

    Raises
    ------
    DaskUnavailableError
        If Dask is not installed.
    ModelFileError
        If the model cannot be loaded (checked here, before any task runs).

    Examples
    --------
    >>> import dask, dask.dataframe as dd, pandas as pd
    >>> patients = pd.DataFrame({"crp_mg_l": ["0.9", "high", "4"], "route": ["iv"] * 3})
    >>> scored, rejects = score_dask(dd.from_pandas(patients, npartitions=2))
    >>> scored, rejects = dask.compute(scored, rejects, scheduler="sync")
    >>> scored["patient_id"].tolist(), rejects["reason"].tolist()
    ([1, 3], ['not_a_number'])
    """
    check("score_dask", _SCORE_DASK_PARAMETERS, locals())
    dask = _import_dask()
    import dask.dataframe as dd

    if not isinstance(frame, dd.DataFrame):
        raise BatchError(
            f"score_dask() takes a dask.dataframe.DataFrame, not {type(frame).__name__}; "
            f"for a pandas DataFrame use predict()"
        )
    ref = _ModelRef.of(model)
    meta_scored, meta_rejects = _score_partition(frame._meta, 0, ref, explain)
    parts = frame.to_delayed()
    delayed = dask.delayed
    # one node of the graph: a cluster sends it to each worker once, not with every task
    shared = delayed(ref, traverse=False)
    offset: Any = 0
    results = []
    for k, part in enumerate(parts):
        results.append(delayed(_score_partition)(part, offset, shared, explain))
        if k + 1 < len(parts):
            offset = delayed(operator.add)(offset, delayed(len)(part))
    scored = dd.from_delayed(
        [delayed(operator.getitem)(r, 0) for r in results], meta=meta_scored, verify_meta=False
    )
    rejects = dd.from_delayed(
        [delayed(operator.getitem)(r, 1) for r in results], meta=meta_rejects, verify_meta=False
    )
    return scored, rejects


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class FilesSummary:
    """What :func:`score_files_dask` did: one :class:`~predictor.io.BatchSummary` per file.

    Attributes
    ----------
    outputs : tuple of (str, str)
        Each input file and its output part, in input order.
    summaries : tuple
        Each file's ``BatchSummary``.
    """

    outputs: tuple[tuple[str, str], ...]
    summaries: tuple[Any, ...] = field(default=())

    @property
    def rows_scored(self) -> int:
        return sum(s.rows_scored for s in self.summaries)

    @property
    def rows_rejected(self) -> int:
        return sum(s.rows_rejected for s in self.summaries)

    @property
    def problems(self) -> int:
        return sum(s.problems for s in self.summaries)


def _inputs(patterns: Sequence[str]) -> list[Path]:
    """The input files a list of paths and glob patterns names, sorted and each once."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise BatchError(f"no file matches {pattern!r}")
        for match in matches:
            path = Path(match)
            if not path.is_file():
                raise BatchError(f"{match} is not a file")
            found.setdefault(os.path.realpath(path), path)
    return list(found.values())


def _parts(inputs: list[Path], folder: Path, what: str) -> list[Path]:
    """One output part per input, named as the input, in ``folder``; refused if two inputs
    have the same name or if ``folder`` holds an input (an input is never overwritten)."""
    names = [path.name for path in inputs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BatchError(
            f"several input files are named {', '.join(twice)}: their {what} parts would have "
            f"the same name in {folder}; score them in separate runs"
        )
    base = os.path.realpath(folder)
    for path in inputs:
        if os.path.commonpath([os.path.realpath(path), base]) == base:
            raise BatchError(
                f"the {what} folder {folder} holds the input {path}; inputs are never "
                f"overwritten: choose a folder outside the inputs'"
            )
    return [folder / name for name in names]


def _score_file(
    source: str, out: str, rejects: str | None, ref: _ModelRef, options: dict[str, Any]
) -> Any:
    """One file scored on a worker (one process: the cluster is the parallelism), the memory
    it frees kept for its next chunk while it runs (:func:`freed_memory_kept`)."""
    with freed_memory_kept():
        return score_csv(source, out, rejects=rejects, model=ref.load(), workers=1, **options)


def score_files_dask(
    patterns: Sequence[str],
    out: str | os.PathLike[str],
    *,
    rejects: str | os.PathLike[str] | None = None,
    model: ModelLike = None,
    scheduler: str | None = None,
    workers: int | None = None,
    **options: Any,
) -> FilesSummary:
    """Score many CSV files on a Dask cluster: one task per file, each writing its output part
    ``OUT/<input name>`` (and rejects part ``REJECTS/<input name>``) as ``score`` would.

    Parameters
    ----------
    patterns : sequence of str
        Input files and glob patterns (``"exports/*.csv"``).
    out : path
        Folder for the output parts (created); it may not hold an input.
    rejects : path, optional
        Folder for the rejects parts (created).
    model : Model or path, optional
        As for :func:`score_dask`.
    scheduler : str, optional
        A Dask scheduler's address (``tcp://host:8786``); default: a local cluster of
        ``workers`` processes (default: one per usable core), started and stopped here.
    **options
        ``explain``, ``separator``, ``decimal``, ``encoding``, ``chunk_rows``,
        ``strict_columns``, ``escape``: as for :func:`predictor.io.score_csv`.

    Returns
    -------
    FilesSummary

    Raises
    ------
    BatchError
        If no file matches, two inputs share a name, a folder holds an input, or a file cannot
        be scored (the first such file's error, naming it; the parts of the files already
        scored are complete and kept).
    DaskUnavailableError
        If Dask or ``distributed`` is not installed.
    """
    try:  # (not dask.dataframe, which _import_dask takes 0.4 s to import: files need none)
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise DaskUnavailableError(
            f"the Dask engine needs Dask and its distributed scheduler: {INSTALL_HINT}"
        ) from exc
    from predictor.io import usable_cores

    inputs = _inputs(patterns)
    out_parts = _parts(inputs, Path(out), "output")
    reject_parts: list[Path | None] = (
        list(_parts(inputs, Path(rejects), "rejects"))
        if rejects is not None
        else [None] * len(inputs)
    )
    ref = _ModelRef.of(model)
    for folder in (out, rejects):
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=usable_cores() if workers is None else workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        cluster, client = None, Client(scheduler)
    try:
        futures = [
            client.submit(
                _score_file,
                str(source),
                str(part),
                None if reject is None else str(reject),
                ref,
                options,
                key=f"score-{k}-{source.name}",
                pure=False,
            )
            for k, (source, part, reject) in enumerate(
                zip(inputs, out_parts, reject_parts, strict=True)
            )
        ]
        summaries = []
        for source, future in zip(inputs, futures, strict=True):
            try:
                summaries.append(future.result())
            except BatchError as exc:
                raise BatchError(f"{source}: {exc}") from exc
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return FilesSummary(
        tuple((str(s), str(p)) for s, p in zip(inputs, out_parts, strict=True)), tuple(summaries)
    )
