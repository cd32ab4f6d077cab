"""Command line: ``python -m predictor <command>`` (also installed as ``ketamine-predictor``).

A thin layer: each sub-command parses its arguments and delegates to an importable function.
A human-readable summary goes to stderr; data goes to files or stdout.

Exit codes: 0 success; 1 the input has invalid rows (``validate``, ``score``); 2 unusable input
or arguments, with a one-line reason; 3 an internal error (a bug: one line, no traceback unless
``KETAMINE_PREDICTOR_DEBUG`` is set); 130 interrupted (Ctrl-C or SIGTERM; no output is left).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import textwrap
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import pandas as pd

from data_schemas import (
    FIELDS_BY_NAME,
    PredictorError,
    Role,
    SchemaError,
    markdown_table,
    match_columns,
    summary_lines,
)
from predictor._atomic import (
    InterruptedAfterWriting,
    atomic_text_output,
    ignore_stop_signals,
    stopping_on_signals,
)
from predictor._params import InvalidParameterError
from predictor._processes import reuse_freed_memory
from predictor._scoring import SCORE_COLUMNS
from predictor._training import (
    BOOTSTRAP_BELOW,
    BOOTSTRAP_REPEATS,
    DEFAULT_TRAINING_N,
    MIN_SIMULATED_N,
    TrainingDataError,
    fingerprint,
    rows_fingerprint,
    train,
    training_rows,
)
from predictor.io import (
    DECIMALS,
    DEFAULT_CHUNK_ROWS,
    ENCODINGS,
    MAX_WORKERS,
    REJECT_COLUMNS,
    SEPARATORS,
    BatchError,
    check_writable,
    merged_rejects,
    problems_as_rejects,
    read_labelled_csv,
    rejects_csv,
    score_csv,
    usable_cores,
    validate_csv,
    write_rejects,
)
from predictor.model import (
    MODEL_FIELDS,
    ModelFileError,
    ModelFiles,
    load_model,
    read_manifest,
)
from predictor.simulation import DEFAULT_SEED, SITES, simulate_cohort

EXIT_OK, EXIT_INVALID_ROWS, EXIT_UNUSABLE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEBUG = "KETAMINE_PREDICTOR_DEBUG"
"""Set this environment variable to see the traceback of an internal error."""


class UsageError(PredictorError):
    """Unusable input or arguments: reported in one line, exit code 2."""


def _whole_number(minimum: int, maximum: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum, {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is above the maximum, {maximum}")
        return value

    return parse


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _whole_numbers_as_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Float columns holding only whole numbers (ages, counts, 0/1 flags) as nullable integers,
    so that they are written ``45`` rather than ``45.0``."""
    whole = {}
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_float_dtype(values):
            finite = values.dropna()
            if len(finite) and (finite == finite.round()).all() and finite.abs().max() < 2**53:
                whole[name] = values.astype("Int64")
    return frame.assign(**whole)


def _write_csv(frame: pd.DataFrame, out: str) -> None:
    try:
        with atomic_text_output(out) as handle:
            _whole_numbers_as_integers(frame).to_csv(handle, index=False, lineterminator="\n")
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc


def run_simulate(args: argparse.Namespace) -> int:
    """Simulate a synthetic cohort of one site and write it as CSV."""
    started = time.perf_counter()
    cohort = simulate_cohort(args.n, seed=args.seed, site=SITES[args.site])
    _write_csv(cohort, args.out)
    _say(
        f"simulated {len(cohort):,} patients ({args.site} site, seed {args.seed}, response rate "
        f"{cohort['responded'].mean():.3f}) -> {args.out} in {time.perf_counter() - started:.2f} s"
    )
    return EXIT_OK


class _ReadingOptions(TypedDict):
    separator: str | None
    decimal: str | None
    encoding: str | None
    strict_columns: bool


def _reading(args: argparse.Namespace) -> _ReadingOptions:
    """The reader's options, as every command that reads a CSV file takes them."""
    return {
        "separator": args.sep,
        "decimal": args.decimal,
        "encoding": args.encoding,
        "strict_columns": args.strict_columns,
    }


def _say_notes(notes: Sequence[str]) -> None:
    for note in notes:
        _say(f"  {note}")


def run_validate(args: argparse.Namespace) -> int:
    """Validate a CSV file against the schema, as ``score`` reads it; optionally write the
    problems table (the rows ``score`` would reject)."""
    if args.problems and args.rejects and args.problems != args.rejects:
        raise UsageError(
            "--problems and --rejects are two names for the one problems file: give one"
        )
    problems = args.problems or args.rejects
    try:
        summary = validate_csv(
            args.input,
            problems=problems,
            chunk_rows=args.chunk_rows,
            escape=not args.no_formula_escape,
            progress=sys.stderr.isatty(),
            **_reading(args),
        )
    except BatchError as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    except OSError as exc:
        raise UsageError(f"cannot write {problems}: {exc.strerror or exc}") from exc
    records = summary.rows_scored + summary.rows_rejected
    _say(
        f"{_count(records, 'record')}: {summary.rows_scored:,} valid, "
        f"{summary.rows_rejected:,} with problems ({_count(summary.problems, 'problem')}); "
        f"read as {summary.dialect.describe()}"
    )
    _say_notes(summary.notes)
    for line in summary.first_problems[: args.show]:
        _say(f"  {line}")
    return EXIT_OK if summary.rows_rejected == 0 else EXIT_INVALID_ROWS


