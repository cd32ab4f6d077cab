"""Batch work on CSV files of patient records: score them chunk by chunk, validate them, or read
a labelled one for training and evaluation, all through the one reader of
:mod:`predictor.io._csv_reader`, with the same rejects table and the same rules for output files.

* :func:`score_csv` scores every valid row on the same path as ``predict(DataFrame)``
  (:func:`predictor._scoring.scored_columns`) and sends every other record to a rejects table with
  the line it starts on; the two files appear together, once complete.
* :func:`validate_csv` reports exactly the rows ``score`` would reject.
* :func:`read_labelled_csv` reads a whole labelled file for ``train --data`` and ``evaluate``.

Files written here never replace the input (same device and inode, through any link), and text
cells that a spreadsheet would run as a formula are escaped (:func:`escape_formulas`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import errno
import io
import itertools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pac
import pyarrow.csv as pcsv

from data_schemas import SchemaError, match_columns, summary_lines, validate
from data_schemas.validate import PROBLEM_COLUMNS, ColumnMatch
from predictor._atomic import WriteBehind, _running, atomic_outputs
from predictor._params import (
    BOOL,
    INF,
    NONE,
    PATH,
    TEXT,
    Interval,
    Options,
    ParameterTable,
    Where,
    check,
)
from predictor._processes import process_context, signals_held, start_process, usable_cores
from predictor._scoring import MODEL_CONSTRAINTS, ModelLike, _resolve, scored_columns
from predictor.io._csv_reader import (
    DECIMALS,
    DEFAULT_CHUNK_ROWS,
    SEPARATORS,
    BatchError,
    Chunk,
    CsvReader,
    Dialect,
    Pieces,
    Segment,
    read_segment,
)
from predictor.io._input_stream import InputError, OpenedInput, open_input
from predictor.model import Model, ModelFiles

__all__ = [
    "DECIMALS",
    "DEFAULT_CHUNK_ROWS",
    "REJECT_COLUMNS",
    "SEPARATORS",
    "BatchError",
    "BatchSummary",
    "CsvReader",
    "Dialect",
    "LabelledRows",
    "escape_formulas",
    "merged_rejects",
    "read_labelled_csv",
    "score_csv",
    "usable_cores",
    "validate_csv",
]

REJECT_COLUMNS = ("line", "patient_id", "column", "field", "value", "reason", "message")
"""Columns of the rejects file: one row per problem, so a row with two bad cells has two."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is written with a leading ``'`` (OWASP's advice
against CSV formula injection), unless it is a plain number such as ``-5``."""
_PLAIN_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_FORMULA_BYTES = np.frombuffer("".join(FORMULA_STARTS).encode("ascii"), dtype=np.uint8)


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run did.

    Attributes
    ----------
    rows_scored, rows_rejected : int
        Data rows scored (or valid, for :func:`validate_csv`), and records rejected: rows that
        broke the schema, and lines the reader rejected (blank lines are neither).
    problems : int
        Rows of the rejects table (a rejected row may have several problems).
    seconds : float
        Wall-clock time of the run.
    dialect : Dialect
        How the input was read.
    first_problems : tuple of str
        The first few problems for a summary: line, column and rule, never the patient's value
        (values go only to the rejects file).
    csv_module_from : int or None
        The first line read by Python's ``csv`` module rather than the fast path (quoting that
        is not RFC 4180, bare carriage returns, or a line the reader rejected); None: none.
    notes : tuple of str
        Notes on the header for the summary: columns that resemble a field but match none,
        input columns renamed in the output.
    """

    rows_scored: int
    rows_rejected: int
    problems: int
    seconds: float
    dialect: Dialect
    first_problems: tuple[str, ...] = field(default=())
    csv_module_from: int | None = None
    notes: tuple[str, ...] = field(default=())


_SHOWN_PROBLEMS = 5

_READING_PARAMETERS: ParameterTable = {
    "source": [
        PATH,
        Where(
            lambda value: hasattr(value, "read") and not isinstance(value, io.TextIOBase),
            "a binary file (opened with 'rb')",
        ),
    ],
    "separator": [NONE, Options(*SEPARATORS)],
    "decimal": [NONE, Options(*DECIMALS)],
    "encoding": [NONE, TEXT],
    "chunk_rows": [Interval(int, 1, INF, closed="left")],
    "strict_columns": [BOOL],
    "escape": [BOOL],
    "progress": [BOOL],
}
"""What the reading parameters of :func:`score_csv` and :func:`validate_csv` accept (the
encoding's name is checked when the input is opened)."""
MAX_WORKERS = 256
"""The most worker processes ``score`` starts (each holds up to two chunks in memory)."""
_SCORE_PARAMETERS: ParameterTable = {
    **_READING_PARAMETERS,
    "out": [PATH],
    "rejects": [NONE, PATH],
    "model": MODEL_CONSTRAINTS,
    "explain": [BOOL],
    "workers": [NONE, Interval(int, 1, MAX_WORKERS, closed="both")],
}
_VALIDATE_PARAMETERS: ParameterTable = {**_READING_PARAMETERS, "problems": [NONE, PATH]}


