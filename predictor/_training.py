"""Training: a cohort -> fit -> evaluation on data the model never saw -> model files and card.

``python train.py`` runs :func:`train` on the default simulated cohort; ``--data`` trains on a
group's own cohort instead. The model is fitted on every usable row. Internal validation is
5-fold cross-validation (each patient predicted by a fit that did not see them); a simulated
cohort is also validated externally, on a fresh cohort of another seed. The comparison models
(logistic regression, gradient boosting) are fitted on the same rows and fields: on a simulated
cohort once, on every row, and measured on the fresh cohort; on a user's cohort, in the same
cross-validation folds as the model. The same data and seed
give the same model and metrics (with the same library versions, the same files byte for byte;
on another CPU the last digits of a float may differ: BLAS kernels). Besides the model files it
writes the evaluation report (:mod:`predictor.evaluation`: on the fresh cohort when there is
one, else on the out-of-fold predictions), whose key numbers the model card repeats. The
files appear together, as one set, or not at all (:func:`predictor._atomic.atomic_directory`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from data_schemas import PredictorError, match_columns, summary_lines, validate
from predictor._atomic import atomic_directory
from predictor._params import (
    BOOL,
    CALLABLE,
    INF,
    NONE,
    PATH,
    SEED,
    TEXT,
    InstanceOf,
    Interval,
    NonEmptySequenceOf,
    Options,
    ParameterTable,
    Where,
    check,
)
from predictor._processes import can_fork, forked_pool, signals_held, usable_cores, with_inherited
from predictor.model import (
    ARTIFACT_NAME,
    CV_FOLDS,
    MANIFEST_NAME,
    MODEL_FIELDS,
    Model,
    ModelFileError,
    ModelFiles,
    fit_additive_model,
    patient_groups,
    read_manifest,
    save_model,
)
from predictor.simulation import simulate_cohort

if TYPE_CHECKING:
    from predictor.evaluation import CrossValidation, Report

DEFAULT_TRAINING_N = 50_000
"""Patients in the default simulated training cohort."""
EVALUATION_N = 20_000
"""Patients in the fresh simulated cohort the model is evaluated on."""
MIN_PER_OUTCOME = 10
"""Responders and non-responders each needed to train or evaluate: with fewer, a fit or an
AUC is possible in principle but every figure is noise. The only floor on a cohort's size
(whether a cohort is large enough for the model's number of parameters is another check)."""
BOOTSTRAP_BELOW = 1_000
"""Cohorts of fewer patients get Harrell's bootstrap optimism correction besides
cross-validation (:func:`train`): below this size a fold of 5-fold cross-validation has under
200 patients and its figures are noisy; the bootstrap's 200 refits take about 0.1 s each at a
few hundred patients (``bench/bench_bootstrap.py``)."""
BOOTSTRAP_REPEATS = 200
"""Resamples of the bootstrap optimism correction, as Harrell recommends (150-200)."""
MIN_SIMULATED_N = 10 * MIN_PER_OUTCOME
"""The smallest simulated training cohort (``train --n``): at the simulator's response rate,
several times :data:`MIN_PER_OUTCOME` of each outcome."""
LIBRARIES = ("numpy", "pandas", "scipy", "scikit-learn")
CARD_NAME = "MODEL_CARD.md"
MODEL_FOLDER_ENTRIES = (
    ARTIFACT_NAME,
    MANIFEST_NAME,
    CARD_NAME,
    "report.md",
    "metrics.json",
    "figures",
)
"""What training writes into its folder (``predictor.evaluation`` names the last three; a
test checks that they agree). A folder holding one of these is a model (or report) folder."""


class TrainingDataError(PredictorError, ValueError):
    """Training data that cannot be used: no outcome, a bad outcome, or too few rows."""


_FIELD_NAMES = NonEmptySequenceOf(Options(*MODEL_FIELDS))
_TRAIN_PARAMETERS: ParameterTable = {
    "clean": [InstanceOf(pd.DataFrame, "a DataFrame")],
    "seed": [SEED],
    "out": [PATH],
    "source": [TEXT],
    "simulated": [BOOL],
    "n_refused": [Interval(int, 0, INF, closed="left")],
    "bootstrap": [NONE, Interval(int, 0, 10_000, closed="both")],
    "fields": [
        NONE,
        Where(
            lambda value: _FIELD_NAMES.accepts(value) and len(set(value)) == len(value),
            "a non-empty list or tuple of the schema's predictor fields, each once ("
            + ", ".join(MODEL_FIELDS)
            + ")",
        ),
    ],
    "progress": [CALLABLE],
}


def evaluation_seed(seed: int) -> int:
    """Seed of the fresh evaluation cohort: never the training seed."""
    return seed + 1


def training_rows(
    frame: pd.DataFrame, *, purpose: str = "train", decimal: str = "."
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a user's cohort for training: the clean rows and the problems table.

    Rows that break the schema are left out (and listed in the problems); ``responded`` must be
    present and 0/1 (yes/no, true/false) on every row kept. The evaluation report checks its
    data the same way, with ``purpose="evaluate"`` for the messages.

    Parameters
    ----------
    frame : pandas.DataFrame
        The cohort's cells (text or values); an index named ``"line"`` (as the CSV reader
        gives) makes messages name file lines.
    purpose : str
        ``"train"`` or ``"evaluate"``, for the messages.
    decimal : str
        The decimal mark of numbers given as text, ``"."`` or ``","``.

    Raises
    ------
    SchemaError
        If the columns themselves are unusable.
    TrainingDataError
        If ``responded`` is missing or has missing values, or fewer than
        :data:`MIN_PER_OUTCOME` responders or non-responders remain (:func:`check_outcomes`).
    """
    clean, problems = validate(frame, decimal=decimal)
    given = {source.field.name for source in match_columns(tuple(frame.columns)).sources}
    if "responded" not in given:
        raise TrainingDataError(
            f"the data has no `responded` column: to {purpose}, the outcome is needed, 1 "
            "(responded: at least 50% MADRS reduction) or 0, for every patient"
        )
    if clean.empty and len(frame):
        place = "line" if frame.index.name == "line" else "row"  # read from a file: its lines
        first = "; ".join(summary_lines(problems, 3, place=place))
        raise TrainingDataError(
            f"no usable row: all {len(frame):,} rows break the schema "
            f"({len(problems):,} problems; first: {first})"
        )
    unknown = clean["responded"].isna()
    if unknown.all() and len(clean):
        raise TrainingDataError(
            f"the `responded` column is empty on every row: to {purpose}, the outcome is "
            "needed, 1 (responded: at least 50% MADRS reduction) or 0, for every patient"
        )
    if unknown.any():
        rows = ", ".join(str(r) for r in clean.index[unknown][:5])
        raise TrainingDataError(
            f"`responded` is empty on {unknown.sum():,} rows (first: {rows}); give 1 or 0 for "
            f"every patient, or remove the rows without an outcome"
        )
    check_outcomes(clean["responded"], purpose=purpose, n_refused=len(frame) - len(clean))
    return clean, problems


def check_outcomes(responded: pd.Series, *, purpose: str, n_refused: int = 0) -> None:
    """Refuse a cohort with fewer than :data:`MIN_PER_OUTCOME` responders or non-responders.

    Parameters
    ----------
    responded : pandas.Series
        The 0/1 outcome of every usable row.
    purpose : str
        ``"train"`` or ``"evaluate"``, for the message.
    n_refused : int
        Rows left out for schema problems, for the message.

    Raises
    ------
    TrainingDataError
        Naming the counts and the rule.
    """
    responders = int((responded == 1).sum())
    non_responders = int((responded == 0).sum())
    if min(responders, non_responders) < MIN_PER_OUTCOME:
        refused = f" ({n_refused:,} refused)" if n_refused else ""
        raise TrainingDataError(
            f"too few of an outcome to {purpose}: {len(responded):,} usable rows{refused}, "
            f"{responders:,} responders and {non_responders:,} non-responders; at least "
            f"{MIN_PER_OUTCOME} of each outcome are needed"
        )


def missing_shares(clean: pd.DataFrame, fields: Sequence[str]) -> dict[str, float]:
    """The share of rows without a value, for each of ``fields`` (rounded to 4 decimals)."""
    return {name: round(float(clean[name].isna().mean()), 4) for name in fields}


def training_data_record(
    clean: pd.DataFrame,
    *,
    source: str,
    seed: int,
    n_refused: int,
    simulated: bool,
    model: Model,
    sha256: str | None = None,
) -> dict[str, Any]:
    """The manifest's ``training_data``: where the patients came from, their sha256 (given,
    when it was computed already: :func:`fingerprint`; and in any order,
    :func:`rows_fingerprint`), how many (and how many records were
    refused), the response rate, and each model field's share of missing values. Training and
    updating both write it."""
    return {
        "source": one_line(source),
        "sha256": fingerprint(clean) if sha256 is None else sha256,
        "rows_sha256": rows_fingerprint(clean, model.fields),
        "seed": seed,
        "n": len(clean),
        "n_refused": n_refused,
        "response_rate": float(np.mean(clean["responded"].to_numpy())),
        "simulated": simulated,
        "missing": missing_shares(clean, model.fields),
    }


def repeated_patients(
    clean: pd.DataFrame, warn: Callable[[str], None], *, bootstrap: bool = True
) -> tuple[np.ndarray | None, int]:
    """The rows' patient groups (:func:`~predictor.model.patient_groups`: None when no
    ``patient_id`` repeats) and how many rows share their ``patient_id`` with another, which
    ``warn`` is told of (with their first lines) when there are any, as it is of a
    ``patient_id`` on too many rows to be one patient's (a placeholder): what ``train`` and
    ``update`` keep together in their folds (and train's bootstrap in its resamples)."""
    from predictor.evaluation import repeated_patients_text
    from predictor.model._additive import MAX_ROWS_PER_PATIENT, placeholder_rows

    placeholder = placeholder_rows(clean)
    if placeholder.any():
        lines = clean.index[placeholder].tolist()
        shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
        warn(
            f"warning: {len(lines):,} rows (lines {shown}) have a patient_id that more than "
            f"{MAX_ROWS_PER_PATIENT} rows share: not one patient's but a placeholder (such as "
            "REDACTED), so each of those rows counts as a patient of its own"
        )
    groups = patient_groups(clean)
    if groups is None:
        return None, 0
    shared = np.bincount(groups)[groups] > 1
    repeated = int(shared.sum())
    warn(
        "warning: "
        + repeated_patients_text(repeated, clean.index[shared].tolist(), bootstrap=bootstrap)
    )
    return groups, repeated


def one_line(text: str, limit: int = 500) -> str:
    r"""``text`` as one printable line for a manifest, card and report (a file's name may hold a
    tab, a newline or, from bytes that are not UTF-8, a lone surrogate): each other character
    as its escape, cut to ``limit`` characters.

    >>> one_line("cohort\tv2.csv (a user-supplied cohort)")
    'cohort\\tv2.csv (a user-supplied cohort)'
    """
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def fingerprint(clean: pd.DataFrame) -> str:
    """sha256 of the clean training data, as canonical CSV text."""
    return hashlib.sha256(clean.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


def rows_fingerprint(clean: pd.DataFrame, fields: Sequence[str]) -> str:
    """sha256 of the rows' ``fields`` and outcome, whatever their order and whatever other
    columns the data have: the sorted hashes of the rows, each from its values (numbers as
    floats, categories as text), so that ``evaluate`` knows a model's own training patients
    when a file lists them in another order or without a column the model does not use."""
    canonical = pd.DataFrame(
        {
            name: clean[name].astype("string").fillna("\x00")
            if isinstance(clean[name].dtype, pd.CategoricalDtype) or clean[name].dtype == object
            else clean[name].to_numpy(dtype=np.float64)
            for name in (*fields, "responded")
        }
    )
    hashes = np.sort(pd.util.hash_pandas_object(canonical, index=False).to_numpy())
    return hashlib.sha256(hashes.tobytes()).hexdigest()


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train` produced."""

    model: Model
    manifest: dict[str, Any]
    files: ModelFiles


def _cross_validated_metrics(
    model: Model, clean: pd.DataFrame, validation: CrossValidation
) -> dict[str, dict[str, float | None]]:
    """Metrics of the pooled out-of-fold predictions of the model and the comparison models:
    internal validation."""
    from predictor.evaluation import metrics

    y = clean["responded"].to_numpy()
    truth_column = clean["true_probability"]
    truth = truth_column.to_numpy() if truth_column.notna().all() else None
    name = model.summary().name
    scores = validation.scores
    return {
        key: metrics(
            y,
            p,
            true_probability=truth,
            interval=(scores.low, scores.high) if key == name else None,
        ).to_dict()
        for key, p in validation.probability.items()
    }


@dataclass(frozen=True)
class _ExternalComparisons:
    """The fresh cohort, and the comparison models fitted on every training row: their
    probabilities and metrics on it."""

    fresh: pd.DataFrame
    probability: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float | None]]


def _beside_the_fit(
    clean: pd.DataFrame, seed: int, fields: tuple[str, ...], *, simulated: bool
) -> _ExternalComparisons | None:
    """What :func:`train` does while the model is fitted (in another process): the external
    comparisons (:func:`_external_comparisons`) of a simulated cohort, then the import of the
    figures' code (matplotlib: about 0.4 s, otherwise paid when the report is written)."""
    from predictor.evaluation import figures_module

    compared = _external_comparisons(clean, seed, fields) if simulated else None
    figures_module()
    return compared


def _external_comparisons(
    clean: pd.DataFrame, seed: int, fields: tuple[str, ...]
) -> _ExternalComparisons:
    """Simulate the fresh cohort (seed :func:`evaluation_seed`) and measure on it the
    comparison models, fitted on the same rows and ``fields`` as the model: their part of
    the external validation. Nothing here needs the additive model, so :func:`train` runs it
    beside the model's fit.

    The comparison models are fitted on one thread (OpenMP and BLAS), as in cross-validation:
    gradient boosting's OpenMP threads made its fit on 50,000 patients 3 times slower on a
    quiet 2-core machine (1.4 s against 0.5 s of CPU) and up to 16 times on a busy one, for
    the same model (and one thread gives the same histogram sums on every machine)."""
    from threadpoolctl import threadpool_limits

    from predictor.evaluation import COMPARISONS, metrics

    fresh = simulate_cohort(EVALUATION_N, seed=evaluation_seed(seed))
    y = clean["responded"].to_numpy()
    truth = fresh["true_probability"]
    probabilities, results = {}, {}
    for comparison in COMPARISONS:
        with threadpool_limits(1):
            estimator = comparison.fit(clean, y, seed=seed, fields=fields)
            probability = comparison.probability(estimator, fresh)
        probabilities[comparison.name] = probability
        results[comparison.name] = metrics(
            fresh["responded"].to_numpy(),
            probability,
            true_probability=truth.to_numpy() if truth.notna().all() else None,
        ).to_dict()
    return _ExternalComparisons(fresh, probabilities, results)


def check_destination(out: str | os.PathLike[str]) -> None:
    """Refuse a training destination whose files would be lost: do this before the work.

    Training replaces its folder as a whole (:func:`predictor._atomic.atomic_directory`). A
    folder that does not exist, is empty, or is a model folder (it holds a file training
    writes: :data:`MODEL_FOLDER_ENTRIES`) may be replaced; a model folder's other files are
    kept, carried into the new folder. Any other folder with something in it (``--out .`` or
    ``--out ~`` typed by mistake) is refused, as is a path that is not a folder, one inside a
    file (``data.csv/model``) or a symbolic link that leads nowhere, and one whose folder (the
    nearest that exists, where the new folder is made) cannot be written.

    Raises
    ------
    OSError
        ``ENOTDIR``, ``ENOTEMPTY`` or ``EACCES``, with a message saying what to do.
    """
    where = Path(os.path.realpath(out))
    # The new folder is made beside the destination, in the nearest folder that exists.
    existing = next(path for path in (where, *where.parents) if path.exists())
    for path in (where, *where.parents):
        if path == existing:
            break
        if os.path.lexists(path):  # it is there but leads nowhere
            raise NotADirectoryError(
                errno.ENOTDIR, f"{path} is a symbolic link that leads nowhere: give a folder"
            )
    folder = existing if existing != where else where.parent
    if not folder.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"{folder} is a file, not a folder: give a folder's path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            errno.EACCES, f"the folder {folder} cannot be written: give another --out"
        )
    if not where.exists():
        return
    if not where.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder: give a folder")
    with os.scandir(where) as entries:
        names = sorted(entry.name for entry in entries)
    if names and not set(names) & set(MODEL_FOLDER_ENTRIES):
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3:,} more" if len(names) > 3 else "")
        raise OSError(
            errno.ENOTEMPTY,
            f"it is a folder with other files ({shown}) and no model; a model folder is replaced "
            "as a whole: give a new or empty folder, or a model folder",
        )


def sample_size_check(clean: pd.DataFrame, fields: Sequence[str] | None) -> dict[str, Any]:
    """Riley et al.'s (2020) minimum sample size for a model of ``fields`` on this cohort, for
    the manifest and the training log (:func:`predictor.evaluation.minimum_sample_size`).

    Two counts of the model's parameters bracket the answer: every candidate coefficient (the
    design's columns, as Riley et al. count them: conservative for a penalised fit, which
    spends fewer), and the effective degrees of freedom the penalised fit of the shipped model
    spent on its cohort of 50,000 (closer to what a penalised fit of a smaller cohort spends,
    but not a bound: a smaller cohort's fit chooses its own). The anticipated R-squared is
    the shipped model's Nagelkerke R-squared on a fresh simulated cohort (its external
    validation), or Riley et al.'s conservative 0.15 when the shipped model's manifest does not
    give it.

    Returns
    -------
    dict
        ``outcome_rate``, ``r2_nagelkerke``, ``r2_source``, ``criteria`` (one entry per count
        of parameters: ``what``, ``parameters`` and the :class:`SampleSize` numbers),
        ``verdict`` (a sentence) and ``enough`` (whether the cohort reaches the smaller size).
    """
    from predictor.evaluation import max_cox_snell_r2, minimum_sample_size
    from predictor.model import FeatureMap

    rate = float(clean["responded"].mean())
    features = FeatureMap.fit(clean, fields=fields)
    unseen = sum(len(term.unseen_levels) for term in features.terms)
    candidate = len(features.columns) - unseen
    r2, r2_source, effective = None, "Riley et al.'s conservative default", None
    try:
        shipped = read_manifest(None)
        external = shipped["metrics"]["fresh cohort"]["additive model"]
        phi, loss = float(external["response_rate"]), float(external["log_loss"])
        # Cox-Snell 1 - exp(2 (lnL_null - lnL) / n), with exp(2 lnL_null / n) = 1 - its max
        largest = max_cox_snell_r2(phi)
        r2 = (1.0 - (1.0 - largest) * np.exp(2.0 * loss)) / largest  # Nagelkerke
        r2_source = (
            f"the shipped model's external validation, on {external['n']:,} simulated patients: "
            "an anticipation from the demonstration model, since this cohort's own is not known "
            "before a fit"
        )
        effective = 1.0 + sum(b["edf"] for b in shipped["model"]["smoothing"].values())
    except (ModelFileError, KeyError, TypeError, ValueError):
        pass  # no shipped manifest to anticipate from: the default R2 and one count
    r2 = float(r2) if r2 is not None and 0.0 < r2 < 1.0 else None
    counts = [
        (
            f"candidate coefficients (the design's columns, with {len(features.terms)} terms)",
            float(candidate),
        )
    ]
    if effective is not None:
        counts.append(("effective parameters of the shipped model's penalised fit", effective))
    criteria: list[dict[str, Any]] = []
    for what, parameters in counts:
        size = minimum_sample_size(
            outcome_rate=rate, parameters=parameters, r2_nagelkerke=r2, r2_source=r2_source
        )
        criteria.append(
            {
                "what": what,
                "parameters": round(parameters, 1),
                "n": size.n,
                "events": round(size.events, 1),
                "n_shrinkage": size.n_shrinkage,
                "n_optimism": size.n_optimism,
                "n_outcome_rate": size.n_outcome_rate,
            }
        )
    needs = [int(c["n"]) for c in criteria]
    smallest, largest = min(needs), max(needs)
    n = len(clean)
    if n >= largest:
        verdict = "enough by every count of the model's parameters."
    elif n >= smallest:
        verdict = (
            f"enough by the shipped fit's effective parameters ({smallest:,}), not by every "
            f"candidate coefficient ({largest:,}): the penalised fit should hold, and the "
            "validation says by how much it is optimistic."
        )
    else:
        verdict = (
            f"fewer than the {smallest:,} that even the smaller count asks for: a model fitted "
            "from scratch on this cohort is likely to be overfitted and worse than updating the "
            "shipped one (`python -m predictor update --data FILE --out DIR`: recalibration "
            "or revision, which need far fewer patients)."
        )
    return {
        "outcome_rate": round(rate, 4),
        "r2_nagelkerke": round(r2 if r2 is not None else 0.15, 4),
        "r2_source": r2_source,
        "criteria": criteria,
        "verdict": verdict,
        "enough": n >= smallest,
    }


def manifest_header() -> dict[str, Any]:
    """What every model folder's manifest begins with: the Python and library versions the
    model was fitted with."""
    return {
        "python": platform.python_version(),
        "libraries": {name: version(name) for name in LIBRARIES},
    }


def write_model_folder(
    model: Model,
    manifest: dict[str, Any],
    out: str | Path,
    report: Callable[[dict[str, Any]], Report],
    *,
    progress: Callable[[str], None],
) -> tuple[ModelFiles, dict[str, Any]]:
    """Write a model folder: ``model.json``, ``manifest.json``, the evaluation report and the
    model card, as one set.

    Every file is written into a hidden staging folder beside ``out``, which replaces ``out``
    in one step once all are complete and synced (:func:`predictor._atomic.atomic_directory`):
    an error, Ctrl-C or a killed process leaves ``out`` as it was. Training and updating both
    write their folders with it.

    Parameters
    ----------
    model : Model
        The model to save.
    manifest : dict
        Its manifest (what :func:`predictor.model.save_model` completes and writes).
    out : path
        The folder (checked beforehand with :func:`check_destination`).
    report : callable
        Builds the evaluation report from the manifest as written.
    progress : callable
        Receives a line before and after.

    Returns
    -------
    (ModelFiles, dict)
        Where the model files are, and the manifest as written.
    """
    from predictor.evaluation import model_card, write_report

    progress("writing the model files, the evaluation report and its figures")
    with atomic_directory(out, owned=MODEL_FOLDER_ENTRIES) as staging:
        manifest = read_manifest(save_model(model, staging, manifest).artifact)
        built = report(manifest)
        written = write_report(built, staging)
        card = model_card(model, manifest, report=built, figures=written.figures)
        (staging / CARD_NAME).write_text(card, encoding="utf-8", newline="")  # synced later
    files = ModelFiles.at(Path(out) / ARTIFACT_NAME)
    progress(
        f"wrote {files.artifact.parent}: {ARTIFACT_NAME}, {MANIFEST_NAME}, {CARD_NAME} and the "
        f"evaluation report ({written.report.name}, "
        f"{written.metrics.name}"
        + (f" and {len(written.figures)} figures)" if written.figures is not None else ")")
        + (" (no figures: matplotlib is not installed)" if written.figures is None else "")
    )
    return files, manifest


def train(
    clean: pd.DataFrame,
    *,
    seed: int,
    out: str | Path,
    source: str,
    simulated: bool,
    n_refused: int = 0,
    fields: Sequence[str] | None = None,
    bootstrap: int | None = None,
    progress: Callable[[str], None] = print,
) -> TrainingResult:
    """Fit the additive model, evaluate it on data it never saw, and write the model files.

    Every file is written into a hidden staging folder beside ``out``, which replaces ``out``
    in one step once all are complete and synced (:func:`predictor._atomic.atomic_directory`):
    an error, Ctrl-C or a killed process leaves ``out`` as it was, and a killed run's staging
    folder is removed by the next run into the same ``out``.

    Parameters
    ----------
    clean : pandas.DataFrame
        Training cohort as :func:`training_rows` (or ``simulate_cohort``) returns it.
    seed : int
        Seed of the cross-validation folds and the comparison models.
    out : path
        Folder for ``model.json``, ``manifest.json``, ``MODEL_CARD.md`` and the evaluation
        report (``report.md``, ``metrics.json``, ``figures/``): a new
        folder, an empty one, or a model folder, which is replaced (files in it that training
        does not write are kept). Any other folder with files in it is refused before the
        work (:func:`check_destination`).
    source : str
        Where the data came from, for the manifest and model card.
    simulated : bool
        Whether the cohort was simulated: then the model is also evaluated on a fresh simulated
        cohort (seed ``seed + 1``), and the comparison models are measured there (fitted once
        on every row) instead of cross-validated.
    n_refused : int
        Rows of the user's file left out for schema problems (recorded in the manifest).
    fields : sequence of str, optional
        The model's predictors: predictor fields of the schema, each once (default: every
        one, :data:`~predictor.model.MODEL_FIELDS`). Cross-validation and the comparison
        models use the same fields; the manifest and card name the fields left out.
    bootstrap : int, optional
        Resamples of Harrell's bootstrap optimism correction (``predictor.evaluation.
        bootstrap_validation``: the report then has its section and the instability figure);
        0 for none. None (the default): :data:`BOOTSTRAP_REPEATS` for a cohort of fewer than
        :data:`BOOTSTRAP_BELOW` patients, where cross-validation's folds are small and its
        figures noisy, none for a larger one.
    progress : callable
        Receives one line per stage.

    Raises
    ------
    TrainingDataError
        If the model cannot be fitted on this data, or it has fewer than
        :data:`MIN_PER_OUTCOME` of an outcome.
    OSError
        If ``out`` is refused (:func:`check_destination`) or the files cannot be written.
    InvalidParameterError
        If a parameter has a value it does not accept (before any work).
    """
    check("train", _TRAIN_PARAMETERS, locals())
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()

    def stage(text: str) -> None:
        progress(f"[{time.perf_counter() - started:6.1f} s] {text}")

    check_destination(out)
    check_outcomes(clean["responded"], purpose="train", n_refused=n_refused)
    y = clean["responded"].to_numpy()
    sample_size = None if simulated else sample_size_check(clean, fields)
    if sample_size is not None:
        stage(
            "sample size (Riley et al. 2020; anticipated Nagelkerke R2 "
            f"{sample_size['r2_nagelkerke']:.3f}): "
            + "; ".join(
                f"{c['n']:,} patients for {c['parameters']:g} {c['what'].split(' (')[0]}"
                for c in sample_size["criteria"]
            )
            + f". This cohort has {len(clean):,}: {sample_size['verdict']}"
        )
    left_out = [name for name in MODEL_FIELDS if fields is not None and name not in fields]
    stage(
        f"fitting the additive model on all {len(clean):,} patients (smoothing chosen by "
        "marginal likelihood)" + (f"; fields left out: {', '.join(left_out)}" if left_out else "")
    )
    # The fresh cohort and the comparison models' fits on it need nothing from the additive
    # model: they take this core while the model's fit takes the other, in a process forked
    # from this one (on a second thread where it cannot fork: on threads of one process, the
    # two took 3.2 s on 2 cores, against 1.75 s and 1.9 s alone, each waiting for the GIL
    # the other held), and then matplotlib is imported. BLAS is held at one thread for both,
    # so that neither's limits can change the other's arithmetic.
    comparison_fields = MODEL_FIELDS if fields is None else tuple(fields)
    forking = usable_cores() > 1 and can_fork()
    with (
        threadpool_limits(1, user_api="blas"),
        forked_pool(1, inherited=(clean,)) if forking else ThreadPoolExecutor(1) as elsewhere,
    ):

        def beside(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
            """``function(clean, *args, **kwargs)`` in the forked process or on the thread."""
            if forking:
                return elsewhere.submit(with_inherited, function, *args, **kwargs)
            return elsewhere.submit(function, clean, *args, **kwargs)

        with signals_held():  # the first submit forks the process, if it is one
            fitting = beside(fit_additive_model, y, fields=fields)
            # then the manifest's sha256 of the cohort (0.5 s: the CSV text of every row)
            fingerprinting = beside(fingerprint)
        compared = _beside_the_fit(clean, seed, comparison_fields, simulated=simulated)
        try:
            model, fit = fitting.result()
        except ValueError as exc:
            raise TrainingDataError(f"the model cannot be fitted on this data: {exc}") from exc
        sha256 = fingerprinting.result()
    assert model.fields == comparison_fields  # what the comparison models were fitted on
    # Imported here, not at the top: they pull in scikit-learn and matplotlib, which the
    # command line's other commands (``score`` above all) need not pay for at start-up; and
    # after the fit, by when the work beside it has imported them (about 0.5 s).
    from predictor.evaluation import (
        COMPARISONS,
        FLAT_SD,
        bootstrap_validation,
        build_report,
        cross_validate,
        evaluate_model,
        flat_model_text,
        training_distribution,
    )
    from predictor.evaluation._metrics import finite_or_none

    unused = {term.field: term.unused for term in model.features.terms if term.unused}
    for field, why in unused.items():
        stage(f"warning: {field} is not used by the model: {why}")
    summary = model.summary()
    shrunk = model.shrunk_fields
    stage(
        f"fitted: {summary.coefficients} coefficients, {sum(fit.edf):.1f} effective degrees of "
        f"freedom, {fit.iterations} iterations"
        + (f"; shrunk to zero (no support in the data): {', '.join(shrunk)}" if shrunk else "")
    )
    fitted = model.score(model.features.encode(clean, sparse=True).design).probability
    spread, mean = float(np.std(fitted)), float(np.mean(fitted))
    if spread < FLAT_SD:
        stage(f"warning: {flat_model_text(len(clean), spread, mean)}")
    if fit.structure_log_loss is not None:
        losses = fit.structure_log_loss
        stage(
            f"smoothing parameters {fit.structure}: 5-fold cross-validated log-loss "
            + ", ".join(f"{name} {loss:.4f}" for name, loss in losses.items())
            + (
                " (a cohort this small does not support one per term)"
                if fit.structure != "per term"
                else ""
            )
        )
    if not fit.converged:
        stage(
            f"warning: the fit did not converge in {fit.iterations} iterations; the model is "
            "the last iterate"
        )
    # The comparison models are validated on the fresh cohort when there is one (fitted once
    # on every training row, as the model is): cross-validating them as well cost more than
    # the model's own cross-validation (10 fits, 2.6 s of CPU on the default cohort) for
    # figures the fresh cohort gives without the folds' optimism. On a user's cohort, the folds
    # are their only honest comparison.
    cross_validated = () if simulated else COMPARISONS
    groups, repeated = repeated_patients(clean, stage)
    validation = cross_validate(
        clean,
        model=model,
        seed=seed,
        comparisons=cross_validated,
        groups=groups,
        progress=lambda done, folds: stage(
            f"cross-validation: fold {done} of {folds} done ("
            + " and ".join([summary.name, *(c.name for c in cross_validated)])
            + ")"
        ),
    )
    evaluation = {"cross-validated": _cross_validated_metrics(model, clean, validation)}
    repeats = (
        (BOOTSTRAP_REPEATS if len(clean) < BOOTSTRAP_BELOW else 0)
        if bootstrap is None
        else bootstrap
    )
    optimism = None
    if repeats:
        structure = fit.structure

        def refit(rows: pd.DataFrame, y_rows: np.ndarray) -> Callable[[pd.DataFrame], np.ndarray]:
            again, _ = fit_additive_model(rows, y_rows, structure=structure, fields=model.fields)
            return lambda frame: again.score(again.features.design(frame)).probability

        step = max(1, repeats // 10)
        optimism = bootstrap_validation(
            clean,
            y,
            refit=refit,
            final=fitted,
            repeats=repeats,
            seed=seed,
            threshold=model.threshold,
            groups=groups,
            progress=lambda done, total: (
                stage(f"bootstrap optimism correction: {done} of {total} refits done")
                if done % step == 0 or done == total
                else None
            ),
        )
    fresh, held_out = None, None
    if compared is not None:
        fresh, held_out = compared.fresh, compared.probability
        evaluation["fresh cohort"] = {
            summary.name: evaluate_model(model, fresh).to_dict(),
            **compared.metrics,
        }
        stage(
            f"evaluated on a fresh simulated cohort of {EVALUATION_N:,} (seed "
            f"{evaluation_seed(seed)}), with logistic regression and gradient boosting"
        )
    manifest = {
        **manifest_header(),
        "training_data": training_data_record(
            clean,
            source=source,
            seed=seed,
            n_refused=n_refused,
            simulated=simulated,
            model=model,
            sha256=sha256,
        )
        | ({"repeated_patient_rows": repeated} if repeated else {}),
        "validation": {
            "internal": f"{CV_FOLDS}-fold cross-validation (stratified"
            + (", each patient's rows in one fold" if repeated else "")
            + f", seed {seed})"
            + (
                f", and Harrell's bootstrap optimism correction ({repeats} resamples"
                + (" of patients, each with all of their rows" if repeated else "")
                + ", each refitted with the smoothing chosen again)"
                if optimism is not None
                else ""
            ),
            "external": (
                f"a fresh simulated cohort of {EVALUATION_N:,} (seed {evaluation_seed(seed)})"
                if simulated
                else None
            ),
        },
        "bootstrap": (
            {
                "repeats": optimism.repeats,
                "failed": optimism.failed,
                # None where no finite value exists (JSON has no NaN)
                "corrected": {k: finite_or_none(v.corrected) for k, v in optimism.metrics.items()},
                "apparent": {k: finite_or_none(v.apparent) for k, v in optimism.metrics.items()},
                # the metrics some refits had no value of, and how many had one
                "finite_models": {
                    k: v.models for k, v in optimism.metrics.items() if v.models is not None
                },
                "mape": optimism.mape,
                "classification_instability": optimism.classification_instability,
            }
            if optimism is not None
            else None
        ),
        "evaluation_cohort": (
            {"seed": evaluation_seed(seed), "n": EVALUATION_N} if simulated else None
        ),
        "model": {
            "kind": model.kind,
            "coefficients": summary.coefficients,
            "smoothing": {
                name: {"lambda": lam, "edf": edf}
                for name, lam, edf in zip(fit.blocks, fit.smoothing, fit.edf, strict=True)
            },
            "structure": fit.structure,
            "structure_log_loss": fit.structure_log_loss,
            "laml": fit.laml,
            "converged": fit.converged,
            "iterations": fit.iterations,
            "threshold": model.threshold,
            "fields": list(model.fields),
            "left_out_fields": left_out,
            "shrunk_fields": list(shrunk),
            "unused_fields": unused,
            # the spread of its probabilities on its own training patients (a flat model: the
            # card says so)
            "prediction_sd": spread,
            "prediction_mean": mean,
        },
        "metrics": evaluation,
        **({"sample_size": sample_size} if sample_size is not None else {}),
    }
    manifest["training_distribution"] = training_distribution(model, clean)
    comparison_source = f"the {len(clean):,} patients the model was fitted on"
    if fresh is not None:  # external validation
        data, report_source, scores = (
            fresh,
            f"a fresh simulated cohort (seed {evaluation_seed(seed)}) that no part of training "
            "saw: external validation",
            None,
        )
    else:  # internal validation: each patient predicted by a fit without them
        data, report_source, scores = (
            clean,
            f"the {len(clean):,} training patients, each predicted by a model fitted without "
            f"them ({CV_FOLDS}-fold cross-validation: internal validation)",
            validation.scores,
        )
    files, manifest = write_model_folder(
        model,
        manifest,
        out,
        lambda written: build_report(
            model,
            data,
            manifest=written,
            source=report_source,
            comparison=validation.folds if cross_validated else None,
            comparison_source=comparison_source,
            scores=scores,
            bootstrap=optimism,
            held_out=held_out,
            held_out_source=comparison_source,
        ),
        progress=stage,
    )
    return TrainingResult(model, manifest, files)
