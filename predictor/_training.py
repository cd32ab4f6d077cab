"""Training: a cohort -> fit -> evaluation on data the model never saw -> model files and card.

``python train.py`` runs :func:`train` on the default simulated cohort; ``--data`` trains on a
group's own cohort instead. The same data and seed give the same model and metrics (with the
same library versions, the same files byte for byte; on another CPU the last digits of a float
may differ: BLAS kernels). Besides the model files it writes the evaluation report on the
held-out data (:mod:`predictor.evaluation`), whose key numbers the model card repeats. The
files appear together, as one set, or not at all (:func:`predictor._atomic.atomic_directory`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_schemas import PredictorError, match_columns, summary_lines, validate
from predictor._atomic import atomic_directory
from predictor._params import (
    BOOL,
    CALLABLE,
    INF,
    PATH,
    SEED,
    TEXT,
    InstanceOf,
    Interval,
    ParameterTable,
    check,
)
from predictor.model import (
    ARTIFACT_NAME,
    MANIFEST_NAME,
    Model,
    ModelFiles,
    fit_additive_model,
    read_manifest,
    save_model,
)
from predictor.simulation import simulate_cohort

DEFAULT_TRAINING_N = 50_000
"""Patients in the default simulated training cohort."""
EVALUATION_N = 20_000
"""Patients in the fresh simulated cohort the model is evaluated on."""
HELD_OUT_SHARE = 0.2
MIN_ROWS = 200
MIN_PER_OUTCOME = 20
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


_TRAIN_PARAMETERS: ParameterTable = {
    "clean": [InstanceOf(pd.DataFrame, "a DataFrame")],
    "seed": [SEED],
    "out": [PATH],
    "source": [TEXT],
    "simulated": [BOOL],
    "n_refused": [Interval(int, 0, INF, closed="left")],
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
        If ``responded`` is missing, has missing values, or too few usable rows remain.
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
    counts = clean["responded"].value_counts()
    fewest = min(counts.get(0.0, 0), counts.get(1.0, 0))
    if len(clean) < MIN_ROWS or fewest < MIN_PER_OUTCOME:
        raise TrainingDataError(
            f"too few usable rows to {purpose}: {len(clean):,} valid ({len(frame) - len(clean):,} "
            f"refused), {counts.get(1.0, 0):,} responders and {counts.get(0.0, 0):,} "
            f"non-responders; at least {MIN_ROWS} rows and {MIN_PER_OUTCOME} of each outcome "
            f"are needed"
        )
    return clean, problems


def fingerprint(clean: pd.DataFrame) -> str:
    """sha256 of the clean training data, as canonical CSV text."""
    return hashlib.sha256(clean.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train` produced."""

    model: Model
    manifest: dict[str, Any]
    files: ModelFiles