# --------------------------------------------------------------------------- opening


def _identity(source: str | os.PathLike[str] | BinaryIO) -> tuple[int, int] | None:
    """(device, inode) of the input, to refuse an output that is the input."""
    try:
        if isinstance(source, (str, os.PathLike)):
            status = os.fstat(0) if str(source) == "-" else os.stat(source)
        else:
            status = os.fstat(source.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return status.st_dev, status.st_ino


def _refuse_the_input(
    source: str | os.PathLike[str] | BinaryIO,
    outputs: Sequence[tuple[str, str | os.PathLike[str] | None]],
) -> None:
    """Raise BatchError if an output file is the input itself (through any link)."""
    identity = _identity(source)
    if identity is None:
        return
    for option, path in outputs:
        if path is None:
            continue
        try:
            status = os.fstat(1) if str(path) == "-" else os.stat(path)
        except OSError:
            continue
        if (status.st_dev, status.st_ino) == identity:
            raise BatchError(
                f"{option} {path} is the input file itself; the input is never overwritten: "
                f"choose another file"
            )


def check_writable(target: str | os.PathLike[str] | None) -> None:
    """Raise BatchError if ``target``'s folder is missing or ``target`` is a folder (``"-"``:
    if standard output is closed)."""
    if target is not None and str(target) == "-" and sys.stdout is None:
        raise BatchError("standard output is closed; give --out FILE")
    if target is None or str(target) == "-":
        return
    folder = Path(target).parent
    if not folder.is_dir():
        raise BatchError(f"cannot write {target}: there is no folder {str(folder)!r}")
    if Path(target).is_dir():
        raise BatchError(f"cannot write {target}: it is a folder")


@contextlib.contextmanager
def _signals_left_to_python() -> Iterator[None]:
    """Have pyarrow leave SIGINT and SIGTERM to Python's handlers (pyarrow's default is turned
    back on after).

    By default ``pyarrow.csv.read_csv``, which reads each chunk, puts a handler of its own in
    place for the read; that handler hands the signal to a thread of pyarrow's, which passes it
    on to the read, and the read to Python; when the read ends before that thread has run, the
    signal is dropped: an interrupted ``score`` then finished and wrote its output (2 or 3 runs
    in 40 signalled while 2 workers started). Python's own handler keeps the signal until the
    read returns, a few milliseconds at most for a chunk.
    """
    pa.enable_signal_handlers(False)
    try:
        yield
    finally:
        pa.enable_signal_handlers(True)


@contextlib.contextmanager
def _records(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    separator: str | None,
    decimal: str | None,
    encoding: str | None,
    chunk_rows: int,
    outputs: Sequence[tuple[str, str | os.PathLike[str] | None]] = (),
) -> Iterator[tuple[CsvReader, OpenedInput]]:
    """Open the input for the reader, after checking that no output is the input; decoding
    errors raised while reading become BatchError. Ctrl-C and SIGTERM are left to Python's
    handlers while it is open (see :func:`_signals_left_to_python`)."""
    _refuse_the_input(source, outputs)
    try:
        with _signals_left_to_python(), open_input(source, encoding=encoding) as opened:
            encoding_read = opened.encoding + (
                f" ({opened.compression})" if opened.compression else ""
            )
            reader = CsvReader(
                opened.stream,
                opened.name,
                separator=separator,
                decimal=decimal,
                chunk_rows=chunk_rows,
                encoding=encoding_read,
            )
            yield reader, opened
    except InputError as exc:
        raise BatchError(str(exc)) from None


def _checked_header(reader: CsvReader, *, strict_columns: bool) -> tuple[ColumnMatch, list[str]]:
    """The header matched to the schema, and notes for the summary; BatchError for a header
    that breaks the schema, names no field, or (``strict_columns``) has a column that resembles
    a field but matches none. Messages name columns, never a patient's value."""
    match = match_columns(tuple(reader.header))
    where = f"{reader.name}, line {reader.header_line}"
    if match.problems:
        message = str(SchemaError(match.problems)).replace("\n", " ")
        raise BatchError(f"{where}: {message}")
    if not match.sources:  # scoring it would give every row the average patient's score
        raise BatchError(
            f"{where}: none of the {len(reader.header)} column names is an input field (read as "
            f"{reader.dialect.describe()}); if the file has no header line, add one; else check "
            f"--sep or the column names (python -m predictor schema lists them)"
        )
    resembling = match.resemblance_problems()
    if resembling and strict_columns:
        message = " ".join(p.message for p in resembling)
        raise BatchError(f"{where} (--strict-columns): {message}")
    notes = [f"warning: {p.message}" for p in resembling]
    return match, notes


# --------------------------------------------------------------------------- writing


def escape_formulas(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text cells that a spreadsheet would run as a formula, with a leading ``'``.

    A cell starting with one of :data:`FORMULA_STARTS` gets the ``'`` unless it is a plain
    number (``-5``, ``+1.5e3``); other cells, and non-text arrays, are returned as they are.

    >>> escape_formulas(pa.array(["=1+2", "-5", "Leeds", "@SUM(A1)", None])).to_pylist()
    ["'=1+2", '-5', 'Leeds', "'@SUM(A1)", None]
    """
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return values
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array([escape_formulas(chunk) for chunk in values.chunks], values.type)
    starts = np.isin(_first_bytes(values), _FORMULA_BYTES)
    if not starts.any():  # the common case, found without a new array of texts
        return values
    risky = pac.and_(pa.array(starts), pac.invert(pac.match_substring_regex(values, _PLAIN_NUMBER)))
    quote, nothing = pa.scalar("'", values.type), pa.scalar("", values.type)
    return pac.if_else(risky, pac.binary_join_element_wise(quote, values, nothing), values)


def _first_bytes(values: pa.Array) -> np.ndarray:
    """The first byte of each text of a string array, read from its buffers (0 for an empty
    text, any value for a null): in UTF-8 a text starting with an ASCII character starts with
    that character's byte, and no other text starts with a byte below 128."""
    first = np.zeros(len(values), dtype=np.uint8)
    _, offsets, data = values.buffers()
    if data is None or len(values) == 0:
        return first
    width = np.int64 if pa.types.is_large_string(values.type) else np.int32
    # (Arrow asks only that the offsets' buffer be long enough: read just the offsets in use)
    used = np.frombuffer(offsets, dtype=width, count=values.offset + len(values) + 1)
    bounds = used[values.offset :].astype(np.int64, copy=False)
    texts = np.flatnonzero(bounds[1:] > bounds[:-1])
    first[texts] = np.frombuffer(data, dtype=np.uint8)[bounds[texts]]
    return first


def _arrow_column(values: pd.Series | np.ndarray | pa.Array, escape: bool) -> pa.Array:
    """One output column for pyarrow's CSV writer: an Arrow array as it is, whole-number flags
    (a Series named ``responded``) as integers, text escaped against formulas (``escape``)."""
    if (
        isinstance(values, pd.Series)
        and values.name == "responded"
        and pd.api.types.is_float_dtype(values)
    ):
        return pa.array(values.to_numpy(), from_pandas=True).cast(pa.int64())
    if isinstance(values, pa.Array):
        array = values
    elif values.dtype == object:
        array = pa.array(np.asarray(values), type=pa.string(), from_pandas=True)
    else:
        array = pa.array(values, from_pandas=True)
    return escape_formulas(array) if escape else array


def _write_header(sink: IO[bytes], names: list[str], escape: bool) -> None:
    if escape:
        names = escape_formulas(pa.array(names, type=pa.string())).to_pylist()
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(names)
    sink.write(text.getvalue().encode("utf-8"))


def _frame_columns(frame: pd.DataFrame) -> list[pd.Series]:
    return [frame.iloc[:, j] for j in range(frame.shape[1])]


def _csv_table(columns: Sequence[pd.Series | np.ndarray | pa.Array], escape: bool) -> pa.Table:
    """Columns of equal length (Series, numpy or Arrow arrays) as the table pyarrow's CSV
    writer takes (:func:`_write_rows`), texts escaped against formulas with ``escape``."""
    arrays = [_arrow_column(values, escape) for values in columns]
    return pa.Table.from_arrays(arrays, names=[str(k) for k in range(len(arrays))])


def _write_rows(table: pa.Table, sink: IO[bytes] | pa.NativeFile) -> None:
    """Append a table's rows (:func:`_csv_table`; no header) to ``sink`` as CSV: pyarrow's
    writer writes them straight into it, a batch at a time, never the whole text in memory."""
    if table.num_rows and table.num_columns:
        pcsv.write_csv(table, sink, write_options=pcsv.WriteOptions(include_header=False))


# --------------------------------------------------------------------------- rejects


def rejects_table(problems: pd.DataFrame, chunk: Chunk) -> pd.DataFrame:
    """The rejects table of one chunk, in line order: the schema's ``problems`` (their ``row``
    is the line) and the lines the reader rejected, with each row's ``patient_id``."""
    table = problems.rename(columns={"row": "line"})
    if chunk.problems:
        extra = pd.DataFrame(
            [[p.row, p.column, p.field, p.value, str(p.reason), p.message] for p in chunk.problems],
            columns=table.columns,
        )
        table = pd.concat([table, extra], ignore_index=True) if len(table) else extra
    table = table.sort_values("line", kind="stable", ignore_index=True)
    frame = chunk.frame
    ids = {s.field.name: s.position for s in match_columns(tuple(frame.columns)).sources}
    patient_id = pd.Series(
        [chunk.ids.get(line, "") for line in table["line"].tolist()],
        index=table.index,
        dtype=object,
    )
    if "patient_id" in ids and len(table):
        cells = frame.iloc[:, ids["patient_id"]]
        known = table["line"].isin(cells.index)
        patient_id[known] = cells.reindex(table.loc[known, "line"]).to_numpy(dtype=object)
    table.insert(1, "patient_id", patient_id)
    return table[list(REJECT_COLUMNS)]


# --------------------------------------------------------------------------- scoring


class _Spooled(NamedTuple):
    """CSV rows a worker process wrote to a file of its own (see :func:`_score_in_worker`)."""

    path: str
    size: int

    def copy_to(self, sink: IO[bytes]) -> None:
        """Append the rows to ``sink`` (copied by the kernel where it can) and remove the
        file."""
        try:
            with open(self.path, "rb") as source:
                sink.flush()
                try:
                    target = sink.fileno()
                except (AttributeError, io.UnsupportedOperation):
                    target = None
                sent = 0
                if target is not None and hasattr(os, "sendfile"):
                    try:
                        while sent < self.size:
                            done = os.sendfile(target, source.fileno(), sent, self.size - sent)
                            if done == 0:
                                break
                            sent += done
                    except OSError as exc:  # a terminal, say: not a target sendfile takes
                        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                            raise
                source.seek(sent)
                while block := source.read(1 << 20):  # where sendfile cannot: by hand
                    sink.write(block)
        finally:
            os.unlink(self.path)


class _Scored(NamedTuple):
    """One chunk scored: its output and rejects as tables for the CSV writer (or, from a worker
    process, the files of CSV rows it wrote them to), and counts for the summary."""

    output: pa.Table | _Spooled
    rejects: pa.Table | _Spooled
    scored: int
    rejected: int
    problems: int
    messages: list[str]
    csv_module_from: int | None
    """the first line the ``csv`` module read, for records read from a :class:`Segment` (or
    pieces of a :class:`Pieces` it read again, where pyarrow did not read them as the scan
    did)"""


_Records = Chunk | Segment | Pieces
"""What a chunk's scoring starts from: records read, or records for a worker to read."""


@dataclass(frozen=True)
class _ChunkScorer:
    """Validates and scores one chunk at a time (with no model: validates only)."""

    model: Model | None
    decimal: str
    explain: bool
    escape: bool

    def table(self, frame: pd.DataFrame) -> tuple[list[tuple[str, Any]], int, pd.DataFrame]:
        """The output's columns, as (name, values) (none without a model), the number of
        valid rows and the problems table. The columns go to the CSV writer as they are, without a
        DataFrame: the same rows as ``scored_table`` gives, at less cost."""
        clean, problems = validate(frame, decimal=self.decimal)
        if self.model is None:
            return [], len(clean), problems
        scores, carried = scored_columns(
            self.model,
            clean,
            columns=tuple(frame.columns),
            row_numbers=clean.index.to_numpy(),
            explain=self.explain,
        )
        named = [(str(name), values) for name, values in scores.items()]
        named += zip(map(str, carried.columns), _frame_columns(carried), strict=True)
        return named, len(clean), problems

    def columns(self, header: list[str]) -> list[str]:
        """The output's columns, from an empty table with the input's header."""
        empty = pd.DataFrame({k: pd.Series([], dtype="str") for k in range(len(header))})
        empty.columns = header
        return [name for name, _ in self.table(empty)[0]]

    def __call__(self, records: _Records) -> _Scored:
        chunk = records if isinstance(records, Chunk) else read_segment(records)
        output, valid, problems = self.table(chunk.frame)
        bad = rejects_table(problems, chunk)
        return _Scored(
            _csv_table([values for _, values in output], self.escape),
            _csv_table(_frame_columns(bad), self.escape),
            valid,
            len(chunk.frame) - valid + len(chunk.problems),
            len(bad),
            summary_lines(bad, _SHOWN_PROBLEMS, place="line"),
            chunk.csv_module_from,
        )


# --------------------------------------------------------------------------- workers


IN_FLIGHT_PER_WORKER = 2
"""Chunks read ahead per worker process: at most ``IN_FLIGHT_PER_WORKER * workers`` chunks are
being scored or waiting to be written, so memory is set by ``chunk_rows``, not by the file."""


_worker_scorer: _ChunkScorer | None = None
"""The scorer of this worker process (set once, when the process starts)."""
_worker_spool = ""
"""The folder where this worker process writes the rows it scored."""


def _start_worker(scorer: _ChunkScorer, spool: str) -> None:
    """Initialise a worker process: keep the scorer (its model is unpickled once per process),
    then as :func:`start_process`."""
    global _worker_scorer, _worker_spool
    _worker_scorer, _worker_spool = scorer, spool
    start_process()


def _score_in_worker(records: _Records) -> _Scored:
    """Score a chunk (or read and score a segment) in a worker process. The CSV rows (about
    500 bytes per patient with the reasons and warnings) are written to files in the spool
    folder rather than sent back through a pipe: the parent appends them to its outputs with
    ``sendfile``, without copying them through Python."""
    assert _worker_scorer is not None, "a worker process scores only after _start_worker"
    scored = _worker_scorer(records)
    spooled = []
    for rows in (scored.output, scored.rejects):
        descriptor, path = tempfile.mkstemp(dir=_worker_spool, suffix=".csv")
        with open(descriptor, "wb") as sink:
            _write_rows(cast(pa.Table, rows), sink)  # a table: the scorer made it here
            spooled.append(_Spooled(path, sink.tell()))
    return scored._replace(output=spooled[0], rejects=spooled[1])


SPOOL_PREFIX = "ketamine-predictor-score-"


def _spool_folder() -> str:
    """A new private folder for the workers' rows, ``$TMPDIR/ketamine-predictor-score-PID-*``;
    the folders of runs whose process no longer runs (killed outright) are removed first."""
    base = Path(tempfile.gettempdir())
    for stale in base.glob(f"{SPOOL_PREFIX}*-*"):
        pid = stale.name.removeprefix(SPOOL_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-")


def _pool(scorer: _ChunkScorer, workers: int, spool: str) -> concurrent.futures.ProcessPoolExecutor:
    """``workers`` processes, each holding ``scorer`` (and its model) from its start, writing
    the rows they score into the folder ``spool``."""
    return concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=process_context(__name__),
        initializer=_start_worker,
        initargs=(scorer, spool),
    )


def _first_line(records: _Records) -> int:
    if not isinstance(records, Chunk):
        return records.line
    lines = [*records.frame.index[:1].tolist(), *(p.row for p in records.problems[:1])]
    return int(min(lines)) if lines else 0


def _size(records: _Records) -> int:
    """Records in a chunk or pieces; line ends in a segment."""
    if isinstance(records, Segment):
        return records.lines
    if isinstance(records, Pieces):
        return records.records
    return len(records.frame) + len(records.problems)


_UNREADABLE = (BatchError, InputError)
"""Errors of input that cannot be read (or decompressed, or decoded): raised by the reader
only after those of the chunks before it."""


def _read_after(
    chunks: Iterator[_Records],
    pending: collections.deque[tuple[int, concurrent.futures.Future[_Scored]]],
) -> Iterator[_Records]:
    """``chunks``, but an error reading one is raised only once the chunks before it (being
    scored in ``pending``) are done: an error a worker meets in one of those (a line that is not
    UTF-8 in a segment it reads) comes first, as with one worker."""
    while True:
        try:
            chunk = next(chunks, None)
        except _UNREADABLE:
            concurrent.futures.wait([future for _, future in pending])
            for _, future in pending:
                future.result()  # raises the first error among them, if any
            raise
        if chunk is None:
            return
        yield chunk


def _scored_in_order(
    chunks: Iterator[_Records], scorer: _ChunkScorer, workers: int, chunk_rows: int
) -> Generator[_Scored, None, None]:
    """Each chunk scored (each segment read and scored), in input order: here (one worker, or
    a file of one chunk), or by ``workers`` processes, with at most
    :data:`IN_FLIGHT_PER_WORKER` chunks per worker read ahead of the one being written.

    Raises
    ------
    BatchError
        If a worker process stops without a result (killed, or out of memory).
    """
    first = next(chunks, None)
    if first is not None and workers > 1 and _size(first) >= chunk_rows:
        # more chunks likely: the processes' server starts while the next is read
        process_context(__name__)
    second = None
    if first is not None and workers > 1:
        try:
            second = next(chunks, None)
        except _UNREADABLE:
            scorer(first)  # an error in the first (a segment not read yet) comes first
            raise
    if second is None:  # nothing to share: no processes to start
        for chunk in itertools.chain(() if first is None else (first,), chunks):
            yield scorer(chunk)
        return
    assert first is not None
    # No more processes than chunks: the pool starts them all at its first submit, and a
    # small file read with --workers 300 started 300. Read ahead up to one chunk per worker
    # (an unreadable one is raised later, in its place, by _read_after).
    ahead: list[_Records] = [first, second]
    rest: Iterator[_Records] = chunks
    while len(ahead) < workers:
        try:
            more = next(chunks, None)
        except _UNREADABLE as exc:
            rest = _raising(exc)
            break
        if more is None:
            break
        ahead.append(more)
    workers = min(workers, len(ahead))
    spool = _spool_folder()
    pool = _pool(scorer, workers, spool)
    pending: collections.deque[tuple[int, concurrent.futures.Future[_Scored]]] = collections.deque()

    try:
        for chunk in _read_after(itertools.chain(ahead, rest), pending):
            with signals_held():  # the first submit starts the processes
                future = pool.submit(_score_in_worker, chunk)
            pending.append((_first_line(chunk), future))
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                yield pending.popleft()[1].result()
        while pending:
            yield pending.popleft()[1].result()
    except concurrent.futures.process.BrokenProcessPool as exc:
        where = f" (the chunk from line {pending[0][0]:,} or one after it)" if pending else ""
        raise BatchError(
            f"a scoring worker process stopped without a result{where}: killed, or out of "
            f"memory; nothing was written. Try fewer --workers or a smaller --chunk-rows"
        ) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(spool, ignore_errors=True)  # rows not written: an error stopped the run


def _raising(error: BaseException) -> Iterator[_Records]:
    """An iterator that raises ``error`` when next is asked of it."""
    raise error
    yield  # a generator: the raise comes at the first next()


def _renamed(header: list[str], match: ColumnMatch, output: list[str]) -> list[str]:
    """Notes on the input columns renamed in the output (they had an output column's name)."""
    unknown = [header[k] for k in match.unknown]
    carried = output[len(output) - len(unknown) :] if unknown else []
    pairs = [f"{a!r} -> {b!r}" for a, b in zip(unknown, carried, strict=True) if a != b]
    if not pairs:
        return []
    return [
        "note: input columns that have an output column's name are renamed in the output: "
        + ", ".join(pairs)
    ]


def score_csv(
    source: str | os.PathLike[str] | BinaryIO,
    out: str | os.PathLike[str],
    *,
    rejects: str | os.PathLike[str] | None = None,
    model: ModelLike = None,
    explain: bool = False,
    separator: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    strict_columns: bool = False,
    escape: bool = True,
    progress: bool = False,
    workers: int | None = 1,
) -> BatchSummary:
    """Score a CSV file of patients, chunk by chunk, into a scored CSV file and a rejects file.

    Every valid row is scored, in input order, exactly as ``predict(DataFrame)`` scores it; a
    row that breaks the schema, or a line the reader rejects (wrong field count, a quote that
    does not close, too long), goes to ``rejects`` instead, with the line it starts on in the
    input (the header is line 1). Both files appear only when complete: an interrupted run
    leaves neither behind, and an existing file untouched. Neither may be the input, nor the
    model's ``model.json`` or ``manifest.json``.

    Parameters
    ----------
    source : path, ``"-"`` or binary file
        The input CSV file (plain, gzip, UTF-8, UTF-16 with a byte-order mark, or
        ``encoding``); ``"-"`` reads standard input.
    out : path or ``"-"``
        The scored CSV file; ``"-"`` writes to standard output.
    rejects : path, optional
        Where to write the rejects table (:data:`REJECT_COLUMNS`); by default it is not kept.
    model : Model or path, optional
        The model; default: the shipped one.
    explain : bool
        Add one ``contribution_<field>`` column per model field.
    separator, decimal : str, optional
        The input's field separator and decimal mark; detected by default (see
        :class:`~predictor.io._csv_reader.CsvReader`).
    encoding : str, optional
        The input's encoding when it has no byte-order mark: ``"utf-8"`` (default),
        ``"cp1252"`` or ``"latin-1"``.
    chunk_rows : int
        About how many rows to read, score and write at a time.
    strict_columns : bool
        Refuse a header with a column that resembles a field but matches none (by default it
        is only a note in the summary).
    escape : bool
        Write text cells that start with ``=``, ``+``, ``-``, ``@``, a tab or a CR with a
        leading ``'``, so that a spreadsheet shows them rather than running them.
    progress : bool
        Show a progress bar on standard error.
    workers : int, optional
        Processes that read, validate and score chunks at the same time (default 1: this
        process scores them; ``None``: one per usable core, :func:`usable_cores`, as ``score``
        does). This process cuts the input into segments of whole records for them
        (:meth:`CsvReader.segments`; where it cannot cut one, it finds the records itself and
        they parse them) and writes the
        outputs, in input order; the files are byte for byte those of one worker. A file of
        one chunk is scored here, without starting any process. On Linux the processes are
        forked from this one when it runs no other Python thread; otherwise they start from a
        fresh interpreter (``forkserver``), which imports the main module again: a script that
        scores with several workers should guard its entry point with
        ``if __name__ == "__main__":``.

    Returns
    -------
    BatchSummary

    Raises
    ------
    BatchError
        If the input cannot be read as CSV text, its header breaks the schema (a field given
        twice, a column whose unit is unclear, no input field at all), or an output is the
        input or one of the model's files (``model`` given as a path, or the shipped model's);
        or a worker process stopped without a result.
    ModelFileError
        If the model cannot be loaded.
    InvalidParameterError
        If a parameter has a value it does not accept (before anything is read or written).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "in.csv").write_text("patient_id,crp_mg_l,route\\nA,0.9,iv\\nB,high,iv\\n")
    >>> summary = score_csv(folder / "in.csv", folder / "out.csv", rejects=folder / "rej.csv")
    >>> summary.rows_scored, summary.rows_rejected
    (1, 1)
    >>> import csv
    >>> rows = csv.DictReader(open(folder / "rej.csv"))
    >>> [(row["line"], row["patient_id"], row["reason"]) for row in rows]
    [('3', 'B', 'not_a_number')]
    """
    check("score_csv", _SCORE_PARAMETERS, locals())
    started = time.perf_counter()
    if rejects is not None and (
        str(out) == str(rejects)
        or (str(out) != "-" and os.path.realpath(out) == os.path.realpath(rejects))
    ):
        raise BatchError(f"the output and the rejects file are both {str(out)!r}")
    for target in (out, rejects):
        check_writable(target)
    if model is None or isinstance(model, str | os.PathLike):
        clash = ModelFiles.at(model).among([("--rejects", rejects), ("--out", out)])
        if clash is not None:
            option, path, file = clash
            raise BatchError(
                f"{option} {path} is the model's own {file.name}; writing it would destroy the "
                "model: choose another file"
            )
    return _run(
        source,
        [("--rejects", rejects), ("--out", out)],
        _ChunkScorer(_resolve(model), ".", explain, escape),
        reading={"separator": separator, "decimal": decimal, "encoding": encoding},
        chunk_rows=chunk_rows,
        strict_columns=strict_columns,
        progress=progress,
        started=started,
        workers=usable_cores() if workers is None else workers,
    )


def _progress_bar(opened: OpenedInput, progress: bool, description: str) -> Any:
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc]  # tqdm has no type information
        monitor_interval = 0  # no monitor thread: the workers can then start by fork

    return Bar(
        total=opened.size,
        unit="B",
        unit_scale=True,
        disable=not progress,
        file=sys.stderr,
        desc=description,
    )


def _run(
    source: str | os.PathLike[str] | BinaryIO,
    outputs: list[tuple[str, str | os.PathLike[str] | None]],
    scorer: _ChunkScorer,
    *,
    reading: dict[str, str | None],
    chunk_rows: int,
    strict_columns: bool,
    progress: bool,
    started: float,
    workers: int = 1,
) -> BatchSummary:
    """Read ``source`` chunk by chunk, validate (and with a model, score) each, with
    ``workers`` processes, and write the rejects and the output (``outputs``: the option and
    path of each, rejects first; None: not kept) so that they appear together, once complete."""
    from threadpoolctl import threadpool_limits

    wanted = [(option, path) for option, path in outputs if path is not None]
    # One BLAS thread here, as in a worker process: chunks scored here then have the same
    # numbers to the last bit (another number of threads may sum a product in another order),
    # and no idle BLAS thread spins beside the workers after the model's first numbers.
    with (
        threadpool_limits(1),
        _records(source, chunk_rows=chunk_rows, outputs=wanted, **reading) as (reader, opened),
    ):
        match, notes = _checked_header(reader, strict_columns=strict_columns)
        scorer = dataclasses.replace(scorer, decimal=reader.dialect.decimal)
        columns = scorer.columns(reader.header) if scorer.model is not None else []
        notes += _renamed(reader.header, match, columns) if columns else []
        totals = [0, 0, 0]  # scored (or valid), rejected, problems
        first: list[str] = []
        csv_lines: list[int] = []  # lines where the csv module began reading segments
        with contextlib.ExitStack() as stack:
            # Rejects first: they are put in place first, so an output that appears has its
            # rejects beside it (both appear once both are complete, or neither does).
            sinks = dict(
                zip(
                    [option for option, _ in wanted],
                    stack.enter_context(atomic_outputs([path for _, path in wanted], binary=True)),
                    strict=True,
                )
            )
            bar = stack.enter_context(
                _progress_bar(opened, progress, "scoring" if columns else "validating")
            )
            headers = {"--out": columns}
            for option, sink in sinks.items():
                _write_header(sink, headers.get(option, list(REJECT_COLUMNS)), scorer.escape)
            # With workers, they parse all of the file: segments they read themselves, or the
            # pieces of records this process found where it could not cut a segment.
            records = reader.segments() if workers > 1 else reader.chunks()
            in_order = _scored_in_order(records, scorer, workers, chunk_rows)
            stack.callback(in_order.close)  # stops the workers on an error
            synced = {option: WriteBehind(sink) for option, sink in sinks.items()}
            for scored in in_order:
                for option, sink in sinks.items():
                    rows = scored.output if option == "--out" else scored.rejects
                    if isinstance(rows, _Spooled):
                        rows.copy_to(sink)
                    else:
                        _write_rows(rows, sink)
                    synced[option]()
                totals[0] += scored.scored
                totals[1] += scored.rejected
                totals[2] += scored.problems
                first.extend(scored.messages[: _SHOWN_PROBLEMS - len(first)])
                if scored.csv_module_from is not None:
                    csv_lines.append(scored.csv_module_from)
                bar.update(opened.position() - bar.n)
                bar.set_postfix(rows=f"{totals[0]:,}", rejected=f"{totals[1]:,}", refresh=False)
    return BatchSummary(
        totals[0],
        totals[1],
        totals[2],
        time.perf_counter() - started,
        reader.dialect,
        tuple(first),
        min((n for n in (*csv_lines, reader.csv_module_from) if n is not None), default=None),
        tuple(notes),
    )


# --------------------------------------------------------------------------- validating


def validate_csv(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    problems: str | os.PathLike[str] | None = None,
    separator: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    strict_columns: bool = False,
    escape: bool = True,
    progress: bool = False,
) -> BatchSummary:
    """Check a CSV file against the schema as :func:`score_csv` reads it, without scoring.

    The problems are exactly the rejects ``score`` would write for the file (the same
    :data:`REJECT_COLUMNS`, the same lines); ``rows_scored`` counts the valid rows.

    Parameters
    ----------
    source : path, ``"-"`` or binary file
        The input CSV file.
    problems : path, optional
        Where to write the problems table (it appears only when complete).
    separator, decimal, encoding, chunk_rows, strict_columns, escape, progress
        As for :func:`score_csv`.

    Returns
    -------
    BatchSummary

    Raises
    ------
    BatchError
        As for :func:`score_csv`.
    InvalidParameterError
        If a parameter has a value it does not accept (before anything is read or written).
    """
    check("validate_csv", _VALIDATE_PARAMETERS, locals())
    started = time.perf_counter()
    check_writable(problems)
    return _run(
        source,
        [("--problems", problems)],
        _ChunkScorer(None, ".", False, escape),
        reading={"separator": separator, "decimal": decimal, "encoding": encoding},
        chunk_rows=chunk_rows,
        strict_columns=strict_columns,
        progress=progress,
        started=started,
    )


# --------------------------------------------------------------------------- labelled data


class LabelledRows(NamedTuple):
    """A labelled CSV file read whole for training or evaluation (before the outcome checks).

    Attributes
    ----------
    frame : pandas.DataFrame
        The text cells of every row the reader accepted, index: the line each starts on.
    rejected : pandas.DataFrame
        The lines the reader rejected, as a rejects table (:data:`REJECT_COLUMNS`).
    dialect : Dialect
        How the file was read.
    notes : tuple of str
        Notes on the header for the summary.
    """

    frame: pd.DataFrame
    rejected: pd.DataFrame
    dialect: Dialect
    notes: tuple[str, ...]


def read_labelled_csv(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    separator: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    strict_columns: bool = False,
    outputs: Sequence[tuple[str, str | os.PathLike[str] | None]] = (),
) -> LabelledRows:
    """Read a whole CSV file (a cohort with outcomes) with the reader ``score`` uses.

    Parameters
    ----------
    source : path, ``"-"`` or binary file
        The input CSV file.
    separator, decimal, encoding, strict_columns
        As for :func:`score_csv`.
    outputs : sequence of (option, path)
        Files the caller will write, refused if one is the input.

    Returns
    -------
    LabelledRows

    Raises
    ------
    BatchError
        As for :func:`score_csv`.
    """
    with _records(
        source,
        separator=separator,
        decimal=decimal,
        encoding=encoding,
        chunk_rows=DEFAULT_CHUNK_ROWS,
        outputs=outputs,
    ) as (reader, _):
        _, notes = _checked_header(reader, strict_columns=strict_columns)
        frames, rejected = [], []
        empty = pd.DataFrame(columns=list(PROBLEM_COLUMNS))
        for chunk in reader.chunks():
            frames.append(chunk.frame)
            if chunk.problems:
                rejected.append(rejects_table(empty, chunk))
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=reader.header, dtype="str")
    frame.columns = reader.header
    return LabelledRows(frame, merged_rejects(rejected), reader.dialect, tuple(notes))