def _labelled_rows(
    args: argparse.Namespace,
    purpose: str,
    outputs: Sequence[tuple[str, str | None]],
    *,
    write: bool = True,
) -> tuple[pd.DataFrame, int, list[str], pd.DataFrame]:
    """A CSV file with outcomes, read as ``score`` reads it and checked by
    :func:`training_rows`: the clean rows, how many records were refused, a value-free
    summary for stderr (said by the caller when it goes on) and the rejects table.
    ``--rejects`` gets every refused record (unless not ``write``: the caller writes it with
    the files it belongs with)."""
    path = args.data
    try:
        check_writable(args.rejects)
        read = read_labelled_csv(path, outputs=outputs, **_reading(args))
        clean, problems = training_rows(read.frame, purpose=purpose, decimal=read.dialect.decimal)
    except (BatchError, SchemaError, TrainingDataError) as exc:
        message = str(exc) if str(exc).startswith(f"{path}: ") else f"{path}: {exc}"
        raise UsageError(message.replace("\n", " ")) from exc
    rejected = merged_rejects([read.rejected, problems_as_rejects(problems, read.frame)])
    if args.rejects and write:
        try:
            write_rejects(rejected, args.rejects, escape=not args.no_formula_escape)
        except OSError as exc:
            raise UsageError(f"cannot write {args.rejects}: {exc.strerror or exc}") from exc
    refused = len(read.frame) - len(clean) + len(read.rejected)
    summary = [
        f"{path}: {len(clean):,} valid records, {refused:,} refused (schema or CSV problems); "
        f"read as {read.dialect.describe()}",
        *(f"  {note}" for note in read.notes),
    ]
    summary += [f"  {line}" for line in summary_lines(rejected, 5, place="line")]
    if refused and not args.rejects:
        summary.append("  (--rejects FILE keeps every refused record with its line number)")
    return clean, refused, summary, rejected


def _refused_rows_exit(refused: int) -> int:
    """The exit code of a command that read a labelled file: 1 when some of its records were
    refused (the model or report is written from the rest, as ``score`` writes the rows it
    could score), so that an unattended run notices; else 0."""
    if refused:
        _say(
            f"exit code {EXIT_INVALID_ROWS}: {_count(refused, 'record')} of the file "
            f"{'was' if refused == 1 else 'were'} refused (see above)"
        )
        return EXIT_INVALID_ROWS
    return EXIT_OK