def _evaluate_all(
    model: Model,
    fit_rows: pd.DataFrame,
    test_sets: dict[str, pd.DataFrame],
    seed: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of the model and the comparison models (fitted on the model's fields) on each
    test set."""
    from predictor.evaluation import COMPARISONS, evaluate_model, metrics

    results = {
        name: {model.summary().name: evaluate_model(model, rows).to_dict()}
        for name, rows in test_sets.items()
    }
    y = fit_rows["responded"].to_numpy()
    for comparison in COMPARISONS:
        estimator = comparison.fit(fit_rows, y, seed=seed, fields=model.fields)
        for name, rows in test_sets.items():
            truth = rows["true_probability"]
            results[name][comparison.name] = metrics(
                rows["responded"].to_numpy(),
                comparison.probability(estimator, rows),
                true_probability=truth.to_numpy() if truth.notna().all() else None,
            ).to_dict()
    return results


def check_destination(out: str | os.PathLike[str]) -> None:
    """Refuse a training destination whose files would be lost: do this before the work.

    Training replaces its folder as a whole (:func:`predictor._atomic.atomic_directory`). A
    folder that does not exist, is empty, or is a model folder (it holds a file training
    writes: :data:`MODEL_FOLDER_ENTRIES`) may be replaced; a model folder's other files are
    kept, carried into the new folder. Any other folder with something in it (``--out .`` or
    ``--out ~`` typed by mistake) is refused, as is a path that is not a folder.

    Raises
    ------
    OSError
        ``ENOTDIR`` or ``ENOTEMPTY``, with a message saying what to do.
    """
    where = Path(os.path.realpath(out))
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
            f"it is a folder with other files ({shown}) and no model; training replaces its "
            f"folder as a whole: give a new or empty folder, or a model folder",
        )


def train(
    clean: pd.DataFrame,
    *,
    seed: int,
    out: str | Path,
    source: str,
    simulated: bool,
    n_refused: int = 0,
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
        Seed of the held-out split, the cross-validation folds and the comparison models.
    out : path
        Folder for ``model.json``, ``manifest.json``, ``MODEL_CARD.md`` and the evaluation
        report on the held-out data (``report.md``, ``metrics.json``, ``figures/``): a new
        folder, an empty one, or a model folder, which is replaced (files in it that training
        does not write are kept). Any other folder with files in it is refused before the
        work (:func:`check_destination`).
    source : str
        Where the data came from, for the manifest and model card.
    simulated : bool
        Whether the cohort was simulated: then the model is also evaluated on a fresh simulated
        cohort (seed ``seed + 1``).
    n_refused : int
        Rows of the user's file left out for schema problems (recorded in the manifest).
    progress : callable
        Receives one line per stage.

    Raises
    ------
    TrainingDataError
        If the model cannot be fitted on this data.
    OSError
        If ``out`` is refused (:func:`check_destination`) or the files cannot be written.
    InvalidParameterError
        If a parameter has a value it does not accept (before any work).
    """
    check("train", _TRAIN_PARAMETERS, locals())
    # Imported here, not at the top: they pull in scikit-learn and matplotlib, which the
    # command line's other commands (``score`` above all) need not pay for at start-up.
    from sklearn.model_selection import train_test_split

    from predictor.evaluation import (
        build_report,
        cross_validate,
        model_card,
        training_distribution,
        write_report,
    )

    started = time.perf_counter()

    def stage(text: str) -> None:
        progress(f"[{time.perf_counter() - started:6.1f} s] {text}")

    check_destination(out)
    y = clean["responded"].to_numpy()
    fit_rows, held_out = train_test_split(
        clean, test_size=HELD_OUT_SHARE, random_state=seed, stratify=y
    )
    stage(f"split {len(clean):,} patients: {len(fit_rows):,} to fit, {len(held_out):,} held out")
    try:
        model, tuning = fit_additive_model(fit_rows, fit_rows["responded"].to_numpy(), seed=seed)
    except ValueError as exc:
        raise TrainingDataError(f"the model cannot be fitted on this data: {exc}") from exc
    unused = {term.field: term.unused for term in model.features.terms if term.unused}
    for field, why in unused.items():
        stage(f"warning: {field} is not used by the model: {why}")
    summary = model.summary()
    stage(
        f"fitted the additive model ({summary.coefficients} coefficients; penalty C = "
        f"{tuning.penalty_c:g} chosen by {len(tuning.penalty_grid)}-value cross-validated "
        f"log-loss)"
    )
    test_sets = {"held-out": held_out}
    if simulated:
        test_sets["fresh cohort"] = simulate_cohort(EVALUATION_N, seed=evaluation_seed(seed))
    evaluation = _evaluate_all(model, fit_rows, test_sets, seed)
    stage(
        "evaluated on "
        + " and ".join(f"{name} ({len(rows):,})" for name, rows in test_sets.items())
        + " with logistic regression and gradient boosting for comparison"
    )
    comparison = cross_validate(fit_rows, model=model, seed=seed)
    stage(
        f"cross-validated the additive model, logistic regression and gradient boosting on the "
        f"same {len(next(iter(comparison.values())))} folds of the {len(fit_rows):,} fitted rows"
    )
    manifest = {
        "python": platform.python_version(),
        "libraries": {name: version(name) for name in LIBRARIES},
        "training_data": {
            "source": source,
            "sha256": fingerprint(clean),
            "seed": seed,
            "n": len(clean),
            "n_fit": len(fit_rows),
            "n_held_out": len(held_out),
            "n_refused": n_refused,
            "response_rate": float(np.mean(y)),
        },
        "evaluation_cohort": (
            {"seed": evaluation_seed(seed), "n": EVALUATION_N} if simulated else None
        ),
        "model": {
            "kind": model.kind,
            "coefficients": summary.coefficients,
            "penalty_c": tuning.penalty_c,
            "cv_log_loss": dict(
                zip(map(str, tuning.penalty_grid), tuning.cv_log_loss, strict=True)
            ),
            "threshold": model.threshold,
            "unused_fields": unused,
        },
        "metrics": evaluation,
    }
    manifest["training_distribution"] = training_distribution(model, fit_rows)
    with atomic_directory(out, owned=MODEL_FOLDER_ENTRIES) as staging:
        manifest = read_manifest(save_model(model, staging, manifest).artifact)
        report = build_report(
            model,
            held_out,
            manifest=manifest,
            seed=seed,
            source=f"the {HELD_OUT_SHARE:.0%} of the cohort held out from fitting",
            comparison=comparison,
            comparison_source=f"the {len(fit_rows):,} patients the model was fitted on",
        )
        written = write_report(report, staging)
        card = model_card(model, manifest, report=report, figures=written.figures)
        (staging / CARD_NAME).write_text(card, encoding="utf-8", newline="")  # synced later
    files = ModelFiles.at(Path(out) / ARTIFACT_NAME)
    stage(
        f"wrote {files.artifact.parent}: {ARTIFACT_NAME}, {MANIFEST_NAME}, {CARD_NAME} and the "
        f"evaluation report on the held-out data ({written.report.name}, "
        f"{written.metrics.name}"
        + (f" and {len(written.figures)} figures)" if written.figures is not None else ")")
        + (" (no figures: matplotlib is not installed)" if written.figures is None else "")
    )
    return TrainingResult(model, manifest, files)