def problems_as_rejects(problems: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """A schema problems table of ``frame`` (whose index is the file line) as rejects rows."""
    chunk = Chunk(frame, [], {})
    return rejects_table(problems, chunk)


def merged_rejects(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Rejects tables as one, in line order (an empty table with the rejects columns for
    none)."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=list(REJECT_COLUMNS))
    table = pd.concat(tables, ignore_index=True)
    return table.sort_values("line", kind="stable", ignore_index=True)[list(REJECT_COLUMNS)]


def rejects_csv(table: pd.DataFrame, *, escape: bool = True) -> bytes:
    """A rejects table (:data:`REJECT_COLUMNS`) as the bytes of its CSV file, for a file
    written together with others (an evaluation's report)."""
    sink = io.BytesIO()
    _write_header(sink, list(REJECT_COLUMNS), escape)
    _write_rows(_csv_table(_frame_columns(table[list(REJECT_COLUMNS)]), escape), sink)
    return sink.getvalue()


def write_rejects(
    table: pd.DataFrame, path: str | os.PathLike[str], *, escape: bool = True
) -> None:
    """Write a rejects table (:data:`REJECT_COLUMNS`) to ``path`` (atomically)."""
    with atomic_outputs([path], binary=True) as (sink,):
        sink.write(rejects_csv(table, escape=escape))