def _refuse_model_files(model: str | None, outputs: Sequence[tuple[str, str | None]]) -> None:
    """Refuse an output file that is the model's own ``model.json`` or ``manifest.json`` (the
    shipped model's when ``model`` is None), through any link, before anything is written."""
    clash = ModelFiles.at(model).among(outputs)
    if clash is not None:
        option, path, file = clash
        raise UsageError(
            f"{option} {path} is the model's own {file.name} (--model "
            f"{model or 'the shipped model'}); writing it would destroy the model: "
            "choose another file"
        )


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` lies inside ``folder`` (through any link)."""
    if path == "-":
        return False
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, base]) == base


def _entry(path: str) -> str:
    """The directory entry ``path`` names: its folder resolved through links, its own name not
    (``os.path.realpath``: the entry a link at ``path`` leads to)."""
    absolute = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))


def _refuse_shipped_folder(out: str, *, replaced_whole: bool = True) -> None:
    """Refuse an ``--out`` that is the shipped model's folder, lies inside it or (for a
    command that replaces ``--out`` as a whole, ``replaced_whole``) holds it: only ``python
    train.py`` (the simulated cohort) writes the shipped model.

    Raises
    ------
    UsageError
    """
    from predictor.model._artifact import PACKAGED_MODEL_DIR, SHIPPED_MODEL_DIR

    for shipped in dict.fromkeys((str(SHIPPED_MODEL_DIR), str(PACKAGED_MODEL_DIR))):
        inside, holds = _inside(out, shipped), _inside(shipped, out) and replaced_whole
        if inside or holds:
            where = "is" if inside and holds else "lies inside" if inside else "holds"
            raise UsageError(
                f"--out {out} {where} the shipped model's folder ({shipped}), which only "
                "`python train.py` (the simulated cohort) writes; choose another folder"
            )


def _field_meant(name: str) -> str | None:
    """The schema field a name not spelled as a field most likely means (an alias, another
    case, a missing unit, a near miss: :func:`data_schemas.match_columns`), if any."""
    match = match_columns((name,))
    meant = [source.field.name for source in match.sources]
    meant += [problem.field for problem in match.problems if problem.field]
    meant += [resemblance.field for resemblance in match.resembling]
    return meant[0] if meant else None


def _model_fields(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The model's predictors from ``--fields`` or ``--exclude`` (None: every predictor field),
    in the schema's order.

    Raises
    ------
    UsageError
        Both options given, a name that is not a predictor field (naming it, and the field
        it most likely means or else the valid ones), or no field left.
    """
    if args.fields is not None and args.exclude is not None:
        raise UsageError("give --fields or --exclude, not both")
    option, text = (
        ("--fields", args.fields) if args.fields is not None else ("--exclude", args.exclude)
    )
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError(f"{option} needs field names, separated by commas")
    for name in names:
        if name in MODEL_FIELDS:
            continue
        meant = _field_meant(name)
        field = FIELDS_BY_NAME.get(meant) if meant is not None else None
        if field is not None and field.role is Role.PREDICTOR:
            hint = f"did you mean {meant}? (field names as the schema spells them)"
        elif field is not None:
            what = f"{'an' if field.role.value[0] in 'aeiou' else 'a'} {field.role.value} field"
            said = "it is" if field.name == name else f"it resembles {field.name},"
            hint = f"{said} {what}, not a model input; the predictor fields are " + ", ".join(
                MODEL_FIELDS
            )
        else:
            hint = f"the predictor fields are {', '.join(MODEL_FIELDS)}"
        raise UsageError(f"{option}: {name!r} is not a predictor field of the schema; {hint}")
    chosen = set(names) if option == "--fields" else set(MODEL_FIELDS) - set(names)
    if not chosen:
        raise UsageError(
            "--exclude leaves the model no field: leave out fewer, or choose with --fields"
        )
    return tuple(name for name in MODEL_FIELDS if name in chosen)


def run_train(args: argparse.Namespace) -> int:
    """Fit the model on a cohort, evaluate it on data it never saw, write the model files."""
    fields = _model_fields(args)
    if args.data:
        if args.n is not None:
            raise UsageError("--n sets the size of a simulated cohort; it cannot go with --data")
        if args.out is None:
            raise UsageError(
                "give --out DIR: a model trained on your data is never written into the shipped "
                "model's folder (models/)"
            )
        _refuse_shipped_folder(args.out)
        for option, path in (("--data", args.data), ("--rejects", args.rejects)):
            if path and _inside(path, args.out):
                raise UsageError(
                    f"{option} {path} is inside --out {args.out}, which training replaces as a "
                    f"whole; choose another folder"
                )
        check_rejects = [("--rejects", args.rejects)]
        clean, refused, summary, _ = _labelled_rows(args, "train", check_rejects)
        _say("\n".join(summary))
        source, simulated = f"{Path(args.data).name} (a user-supplied cohort)", False
    else:
        if args.rejects or args.sep or args.decimal or args.encoding or args.strict_columns:
            raise UsageError(
                "--rejects, --sep, --decimal, --encoding and --strict-columns go with --data"
            )
        args.out = "models" if args.out is None else args.out
        n = DEFAULT_TRAINING_N if args.n is None else args.n
        _say(f"simulating the training cohort: {n:,} patients, seed {args.seed}")
        clean = simulate_cohort(n, seed=args.seed)
        refused = 0
        source = (
            "a synthetic cohort simulated from published effect sizes "
            f"(`python -m predictor simulate --n {n} --seed {args.seed}`)"
        )
        simulated = True
    try:
        result = train(
            clean,
            seed=args.seed,
            out=args.out,
            source=source,
            simulated=simulated,
            n_refused=refused,
            fields=fields,
            bootstrap=args.bootstrap,
            progress=_say,
        )
    except TrainingDataError as exc:
        raise UsageError(f"{args.data or 'the simulated cohort'}: {exc}") from exc
    except OSError as exc:
        raise UsageError(f"cannot write the model to {args.out}: {exc.strerror or exc}") from exc
    from predictor.evaluation._report import metric_text

    bootstrap = result.manifest.get("bootstrap") or {}
    if corrected := bootstrap.get("corrected"):
        fewer = "".join(
            f"; the {key.replace('_', ' ')} from {models:,} of the refits (the others had none)"
            for key, models in (bootstrap.get("finite_models") or {}).items()
        )
        _say(
            f"bootstrap optimism-corrected ({bootstrap['repeats']} "
            f"resamples): AUC {metric_text(corrected['auc'], '.3f')}, calibration slope "
            f"{metric_text(corrected['calibration_slope'], '.2f')}, Brier "
            f"{metric_text(corrected['brier'], '.4f')}{fewer}"
        )
    for name, models in result.manifest["metrics"].items():
        m = models[result.model.summary().name]
        oracle = f" (oracle {m['oracle_auc']:.3f})" if "oracle_auc" in m else ""
        _say(
            f"{name}: AUC {metric_text(m['auc'], '.3f')}{oracle}, calibration slope "
            f"{metric_text(m['calibration_slope'], '.2f')}, calibration-in-the-large "
            f"{metric_text(m['calibration_in_the_large'], '+.3f')}"
            + (
                f", interval coverage {m['interval_coverage']:.1%}"
                if "interval_coverage" in m
                else ""
            )
        )
    return _refused_rows_exit(refused)


def run_update(args: argparse.Namespace) -> int:
    """Update a model (the shipped one by default) to a site's own labelled patients."""
    from predictor._updating import update

    base_folder = str(ModelFiles.at(args.model).artifact.parent)
    _refuse_shipped_folder(args.out)
    for option, path in (("--data", args.data), ("--rejects", args.rejects)):
        if path and _inside(path, args.out):
            raise UsageError(
                f"{option} {path} is inside --out {args.out}, which the update replaces as a "
                f"whole; choose another folder"
            )
    if _inside(base_folder, args.out):
        raise UsageError(
            f"--out {args.out} holds the model to update ({base_folder}), which the update "
            "would replace: write the updated model to another folder"
        )
    _refuse_model_files(args.model, [("--rejects", args.rejects)])
    try:  # before the data: a base that cannot be updated fails fast
        base = load_model(args.model)
        base_manifest = read_manifest(args.model)
    except ModelFileError as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    if base.kind != "additive":
        raise UsageError(
            f"--model {args.model} is a {base.kind} model; update takes an additive model (a "
            "model that train wrote, or the shipped one): update its base instead"
        )
    clean, refused, summary, _ = _labelled_rows(
        args, "update a model", [("--rejects", args.rejects)]
    )
    _say("\n".join(summary))
    base_source = "the shipped model" if args.model is None else f"the model at {args.model}"
    name = "standard input" if args.data == "-" else Path(args.data).name
    try:
        result = update(
            clean,
            base=base,
            base_source=base_source,
            base_manifest=base_manifest,
            out=args.out,
            source=f"{name} (a user-supplied cohort)",
            n_refused=refused,
            progress=_say,
        )
    except TrainingDataError as exc:
        raise UsageError(f"{args.data}: {exc}") from exc
    except OSError as exc:
        raise UsageError(f"cannot write the model to {args.out}: {exc.strerror or exc}") from exc
    _say(
        f"wrote {result.files.artifact.parent}: the {result.choice.chosen}; use it with "
        f"--model {args.out}"
    )
    return _refused_rows_exit(refused)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a model on a CSV file with outcomes and write the evaluation report."""
    # Imported here: scikit-learn, which they import, costs ``score`` about 1 s of start-up.
    from predictor.evaluation import (
        FIGURES_DIR,
        METRICS_NAME,
        NO_FIGURES_NOTE,
        REPORT_NAME,
        build_report,
        cross_validate,
        write_report,
    )
    from predictor.evaluation._files import EVERY_FIGURE

    _refuse_shipped_folder(args.out, replaced_whole=False)  # it writes its files into --out
    model_folder = ModelFiles.at(args.model).artifact.parent
    if os.path.realpath(args.out) == os.path.realpath(model_folder):
        raise UsageError(
            f"--out {args.out} is the model's own folder, whose report.md and metrics.json "
            "are the model's evaluation from its training: choose another folder"
        )
    # The files the report puts in place: each path's folder resolved, its own name not
    # (a link there is replaced, not followed: write_report).
    out = Path(os.path.realpath(args.out))
    replaced = [
        out / REPORT_NAME,
        out / METRICS_NAME,
        *(out / FIGURES_DIR / name for name in EVERY_FIGURE.values()),
    ]
    for option, path in (("--data", args.data), ("--rejects", args.rejects)):
        if (
            path
            and path != "-"
            and (
                _inside(path, str(out / FIGURES_DIR))
                or any(str(f) in (_entry(path), os.path.realpath(path)) for f in replaced)
            )
        ):
            raise UsageError(
                f"{option} {path} is a file the report in --out {args.out} replaces; choose "
                f"another file or folder"
            )
    _refuse_model_files(args.model, [("--rejects", args.rejects)])
    try:  # before the data: a model that cannot be read fails fast, with nothing written
        model, manifest = load_model(args.model), read_manifest(args.model)
    except ModelFileError as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file: the report is written into a folder")
    existing = Path(os.path.abspath(args.out))  # before the work: its nearest existing folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(
            f"cannot write the report to {args.out}: {existing} is not a folder this process "
            "can write in"
        )
    clean, refused, summary, rejected = _labelled_rows(
        args, "evaluate", [("--rejects", args.rejects)], write=False
    )
    _say("\n".join(summary))
    name = "standard input" if args.data == "-" else Path(args.data).name
    trained_on = manifest.get("training_data") or {}
    if trained_on.get("n") == len(clean) and (
        trained_on.get("sha256") == fingerprint(clean)
        or trained_on.get("rows_sha256") == rows_fingerprint(clean, model.fields)
    ):
        _say(
            "warning: these are the patients the model was fitted on (the same rows as its "
            "training data): the figures are apparent performance, optimistic"
        )
        name += (
            " (**these are the patients the model was fitted on: the figures are apparent "
            "performance, optimistic**)"
        )
    comparison = None
    if args.compare:
        try:  # the model refitted with its own settings in each fold
            comparison = cross_validate(clean, model=model, seed=args.seed)
        except ValueError as exc:
            raise UsageError(f"--compare: cannot refit the models on {args.data}: {exc}") from exc
    report = build_report(
        model,
        clean,
        manifest=manifest,
        source=name,
        n_refused=refused,
        comparison=comparison.folds if comparison is not None else None,
        comparison_source=f"the {len(clean):,} patients of {name} (every model refitted)",
    )
    beside = []
    if args.rejects:  # written with the report: both appear, or neither
        beside.append((args.rejects, rejects_csv(rejected, escape=not args.no_formula_escape)))
    try:
        written = write_report(report, args.out, beside=beside)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {args.out}: {exc.strerror or exc}") from exc
    from predictor.evaluation._report import metric_text

    m = report.metrics
    _say(
        f"AUC {m.auc:.3f} ({m.auc_low:.3f} to {m.auc_high:.3f}), calibration slope "
        + metric_text(m.calibration_slope, ".2f")
        + f", intercept {m.calibration_intercept:+.3f}, Brier {m.brier:.4f} -> {written.report}"
    )
    if written.figures is None:
        _say(NO_FIGURES_NOTE.removeprefix("> ").replace("**", ""))
    return _refused_rows_exit(refused)


def _separator(text: str) -> str:
    value = {"tab": "\t", "\\t": "\t"}.get(text.casefold(), text)
    if value not in SEPARATORS:
        shown = ", ".join(repr(s) if s != "\t" else "tab" for s in SEPARATORS)
        raise argparse.ArgumentTypeError(f"{text!r} is not a separator; use one of {shown}")
    return value


def _decimal(text: str) -> str:
    if text not in DECIMALS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal mark; use '.' or ','")
    return text


def run_score_dask(args: argparse.Namespace) -> int:
    """Score many CSV files on a Dask cluster: one output part per input file in --out."""
    # Imported here: plain scoring never imports Dask.
    from predictor.distributed import DaskUnavailableError, score_files_dask

    if args.out == "-" or args.rejects == "-" or args.input == "-":
        raise UsageError(
            "--engine dask reads files and writes folders: not standard input or output"
        )
    try:
        result = score_files_dask(
            [args.input],
            args.out,
            rejects=args.rejects,
            model=args.model,
            scheduler=args.scheduler,
            workers=args.workers,
            explain=args.explain,
            chunk_rows=args.chunk_rows,
            escape=not args.no_formula_escape,
            **_reading(args),
        )
    except (BatchError, ModelFileError, DaskUnavailableError) as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    except OSError as exc:
        raise UsageError(f"cannot write the parts in {args.out}: {exc.strerror or exc}") from exc
    if not args.quiet:
        where = args.scheduler or "a local cluster"
        _say(
            f"{_count(len(result.outputs), 'file')} on {where}: "
            f"{_count(result.rows_scored, 'row')} scored, {result.rows_rejected:,} rejected "
            f"({_count(result.problems, 'problem')}); one part per file in {args.out}"
        )
    return EXIT_OK if result.rows_rejected == 0 else EXIT_INVALID_ROWS


def run_score(args: argparse.Namespace) -> int:
    """Score a CSV file: scored rows to --out, rejected rows to --rejects, a summary on stderr."""
    if args.engine == "dask":
        return run_score_dask(args)
    if args.scheduler is not None:
        raise UsageError("--scheduler goes with --engine dask")
    if args.out == "-" and args.rejects == "-":
        raise UsageError("--out and --rejects cannot both be standard output")
    _refuse_model_files(args.model, [("--out", args.out), ("--rejects", args.rejects)])
    try:
        summary = score_csv(
            args.input,
            args.out,
            rejects=args.rejects,
            model=args.model,
            explain=args.explain,
            chunk_rows=args.chunk_rows,
            escape=not args.no_formula_escape,
            progress=not args.quiet and sys.stderr.isatty(),
            workers=usable_cores() if args.workers is None else args.workers,
            **_reading(args),
        )
    except (BatchError, ModelFileError) as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    except OSError as exc:
        files = " and ".join(str(f) for f in (args.out, args.rejects) if f and f != "-")
        raise UsageError(f"cannot write {files or 'the output'}: {exc.strerror or exc}") from exc
    if not args.quiet:
        dialect = summary.dialect
        read = f"read as {dialect.describe()}" + (" (detected)" if dialect.detected else "")
        _say(
            f"{_count(summary.rows_scored, 'row')} scored, {summary.rows_rejected:,} rejected "
            f"({_count(summary.problems, 'problem')}) in {summary.seconds:.2f} s; {read}"
        )
        _say_notes(summary.notes)
        if summary.csv_module_from is not None:
            _say(
                f"  note: some records, the first on line {summary.csv_module_from:,}, were read "
                f"by the slower csv module (quotes that are not RFC 4180, bare CR line ends, or "
                f"lines rejected for their quoting or length)"
            )
        if summary.rows_rejected and not args.rejects:
            for message in summary.first_problems:
                _say(f"  {message}")
            _say("  (--rejects FILE keeps every rejected row with its line number)")
    return EXIT_OK if summary.rows_rejected == 0 else EXIT_INVALID_ROWS


SERVE_PACKAGES = ("fastapi", "starlette", "uvicorn", "jinja2", "pydantic")
"""What ``serve`` needs beyond the package's own dependencies: the ``serve`` extra."""


def run_serve(args: argparse.Namespace) -> int:
    """Serve the page and the JSON API for one patient at a time, until Ctrl-C."""
    try:  # imported here: the web stack is an optional extra, and costs start-up time
        from predictor.serve import serve
    except ModuleNotFoundError as exc:
        if exc.name not in SERVE_PACKAGES:
            raise
        raise UsageError(
            f"the serve command needs {exc.name}, from the serve extra: "
            "python -m pip install 'ketamine-predictor[serve]'"
        ) from exc
    try:
        limits = {
            name: getattr(args, name)
            for name in ("max_body_bytes", "max_records")
            if getattr(args, name) is not None
        }
        serve(args.model, host=args.host, port=args.port, say=_say, **limits)
    except ModelFileError as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}"
        ) from exc
    return EXIT_OK


def run_schema(args: argparse.Namespace) -> int:
    """Print the table of accepted input fields (Markdown)."""
    if sys.stdout is None:  # started with standard output closed (>&-)
        raise UsageError("cannot write to standard output: it is closed")
    try:
        sys.stdout.write(markdown_table())
        sys.stdout.flush()
    except (OSError, ValueError) as exc:  # full, a closed pipe, a closed file
        raise UsageError(
            f"cannot write to standard output: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    return EXIT_OK


SCORE_OUTPUT = textwrap.fill(
    "output: one row per valid input row, in input order: patient_id (the input's, or the line "
    "number when it has no patient_id column), "
    + ", ".join(f"{column.name} ({column.description})" for column in SCORE_COLUMNS)
    + "; with --explain one contribution_<field> column per model input; then responded and "
    "any unknown input columns, untouched.",
    width=94,
    subsequent_indent="  ",
)
"""What ``score`` writes, for its help: the columns from :data:`SCORE_COLUMNS`."""

SCORE_NOTES = f"""\
{SCORE_OUTPUT}
rejects: one row per problem: line (in the input; the header is line 1), patient_id, column,
  field, value, reason (not_a_number, not_finite, not_an_integer, out_of_range, unknown_level,
  not_a_boolean, wrong_field_count) and message. Every other row is still scored.
reads without options: UTF-8 with or without a byte-order mark, LF or CRLF line ends, quoted
  fields, NA and the other missing-value spellings, headers in any case with units in
  brackets, columns in any order, blank lines. A header line with semicolons and no commas is
  read as ;-separated with decimal commas (European spreadsheets); otherwise give --sep and
  --decimal.
files: --out and --rejects appear only when complete; an interrupted or killed run leaves
  neither, and an existing file untouched.
exit codes: 0 every row scored; 1 some rows rejected; 2 unusable input or arguments (one-line
  reason); 130 interrupted."""


SERVE_NOTES = """\
api: POST /predict takes a record (a JSON object in the schema's fields, aliases and units) or a
  list of records, and returns for each the probability, interval, label, baseline,
  contributions, reasons and warnings of predict(dict); a bad record gives 422 with every
  problem (record, field, value, rule) and nothing is scored. GET /schema, GET /health,
  GET /openapi.json, GET /docs.
logging: one access line per request (method, route, status, time); never a body, a query
  string or a patient's value.
exit codes: 0 stopped (Ctrl-C); 2 the model or the address cannot be used; the extra missing."""


def _reading_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that reads a CSV file: one reader, one set of options."""
    parser.add_argument(
        "--sep",
        type=_separator,
        help="field separator: , ; tab or | (default: an Excel sep= first line, else detected "
        "from the header line)",
    )
    parser.add_argument(
        "--decimal",
        type=_decimal,
        help="decimal mark, . or , (default: , for ;-separated files, else .)",
    )
    parser.add_argument(
        "--encoding",
        help="the file's encoding when it has no byte-order mark: "
        + ", ".join(ENCODINGS)
        + " (default utf-8; UTF-16 with a byte-order mark, and gzip, are read without options)",
    )
    parser.add_argument(
        "--strict-columns",
        action="store_true",
        help="refuse (exit 2) a column that matches no field but resembles one (by default a "
        "warning)",
    )
    parser.add_argument(
        "--no-formula-escape",
        action="store_true",
        help="write text cells starting with = + - @ tab or CR as they are (by default they get "
        "a leading ' so that a spreadsheet does not run them as formulas)",
    )


def _chunk_rows_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chunk-rows",
        type=_whole_number(1),
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows read (and scored) at a time (default: {DEFAULT_CHUNK_ROWS:,})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="python -m predictor",
        description="Ketamine treatment-response predictor (a demonstration on synthetic data, "
        "not a clinical tool).",
        epilog="Exit codes: 0 success; 1 some input rows are invalid; 2 unusable input or "
        "arguments; 3 internal error; 130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, example: str, notes: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary.replace("%", "%%"),  # argparse %-formats help, not descriptions
            description=summary,
            epilog=f"example:\n  {example}" + (f"\n\n{notes}" if notes else ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    score = command(
        "score",
        "Score a CSV file of patients: every valid row gets a probability of response with its "
        "90% interval, label, top reasons and warnings; invalid rows go to a rejects file.",
        "python -m predictor score examples/patients.csv --out scored.csv --rejects rejects.csv"
        "\n  python -m predictor score 'exports/*.csv' --out scored/ --engine dask "
        "--scheduler tcp://host:8786",
        SCORE_NOTES,
    )
    score.add_argument("input", help="input CSV file, or - for stdin")
    score.add_argument("--out", required=True, help="scored CSV file to write, or - for stdout")
    score.add_argument(
        "--rejects", help="write the rejected rows here (CSV: " + ", ".join(REJECT_COLUMNS) + ")"
    )
    score.add_argument(
        "--explain",
        action="store_true",
        help="add one contribution_<field> column (log-odds) per model input",
    )
    score.add_argument("--model", help="model directory or model.json (default: the shipped model)")
    _reading_options(score)
    _chunk_rows_option(score)
    score.add_argument(
        "--workers",
        type=_whole_number(1, MAX_WORKERS),
        default=None,
        help="processes that read and score chunks at the same time (no more than the file has "
        f"chunks, at most {MAX_WORKERS}); the output is the same, in input order (default: one "
        f"per usable core, here {usable_cores()})",
    )
    score.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local (default): this machine's --workers processes; dask: INPUT is a file or a "
        "quoted glob pattern ('exports/*.csv'), --out (and --rejects) are folders that get one "
        "part per input file, named as it, scored on a Dask cluster (pip install "
        "'ketamine-predictor[dask]')",
    )
    score.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --engine dask: the scheduler of a running Dask cluster (tcp://host:8786); "
        "default: a local cluster of --workers processes",
    )
    score.add_argument(
        "--quiet", action="store_true", help="no progress bar and no summary (errors still show)"
    )
    score.set_defaults(run=run_score)

    simulate = command(
        "simulate",
        "Simulate a synthetic cohort (every schema field, `responded`, `true_probability`).",
        "python -m predictor simulate --n 10000 --seed 7 --out cohort.csv"
        "\n  python -m predictor simulate --site second --n 2000 --out site.csv",
    )
    simulate.add_argument("--n", type=_whole_number(1), default=10_000, help="patients")
    simulate.add_argument(
        "--seed", type=_whole_number(0), default=DEFAULT_SEED, help="random seed (default: 0)"
    )
    simulate.add_argument(
        "--site",
        choices=tuple(SITES),
        default="house",
        help="house (default): the site the shipped model was trained on; second: another case "
        "mix, missingness and response model, which the shipped model never saw (for testing "
        "an update to a clinic's cohort)",
    )
    simulate.add_argument("--out", required=True, help="output CSV file, or - for stdout")
    simulate.set_defaults(run=run_simulate)

    check = command(
        "validate",
        "Check a CSV file against the input schema and list every problem.",
        "python -m predictor validate cohort.csv --problems problems.csv",
    )
    check.add_argument("input", help="input CSV file, or - for stdin")
    check.add_argument(
        "--problems",
        help="write the problems table to this CSV file: the rows score would reject (CSV: "
        + ", ".join(REJECT_COLUMNS)
        + ")",
    )
    check.add_argument("--rejects", help="the same as --problems")
    _reading_options(check)
    _chunk_rows_option(check)
    check.add_argument(
        "--show", type=_whole_number(0), default=10, help="problems to print (default: 10)"
    )
    check.set_defaults(run=run_validate)

    fit = command(
        "train",
        "Fit the model on a cohort (default: the simulated one), evaluate it on data it never "
        "saw, and write model.json, manifest.json and MODEL_CARD.md.",
        "python train.py --data my_cohort.csv --out my_model",
    )
    fit.add_argument(
        "--data",
        help="training CSV with a 0/1 `responded` column (default: simulate the default cohort)",
    )
    fit.add_argument(
        "--out",
        help="directory for the model files, replaced as a whole once they are all written "
        "(default: models for the simulated cohort; required with --data)",
    )
    fit.add_argument("--rejects", help="with --data: write the refused records here (CSV)")
    _reading_options(fit)
    fit.add_argument(
        "--seed", type=_whole_number(0), default=DEFAULT_SEED, help="random seed (default: 0)"
    )
    fit.add_argument(
        "--n",
        type=_whole_number(MIN_SIMULATED_N),
        default=None,
        help=f"patients in the simulated cohort (default: {DEFAULT_TRAINING_N:,})",
    )
    fit.add_argument(
        "--fields",
        metavar="A,B,...",
        help="the model's predictors: schema predictor fields, separated by commas (default: "
        "all of them: " + ", ".join(MODEL_FIELDS) + ")",
    )
    fit.add_argument(
        "--exclude",
        metavar="X,Y,...",
        help="leave these predictor fields out of the model (say, delta_sleep_ratio,"
        "slow_wave_sleep_pct for a clinic without sleep studies); not with --fields",
    )
    fit.add_argument(
        "--bootstrap",
        type=_whole_number(0),
        default=None,
        metavar="B",
        help="resamples of Harrell's bootstrap optimism correction, besides cross-validation "
        f"(default: {BOOTSTRAP_REPEATS} for a cohort of fewer than {BOOTSTRAP_BELOW:,} "
        "patients, else none; 0: none)",
    )
    fit.set_defaults(run=run_train)

    revise = command(
        "update",
        "Update a model (default: the shipped one) to your own labelled patients: fit the base "
        "as it is, recalibration in the large, logistic recalibration, revision toward the "
        "base and a refit from scratch, choose one by Vergouwe's closed test and "
        "cross-validated log-loss, and write the chosen model's files, report and card.",
        "python -m predictor update --data site.csv --out site_model",
        "What a site of a few hundred patients should use: refitting from scratch needs "
        "thousands (train says how many).",
    )
    revise.add_argument(
        "--data", required=True, help="CSV with a 0/1 `responded` column, or - for stdin"
    )
    revise.add_argument(
        "--out",
        required=True,
        help="directory for the updated model's files, replaced as a whole once they are all "
        "written",
    )
    revise.add_argument(
        "--model", help="the model to update: a directory or its model.json (default: shipped)"
    )
    revise.add_argument("--rejects", help="write the refused records here (CSV)")
    _reading_options(revise)
    revise.set_defaults(run=run_update)

    evaluate = command(
        "evaluate",
        "Evaluate a model on a CSV file with outcomes: write report.md, metrics.json and "
        "figures (discrimination, calibration, decision curve, subgroups, learned terms).",
        "python -m predictor evaluate --data cohort.csv --out report",
    )
    evaluate.add_argument(
        "--data", required=True, help="CSV with a 0/1 `responded` column, or - for stdin"
    )
    evaluate.add_argument(
        "--model", help="model directory or its model.json (default: the shipped model)"
    )
    evaluate.add_argument("--out", required=True, help="directory for the report (created)")
    evaluate.add_argument("--rejects", help="write the refused records here (CSV)")
    _reading_options(evaluate)
    evaluate.add_argument(
        "--seed",
        type=_whole_number(0),
        default=0,
        help="seed of the --compare folds and comparison models (default: 0)",
    )
    evaluate.add_argument(
        "--compare",
        action="store_true",
        help="also cross-validate the model, logistic regression and gradient "
        "boosting on this data (refits all three; slower)",
    )
    evaluate.set_defaults(run=run_evaluate)

    web = command(
        "serve",
        "Serve a page (a form, the estimate with its interval, a contribution chart and "
        "what-if) and a JSON API (POST /predict, GET /schema, GET /health, docs at /docs) for "
        "one patient at a time. Listens on this machine only (loopback) unless --host says "
        "otherwise.",
        "python -m predictor serve --port 8000   # then open http://127.0.0.1:8000/",
        SERVE_NOTES,
    )
    web.add_argument("--model", help="model directory or model.json (default: the shipped model)")
    web.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, loopback: no other machine can reach "
        "it; 0.0.0.0 listens on every interface, with no login and no encryption)",
    )
    web.add_argument(
        "--port", type=_whole_number(0), default=8000, help="port (default: 8000; 0: any free one)"
    )
    web.add_argument(
        "--max-body-bytes",
        type=_whole_number(1),
        help="larger request bodies get 413 (default: 2 MiB, 2,097,152 bytes)",
    )
    web.add_argument(
        "--max-records",
        type=_whole_number(1),
        help="POST /predict with more records gets 413 (default: 100)",
    )
    web.set_defaults(run=run_serve)

    schema = command(
        "schema",
        "Print the accepted input fields: names, units, aliases and ranges.",
        "python -m predictor schema",
    )
    schema.set_defaults(run=run_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Every failure is one line on stderr and a documented exit code, never a traceback: 2 for
    unusable input or arguments (an option value a function refuses, too: its message names
    parameters, never a patient's value), 3 for an internal error (its message is not shown,
    since it might quote a patient's value; set ``KETAMINE_PREDICTOR_DEBUG=1`` to see the
    traceback).
    """
    args = build_parser().parse_args(argv)
    # the command line's own process (a caller passes its arguments), for a run that ends
    # soon: serve runs for days, and gives back the memory it frees
    own_process = argv is None and args.run is not run_serve
    if own_process:
        reuse_freed_memory()
    # SIGTERM cleans up as Ctrl-C does, and neither can be lost before a file is put in place;
    # serve writes no file and leaves both signals to uvicorn, which shuts down gracefully.
    # The command line's own process ends with the block: signals are then ignored, not left
    # to Python's handlers, which it sets back to the default as it shuts down (exit -2).
    signals = (
        contextlib.nullcontext()
        if args.run is run_serve
        else stopping_on_signals(then_ignore=own_process)
    )
    try:
        with signals:
            return args.run(args)
    except (UsageError, InvalidParameterError) as exc:
        _say(f"error: {exc}")
        return EXIT_UNUSABLE
    except KeyboardInterrupt as exc:
        if own_process:  # one that came before the block: it ends next, exit 130
            ignore_stop_signals()
        if isinstance(exc, InterruptedAfterWriting):
            _say("interrupted just after the output files were put in place (they are complete)")
        else:
            _say("interrupted: no output file was written (an existing one is unchanged)")
        return EXIT_INTERRUPTED
    except MemoryError:
        _say("error: out of memory; give a smaller --chunk-rows, or free some memory")
        return EXIT_INTERNAL
    except Exception as exc:  # a bug: one line, no patient value, exit 3
        where = traceback.extract_tb(exc.__traceback__)[-1]
        _say(
            f"internal error: {type(exc).__name__} in {Path(where.filename).name}, line "
            f"{where.lineno}; nothing was written. Please report it (set {DEBUG}=1 to see "
            f"the traceback)"
        )
        if os.environ.get(DEBUG):
            traceback.print_exc()
        return EXIT_INTERNAL
    finally:
        if own_process:  # it ends next: its last collection need not visit all it imported
            gc.freeze()
            _forget_caught_interrupt()


def _forget_caught_interrupt() -> None:
    """Make sure a process that caught Ctrl-C ends with exit 130, not killed by SIGINT (-2).

    CPython remembers a KeyboardInterrupt that ended code compiled from text (``exec`` and
    ``eval`` of a string: ``collections.namedtuple`` and ``dataclasses`` make their classes so)
    even when it was caught, and after shutting down, ``python -m`` then kills the process with
    SIGINT (``Py_RunMain``'s ``_Py_UnhandledKeyboardInterrupt``): one run in fifty held down
    Ctrl-C ended so. Evaluating text resets that memory; here nothing can interrupt it, since
    the command line's own process ignores both signals by now."""
    eval("0")
